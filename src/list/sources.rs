//! The members of a send: every list read in order, deduplicated, with unsubscribed and
//! suppressed members left out — streamed, or held in memory for small lists.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Result;

use super::file::CsvFile;
use super::suppression::read_suppression;
use super::{Columns, KeyHash, Recipient, Skip, Skipped, key_hash};
use crate::email::Email;

/// `status` values that mean "do not mail".
const SKIP_STATUSES: [&str; 4] = ["unsubscribed", "cleaned", "bounced", "blocklisted"];

/// All recipients of a send, after merging, dedupe and suppression, held in memory. For small
/// lists and previews; `Sources::stream` reads big ones in constant memory.
#[derive(Debug, Default)]
pub struct Lists {
    pub recipients: Vec<Recipient>,
    pub skipped: Vec<Skipped>,
    /// Every column name any list has (normalised), sorted.
    pub fields: Vec<String>,
}

impl Lists {
    /// Reads every list in order, applying the suppression files.
    pub fn load(lists: &[PathBuf], suppress: &[PathBuf]) -> Result<Lists> {
        let sources = Sources::open(lists, suppress)?;
        let mut out = Lists {
            fields: sources.fields.clone(),
            ..Lists::default()
        };
        for item in sources.stream() {
            match item? {
                Item::Member(r) => out.recipients.push(r),
                Item::Skipped(s) => out.skipped.push(s),
            }
        }
        Ok(out)
    }
}

/// The lists of a send and its suppression files, ready to be read — as often as needed, each
/// pass giving the same members in the same order. Memory is a 16-byte hash per distinct
/// address (for dedupe and suppression), never the rows themselves.
#[derive(Debug)]
pub struct Sources {
    lists: Vec<PathBuf>,
    suppress: Vec<PathBuf>,
    /// Hash of each suppressed address → which suppression file.
    suppressed: HashMap<KeyHash, u32>,
    /// How many distinct addresses the last complete pass saw: the next pass sizes its dedupe
    /// table for them at once, instead of growing it (and holding the old and the new table
    /// while it does).
    distinct: AtomicUsize,
    /// Every column name any list has (normalised), sorted.
    pub fields: Vec<String>,
}

/// One row of the lists: a member to mail, or a row left out and why.
#[derive(Debug)]
pub enum Item {
    Member(Recipient),
    Skipped(Skipped),
}

impl Sources {
    /// Reads the suppression files and the lists' headers.
    pub fn open(lists: &[PathBuf], suppress: &[PathBuf]) -> Result<Sources> {
        let mut suppressed = HashMap::new();
        for (i, path) in suppress.iter().enumerate() {
            for key in read_suppression(path)? {
                suppressed.entry(key_hash(&key)).or_insert(i as u32);
            }
        }
        let mut fields: HashSet<String> = HashSet::new();
        for path in lists {
            fields.extend(
                CsvFile::open(path)?
                    .columns
                    .names
                    .iter()
                    .map(std::string::ToString::to_string),
            );
        }
        let mut fields: Vec<String> = fields.into_iter().collect();
        fields.sort();
        Ok(Sources {
            lists: lists.to_vec(),
            suppress: suppress.to_vec(),
            suppressed,
            fields,
            distinct: AtomicUsize::new(0),
        })
    }

    /// A pass over every row of every list.
    pub fn stream(&self) -> Stream<'_> {
        Stream {
            sources: self,
            file: 0,
            reader: None,
            seen: HashMap::with_capacity(self.distinct.load(Ordering::Relaxed)),
            row: 0,
        }
    }
}

/// Which member to find: a data row across all lists (from 1, as `Recipient::row` counts), or
/// an address.
#[derive(Debug, Clone)]
pub enum Pick {
    Row(u64),
    Address(Email),
}

/// What looking for one member found.
#[derive(Debug)]
pub enum Found {
    /// A member who will receive the newsletter.
    Member(Recipient),
    /// The row, or the address's first row, is left out, and why.
    Skipped(Skipped),
    /// No such row or address in lists of `rows` data rows.
    Absent { rows: u64 },
}

impl Sources {
    /// The first row that matches `pick`. Streams the lists until it is found: no need to hold
    /// them all.
    pub fn find(&self, pick: &Pick) -> Result<Found> {
        let mut rows = 0;
        for item in self.stream() {
            rows += 1;
            let item = item?;
            let (row, key) = match &item {
                Item::Member(r) => (r.row, Some(r.email.key())),
                Item::Skipped(s) => (s.row, s.key.as_deref()),
            };
            let hit = match pick {
                Pick::Row(n) => row == *n,
                Pick::Address(e) => key == Some(e.key()),
            };
            if hit {
                return Ok(match item {
                    Item::Member(r) => Found::Member(r),
                    Item::Skipped(s) => Found::Skipped(s),
                });
            }
        }
        Ok(Found::Absent { rows })
    }
}

