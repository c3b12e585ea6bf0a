//! Subscriber lists: read CSV files as Excel and friends write them, normalise the header,
//! validate and deduplicate addresses, skip unsubscribed and suppressed members.
//!
//! Problems with single rows (a bad address, a duplicate, a suppressed member) are findings:
//! the row is skipped and reported with its line. Problems that make the file untrustworthy
//! (no header, no address column, not UTF-8, a row whose fields don't line up) are errors.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};

use sha2::{Digest, Sha256};

use crate::email::Email;

/// Column names accepted for the address, after normalisation.
const EMAIL_COLUMNS: [&str; 4] = ["email", "email_address", "e_mail", "mail"];
/// `status` values that mean "do not mail".
const SKIP_STATUSES: [&str; 4] = ["unsubscribed", "cleaned", "bounced", "blocklisted"];

/// One list file's header.
#[derive(Debug)]
pub struct Columns {
    pub path: PathBuf,
    /// Normalised column names, in file order.
    pub names: Vec<Box<str>>,
    pub email: usize,
}

/// A member who will receive the newsletter.
#[derive(Debug, Clone)]
pub struct Recipient {
    pub email: Email,
    pub columns: Arc<Columns>,
    /// Physical line of the row in its file (header = 1).
    pub line: u64,
    /// Data row number across all lists, from 1 (what `preview --row` counts).
    pub row: u64,
    /// Raw field values, aligned with `columns.names`.
    pub values: Vec<Box<str>>,
}

impl Recipient {
    /// The value of a column, `None` when the column is absent or the value is blank.
    pub fn field(&self, name: &str) -> Option<&str> {
        let i = self.columns.names.iter().position(|n| &**n == name)?;
        let v = self.values.get(i)?.trim();
        (!v.is_empty()).then_some(v)
    }

    /// `path:line`, for messages.
    pub fn location(&self) -> String {
        format!("{}:{}", self.columns.path.display(), self.line)
    }

    /// The display name for `To`: a `name` column, else first and last name.
    pub fn display_name(&self) -> Option<String> {
        if let Some(name) = self.field("name").or_else(|| self.field("full_name")) {
            return Some(name.to_owned());
        }
        let parts: Vec<&str> = [self.field("first_name"), self.field("last_name")]
            .into_iter()
            .flatten()
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    }
}

/// Why a row was left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    Invalid { value: String, reason: &'static str },
    Duplicate { first: String },
    Status(String),
    Suppressed { by: PathBuf },
}

/// A row left out, with where it was.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub path: PathBuf,
    pub line: u64,
    pub row: u64,
    /// The row's address as a comparison key (lower-cased), when it has a valid one.
    pub key: Option<String>,
    pub why: Skip,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: ", self.path.display(), self.line)?;
        match &self.why {
            Skip::Invalid { value, reason } => {
                write!(f, "{value:?} is not an email address ({reason}); row skipped")
            }
            Skip::Duplicate { first } => write!(f, "duplicate of the address at {first}; row skipped"),
            Skip::Status(s) => write!(f, "status is `{s}`; row skipped"),
            Skip::Suppressed { by } => write!(f, "address is in {}; row skipped", by.display()),
        }
    }
}

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
            fields.extend(CsvFile::open(path)?.columns.names.iter().map(|n| n.to_string()));
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

/// 128 bits of SHA-256 of a normalised address: what dedupe, suppression and resume remember
/// of each address. Two `u64`s rather than a `u128`, whose 16-byte alignment would pad a map
/// entry with a small value to 32 bytes (24 here: a million members is 8 MB less per map).
pub type KeyHash = [u64; 2];

/// The [`KeyHash`] of a normalised address.
pub fn key_hash(key: &str) -> KeyHash {
    let digest = Sha256::digest(key.as_bytes());
    let half = |i: usize| u64::from_be_bytes(digest[i..i + 8].try_into().expect("8 bytes"));
    [half(0), half(8)]
}

/// Normalises a header name: trimmed, lower-case, runs of non-alphanumerics → `_`.
pub fn normalise_column(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending_sep = false;
    for c in name.trim().chars() {
        if c.is_alphanumeric() {
            if pending_sep && !out.is_empty() {
                out.push('_');
            }
            pending_sep = false;
            out.extend(c.to_lowercase());
        } else {
            pending_sep = true;
        }
    }
    out
}

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

