//! `bulletin init`: a new project with a working example, so `check` and `preview` pass
//! before the user has changed anything, and compliant from the start (see
//! [`crate::init::compliant`]).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::init::compliant::{ED25519_SELECTOR, RSA_SELECTOR, SECRET_FILE, compliant, secure};

/// The repository's own example files, so the scaffold never drifts from what is tested.
const FILES: [(&str, &str); 5] = [
    ("bulletin.toml", include_str!("../../bulletin.toml")),
    (
        "newsletters/2026-12-first-hundred-days.md",
        include_str!("../../newsletters/2026-12-first-hundred-days.md"),
    ),
    ("lists/test.csv", include_str!("../../lists/test.csv")),
    ("lists/members.csv", include_str!("../../lists/members.csv")),
    ("lists/unsubscribed.csv", include_str!("../../lists/unsubscribed.csv")),
];

pub(crate) fn run(dir: &Path) -> Result<ExitCode> {
    let generated = [
        format!("keys/{RSA_SELECTOR}.example.org.pem"),
        format!("keys/{ED25519_SELECTOR}.example.org.pem"),
        SECRET_FILE.to_owned(),
    ];
    let existing: Vec<String> = FILES
        .iter()
        .map(|(f, _)| dir.join(f))
        .chain(generated.iter().map(|f| dir.join(f)))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !existing.is_empty() {
        bail!(
            "{} already exist{}: init never overwrites; choose an empty directory",
            existing.join(", "),
            if existing.len() == 1 { "s" } else { "" }
        );
    }
    let domain = "example.org";
    for (name, text) in FILES {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", parent.display()))?;
        }
        let text = if name == "bulletin.toml" {
            compliant(text, domain)?
        } else {
            text.to_owned()
        };
        std::fs::write(&path, text).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        println!("created {}", path.display());
    }
    secure(dir, domain)?;
    Ok(ExitCode::SUCCESS)
}
