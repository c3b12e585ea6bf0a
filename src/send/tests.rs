//! The delivery loop in-process: a real SMTP conversation with the test server from
//! `tests/support` on 127.0.0.1, the journal in a temporary folder, and the fake clock, so
//! backoffs and rate pacing take no time and are measured on the clock the loop was given.

#[path = "../../tests/support/smtp_server.rs"]
#[allow(unreachable_pub, reason = "the integration tests' server, used here as it is")]
mod smtp_server;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use smtp_server::{Action, Event, Options, Stage, TestSmtp};

use super::progress::Progress;
use super::rate::{Clock, FakeClock, Limits, Rate};
use super::select::Selection;
use super::smtp::Relay;
use super::{Delivery, Policy, Stop, Summary};
use crate::config::Config;
use crate::diagnostic::Diagnostics;
use crate::journal::{Campaign, Journal, Status};
use crate::list::Sources;
use crate::message::Letterhead;
use crate::newsletter::Newsletter;
use crate::render::Compiled;

const CONFIG: &str = r#"from = "Example Network <news@example.org>"
[organisation]
name = "Example Network"
postal_address = "PO Box 1, Oakland, CA 94601"
[unsubscribe]
mailto = "unsubscribe@example.org"
"#;

const NEWSLETTER: &str = "---\nsubject: Hello {{ first_name | default(\"friend\") }}\n---\nDear {{ first_name | default(\"friend\") }}, this is the news.\n";

/// Address of member `i` (from 1).
fn member(i: usize) -> String {
    format!("m{i}@example.org")
}

/// A compiled newsletter, a list of `n` members and an empty journal.
struct Rig {
    dir: tempfile::TempDir,
    list: PathBuf,
    compiled: Compiled,
    letterhead: Letterhead,
    journal: Mutex<Journal>,
}

impl Rig {
    fn new(n: usize) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("m.csv");
        let rows: String = (1..=n).map(|i| format!("{},Name{i}\n", member(i))).collect();
        std::fs::write(&list, format!("email,first_name\n{rows}")).unwrap();
        let config = Config::parse(CONFIG, Path::new("bulletin.toml")).unwrap();
        let newsletter = Newsletter::parse(NEWSLETTER, Path::new("n.md")).unwrap();
        let sources = Sources::open(std::slice::from_ref(&list), &[]).unwrap();
        let mut diags = Diagnostics::default();
        let compiled = Compiled::compile(&newsletter, &config, Some(&sources.fields), None, &mut diags).unwrap();
        assert_eq!(diags.errors(), 0, "{diags}");
        let letterhead = Letterhead::new(&newsletter, &config, None).unwrap();
        let journal = Journal::open(&dir.path().join("journal.db")).unwrap();
        Rig {
            dir,
            list,
            compiled,
            letterhead,
            journal: Mutex::new(journal),
        }
    }

    fn sources(&self) -> Sources {
        Sources::open(std::slice::from_ref(&self.list), &[]).unwrap()
    }

    /// Records the campaign with every member pending, then delivers to them all.
    fn run(&self, smtp: &TestSmtp, run: Run<'_>) -> Summary {
        let sources = self.sources();
        let selection = Selection::default();
        let campaign = Campaign {
            id: "c".into(),
            subject: "S".into(),
            fingerprint: "f".into(),
            newsletter: "n.md".into(),
            started: run.clock.unix_ms(),
        };
        let members = selection
            .jobs(&sources)
            .map(|r| r.map(|r| (r.email.key().to_owned(), r.location())));
        let mut journal = self.journal.lock().unwrap();
        journal.start(&campaign, members, run.clock.unix_ms()).unwrap();
        if run.read_only_journal {
            journal.read_only_for_test();
        }
        drop(journal);
        let total = selection.jobs(&sources).count();
        let relay = Relay::parse(&smtp.url(), None, run.timeout).unwrap();
        let first = relay.connect().unwrap();
        let limits = Limits::new(run.rates, run.clock.clone(), &[]);
        let progress = Progress::new(total, true, None, "S");
        let delivery = Delivery {
            relay: &relay,
            compiled: &self.compiled,
            letterhead: &self.letterhead,
            journal: &self.journal,
            campaign: "c",
            limits: &limits,
            clock: run.clock.clone(),
            policy: run.policy,
            interrupted: run.interrupted,
            progress: &progress,
        };
        delivery.run(selection.jobs(&sources), total, first)
    }

    /// Each member's status in the journal, by address.
    fn statuses(&self) -> Vec<(String, Status)> {
        let journal = Journal::open(&self.dir.path().join("journal.db")).unwrap();
        let mut rows: Vec<(String, Status)> = journal
            .deliveries("c")
            .unwrap()
            .into_iter()
            .map(|d| (d.address, d.status))
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows
    }

    fn count(&self, status: Status) -> usize {
        self.statuses().iter().filter(|(_, s)| *s == status).count()
    }
}

