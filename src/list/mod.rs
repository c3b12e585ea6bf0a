//! Subscriber lists: read CSV files as Excel and friends write them, normalise the header,
//! validate and deduplicate addresses, skip unsubscribed and suppressed members.
//!
//! Problems with single rows (a bad address, a duplicate, a suppressed member) are findings:
//! the row is skipped and reported with its line. Problems that make the file untrustworthy
//! (no header, no address column, not UTF-8, a row whose fields don't line up) are errors.
//!
//! `file` reads one CSV file, `sources` streams the members of all lists, `suppression` reads
//! and extends the files of addresses never to mail.

pub mod export;
mod file;
mod rows;
mod sources;
mod suppression;

use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::email::Email;

pub use export::Format;
pub use file::{CsvFile, normalise_column};
pub use rows::{Row, Undone, read_rows, read_undone, undo_log};
pub use sources::{Filter, Found, Item, Lists, Pick, Sources, Stream};
pub use suppression::{
    Appended, Known, Reason, Suppression, append_dated, append_entries, append_entries_with, append_suppression,
    read_suppression, remove_unsubscribe, remove_unsubscribe_noting,
};

/// One list file's header.
#[derive(Debug)]
pub struct Columns {
    pub path: PathBuf,
    /// Normalised column names, in file order, then the columns the layout adds (a `status`
    /// the file gives, listmonk's attribute keys).
    pub names: Vec<Box<str>>,
    pub email: usize,
    /// The layout the file was read as.
    pub format: export::Format,
    /// How many columns the file itself has (the rest of `names` are added).
    pub raw: usize,
    /// The status every row has, added as the `status` column.
    pub status: Option<&'static str>,
    /// listmonk's `attributes` column, whose keys are the added columns after `status`.
    pub attributes: Option<usize>,
}

impl Columns {
    /// A plain CSV's header: these columns and no others.
    pub fn plain(path: PathBuf, names: Vec<Box<str>>, email: usize) -> Columns {
        Columns {
            path,
            raw: names.len(),
            names,
            email,
            format: export::Format::Csv,
            status: None,
            attributes: None,
        }
    }
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

    /// A multi-valued field (`tags`) as its items: comma-separated (`a, b`) or Mailchimp's
    /// quoted form (`"a","b"`). Empty when the column is absent or blank.
    pub fn items(&self, name: &str) -> Vec<String> {
        self.field(name).map(split_items).unwrap_or_default()
    }

    /// The member's language tag (`lang` or `language` column), lower-case, `_` as `-`.
    pub fn language(&self) -> Option<String> {
        self.field("lang")
            .or_else(|| self.field("language"))
            .map(|t| t.to_lowercase().replace('_', "-"))
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

/// Columns that hold several values, read as lists in templates and `--where`.
pub const MULTI_VALUED: [&str; 1] = ["tags"];

/// Splits a multi-valued cell: commas outside double quotes separate items, which are trimmed
/// and unquoted (`"a","b"` and `a, b` both give `a`, `b`); empty items are dropped.
pub fn split_items(cell: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in cell.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => items.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    items.push(current);
    items
        .into_iter()
        .map(|i| i.trim().to_owned())
        .filter(|i| !i.is_empty())
        .collect()
}

/// Why a row was left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    Invalid {
        value: String,
        reason: &'static str,
    },
    Duplicate {
        first: String,
    },
    Status(String),
    Suppressed {
        by: PathBuf,
    },
    /// On a list given with `--exclude` (or the front matter's `audience.exclude`).
    Excluded {
        by: PathBuf,
    },
    /// Outside the segment: the `--where` expression is false for this member.
    Outside,
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
            Skip::Excluded { by } => write!(f, "address is on the excluded list {}; row skipped", by.display()),
            Skip::Outside => write!(f, "outside the segment (--where); row skipped"),
        }
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

#[cfg(test)]
mod tests {
    use super::split_items;

    #[test]
    fn tags_split_on_commas_or_mailchimp_quotes() {
        assert_eq!(split_items("volunteer, donor"), ["volunteer", "donor"]);
        assert_eq!(
            split_items("\"volunteer\",\"board, east\""),
            ["volunteer", "board, east"]
        );
        assert_eq!(split_items(" , "), Vec::<String>::new());
        assert_eq!(split_items("solo"), ["solo"]);
    }
}
