//! `bulletin send` (placeholder while Send is built).
use std::path::Path;
use std::process::ExitCode;
pub fn run(_config: Option<&Path>, _args: &crate::cli::SendArgs, _quiet: bool) -> anyhow::Result<ExitCode> {
    anyhow::bail!("send is not built yet")
}