/// How to run.
struct Run<'a> {
    rates: &'a [Rate],
    clock: FakeClock,
    policy: Policy,
    interrupted: &'a AtomicBool,
    read_only_journal: bool,
    /// How long the client waits for a reply (real time).
    timeout: Duration,
}

static NOT_INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn run() -> Run<'static> {
    Run {
        rates: &[],
        clock: FakeClock::new(1_800_000_000_000),
        policy: Policy {
            concurrency: 2,
            attempts: 4,
            retry_delay: Duration::from_secs(10),
            stop_after_failures: 20,
        },
        interrupted: &NOT_INTERRUPTED,
        read_only_journal: false,
        timeout: Duration::from_secs(5),
    }
}

fn server(pipelining: bool, fault: impl Fn(&Event) -> Action + Send + Sync + 'static) -> TestSmtp {
    TestSmtp::start_with(Options {
        pipelining,
        fault: Some(Box::new(fault)),
        ..Options::default()
    })
}

/// How many messages the server accepted for `address`.
fn received(smtp: &TestSmtp, address: &str) -> usize {
    smtp.messages()
        .iter()
        .filter(|m| m.rcpt_to.iter().any(|r| r == address))
        .count()
}

#[test]
fn every_member_is_sent_once_whether_or_not_the_relay_pipelines() {
    for pipelining in [false, true] {
        let rig = Rig::new(25);
        let smtp = server(pipelining, |_| Action::Continue);
        let summary = rig.run(&smtp, run());
        assert_eq!(
            (summary.sent, summary.failed, summary.pending),
            (25, 0, 0),
            "{summary:?}"
        );
        assert!(summary.stopped.is_none());
        assert_eq!(smtp.messages().len(), 25);
        assert!((1..=25).all(|i| received(&smtp, &member(i)) == 1));
        assert_eq!(rig.count(Status::Sent), 25, "pipelining {pipelining}");
    }
}

#[test]
fn a_4xx_is_retried_after_backoffs_taken_on_the_given_clock() {
    for pipelining in [false, true] {
        let rig = Rig::new(6);
        let smtp = server(pipelining, |ev| match (ev.stage, ev.rcpt, ev.attempt) {
            (Stage::Rcpt, Some("m3@example.org"), 1..=2) => Action::Reply(451, "4.3.0 try later".into()),
            _ => Action::Continue,
        });
        let r = run();
        let clock = r.clock.clone();
        let summary = rig.run(&smtp, r);
        assert_eq!((summary.sent, summary.pending), (6, 0), "{summary:?}");
        assert_eq!(received(&smtp, "m3@example.org"), 1);
        // Two backoffs: 10 s and 20 s, each with ±50 % jitter, slept on the fake clock.
        assert!(clock.elapsed() >= Duration::from_secs(15), "{:?}", clock.elapsed());
        assert_eq!(rig.count(Status::Sent), 6);
    }
}

#[test]
fn a_member_refused_every_time_stays_pending_after_the_last_attempt() {
    let rig = Rig::new(3);
    let smtp = server(true, |ev| match (ev.stage, ev.rcpt) {
        (Stage::Rcpt, Some("m2@example.org")) => Action::Reply(451, "4.3.0 try later".into()),
        _ => Action::Continue,
    });
    let mut r = run();
    r.policy.attempts = 3;
    let summary = rig.run(&smtp, r);
    assert_eq!((summary.sent, summary.pending), (2, 1), "{summary:?}");
    assert_eq!(
        smtp.attempts(Stage::Rcpt),
        2 + 3,
        "three attempts for m2, one each for the others"
    );
    let statuses = rig.statuses();
    assert!(
        statuses.contains(&("m2@example.org".into(), Status::Pending)),
        "{statuses:?}"
    );
}

#[test]
fn a_5xx_fails_that_member_and_the_run_goes_on() {
    let rig = Rig::new(5);
    let smtp = server(true, |ev| match (ev.stage, ev.rcpt) {
        (Stage::Rcpt, Some("m2@example.org")) => Action::Reply(550, "5.1.1 no such user".into()),
        _ => Action::Continue,
    });
    let summary = rig.run(&smtp, run());
    assert_eq!((summary.sent, summary.failed), (4, 1), "{summary:?}");
    assert_eq!(smtp.attempts(Stage::Rcpt), 5, "a 5xx is not retried");
    let journal = Journal::open(&rig.dir.path().join("journal.db")).unwrap();
    let failed = journal.deliveries("c").unwrap();
    let m2 = failed.iter().find(|d| d.address == "m2@example.org").unwrap();
    assert_eq!(m2.status, Status::Failed);
    assert!(
        m2.reply.as_deref().unwrap_or_default().contains("no such user"),
        "{m2:?}"
    );
}

