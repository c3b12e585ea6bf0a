//! `bulletin inbox` end to end: the real binary over Maildirs and mboxes of fixture bounces
//! (tests/fixtures/inbox/, written from the formats), with a journal made by a real send to the
//! in-process SMTP server; the IMAP and Postfix tests start real servers and are ignored
//! unless those are installed (`.ci/run` installs them).

use crate::support::project::{Project, members, send, sending};
use crate::support::smtp_server::TestSmtp;

const NEWSLETTER: &str = "---\nsubject: \"December news\"\nid: news-1\n---\nDear member,\n\nThe news.\n";

const SECRET: &str = "inbox-test-secret";

/// A project with VERP that sent `n.md` to `n` members through `smtp`.
pub(crate) fn sent(smtp: &TestSmtp, n: usize) -> Project {
    sent_through(&smtp.url(), &members(n))
}

/// A project with VERP (and a suppression file) that sent `n.md` to the members in `csv`
/// through the relay at `url`.
pub(crate) fn sent_through(url: &str, csv: &str) -> Project {
    let p = configured(url, csv);
    send(&p, &[]).success();
    p
}

/// A project with VERP (and a suppression file) ready to send `n.md` to the members in `csv`
/// through the relay at `url`.
fn configured(url: &str, csv: &str) -> Project {
    let p = sending(
        url,
        NEWSLETTER,
        csv.to_owned(),
        "\n[inbox]\nbounce_address = \"bounces@example.org\"\nsoft_limit = 2\n",
    )
    .file("lists/unsubscribed.csv", "email,reason,date,campaign\n")
    .env("BULLETIN_UNSUBSCRIBE_SECRET", SECRET);
    let config = p
        .read("bulletin.toml")
        .replacen("list_id", "suppress = [\"lists/unsubscribed.csv\"]\nlist_id", 1);
    p.file("bulletin.toml", config)
}

#[test]
fn with_a_bounce_address_each_message_has_its_own_verp_envelope_sender() {
    let smtp = TestSmtp::start();
    let _p = sent(&smtp, 3);
    let mut senders: Vec<String> = smtp.messages().into_iter().map(|m| m.mail_from).collect();
    senders.sort();
    senders.dedup();
    assert_eq!(senders.len(), 3, "{senders:?}");
    for s in &senders {
        let (local, domain) = s.split_once('@').unwrap();
        assert_eq!(domain, "example.org");
        assert!(
            local.starts_with("bounces+") && local.len() == "bounces+".len() + 26,
            "{s}"
        );
        assert_eq!(local, local.to_lowercase());
    }
}

/// A fixture from tests/fixtures/inbox/ with `(from, to)` replacements.
pub(crate) fn fixture(name: &str, replace: &[(&str, &str)]) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/inbox")
        .join(name);
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (from, to) in replace {
        text = text.replace(from, to);
    }
    text
}

/// What the relay accepted for `address`: (envelope sender, Message-ID).
fn sent_to(smtp: &TestSmtp, address: &str) -> (String, String) {
    let m = smtp
        .messages()
        .into_iter()
        .find(|m| m.rcpt_to[0] == address)
        .expect(address);
    let parsed = mail_parser::MessageParser::default().parse(&m.data).unwrap();
    (m.mail_from, format!("<{}>", parsed.message_id().unwrap()))
}

fn token(p: &Project, address: &str) -> String {
    p.run(&["unsubscribe-token", "make", address])
        .success()
        .stdout
        .trim()
        .to_owned()
}

