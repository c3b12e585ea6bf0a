//! Where built messages go when they are not sent: the dry run's outbox, beside SMTP
//! ([`super::Delivery`]). A dry run is one pass over the lists ([`fill`]): every core
//! personalises (which is the preflight, [`Preflight`]), builds and hands finished messages to
//! the outbox — a folder of `.eml` files ([`EmlFolder`]), each written by the thread that built
//! it, or one mbox file ([`Mbox`]), written a batch at a time in list order; both readable by
//! the owner only.
//!
//! Nothing reaches the destination until the whole pass has found no error: an outbox writes
//! under a temporary name beside it and [`Outbox::publish`] renames it into place; an outbox
//! dropped unpublished removes what it wrote. Nothing is synced to disk (no `fsync`): a dry
//! run's files are for reading now, and one lost in a crash is written again by running it
//! again.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use anyhow::{Context, Result, bail};
use lettre::Message;

use crate::list::Recipient;
use crate::message::Letterhead;
use crate::preflight::Preflight;
use crate::private::private_dir;
use crate::render::Compiled;

/// Members a thread takes from the lists at a time: enough that taking them costs little,
/// few enough that a batch of built messages stays around a megabyte.
const BATCH: usize = 64;
/// A batch also ends once its members' own attachments (list column `attachment`) reach this
/// many bytes: when everyone gets a certificate, a batch holds a few messages, not 64.
const BATCH_ATTACHED: u64 = 8 * 1024 * 1024;

/// Takes built messages from several threads at once, a batch of consecutive members at a
/// time.
pub(crate) trait Outbox: Sync {
    /// What a thread holds of its current batch; each thread keeps one and reuses it from
    /// batch to batch (so a run allocates it once, not once a message).
    type Batch: Default;
    /// Takes one member's built message into `batch` (on the building thread). `n` is the
    /// member's place among the run's members, from 1.
    fn add(&self, batch: &mut Self::Batch, n: usize, to: &Recipient, message: &Message) -> Result<()>;
    /// Stores `batch`, the `seq`th of the run (from 0, in list order), and empties it.
    /// Batches may arrive in any order, from any thread.
    fn put(&self, seq: usize, batch: &mut Self::Batch) -> Result<()>;
    /// Stops taking batches: one waiting for its turn returns at once, later ones are dropped.
    fn cancel(&self);
    /// Moves what was stored to its destination, replacing what was there.
    fn publish(self) -> Result<()>;
}

/// What [`fill`] did.
pub(crate) struct Filled {
    /// The preflight's findings, as one pass over every member in list order would have them.
    pub preflight: Preflight,
    /// Messages put in the outbox (all of them when the preflight found no error).
    pub written: usize,
}

/// The one pass of a dry run: `threads` threads take batches of members, personalise each
/// (recording the preflight's findings), build the message and put the batch in `outbox`.
/// After the first member that fails, nothing more is built or stored — the outbox will not be
/// published — but the pass goes on rendering, so the preflight reports every failure. An
/// error reading the lists or storing a batch stops everyone and is returned.
pub(crate) fn fill<O, I>(
    outbox: &O,
    members: &mut I,
    compiled: &Compiled,
    letterhead: &Letterhead,
    threads: usize,
) -> Result<Filled>
where
    O: Outbox,
    I: Iterator<Item = Result<Recipient>> + Send,
{
    let pass = Pass {
        queue: Mutex::new(Queue { members, seq: 0, n: 0 }),
        failed: AtomicBool::new(false),
        halted: AtomicBool::new(false),
        error: Mutex::new(None),
        compiled,
        letterhead,
    };
    let mut filled = Filled {
        preflight: Preflight::default(),
        written: 0,
    };
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.max(1)).map(|_| scope.spawn(|| pass.work(outbox))).collect();
        for w in workers {
            let (preflight, written) = w.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            filled.preflight.merge(preflight);
            filled.written += written;
        }
    });
    match pass
        .error
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        Some(e) => Err(e),
        None => Ok(filled),
    }
}

/// The members still to take, and how many batches and members were taken.
struct Queue<'i, I> {
    members: &'i mut I,
    seq: usize,
    n: usize,
}

/// What [`fill`]'s threads share.
struct Pass<'a, 'i, I> {
    queue: Mutex<Queue<'i, I>>,
    /// A member failed: the outbox will not be published.
    failed: AtomicBool,
    /// An error: everyone stops.
    halted: AtomicBool,
    error: Mutex<Option<anyhow::Error>>,
    compiled: &'a Compiled,
    letterhead: &'a Letterhead,
}

