//! `bulletin send` and `report` end to end: the real binary against the in-process SMTP test
//! server on 127.0.0.1, with faults injected. Every assertion is about what the server
//! actually accepted and what the journal reports.

use std::os::unix::fs::PermissionsExt;
use std::process::Child;
use std::time::Duration;

use crate::support::project::{Project, addr, members, report, send, sending, uncertain_addresses};
use crate::support::smtp_server::{Action, Event, Options, Stage, TestSmtp};

const NEWSLETTER: &str = "---\nsubject: \"News for {{ first_name | default('you') }}\"\nid: news-1\n---\n\
Dear {{ first_name | default(\"friend\") }},\n\nThe news.\n";

/// A project that sends `n` members through `smtp`, retrying quickly.
/// `extra_smtp` lines replace the defaults with the same key.
fn project(smtp: &TestSmtp, n: usize, extra_smtp: &str) -> Project {
    sending(&smtp.url(), NEWSLETTER, members(n), extra_smtp)
}

fn fault(f: impl Fn(&Event) -> Action + Send + Sync + 'static) -> TestSmtp {
    TestSmtp::start_with(Options {
        fault: Some(Box::new(f)),
        ..Options::default()
    })
}

/// Starts `bulletin send` in the background (stdin closed), for kill tests.
fn spawn(p: &Project, extra: &[&str]) -> Child {
    let mut args = vec!["send", "n.md", "--list", "m.csv", "--yes"];
    args.extend_from_slice(extra);
    p.spawn(&args)
}