/// A mailbox of what came back after the send: one message of each kind, for members m1–m6.
pub(crate) fn mailbox(p: &Project, smtp: &TestSmtp) -> Vec<(String, String)> {
    let (_, id1) = sent_to(smtp, "m1@example.org");
    let (verp2, _) = sent_to(smtp, "m2@example.org");
    let (_, id3) = sent_to(smtp, "m3@example.org");
    let (_, id5) = sent_to(smtp, "m5@example.org");
    let t4 = token(p, "m4@example.org");
    let unsubscribe = |from: &str| {
        fixture(
            "unsubscribe.eml",
            &[
                ("quiet.reader@example.com", from),
                ("TOKENPLACEHOLDER", &t4),
                ("unsub.1", from),
            ],
        )
    };
    vec![
        // Matched by the returned Message-ID (and the DSN's recipient).
        (
            "hard-m1".into(),
            fixture(
                "postfix-hard.eml",
                &[
                    ("gone.member@example.net", "m1@example.org"),
                    ("<r1.1.00000001@example.org>", &id1),
                ],
            ),
        ),
        // Matched by VERP only: nothing else in it names m2.
        (
            "hard-m2".into(),
            fixture(
                "gmail-hard.eml",
                &[("bounces+abcdefghijklmnopqrstuvwxyz@example.org", &verp2)],
            ),
        ),
        (
            "complaint-m3".into(),
            fixture(
                "yahoo-arf.eml",
                &[
                    ("annoyed.reader@yahoo.example", "m3@example.org"),
                    ("<r1.10.00000010@example.org>", &id3),
                ],
            ),
        ),
        ("unsubscribe-m4".into(), unsubscribe("m4@example.org")),
        (
            "soft-m5".into(),
            fixture(
                "dsn-soft-mailbox-full.eml",
                &[
                    ("full.box@example.com", "m5@example.org"),
                    ("<r1.9.00000009@example.org>", &id5),
                ],
            ),
        ),
        ("auto".into(), fixture("auto-reply.eml", &[])),
        ("person".into(), fixture("person-reply.eml", &[])),
        // A bounce for an address never sent to, and m4's token sent from m6: both unmatched.
        ("stranger".into(), fixture("qmail-hard.eml", &[])),
        ("forged".into(), unsubscribe("m6@example.org")),
    ]
}

fn maildir(p: Project, messages: &[(String, String)]) -> Project {
    let mut p = p.file("Maildir/cur/.keep", "").file("Maildir/tmp/.keep", "");
    for (i, (name, text)) in messages.iter().enumerate() {
        p = p.file(&format!("Maildir/new/{i}.{name}.test"), text);
    }
    p
}

