//! Suppression files: addresses never to mail, whatever the lists say — read for every send,
//! and extended by `bulletin suppress` and `report --suppress-failed`.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::file::CsvFile;
use crate::email::Email;

/// Reads a suppression file: a CSV with an address column, or one address per line.
pub fn read_suppression(path: &Path) -> Result<Vec<String>> {
    let mut first = String::new();
    BufReader::new(File::open(path).with_context(|| format!("cannot open suppression file {}", path.display()))?)
        .read_line(&mut first)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut keys = Vec::new();
    if first.contains('@') {
        // No header: a plain list of addresses.
        let text = std::fs::read(path)?;
        let text =
            String::from_utf8(text).map_err(|_| anyhow::anyhow!("{}: not UTF-8: save it as UTF-8", path.display()))?;
        for line in text.lines() {
            if let Ok(e) = Email::parse(line.trim_start_matches('\u{feff}')) {
                keys.push(e.key().to_owned());
            }
        }
        return Ok(keys);
    }
    for row in CsvFile::open(path)? {
        let (_, values, columns) = row?;
        if let Ok(e) = Email::parse(&values[columns.email]) {
            keys.push(e.key().to_owned());
        }
    }
    Ok(keys)
}

/// Why an address is suppressed: the suppression file's `reason` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Added by hand (`bulletin suppress`, `report --suppress-failed`).
    Manual,
    /// The member asked (one-click link, mailed request).
    Unsubscribe,
    /// A permanent bounce: the mailbox does not exist.
    Bounce,
    /// Too many temporary bounces.
    SoftBounce,
    /// The member reported the newsletter as spam.
    Complaint,
}

impl Reason {
    /// The reason a `reason` column names; `None` for text bulletin does not write.
    pub fn parse(s: &str) -> Option<Reason> {
        [
            Reason::Manual,
            Reason::Unsubscribe,
            Reason::Bounce,
            Reason::SoftBounce,
            Reason::Complaint,
        ]
        .into_iter()
        .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Manual => "manual",
            Reason::Unsubscribe => "unsubscribe",
            Reason::Bounce => "bounce",
            Reason::SoftBounce => "soft-bounce",
            Reason::Complaint => "complaint",
        }
    }
}

/// One address to suppress, with why and (when known) the campaign it came from.
#[derive(Debug, Clone)]
pub struct Suppression {
    pub email: Email,
    pub reason: Reason,
    pub campaign: Option<String>,
}

/// The header of a new suppression file.
const HEADER: &str = "email,reason,date,campaign";

/// Appends the addresses not yet in the main suppression file (the first of `files`, as
/// `suppress` lists them in bulletin.toml), creating it if need be; returns how many it added
/// and the file.
///
/// Safe against a concurrent writer (an exclusive lock on the file; the addresses already
/// there are read under it) and a concurrent reader (the new rows go out in one append and are
/// flushed to disk before this returns). A file written with only an `email` column, or as a
/// plain list of addresses, keeps its shape.
pub fn append_suppression(files: &[PathBuf], entries: &[Suppression]) -> Result<(usize, PathBuf)> {
    let done = append_entries(files, entries)?;
    Ok((done.added.iter().filter(|&&a| a).count(), done.file))
}

/// What [`append_entries`] did.
#[derive(Debug)]
pub struct Appended {
    /// For each entry, whether it was added (false: the address was there already).
    pub added: Vec<bool>,
    /// The `date` written on the added rows.
    pub date: String,
    pub file: PathBuf,
}

/// [`append_suppression`], saying which entries it added and with what date (`serve` needs
/// both to offer an undo of exactly its own row).
pub fn append_entries(files: &[PathBuf], entries: &[Suppression]) -> Result<Appended> {
    append_entries_with(files, entries, &mut Known::default())
}

/// What a long-running writer (`serve`) remembers of the main suppression file between its
/// appends: the addresses in it, and the file's identity, size and modification time when it
/// last wrote. While they are unchanged nobody else wrote, and the file need not be read again
/// (reading it whole for every append grows with the file).
#[derive(Debug, Default)]
pub struct Known {
    stamp: Option<(u64, u64, u64, i64, i64)>,
    present: HashSet<String>,
    columns: usize,
}