#[test]
fn every_member_once_envelope_matches_header_and_resume_sends_nothing_more() {
    let smtp = TestSmtp::start();
    let p = project(&smtp, 12, "");
    send(&p, &[]).success().stdout_has("12 sent, 0 failed");
    let got = smtp.received();
    assert_eq!(got.len(), 12);
    assert!(got.values().all(|&n| n == 1));
    for m in smtp.messages() {
        let parsed = mail_parser::MessageParser::default().parse(&m.data).expect("parses");
        let to = parsed
            .to()
            .and_then(|t| t.first())
            .and_then(|a| a.address())
            .expect("To");
        assert_eq!(to, m.rcpt_to[0], "envelope recipient = To header");
        assert!(parsed.header("Cc").is_none() && parsed.header("Bcc").is_none());
        assert_eq!(m.mail_from, "news@example.org");
    }
    send(&p, &[]).success().stdout_has("nothing to send");
    assert_eq!(smtp.messages().len(), 12);
    let r = report(&p);
    assert_eq!(
        (r["campaign"].as_str(), r["total"].as_u64(), r["sent"].as_u64()),
        (Some("news-1"), Some(12), Some(12))
    );
    assert_eq!(
        (r["failed"].as_u64(), r["pending"].as_u64(), r["uncertain"].as_u64()),
        (Some(0), Some(0), Some(0))
    );
    let mode = std::fs::metadata(p.join(".bulletin/journal.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn limit_then_resume_reaches_everyone_exactly_once() {
    let smtp = TestSmtp::start();
    let p = project(&smtp, 9, "");
    send(&p, &["--limit", "4"]).success().stdout_has("4 sent");
    assert_eq!(smtp.messages().len(), 4);
    send(&p, &[])
        .success()
        .stdout_has("5 sent")
        .stdout_has("(4 sent earlier)");
    let got = smtp.received();
    assert_eq!(got.len(), 9);
    assert!(got.values().all(|&n| n == 1));
}

#[test]
fn refuses_without_yes_when_stdin_is_not_a_terminal() {
    let smtp = TestSmtp::start();
    let p = project(&smtp, 3, "");
    p.run(&["send", "n.md", "--list", "m.csv"])
        .code(1)
        .stderr_has("refusing to send without confirmation");
    assert_eq!(smtp.sessions(), 0, "not even a connection");
    p.run(&["report", "n.md"]).code(1);
}

#[test]
fn dry_run_writes_one_private_eml_per_member_and_touches_nothing() {
    let smtp = TestSmtp::start();
    let p = project(&smtp, 5, "");
    p.run(&["send", "n.md", "--list", "m.csv", "--dry-run"])
        .success()
        .stdout_has("wrote 5 messages");
    let dir = p.join(".bulletin/dry-run/news-1");
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    let mut tos = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let bytes = std::fs::read(&path).unwrap();
        let m = mail_parser::MessageParser::default().parse(&bytes).expect("parses");
        tos.push(
            m.to()
                .and_then(|t| t.first())
                .and_then(|a| a.address())
                .unwrap()
                .to_owned(),
        );
        assert!(m.subject().unwrap().starts_with("News for Member"));
    }
    tos.sort();
    assert_eq!(tos, (1..=5).map(addr).collect::<Vec<_>>());
    assert_eq!(smtp.sessions(), 0);
    assert!(
        !p.join(".bulletin/journal.db").exists(),
        "a dry run never creates the journal"
    );
}

#[test]
fn test_send_is_recorded_apart_from_the_campaign() {
    let smtp = TestSmtp::start();
    let p = project(&smtp, 3, "").file("staff.csv", "email,first_name\nm1@example.org,Staff\n");
    p.run(&["send", "n.md", "--list", "staff.csv", "--test", "--yes"])
        .success()
        .stdout_has("1 sent");
    p.run(&["report", "n.md", "--test"])
        .success()
        .stdout_has("sent       1");
    send(&p, &[]).success().stdout_has("3 sent");
    assert_eq!(
        smtp.received()[&addr(1)],
        2,
        "the staff member gets the test and the real one"
    );
    assert_eq!(report(&p)["sent"], 3);
}

#[test]
fn temporary_rcpt_failures_are_retried_and_delivered() {
    let smtp = fault(|e| match (e.stage, e.rcpt) {
        (Stage::Rcpt, Some("m3@example.org")) if e.attempt <= 2 => Action::Reply(451, "4.3.0 try later".into()),
        _ => Action::Continue,
    });
    let p = project(&smtp, 5, "");
    send(&p, &[]).success().stdout_has("5 sent");
    assert!(smtp.received().values().all(|&n| n == 1));
    assert_eq!(smtp.attempts(Stage::Rcpt), 7);
}

#[test]
fn temporary_failures_that_persist_stay_pending_for_the_next_run() {
    let smtp = fault(|e| match (e.stage, e.rcpt) {
        (Stage::Rcpt, Some("m2@example.org")) => Action::Reply(452, "4.2.2 mailbox full".into()),
        _ => Action::Continue,
    });
    let p = project(&smtp, 3, "attempts = 3\n");
    send(&p, &[]).code(3).stdout_has("2 sent, 0 failed, 1 pending");
    let r = report(&p);
    assert_eq!((r["sent"].as_u64(), r["pending"].as_u64()), (Some(2), Some(1)));
    // The next run retries only the pending member.
    let fixed = TestSmtp::start();
    send(&p, &["--smtp", &fixed.url()]).success().stdout_has("1 sent");
    assert_eq!(fixed.received().keys().collect::<Vec<_>>(), vec![&addr(2)]);
}

#[test]
fn permanent_failure_is_recorded_with_its_reply_and_the_run_goes_on() {
    let smtp = fault(|e| match (e.stage, e.rcpt) {
        (Stage::Rcpt, Some("m2@example.org")) => Action::Reply(550, "5.1.1 no such user".into()),
        _ => Action::Continue,
    });
    let p = project(&smtp, 4, "");
    send(&p, &[]).code(3).stdout_has("3 sent, 1 failed");
    assert_eq!(smtp.attempts(Stage::Rcpt), 4, "a 5xx is not retried");
    let r = report(&p);
    assert_eq!(r["failed"], 1);
    assert!(r["failures"][0]["reply"].as_str().unwrap().contains("no such user"));
    p.run(&["report", "n.md", "--failed-csv", "failed.csv"]).success();
    let csv = p.read("failed.csv");
    assert!(csv.starts_with("email,first_name,error\n"), "{csv}");
    assert!(
        csv.contains("m2@example.org,Member2,") && csv.contains("no such user"),
        "{csv}"
    );
    // A rerun does not mail the failed member again.
    send(&p, &[]).success().stdout_has("nothing to send");
}

#[test]
fn connection_lost_after_the_final_dot_is_uncertain_and_not_resent() {
    let smtp = fault(|e| match (e.stage, e.rcpt) {
        (Stage::DataEnd, Some("m2@example.org")) => Action::Disconnect,
        _ => Action::Continue,
    });
    let p = project(&smtp, 3, "");
    send(&p, &[])
        .success()
        .stdout_has("2 sent, 0 failed, 0 pending, 1 uncertain");
    assert_eq!(smtp.attempts(Stage::DataEnd), 3, "the uncertain one is not retried");
    let r = report(&p);
    assert_eq!(r["uncertain"], 1);
    assert_eq!(r["uncertain_members"][0]["address"], "m2@example.org");
    assert!(
        r["uncertain_members"][0]["message_id"]
            .as_str()
            .unwrap()
            .ends_with("@example.org>")
    );
    let again = TestSmtp::start();
    send(&p, &["--smtp", &again.url()])
        .success()
        .stdout_has("nothing to send")
        .stderr_has("uncertain");
    assert_eq!(again.messages().len(), 0);
    send(&p, &["--smtp", &again.url(), "--resend-uncertain"])
        .success()
        .stdout_has("1 sent");
    assert_eq!(again.received().keys().collect::<Vec<_>>(), vec![&addr(2)]);
}

#[test]
fn connection_lost_before_the_end_of_data_is_retried() {
    let smtp = fault(|e| match (e.stage, e.rcpt) {
        (Stage::Data, Some("m1@example.org")) if e.attempt == 1 => Action::Disconnect,
        (Stage::Mail, _) if e.session == 1 && e.attempt == 2 => Action::Disconnect,
        _ => Action::Continue,
    });
    let p = project(&smtp, 4, "concurrency = 1\n");
    send(&p, &[]).success().stdout_has("4 sent");
    assert!(smtp.received().values().all(|&n| n == 1));
    assert_eq!(smtp.received().len(), 4);
}

#[test]
fn a_reply_slower_than_the_timeout_is_retried() {
    let smtp = fault(|e| match e.stage {
        Stage::Mail if e.attempt == 1 => Action::Delay(Duration::from_millis(1500)),
        _ => Action::Continue,
    });
    let p = project(&smtp, 2, "timeout = 1\nconcurrency = 1\n");
    send(&p, &[]).success().stdout_has("2 sent");
    assert!(smtp.received().values().all(|&n| n == 1));
}

#[test]
fn auth_failure_aborts_before_any_member_is_touched() {
    let smtp = TestSmtp::start_with(Options {
        auth: Some(("news".into(), "right-pw".into())),
        ..Options::default()
    });
    let url = smtp.url().replace("smtp://", "smtp://news@");
    let p = project(&smtp, 3, "").env("BULLETIN_SMTP_PASSWORD", "wrong-pw-123");
    let run = p.run(&["send", "n.md", "--list", "m.csv", "--yes", "--smtp", &url]);
    run.code(1)
        .stderr_has("authentication failed")
        .stderr_has("nothing was sent")
        .stderr_lacks("wrong-pw-123");
    assert_eq!(smtp.attempts(Stage::Mail), 0);
    let p = p.env("BULLETIN_SMTP_PASSWORD", "right-pw");
    p.run(&["send", "n.md", "--list", "m.csv", "--yes", "--smtp", &url])
        .success()
        .stdout_has("3 sent");
}

#[test]
fn a_run_of_failures_stops_cleanly() {
    let smtp = fault(|e| match e.stage {
        Stage::Rcpt => Action::Reply(550, format!("5.1.1 <{}>: user unknown", e.rcpt.unwrap_or_default())),
        _ => Action::Continue,
    });
    let p = project(&smtp, 30, "stop_after_failures = 3\nconcurrency = 1\n");
    send(&p, &[]).code(1).stderr_has("3 members in a row");
    assert_eq!(smtp.attempts(Stage::Rcpt), 3);
    let r = report(&p);
    assert_eq!((r["failed"].as_u64(), r["pending"].as_u64()), (Some(3), Some(27)));
}

#[test]
fn relaying_denied_stops_the_run_and_burns_nobody() {
    let smtp = fault(|e| match e.stage {
        Stage::Rcpt => Action::Reply(
            554,
            format!("5.7.1 <{}>: Relay access denied", e.rcpt.unwrap_or_default()),
        ),
        _ => Action::Continue,
    });
    let p = project(&smtp, 10, "concurrency = 2\n");
    send(&p, &[])
        .code(1)
        .stderr_has("Relay access denied")
        .stderr_has("to resume:");
    let r = report(&p);
    assert_eq!((r["failed"].as_u64(), r["pending"].as_u64()), (Some(0), Some(10)));
}

#[test]
fn a_daily_quota_counts_earlier_runs_and_stops_with_a_resume_time() {
    let smtp = TestSmtp::start();
    let p = project(&smtp, 5, "");
    send(&p, &["--rate", "3/day", "--limit", "2"]).success();
    send(&p, &["--rate", "3/day"])
        .success()
        .stdout_has("1 sent")
        .stderr_has("3/day quota reached; resume after");
    assert_eq!(smtp.messages().len(), 3);
    assert_eq!(report(&p)["pending"], 2);
}

#[test]
fn a_changed_newsletter_needs_a_flag_to_resume() {
    let smtp = TestSmtp::start();
    let p = project(&smtp, 3, "");
    send(&p, &["--limit", "1"]).success();
    let p = p.file("n.md", NEWSLETTER.replace("The news.", "The corrected news."));
    send(&p, &[]).code(1).stderr_has("changed since");
    assert_eq!(smtp.messages().len(), 1);
    send(&p, &["--allow-changed"]).success().stdout_has("2 sent");
}

#[test]
fn sigkill_mid_send_then_resume_delivers_everyone_at_most_once() {
    let smtp = fault(|e| match e.stage {
        Stage::DataEnd => Action::Delay(Duration::from_millis(20)),
        _ => Action::Continue,
    });
    let p = project(&smtp, 40, "");
    let mut child = spawn(&p, &[]);
    smtp.wait_for(10, &mut child);
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    let before = smtp.messages().len();
    assert!(before < 40, "killed before the end");
    send(&p, &[]).success();
    let got = smtp.received();
    assert!(got.values().all(|&n| n == 1), "nobody twice: {got:?}");
    let r = report(&p);
    let uncertain = uncertain_addresses(&r);
    assert!(uncertain.len() <= 2, "at most `concurrency` uncertain: {uncertain:?}");
    for i in 1..=40 {
        let a = addr(i);
        assert!(
            got.contains_key(&a) || uncertain.contains(&a),
            "{a} neither received nor uncertain"
        );
    }
    assert_eq!(r["sent"].as_u64().unwrap() as usize + uncertain.len(), 40);
}

#[test]
fn ctrl_c_finishes_in_flight_records_and_exits_130() {
    ctrl_c_case(false);
}

/// With PIPELINING each worker holds a ready message for the next envelope: Ctrl-C must send
/// the held body and record it too.
#[test]
fn ctrl_c_finishes_a_held_message_too() {
    ctrl_c_case(true);
}

fn ctrl_c_case(pipelining: bool) {
    let smtp = TestSmtp::start_with(Options {
        fault: Some(Box::new(|e: &Event| match e.stage {
            Stage::DataEnd => Action::Delay(Duration::from_millis(20)),
            _ => Action::Continue,
        })),
        pipelining,
        ..Options::default()
    });
    let p = project(&smtp, 40, "");
    let mut child = spawn(&p, &[]);
    smtp.wait_for(5, &mut child);
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("to resume"));
    let r = report(&p);
    assert_eq!(r["uncertain"], 0, "in-flight messages were finished and recorded");
    assert_eq!(r["sent"].as_u64().unwrap() as usize, smtp.messages().len());
    send(&p, &[]).success();
    let got = smtp.received();
    assert_eq!(got.len(), 40);
    assert!(got.values().all(|&n| n == 1));
}

#[test]
fn shards_split_the_list_without_overlap_and_report_merges_their_journals() {
    let smtp = TestSmtp::start();
    let p = project(&smtp, 30, "");
    let one = send(&p, &["--shard", "1/2"]);
    one.success();
    let first: Vec<String> = smtp.messages().iter().map(|m| m.rcpt_to[0].clone()).collect();
    assert!(
        !first.is_empty() && first.len() < 30,
        "shard 1 took {} of 30",
        first.len()
    );
    assert!(p.join(".bulletin/journal-shard-1-of-2.db").exists());
    // Shard 1 again: nothing new (its own journal remembers).
    send(&p, &["--shard", "1/2"]).success().stdout_has("nothing to send");
    send(&p, &["--shard", "2/2"]).success();
    let got = smtp.received();
    assert_eq!(got.len(), 30, "the two shards together reach everyone");
    assert!(got.values().all(|&n| n == 1), "no member is in both shards");
    // Report reads both shard journals and merges them.
    let r = report(&p);
    assert_eq!((r["total"].as_u64(), r["sent"].as_u64()), (Some(30), Some(30)));
    p.run(&["send", "n.md", "--list", "m.csv", "--shard", "3/2"])
        .code(2)
        .stderr_has("K must be between 1 and N");
}
