//! Where bulletin keeps its own files, named once: everything lives under `.bulletin/` in the
//! project folder (the journal, dry runs, previews).

use std::path::PathBuf;

/// The folder of bulletin's own files.
pub(crate) const STATE_DIR: &str = ".bulletin";
/// Where the journal lives unless told otherwise.
pub(crate) const DEFAULT_JOURNAL: &str = ".bulletin/journal.db";
/// Where `archive` writes the static site unless told otherwise.
pub(crate) const ARCHIVE_DIR: &str = "public";
/// Where `serve` listens unless told otherwise: loopback, behind a reverse proxy.
pub(crate) const SERVE_LISTEN: &str = "127.0.0.1:8080";
/// The unsubscribe secret `init` generates (mode 0600, git-ignored).
pub(crate) const UNSUBSCRIBE_SECRET: &str = ".bulletin/unsubscribe.secret";
/// Where `preview` writes unless told otherwise.
pub(crate) const PREVIEW_DIR: &str = ".bulletin/preview";

/// Where `send --dry-run` writes a campaign's messages unless told otherwise.
pub(crate) fn dry_run_dir(campaign: &str) -> PathBuf {
    PathBuf::from(STATE_DIR).join("dry-run").join(campaign)
}

/// The folder of a campaign's page in the archive (`public/<slug>/index.html`): the campaign
/// id with anything but letters, digits, `-`, `_` and `.` replaced by `-`, and no leading dot.
pub(crate) fn archive_slug(campaign: &str) -> String {
    let slug: String = campaign
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let slug = slug.trim_start_matches('.');
    if slug.is_empty() {
        "issue".to_owned()
    } else {
        slug.to_owned()
    }
}

/// The journal of shard `index` of `count`, when no journal is named.
pub(crate) fn shard_journal(index: u32, count: u32) -> PathBuf {
    PathBuf::from(STATE_DIR).join(format!("journal-shard-{index}-of-{count}.db"))
}

/// Whether a file name in [`STATE_DIR`] is a shard's journal.
pub(crate) fn is_shard_journal(file_name: &str) -> bool {
    file_name.starts_with("journal-shard-") && file_name.ends_with(".db")
}

/// The shards' journals in [`STATE_DIR`], sorted (none when it does not exist).
pub(crate) fn shard_journals() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(STATE_DIR) else {
        return Vec::new();
    };
    let mut shards: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(is_shard_journal))
        .collect();
    shards.sort();
    shards
}
