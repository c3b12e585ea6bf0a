//! Delivery: N workers, each with its own SMTP session, take members from a shared queue,
//! wait for the rate limiter, record the hand-off in the journal, send, and record the
//! outcome. Transient failures are retried with exponential backoff and jitter; permanent
//! ones are recorded and the run goes on; a lost session, a spent quota, Ctrl-C or a run of
//! failures stops everyone cleanly.
//!
//! One thread writes the journal ([`record`]); a worker asks it for a member's `in-flight`
//! mark before writing the envelope and waits for the commit before writing the body. A
//! worker that goes straight from one member to the next sends the first one's `sent` with
//! the next one's `in-flight`. Before anything that may wait (rate pacing, reconnecting,
//! backoff) and when it stops, it records the `sent` on its own.

pub mod progress;
pub mod rate;
pub mod record;
pub mod select;
pub mod smtp;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Result;

use crate::journal::{Change, Journal, Status};
use crate::list::Recipient;
use crate::message::Letterhead;
use crate::render::Compiled;
use progress::Progress;
use rate::{Clock, Limits, Permit, Rate};
use record::{Recorder, Ticket};
use smtp::{ConnectError, Outcome, Relay, Session};

/// How hard to try.
#[derive(Debug, Clone)]
pub struct Policy {
    pub concurrency: usize,
    /// Attempts per member per run (first try included).
    pub attempts: u32,
    /// First retry delay; doubled each time, with ±50 % jitter.
    pub retry_delay: Duration,
    /// Consecutive members that fail (permanently, or after all retries) before the run stops.
    pub stop_after_failures: usize,
}

/// Why a run stopped early.
#[derive(Debug, Clone)]
pub enum Stop {
    Interrupted,
    QuotaSpent {
        rate: Rate,
        resume_at: i64,
    },
    Relay(String),
    TooManyFailures(String),
    Journal(String),
    /// A list could not be read on the sending pass (it changed since preflight).
    Lists(String),
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Summary {
    pub sent: usize,
    pub failed: usize,
    /// Still pending after every retry (or never started because the run stopped).
    pub pending: usize,
    pub uncertain: usize,
    pub stopped: Option<Stop>,
}

/// Everything a worker needs.
pub struct Delivery<'a, C: Clock> {
    pub relay: &'a Relay,
    pub compiled: &'a Compiled,
    pub letterhead: &'a Letterhead,
    pub journal: &'a Mutex<Journal>,
    pub campaign: &'a str,
    pub limits: &'a Limits<C>,
    pub clock: C,
    pub policy: Policy,
    pub interrupted: &'a AtomicBool,
    pub progress: &'a Progress,
}

/// What a worker carries from one member to the next.
struct Worker {
    session: Option<Session>,
    recorder: Recorder,
    /// The `sent` of the last member the relay accepted, not yet recorded. The journal says
    /// in-flight meanwhile, which a crash turns into `uncertain`: never lost, never resent.
    accepted: Option<Change>,
    /// The rate limiter made the last hand-off wait: record `sent` before waiting again.
    paced: bool,
}

struct Shared<I> {
    /// The members still to send, read from the lists as workers need them.
    queue: Mutex<I>,
    started: AtomicUsize,
    halt: AtomicBool,
    stop: Mutex<Option<Stop>>,
    consecutive_failures: AtomicUsize,
    summary: Mutex<Summary>,
}