impl<I: Iterator<Item = Result<Recipient>> + Send> Pass<'_, '_, I> {
    /// One thread's share: its own preflight findings and how many messages it stored.
    fn work<O: Outbox>(&self, outbox: &O) -> (Preflight, usize) {
        let _unblock = CancelOnPanic(outbox);
        let mut pre = Preflight::default();
        let mut written = 0;
        let mut batch = O::Batch::default();
        'batches: while !self.halted.load(Ordering::Relaxed) {
            let (seq, first, members) = match self.take() {
                Ok(Some(b)) => b,
                Ok(None) => break,
                Err(e) => {
                    self.halt(e, outbox);
                    break;
                }
            };
            let count = members.len();
            for (i, r) in members.iter().enumerate() {
                if self.failed.load(Ordering::Relaxed) {
                    pre.check(self.compiled, self.letterhead, r);
                    continue;
                }
                // The same checks as `send`'s preflight: attachments over 25 MB fail the run.
                let lh = self.letterhead;
                let built = match pre.render(self.compiled, r) {
                    Some(content) if pre.sized(lh, r, &content) => pre.built(r, lh.build(r, &content, lh.message_id())),
                    _ => None,
                };
                match built {
                    Some(m) => {
                        if let Err(e) = outbox.add(&mut batch, first + i, r, &m) {
                            self.halt(e, outbox);
                            break 'batches;
                        }
                    }
                    None => {
                        self.failed.store(true, Ordering::Relaxed);
                        outbox.cancel();
                    }
                }
            }
            if self.failed.load(Ordering::Relaxed) {
                continue;
            }
            match outbox.put(seq, &mut batch) {
                Ok(()) => written += count,
                Err(e) => self.halt(e, outbox),
            }
        }
        (pre, written)
    }

    /// The next batch of members: its number, the number of its first member, and the members.
    fn take(&self) -> Result<Option<(usize, usize, Vec<Recipient>)>> {
        let mut q = self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut members = Vec::with_capacity(BATCH);
        let mut attached = 0;
        while members.len() < BATCH && attached < BATCH_ATTACHED {
            let Some(r) = q.members.next() else { break };
            let r = r?;
            // 0 when they cannot be read: building the message says why.
            attached += self.letterhead.member_attachments(&r).map_or(0, |(_, bytes)| bytes);
            members.push(r);
        }
        if members.is_empty() {
            return Ok(None);
        }
        let (seq, first) = (q.seq, q.n + 1);
        q.seq += 1;
        q.n += members.len();
        Ok(Some((seq, first, members)))
    }

    fn halt(&self, e: anyhow::Error, outbox: &impl Outbox) {
        self.error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_or_insert(e);
        self.halted.store(true, Ordering::Relaxed);
        outbox.cancel();
    }
}

/// Cancels the outbox if its thread panics, so that no other thread waits for a batch that
/// will never come.
struct CancelOnPanic<'o, O: Outbox>(&'o O);

impl<O: Outbox> Drop for CancelOnPanic<'_, O> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.cancel();
        }
    }
}

/// A folder with one `NNNNNN-address.eml` file per member, written into a hidden folder
/// beside it (or, when the folder exists, inside it) and moved into place by
/// [`Outbox::publish`].
pub(crate) struct EmlFolder {
    dir: PathBuf,
    /// Where the files wait: beside `dir`, to become it, or inside `dir` when it exists.
    staging: PathBuf,
    /// `dir` existed: publishing moves the files into it one by one.
    into_existing: bool,
    /// Folders created to hold `staging`, outermost first; removed if it is never published.
    created: Vec<PathBuf>,
    /// Held while a batch's files are created: one thread at a time.
    creating: Mutex<()>,
    cancelled: AtomicBool,
    published: bool,
}

/// A thread's batch of `.eml` files: their contents one after another, and each file's name
/// and where its content ends.
#[derive(Default)]
pub(crate) struct EmlBatch {
    bytes: Vec<u8>,
    files: Vec<(String, usize)>,
}

impl EmlFolder {
    /// Prepares to write into `dir` (created mode 0700, with its parents, if missing).
    pub(crate) fn create(dir: &Path) -> Result<EmlFolder> {
        let (staging, into_existing, created) = match dir.file_name().filter(|_| !dir.exists()) {
            Some(name) => {
                let parent = dir
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                let created = missing_ancestors(parent);
                private_dir(parent)?;
                (parent.join(staging_name(name)), false, created)
            }
            None => {
                private_dir(dir)?;
                (dir.join(staging_name("dry-run".as_ref())), true, Vec::new())
            }
        };
        let folder = EmlFolder {
            dir: dir.to_owned(),
            staging,
            into_existing,
            created,
            creating: Mutex::new(()),
            cancelled: AtomicBool::new(false),
            published: false,
        };
        create_private_dir(&folder.staging)?;
        Ok(folder)
    }
}

