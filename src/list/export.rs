//! Lists as other tools export them, read as they are: Mailchimp (the audience ZIP, or its
//! `subscribed_`, `unsubscribed_`, `cleaned_` CSVs), listmonk, Google Contacts, Outlook.
//! The layout is recognised from the header (or forced with `--format`); what it means —
//! a status the file itself gives, fields inside a JSON column — becomes ordinary columns,
//! so everything downstream sees one kind of list.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// A list file's layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A plain CSV with an `email` column
    Csv,
    /// A Mailchimp audience export (ZIP or its CSVs)
    Mailchimp,
    /// A listmonk subscriber export (`status`, `attributes` JSON)
    Listmonk,
    /// A Google Contacts export (`E-mail 1 - Value`)
    Google,
    /// An Outlook contacts export (`E-mail Address`)
    Outlook,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Mailchimp => "mailchimp",
            Format::Listmonk => "listmonk",
            Format::Google => "google",
            Format::Outlook => "outlook",
        }
    }
}

/// What a layout adds to the plain reading of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub format: Format,
    /// The address column's normalised name.
    pub email: &'static str,
    /// A status every row of the file has (Mailchimp's unsubscribed and cleaned exports),
    /// added as a `status` column.
    pub status: Option<&'static str>,
    /// listmonk: the index of the `attributes` column, whose JSON keys become columns.
    pub attributes: Option<usize>,
    /// Columns renamed to the names templates expect (`given_name` → `first_name`).
    pub renames: &'static [(&'static str, &'static str)],
}

const GOOGLE_RENAMES: &[(&str, &str)] = &[("given_name", "first_name"), ("family_name", "last_name")];

/// Recognises the layout from the normalised header and the file's name (Mailchimp names the
/// CSVs in its ZIP after the members' status), or applies `forced`.
pub fn detect(names: &[Box<str>], file_name: &str, forced: Option<Format>) -> Result<Layout, String> {
    let has = |n: &str| names.iter().any(|x| &**x == n);
    let mailchimp = has("email_address")
        && [
            "member_rating",
            "optin_time",
            "leid",
            "euid",
            "unsub_time",
            "clean_time",
        ]
        .iter()
        .any(|c| has(c));
    let listmonk = has("email") && has("attributes") && has("status") && has("uuid");
    let format = match forced {
        Some(f) => f,
        None if mailchimp => Format::Mailchimp,
        None if listmonk => Format::Listmonk,
        None if has("e_mail_1_value") => Format::Google,
        None if has("e_mail_address") => Format::Outlook,
        None => Format::Csv,
    };
    let need = |col: &'static str| {
        if has(col) {
            Ok(col)
        } else {
            Err(format!(
                "--format {} needs a `{col}` column, and this file has none (found: {})",
                format.name(),
                names.join(", ")
            ))
        }
    };
    let plain = |email| Layout {
        format,
        email,
        status: None,
        attributes: None,
        renames: &[],
    };
    Ok(match format {
        Format::Csv => plain(""),
        Format::Mailchimp => {
            let lower = file_name.to_lowercase();
            let status = if has("unsub_time") || lower.starts_with("unsubscribed_") {
                Some("unsubscribed")
            } else if has("clean_time") || lower.starts_with("cleaned_") {
                Some("cleaned")
            } else if lower.starts_with("nonsubscribed_") {
                Some("nonsubscribed")
            } else {
                None
            };
            Layout {
                status: status.filter(|_| !has("status")),
                ..plain(need("email_address")?)
            }
        }
        Format::Listmonk => {
            need("status")?;
            let attributes = names.iter().position(|n| &**n == "attributes");
            Layout {
                attributes: Some(attributes.ok_or_else(|| need("attributes").unwrap_err())?),
                ..plain(need("email")?)
            }
        }
        Format::Google => Layout {
            renames: GOOGLE_RENAMES,
            ..plain(need("e_mail_1_value")?)
        },
        Format::Outlook => plain(need("e_mail_address")?),
    })
}

