//! `bulletin archive`: writes the static site of sent campaigns ([`crate::archive`]).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use crate::cli::ArchiveArgs;
use crate::config::Config;

pub(crate) fn run(config: Option<&Path>, args: &ArchiveArgs) -> Result<ExitCode> {
    let config = Config::load(config)?;
    let written = crate::archive::write(&config, &args.journal, &args.out)?;
    for w in &written.warnings {
        eprintln!("warning: {w}");
    }
    for s in &written.skipped {
        eprintln!("warning: left out {s}");
    }
    println!(
        "wrote {} issue{} to {} (index.html, feed.xml)",
        written.issues,
        if written.issues == 1 { "" } else { "s" },
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
