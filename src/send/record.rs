//! Writing the journal during a send: workers queue their changes and the first one that
//! needs a commit makes it, for everything queued so far (group commit).
//!
//! A worker queues its member's `in-flight` mark early and waits for the commit only when the
//! relay is ready for the body. Whoever waits first and finds no commit under way commits on
//! its own thread — no hand-off to another thread, no context switch when nobody else is
//! writing; those who wait meanwhile find their changes in the next commit. No byte of a
//! message leaves before its `in-flight` row is committed.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::journal::{Change, Journal};

/// Queues changes for the journal. Clone it for each worker.
#[derive(Clone)]
pub struct Recorder<'j> {
    inner: Arc<Inner<'j>>,
}

struct Inner<'j> {
    journal: &'j Mutex<Journal>,
    campaign: &'j str,
    state: Mutex<State>,
    /// Signalled after every commit.
    committed: Condvar,
}

#[derive(Default)]
struct State {
    /// Changes queued and not yet taken by a commit, in order.
    queued: Vec<Change>,
    /// Number of the last request queued (from 1).
    last: u64,
    /// Every request up to this number is committed.
    done: u64,
    /// A commit is under way.
    committing: bool,
    /// A commit failed: nothing after it is recorded, and the run stops.
    broken: Option<String>,
}

/// A request's commit, to wait for.
#[must_use = "a change is known to be recorded only once its ticket says so"]
pub struct Ticket<'j> {
    number: u64,
    inner: Option<Arc<Inner<'j>>>,
}

impl Ticket<'_> {
    /// A ticket for nothing: already committed.
    pub fn done() -> Ticket<'static> {
        Ticket { number: 0, inner: None }
    }

    /// Blocks until the changes are committed (or could not be); commits them itself when
    /// no commit is under way.
    pub fn wait(self) -> Result<(), String> {
        match self.inner {
            None => Ok(()),
            Some(inner) => inner.wait_for(self.number),
        }
    }
}

impl<'j> Recorder<'j> {
    pub fn new(journal: &'j Mutex<Journal>, campaign: &'j str) -> Recorder<'j> {
        Recorder {
            inner: Arc::new(Inner {
                journal,
                campaign,
                state: Mutex::default(),
                committed: Condvar::new(),
            }),
        }
    }

    /// Queues `changes`, applied in order after everything queued before.
    pub fn submit(&self, changes: Vec<Change>) -> Ticket<'j> {
        let mut state = self.inner.state();
        state.queued.extend(changes);
        state.last += 1;
        Ticket {
            number: state.last,
            inner: Some(Arc::clone(&self.inner)),
        }
    }

    /// Records `changes` and waits for the commit.
    pub fn record(&self, changes: Vec<Change>) -> Result<(), String> {
        self.submit(changes).wait()
    }

    /// Commits whatever is still queued (changes whose tickets nobody waited for).
    pub fn flush(&self) -> Result<(), String> {
        let last = self.inner.state().last;
        self.inner.wait_for(last)
    }
}

impl Inner<'_> {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn wait_for(&self, number: u64) -> Result<(), String> {
        let mut state = self.state();
        loop {
            if state.done >= number {
                return Ok(());
            }
            if let Some(e) = &state.broken {
                return Err(e.clone());
            }
            if state.committing {
                state = self
                    .committed
                    .wait(state)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                continue;
            }
            state.committing = true;
            let changes = std::mem::take(&mut state.queued);
            let upto = state.last;
            drop(state);
            let result = self
                .journal
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .apply(self.campaign, &changes)
                .map_err(|e| format!("{e:#}"));
            state = self.state();
            state.committing = false;
            match result {
                Ok(()) => state.done = upto,
                Err(e) => state.broken = Some(e),
            }
            self.committed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Campaign, Status};

    fn campaign(journal: &mut Journal, members: impl Iterator<Item = String>) {
        let c = Campaign {
            id: "c".into(),
            subject: "S".into(),
            fingerprint: "f".into(),
            newsletter: "n.md".into(),
            started: 1,
        };
        journal
            .start(&c, members.map(|a| Ok((a, "l.csv:2".to_owned()))), 1)
            .unwrap();
    }

    #[test]
    fn changes_from_many_threads_are_all_committed_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(&dir.path().join("journal.db")).unwrap();
        let address = |t: usize, i: usize| format!("m{t}-{i}@example.org");
        campaign(&mut journal, (0..4).flat_map(|t| (0..50).map(move |i| address(t, i))));
        let journal = Mutex::new(journal);
        let recorder = Recorder::new(&journal, "c");
        std::thread::scope(|s| {
            for t in 0..4 {
                let recorder = recorder.clone();
                s.spawn(move || {
                    for i in 0..50 {
                        let in_flight = recorder.submit(vec![Change::InFlight {
                            address: address(t, i),
                            message_id: format!("<{t}-{i}@example.org>"),
                            handed_off: 10,
                        }]);
                        // Queued after the in-flight mark: applied after it, and committed
                        // by whoever waits next (here: the flush below, for the last one).
                        let _outcome = recorder.submit(vec![Change::Finish {
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
                        in_flight.wait().unwrap();
                    }
                });
            }
        });
        recorder.flush().unwrap();
        let rows = journal.lock().unwrap().deliveries("c").unwrap();
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
    fn a_failed_commit_fails_every_ticket_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(&dir.path().join("journal.db")).unwrap();
        campaign(&mut journal, ["a@example.org".to_owned()].into_iter());
        let journal = Mutex::new(journal);
        let recorder = Recorder::new(&journal, "c");
        let in_flight = |n: i64| {
            vec![Change::InFlight {
                address: "a@example.org".into(),
                message_id: format!("<{n}@example.org>"),
                handed_off: n,
            }]
        };
        recorder.record(in_flight(1)).unwrap();
        // A full disk or a read-only file refuses every later write.
        journal.lock().unwrap().read_only_for_test();
        let first = recorder.submit(in_flight(2));
        let second = recorder.submit(in_flight(3));
        let err = first.wait().unwrap_err();
        assert!(err.contains("readonly"), "{err}");
        assert_eq!(second.wait().unwrap_err(), err);
        assert!(recorder.record(in_flight(4)).is_err());
        assert!(Ticket::done().wait().is_ok());
    }
}
