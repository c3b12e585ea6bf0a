//! Where mailbox messages come from: a Maildir, an mbox file, or IMAP ([`super::imap`]). Each
//! source hands out one message at a time (memory stays flat in the mailbox size), says where
//! it was (a stable location, part of what the journal remembers), and refuses to read a
//! message over [`MAX_MESSAGE`] into memory.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// Messages larger than this are reported and skipped: no bounce or complaint is this big.
pub(crate) const MAX_MESSAGE: u64 = 10 * 1024 * 1024;

/// What a source found.
pub(crate) enum Body {
    Message(Vec<u8>),
    /// Over [`MAX_MESSAGE`]: its size.
    TooBig(u64),
    /// Could not be read: why.
    Unreadable(String),
}

/// One message and where it is.
pub(crate) struct Item {
    /// Stable for the same message in the same mailbox (Maildir unique name, mbox content
    /// hash, IMAP UIDVALIDITY and UID).
    pub location: String,
    pub body: Body,
}

/// A mailbox.
pub(crate) trait Source {
    /// The next message; `Ok(None)` at the end. An error (a dropped connection) ends the run:
    /// what was processed is recorded, the rest waits for the next run.
    fn next_item(&mut self) -> Result<Option<Item>>;
    /// Marks a processed message (IMAP: `\Seen`, or moved with `--move-to`). Files are left
    /// as they are.
    fn finish(&mut self, _location: &str) -> Result<()> {
        Ok(())
    }
    /// Called once after the last message (IMAP: log out).
    fn close(&mut self) -> Result<()> {
        Ok(())
    }
    fn describe(&self) -> String;
}

/// A Maildir: the messages in `new/` and `cur/`, read as the directory lists them.
pub(crate) struct Maildir {
    root: PathBuf,
    dirs: Vec<PathBuf>,
    entries: Option<std::fs::ReadDir>,
}

impl Maildir {
    pub(crate) fn open(root: &Path) -> Result<Maildir> {
        let dirs: Vec<PathBuf> = ["new", "cur"]
            .iter()
            .map(|d| root.join(d))
            .filter(|d| d.is_dir())
            .collect();
        if dirs.is_empty() {
            anyhow::bail!("{} is not a Maildir: it has neither new/ nor cur/", root.display());
        }
        Ok(Maildir {
            root: root.to_owned(),
            dirs: dirs.into_iter().rev().collect(),
            entries: None,
        })
    }
}

impl Source for Maildir {
    fn next_item(&mut self) -> Result<Option<Item>> {
        loop {
            if self.entries.is_none() {
                let Some(dir) = self.dirs.pop() else { return Ok(None) };
                self.entries = Some(std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?);
            }
            let Some(entry) = self.entries.as_mut().and_then(Iterator::next) else {
                self.entries = None;
                continue;
            };
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            // The unique part, before the `:2,FLAGS` a mail client may change.
            let unique = name.split(':').next().unwrap_or(&name);
            let location = format!("maildir:{unique}");
            let path = entry.path();
            let body = match entry.metadata() {
                Ok(m) if !m.is_file() => continue,
                Ok(m) if m.len() > MAX_MESSAGE => Body::TooBig(m.len()),
                Ok(_) => match std::fs::read(&path) {
                    Ok(bytes) => Body::Message(bytes),
                    Err(e) => Body::Unreadable(format!("{}: {e}", path.display())),
                },
                Err(e) => Body::Unreadable(format!("{}: {e}", path.display())),
            };
            return Ok(Some(Item { location, body }));
        }
    }

    fn describe(&self) -> String {
        format!("Maildir {}", self.root.display())
    }
}

/// An mbox file (`From ` lines separate messages; `>From ` quoting undone), read a line at
/// a time.
pub(crate) struct Mbox {
    path: PathBuf,
    reader: BufReader<File>,
    /// The `From ` line that starts the next message, once read.
    pending_start: bool,
    done: bool,
}