/// A streaming CSV reader that yields `(line, values, columns)` for each data row.
pub struct CsvFile {
    pub columns: Arc<Columns>,
    reader: csv::Reader<Box<dyn Read + Send>>,
    record: csv::ByteRecord,
    lines: Arc<Mutex<LineIndex>>,
}

/// Physical line numbers as an editor shows them. The csv crate's own count is off by one
/// after CRLF endings and blank lines (a record's position points at the previous line's
/// terminator), so the bytes are scanned as they are read instead.
struct LineIndex {
    /// `(offset, line)` of the first byte of each non-blank line not yet asked about.
    starts: VecDeque<(u64, u64)>,
    offset: u64,
    line: u64,
    at_line_start: bool,
    after_cr: bool,
}

impl LineIndex {
    fn new() -> LineIndex {
        LineIndex {
            starts: VecDeque::new(),
            offset: 0,
            line: 1,
            at_line_start: true,
            after_cr: false,
        }
    }

    fn scan(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match b {
                // `\r\n`, `\n` and a lone `\r` each end one line.
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.line += 1;
                    self.at_line_start = true;
                    self.after_cr = b == b'\r';
                }
                _ => {
                    self.after_cr = false;
                    if self.at_line_start {
                        self.starts.push_back((self.offset, self.line));
                        self.at_line_start = false;
                    }
                }
            }
            self.offset += 1;
        }
    }

    /// The line of the first content at or after byte `offset` (where a record starts,
    /// possibly on the line terminators before it). Offsets must not go backwards.
    fn line_at(&mut self, offset: u64) -> u64 {
        while self.starts.front().is_some_and(|&(o, _)| o < offset) {
            self.starts.pop_front();
        }
        self.starts.front().map_or(self.line, |&(_, l)| l)
    }
}

/// A reader that feeds everything it reads to a [`LineIndex`].
struct Counting<R> {
    inner: R,
    lines: Arc<Mutex<LineIndex>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .scan(&buf[..n]);
        Ok(n)
    }
}

impl CsvFile {
    pub fn open(path: &Path) -> Result<CsvFile> {
        let file = File::open(path).with_context(|| format!("cannot open list {}", path.display()))?;
        let mut buf = BufReader::with_capacity(64 * 1024, file);
        // Strip a UTF-8 byte-order mark (Excel writes one).
        if buf.fill_buf()?.starts_with(b"\xEF\xBB\xBF") {
            buf.consume(3);
        }
        let delimiter = sniff_delimiter(buf.fill_buf()?);
        let lines = Arc::new(Mutex::new(LineIndex::new()));
        let counting = Counting {
            inner: buf,
            lines: Arc::clone(&lines),
        };
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(true)
            .flexible(true)
            .from_reader(Box::new(counting) as Box<dyn Read + Send>);
        let header = reader
            .byte_headers()
            .with_context(|| format!("{}:1: cannot read the header row", path.display()))?
            .clone();
        if header.is_empty() || header.iter().all(|h| h.is_empty()) {
            bail!(
                "{}:1: the file is empty; a list needs a header row such as `email,first_name`",
                path.display()
            );
        }
        let mut names: Vec<Box<str>> = Vec::new();
        for (i, raw) in header.iter().enumerate() {
            let raw = std::str::from_utf8(raw).map_err(|_| {
                anyhow::anyhow!(
                    "{}:1: column {} of the header is not UTF-8: save the file as UTF-8 (in Excel: Save As → \"CSV UTF-8\")",
                    path.display(),
                    i + 1
                )
            })?;
            let name = normalise_column(raw);
            if name.is_empty() {
                bail!(
                    "{}:1: column {} has no name: give every column a header",
                    path.display(),
                    i + 1
                );
            }
            if names.iter().any(|n| **n == name) {
                bail!(
                    "{}:1: column `{name}` appears twice in the header: rename one",
                    path.display()
                );
            }
            names.push(name.into());
        }
        let Some(email) = names.iter().position(|n| EMAIL_COLUMNS.contains(&&**n)) else {
            bail!(
                "{}:1: no address column (found: {}): name the column `email`",
                path.display(),
                names.join(", ")
            );
        };
        let columns = Arc::new(Columns {
            path: path.to_owned(),
            names,
            email,
        });
        Ok(CsvFile {
            columns,
            reader,
            record: csv::ByteRecord::new(),
            lines,
        })
    }
}

