//! The live preview's file watcher: notify's, debounced (notify-debouncer-mini), seeing only
//! changes — not the reads every render makes (inotify reports opening a file, and a render
//! that announced its own reads would reload the page for ever).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use notify_debouncer_mini::notify::{
    self, Config, Event, EventHandler, RecommendedWatcher, RecursiveMode, Watcher, WatcherKind,
};
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer_opt};

/// Changes are gathered for this long before a rebuild: an editor's save is several events.
const DEBOUNCE: Duration = Duration::from_millis(120);

/// The platform's watcher, passing on every event but reads (opening, reading, closing a
/// file without writing).
struct ChangesOnly(RecommendedWatcher);

impl Watcher for ChangesOnly {
    fn new<F: EventHandler>(mut handler: F, config: Config) -> notify::Result<Self> {
        let only_changes = move |e: notify::Result<Event>| {
            if !matches!(&e, Ok(event) if event.kind.is_access()) {
                handler.handle_event(e);
            }
        };
        Ok(ChangesOnly(RecommendedWatcher::new(only_changes, config)?))
    }

    fn watch(&mut self, path: &Path, recursive_mode: RecursiveMode) -> notify::Result<()> {
        self.0.watch(path, recursive_mode)
    }

    fn unwatch(&mut self, path: &Path) -> notify::Result<()> {
        self.0.unwatch(path)
    }

    fn kind() -> WatcherKind {
        RecommendedWatcher::kind()
    }
}

/// The watcher and the folders it watches.
pub(super) struct Watching {
    debouncer: Debouncer<ChangesOnly>,
    /// Canonical folders, and whether their subfolders are watched too.
    dirs: Vec<(PathBuf, bool)>,
}

impl Watching {
    /// Calls `changed` with the files after each debounced batch of changes that can alter
    /// the preview.
    pub(super) fn start(changed: impl Fn(Vec<PathBuf>) + Send + 'static) -> Result<Watching> {
        let config = notify_debouncer_mini::Config::default().with_timeout(DEBOUNCE);
        let debouncer = new_debouncer_opt::<_, ChangesOnly>(config, move |res: DebounceEventResult| {
            let Ok(events) = res else { return };
            let paths: Vec<PathBuf> = events.into_iter().map(|e| e.path).filter(|p| relevant(p)).collect();
            if !paths.is_empty() {
                changed(paths);
            }
        })
        .context("cannot watch files for changes")?;
        Ok(Watching {
            debouncer,
            dirs: Vec::new(),
        })
    }

    /// Watches `dir` (with its subfolders when `recursive`) unless that is already done. A
    /// folder that does not exist (yet) is left out.
    pub(super) fn add(&mut self, dir: &Path, recursive: bool) -> Result<()> {
        let Ok(dir) = dir.canonicalize() else { return Ok(()) };
        let covered = self
            .dirs
            .iter()
            .any(|(d, r)| (*d == dir && (*r || !recursive)) || (*r && dir.starts_with(d)));
        if covered {
            return Ok(());
        }
        let mode = if recursive {
            RecursiveMode::Recursive
        } else {
            RecursiveMode::NonRecursive
        };
        self.debouncer
            .watcher()
            .watch(&dir, mode)
            .with_context(|| format!("cannot watch {}", dir.display()))?;
        self.dirs.push((dir, recursive));
        Ok(())
    }
}

/// The folder a file is in (`.` for a bare name).
pub(super) fn folder(p: &Path) -> PathBuf {
    p.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_owned()
}

/// Changes that can alter the preview: not the journal, version control or build output, nor
/// editors' swap files.
fn relevant(path: &Path) -> bool {
    let noise = path.components().any(|c| {
        let c = c.as_os_str().to_string_lossy();
        matches!(c.as_ref(), ".bulletin" | ".git" | "target" | "node_modules")
    });
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let scratch = name.ends_with('~') || name.ends_with(".swp") || name.ends_with(".swx") || name.starts_with(".#");
    !noise && !scratch
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_a_file_is_no_change() {
        let dir = tempfile::tempdir().unwrap();
        let (read, written) = (dir.path().join("read.md"), dir.path().join("written.md"));
        std::fs::write(&read, "x").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let mut w = Watching::start(move |paths| {
            let _ = tx.send(paths);
        })
        .unwrap();
        w.add(dir.path(), false).unwrap();
        // Read one file, then change another: events arrive in order, so once the change is
        // announced, a read would have been too.
        std::fs::read_to_string(&read).unwrap();
        std::fs::write(&written, "y").unwrap();
        let written = written.canonicalize().unwrap();
        let mut seen = Vec::new();
        while !seen.contains(&written) {
            seen.extend(rx.recv().unwrap());
        }
        assert!(!seen.iter().any(|p| p.ends_with("read.md")), "{seen:?}");
    }

    #[test]
    fn journal_git_and_swap_files_are_not_changes() {
        assert!(relevant(Path::new("./newsletters/n.md")));
        assert!(relevant(Path::new("lists/members.csv")));
        assert!(!relevant(Path::new("./.bulletin/journal.db-wal")));
        assert!(!relevant(Path::new("newsletters/.n.md.swp")));
        assert!(!relevant(Path::new("newsletters/n.md~")));
        assert!(!relevant(Path::new("./target/debug/x")));
    }
}