#[test]
fn a_connection_lost_after_the_final_dot_leaves_that_member_uncertain() {
    for pipelining in [false, true] {
        let rig = Rig::new(4);
        let smtp = server(pipelining, |ev| match (ev.stage, ev.rcpt) {
            (Stage::DataEnd, Some("m2@example.org")) => Action::Disconnect,
            _ => Action::Continue,
        });
        let summary = rig.run(&smtp, run());
        assert_eq!((summary.sent, summary.uncertain), (3, 1), "{summary:?}");
        assert_eq!(received(&smtp, "m2@example.org"), 0);
        let data_ends = smtp.attempts(Stage::DataEnd);
        assert_eq!(
            data_ends, 4,
            "the uncertain one is not sent again (pipelining {pipelining})"
        );
        assert_eq!(rig.count(Status::Uncertain), 1);
    }
}

#[test]
fn a_rate_paces_hand_offs_on_the_given_clock_and_nothing_is_held() {
    let rig = Rig::new(10);
    let smtp = server(true, |_| Action::Continue);
    let rates = [Rate::parse("2/s").unwrap()];
    let mut r = run();
    r.rates = &rates;
    let clock = r.clock.clone();
    let summary = rig.run(&smtp, r);
    assert_eq!(summary.sent, 10, "{summary:?}");
    // Ten hand-offs at most two a second: the last one at least 4.5 s after the first.
    assert!(clock.elapsed() >= Duration::from_millis(4500), "{:?}", clock.elapsed());
    assert_eq!(rig.count(Status::Sent), 10);
}

#[test]
fn a_spent_daily_quota_stops_the_run_with_the_rest_pending() {
    let rig = Rig::new(5);
    let smtp = server(false, |_| Action::Continue);
    let rates = [Rate::parse("3/day").unwrap()];
    let mut r = run();
    r.rates = &rates;
    r.policy.concurrency = 1;
    let summary = rig.run(&smtp, r);
    assert_eq!((summary.sent, summary.pending), (3, 2), "{summary:?}");
    assert!(matches!(summary.stopped, Some(Stop::QuotaSpent { .. })), "{summary:?}");
    assert_eq!(smtp.messages().len(), 3);
    assert_eq!(rig.count(Status::Pending), 2);
}

#[test]
fn ctrl_c_finishes_what_is_in_flight_and_leaves_the_rest_pending() {
    for pipelining in [false, true] {
        let rig = Rig::new(12);
        // The handler's flag, raised by the server while member 5's envelope arrives.
        let interrupted: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
        let smtp = server(pipelining, move |ev| {
            if ev.stage == Stage::Rcpt && ev.rcpt == Some("m5@example.org") {
                interrupted.store(true, Ordering::SeqCst);
            }
            Action::Continue
        });
        let mut r = run();
        r.interrupted = interrupted;
        r.policy.concurrency = 1;
        let summary = rig.run(&smtp, r);
        assert!(matches!(summary.stopped, Some(Stop::Interrupted)), "{summary:?}");
        assert!(summary.sent >= 5 && summary.sent < 12, "{summary:?}");
        assert_eq!(summary.sent + summary.pending, 12, "{summary:?}");
        assert_eq!(rig.count(Status::InFlight), 0, "nothing left in flight");
        assert_eq!(
            rig.count(Status::Sent),
            smtp.messages().len(),
            "the journal matches the relay"
        );
    }
}

#[test]
fn failures_in_a_row_stop_the_run() {
    let rig = Rig::new(10);
    let smtp = server(true, |ev| match ev.stage {
        Stage::Rcpt => Action::Reply(550, format!("5.1.1 <{}> user unknown", ev.rcpt.unwrap_or_default())),
        _ => Action::Continue,
    });
    let mut r = run();
    r.policy.stop_after_failures = 3;
    r.policy.concurrency = 1;
    let summary = rig.run(&smtp, r);
    assert!(matches!(summary.stopped, Some(Stop::TooManyFailures(_))), "{summary:?}");
    assert_eq!(summary.failed, 3, "{summary:?}");
    assert_eq!(summary.failed + summary.pending, 10);
}

#[test]
fn a_journal_that_cannot_be_written_stops_the_run_before_any_body_leaves() {
    for pipelining in [false, true] {
        let rig = Rig::new(4);
        let smtp = server(pipelining, |_| Action::Continue);
        let mut r = run();
        r.read_only_journal = true;
        let summary = rig.run(&smtp, r);
        assert!(matches!(summary.stopped, Some(Stop::Journal(_))), "{summary:?}");
        assert!(smtp.messages().is_empty(), "no message without its in-flight mark");
        assert_eq!(summary.sent, 0);
        assert_eq!(rig.count(Status::Pending), 4);
    }
}

