//! `bulletin suppress`: add addresses to the main suppression file (the first of `suppress`
//! in bulletin.toml). Every later send skips them, test sends and dry runs included.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::config::Config;
use crate::email::Email;

pub fn run(config: Option<&Path>, addresses: &[String]) -> Result<ExitCode> {
    let config = Config::load(config)?;
    let mut emails = Vec::new();
    for a in addresses {
        emails.push(Email::parse(a).map_err(|why| anyhow::anyhow!("{a:?} is not an email address: {why}"))?);
    }
    let (added, file) = append(&config, &emails)?;
    println!("added {added} of {} to {}", emails.len(), file.display());
    Ok(ExitCode::SUCCESS)
}

/// Appends the addresses not yet in the main suppression file; returns how many and the file.
pub fn append(config: &Config, emails: &[Email]) -> Result<(usize, PathBuf)> {
    let Some(file) = config.suppress_files().into_iter().next() else {
        bail!("no suppression file: add `suppress = [\"lists/unsubscribed.csv\"]` to bulletin.toml");
    };
    let mut present: HashSet<String> = HashSet::new();
    if file.exists() {
        present.extend(crate::list::read_suppression(&file)?);
    } else {
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&file, "email\n").with_context(|| format!("cannot create {}", file.display()))?;
    }
    let text = std::fs::read(&file)?;
    let mut out = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .with_context(|| format!("cannot write {}", file.display()))?;
    if !text.is_empty() && !text.ends_with(b"\n") {
        out.write_all(b"\n")?;
    }
    let mut added = 0;
    for e in emails {
        if present.insert(e.key().to_owned()) {
            writeln!(out, "{}", e.key())?;
            added += 1;
        }
    }
    Ok((added, file))
}
