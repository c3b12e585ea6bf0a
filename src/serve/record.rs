//! The one thread that writes the suppression file for `serve`: requests queue here, and each
//! round of the loop writes everything queued in one locked append and one fsync (group
//! commit), then answers every request of the round. A request is answered only after its row
//! is on disk, so a 200 always means recorded.

use std::path::PathBuf;
use std::sync::mpsc;

use tokio::sync::oneshot;

use crate::email::Email;
use crate::list::{Known, Reason, Suppression, append_entries_with, remove_unsubscribe_noting};

/// Most requests written in one append.
const BATCH: usize = 512;

/// What a request asks the writer.
enum Job {
    Add(Email, Option<String>, oneshot::Sender<Result<Added, String>>),
    Undo(Email, String, oneshot::Sender<Result<bool, String>>),
}

/// The outcome of an unsubscribe.
#[derive(Debug, Clone)]
pub(crate) struct Added {
    /// Whether this request added the row (false: the address was already suppressed).
    pub new: bool,
    /// The row's date, which an undo names.
    pub date: String,
}

/// A handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the thread; it ends when every `Writer` is dropped.
    pub(crate) fn start(files: Vec<PathBuf>) -> Writer {
        let (jobs, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("suppression-writer".into())
            .spawn(move || write_loop(&files, &queue))
            .expect("cannot start the suppression writer thread");
        Writer { jobs }
    }

    /// Records `email` as unsubscribed (from `campaign`, when the link named one), durably,
    /// before it returns.
    pub(crate) async fn add(&self, email: Email, campaign: Option<String>) -> Result<Added, String> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Job::Add(email, campaign, tx))
            .map_err(|_| "the writer stopped".to_owned())?;
        rx.await.map_err(|_| "the writer stopped".to_owned())?
    }

    /// Removes the unsubscribe row of `email` written at `date`, noting it in the undo log
    /// (for `suppress --pull`).
    pub(crate) async fn undo(&self, email: Email, date: String) -> Result<bool, String> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Job::Undo(email, date, tx))
            .map_err(|_| "the writer stopped".to_owned())?;
        rx.await.map_err(|_| "the writer stopped".to_owned())?
    }
}

fn write_loop(files: &[PathBuf], queue: &mpsc::Receiver<Job>) {
    // The file as this thread last left it: read again only when someone else changed it.
    let mut known = Known::default();
    while let Ok(first) = queue.recv() {
        let mut adds = Vec::new();
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Add(email, campaign, reply) => adds.push((email, campaign, reply)),
                // An undo is rare: write what came before it, then do it alone.
                Job::Undo(email, date, reply) => {
                    flush(files, std::mem::take(&mut adds), &mut known);
                    let done = remove_unsubscribe_noting(files, &email, &date, true).map_err(|e| format!("{e:#}"));
                    let _ = reply.send(done);
                }
            }
            if adds.len() < BATCH {
                next = queue.try_recv().ok();
            }
        }
        flush(files, adds, &mut known);
    }
}

/// An unsubscribe waiting to be written, and where its answer goes.
type Pending = (Email, Option<String>, oneshot::Sender<Result<Added, String>>);

fn flush(files: &[PathBuf], adds: Vec<Pending>, known: &mut Known) {
    if adds.is_empty() {
        return;
    }
    let entries: Vec<Suppression> = adds
        .iter()
        .map(|(email, campaign, _)| Suppression {
            email: email.clone(),
            reason: Reason::Unsubscribe,
            campaign: campaign.clone(),
        })
        .collect();
    match append_entries_with(files, &entries, known) {
        Ok(done) => {
            for ((_, _, reply), new) in adds.into_iter().zip(done.added) {
                let _ = reply.send(Ok(Added {
                    new,
                    date: done.date.clone(),
                }));
            }
        }
        Err(e) => {
            let why = format!("{e:#}");
            for (_, _, reply) in adds {
                let _ = reply.send(Err(why.clone()));
            }
        }
    }
}