#[test]
fn a_refused_sender_stops_the_run_and_leaves_everyone_pending() {
    for pipelining in [false, true] {
        let rig = Rig::new(6);
        let smtp = server(pipelining, |ev| match ev.stage {
            Stage::Mail => Action::Reply(
                553,
                "5.7.1 <news@example.org>: Sender address rejected: not owned by user".into(),
            ),
            _ => Action::Continue,
        });
        let summary = rig.run(&smtp, run());
        let Some(Stop::Relay(why)) = &summary.stopped else {
            panic!("{summary:?}");
        };
        assert!(why.contains("Sender address rejected"), "the relay's words: {why}");
        assert_eq!(
            (summary.sent, summary.failed, summary.pending),
            (0, 0, 6),
            "{summary:?}"
        );
        assert_eq!(
            rig.count(Status::Pending),
            6,
            "nobody is marked failed (pipelining {pipelining})"
        );
    }
}

#[test]
fn authentication_required_stops_the_run_with_the_relays_words() {
    let rig = Rig::new(4);
    let smtp = server(false, |ev| match ev.stage {
        Stage::Rcpt => Action::Reply(530, "5.7.0 Authentication required".into()),
        _ => Action::Continue,
    });
    let summary = rig.run(&smtp, run());
    let Some(Stop::Relay(why)) = &summary.stopped else {
        panic!("{summary:?}");
    };
    assert!(why.contains("Authentication required"), "{why}");
    assert_eq!(summary.failed, 0);
    assert_eq!(rig.count(Status::Pending), 4);
}

#[test]
fn relaying_denied_is_about_the_session_not_the_recipient() {
    let rig = Rig::new(3);
    let smtp = server(true, |ev| match ev.stage {
        Stage::Rcpt => Action::Reply(
            554,
            format!("5.7.1 <{}>: Relay access denied", ev.rcpt.unwrap_or_default()),
        ),
        _ => Action::Continue,
    });
    let summary = rig.run(&smtp, run());
    assert!(matches!(summary.stopped, Some(Stop::Relay(_))), "{summary:?}");
    assert_eq!(rig.count(Status::Failed), 0);
}

#[test]
fn the_same_refusal_for_members_in_a_row_stops_the_run_and_leaves_them_pending() {
    let rig = Rig::new(8);
    let smtp = server(false, |ev| match ev.stage {
        Stage::DataEnd => Action::Reply(554, "5.7.1 Message rejected as spam by content filter".into()),
        _ => Action::Continue,
    });
    let mut r = run();
    r.policy.concurrency = 1;
    let summary = rig.run(&smtp, r);
    let Some(Stop::Relay(why)) = &summary.stopped else {
        panic!("{summary:?}");
    };
    assert!(why.contains("rejected as spam"), "{why}");
    assert_eq!((summary.failed, summary.pending), (0, 8), "{summary:?}");
    assert_eq!(rig.count(Status::Failed), 0, "{:?}", rig.statuses());
}

#[test]
fn different_dead_mailboxes_in_a_row_are_each_failed() {
    let rig = Rig::new(5);
    let smtp = server(false, |ev| match (ev.stage, ev.rcpt) {
        (Stage::Rcpt, Some(r)) if r != "m5@example.org" => Action::Reply(550, "5.1.1 user unknown".into()),
        _ => Action::Continue,
    });
    let mut r = run();
    r.policy.concurrency = 1;
    let summary = rig.run(&smtp, r);
    assert!(summary.stopped.is_none(), "{summary:?}");
    assert_eq!((summary.failed, summary.sent), (4, 1));
}

#[test]
fn a_stalled_recipient_waits_behind_the_healthy_ones() {
    let rig = Rig::new(5);
    let smtp = server(false, |ev| match (ev.stage, ev.rcpt, ev.attempt) {
        (Stage::Rcpt, Some("m2@example.org"), 1) => Action::Stall,
        _ => Action::Continue,
    });
    let mut r = run();
    r.policy.concurrency = 1;
    r.timeout = Duration::from_secs(1);
    let summary = rig.run(&smtp, r);
    assert_eq!((summary.sent, summary.pending), (5, 0), "{summary:?}");
    let order: Vec<String> = smtp.messages().iter().map(|m| m.rcpt_to[0].clone()).collect();
    assert_eq!(
        order,
        [
            "m1@example.org",
            "m3@example.org",
            "m4@example.org",
            "m5@example.org",
            "m2@example.org"
        ],
        "the healthy members first"
    );
    let journal = Journal::open(&rig.dir.path().join("journal.db")).unwrap();
    let m2 = journal
        .deliveries("c")
        .unwrap()
        .into_iter()
        .find(|d| d.address == "m2@example.org")
        .unwrap();
    assert_eq!(
        (m2.status, m2.attempts),
        (Status::Sent, 2),
        "the stalled attempt counts"
    );
}
