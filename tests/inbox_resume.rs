//! `bulletin inbox` stopped midway — Ctrl-C, or killed outright — loses nothing: the next run
//! finishes, and the suppression file and the journal end up exactly as one uninterrupted run
//! over the same mailbox leaves them (a control run from the same starting state).
//!
//! The stop comes at a deterministic point, not after a delay: the run prints a line per
//! message on stderr, the test reads the first 600 lines and then stops reading, so the run
//! blocks on the full pipe well before the end of the mailbox; the signal arrives while it waits.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::process::Command;

use crate::inbox::{json, sent};
use crate::support::project::{Project, addr, report};
use crate::support::smtp_server::TestSmtp;

const MEMBERS: usize = 200;
/// Blocks of one message per member: 3,000 messages, ~170 KB of stderr lines.
const BLOCKS: usize = 15;

/// Message `i` of the mailbox: about member `i % MEMBERS + 1`, whose hard bounce comes in
/// block `m % BLOCKS` (so suppressions happen all along the mailbox); otherwise a soft bounce,
/// a complaint, a person's reply or a bounce about a stranger.
fn message(i: usize, ids: &HashMap<String, String>) -> String {
    let (block, m) = (i / MEMBERS, i % MEMBERS + 1);
    let address = addr(m);
    let original = &ids[&address];
    let dsn = |recipient: &str, original: &str, action: &str, status: &str| {
        format!(
            "From: MAILER-DAEMON@mx.example.net\r\nTo: bounces@example.org\r\nSubject: Undelivered Mail Returned to Sender\r\n\
             Message-ID: <bounce.{i}@mx.example.net>\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
             --b\r\nContent-Type: text/plain\r\n\r\nSee below.\r\n\
             --b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n\
             Final-Recipient: rfc822; {recipient}\r\nAction: {action}\r\nStatus: {status}\r\n\r\n\
             --b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {original}\r\nSubject: December news\r\n\r\n--b--\r\n"
        )
    };
    if block == m % BLOCKS {
        dsn(&address, original, "failed", "5.1.1")
    } else if block == (m + 7) % BLOCKS && m.is_multiple_of(4) {
        format!(
            "From: feedback@arf.mail.yahoo.example\r\nTo: bounces@example.org\r\nSubject: FW: December news\r\n\
             Message-ID: <arf.{i}@yahoo.example>\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=feedback-report; boundary=\"f\"\r\n\r\n\
             --f\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n\
             --f\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: Yahoo!-Mail-Feedback/2.0\r\n\
             Version: 1\r\nOriginal-Rcpt-To: {address}\r\n\r\n\
             --f\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {original}\r\nSubject: December news\r\n\r\n--f--\r\n"
        )
    } else if i.is_multiple_of(50) {
        format!(
            "From: Member {m} <{address}>\r\nTo: news@example.org\r\nSubject: Re: December news\r\n\
             Message-ID: <reply.{i}@example.org>\r\nIn-Reply-To: {original}\r\n\r\nThank you!\r\n"
        )
    } else if i.is_multiple_of(37) {
        dsn(
            &format!("stranger{i}@example.com"),
            &format!("<elsewhere.{i}@example.com>"),
            "failed",
            "5.1.1",
        )
    } else {
        dsn(&address, original, "delayed", "4.2.2")
    }
}

/// What a run leaves behind: the suppression file's rows without their date, the journal's
/// inbox records without their time, and `report --json`'s inbox counts.
#[derive(Debug, PartialEq, Eq)]
struct State {
    suppressed: Vec<String>,
    seen: Vec<(String, String)>,
    outcomes: Vec<(String, String, String, String, Option<String>)>,
    report: [Option<u64>; 4],
}