/// A listmonk `attributes` cell as `(key, value)` pairs: the top-level keys of a JSON object,
/// values as text (lists as `"a","b"`, so a `tags` attribute is a list too).
pub fn attributes(cell: &str) -> Result<Vec<(String, String)>, String> {
    let cell = cell.trim();
    if cell.is_empty() {
        return Ok(Vec::new());
    }
    let value: serde_json::Value =
        serde_json::from_str(cell).map_err(|e| format!("the `attributes` column is not valid JSON ({e})"))?;
    let serde_json::Value::Object(map) = value else {
        return Err("the `attributes` column must be a JSON object such as {\"city\": \"Salinas\"}".into());
    };
    Ok(map.into_iter().map(|(k, v)| (k, text(&v))).collect())
}

fn text(v: &serde_json::Value) -> String {
    use serde_json::Value as J;
    match v {
        J::Null => String::new(),
        J::String(s) => s.clone(),
        J::Array(items) => items
            .iter()
            .map(|i| format!("\"{}\"", text(i).replace('"', "'")))
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

/// The attribute keys of a listmonk file, normalised, in order of first appearance sorted —
/// found by reading the `attributes` column of every row once; a cell that is not a JSON
/// object is an error naming its line.
pub fn attribute_keys(
    rows: impl Iterator<Item = Result<(u64, String)>>,
    path: &Path,
    taken: &[Box<str>],
) -> Result<Vec<String>> {
    let mut keys = BTreeSet::new();
    for row in rows {
        let (line, cell) = row?;
        let pairs = attributes(&cell).map_err(|e| anyhow::anyhow!("{}:{line}: {e}", path.display()))?;
        for (k, _) in pairs {
            let k = super::normalise_column(&k);
            if !k.is_empty() && !taken.iter().any(|t| **t == k) {
                keys.insert(k);
            }
        }
    }
    Ok(keys.into_iter().collect())
}

/// Largest CSV we unpack from a ZIP, and the most it may expand: beyond either it is not an
/// audience export but a mistake or a zip bomb.
const MAX_ENTRY_BYTES: u64 = 2 << 30;
const MAX_RATIO: u64 = 200;

/// One CSV to read: where to show it as, and where its bytes are.
#[derive(Debug, Clone)]
pub struct Part {
    /// `lists/members.csv`, or `export.zip/subscribed_members.csv` for a ZIP's CSV.
    pub shown: PathBuf,
    pub read: PathBuf,
    /// The file's own name, which for Mailchimp tells the members' status.
    pub name: String,
}

impl Part {
    /// A CSV file read where it is.
    pub fn file(path: &Path) -> Part {
        Part {
            shown: path.to_owned(),
            read: path.to_owned(),
            name: path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        }
    }
}

/// Whether `path` is a ZIP archive (by its first bytes, whatever its name).
pub fn is_zip(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| &magic == b"PK\x03\x04")
}

/// Unpacks the CSVs of the ZIP at `path` into `dir`, members who must not be mailed first
/// (so an address in both the unsubscribed and the subscribed file is never mailed).
pub fn unpack(path: &Path, dir: &Path) -> Result<Vec<Part>> {
    let shown = path.display();
    let file = File::open(path).with_context(|| format!("cannot open list {shown}"))?;
    let mut archive =
        zip::ZipArchive::new(file).map_err(|e| anyhow::anyhow!("{shown}: not a readable ZIP archive ({e})"))?;
    let mut parts = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| anyhow::anyhow!("{shown}: entry {} is damaged ({e})", i + 1))?;
        let name = entry.name().to_owned();
        let base = name.rsplit('/').next().unwrap_or(&name).to_owned();
        if entry.is_dir() || !base.to_lowercase().ends_with(".csv") || base.starts_with('.') {
            continue;
        }
        let size = entry.size();
        let packed = entry.compressed_size().max(1);
        if size > MAX_ENTRY_BYTES || size / packed > MAX_RATIO {
            bail!(
                "{shown}: {name} would unpack to {size} bytes from {packed}: too large for a list (at most {} MB, {MAX_RATIO}× compression); unpack it yourself and pass the CSV",
                MAX_ENTRY_BYTES >> 20
            );
        }
        let target = dir.join(format!("{i}-{}", sanitise(&base)));
        let mut out = File::create(&target).with_context(|| format!("cannot unpack {name} from {shown}"))?;
        let copied = std::io::copy(&mut (&mut entry).take(size + 1), &mut out)
            .map_err(|e| anyhow::anyhow!("{shown}: {name} is damaged ({e})"))?;
        if copied > size {
            bail!("{shown}: {name} is larger than the archive says: the ZIP is damaged");
        }
        out.flush()?;
        parts.push(Part {
            shown: path.join(&base),
            read: target,
            name: base,
        });
    }
    if parts.is_empty() {
        bail!("{shown}: the ZIP holds no .csv file; is it a Mailchimp audience export?");
    }
    let mailed_last = |p: &Part| p.name.to_lowercase().starts_with("subscribed_");
    parts.sort_by_key(|p| mailed_last(p));
    Ok(parts)
}

