//! One list file: its delimiter, its header (normalised, with an address column) and its rows,
//! each with the physical line an editor shows for it.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};

use super::Columns;
use super::export::{self, Format, Part};

/// Column names accepted for the address, after normalisation.
const EMAIL_COLUMNS: [&str; 4] = ["email", "email_address", "e_mail", "mail"];

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

/// A streaming CSV reader that yields `(line, values, columns)` for each data row.
pub struct CsvFile {
    pub columns: Arc<Columns>,
    reader: csv::Reader<Box<dyn Read + Send>>,
    record: csv::ByteRecord,
    lines: Arc<Mutex<LineIndex>>,
    delimiter: u8,
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

/// A CSV reader past its header, its line index, and the header's normalised names.
/// A list file opened past its header: the reader, its line index, the names and the delimiter.
type Header = (
    csv::Reader<Box<dyn Read + Send>>,
    Arc<Mutex<LineIndex>>,
    Vec<Box<str>>,
    u8,
);

impl CsvFile {
    /// Opens a plain file, its layout recognised from its header.
    pub fn open(path: &Path) -> Result<CsvFile> {
        CsvFile::open_part(&Part::file(path), None, None)
    }

    /// Opens one CSV (a file, or one unpacked from a ZIP) as `forced`, else as its header says;
    /// `known` is the header read on an earlier pass (spares listmonk's scan of attributes).
    pub fn open_part(part: &Part, forced: Option<Format>, known: Option<&Arc<Columns>>) -> Result<CsvFile> {
        let path = part.shown.as_path();
        let (reader, lines, names, delimiter) = CsvFile::read_header(part)?;
        if let Some(columns) = known {
            return Ok(CsvFile {
                columns: Arc::clone(columns),
                reader,
                record: csv::ByteRecord::new(),
                lines,
                delimiter,
            });
        }
        let mut names = names;
        let layout =
            export::detect(&names, &part.name, forced).map_err(|e| anyhow::anyhow!("{}:1: {e}", path.display()))?;
        for (from, to) in layout.renames {
            if !names.iter().any(|n| &**n == *to)
                && let Some(n) = names.iter_mut().find(|n| &***n == *from)
            {
                *n = (*to).into();
            }
        }
        let email = if layout.email.is_empty() {
            names.iter().position(|n| EMAIL_COLUMNS.contains(&&**n))
        } else {
            names.iter().position(|n| &**n == layout.email)
        };
        let Some(email) = email else {
            bail!(
                "{}:1: no address column (found: {}): name the column `email`, or pass --format if this is an export bulletin reads (mailchimp, listmonk, google, outlook)",
                path.display(),
                names.join(", ")
            );
        };
        let raw = names.len();
        if layout.status.is_some() {
            names.push("status".into());
        }
        let mut columns = Columns {
            path: path.to_owned(),
            names,
            email,
            format: layout.format,
            raw,
            status: layout.status,
            attributes: None,
        };
        if let Some(at) = layout.attributes {
            let scan = CsvFile {
                columns: Arc::new(Columns {
                    names: columns.names.clone(),
                    path: columns.path.clone(),
                    ..columns
                }),
                reader,
                record: csv::ByteRecord::new(),
                lines,
                delimiter,
            };
            let cells = scan.map(|row| row.map(|(line, values, _)| (line, values[at].to_string())));
            let keys = export::attribute_keys(cells, path, &columns.names)?;
            columns.names.extend(keys.into_iter().map(Into::into));
            columns.attributes = Some(at);
            let (reader, lines, _, delimiter) = CsvFile::read_header(part)?;
            return Ok(CsvFile {
                columns: Arc::new(columns),
                reader,
                record: csv::ByteRecord::new(),
                lines,
                delimiter,
            });
        }
        Ok(CsvFile {
            columns: Arc::new(columns),
            reader,
            record: csv::ByteRecord::new(),
            lines,
            delimiter,
        })
    }

    /// Opens the CSV and reads its header, normalised.
    fn read_header(part: &Part) -> Result<Header> {
        let path = part.shown.as_path();
        let file = File::open(&part.read).with_context(|| format!("cannot open list {}", path.display()))?;
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
        if header.is_empty() || header.iter().all(<[u8]>::is_empty) {
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
        Ok((reader, lines, names, delimiter))
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
            let width = self.columns.raw;
            if self.record.len() != width {
                return Some(Err(anyhow::anyhow!(
                    "{}:{line}: {}",
                    path.display(),
                    width_hint(self.record.len(), &self.columns.names, self.delimiter)
                )));
            }
            let mut values = Vec::with_capacity(self.columns.names.len());
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
            if let Err(e) = self.add_columns(&mut values) {
                return Some(Err(anyhow::anyhow!("{}:{line}: {e}", path.display())));
            }
            return Some(Ok((line, values, Arc::clone(&self.columns))));
        }
    }
}

impl CsvFile {
    /// The values of the columns the layout adds: the file's status, listmonk's attributes.
    fn add_columns(&self, values: &mut Vec<Box<str>>) -> Result<(), String> {
        let c = &self.columns;
        if let Some(status) = c.status {
            values.push(status.into());
        }
        if let Some(at) = c.attributes {
            let first = values.len();
            values.resize(c.names.len(), "".into());
            for (k, v) in export::attributes(&values[at])? {
                let k = normalise_column(&k);
                if let Some(i) = c.names[first..].iter().position(|n| **n == k) {
                    values[first + i] = v.into();
                }
            }
        }
        Ok(())
    }
}

/// Why a row has the wrong number of fields, in the words that fit: too few is a missing
/// value (name the columns it lacks), too many is a value holding the delimiter unquoted.
fn width_hint(got: usize, names: &[Box<str>], delimiter: u8) -> String {
    let width = names.len();
    let sep = match delimiter {
        b'\t' => "a tab".to_owned(),
        d => format!("`{}`", d as char),
    };
    if got < width {
        let missing = names[got..]
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "this row has {got} field{} but the header has {width}: it has no value for {missing}; \
             leave a value empty with nothing between two separators ({sep}), don't leave it out",
            if got == 1 { "" } else { "s" }
        )
    } else {
        format!(
            "this row has {got} fields but the header has {width}: a value containing {sep} must be in double quotes"
        )
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
