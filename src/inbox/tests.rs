//! The run loop with sources that fail midway or repeat themselves: nothing is lost, nothing
//! is done twice, and soft bounces suppress only at the limit.

use super::source::Item;
use super::*;
use crate::journal::{Campaign, Change, Status};

/// A mailbox in memory that can drop its connection after `fail_after` messages.
struct Memory {
    items: Vec<(String, Vec<u8>)>,
    next: usize,
    fail_after: Option<usize>,
    finished: Vec<String>,
}

impl Source for Memory {
    fn next_item(&mut self) -> Result<Option<Item>> {
        if self.fail_after == Some(self.next) {
            anyhow::bail!("connection lost");
        }
        let Some((location, bytes)) = self.items.get(self.next).cloned() else {
            return Ok(None);
        };
        self.next += 1;
        Ok(Some(Item {
            location,
            body: Body::Message(bytes),
        }))
    }
    fn finish(&mut self, location: &str) -> Result<()> {
        self.finished.push(location.to_owned());
        Ok(())
    }
    fn describe(&self) -> String {
        "memory".into()
    }
}

/// A journal where members a0…a9 each got campaigns c1, c2 and c3.
fn journal(dir: &std::path::Path) -> Journal {
    let mut j = Journal::open(&dir.join("journal.db")).unwrap();
    for (n, id) in ["c1", "c2", "c3"].iter().enumerate() {
        let c = Campaign {
            id: (*id).into(),
            subject: "S".into(),
            fingerprint: "f".into(),
            newsletter: "n.md".into(),
            started: n as i64,
        };
        let members = (0..10).map(|i| Ok((format!("a{i}@example.net"), format!("l.csv:{i}"))));
        j.start(&c, members, 1).unwrap();
        for i in 0..10 {
            let address = format!("a{i}@example.net");
            let at = (n * 100 + i) as i64;
            let changes = [
                Change::InFlight {
                    address: address.clone(),
                    message_id: format!("<{id}.{i}@example.org>"),
                    handed_off: at,
                },
                Change::Finish {
                    address,
                    status: Status::Sent,
                    reply: "250".into(),
                    fields: None,
                    at,
                },
            ];
            j.apply(id, &changes).unwrap();
        }
    }
    j
}

/// A DSN about member `i` of `campaign`: hard (5.1.1) or soft (4.2.2).
fn dsn(campaign: &str, i: usize, hard: bool) -> Vec<u8> {
    let (action, status) = if hard {
        ("failed", "5.1.1")
    } else {
        ("delayed", "4.2.2")
    };
    format!(
        "From: MAILER-DAEMON@mx.example.net\r\nTo: bounces@example.org\r\nSubject: x\r\n\
         Message-ID: <dsn.{campaign}.{i}.{hard}@mx.example.net>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nx\r\n\
         --b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n\
         Final-Recipient: rfc822; a{i}@example.net\r\nAction: {action}\r\nStatus: {status}\r\n\r\n\
         --b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <{campaign}.{i}@example.org>\r\n\r\n--b--\r\n"
    )
    .into_bytes()
}

fn run(j: &mut Journal, dir: &std::path::Path, source: &mut Memory) -> Result<Summary> {
    let interrupted = AtomicBool::new(false);
    Run {
        journal: j,
        matcher: Matcher::new(None, None, Vec::new()),
        suppress_files: vec![dir.join("suppressed.csv")],
        unsubscribe_mailto: None,
        soft_limit: 2,
        dry_run: false,
        interrupted: &interrupted,
        verbose: false,
    }
    .run(source)
}