fn stamp(f: &File) -> Option<(u64, u64, u64, i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let m = f.metadata().ok()?;
    Some((m.dev(), m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
}

/// [`append_entries`] remembering the file in `known` from one call to the next.
pub fn append_entries_with(files: &[PathBuf], entries: &[Suppression], known: &mut Known) -> Result<Appended> {
    append_rows(files, entries, None, known)
}

/// [`append_entries`] with each entry's own `date` (rows brought from another suppression
/// file keep theirs; an empty date becomes now).
pub fn append_dated(files: &[PathBuf], entries: &[(Suppression, String)]) -> Result<Appended> {
    let (entries, dates): (Vec<Suppression>, Vec<String>) = entries.iter().cloned().unzip();
    append_rows(files, &entries, Some(&dates), &mut Known::default())
}

fn append_rows(
    files: &[PathBuf],
    entries: &[Suppression],
    dates: Option<&[String]>,
    known: &mut Known,
) -> Result<Appended> {
    let file = main_file(files)?;
    let mut out = lock_current(&file)?;
    let mut buf = String::new();
    let text_len;
    if known.stamp.is_some() && known.stamp == stamp(&out) {
        // Unchanged since this writer's last append, which ended with a newline.
        text_len = 1;
    } else {
        known.stamp = None;
        let text = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
        text_len = text.len();
        known.present.clear();
        known.columns = if text.iter().all(u8::is_ascii_whitespace) {
            buf.push_str(HEADER);
            buf.push('\n');
            4
        } else if shape(&text) == 4 {
            4
        } else {
            1
        };
        if buf.is_empty() {
            known.present.extend(read_suppression(&file)?);
            if !text.ends_with(b"\n") {
                buf.push('\n');
            }
        }
    }
    let columns = known.columns;
    let present = &mut known.present;
    let date = crate::when::now_rfc3339();
    let mut added = 0;
    let mut which = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let new = present.insert(e.email.key().to_owned());
        which.push(new);
        if !new {
            continue;
        }
        if columns == 4 {
            let campaign = e.campaign.as_deref().unwrap_or_default();
            let date = match dates.and_then(|d| d.get(i)) {
                Some(d) if !d.is_empty() => d,
                _ => &date,
            };
            buf.push_str(&format!(
                "{},{},{},{}\n",
                e.email.key(),
                e.reason.as_str(),
                csv_field(date),
                csv_field(campaign)
            ));
        } else {
            buf.push_str(e.email.key());
            buf.push('\n');
        }
        added += 1;
    }
    if added > 0 || text_len == 0 {
        let written = out.write_all(buf.as_bytes()).and_then(|()| out.sync_all());
        if let Err(e) = written {
            // What is on disk is unknown now: read it again next time.
            *known = Known::default();
            return Err(e).with_context(|| format!("cannot write {}", file.display()));
        }
    }
    known.stamp = stamp(&out);
    Ok(Appended {
        added: which,
        date,
        file,
    })
}

/// The main suppression file (the first of `files`), its folder created.
pub(super) fn main_file(files: &[PathBuf]) -> Result<PathBuf> {
    let Some(file) = files.first().cloned() else {
        bail!("no suppression file: add `suppress = [\"lists/unsubscribed.csv\"]` to bulletin.toml");
    };
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    Ok(file)
}

/// Opens `file` for appending (creating it, mode 0600: addresses are members' data) and takes
/// its exclusive lock. A removal replaces the file by a new one under the same lock: a writer
/// that was waiting on the old file finds, once it holds the lock, that the name now points
/// elsewhere, and opens again rather than write into a file nobody reads.
pub(super) fn lock_current(file: &Path) -> Result<File> {
    use std::os::unix::fs::MetadataExt;
    loop {
        let out = std::fs::OpenOptions::new()
            .mode(0o600)
            .create(true)
            .append(true)
            .read(true)
            .open(file)
            .with_context(|| format!("cannot write {}", file.display()))?;
        out.lock().with_context(|| format!("cannot lock {}", file.display()))?;
        let held = out.metadata()?;
        match std::fs::metadata(file) {
            Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => return Ok(out),
            _ => continue,
        }
    }
}

/// Removes the row `email,unsubscribe,DATE,…` from the main suppression file (an undo of the
/// unsubscribe made at `date`), under the same lock as appends; the file is rewritten to a
/// temporary file, flushed, renamed over the old one and the folder flushed, so a reader sees
/// the old file or the new one, never half of one. Rows with another reason or date, and
/// files without a `reason` column, are left alone. Returns whether a row went.
pub fn remove_unsubscribe(files: &[PathBuf], email: &Email, date: &str) -> Result<bool> {
    remove_unsubscribe_noting(files, email, date, false)
}

/// [`remove_unsubscribe`] that, with `note`, first appends the undo to the file's undo log
/// (see [`super::undo_log`]), under the same lock, so `suppress --pull` can undo it too.
pub fn remove_unsubscribe_noting(files: &[PathBuf], email: &Email, date: &str, note: bool) -> Result<bool> {
    use std::os::unix::fs::PermissionsExt;
    let file = main_file(files)?;
    let held = lock_current(&file)?;
    let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
    if shape(text.as_bytes()) != 4 {
        return Ok(false);
    }
    let mut kept = String::with_capacity(text.len());
    let mut removed = false;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let mut fields = line.trim_end_matches(['\r', '\n']).splitn(4, ',');
        let ours = i > 0
            && fields.next().is_some_and(|e| e.eq_ignore_ascii_case(email.key()))
            && fields.next() == Some(Reason::Unsubscribe.as_str())
            && fields.next() == Some(date);
        if ours && !removed {
            removed = true;
        } else {
            kept.push_str(line);
        }
    }
    if !removed {
        return Ok(false);
    }
    if note {
        super::rows::note_undone(&file, email, date)?;
    }
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut out = std::fs::OpenOptions::new()
            .mode(0o600)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)?;
        out.set_permissions(std::fs::Permissions::from_mode(held.metadata()?.mode() & 0o777))?;
        out.write_all(kept.as_bytes())?;
        out.sync_all()?;
        std::fs::rename(&temp, &file)?;
        File::open(dir)?.sync_all()
    };
    use std::os::unix::fs::MetadataExt;
    write().with_context(|| format!("cannot rewrite {}", file.display()))?;
    drop(held);
    Ok(true)
}

