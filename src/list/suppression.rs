//! Suppression files: addresses never to mail, whatever the lists say, read for every send.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::{Context, Result};

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
