//! One file per subcommand, plus the loading every command shares.

pub mod check;
pub mod dkim;
pub mod init;
pub mod preview;
pub mod report;
pub mod send;
pub mod suppress;
pub mod token;

use std::path::Path;

pub use crate::project::Project;

/// An error from opening the journal, naming the journal when the error does not (SQLite's
/// "unable to open database file" on a read-only directory, "database or disk is full").
pub fn about_journal(e: anyhow::Error, path: &Path) -> anyhow::Error {
    if format!("{e:#}").contains(&path.display().to_string()) {
        e
    } else {
        e.context(format!("cannot use the journal {}", path.display()))
    }
}