impl<C: Clock> Delivery<'_, C> {
    /// Sends to every member `jobs` yields (`total` of them, as preflight counted). `first` is
    /// the session opened (and authenticated) during preflight; other workers open theirs as
    /// they start.
    pub fn run<I>(&self, jobs: I, total: usize, first: Session) -> Summary
    where
        I: Iterator<Item = Result<Recipient>> + Send,
    {
        let shared = Shared {
            queue: Mutex::new(jobs),
            started: AtomicUsize::new(0),
            halt: AtomicBool::new(false),
            stop: Mutex::new(None),
            consecutive_failures: AtomicUsize::new(0),
            summary: Mutex::new(Summary::default()),
        };
        let workers = self.policy.concurrency.clamp(1, total.max(1));
        let first = Mutex::new(Some(first));
        let mut journal = self.journal.lock().unwrap_or_else(|e| e.into_inner());
        let (recorder, writer) = Recorder::new(&mut journal, self.campaign);
        std::thread::scope(|scope| {
            scope.spawn(writer);
            for _ in 0..workers {
                let recorder = recorder.clone();
                let (shared, first) = (&shared, &first);
                scope.spawn(move || {
                    let session = first.lock().unwrap_or_else(|e| e.into_inner()).take();
                    let mut w = Worker {
                        session,
                        recorder,
                        accepted: None,
                        paced: false,
                    };
                    self.worker(shared, &mut w);
                });
            }
            // The writer stops once the workers' recorders are gone too.
            drop(recorder);
        });
        let mut summary = shared.summary.into_inner().unwrap_or_else(|e| e.into_inner());
        let started = shared.started.load(Ordering::SeqCst).min(total);
        summary.pending += total - started;
        summary.stopped = shared.stop.into_inner().unwrap_or_else(|e| e.into_inner());
        summary
    }

    fn halt<I>(&self, shared: &Shared<I>, why: Stop) {
        let mut stop = shared.stop.lock().unwrap_or_else(|e| e.into_inner());
        if stop.is_none() {
            *stop = Some(why);
        }
        shared.halt.store(true, Ordering::SeqCst);
    }

    fn halted<I>(&self, shared: &Shared<I>) -> bool {
        if self.interrupted.load(Ordering::SeqCst) && !shared.halt.load(Ordering::SeqCst) {
            self.halt(shared, Stop::Interrupted);
        }
        shared.halt.load(Ordering::SeqCst)
    }

    fn worker<I>(&self, shared: &Shared<I>, w: &mut Worker)
    where
        I: Iterator<Item = Result<Recipient>>,
    {
        loop {
            if self.halted(shared) {
                break;
            }
            let next = shared.queue.lock().unwrap_or_else(|e| e.into_inner()).next();
            let r = match next {
                None => break,
                Some(Ok(r)) => r,
                Some(Err(e)) => {
                    self.halt(shared, Stop::Lists(format!("{e:#}")));
                    break;
                }
            };
            shared.started.fetch_add(1, Ordering::SeqCst);
            let status = self.deliver(&r, shared, w);
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
        self.record_accepted(shared, w);
        if let Some(s) = w.session.take() {
            s.quit();
        }
    }

    /// Commits the member the relay accepted last, if that is not done yet.
    fn record_accepted<I>(&self, shared: &Shared<I>, w: &mut Worker) {
        if let Some(sent) = w.accepted.take()
            && let Err(e) = w.recorder.record(vec![sent])
        {
            self.halt(shared, Stop::Journal(e));
        }
    }

    /// One member, with retries. Returns their final status for this run.
    fn deliver<I>(&self, r: &Recipient, shared: &Shared<I>, w: &mut Worker) -> Status {
        let key = r.email.key();
        let mut last = String::new();
        for attempt in 0..self.policy.attempts {
            if attempt > 0 {
                if self.halted(shared) {
                    break;
                }
                self.record_accepted(shared, w);
                self.backoff(attempt);
            }
            if self.halted(shared) {
                break;
            }
            if w.paced {
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
            // The hand-off is committed while the message is built and the relay answers the
            // envelope; the body waits for the commit.
            let message_id = self.letterhead.message_id();
            let mut changes: Vec<Change> = w.accepted.take().into_iter().collect();
            changes.push(Change::InFlight {
                address: key.to_owned(),
                message_id: message_id.clone(),
                handed_off,
            });
            let mut in_flight = Some(w.recorder.submit(changes));
            let built = self
                .compiled
                .personalise(r)
                .map_err(|e| e.message)
                .and_then(|c| self.letterhead.build(r, &c, message_id).map_err(|e| format!("{e:#}")));
            let message = match built {
                Ok(m) => m,
                Err(e) => return self.record(shared, w, r, Status::Failed, &e),
            };
            let envelope = message.envelope();
            let (Some(from), Some(to)) = (envelope.from(), envelope.to().first()) else {
                return self.record(shared, w, r, Status::Failed, "message has no envelope");
            };
            let s = w.session.as_mut().expect("session was just opened");
            let outcome = s.send(from, to, &message.formatted(), || {
                in_flight.take().map_or(Ok(()), Ticket::wait)
            });
            if let Some(Err(e)) = in_flight.map(Ticket::wait) {
                self.halt(shared, Stop::Journal(e));
                return Status::Pending;
            }
            match outcome {
                Outcome::Sent(reply) => {
                    w.accepted = Some(Change::Finish {
                        address: key.to_owned(),
                        status: Status::Sent,
                        reply,
                        fields: None,
                        at: self.clock.unix_ms(),
                    });
                    return Status::Sent;
                }
                Outcome::Withheld(e) => {
                    self.halt(shared, Stop::Journal(e));
                    return Status::Pending;
                }
                Outcome::Permanent(reply) => return self.record(shared, w, r, Status::Failed, &reply),
                Outcome::Uncertain(why) => return self.record(shared, w, r, Status::Uncertain, &why),
                Outcome::Transient(reply) => {
                    // Back to pending at once: a crash during the backoff must not leave an
                    // in-flight row for a message the relay refused.
                    if self.record(shared, w, r, Status::Pending, &reply) != Status::Pending {
                        return Status::Pending;
                    }
                    last = reply;
                }
            }
        }
        if !last.is_empty() {
            let _ = w.recorder.record(vec![Change::Finish {
                address: key.to_owned(),
                status: Status::Pending,
                reply: last,
                fields: None,
                at: self.clock.unix_ms(),
            }]);
        }
        Status::Pending
    }

    fn record<I>(&self, shared: &Shared<I>, w: &Worker, r: &Recipient, status: Status, reply: &str) -> Status {
        let change = Change::Finish {
            address: r.email.key().to_owned(),
            status,
            reply: reply.to_owned(),
            fields: (status == Status::Failed).then(|| fields_json(r)),
            at: self.clock.unix_ms(),
        };
        match w.recorder.record(vec![change]) {
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

/// Parses the configured rates.
pub fn parse_rates(rates: &[String]) -> Result<Vec<Rate>> {
    rates.iter().map(|r| Rate::parse(r)).collect()
}