fn sanitise(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(header: &str) -> Vec<Box<str>> {
        header
            .split(',')
            .map(|h| super::super::normalise_column(h).into())
            .collect()
    }

    #[test]
    fn recognises_each_layout_from_its_header() {
        let mc = "Email Address,First Name,Last Name,MEMBER_RATING,OPTIN_TIME,LEID,TAGS";
        let l = detect(&names(mc), "members.csv", None).unwrap();
        assert_eq!(
            (l.format, l.email, l.status),
            (Format::Mailchimp, "email_address", None)
        );
        let l = detect(&names(mc), "unsubscribed_members_export_1.csv", None).unwrap();
        assert_eq!(l.status, Some("unsubscribed"));
        let l = detect(&names(&format!("{mc},UNSUB_TIME")), "anything.csv", None).unwrap();
        assert_eq!(l.status, Some("unsubscribed"));
        let l = detect(&names(&format!("{mc},CLEAN_TIME")), "x.csv", None).unwrap();
        assert_eq!(l.status, Some("cleaned"));
        let lm = "uuid,email,name,attributes,status,created_at,updated_at";
        let l = detect(&names(lm), "x.csv", None).unwrap();
        assert_eq!((l.format, l.attributes), (Format::Listmonk, Some(3)));
        let g = "Name,Given Name,Family Name,E-mail 1 - Type,E-mail 1 - Value";
        assert_eq!(detect(&names(g), "c.csv", None).unwrap().email, "e_mail_1_value");
        let o = "First Name,Last Name,E-mail Address,E-mail Display Name";
        assert_eq!(detect(&names(o), "c.csv", None).unwrap().format, Format::Outlook);
        assert_eq!(
            detect(&names("email,first_name"), "m.csv", None).unwrap().format,
            Format::Csv
        );
        let err = detect(&names("email,first_name"), "m.csv", Some(Format::Listmonk)).unwrap_err();
        assert!(err.contains("--format listmonk needs a `status` column"), "{err}");
    }

    #[test]
    fn listmonk_attributes_are_top_level_keys_and_bad_json_is_an_error() {
        let got = attributes(r#"{"city": "Salinas", "tags": ["a", "b"], "age": 40, "x": null}"#).unwrap();
        assert_eq!(
            got,
            [
                ("age".to_owned(), "40".to_owned()),
                ("city".into(), "Salinas".into()),
                ("tags".into(), "\"a\",\"b\"".into()),
                ("x".into(), String::new())
            ]
        );
        assert!(attributes("{\"city\": ").unwrap_err().contains("not valid JSON"));
        assert!(attributes("[1]").unwrap_err().contains("JSON object"));
        assert_eq!(attributes("").unwrap(), []);
    }
}