/// Every core builds; one thread at a time creates its batch's files. Creating a file takes
/// its folder's lock in the kernel, so two threads creating files in one folder take turns
/// anyway — and the one waiting spins on the lock, which cost more system time than the
/// files themselves (`perf`: `rwsem_spin_on_owner`). Taking turns here, a batch at a time,
/// the other thread builds meanwhile.
impl Outbox for EmlFolder {
    type Batch = EmlBatch;

    fn add(&self, batch: &mut EmlBatch, n: usize, to: &Recipient, message: &Message) -> Result<()> {
        batch.bytes.extend_from_slice(&message.formatted());
        batch.files.push((eml_name(n, to), batch.bytes.len()));
        Ok(())
    }

    fn put(&self, _: usize, batch: &mut EmlBatch) -> Result<()> {
        let _turn = self.creating.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut start = 0;
        for (name, end) in batch.files.drain(..) {
            if self.cancelled.load(Ordering::Relaxed) {
                break;
            }
            let path = self.staging.join(name);
            write_new_private(&path, &batch.bytes[start..end])
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            start = end;
        }
        batch.bytes.clear();
        Ok(())
    }

    fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    fn publish(mut self) -> Result<()> {
        if self.into_existing {
            move_files(&self.staging, &self.dir)?;
        } else {
            std::fs::rename(&self.staging, &self.dir).map_err(|e| {
                anyhow::anyhow!("cannot move {} to {}: {e}", self.staging.display(), self.dir.display())
            })?;
        }
        self.published = true;
        let _ = std::fs::remove_dir(&self.staging);
        Ok(())
    }
}

impl Drop for EmlFolder {
    fn drop(&mut self) {
        if self.published {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.staging);
        for dir in self.created.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// `NNNNNN-address.eml`, the address kept to characters safe in a file name.
fn eml_name(n: usize, r: &Recipient) -> String {
    let name: String = r
        .email
        .key()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "@.-_+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{n:06}-{name}.eml")
}

/// Moves every file of `from` into `to`, replacing files of the same name.
fn move_files(from: &Path, to: &Path) -> Result<()> {
    let entries = std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", from.display()))?;
        let target = to.join(entry.file_name());
        std::fs::rename(entry.path(), &target)
            .map_err(|e| anyhow::anyhow!("cannot move {} to {}: {e}", entry.path().display(), target.display()))?;
    }
    Ok(())
}

/// One mbox file (mboxrd: each message after a `From sender date` line, every body line
/// that starts with `From `, after any number of `>`, given one more `>`; LF line ends),
/// streamed into a hidden file beside `path`, renamed into place by [`Outbox::publish`].
/// Each thread puts its batch's entries together in one buffer, written with one `write`;
/// batches are written in list order: one that arrives early waits for its turn.
pub(crate) struct Mbox {
    path: PathBuf,
    staging: PathBuf,
    /// `asctime` of the run's start, for every `From ` line.
    date: String,
    state: Mutex<MboxState>,
    turn: Condvar,
    published: bool,
}

struct MboxState {
    out: File,
    /// The batch to write next.
    next: usize,
    cancelled: bool,
}

impl Mbox {
    /// Opens the staging file (mode 0600) for `path`, which is replaced when published.
    pub(crate) fn create(path: &Path) -> Result<Mbox> {
        let Some(name) = path.file_name() else {
            bail!("{} is not a file name", path.display());
        };
        if path.is_dir() {
            bail!("{} is a directory; --mbox needs a file", path.display());
        }
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let staging = path.with_file_name(staging_name(name));
        let cannot = |e: std::io::Error| anyhow::anyhow!("cannot write {}: {e}", path.display());
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&staging)
            .map_err(cannot)?;
        // Exactly 0600, whatever the umask took from the mode `open` gave.
        if let Err(e) = file.set_permissions(std::fs::Permissions::from_mode(0o600)) {
            let _ = std::fs::remove_file(&staging);
            return Err(cannot(e));
        }
        Ok(Mbox {
            path: path.to_owned(),
            staging,
            date: asctime(time::OffsetDateTime::now_utc()),
            state: Mutex::new(MboxState {
                out: file,
                next: 0,
                cancelled: false,
            }),
            turn: Condvar::new(),
            published: false,
        })
    }

    fn state(&self) -> MutexGuard<'_, MboxState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Outbox for Mbox {
    /// The batch's entries, one after another.
    type Batch = Vec<u8>;

    fn add(&self, batch: &mut Vec<u8>, _: usize, _: &Recipient, message: &Message) -> Result<()> {
        let formatted = message.formatted();
        batch.reserve(formatted.len() + formatted.len() / 32 + 64);
        match message.envelope().from() {
            Some(sender) => writeln!(batch, "From {sender} {}", self.date)?,
            None => writeln!(batch, "From MAILER-DAEMON {}", self.date)?,
        }
        mboxrd(&formatted, batch);
        Ok(())
    }

    fn put(&self, seq: usize, batch: &mut Vec<u8>) -> Result<()> {
        let mut state = self.state();
        while !state.cancelled && state.next != seq {
            state = self.turn.wait(state).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        if state.cancelled {
            return Ok(());
        }
        let written = state.out.write_all(batch);
        batch.clear();
        if let Err(e) = written {
            state.cancelled = true;
            self.turn.notify_all();
            bail!("cannot write {}: {e}", self.staging.display());
        }
        state.next += 1;
        self.turn.notify_all();
        Ok(())
    }

    fn cancel(&self) {
        self.state().cancelled = true;
        self.turn.notify_all();
    }

    fn publish(mut self) -> Result<()> {
        std::fs::rename(&self.staging, &self.path)
            .map_err(|e| anyhow::anyhow!("cannot move {} to {}: {e}", self.staging.display(), self.path.display()))?;
        self.published = true;
        Ok(())
    }
}