/// 4 when the file's header has bulletin's `reason` column, else 1 (only addresses).
pub(super) fn shape(text: &[u8]) -> usize {
    let first = text.split(|&b| b == b'\n').next().unwrap_or_default();
    let first = String::from_utf8_lossy(first);
    let names: Vec<String> = first
        .trim_start_matches('\u{feff}')
        .split([',', ';', '\t'])
        .map(super::normalise_column)
        .collect();
    if names.iter().any(|n| n == "reason") { 4 } else { 1 }
}

/// A CSV field, quoted when it needs to be.
pub(super) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r', ';']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(addresses: &[&str], reason: Reason) -> Vec<Suppression> {
        addresses
            .iter()
            .map(|a| Suppression {
                email: Email::parse(a).unwrap(),
                reason,
                campaign: Some("2026-12-news".into()),
            })
            .collect()
    }

    #[test]
    fn a_file_with_only_addresses_keeps_its_shape() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("unsubscribed.csv");
        std::fs::write(&file, "email\nold@example.org").unwrap();
        let new = entries(
            &["OLD@example.org", "new@example.org", "new@example.org"],
            Reason::Manual,
        );
        let (added, written) = append_suppression(std::slice::from_ref(&file), &new).unwrap();
        assert_eq!((added, written), (1, file.clone()));
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "email\nold@example.org\nnew@example.org\n"
        );
        assert!(append_suppression(&[], &new).is_err());
    }

    #[test]
    fn a_new_file_gets_reason_date_and_campaign() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("lists/unsubscribed.csv");
        let files = std::slice::from_ref(&file);
        append_suppression(files, &entries(&["a@example.org"], Reason::Unsubscribe)).unwrap();
        append_suppression(files, &entries(&["b@example.org", "A@example.org"], Reason::Complaint)).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "email,reason,date,campaign");
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[1].starts_with("a@example.org,unsubscribe,20") && lines[1].ends_with("Z,2026-12-news"));
        assert!(lines[2].starts_with("b@example.org,complaint,"));
        assert_eq!(read_suppression(&file).unwrap(), ["a@example.org", "b@example.org"]);
    }

    #[test]
    fn an_undo_removes_only_its_own_unsubscribe_row() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("unsubscribed.csv");
        let files = std::slice::from_ref(&file);
        std::fs::write(
            &file,
            "email,reason,date,campaign\nb@example.org,manual,2026-01-01T00:00:00Z,\n\
             a@example.org,unsubscribe,2026-01-01T00:00:00Z,\n",
        )
        .unwrap();
        let a = Email::parse("A@example.org").unwrap();
        let done = append_entries(
            files,
            &entries(&["c@example.org", "a@example.org"], Reason::Unsubscribe),
        )
        .unwrap();
        assert_eq!(done.added, [true, false]);
        let b = Email::parse("b@example.org").unwrap();
        // A manual row, or an unsubscribe of another date, is not undone.
        assert!(!remove_unsubscribe(files, &b, "2026-01-01T00:00:00Z").unwrap());
        assert!(remove_unsubscribe(files, &a, "2026-01-01T00:00:00Z").unwrap());
        assert!(!remove_unsubscribe(files, &a, "2026-01-01T00:00:00Z").unwrap());
        let c = Email::parse("c@example.org").unwrap();
        assert!(remove_unsubscribe(files, &c, &done.date).unwrap());
        assert_eq!(read_suppression(&file).unwrap(), ["b@example.org"]);
        // Appends after a rewrite go into the new file.
        append_suppression(files, &entries(&["a@example.org"], Reason::Unsubscribe)).unwrap();
        assert_eq!(read_suppression(&file).unwrap(), ["b@example.org", "a@example.org"]);
    }

    #[test]
    fn a_remembered_file_is_read_again_once_someone_else_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("unsubscribed.csv");
        let files = std::slice::from_ref(&file);
        let mut known = Known::default();
        let add = |known: &mut Known, a: &str| {
            append_entries_with(files, &entries(&[a], Reason::Unsubscribe), known)
                .unwrap()
                .added[0]
        };
        assert!(add(&mut known, "a@example.org"));
        assert!(!add(&mut known, "a@example.org"));
        // Another writer (bulletin suppress, inbox) appends; an undo rewrites the file.
        append_suppression(files, &entries(&["b@example.org"], Reason::Manual)).unwrap();
        assert!(!add(&mut known, "b@example.org"));
        let date = append_entries(files, &entries(&["c@example.org"], Reason::Unsubscribe))
            .unwrap()
            .date;
        assert!(remove_unsubscribe(files, &Email::parse("c@example.org").unwrap(), &date).unwrap());
        assert!(add(&mut known, "c@example.org"));
        assert!(add(&mut known, "d@example.org"));
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(text.lines().count(), 5, "{text}");
        assert_eq!(
            read_suppression(&file).unwrap(),
            ["a@example.org", "b@example.org", "c@example.org", "d@example.org"]
        );
    }

    #[test]
    fn appends_and_removals_racing_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("unsubscribed.csv");
        let files = std::slice::from_ref(&file);
        append_suppression(files, &entries(&["keep@example.org"], Reason::Manual)).unwrap();
        std::thread::scope(|s| {
            for t in 0..4 {
                s.spawn(move || {
                    for i in 0..25 {
                        let a = format!("t{t}-{i}@example.org");
                        let done = append_entries(files, &entries(&[&a], Reason::Unsubscribe)).unwrap();
                        if i % 2 == 0 {
                            assert!(remove_unsubscribe(files, &Email::parse(&a).unwrap(), &done.date).unwrap());
                        }
                    }
                });
            }
        });
        let keys = read_suppression(&file).unwrap();
        assert_eq!(keys.len(), 1 + 4 * 12, "{keys:?}");
    }

    #[test]
    fn concurrent_appends_record_each_address_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("unsubscribed.csv");
        std::thread::scope(|s| {
            for t in 0..8 {
                let file = file.clone();
                s.spawn(move || {
                    for i in 0..20 {
                        // Every thread writes the same 20 addresses, in a different order.
                        let a = format!("m{}@example.org", (i + t * 3) % 20);
                        append_suppression(std::slice::from_ref(&file), &entries(&[&a], Reason::Unsubscribe)).unwrap();
                    }
                });
            }
        });
        let mut keys = read_suppression(&file).unwrap();
        keys.sort();
        let before = keys.len();
        keys.dedup();
        assert_eq!((before, keys.len()), (20, 20));
    }
}
