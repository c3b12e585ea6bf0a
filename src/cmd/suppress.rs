//! `bulletin suppress`: add addresses to the main suppression file (the first of `suppress`
//! in bulletin.toml) with reason `manual`. Every later send skips them, test sends and dry runs
//! included. `--pull URL` brings in what `bulletin serve` recorded instead ([`crate::pull`]).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use crate::config::Config;
use crate::email::Email;
use crate::list::{Reason, Suppression, append_suppression};
use crate::unsubscribe::Unsubscribe;

/// `bulletin suppress --pull URL`: the unsubscribes and undos `serve` recorded at `url`,
/// merged into the main suppression file.
pub(crate) fn pull(config: Option<&Path>, url: &str) -> Result<ExitCode> {
    let config = Config::load(config)?;
    let endpoint = crate::pull::endpoint(url)?;
    let token = Unsubscribe::from_config(&config)?
        .and_then(|u| u.pull_token())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--pull needs the unsubscribe secret the server has: set [unsubscribe] in bulletin.toml and \
                 export BULLETIN_UNSUBSCRIBE_SECRET (or set [unsubscribe] secret_command)"
            )
        })?;
    let files = config.suppress_files();
    if files.is_empty() {
        anyhow::bail!(
            "no suppression file to merge into: add `suppress = [\"lists/unsubscribed.csv\"]` to bulletin.toml"
        );
    }
    let export = crate::pull::fetch(&endpoint, &token)?;
    let merged = crate::pull::merge(&files, &export)?;
    println!("{}", crate::pull::summary(&endpoint, &merged, &merged.file));
    Ok(ExitCode::SUCCESS)
}

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
