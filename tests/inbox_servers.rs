//! `bulletin inbox` against real servers started by the test on 127.0.0.1: Dovecot (IMAP,
//! plain on loopback and TLS with a certificate made by `openssl req`) serving a Maildir, and
//! Postfix writing a real bounce. Ignored unless asked for: `.ci/run` installs
//! `dovecot-imapd` and `postfix` and runs them as root.

use crate::inbox::{json, mailbox, sent, suppressed};
use crate::support::dovecot::{Dovecot, PASSWORD};
use crate::support::postfix::Postfix;
use crate::support::smtp_server::TestSmtp;

const EXPECTED_COUNTS: [u64; 8] = [9, 2, 1, 1, 1, 1, 1, 2];

fn counts(v: &serde_json::Value) -> [u64; 8] {
    [
        "processed",
        "hard",
        "soft",
        "complaints",
        "unsubscribes",
        "auto_replies",
        "other",
        "unmatched",
    ]
    .map(|k| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}")))
}

#[test]
#[ignore = "needs dovecot"]
fn over_plain_imap_on_loopback_what_bulletin_handled_is_flagged_seen_and_a_reply_stays_unread() {
    let smtp = TestSmtp::start();
    let p = sent(&smtp, 6);
    let messages = mailbox(&p, &smtp);
    let dovecot = Dovecot::start(&messages);
    let url = format!("imap://bounces%40example.org@127.0.0.1:{}/INBOX", dovecot.plain);
    // The second run below finds the mailbox and its password in bulletin.toml alone.
    let config = p.read("bulletin.toml").replacen(
        "[inbox]\n",
        &format!("[inbox]\nimap = \"{url}\"\npassword_command = \"echo {PASSWORD}\"\n"),
        1,
    );
    let p = p.file("bulletin.toml", config).env("BULLETIN_IMAP_PASSWORD", PASSWORD);

    let dry = json(p.run(&["inbox", "--imap", &url, "--dry-run", "--json"]).success());
    assert_eq!(counts(&dry), EXPECTED_COUNTS, "{dry:#}");
    assert!(
        dovecot
            .files("")
            .iter()
            .all(|f| !f.contains(":2,") || !f.split(":2,").nth(1).unwrap().contains('S')),
        "a dry run flags nothing: {:?}",
        dovecot.files("")
    );

    let v = json(p.run(&["inbox", "--imap", &url, "--json"]).success());
    assert_eq!(counts(&v), EXPECTED_COUNTS, "{v:#}");
    assert_eq!(suppressed(&v).len(), 4, "{v:#}");
    let files = dovecot.files("");
    assert_eq!(files.len(), 9, "nothing deleted: {files:?}");
    let (seen, unseen) = dovecot.by_seen("");
    assert_eq!(seen, HANDLED, "what bulletin handled is flagged \\Seen: {files:?}");
    assert_eq!(unseen, LEFT_ALONE, "the rest stays unread: {files:?}");
    // No flag and no password in the environment: `[inbox] imap` and `password_command`.
    let out = p
        .command(&["inbox", "--json"])
        .env_remove("BULLETIN_IMAP_PASSWORD")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let again: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (again["processed"].as_u64(), again["already_processed"].as_u64()),
        (Some(0), Some(9))
    );
    assert_eq!(dovecot.by_seen("").1, LEFT_ALONE, "and stays so");
}

/// The messages of [`mailbox`] bulletin handles (matched, or an auto-reply), and those it
/// leaves unread for a person (a person's reply, the unmatched), by name.
const HANDLED: [&str; 6] = [
    "auto",
    "complaint-m3",
    "hard-m1",
    "hard-m2",
    "soft-m5",
    "unsubscribe-m4",
];
const LEFT_ALONE: [&str; 3] = ["forged", "person", "stranger"];

/// `a` and `b` together, sorted.
fn both(split: (Vec<String>, Vec<String>)) -> Vec<String> {
    let mut all = [split.0, split.1].concat();
    all.sort_unstable();
    all
}

#[test]
#[ignore = "needs dovecot"]
fn over_imaps_with_a_verified_certificate_handled_messages_are_moved_and_a_reply_stays_in_inbox() {
    let smtp = TestSmtp::start();
    let p = sent(&smtp, 6);
    let messages = mailbox(&p, &smtp);
    let dovecot = Dovecot::start(&messages);
    let url = format!("imaps://bounces%40example.org@localhost:{}/INBOX", dovecot.tls);

    // The test's own certificate is not trusted by default: refused.
    let untrusted = p.env("BULLETIN_IMAP_PASSWORD", PASSWORD);
    let r = untrusted.run(&["inbox", "--imap", &url]);
    assert_ne!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stderr.to_lowercase().contains("certificate"), "{}", r.stderr);

    let p = untrusted.env("SSL_CERT_FILE", &dovecot.cert());
    let v = json(
        p.run(&["inbox", "--imap", &url, "--move-to", "Processed", "--json"])
            .success(),
    );
    assert_eq!(counts(&v), EXPECTED_COUNTS, "{v:#}");
    assert_eq!(
        both(dovecot.by_seen(".Processed")),
        HANDLED,
        "what bulletin handled is moved to Processed"
    );
    assert_eq!(
        dovecot.by_seen(""),
        (vec![], LEFT_ALONE.map(String::from).to_vec()),
        "a person's reply and the unmatched stay unread in INBOX"
    );
    // A second run moves nothing more and counts nothing again.
    let again = json(
        p.run(&["inbox", "--imap", &url, "--move-to", "Processed", "--json"])
            .success(),
    );
    assert_eq!(
        (again["processed"].as_u64(), again["already_processed"].as_u64()),
        (Some(0), Some(3)),
        "{again:#}"
    );
    assert_eq!(dovecot.by_seen(""), (vec![], LEFT_ALONE.map(String::from).to_vec()));
    assert_eq!(both(dovecot.by_seen(".Processed")), HANDLED);

    // A wrong password is an error, and nothing else happens.
    let wrong = p.env("BULLETIN_IMAP_PASSWORD", "wrong");
    let r = wrong.run(&["inbox", "--imap", &url]);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("login"), "{}", r.stderr);
}

