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
//!
//! A worker's state between members is its [`Hand`]: empty, or holding one ready message.
//! Each attempt at a member goes through three steps: [`Delivery::prepare`] (backoff, rate
//! permit, a live session), [`Delivery::hand_off`] (in-flight mark, message, envelope — after
//! the held body when there is one) and [`Delivery::settle_attempt`] (hold, or send the body
//! and record the outcome); [`Delivery::deliver`] loops over the attempts.

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
    session: Option<Session>,
    recorder: Recorder<'j>,
    /// The `sent` of the last member the relay accepted, not yet recorded. The journal says
    /// in-flight meanwhile, which a crash turns into `uncertain`: never lost, never resent.
    accepted: Option<Change>,
    /// The rate limiter made the last hand-off wait: record `sent` before waiting again.
    paced: bool,
    hand: Hand<'j>,
    /// Members to try again (a 4xx to a held message's data), before new ones.
    retry: VecDeque<(Recipient, u32)>,
}

/// What a worker has in hand between two members.
#[allow(
    clippy::large_enum_variant,
    reason = "one per worker; boxing would allocate for every message"
)]
enum Hand<'j> {
    /// Nothing: the next member's in-flight mark is committed while their message is built
    /// and the relay answers the envelope.
    Empty,
    /// A member whose message the relay is ready to take; their body goes out with the next
    /// member's envelope.
    Holding(Held<'j>),
}

