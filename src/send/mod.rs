//! Delivery: N workers, each with its own SMTP session, take members from a shared queue,
//! wait for the rate limiter, record the hand-off in the journal, send, and record the
//! outcome. Transient failures are retried with exponential backoff and jitter; permanent
//! ones are recorded and the run goes on; a lost session, a spent quota, Ctrl-C or a run of
//! failures stops everyone cleanly.
//!
//! Workers share the journal through [`record`] (group commit); how a worker moves from one
//! member to the next, and what it commits when, is in [`worker`].

pub mod outbox;
pub mod progress;
pub mod rate;
pub mod record;
pub mod select;
pub mod smtp;
mod worker;

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Result;

use crate::journal::Journal;
use crate::list::Recipient;
use crate::message::Letterhead;
use crate::render::Compiled;
use progress::Progress;
use rate::{Clock, Limits, Rate};
use record::Recorder;
use smtp::{Relay, Session};
use worker::Worker;

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

struct Shared<I> {
    /// The members still to send, read from the lists as workers need them.
    queue: Mutex<I>,
    started: AtomicUsize,
    halt: AtomicBool,
    stop: Mutex<Option<Stop>>,
    consecutive_failures: AtomicUsize,
    summary: Mutex<Summary>,
    /// Members whose command the relay did not answer in time, with their next attempt:
    /// tried again once the queue is empty, so one stalled member does not hold up the rest.
    later: Mutex<VecDeque<(Recipient, u32)>>,
    /// Permanent refusals that were not about the address (see `Refusals`).
    refusals: Mutex<Refusals>,
}

/// The same words for several members in a row are about the sender or the message, not them.
#[derive(Default)]
struct Refusals {
    /// The last refusals in a row: (address, reply with addresses removed).
    run: Vec<(String, String)>,
    /// The words that stopped the run: members refused with them meanwhile stay pending too.
    blamed: Option<String>,
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
            later: Mutex::new(VecDeque::new()),
            refusals: Mutex::new(Refusals::default()),
        };
        let workers = self.policy.concurrency.clamp(1, total.max(1));
        let first = Mutex::new(Some(first));
        let recorder = Recorder::new(self.journal, self.campaign);
        std::thread::scope(|scope| {
            for _ in 0..workers {
                let recorder = recorder.clone();
                let (shared, first) = (&shared, &first);
                scope.spawn(move || {
                    let session = first.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
                    let mut w = Worker::new(session, recorder);
                    self.worker(shared, &mut w);
                });
            }
        });
        if let Err(e) = recorder.flush() {
            self.halt(&shared, Stop::Journal(e));
        }
        let mut summary = shared
            .summary
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let started = shared.started.load(Ordering::SeqCst).min(total);
        summary.pending += total - started;
        summary.pending += shared
            .later
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len();
        summary.stopped = shared
            .stop
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        summary
    }

    fn halt<I>(&self, shared: &Shared<I>, why: Stop) {
        let mut stop = shared.stop.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
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
}

#[cfg(test)]
mod tests;
