//! A suppression file read whole, row by row (address, reason, date, campaign), and the log of
//! the unsubscribes `serve` undid: what `serve` hands to `suppress --pull`.
//!
//! The undo log sits beside the file it is about, as `NAME.undone` (no `.csv`, so it is never
//! taken for a list): one `email,date,undone_at` line per undo, `date` naming the row removed.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::suppression::{csv_field, shape};
use crate::email::Email;

/// One row of a suppression file; fields the file lacks are empty.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Row {
    /// The address as bulletin compares it (lower-cased domain, trimmed).
    pub email: String,
    pub reason: String,
    pub date: String,
    pub campaign: String,
}

/// One undone unsubscribe: the row `email,unsubscribe,date,…` was removed at `at`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Undone {
    pub email: String,
    pub date: String,
    pub at: String,
}

/// The undo log of suppression file `file`.
pub fn undo_log(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(".undone");
    file.with_file_name(name)
}

/// Every row of `file` with a valid address, read under a shared lock (so never half of an
/// append); none when the file does not exist.
pub fn read_rows(file: &Path) -> Result<Vec<Row>> {
    let mut f = match File::open(file) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot open suppression file {}", file.display())),
    };
    f.lock_shared()
        .with_context(|| format!("cannot lock {}", file.display()))?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", file.display()))?;
    drop(f);
    let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(&bytes);
    let address = |s: &str| Email::parse(s.trim()).ok().map(|e| e.key().to_owned());
    if shape(bytes) != 4 {
        // Addresses only (with or without an `email` header).
        let text = String::from_utf8_lossy(bytes);
        return Ok(text
            .lines()
            .filter_map(|l| address(l.split([',', ';', '\t']).next().unwrap_or("")))
            .map(|email| Row {
                email,
                reason: String::new(),
                date: String::new(),
                campaign: String::new(),
            })
            .collect());
    }
    let header = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let delimiter = [b',', b';', b'\t']
        .into_iter()
        .max_by_key(|d| header.iter().filter(|b| *b == d).count())
        .unwrap_or(b',');
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(bytes);
    let names: Vec<String> = reader
        .headers()
        .with_context(|| format!("cannot read the header of {}", file.display()))?
        .iter()
        .map(super::normalise_column)
        .collect();
    let at = |name: &str| names.iter().position(|n| n == name);
    let (email, reason, date, campaign) = (at("email").unwrap_or(0), at("reason"), at("date"), at("campaign"));
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.with_context(|| format!("cannot read {}", file.display()))?;
        let field = |i: Option<usize>| i.and_then(|i| record.get(i)).unwrap_or("").trim().to_owned();
        if let Some(key) = record.get(email).and_then(address) {
            rows.push(Row {
                email: key,
                reason: field(reason),
                date: field(date),
                campaign: field(campaign),
            });
        }
    }
    Ok(rows)
}

/// Appends an undo to `file`'s undo log and flushes it to disk (the caller holds the
/// suppression file's lock).
pub(super) fn note_undone(file: &Path, email: &Email, date: &str) -> Result<()> {
    let log = undo_log(file);
    let created = !log.exists();
    let mut out = std::fs::OpenOptions::new()
        .mode(0o600)
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("cannot write {}", log.display()))?;
    let line = format!(
        "{},{},{}\n",
        csv_field(email.key()),
        csv_field(date),
        crate::when::now_rfc3339()
    );
    out.write_all(line.as_bytes())
        .and_then(|()| out.sync_all())
        .with_context(|| format!("cannot write {}", log.display()))?;
    if created && let Some(dir) = log.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("cannot flush {}", dir.display()))?;
    }
    Ok(())
}

/// The undos recorded for `file`, oldest first; none when it has no undo log.
pub fn read_undone(file: &Path) -> Result<Vec<Undone>> {
    let log = undo_log(file);
    let bytes = match std::fs::read(&log) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", log.display())),
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes.as_slice());
    let mut out = Vec::new();
    for record in reader.records() {
        // A line cut short by a crash mid-append is no undo.
        let Ok(record) = record else { continue };
        if let (Some(email), Some(date), Some(at)) = (record.get(0), record.get(1), record.get(2))
            && let Ok(e) = Email::parse(email)
            && !at.is_empty()
        {
            out.push(Undone {
                email: e.key().to_owned(),
                date: date.to_owned(),
                at: at.to_owned(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_keep_reason_date_and_campaign_whatever_the_shape() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.csv");
        std::fs::write(
            &file,
            "email,reason,date,campaign\nAna@Example.ORG,unsubscribe,2026-01-01T00:00:00Z,\"2026-12,news\"\nnot-an-address,manual,,\n",
        )
        .unwrap();
        let rows = read_rows(&file).unwrap();
        assert_eq!(
            rows,
            [Row {
                email: "ana@example.org".into(),
                reason: "unsubscribe".into(),
                date: "2026-01-01T00:00:00Z".into(),
                campaign: "2026-12,news".into(),
            }]
        );
        std::fs::write(&file, "email\nbob@example.org\n").unwrap();
        assert_eq!(read_rows(&file).unwrap()[0].email, "bob@example.org");
        assert!(read_rows(&dir.path().join("none.csv")).unwrap().is_empty());
    }

    #[test]
    fn the_undo_log_reads_back_and_ignores_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.csv");
        assert_eq!(undo_log(&file), dir.path().join("s.csv.undone"));
        assert!(read_undone(&file).unwrap().is_empty());
        note_undone(&file, &Email::parse("ana@example.org").unwrap(), "2026-01-01T00:00:00Z").unwrap();
        let mut log = std::fs::OpenOptions::new().append(true).open(undo_log(&file)).unwrap();
        log.write_all(b"bob@example.org,2026-").unwrap();
        let undone = read_undone(&file).unwrap();
        assert_eq!(undone.len(), 1);
        assert_eq!(
            (undone[0].email.as_str(), undone[0].date.as_str()),
            ("ana@example.org", "2026-01-01T00:00:00Z")
        );
    }
}