pub(crate) fn json(run: &crate::support::project::Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

pub(crate) fn suppressed(v: &serde_json::Value) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = v["suppressed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let f = |k: &str| s[k].as_str().unwrap().to_owned();
            (f("email"), f("reason"), f("campaign"))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_maildir_of_bounces_complaints_and_requests_suppresses_exactly_the_matched_members_once() {
    let smtp = TestSmtp::start();
    let p = sent(&smtp, 6);
    let messages = mailbox(&p, &smtp);
    let p = maildir(p, &messages);
    let journal_before = p.read_bytes(".bulletin/journal.db");

    // A dry run says what it would do and changes nothing.
    let dry = p.run(&["inbox", "--maildir", "Maildir", "--dry-run", "--json"]);
    let v = json(dry.success());
    assert_eq!(v["processed"], 9);
    assert_eq!(p.read("lists/unsubscribed.csv"), "email,reason,date,campaign\n");
    assert!(
        p.read_bytes(".bulletin/journal.db") == journal_before,
        "the dry run left the journal alone"
    );

    let run = p.run(&["inbox", "--maildir", "Maildir", "--json"]);
    let v = json(run.success());
    let counts = [
        "processed",
        "hard",
        "soft",
        "complaints",
        "unsubscribes",
        "auto_replies",
        "other",
        "unmatched",
    ]
    .map(|k| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}")));
    assert_eq!(counts, [9, 2, 1, 1, 1, 1, 1, 2], "{v:#}");
    let expected = [
        ("m1@example.org", "bounce"),
        ("m2@example.org", "bounce"),
        ("m3@example.org", "complaint"),
        ("m4@example.org", "unsubscribe"),
    ]
    .map(|(e, r)| (e.to_owned(), r.to_owned(), "news-1".to_owned()));
    assert_eq!(suppressed(&v), expected);
    assert_eq!(suppressed(&json(&dry)), expected, "the dry run said the same");
    let file = p.read("lists/unsubscribed.csv");
    for (email, reason, campaign) in &expected {
        assert!(
            file.lines()
                .any(|l| l.starts_with(&format!("{email},{reason},")) && l.ends_with(&format!(",{campaign}"))),
            "{email} in {file}"
        );
    }
    assert!(
        !file.contains("m5@") && !file.contains("m6@") && !file.contains("nobody.here"),
        "{file}"
    );

    // The second run over the same mailbox changes nothing.
    let again = json(p.run(&["inbox", "--maildir", "Maildir", "--json"]).success());
    assert_eq!(
        (again["processed"].as_u64(), again["already_processed"].as_u64()),
        (Some(0), Some(9))
    );
    assert_eq!(p.read("lists/unsubscribed.csv"), file);

    // The text summary.
    p.run(&["inbox", "--maildir", "Maildir"])
        .success()
        .stdout_has("0 processed");
}

#[test]
fn members_sent_from_shards_are_matched_through_the_shards_journals() {
    let smtp = TestSmtp::start();
    let p = configured(&smtp.url(), &members(6));
    send(&p, &["--shard", "1/2"]).success();
    send(&p, &["--shard", "2/2"]).success();
    assert!(!p.join(".bulletin/journal.db").exists(), "only the shards' journals");
    for k in [1, 2] {
        assert!(p.join(&format!(".bulletin/journal-shard-{k}-of-2.db")).exists());
    }
    let messages = mailbox(&p, &smtp);
    let p = maildir(p, &messages);

    let dry = json(
        p.run(&["inbox", "--maildir", "Maildir", "--dry-run", "--json"])
            .success(),
    );
    assert_eq!(dry["hard"], 2, "{dry:#}");
    assert!(!p.join(".bulletin/journal.db").exists(), "a dry run creates nothing");

    let v = json(p.run(&["inbox", "--maildir", "Maildir", "--json"]).success());
    let expected = [
        ("m1@example.org", "bounce"),
        ("m2@example.org", "bounce"),
        ("m3@example.org", "complaint"),
        ("m4@example.org", "unsubscribe"),
    ]
    .map(|(e, r)| (e.to_owned(), r.to_owned(), "news-1".to_owned()));
    assert_eq!(suppressed(&v), expected, "{v:#}");
    assert_eq!((v["unmatched"].as_u64(), v["soft"].as_u64()), (Some(2), Some(1)));
    // report merges the shards' journals with the one inbox recorded in.
    let r = crate::support::project::report(&p);
    let got = ["bounced_hard", "bounced_soft", "complaints", "unsubscribed"].map(|k| r[k].as_u64());
    assert_eq!(got, [Some(2), Some(1), Some(1), Some(1)], "{r:#}");
    let again = json(p.run(&["inbox", "--maildir", "Maildir", "--json"]).success());
    assert_eq!(again["processed"], 0, "{again:#}");
}

#[test]
fn an_mbox_with_a_huge_and_a_broken_message_reports_and_skips_them_and_completes() {
    let smtp = TestSmtp::start();
    let p = sent(&smtp, 2);
    let (_, id1) = sent_to(&smtp, "m1@example.org");
    let bounce = fixture(
        "postfix-hard.eml",
        &[
            ("gone.member@example.net", "m1@example.org"),
            ("<r1.1.00000001@example.org>", &id1),
        ],
    );
    let huge = format!("Subject: attachment\n\n{}\n", "x".repeat(11 * 1024 * 1024));
    let mbox = format!(
        "From MAILER-DAEMON Tue Dec  1 10:00:00 2026\n{bounce}\n\
         From someone Tue Dec  1 10:00:01 2026\n{huge}\n\
         From nobody Tue Dec  1 10:00:02 2026\n\n\n"
    );
    let p = p.file("bounces.mbox", mbox);
    let run = p.run(&["inbox", "--mbox", "bounces.mbox", "--json"]);
    let v = json(run.success());
    assert_eq!(
        (v["processed"].as_u64(), v["hard"].as_u64(), v["skipped"].as_u64()),
        (Some(1), Some(1), Some(2)),
        "{v:#}"
    );
    assert!(run.stderr.contains("over the 10 MB limit"), "{}", run.stderr);
    assert_eq!(
        suppressed(&v),
        [("m1@example.org".to_owned(), "bounce".to_owned(), "news-1".to_owned())]
    );
}

#[test]
fn without_a_mailbox_or_a_journal_inbox_says_what_to_do() {
    let p = Project::new();
    p.run(&["inbox"]).code(1).stderr_has("--maildir");
    let p = p.file("Maildir/new/.keep", "");
    p.run(&["inbox", "--maildir", "Maildir"])
        .code(1)
        .stderr_has("no journal");
    p.run(&["inbox", "--imap", "imap://u@imap.example.org/INBOX"])
        .code(1)
        .stderr_has("imaps://");
}

#[test]
fn check_refuses_a_bounce_address_without_the_secret_naming_its_line() {
    let p = Project::new().file("n.md", NEWSLETTER).file("m.csv", members(1));
    let config = format!(
        "{}\n[inbox]\nbounce_address = \"bounces@example.org\"\n",
        p.read("bulletin.toml")
    );
    let p = p.file("bulletin.toml", config);
    let line = p
        .read("bulletin.toml")
        .lines()
        .position(|l| l.starts_with("bounce_address"))
        .unwrap()
        + 1;
    p.run(&["check", "n.md", "--list", "m.csv"])
        .code(1)
        .stdout_has(&format!("bulletin.toml:{line}"))
        .stdout_has("BULLETIN_UNSUBSCRIBE_SECRET");
}
