//! One file per subcommand, plus the loading every command shares.

pub(crate) mod archive;
pub(crate) mod campaigns;
pub(crate) mod check;
pub(crate) mod dkim;
pub(crate) mod doctor;
pub(crate) mod inbox;
pub(crate) mod init;
pub(crate) mod install;
pub(crate) mod lists;
pub(crate) mod preview;
pub(crate) mod report;
pub(crate) mod send;
pub(crate) mod serve;
pub(crate) mod suppress;
pub(crate) mod token;

use std::path::Path;

use crate::list::Sources;
pub(crate) use crate::project::Project;
use crate::render::Compiled;

/// An error from opening the journal, naming the journal when the error does not (SQLite's
/// "unable to open database file" on a read-only directory, "database or disk is full").
pub(crate) fn about_journal(e: anyhow::Error, path: &Path) -> anyhow::Error {
    if format!("{e:#}").contains(&path.display().to_string()) {
        e
    } else {
        e.context(format!("cannot use the journal {}", path.display()))
    }
}

/// The subject as a member sees it, for the plan, the journal and the report: rendered with
/// every field empty, so `default(...)` shows (no one member's name in a report), else as the
/// first member gets it, else as written when the lists have no member.
pub(crate) fn subject_as_seen(compiled: &Compiled, sources: &Sources, written: &str) -> String {
    let first = sources.stream().find_map(|item| match item {
        Ok(crate::list::Item::Member(r)) => Some(r),
        _ => None,
    });
    let Some(first) = first else {
        return written.to_owned();
    };
    let mut blank = first.clone();
    for (i, v) in blank.values.iter_mut().enumerate() {
        if i != blank.columns.email {
            *v = "".into();
        }
    }
    compiled
        .personalise(&blank)
        .or_else(|_| compiled.personalise(&first))
        .map_or_else(|_| written.to_owned(), |r| r.subject)
}
