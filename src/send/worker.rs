//! One worker: members from the shared queue, through its own SMTP session, each outcome
//! recorded in the journal.
//!
//! The journal's rule: a member is `in-flight` (committed) before the first byte of their
//! message leaves, and each worker has at most one member in flight at any instant, so a
//! crash leaves at most `concurrency` members `uncertain`. Within that rule the worker keeps
//! the relay and the journal busy at once:
//!
//! - The first message of a session, or every message when a rate is set or the relay does
//!   not pipeline: the in-flight mark (with the previous member's `sent`) is queued for the
//!   journal before the message is built; the body waits for the commit.
//! - Otherwise (no rate, PIPELINING): once the relay is ready for a member's body, the worker
//!   holds it, builds the next member's message, and writes the body, its final `.` and the
//!   next envelope in one write ([`Session::finish_and_open`]): one round trip a message. The
//!   reply settles the first member, recorded in the same commit as the next one's in-flight
//!   mark, queued before the worker builds the message after that.
//!
//! Before anything that may wait (rate pacing, reconnecting, backoff) and when it stops, a
//! worker sends what it holds and records what it knows.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::record::{Recorder, Ticket};
use super::smtp::{ConnectError, Outcome, Ready, Session};
use super::{Delivery, Shared, Stop};
use crate::journal::{Change, Status};
use crate::list::Recipient;
use crate::send::rate::{Clock, Permit};

/// What a worker carries from one member to the next.
pub(super) struct Worker<'j> {
    pub session: Option<Session>,
    pub recorder: Recorder<'j>,
    /// The `sent` of the last member the relay accepted, not yet recorded. The journal says
    /// in-flight meanwhile, which a crash turns into `uncertain`: never lost, never resent.
    pub accepted: Option<Change>,
    /// The rate limiter made the last hand-off wait: record `sent` before waiting again.
    pub paced: bool,
    /// A member whose message the relay is ready to take; its body goes out with the next
    /// member's envelope.
    pub held: Option<Held<'j>>,
    /// Members to try again (a 4xx to a held message's data), before new ones.
    pub retry: VecDeque<(Recipient, u32)>,
}

impl<'j> Worker<'j> {
    pub fn new(session: Option<Session>, recorder: Recorder<'j>) -> Worker<'j> {
        Worker {
            session,
            recorder,
            accepted: None,
            paced: false,
            held: None,
            retry: VecDeque::new(),
        }
    }
}

pub(super) struct Held<'j> {
    r: Recipient,
    ready: Ready,
    /// This attempt's number, from 0.
    attempt: u32,
    /// The commit of this member's in-flight mark: waited for before the body leaves.
    committed: Ticket<'j>,
    /// The member settled in that same commit (the one whose body went out with this
    /// member's envelope), counted once the commit is known.
    settles: Option<Settled>,
}

/// A member whose outcome is known, with the attempt it came from.
struct Settled {
    r: Recipient,
    attempt: u32,
    status: Status,
}

