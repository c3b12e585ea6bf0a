//! Where bulletin keeps its own files, named once: everything lives under `.bulletin/` in the
//! project folder (the journal, dry runs, previews).

use std::path::PathBuf;

/// The folder of bulletin's own files.
pub(crate) const STATE_DIR: &str = ".bulletin";
/// Where the journal lives unless told otherwise.
pub(crate) const DEFAULT_JOURNAL: &str = ".bulletin/journal.db";
/// Where `preview` writes unless told otherwise.
pub(crate) const PREVIEW_DIR: &str = ".bulletin/preview";

/// Where `send --dry-run` writes a campaign's messages unless told otherwise.
pub(crate) fn dry_run_dir(campaign: &str) -> PathBuf {
    PathBuf::from(STATE_DIR).join("dry-run").join(campaign)
}

/// The journal of shard `index` of `count`, when no journal is named.
pub(crate) fn shard_journal(index: u32, count: u32) -> PathBuf {
    PathBuf::from(STATE_DIR).join(format!("journal-shard-{index}-of-{count}.db"))
}

/// Whether a file name in [`STATE_DIR`] is a shard's journal.
pub(crate) fn is_shard_journal(file_name: &str) -> bool {
    file_name.starts_with("journal-shard-") && file_name.ends_with(".db")
}
