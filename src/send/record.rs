//! The journal's writer during a send: one thread owns the journal and commits the changes
//! workers hand it, as many as are waiting in one transaction.
//!
//! A worker asks for its member's `in-flight` mark before it writes the envelope and waits
//! for the commit only when the relay is ready for the body, so the commit happens while the
//! relay answers MAIL, RCPT and DATA, and no worker waits on another's commit to take its
//! turn. No byte of a message leaves before its `in-flight` row is committed: the journal's
//! promise does not change, only what waits for what.

use std::sync::mpsc;

use crate::journal::{Change, Journal};

/// Hands changes to the writer thread. One per worker (clone it).
#[derive(Clone)]
pub struct Recorder {
    requests: mpsc::Sender<Request>,
}

struct Request {
    changes: Vec<Change>,
    done: mpsc::SyncSender<Result<(), String>>,
}

/// A request's commit, to wait for.
#[must_use = "a change is known to be recorded only once its ticket says so"]
pub struct Ticket(mpsc::Receiver<Result<(), String>>);

impl Ticket {
    /// A ticket for nothing: already committed.
    pub fn done() -> Ticket {
        let (done, ticket) = mpsc::sync_channel(1);
        let _ = done.send(Ok(()));
        Ticket(ticket)
    }

    /// Blocks until the changes are committed (or could not be).
    pub fn wait(self) -> Result<(), String> {
        self.0
            .recv()
            .unwrap_or_else(|_| Err("the journal writer stopped".into()))
    }
}

impl Recorder {
    /// A recorder and the writer loop to run on its own thread; the loop returns once every
    /// clone of the recorder is dropped and everything asked of it is committed.
    pub fn new<'j>(journal: &'j mut Journal, campaign: &'j str) -> (Recorder, impl FnOnce() + Send + 'j) {
        let (requests, queue) = mpsc::channel::<Request>();
        let writer = move || {
            let mut batch = Vec::new();
            let mut changes = Vec::new();
            while let Ok(first) = queue.recv() {
                batch.push(first);
                batch.extend(queue.try_iter());
                changes.extend(batch.iter_mut().flat_map(|r| r.changes.drain(..)));
                let outcome = journal.apply(campaign, &changes).map_err(|e| format!("{e:#}"));
                for r in batch.drain(..) {
                    let _ = r.done.send(outcome.clone());
                }
                changes.clear();
            }
        };
        (Recorder { requests }, writer)
    }

    /// Queues `changes` (applied in order, after everything this recorder queued before).
    pub fn submit(&self, changes: Vec<Change>) -> Ticket {
        let (done, ticket) = mpsc::sync_channel(1);
        if let Err(mpsc::SendError(r)) = self.requests.send(Request { changes, done }) {
            let _ = r.done.send(Err("the journal writer stopped".into()));
        }
        Ticket(ticket)
    }

    /// Records `changes` and waits for the commit.
    pub fn record(&self, changes: Vec<Change>) -> Result<(), String> {
        self.submit(changes).wait()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Campaign, Status};

    #[test]
    fn changes_from_many_threads_are_all_committed_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let mut journal = Journal::open(&path).unwrap();
        let c = Campaign {
            id: "c".into(),
            subject: "S".into(),
            fingerprint: "f".into(),
            newsletter: "n.md".into(),
            started: 1,
        };
        let address = |t: usize, i: usize| format!("m{t}-{i}@example.org");
        let members = (0..4).flat_map(|t| (0..50).map(move |i| Ok((address(t, i), "l.csv:2".to_owned()))));
        journal.start(&c, members, 1).unwrap();
        {
            let (recorder, writer) = Recorder::new(&mut journal, "c");
            std::thread::scope(|s| {
                s.spawn(writer);
                for t in 0..4 {
                    let recorder = recorder.clone();
                    s.spawn(move || {
                        for i in 0..50 {
                            let ticket = recorder.submit(vec![Change::InFlight {
                                address: address(t, i),
                                message_id: format!("<{t}-{i}@example.org>"),
                                handed_off: 10,
                            }]);
                            // Queued after the in-flight mark: applied after it.
                            let last = recorder.submit(vec![Change::Finish {
                                address: address(t, i),
                                status: if i.is_multiple_of(2) {
                                    Status::Sent
                                } else {
                                    Status::Failed
                                },
                                reply: "250 ok".into(),
                                fields: None,
                                at: 11,
                            }]);
                            ticket.wait().unwrap();
                            if i == 49 {
                                last.wait().unwrap();
                            }
                        }
                    });
                }
                drop(recorder);
            });
        }
        let rows = journal.deliveries("c").unwrap();
        assert_eq!(rows.len(), 200);
        for row in rows {
            let i: usize = row.address.split(['-', '@']).nth(1).unwrap().parse().unwrap();
            let want = if i.is_multiple_of(2) {
                Status::Sent
            } else {
                Status::Failed
            };
            assert_eq!((row.status, row.attempts), (want, 1), "{}", row.address);
        }
    }

    #[test]
    fn a_failed_commit_is_reported_to_every_request_in_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(&dir.path().join("journal.db")).unwrap();
        // No campaign row: the delivery table's foreign key is not enforced, but a read-only
        // database refuses every write.
        journal.read_only_for_test();
        let (recorder, writer) = Recorder::new(&mut journal, "c");
        std::thread::scope(|s| {
            s.spawn(writer);
            let err = recorder
                .record(vec![Change::InFlight {
                    address: "a@example.org".into(),
                    message_id: "<1@example.org>".into(),
                    handed_off: 1,
                }])
                .unwrap_err();
            assert!(err.contains("readonly"), "{err}");
            drop(recorder);
        });
    }
}
