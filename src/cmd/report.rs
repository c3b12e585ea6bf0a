//! `bulletin report` (placeholder while Send is built).
use std::process::ExitCode;
pub fn run(_args: &crate::cli::ReportArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("report is not built yet")
}
