//! One file per subcommand, plus the loading every command shares.

pub(crate) mod archive;
pub(crate) mod check;
pub(crate) mod dkim;
pub(crate) mod doctor;
pub(crate) mod inbox;
pub(crate) mod init;
pub(crate) mod lists;
pub(crate) mod preview;
pub(crate) mod report;
pub(crate) mod send;
pub(crate) mod serve;
pub(crate) mod suppress;
pub(crate) mod token;

use std::path::Path;

pub(crate) use crate::project::Project;

/// An error from opening the journal, naming the journal when the error does not (SQLite's
/// "unable to open database file" on a read-only directory, "database or disk is full").
pub(crate) fn about_journal(e: anyhow::Error, path: &Path) -> anyhow::Error {
    if format!("{e:#}").contains(&path.display().to_string()) {
        e
    } else {
        e.context(format!("cannot use the journal {}", path.display()))
    }
}