impl<C: Clock> Delivery<'_, C> {
    pub(super) fn worker<I>(&self, shared: &Shared<I>, w: &mut Worker<'_>)
    where
        I: Iterator<Item = anyhow::Result<Recipient>>,
    {
        loop {
            if self.halted(shared) {
                break;
            }
            let (r, attempt) = match w.retry.pop_front() {
                Some(again) => again,
                None => {
                    let next = shared.queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                    match next {
                        None if w.held.is_some() => {
                            self.flush_held(shared, w);
                            continue;
                        }
                        None => break,
                        Some(Ok(r)) => {
                            shared.started.fetch_add(1, Ordering::SeqCst);
                            (r, 0)
                        }
                        Some(Err(e)) => {
                            self.halt(shared, Stop::Lists(format!("{e:#}")));
                            break;
                        }
                    }
                }
            };
            if let Some(status) = self.deliver(r, attempt, shared, w) {
                self.settle(shared, status);
            }
        }
        // Stopping: the member whose body is ready is in flight; finish them.
        self.flush_held(shared, w);
        for _ in w.retry.drain(..) {
            self.settle(shared, Status::Pending);
        }
        self.record_accepted(shared, w);
        if let Some(s) = w.session.take() {
            s.quit();
        }
    }

    /// Counts a member's final status for this run.
    fn settle<I>(&self, shared: &Shared<I>, status: Status) {
        let mut summary = shared.summary.lock().unwrap_or_else(|e| e.into_inner());
        match status {
            Status::Sent => summary.sent += 1,
            Status::Failed => summary.failed += 1,
            Status::Uncertain => summary.uncertain += 1,
            Status::Pending | Status::InFlight => summary.pending += 1,
        }
        drop(summary);
        self.progress.record(status);
        let failures = match status {
            Status::Sent | Status::Uncertain => {
                shared.consecutive_failures.store(0, Ordering::SeqCst);
                0
            }
            Status::Failed | Status::Pending | Status::InFlight => {
                shared.consecutive_failures.fetch_add(1, Ordering::SeqCst) + 1
            }
        };
        if failures >= self.policy.stop_after_failures && !shared.halt.load(Ordering::SeqCst) {
            self.halt(
                shared,
                Stop::TooManyFailures(format!("{failures} members in a row could not be delivered")),
            );
        }
    }

    /// Counts a member whose outcome is now committed (or could not be: then they count as
    /// pending). A 4xx with attempts left puts them back in line instead.
    fn conclude<I>(&self, shared: &Shared<I>, w: &mut Worker<'_>, done: Settled, committed: bool) {
        if !committed {
            self.settle(shared, Status::InFlight);
        } else if done.status == Status::Pending && done.attempt + 1 < self.policy.attempts {
            w.retry.push_back((done.r, done.attempt + 1));
        } else {
            self.settle(shared, done.status);
        }
    }

    /// Waits for the held member's in-flight commit; on failure nothing of theirs may leave,
    /// so the session is closed and the run stops.
    fn commit_held<I>(&self, shared: &Shared<I>, w: &mut Worker<'_>, h: &mut Held<'_>) -> bool {
        let committed = std::mem::replace(&mut h.committed, Ticket::done()).wait();
        if let Some(done) = h.settles.take() {
            self.conclude(shared, w, done, committed.is_ok());
        }
        match committed {
            Ok(()) => true,
            Err(e) => {
                if let Some(s) = w.session.as_mut() {
                    s.abort();
                }
                self.halt(shared, Stop::Journal(e));
                self.settle(shared, Status::InFlight);
                false
            }
        }
    }

    /// Sends the held member's body on its own and records the outcome.
    fn flush_held<I>(&self, shared: &Shared<I>, w: &mut Worker<'_>) {
        let Some(mut h) = w.held.take() else { return };
        if !self.commit_held(shared, w, &mut h) {
            return;
        }
        let outcome = match w.session.as_mut() {
            Some(s) => s.finish(h.ready),
            None => Outcome::Transient("the session is gone".into()),
        };
        let (change, status) = self.outcome_change(&h.r, outcome);
        let committed = w
            .recorder
            .record(vec![change])
            .map_err(|e| self.halt(shared, Stop::Journal(e)));
        let done = Settled {
            r: h.r,
            attempt: h.attempt,
            status,
        };
        self.conclude(shared, w, done, committed.is_ok());
    }

    /// Commits the member the relay accepted last, if that is not done yet.
    fn record_accepted<I>(&self, shared: &Shared<I>, w: &mut Worker<'_>) {
        if let Some(sent) = w.accepted.take()
            && let Err(e) = w.recorder.record(vec![sent])
        {
            self.halt(shared, Stop::Journal(e));
        }
    }

    /// One member, from attempt `first` on. Returns their final status for this run, or
    /// `None` when their message is held, ready, to go out with the next one's envelope.
    fn deliver<I>(&self, r: Recipient, first: u32, shared: &Shared<I>, w: &mut Worker<'_>) -> Option<Status> {
        let key = r.email.key();
        let mut last = String::new();
        for attempt in first..self.policy.attempts {
            if attempt > 0 {
                if self.halted(shared) {
                    break;
                }
                self.flush_held(shared, w);
                self.record_accepted(shared, w);
                self.backoff(attempt);
            }
            if self.halted(shared) {
                break;
            }
            if w.paced {
                self.flush_held(shared, w);
                self.record_accepted(shared, w);
            }
            let asked = self.clock.unix_ms();
            let handed_off = match self.limits.acquire() {
                Permit::Go(t) => t,
                Permit::Spent { rate, resume_at } => {
                    self.halt(shared, Stop::QuotaSpent { rate, resume_at });
                    break;
                }
            };
            w.paced = handed_off > asked;
            if w.session.as_ref().is_none_or(Session::is_broken) {
                self.flush_held(shared, w);
                self.record_accepted(shared, w);
                match self.relay.connect() {
                    Ok(s) => w.session = Some(s),
                    Err(ConnectError::Transient(m)) => {
                        last = m;
                        continue;
                    }
                    Err(e) => {
                        self.halt(shared, Stop::Relay(e.to_string()));
                        break;
                    }
                }
            }
            let message_id = self.letterhead.message_id();
            let in_flight = Change::InFlight {
                address: key.to_owned(),
                message_id: message_id.clone(),
                handed_off,
            };
            // Nothing held: commit the in-flight mark while the message is built and the
            // relay answers the envelope.
            let early = w.held.is_none().then(|| {
                let mut changes: Vec<Change> = w.accepted.take().into_iter().collect();
                changes.push(in_flight.clone());
                w.recorder.submit(changes)
            });
            let built = self
                .compiled
                .personalise(&r)
                .map_err(|e| e.message)
                .and_then(|c| self.letterhead.build(&r, &c, message_id).map_err(|e| format!("{e:#}")));
            let message = match built {
                Ok(m) => m,
                Err(e) => {
                    self.flush_held(shared, w);
                    return Some(self.record(shared, w, &r, Status::Failed, &e));
                }
            };
            let envelope = message.envelope();
            let (Some(from), Some(to)) = (envelope.from(), envelope.to().first()) else {
                self.flush_held(shared, w);
                return Some(self.record(shared, w, &r, Status::Failed, "message has no envelope"));
            };
            let formatted = message.formatted();
            let (opened, committed, settles) = match (early, w.held.take()) {
                (Some(ticket), _) => {
                    let s = w.session.as_mut().expect("session was just opened");
                    (s.open(from, to, &formatted), ticket, None)
                }
                (None, Some(mut h)) => {
                    if !self.commit_held(shared, w, &mut h) {
                        return Some(Status::Pending);
                    }
                    let s = w.session.as_mut().expect("a held message has a session");
                    let (done, opened) = s.finish_and_open(h.ready, from, to, &formatted);
                    // The first member settled and this one in flight, in one commit (this
                    // attempt counts even if the relay refused the envelope, as it does when
                    // the mark goes out early).
                    let (change, status) = self.outcome_change(&h.r, done);
                    let changes = vec![change, in_flight];
                    let done = Settled {
                        r: h.r,
                        attempt: h.attempt,
                        status,
                    };
                    (opened, w.recorder.submit(changes), Some(done))
                }
                (None, None) => unreachable!("the in-flight mark is submitted early when nothing is held"),
            };
            let s = w.session.as_mut().expect("session was just opened");
            let outcome = match opened {
                Ok(ready) if self.may_hold(s, shared) => {
                    w.held = Some(Held {
                        r,
                        ready,
                        attempt,
                        committed,
                        settles,
                    });
                    return None;
                }
                Ok(ready) => {
                    let result = committed.wait();
                    if let Some(done) = settles {
                        self.conclude(shared, w, done, result.is_ok());
                    }
                    let s = w.session.as_mut().expect("session was just opened");
                    if let Err(e) = result {
                        // Not recorded: nothing of this message may leave.
                        s.abort();
                        self.halt(shared, Stop::Journal(e));
                        return Some(Status::Pending);
                    }
                    s.finish(ready)
                }
                Err(refused) => {
                    let result = committed.wait();
                    if let Some(done) = settles {
                        self.conclude(shared, w, done, result.is_ok());
                    }
                    if let Err(e) = result {
                        self.halt(shared, Stop::Journal(e));
                        return Some(Status::Pending);
                    }
                    refused
                }
            };
            match outcome {
                Outcome::Sent(reply) => {
                    w.accepted = Some(self.outcome_change(&r, Outcome::Sent(reply)).0);
                    return Some(Status::Sent);
                }
                Outcome::Permanent(reply) => return Some(self.record(shared, w, &r, Status::Failed, &reply)),
                Outcome::Uncertain(why) => return Some(self.record(shared, w, &r, Status::Uncertain, &why)),
                Outcome::Transient(reply) => {
                    // Back to pending at once: a crash during the backoff must not leave an
                    // in-flight row for a message the relay refused.
                    if self.record(shared, w, &r, Status::Pending, &reply) != Status::Pending {
                        return Some(Status::Pending);
                    }
                    last = reply;
                }
            }
        }
        // Every way out of the loop above stops the run, and the worker finishes what it holds
        // when it stops.
        if !last.is_empty() {
            let _ = w.recorder.record(vec![Change::Finish {
                address: key.to_owned(),
                status: Status::Pending,
                reply: last,
                fields: None,
                at: self.clock.unix_ms(),
            }]);
        }
        Some(Status::Pending)
    }

    /// Whether to hold a ready message for the next one's envelope: only when the relay
    /// pipelines and nothing paces the hand-offs (a body must not wait on the rate limiter
    /// while the relay holds the transaction open), and not when stopping.
    fn may_hold<I>(&self, s: &Session, shared: &Shared<I>) -> bool {
        s.pipelines() && self.limits.unlimited() && !self.halted(shared)
    }

    /// The journal change an outcome makes, and the member's status for this run.
    fn outcome_change(&self, r: &Recipient, outcome: Outcome) -> (Change, Status) {
        let (status, reply) = match outcome {
            Outcome::Sent(reply) => (Status::Sent, reply),
            Outcome::Permanent(reply) => (Status::Failed, reply),
            Outcome::Uncertain(why) => (Status::Uncertain, why),
            Outcome::Transient(reply) => (Status::Pending, reply),
        };
        (self.finish_change(r, status, reply), status)
    }

    /// A member's outcome as a journal change (with their CSV row when they failed).
    fn finish_change(&self, r: &Recipient, status: Status, reply: String) -> Change {
        Change::Finish {
            address: r.email.key().to_owned(),
            status,
            reply,
            fields: (status == Status::Failed).then(|| fields_json(r)),
            at: self.clock.unix_ms(),
        }
    }

    fn record<I>(&self, shared: &Shared<I>, w: &Worker<'_>, r: &Recipient, status: Status, reply: &str) -> Status {
        match w.recorder.record(vec![self.finish_change(r, status, reply.to_owned())]) {
            Ok(()) => status,
            Err(e) => {
                self.halt(shared, Stop::Journal(e));
                Status::InFlight
            }
        }
    }

    fn backoff(&self, attempt: u32) {
        let base = self.policy.retry_delay.as_secs_f64() * f64::from(1u32 << (attempt - 1).min(10));
        let jittered = base * (0.5 + fastrand::f64());
        self.clock.sleep(Duration::from_secs_f64(jittered));
    }
}

/// The member's CSV row as a JSON object, kept for `report --failed-csv`.
fn fields_json(r: &Recipient) -> String {
    let map: serde_json::Map<String, serde_json::Value> = r
        .columns
        .names
        .iter()
        .zip(&r.values)
        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
        .collect();
    serde_json::Value::Object(map).to_string()
}