impl Mbox {
    pub(crate) fn open(path: &Path) -> Result<Mbox> {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        Ok(Mbox {
            path: path.to_owned(),
            reader: BufReader::with_capacity(256 * 1024, file),
            pending_start: false,
            done: false,
        })
    }
}

impl Source for Mbox {
    fn next_item(&mut self) -> Result<Option<Item>> {
        if self.done {
            return Ok(None);
        }
        let mut message = Vec::new();
        let mut size = 0u64;
        let mut line = Vec::new();
        let mut started = self.pending_start;
        loop {
            line.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut line)
                .with_context(|| format!("cannot read {}", self.path.display()))?;
            if n == 0 {
                self.done = true;
                break;
            }
            if line.starts_with(b"From ") {
                if started {
                    self.pending_start = true;
                    break;
                }
                started = true;
                continue;
            }
            if !started {
                continue;
            }
            size += n as u64;
            if size <= MAX_MESSAGE {
                // mboxrd: one `>` less on every `>…From ` line.
                let unquoted =
                    if line.starts_with(b">") && line.iter().skip_while(|&&b| b == b'>').take(5).eq(b"From ".iter()) {
                        &line[1..]
                    } else {
                        &line[..]
                    };
                message.extend_from_slice(unquoted);
            }
        }
        if !started {
            return Ok(None);
        }
        // The blank line mbox puts before the next `From `.
        if message.ends_with(b"\n\n") {
            message.pop();
        }
        let location = format!("mbox:{}", hex(&Sha256::digest(&message)[..16]));
        let body = if size > MAX_MESSAGE {
            Body::TooBig(size)
        } else {
            Body::Message(message)
        };
        Ok(Some(Item { location, body }))
    }

    fn describe(&self) -> String {
        format!("mbox {}", self.path.display())
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(s: &mut dyn Source) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(item) = s.next_item().unwrap() {
            match item.body {
                Body::Message(m) => out.push((item.location, m)),
                Body::TooBig(n) => out.push((item.location, format!("too big {n}").into_bytes())),
                Body::Unreadable(e) => panic!("{e}"),
            }
        }
        out
    }

    #[test]
    fn an_mbox_yields_each_message_unquoted_and_one_too_big_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("box");
        let big = "x".repeat(MAX_MESSAGE as usize + 10);
        std::fs::write(
            &path,
            format!(
                "From a@x Tue Dec  1 10:00:00 2026\nSubject: one\n\n>From the start\n\n\
                 From b@x Tue Dec  1 10:00:01 2026\nSubject: two\n\nbody\n\n\
                 From c@x Tue Dec  1 10:00:02 2026\nSubject: big\n\n{big}\n"
            ),
        )
        .unwrap();
        let got = all(&mut Mbox::open(&path).unwrap());
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].1, b"Subject: one\n\nFrom the start\n");
        assert_eq!(got[1].1, b"Subject: two\n\nbody\n");
        assert!(String::from_utf8_lossy(&got[2].1).starts_with("too big"));
        assert_ne!(got[0].0, got[1].0);
        // The same mbox read again gives the same locations.
        let again = all(&mut Mbox::open(&path).unwrap());
        assert_eq!(again[0].0, got[0].0);
    }

    #[test]
    fn a_maildir_yields_new_and_cur_by_their_unique_names() {
        let dir = tempfile::tempdir().unwrap();
        for d in ["new", "cur", "tmp"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        std::fs::write(dir.path().join("new/1.a.host"), "Subject: a\n\n").unwrap();
        std::fs::write(dir.path().join("cur/2.b.host:2,S"), "Subject: b\n\n").unwrap();
        std::fs::write(dir.path().join("tmp/3.c.host"), "Subject: c\n\n").unwrap();
        let mut got: Vec<String> = all(&mut Maildir::open(dir.path()).unwrap())
            .into_iter()
            .map(|g| g.0)
            .collect();
        got.sort();
        assert_eq!(got, ["maildir:1.a.host", "maildir:2.b.host"]);
        assert!(Maildir::open(&dir.path().join("new")).is_err());
    }
}
