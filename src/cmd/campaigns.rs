//! `bulletin campaigns`: the campaigns in the journal, newest first, with their counts — the
//! ids `report` takes, without remembering which file each came from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;

use crate::journal::{Journal, Tally};

/// One campaign, merged over the journals (one per shard) that hold part of it.
#[derive(Serialize)]
struct Row {
    id: String,
    subject: String,
    newsletter: String,
    /// Unix milliseconds.
    started: i64,
    test: bool,
    sent: usize,
    failed: usize,
    pending: usize,
    uncertain: usize,
}

pub(crate) fn run(journals: &[PathBuf], json: bool) -> Result<ExitCode> {
    let rows = gather(&super::report::journals(journals)?)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<28} {:<16} {:>6} {:>6} {:>7}  subject",
        "campaign", "started", "sent", "failed", "pending"
    );
    for r in &rows {
        let pending = if r.uncertain > 0 {
            format!("{} (+{} uncertain)", r.pending, r.uncertain)
        } else {
            r.pending.to_string()
        };
        println!(
            "{:<28} {:<16} {:>6} {:>6} {:>7}  {}",
            r.id,
            crate::when::local_time(r.started),
            r.sent,
            r.failed,
            pending,
            r.subject
        );
    }
    if rows.is_empty() {
        println!("(no campaign yet: `bulletin send` records one here)");
    }
    Ok(ExitCode::SUCCESS)
}

fn gather(paths: &[PathBuf]) -> Result<Vec<Row>> {
    let mut by_id: BTreeMap<String, Row> = BTreeMap::new();
    for path in paths {
        let journal = Journal::open(path).map_err(|e| super::about_journal(e, path))?;
        for c in journal.campaigns()? {
            let t: Tally = journal.tally(&c.id)?;
            let row = by_id.entry(c.id.clone()).or_insert_with(|| Row {
                test: c.id.contains("+test-"),
                id: c.id,
                subject: c.subject,
                newsletter: c.newsletter,
                started: c.started,
                sent: 0,
                failed: 0,
                pending: 0,
                uncertain: 0,
            });
            row.started = row.started.min(c.started);
            row.sent += t.sent;
            row.failed += t.failed;
            row.pending += t.pending;
            row.uncertain += t.uncertain;
        }
    }
    let mut rows: Vec<Row> = by_id.into_values().collect();
    rows.sort_by(|a, b| b.started.cmp(&a.started).then_with(|| a.id.cmp(&b.id)));
    Ok(rows)
}

/// Whether `arg` names a newsletter file rather than a campaign id: it exists, or it is
/// written as a path (a `/` or a `.md` ending) so a typo gets "cannot read" rather than "no
/// such campaign".
pub(crate) fn is_newsletter_path(arg: &Path) -> bool {
    let s = arg.to_string_lossy();
    arg.is_file() || s.contains('/') || s.ends_with(".md") || s.ends_with(".toml")
}
