//! Rate limits, applied at the moment a message is handed to the relay.
//!
//! Short windows (per second, per minute) are governor GCRA limiters with a burst of one,
//! so messages are evenly spaced and no window ever holds more than its limit. Long windows
//! (per hour, per day) are relay quotas that span runs: they count hand-offs recorded in the
//! journal by this and earlier campaigns, and when one is spent the run stops and says when
//! it can resume. Time comes from a `Clock`, so tests run on a fake one and never sleep.

use std::collections::VecDeque;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

/// A limit: `count` messages per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl Rate {
    /// Parses `14/s`, `600/min`, `2000/h`, `50000/day`.
    pub fn parse(s: &str) -> Result<Rate> {
        let Some((n, unit)) = s.trim().split_once('/') else {
            bail!("rate {s:?}: write it as N/s, N/min, N/h or N/day");
        };
        let count: u32 = n
            .trim()
            .replace('_', "")
            .parse()
            .map_err(|_| anyhow::anyhow!("rate {s:?}: {n:?} is not a whole number"))?;
        if count == 0 {
            bail!("rate {s:?}: the count must be at least 1");
        }
        let per = match unit.trim().to_ascii_lowercase().as_str() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "min" | "minute" | "m" => Duration::from_secs(60),
            "h" | "hour" | "hr" => Duration::from_secs(3600),
            "day" | "d" => Duration::from_secs(86_400),
            other => bail!("rate {s:?}: unknown unit {other:?}; use s, min, h or day"),
        };
        Ok(Rate { count, per })
    }

    fn is_long(&self) -> bool {
        self.per >= Duration::from_secs(3600)
    }

    /// Messages per second.
    pub fn per_second(&self) -> f64 {
        f64::from(self.count) / self.per.as_secs_f64()
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "min",
            3600 => "h",
            _ => "day",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// Time, real or fake.
pub trait Clock: governor::clock::Clock<Instant = Nanos> + Clone + Send + Sync + 'static {
    /// Wall-clock milliseconds since the Unix epoch (journal timestamps, long windows).
    fn unix_ms(&self) -> i64;
    /// Waits `d`.
    fn sleep(&self, d: Duration);
}

/// The real clock.
#[derive(Debug, Clone)]
pub struct SystemClock {
    origin: Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock { origin: Instant::now() }
    }
}

impl governor::clock::Clock for SystemClock {
    type Instant = Nanos;
    fn now(&self) -> Nanos {
        Nanos::from(self.origin.elapsed())
    }
}

impl Clock for SystemClock {
    fn unix_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }

    /// Sleeps most of the way, then yields until the deadline: `thread::sleep` alone
    /// overshoots by tens of microseconds, which at high rates would cost several percent.
    fn sleep(&self, d: Duration) {
        let end = Instant::now() + d;
        if d > Duration::from_millis(1) {
            std::thread::sleep(d - Duration::from_micros(500));
        }
        while Instant::now() < end {
            std::thread::yield_now();
        }
    }
}

/// A clock that only moves when slept on, for tests.
#[derive(Debug, Clone)]
pub struct FakeClock {
    nanos: Arc<AtomicU64>,
    start_unix_ms: i64,
}

impl FakeClock {
    pub fn new(start_unix_ms: i64) -> FakeClock {
        FakeClock {
            nanos: Arc::default(),
            start_unix_ms,
        }
    }

    pub fn advance(&self, d: Duration) {
        self.nanos.fetch_add(d.as_nanos() as u64, Ordering::SeqCst);
    }

    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }
}

impl governor::clock::Clock for FakeClock {
    type Instant = Nanos;
    fn now(&self) -> Nanos {
        Nanos::from(self.nanos.load(Ordering::SeqCst))
    }
}

impl Clock for FakeClock {
    fn unix_ms(&self) -> i64 {
        self.start_unix_ms + (self.nanos.load(Ordering::SeqCst) / 1_000_000) as i64
    }

