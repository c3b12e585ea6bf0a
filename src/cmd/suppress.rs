//! `bulletin suppress`: add addresses to the main suppression file (the first of `suppress`
//! in bulletin.toml) with reason `manual`. Every later send skips them, test sends and dry runs
//! included.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use crate::config::Config;
use crate::email::Email;
use crate::list::{Reason, Suppression, append_suppression};

pub(crate) fn run(config: Option<&Path>, addresses: &[String]) -> Result<ExitCode> {
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
    println!("{}", added_text(added, emails.len(), &file.display().to_string()));
    Ok(ExitCode::SUCCESS)
}

/// "added 2 addresses to F", "nothing added: the address was already in F" — not "added 0 of 1".
fn added_text(added: usize, given: usize, file: &str) -> String {
    let addresses = |n: usize| {
        if n == 1 {
            "1 address".to_owned()
        } else {
            format!("{n} addresses")
        }
    };
    let already = given.saturating_sub(added);
    match (added, already) {
        (0, 1) => format!("nothing added: the address was already in {file}"),
        (0, _) => format!("nothing added: all {given} addresses were already in {file}"),
        (_, 0) => format!("added {} to {file}", addresses(added)),
        _ => format!(
            "added {} to {file} ({} already there)",
            addresses(added),
            addresses(already)
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_read_as_a_person_writes_them() {
        assert_eq!(super::added_text(1, 1, "s.csv"), "added 1 address to s.csv");
        assert_eq!(
            super::added_text(0, 1, "s.csv"),
            "nothing added: the address was already in s.csv"
        );
        assert_eq!(
            super::added_text(2, 3, "s.csv"),
            "added 2 addresses to s.csv (1 address already there)"
        );
    }
}