/// Reads the lists row by row; see `Sources`.
pub struct Stream<'a> {
    sources: &'a Sources,
    file: usize,
    reader: Option<CsvFile>,
    /// Hash of each address seen → (list index, line) of its first row.
    seen: HashMap<KeyHash, (u32, u32)>,
    row: u64,
}

impl Iterator for Stream<'_> {
    type Item = Result<Item>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.reader.is_none() {
                let path = self.sources.lists.get(self.file)?;
                match CsvFile::open(path) {
                    Ok(r) => self.reader = Some(r),
                    Err(e) => {
                        self.file = self.sources.lists.len();
                        return Some(Err(e));
                    }
                }
            }
            let reader = self.reader.as_mut().expect("opened above");
            let (line, values, columns) = match reader.next() {
                None => {
                    self.reader = None;
                    self.file += 1;
                    if self.file == self.sources.lists.len() {
                        self.sources.distinct.store(self.seen.len(), Ordering::Relaxed);
                    }
                    continue;
                }
                Some(Err(e)) => {
                    self.file = self.sources.lists.len();
                    self.reader = None;
                    return Some(Err(e));
                }
                Some(Ok(row)) => row,
            };
            self.row += 1;
            return Some(Ok(self.classify(line, values, columns)));
        }
    }
}

impl Stream<'_> {
    fn classify(&mut self, line: u64, values: Vec<Box<str>>, columns: Arc<Columns>) -> Item {
        let path = &self.sources.lists[self.file];
        let row = self.row;
        let skip = |key: Option<&str>, why: Skip| {
            Item::Skipped(Skipped {
                path: path.clone(),
                line,
                row,
                key: key.map(str::to_owned),
                why,
            })
        };
        let raw = values[columns.email].trim();
        let email = match Email::parse(raw) {
            Ok(e) => e,
            Err(reason) => {
                return skip(
                    None,
                    Skip::Invalid {
                        value: raw.to_owned(),
                        reason,
                    },
                );
            }
        };
        let hash = key_hash(email.key());
        if let Some(&(f, l)) = self.seen.get(&hash) {
            let first = format!("{}:{l}", self.sources.lists[f as usize].display());
            return skip(Some(email.key()), Skip::Duplicate { first });
        }
        self.seen
            .insert(hash, (self.file as u32, u32::try_from(line).unwrap_or(u32::MAX)));
        let recipient = Recipient {
            email,
            columns,
            line,
            row,
            values,
        };
        if let Some(status) = recipient.field("status") {
            let status = status.to_lowercase();
            if SKIP_STATUSES.contains(&status.as_str()) {
                return skip(Some(recipient.email.key()), Skip::Status(status));
            }
        }
        if let Some(&by) = self.sources.suppressed.get(&hash) {
            let by = self.sources.suppress[by as usize].clone();
            return skip(Some(recipient.email.key()), Skip::Suppressed { by });
        }
        Item::Member(recipient)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_picks_the_first_row_by_number_or_address() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("members.csv");
        std::fs::write(
            &list,
            "email,status\nann@example.org,\nbob@example.org,unsubscribed\nANN@example.org,\n",
        )
        .unwrap();
        let sources = Sources::open(std::slice::from_ref(&list), &[]).unwrap();
        let address = |a: &str| Pick::Address(Email::parse(a).unwrap());
        let member = |found: Found| match found {
            Found::Member(r) => (r.row, r.line),
            other => panic!("{other:?}"),
        };
        assert_eq!(member(sources.find(&Pick::Row(1)).unwrap()), (1, 2));
        assert_eq!(member(sources.find(&address("Ann@example.org")).unwrap()), (1, 2));
        match sources.find(&Pick::Row(3)).unwrap() {
            Found::Skipped(s) => assert!(matches!(s.why, Skip::Duplicate { .. }), "{s}"),
            other => panic!("{other:?}"),
        }
        match sources.find(&address("bob@example.org")).unwrap() {
            Found::Skipped(s) => assert_eq!(s.why, Skip::Status("unsubscribed".into())),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            sources.find(&Pick::Row(4)).unwrap(),
            Found::Absent { rows: 3 }
        ));
        assert!(matches!(
            sources.find(&address("eve@example.org")).unwrap(),
            Found::Absent { rows: 3 }
        ));
    }
}
