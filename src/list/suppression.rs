//! Suppression files: addresses never to mail, whatever the lists say — read for every send,
//! and extended by `bulletin suppress` and `report --suppress-failed`.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
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

/// Appends the addresses not yet in the main suppression file (the first of `files`, as
/// `suppress` lists them in bulletin.toml), creating it if need be; returns how many it added
/// and the file.
pub fn append_suppression(files: &[PathBuf], emails: &[Email]) -> Result<(usize, PathBuf)> {
    let Some(file) = files.first().cloned() else {
        bail!("no suppression file: add `suppress = [\"lists/unsubscribed.csv\"]` to bulletin.toml");
    };
    let mut present: HashSet<String> = HashSet::new();
    if file.exists() {
        present.extend(read_suppression(&file)?);
    } else {
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&file, "email\n").with_context(|| format!("cannot create {}", file.display()))?;
    }
    let text = std::fs::read(&file)?;
    let mut out = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .with_context(|| format!("cannot write {}", file.display()))?;
    if !text.is_empty() && !text.ends_with(b"\n") {
        out.write_all(b"\n")?;
    }
    let mut added = 0;
    for e in emails {
        if present.insert(e.key().to_owned()) {
            writeln!(out, "{}", e.key())?;
            added += 1;
        }
    }
    Ok((added, file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_adds_only_new_addresses_on_a_line_of_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("unsubscribed.csv");
        std::fs::write(&file, "email\nold@example.org").unwrap();
        let emails: Vec<Email> = ["OLD@example.org", "new@example.org", "new@example.org"]
            .iter()
            .map(|a| Email::parse(a).unwrap())
            .collect();
        let (added, written) = append_suppression(std::slice::from_ref(&file), &emails).unwrap();
        assert_eq!((added, written), (1, file.clone()));
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "email\nold@example.org\nnew@example.org\n"
        );
        assert!(append_suppression(&[], &emails).is_err());
    }
}