#[test]
fn a_connection_lost_midway_keeps_what_was_done_and_the_next_run_does_the_rest_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = journal(dir.path());
    let items: Vec<_> = (0..6).map(|i| (format!("at{i}"), dsn("c1", i, true))).collect();
    let mut first = Memory {
        items: items.clone(),
        next: 0,
        fail_after: Some(4),
        finished: vec![],
    };
    let e = run(&mut j, dir.path(), &mut first).unwrap_err();
    assert!(format!("{e:#}").contains("connection lost"), "{e:#}");
    assert_eq!(
        first.finished,
        ["at0", "at1", "at2", "at3"],
        "the four read were committed and flagged"
    );
    let file = std::fs::read_to_string(dir.path().join("suppressed.csv")).unwrap();
    assert_eq!(file.lines().count(), 5, "{file}");

    let mut second = Memory {
        items,
        next: 0,
        fail_after: None,
        finished: vec![],
    };
    let s = run(&mut j, dir.path(), &mut second).unwrap();
    assert_eq!((s.processed, s.already_processed, s.hard), (2, 4, 2));
    assert_eq!(s.suppressed.len(), 2);
    let file = std::fs::read_to_string(dir.path().join("suppressed.csv")).unwrap();
    assert_eq!(file.lines().count(), 7, "{file}");
    assert_eq!(j.outcome_counts("c1").unwrap()[&Outcome::BouncedHard], 6);
}

#[test]
fn soft_bounces_suppress_at_the_limit_of_distinct_campaigns_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = journal(dir.path());
    // a1: one soft bounce (in the mailbox twice) → kept; a2: in c1 and c2 → suppressed at 2.
    let items = vec![
        ("s1".to_owned(), dsn("c1", 1, false)),
        ("s2".to_owned(), dsn("c1", 1, false)),
        ("s3".to_owned(), dsn("c1", 2, false)),
        ("s4".to_owned(), dsn("c2", 2, false)),
    ];
    let mut source = Memory {
        items,
        next: 0,
        fail_after: None,
        finished: vec![],
    };
    let s = run(&mut j, dir.path(), &mut source).unwrap();
    assert_eq!(s.soft, 3, "{s:?}");
    assert_eq!(s.already_processed, 1, "the same message twice counts once");
    let got: Vec<_> = s
        .suppressed
        .iter()
        .map(|x| (x.email.as_str(), x.reason, x.campaign.as_str()))
        .collect();
    assert_eq!(got, [("a2@example.net", "soft-bounce", "c2")]);
}

#[test]
fn a_persons_reply_and_unmatched_mail_are_left_unflagged_by_every_run_and_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = journal(dir.path());
    let reply = b"From: Ana <a1@example.net>\r\nTo: news@example.org\r\nSubject: Re: S\r\n\
                  Message-ID: <reply.1@example.net>\r\nIn-Reply-To: <c1.1@example.org>\r\n\r\nThanks!\r\n"
        .to_vec();
    let auto = b"From: a3@example.net\r\nTo: news@example.org\r\nSubject: Out of office\r\n\
                 Auto-Submitted: auto-replied\r\nMessage-ID: <ooo.1@example.net>\r\n\r\nAway.\r\n"
        .to_vec();
    let stranger = String::from_utf8(dsn("c1", 0, true))
        .unwrap()
        .replace("a0@example.net", "stranger@example.com")
        .replace("<c1.0@example.org>", "<elsewhere@example.com>")
        .replace("<dsn.c1.0.true@", "<dsn.stranger@")
        .into_bytes();
    let items = vec![
        ("hard".to_owned(), dsn("c1", 0, true)),
        ("reply".to_owned(), reply),
        ("auto".to_owned(), auto),
        ("stranger".to_owned(), stranger),
    ];
    let mut first = Memory {
        items: items.clone(),
        next: 0,
        fail_after: None,
        finished: vec![],
    };
    let s = run(&mut j, dir.path(), &mut first).unwrap();
    assert_eq!(
        (s.processed, s.hard, s.other, s.auto_replies, s.unmatched, s.left_alone),
        (4, 1, 1, 1, 1, 2),
        "{s:?}"
    );
    assert_eq!(
        first.finished,
        ["hard", "auto"],
        "only what bulletin handled is flagged"
    );

    let mut second = Memory {
        items,
        next: 0,
        fail_after: None,
        finished: vec![],
    };
    let s = run(&mut j, dir.path(), &mut second).unwrap();
    assert_eq!((s.processed, s.already_processed, s.left_alone), (0, 4, 0), "{s:?}");
    assert_eq!(second.finished, ["hard", "auto"], "a later run leaves them alone too");
}