impl Iterator for CsvFile {
    type Item = Result<(u64, Vec<Box<str>>, Arc<Columns>)>;

    fn next(&mut self) -> Option<Self::Item> {
        let path = &self.columns.path;
        loop {
            match self.reader.read_byte_record(&mut self.record) {
                Ok(false) => return None,
                Ok(true) => {}
                Err(e) => {
                    let line = e.position().map_or(0, |p| {
                        self.lines
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .line_at(p.byte())
                    });
                    return Some(Err(anyhow::anyhow!("{}:{line}: {e}", path.display())));
                }
            }
            let line = self.record.position().map_or(0, |p| {
                self.lines
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .line_at(p.byte())
            });
            if self.record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
                continue; // blank line
            }
            let width = self.columns.names.len();
            if self.record.len() != width {
                return Some(Err(anyhow::anyhow!(
                    "{}:{line}: this row has {} fields but the header has {width}: \
                     a value containing the delimiter must be in double quotes",
                    path.display(),
                    self.record.len()
                )));
            }
            let mut values = Vec::with_capacity(width);
            for (i, field) in self.record.iter().enumerate() {
                match std::str::from_utf8(field) {
                    Ok(s) => values.push(s.into()),
                    Err(_) => {
                        return Some(Err(anyhow::anyhow!(
                            "{}:{line}: column `{}` is not UTF-8: save the file as UTF-8 \
                             (in Excel: Save As → \"CSV UTF-8\")",
                            path.display(),
                            self.columns.names[i]
                        )));
                    }
                }
            }
            return Some(Ok((line, values, Arc::clone(&self.columns))));
        }
    }
}

/// Picks `,`, `;` or tab: whichever occurs most outside quotes on the header line.
fn sniff_delimiter(head: &[u8]) -> u8 {
    let mut counts = [0usize; 3];
    let mut quoted = false;
    for &b in head {
        match b {
            b'"' => quoted = !quoted,
            b'\n' | b'\r' if !quoted => break,
            b',' if !quoted => counts[0] += 1,
            b';' if !quoted => counts[1] += 1,
            b'\t' if !quoted => counts[2] += 1,
            _ => {}
        }
    }
    let best = (0..3).max_by_key(|&i| (counts[i], std::cmp::Reverse(i))).unwrap_or(0);
    [b',', b';', b'\t'][best]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_headers() {
        assert_eq!(normalise_column("  First Name "), "first_name");
        assert_eq!(normalise_column("E-Mail"), "e_mail");
        assert_eq!(normalise_column("Member #ID"), "member_id");
        assert_eq!(normalise_column("Prénom"), "prénom");
    }

    #[test]
    fn line_numbers_are_physical_lines() {
        for (csv, want) in [
            (&b"email\nbad1\n\nbad2\n\"bad\n3\"\nbad4"[..], [2, 4, 5, 7]),
            (b"email\r\nbad1\r\n\r\nbad2\r\n\"bad\r\n3\"\r\nbad4\r\n", [2, 4, 5, 7]),
            (b"email\rbad1\r\rbad2\r\"bad\r3\"\rbad4\r", [2, 4, 5, 7]),
        ] {
            let lines = Arc::new(Mutex::new(LineIndex::new()));
            let counting = Counting {
                inner: csv,
                lines: Arc::clone(&lines),
            };
            let mut reader = csv::ReaderBuilder::new().from_reader(counting);
            let mut record = csv::ByteRecord::new();
            let mut got = Vec::new();
            while reader.read_byte_record(&mut record).unwrap() {
                got.push(
                    lines
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .line_at(record.position().unwrap().byte()),
                );
            }
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(csv));
        }
    }

    #[test]
    fn sniffs_delimiters() {
        assert_eq!(sniff_delimiter(b"email,first_name\n"), b',');
        assert_eq!(sniff_delimiter(b"email;first_name;\"a,b\"\n"), b';');
        assert_eq!(sniff_delimiter(b"email\tfirst_name\n"), b'\t');
        assert_eq!(sniff_delimiter(b"email\n"), b',');
    }
}
