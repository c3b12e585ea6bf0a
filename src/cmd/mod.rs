//! One file per subcommand, plus the loading every command shares.

pub(crate) mod campaigns;
pub(crate) mod check;
pub(crate) mod dkim;
pub(crate) mod doctor;
pub(crate) mod init;
pub(crate) mod install;
pub(crate) mod preview;
pub(crate) mod report;
pub(crate) mod send;
pub(crate) mod suppress;
pub(crate) mod token;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;

use crate::config::Config;
use crate::diagnostic::Diagnostics;
use crate::list::Sources;
use crate::message::Letterhead;
use crate::newsletter::Newsletter;
use crate::render::Compiled;
use crate::unsubscribe::Unsubscribe;

/// Everything loaded for a newsletter and its lists. The lists are opened, not read: commands
/// stream them (`sources.stream()`), so memory does not grow with the number of members.
pub(crate) struct Project {
    pub config: Config,
    pub newsletter: Newsletter,
    pub sources: Sources,
    pub compiled: Option<Compiled>,
    pub letterhead: Option<Letterhead>,
    pub diags: Diagnostics,
}

impl Project {
    /// Loads settings, newsletter and lists and compiles. File-level failures (unreadable
    /// settings, broken front matter, a list that is not UTF-8) are returned as errors;
    /// everything else is collected in `diags`.
    pub(crate) fn load(config: Option<&Path>, newsletter: &Path, lists: &[PathBuf]) -> Result<Project> {
        let config = Config::require(config)?;
        let newsletter = Newsletter::load(newsletter)?;
        let sources = Sources::open(lists, &config.suppress_files())?;
        let mut diags = Diagnostics::default();
        let unsubscribe = match Unsubscribe::from_config(&config) {
            Ok(u) => u.map(Arc::new),
            Err(e) => {
                diags.error(config_at(&config).as_deref().map(|f| (f, 0)), format!("{e:#}"));
                None
            }
        };
        let fields = (!lists.is_empty()).then_some(sources.fields.as_slice());
        let compiled = Compiled::compile(&newsletter, &config, fields, unsubscribe.clone(), &mut diags);
        let letterhead = match Letterhead::new(&newsletter, &config, unsubscribe) {
            Ok(l) => Some(l),
            Err(e) => {
                diags.error(None, format!("{e:#}"));
                None
            }
        };
        Ok(Project {
            config,
            newsletter,
            sources,
            compiled,
            letterhead,
            diags,
        })
    }
}

fn config_at(config: &Config) -> Option<String> {
    config.source.as_ref().map(|p| p.display().to_string())
}

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
