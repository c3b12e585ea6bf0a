//! Progress on stderr: an indicatif bar on a terminal, a plain line every few seconds
//! otherwise, nothing with `--quiet`.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::journal::Status;

/// Seconds between plain progress lines.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

pub struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    total: usize,
    done: AtomicUsize,
    failed: AtomicUsize,
    started: Instant,
    last_line: Mutex<Instant>,
    /// The configured rate, for the ETA before a real rate is known.
    limit_per_sec: Option<f64>,
    /// The subject as a member sees it, shortened to fit a line.
    subject: String,
}

impl Progress {
    /// `subject` is the subject as a member sees it (the plan's), never the raw template.
    pub fn new(total: usize, quiet: bool, limit_per_sec: Option<f64>, subject: &str) -> Progress {
        let subject = shorten(subject, SUBJECT_WIDTH);
        let terminal = std::io::stderr().is_terminal();
        let bar = (!quiet && terminal).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            // indicatif's own {per_sec} prints "99.0925/s"; a person writes "99.1/s".
            let style = ProgressStyle::with_template("{prefix}  {bar:30} {pos}/{len} sent  {msg}  {rate}  ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .with_key(
                    "rate",
                    |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        write!(w, "{}", per_second(state.per_sec())).ok();
                    },
                );
            bar.set_style(if std::env::var_os("NO_COLOR").is_some() {
                style
            } else {
                style.progress_chars("█▉ ")
            });
            bar.set_prefix(format!("“{subject}”"));
            bar
        });
        Progress {
            bar,
            plain: !quiet && !terminal,
            total,
            done: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            started: Instant::now(),
            last_line: Mutex::new(Instant::now()),
            limit_per_sec,
            subject,
        }
    }

    pub fn record(&self, status: Status) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let failed = if status == Status::Failed {
            self.failed.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            self.failed.load(Ordering::Relaxed)
        };
        if let Some(bar) = &self.bar {
            bar.set_position(done as u64);
            if failed > 0 {
                bar.set_message(format!("{failed} failed"));
            }
        } else if self.plain {
            let mut last = self.last_line.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.elapsed() >= PLAIN_EVERY || done == self.total {
                *last = Instant::now();
                eprintln!("{}", self.line(done, failed));
            }
        }
    }

    fn line(&self, done: usize, failed: usize) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = done as f64 / secs;
        let pace = match self.limit_per_sec {
            Some(limit) if rate > limit || done < 10 => limit,
            _ => rate,
        };
        let left = self.total.saturating_sub(done) as f64 / pace.max(0.001);
        format!(
            "progress: “{}” {done}/{} done, {failed} failed, {}, about {} left",
            self.subject,
            self.total,
            per_second(rate),
            eta(left)
        )
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The most characters of the subject a progress line shows.
const SUBJECT_WIDTH: usize = 40;

/// `text` cut to `width` characters, with "…" when it was cut.
fn shorten(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(width - 1).collect();
        short.push('…');
        short
    }
}

/// A rate as a person writes it: "14/s", "2.5/s", "0.3/s".
pub fn per_second(rate: f64) -> String {
    if rate >= 10.0 || rate == rate.round() {
        format!("{}/s", rate.round())
    } else {
        format!("{rate:.1}/s")
    }
}

fn eta(secs: f64) -> String {
    let s = secs.round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rates_read_as_a_person_writes_them() {
        assert_eq!(super::per_second(99.0925), "99/s");
        assert_eq!(super::per_second(2.46), "2.5/s");
        assert_eq!(super::per_second(14.0), "14/s");
        assert_eq!(super::per_second(0.0), "0/s");
    }

    #[test]
    fn a_long_subject_is_shortened_to_fit_the_line() {
        assert_eq!(super::shorten("Our first hundred days", 40), "Our first hundred days");
        assert_eq!(super::shorten("Nuestros primeros cien días juntos", 10), "Nuestros …");
    }

    #[test]
    fn the_plain_line_names_the_subject_as_members_see_it() {
        let progress = super::Progress::new(3, true, None, "Hello friend");
        assert!(
            progress
                .line(1, 0)
                .starts_with("progress: “Hello friend” 1/3 done, 0 failed")
        );
    }
}