fn state(p: &Project) -> State {
    let suppressed = p
        .read("lists/unsubscribed.csv")
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            format!("{},{},{}", f[0], f[1], f[3])
        })
        .collect();
    let db = rusqlite::Connection::open(p.join(".bulletin/journal.db")).unwrap();
    let seen = db
        .prepare("SELECT key, class FROM inbox_seen ORDER BY key")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let outcomes = db
        .prepare("SELECT campaign, address, kind, message, detail FROM inbox_outcome ORDER BY campaign, address, kind")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let r = report(p);
    let report = ["bounced_hard", "bounced_soft", "complaints", "unsubscribed"].map(|k| r[k].as_u64());
    State {
        suppressed,
        seen,
        outcomes,
        report,
    }
}

/// The journal's files (database, WAL, shared memory) as they are now, to put back later.
fn snapshot(p: &Project) -> Vec<(String, Option<Vec<u8>>)> {
    ["", "-wal", "-shm"]
        .iter()
        .map(|s| format!(".bulletin/journal.db{s}"))
        .chain(["lists/unsubscribed.csv".to_owned()])
        .map(|f| {
            let bytes = std::fs::read(p.join(&f)).ok();
            (f, bytes)
        })
        .collect()
}

fn restore(p: &Project, files: &[(String, Option<Vec<u8>>)]) {
    for (f, bytes) in files {
        match bytes {
            Some(b) => std::fs::write(p.join(f), b).unwrap(),
            None => {
                let _ = std::fs::remove_file(p.join(f));
            }
        }
    }
}

fn stopped_midway(signal: &str) {
    let smtp = TestSmtp::start();
    let mut p = sent(&smtp, MEMBERS);
    let ids: HashMap<String, String> = smtp
        .messages()
        .into_iter()
        .map(|m| {
            let parsed = mail_parser::MessageParser::default().parse(&m.data).unwrap();
            (m.rcpt_to[0].clone(), format!("<{}>", parsed.message_id().unwrap()))
        })
        .collect();
    assert_eq!(ids.len(), MEMBERS);
    let total = MEMBERS * BLOCKS;
    p = p.file("Maildir/cur/.keep", "").file("Maildir/tmp/.keep", "");
    for i in 0..total {
        p = p.file(&format!("Maildir/new/{i}.mx.test"), message(i, &ids));
    }
    let before = snapshot(&p);

    // The first run, stopped once it has printed 600 lines: past its first commit (every 500
    // messages), which a kill would otherwise find nothing of.
    let mut child = p.spawn(&["inbox", "--maildir", "Maildir"]);
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let mut acted = 0;
    while acted < 600 {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "the run ended early");
        if line.contains(" for m") {
            acted += 1;
        }
    }
    Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if signal == "-INT" {
        assert_eq!(out.status.code(), Some(130), "{stdout}\n{rest}");
        assert!(stdout.contains("interrupted"), "{stdout}");
    } else {
        assert_eq!(out.status.code(), None, "killed: {stdout}");
    }

    // The next run finishes.
    let resumed = json(p.run(&["inbox", "--maildir", "Maildir", "--json"]).success());
    let (done, earlier) = (
        resumed["processed"].as_u64().unwrap(),
        resumed["already_processed"].as_u64().unwrap(),
    );
    assert!(done > 0 && earlier > 0, "stopped midway: {resumed:#}");
    assert_eq!(done + earlier, total as u64, "{resumed:#}");
    let got = state(&p);

    // One run over the same mailbox from the same start.
    restore(&p, &before);
    let control = json(p.run(&["inbox", "--maildir", "Maildir", "--json"]).success());
    assert_eq!(control["processed"], total, "{control:#}");
    let want = state(&p);
    assert_eq!(
        want.suppressed.len(),
        1 + MEMBERS,
        "every member bounced once: {:?}",
        want.suppressed
    );
    assert_eq!(got, want);
}

#[test]
fn ctrl_c_midway_loses_nothing_and_the_next_run_ends_where_one_run_would() {
    stopped_midway("-INT");
}

#[test]
fn killed_midway_loses_nothing_and_the_next_run_ends_where_one_run_would() {
    stopped_midway("-KILL");
}