    fn sleep(&self, d: Duration) {
        self.advance(d);
    }
}

/// The answer to "may I send now?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Permit {
    /// Go; the hand-off time to record (Unix ms).
    Go(i64),
    /// A long window is spent until `resume_at` (Unix ms).
    Spent { rate: Rate, resume_at: i64 },
}

/// Long-window waits up to this long are waited out; longer ones stop the run.
const LONG_WAIT_MAX: Duration = Duration::from_secs(300);

type Limiter<C> = RateLimiter<NotKeyed, InMemoryState, C, governor::middleware::NoOpMiddleware<Nanos>>;

/// All configured limits.
pub struct Limits<C: Clock> {
    clock: C,
    short: Vec<Limiter<C>>,
    long: Mutex<Vec<(Rate, VecDeque<i64>)>>,
}

impl<C: Clock> Limits<C> {
    /// `history`: Unix-ms hand-off times already in the journal (any campaign).
    pub fn new(rates: &[Rate], clock: C, history: &[i64]) -> Limits<C> {
        let short = rates
            .iter()
            .filter(|r| !r.is_long())
            .map(|r| {
                // Round the spacing up, so N spaced messages never fit in one window.
                let nanos = r.per.as_nanos().div_ceil(u128::from(r.count)) as u64;
                let quota = Quota::with_period(Duration::from_nanos(nanos))
                    .expect("non-zero period")
                    .allow_burst(NonZeroU32::MIN);
                RateLimiter::direct_with_clock(quota, clock.clone())
            })
            .collect();
        let mut sorted = history.to_vec();
        sorted.sort_unstable();
        let now = clock.unix_ms();
        let long = rates
            .iter()
            .filter(|r| r.is_long())
            .map(|r| {
                let since = now - r.per.as_millis() as i64;
                (*r, sorted.iter().copied().filter(|&t| t > since).collect())
            })
            .collect();
        Limits {
            clock,
            short,
            long: Mutex::new(long),
        }
    }

    /// No rate is set: hand-offs never wait.
    pub fn unlimited(&self) -> bool {
        self.short.is_empty()
            && self
                .long
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .is_empty()
    }

    /// Blocks until every short window allows one more message, then checks and reserves the
    /// long windows.
    pub fn acquire(&self) -> Permit {
        loop {
            if let Some(spent) = self.long_wait() {
                return spent;
            }
            for limiter in &self.short {
                while let Err(not_until) = limiter.check() {
                    self.clock
                        .sleep(not_until.wait_time_from(governor::clock::Clock::now(&self.clock)));
                }
            }
            let now = self.clock.unix_ms();
            let mut long = self.long.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let full = long.iter_mut().any(|(rate, stamps)| {
                prune(stamps, now, rate);
                stamps.len() >= rate.count as usize
            });
            if full {
                continue; // another worker took the last slot; wait again
            }
            for (_, stamps) in long.iter_mut() {
                stamps.push_back(now);
            }
            return Permit::Go(now);
        }
    }

    /// Waits out a short long-window wait; reports a long one.
    fn long_wait(&self) -> Option<Permit> {
        let now = self.clock.unix_ms();
        let resume = {
            let mut long = self.long.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            long.iter_mut()
                .filter_map(|(rate, stamps)| {
                    prune(stamps, now, rate);
                    (stamps.len() >= rate.count as usize).then(|| {
                        let idx = stamps.len() - rate.count as usize;
                        (*rate, stamps[idx] + rate.per.as_millis() as i64)
                    })
                })
                .max_by_key(|(_, at)| *at)
        }?;
        let (rate, resume_at) = resume;
        let wait = Duration::from_millis((resume_at - now).max(0) as u64 + 1);
        if wait > LONG_WAIT_MAX {
            return Some(Permit::Spent { rate, resume_at });
        }
        self.clock.sleep(wait);
        None
    }
}

