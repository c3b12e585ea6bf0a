//! `bulletin suppress`: add addresses to the main suppression file (the first of `suppress`
//! in bulletin.toml) with reason `manual`. Every later send skips them, test sends and dry runs
//! included.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use crate::config::Config;
use crate::email::Email;
use crate::list::{Reason, Suppression, append_suppression};

pub fn run(config: Option<&Path>, addresses: &[String]) -> Result<ExitCode> {
    let config = Config::load(config)?;
    let mut emails = Vec::new();
    for a in addresses {
        emails.push(Suppression {
            email: Email::parse(a).map_err(|why| anyhow::anyhow!("{a:?} is not an email address: {why}"))?,
            reason: Reason::Manual,
            campaign: None,
        });
    }
    let (added, file) = append_suppression(&config.suppress_files(), &emails)?;
    println!("added {added} of {} to {}", emails.len(), file.display());
    Ok(ExitCode::SUCCESS)
}