impl Drop for Mbox {
    fn drop(&mut self) {
        if !self.published {
            let _ = std::fs::remove_file(&self.staging);
        }
    }
}

/// Appends `message` (CRLF line ends) to `out` as an mboxrd entry's body: LF line ends, a `>`
/// before every line matching `^>*From `, a final line end and the blank line that ends the
/// entry.
fn mboxrd(message: &[u8], out: &mut Vec<u8>) {
    let message = message.strip_suffix(b"\r\n").unwrap_or(message);
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', message).chain(std::iter::once(message.len()));
    for end in ends {
        let line = &message[start..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if matches!(line.first(), Some(b'F' | b'>')) {
            let quotes = line.iter().take_while(|&&b| b == b'>').count();
            if line[quotes..].starts_with(b"From ") {
                out.push(b'>');
            }
        }
        out.extend_from_slice(line);
        out.push(b'\n');
        start = end + 1;
    }
    out.push(b'\n');
}

/// C's `asctime` without the newline, as mbox `From ` lines carry it: `Thu Jan  1 00:00:00 1970`.
fn asctime(t: time::OffsetDateTime) -> String {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {} {:>2} {:02}:{:02}:{:02} {}",
        DAYS[usize::from(t.weekday().number_days_from_monday())],
        MONTHS[usize::from(u8::from(t.month())) - 1],
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.year()
    )
}

/// `.NAME.bulletin-PID.tmp`: hidden, and apart from another run's.
fn staging_name(name: &std::ffi::OsStr) -> String {
    format!(".{}.bulletin-{}.tmp", name.to_string_lossy(), std::process::id())
}

/// The folders `create_dir_all(dir)` would create, outermost first.
fn missing_ancestors(dir: &Path) -> Vec<PathBuf> {
    let mut missing: Vec<PathBuf> = dir
        .ancestors()
        .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
        .map(Path::to_path_buf)
        .collect();
    missing.reverse();
    missing
}

/// Creates `dir` mode 0700; an existing one is an error (it may be another run's).
fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))
}

/// Writes a new file readable by the owner only, in a folder this run created (so nobody
/// else's file is replaced and the mode `open` gives is the file's, within the umask).
fn write_new_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::{asctime, mboxrd};

    fn entry(message: &str) -> String {
        let mut out = Vec::new();
        mboxrd(message.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn mboxrd_quotes_every_from_line_once_more() {
        let m = "Subject: x\r\n\r\nFrom here\r\n>From there\r\n>>From afar\r\nFromage\r\n From\r\n";
        assert_eq!(
            entry(m),
            "Subject: x\n\n>From here\n>>From there\n>>>From afar\nFromage\n From\n\n"
        );
    }

    #[test]
    fn mboxrd_ends_every_entry_with_one_blank_line() {
        assert_eq!(entry("a\r\nb"), "a\nb\n\n");
        assert_eq!(entry("a\r\nb\r\n"), "a\nb\n\n");
    }

    #[test]
    fn asctime_pads_the_day_with_a_space() {
        let t = time::OffsetDateTime::from_unix_timestamp(0).unwrap();
        assert_eq!(asctime(t), "Thu Jan  1 00:00:00 1970");
        let t = time::OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap();
        assert_eq!(asctime(t), "Mon Sep 21 14:13:20 2026");
    }
}