impl<'j> Worker<'j> {
    pub(super) fn new(session: Option<Session>, recorder: Recorder<'j>) -> Worker<'j> {
        Worker {
            session,
            recorder,
            accepted: None,
            paced: false,
            hand: Hand::Empty,
            retry: VecDeque::new(),
        }
    }

    fn is_holding(&self) -> bool {
        matches!(self.hand, Hand::Holding(_))
    }
}

struct Held<'j> {
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

/// Members in a row refused with the same words (not about the address) that stop the run.
const SAME_REFUSALS: usize = 3;

/// How one attempt ended, for [`Delivery::deliver`].
enum Step {
    /// The member's status for this run is known.
    Done(Status),
    /// Their message is held, ready, to go out with the next member's envelope.
    Held,
    /// The relay did not answer in time: they wait at the back of the line (`Shared::later`).
    Later,
    /// A temporary failure (the reply): try again after a backoff.
    Again(Recipient, String),
    /// The run stopped before this attempt could start.
    Stopped(Recipient),
}

/// How a member's envelope goes out.
#[allow(
    clippy::large_enum_variant,
    reason = "one at a time; boxing would allocate for every message"
)]
enum Envelope<'j> {
    /// On its own; their in-flight mark is already queued (this commit).
    Alone(Ticket<'j>),
    /// After the held member's body, in the same write; their in-flight mark goes in one
    /// commit with the held member's outcome.
    After(Held<'j>, Change),
}

/// What an outcome says when the worker has no session (it always has one here; this keeps
/// a bug from becoming a panic mid-send).
const NO_SESSION: &str = "the session is gone";

/// Why [`Delivery::prepare`] did not get a member ready.
enum NotReady {
    /// The relay could not be reached for now (why).
    Again(String),
    Stopped,
}

/// An envelope sent: the relay's answer, the commit the member's in-flight mark is in, and
/// the member settled in that same commit.
struct Opened<'j> {
    answer: Result<Ready, Outcome>,
    committed: Ticket<'j>,
    settles: Option<Settled>,
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
                    let next = shared
                        .queue
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .next();
                    let later = || {
                        shared
                            .later
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .pop_front()
                    };
                    match next {
                        None => match later() {
                            Some(again) => again,
                            None if w.is_holding() => {
                                self.flush_held(shared, w);
                                continue;
                            }
                            None => break,
                        },
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

    /// One member, from attempt `first` on: each attempt is prepared, handed off and
    /// settled. Returns their final status for this run, or `None` when their message is
    /// held, ready, to go out with the next one's envelope.
    fn deliver<I>(&self, mut r: Recipient, first: u32, shared: &Shared<I>, w: &mut Worker<'_>) -> Option<Status> {
        let mut last = String::new();
        for attempt in first..self.policy.attempts {
            let step = match self.prepare(attempt, shared, w) {
                Ok(handed_off) => match self.hand_off(&r, handed_off, shared, w) {
                    Ok(opened) => self.settle_attempt(r, attempt, opened, shared, w),
                    Err(status) => Step::Done(status),
                },
                Err(NotReady::Again(why)) => Step::Again(r, why),
                Err(NotReady::Stopped) => Step::Stopped(r),
            };
            match step {
                Step::Done(status) => return Some(status),
                Step::Held | Step::Later => return None,
                Step::Again(back, reply) => {
                    r = back;
                    last = reply;
                }
                Step::Stopped(back) => {
                    r = back;
                    break;
                }
            }
        }
        // Out of attempts, or stopped (and the worker finishes what it holds when it stops).
        if !last.is_empty() {
            let _ = w.recorder.record(vec![self.finish_change(&r, Status::Pending, last)]);
        }
        Some(Status::Pending)
    }

    /// Waits until attempt `attempt` may go: the backoff before a retry, the rate limiter,
    /// a live session. Whatever the worker holds goes out before it waits. Returns the
    /// hand-off time the limiter granted.
    fn prepare<I>(&self, attempt: u32, shared: &Shared<I>, w: &mut Worker<'_>) -> Result<i64, NotReady> {
        if attempt > 0 {
            if self.halted(shared) {
                return Err(NotReady::Stopped);
            }
            self.unload(shared, w);
            self.backoff(attempt);
        }
        if self.halted(shared) {
            return Err(NotReady::Stopped);
        }
        if w.paced {
            self.unload(shared, w);
        }
        let asked = self.clock.unix_ms();
        let handed_off = match self.limits.acquire() {
            Permit::Go(t) => t,
            Permit::Spent { rate, resume_at } => {
                self.halt(shared, Stop::QuotaSpent { rate, resume_at });
                return Err(NotReady::Stopped);
            }
        };
        w.paced = handed_off > asked;
        if w.session.as_ref().is_none_or(Session::is_broken) {
            self.unload(shared, w);
            match self.relay.connect() {
                Ok(s) => w.session = Some(s),
                Err(ConnectError::Transient(m)) => return Err(NotReady::Again(m)),
                Err(e) => {
                    self.halt(shared, Stop::Relay(e.to_string()));
                    return Err(NotReady::Stopped);
                }
            }
        }
        Ok(handed_off)
    }

    /// Hands the member to the relay: queues their in-flight mark (at once when nothing is
    /// held; with the held member's outcome otherwise), builds their message and sends its
    /// envelope — after the held member's body, in the same write. Returns their final
    /// status instead when the message cannot be built or the held member's mark was not
    /// recorded.
    fn hand_off<'j, I>(
        &self,
        r: &Recipient,
        handed_off: i64,
        shared: &Shared<I>,
        w: &mut Worker<'j>,
    ) -> Result<Opened<'j>, Status> {
        let message_id = self.letterhead.message_id();
        let in_flight = Change::InFlight {
            address: r.email.key().to_owned(),
            message_id: message_id.clone(),
            handed_off,
        };
        let envelope = match std::mem::replace(&mut w.hand, Hand::Empty) {
            Hand::Empty => {
                let mut changes: Vec<Change> = w.accepted.take().into_iter().collect();
                changes.push(in_flight);
                Envelope::Alone(w.recorder.submit(changes))
            }
            Hand::Holding(h) => Envelope::After(h, in_flight),
        };
        let built = self
            .compiled
            .personalise(r)
            .map_err(|e| e.message)
            .and_then(|c| self.letterhead.build(r, &c, message_id).map_err(|e| format!("{e:#}")));
        let message = match built {
            Ok(m) => m,
            Err(e) => return Err(self.unbuilt(envelope, r, &e, shared, w)),
        };
        let addresses = message.envelope();
        let (Some(from), Some(to)) = (addresses.from(), addresses.to().first()) else {
            return Err(self.unbuilt(envelope, r, "message has no envelope", shared, w));
        };
        let formatted = message.formatted();
        match envelope {
            Envelope::Alone(committed) => Ok(Opened {
                answer: match w.session.as_mut() {
                    Some(s) => s.open(from, to, &formatted),
                    None => Err(Outcome::Transient(NO_SESSION.into())),
                },
                committed,
                settles: None,
            }),
            Envelope::After(mut h, in_flight) => {
                if !self.commit_held(shared, w, &mut h) {
                    return Err(Status::Pending);
                }
                let (done, answer) = match w.session.as_mut() {
                    Some(s) => s.finish_and_open(h.ready, from, to, &formatted),
                    None => (
                        Outcome::Transient(NO_SESSION.into()),
                        Err(Outcome::Transient(NO_SESSION.into())),
                    ),
                };
                // The held member settled and this one in flight, in one commit (this
                // attempt counts even if the relay refused the envelope, as it does when the
                // mark goes out early).
                let (change, status) = self.outcome_change(&h.r, done);
                Ok(Opened {
                    answer,
                    committed: w.recorder.submit(vec![change, in_flight]),
                    settles: Some(Settled {
                        r: h.r,
                        attempt: h.attempt,
                        status,
                    }),
                })
            }
        }
    }

    /// A member whose message could not be built: failed, recorded after what the worker
    /// held goes out.
    fn unbuilt<'j, I>(
        &self,
        envelope: Envelope<'j>,
        r: &Recipient,
        why: &str,
        shared: &Shared<I>,
        w: &mut Worker<'j>,
    ) -> Status {
        if let Envelope::After(h, _) = envelope {
            w.hand = Hand::Holding(h);
            self.flush_held(shared, w);
        }
        self.record(shared, w, r, Status::Failed, why)
    }

    /// Settles an attempt whose envelope went out: holds the ready message for the next
    /// envelope, or — once the in-flight mark is committed — sends its body and records
    /// what the relay said.
    fn settle_attempt<'j, I>(
        &self,
        r: Recipient,
        attempt: u32,
        opened: Opened<'j>,
        shared: &Shared<I>,
        w: &mut Worker<'j>,
    ) -> Step {
        let Opened {
            answer,
            committed,
            settles,
        } = opened;
        let outcome = match answer {
            Ok(ready) if w.session.as_ref().is_some_and(|s| self.may_hold(s, shared)) => {
                w.hand = Hand::Holding(Held {
                    r,
                    ready,
                    attempt,
                    committed,
                    settles,
                });
                return Step::Held;
            }
            Ok(ready) => {
                if !self.await_mark(committed, settles, shared, w) {
                    // Not recorded: nothing of this message may leave.
                    if let Some(s) = w.session.as_mut() {
                        s.abort();
                    }
                    return Step::Done(Status::Pending);
                }
                match w.session.as_mut() {
                    Some(s) => s.finish(ready),
                    None => Outcome::Transient(NO_SESSION.into()),
                }
            }
            Err(refused) => {
                if !self.await_mark(committed, settles, shared, w) {
                    return Step::Done(Status::Pending);
                }
                refused
            }
        };
        self.record_outcome(r, attempt, outcome, shared, w)
    }

    /// Records what the relay said to an attempt whose message was handed over (or refused),
    /// and says what comes next for the member.
    fn record_outcome<I>(
        &self,
        r: Recipient,
        attempt: u32,
        outcome: Outcome,
        shared: &Shared<I>,
        w: &mut Worker<'_>,
    ) -> Step {
        match outcome {
            Outcome::Sent(reply) => {
                self.refused_alike(shared, None);
                w.accepted = Some(self.outcome_change(&r, Outcome::Sent(reply)).0);
                Step::Done(Status::Sent)
            }
            Outcome::Permanent(reply) => match self.refused_alike(shared, Some((&r, &reply))) {
                None => Step::Done(self.record(shared, w, &r, Status::Failed, &reply)),
                Some(earlier) => Step::Done(self.refused_for_everyone(shared, w, &r, earlier, &reply)),
            },
            Outcome::Uncertain(why) => Step::Done(self.record(shared, w, &r, Status::Uncertain, &why)),
            Outcome::Session(reply) => {
                let status = self.record(shared, w, &r, Status::Pending, &reply);
                self.halt(
                    shared,
                    Stop::Relay(format!("the relay refused the sender, not the member: {reply}")),
                );
                Step::Done(status)
            }
            Outcome::Stalled(reply) => {
                if self.record(shared, w, &r, Status::Pending, &reply) != Status::Pending {
                    return Step::Done(Status::Pending);
                }
                if attempt + 1 >= self.policy.attempts {
                    return Step::Again(r, reply);
                }
                // Back of the line (this attempt counted): the others go first.
                let mut later = shared.later.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                later.push_back((r, attempt + 1));
                Step::Later
            }
            Outcome::Transient(reply) => {
                // Back to pending at once: a crash during the backoff must not leave an
                // in-flight row for a message the relay refused.
                if self.record(shared, w, &r, Status::Pending, &reply) == Status::Pending {
                    Step::Again(r, reply)
                } else {
                    Step::Done(Status::Pending)
                }
            }
        }
    }

    /// Waits for the commit of a member's in-flight mark and counts the member settled in
    /// it; a failed commit stops the run.
    fn await_mark<I>(
        &self,
        committed: Ticket<'_>,
        settles: Option<Settled>,
        shared: &Shared<I>,
        w: &mut Worker<'_>,
    ) -> bool {
        let result = committed.wait();
        if let Some(done) = settles {
            self.conclude(shared, w, done, result.is_ok());
        }
        match result {
            Ok(()) => true,
            Err(e) => {
                self.halt(shared, Stop::Journal(e));
                false
            }
        }
    }

    /// Keeps the run of permanent refusals that are not about the address (`None`: a member
    /// was accepted, which ends it). When [`SAME_REFUSALS`] members in a row were refused with
    /// the same words, returns the earlier ones' addresses: the refusal is about the sender or
    /// the message, and they are not to blame.
    fn refused_alike<I>(&self, shared: &Shared<I>, refused: Option<(&Recipient, &str)>) -> Option<Vec<String>> {
        let mut refusals = shared
            .refusals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some((r, reply)) = refused.filter(|(_, reply)| !crate::reply::is_address_failure(reply)) else {
            refusals.run.clear();
            return None;
        };
        let words = crate::reply::without_addresses(reply);
        if refusals.blamed.as_ref() == Some(&words) {
            // Another worker's member, refused with the words that stopped the run.
            return Some(Vec::new());
        }
        let run = &mut refusals.run;
        if run.last().is_some_and(|(_, last)| *last != words) {
            run.clear();
        }
        run.push((r.email.key().to_owned(), words));
        if run.len() < SAME_REFUSALS {
            return None;
        }
        let mut earlier = std::mem::take(run);
        refusals.blamed = earlier.pop().map(|(_, words)| words);
        Some(earlier.into_iter().map(|(address, _)| address).collect())
    }

    /// Stops the run after members in a row were refused with the same words: `r` and the
    /// `earlier` ones (recorded failed) are left pending, to be sent once the cause is fixed.
    fn refused_for_everyone<I>(
        &self,
        shared: &Shared<I>,
        w: &Worker<'_>,
        r: &Recipient,
        earlier: Vec<String>,
        reply: &str,
    ) -> Status {
        let at = self.clock.unix_ms();
        let mut changes: Vec<Change> = earlier
            .iter()
            .map(|address| Change::Finish {
                address: address.clone(),
                status: Status::Pending,
                reply: reply.to_owned(),
                fields: None,
                at,
            })
            .collect();
        changes.push(self.finish_change(r, Status::Pending, reply.to_owned()));
        let status = match w.recorder.record(changes) {
            Ok(()) => {
                let mut summary = shared.summary.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                summary.failed -= earlier.len().min(summary.failed);
                summary.pending += earlier.len();
                Status::Pending
            }
            Err(e) => {
                self.halt(shared, Stop::Journal(e));
                Status::InFlight
            }
        };
        self.halt(
            shared,
            Stop::Relay(format!(
                "{SAME_REFUSALS} members in a row were refused with the same words, so the refusal is about \
                 the sender or the message, not them (they are left pending): {reply}"
            )),
        );
        status
    }

    /// Sends what the worker holds and records what it knows: before anything that may
    /// wait, so no member stays in flight longer than needed.
    fn unload<I>(&self, shared: &Shared<I>, w: &mut Worker<'_>) {
        self.flush_held(shared, w);
        self.record_accepted(shared, w);
    }

    /// Counts a member's final status for this run.
    fn settle<I>(&self, shared: &Shared<I>, status: Status) {
        let mut summary = shared.summary.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
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
        let Hand::Holding(mut h) = std::mem::replace(&mut w.hand, Hand::Empty) else {
            return;
        };
        if !self.commit_held(shared, w, &mut h) {
            return;
        }
        let outcome = match w.session.as_mut() {
            Some(s) => s.finish(h.ready),
            None => Outcome::Transient(NO_SESSION.into()),
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
            Outcome::Transient(reply) | Outcome::Session(reply) | Outcome::Stalled(reply) => (Status::Pending, reply),
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