fn prune(stamps: &mut VecDeque<i64>, now: i64, rate: &Rate) {
    let since = now - rate.per.as_millis() as i64;
    while stamps.front().is_some_and(|&t| t <= since) {
        stamps.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000;

    /// Most messages in any window of `per` among sorted times (ms).
    fn max_in_window(times: &[i64], per: Duration) -> usize {
        let per = per.as_millis() as i64;
        let mut best = 0;
        let mut lo = 0;
        for hi in 0..times.len() {
            while times[hi] - times[lo] >= per {
                lo += 1;
            }
            best = best.max(hi - lo + 1);
        }
        best
    }

    fn run(rates: &[&str], n: usize) -> (Vec<i64>, FakeClock) {
        let rates: Vec<Rate> = rates.iter().map(|r| Rate::parse(r).unwrap()).collect();
        let clock = FakeClock::new(T0);
        let limits = Limits::new(&rates, clock.clone(), &[]);
        let times = (0..n)
            .map(|_| match limits.acquire() {
                Permit::Go(t) => t,
                other @ Permit::Spent { .. } => panic!("{other:?}"),
            })
            .collect();
        (times, clock)
    }

    #[test]
    fn parses_rates() {
        assert_eq!(
            Rate::parse("14/s").unwrap(),
            Rate {
                count: 14,
                per: Duration::from_secs(1)
            }
        );
        assert_eq!(Rate::parse("50_000/day").unwrap().per, Duration::from_secs(86_400));
        assert_eq!(Rate::parse("600/min").unwrap().to_string(), "600/min");
        for bad in ["14", "0/s", "x/s", "5/week"] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn never_above_and_at_least_98_percent_of_a_per_second_limit() {
        let (times, clock) = run(&["14/s"], 1400);
        assert!(max_in_window(&times, Duration::from_secs(1)) <= 14);
        let achieved = 1399.0 / clock.elapsed().as_secs_f64();
        assert!(achieved >= 14.0 * 0.98, "{achieved}/s");
    }

    #[test]
    fn tightest_of_several_windows_rules() {
        let (times, clock) = run(&["10/s", "120/min"], 600);
        assert!(max_in_window(&times, Duration::from_secs(1)) <= 10);
        assert!(max_in_window(&times, Duration::from_secs(60)) <= 120);
        let achieved = 599.0 / clock.elapsed().as_secs_f64();
        assert!(achieved >= 2.0 * 0.98, "{achieved}/s");
    }

    #[test]
    fn high_rates_are_exact_too() {
        let (times, clock) = run(&["1000/s"], 20_000);
        assert!(max_in_window(&times, Duration::from_secs(1)) <= 1000);
        assert!(19_999.0 / clock.elapsed().as_secs_f64() >= 980.0);
    }

    #[test]
    fn daily_quota_counts_earlier_runs_and_says_when_to_resume() {
        let day = Rate::parse("100/day").unwrap();
        // 95 sends from an earlier campaign over the last 23 hours.
        let history: Vec<i64> = (0..95).map(|i| T0 - 23 * 3_600_000 + i * 1000).collect();
        let clock = FakeClock::new(T0);
        let limits = Limits::new(&[day], clock.clone(), &history);
        for _ in 0..5 {
            assert!(matches!(limits.acquire(), Permit::Go(_)));
        }
        match limits.acquire() {
            Permit::Spent { rate, resume_at } => {
                assert_eq!(rate, day);
                assert_eq!(resume_at, history[0] + 86_400_000);
            }
            other @ Permit::Go(_) => panic!("{other:?}"),
        }
    }

    #[test]
    fn short_waits_on_an_hourly_window_are_waited_out() {
        let hour = Rate::parse("3/h").unwrap();
        let clock = FakeClock::new(T0);
        let history = [T0 - 3_599_000, T0 - 10_000, T0 - 5_000];
        let limits = Limits::new(&[hour], clock.clone(), &history);
        assert!(matches!(limits.acquire(), Permit::Go(_)));
        assert!(clock.elapsed() >= Duration::from_secs(1) && clock.elapsed() < Duration::from_secs(3));
    }
}