#[test]
#[ignore = "needs postfix"]
fn a_bounce_written_by_postfix_for_an_unknown_user_suppresses_that_member() {
    let postfix = Postfix::start();
    let p = crate::inbox::sent_through(
        &format!("smtp://127.0.0.1:{}", postfix.port),
        "email\ngone.one@members.test\ngone.two@members.test\n",
    );
    let bounces = postfix.wait_for_bounces(2);
    for b in &bounces {
        // Postfix's own DSN, come back to the member's VERP address.
        assert!(
            b.contains("report-type=delivery-status") && b.contains("Status: 5.1.1"),
            "{b}"
        );
        assert!(b.contains("bounces+"), "{b}");
    }
    let maildir = postfix.maildir().display().to_string();
    let v = json(p.run(&["inbox", "--maildir", &maildir, "--json"]).success());
    assert_eq!(
        (v["processed"].as_u64(), v["hard"].as_u64(), v["unmatched"].as_u64()),
        (Some(2), Some(2), Some(0)),
        "{v:#}"
    );
    let expected = ["gone.one@members.test", "gone.two@members.test"]
        .map(|e| (e.to_owned(), "bounce".to_owned(), "news-1".to_owned()));
    assert_eq!(suppressed(&v), expected);
    let r = crate::support::project::report(&p);
    assert_eq!(r["bounced_hard"].as_u64(), Some(2), "{r:#}");
}

/// A proxy on a free loopback port to `target` for one connection, which it cuts (both ways)
/// in the middle of the `nth` message the server sends (at its `BODY[] {` line): a connection
/// dropped midway, at the same point every time.
fn cutting_proxy(target: u16, nth: usize) -> u16 {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut client, _) = listener.accept().unwrap();
        let mut server = TcpStream::connect(("127.0.0.1", target)).unwrap();
        let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut c2, &mut s2);
        });
        let marker = b"BODY[] {";
        let mut all: Vec<u8> = Vec::new();
        let mut forwarded = 0;
        let mut buf = [0u8; 512];
        loop {
            let n = server.read(&mut buf).unwrap_or(0);
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
            let cut = all
                .windows(marker.len())
                .enumerate()
                .filter(|(_, w)| w == marker)
                .nth(nth - 1)
                .map(|(i, _)| i + marker.len());
            let upto = cut.unwrap_or(all.len());
            if client.write_all(&all[forwarded..upto]).is_err() || cut.is_some() {
                break;
            }
            forwarded = upto;
        }
        let _ = client.shutdown(Shutdown::Both);
        let _ = server.shutdown(Shutdown::Both);
    });
    port
}

#[test]
#[ignore = "needs dovecot"]
fn a_connection_dropped_midway_loses_nothing_and_the_next_run_finishes() {
    let smtp = TestSmtp::start();
    let p = sent(&smtp, 6);
    let messages = mailbox(&p, &smtp);
    let dovecot = Dovecot::start(&messages);
    let p = p.env("BULLETIN_IMAP_PASSWORD", PASSWORD);
    let url = |port: u16| format!("imap://bounces%40example.org@127.0.0.1:{port}/INBOX");

    // Cut while the fourth message comes through: three are read whole.
    let proxy = cutting_proxy(dovecot.plain, 4);
    let cut = p.run(&["inbox", "--imap", &url(proxy), "--json"]);
    assert_eq!(cut.code, Some(1), "{}\n{}", cut.stdout, cut.stderr);
    assert!(cut.stderr.contains("run inbox again"), "{}", cut.stderr);
    let file = p.read("lists/unsubscribed.csv");
    let before = file.lines().count() - 1;
    assert!(before < 4, "stopped midway: {file}");

    let v = json(p.run(&["inbox", "--imap", &url(dovecot.plain), "--json"]).success());
    let (done, earlier) = (
        v["processed"].as_u64().unwrap(),
        v["already_processed"].as_u64().unwrap(),
    );
    assert_eq!(
        earlier, 3,
        "the first run's messages were recorded: {v:#}\n{}",
        cut.stderr
    );
    assert_eq!(done + earlier, 9, "{v:#}");
    assert_eq!(suppressed(&v).len(), 4 - before, "{v:#}");
    let file = p.read("lists/unsubscribed.csv");
    let mut got: Vec<&str> = file.lines().skip(1).map(|l| l.split(',').next().unwrap()).collect();
    got.sort_unstable();
    assert_eq!(
        got,
        ["m1@example.org", "m2@example.org", "m3@example.org", "m4@example.org"]
    );
    let (seen, unseen) = dovecot.by_seen("");
    assert_eq!(
        (seen, unseen),
        (
            HANDLED.map(String::from).to_vec(),
            LEFT_ALONE.map(String::from).to_vec()
        )
    );
}
