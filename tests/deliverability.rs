//! Deliverability end to end: unsubscribe headers and tokens, List-Id, Feedback-ID, DKIM
//! verified by an independent verifier (Python's dkimpy) on messages captured from the SMTP
//! test server, suppression, and `check`'s advice.

use std::collections::HashMap;
use std::process::Command;

use crate::support::project::{DEFAULT_CONFIG, Project, members};
use crate::support::smtp_server::{Action, Options, Stage, TestSmtp};

const NEWSLETTER: &str = "---\nsubject: \"News for {{ first_name | default('you') }}\"\nid: news-7\n---\n\
Dear {{ first_name | default(\"friend\") }},\n\nThe news. [Leave]({{ unsubscribe_url }})\n";

const SECRET: &str = "s3cret-for-tests-only";

/// A project with `extra` appended to the default settings and `[smtp]` pointing at `smtp`.
fn project(smtp: &TestSmtp, n: usize, extra: &str) -> Project {
    let base = DEFAULT_CONFIG.replace("[unsubscribe]\nmailto = \"unsubscribe@example.org\"\n", "");
    let config = format!(
        "feedback_id = \"newsletter:example\"\nsuppress = [\"lists/unsubscribed.csv\"]\n{base}{extra}\n\
         [smtp]\nurl = \"{}\"\nretry_delay = 0.01\n",
        smtp.url()
    );
    Project::new()
        .file("bulletin.toml", config)
        .file("n.md", NEWSLETTER)
        .file("m.csv", members(n))
        .file("lists/unsubscribed.csv", "email\n")
        .env("BULLETIN_UNSUBSCRIBE_SECRET", SECRET)
}

fn headers(raw: &[u8]) -> HashMap<String, String> {
    let m = mail_parser::MessageParser::default().parse(raw).expect("parses");
    m.headers()
        .iter()
        .map(|h| {
            (
                h.name().to_ascii_lowercase(),
                String::from_utf8_lossy(&raw[h.offset_start() as usize..h.offset_end() as usize])
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
            )
        })
        .collect()
}

#[test]
fn one_click_unsubscribe_list_id_and_feedback_id_headers() {
    let smtp = TestSmtp::start();
    let unsub = "[unsubscribe]\nurl = \"https://example.org/u?t={{ token }}&e={{ email }}\"\nmailto = \"unsubscribe@example.org\"\n";
    let p = project(&smtp, 2, unsub);
    p.run(&["send", "n.md", "--list", "m.csv", "--yes"]).success();
    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 2);
    for m in &msgs {
        let h = headers(&m.data);
        let to = &m.rcpt_to[0];
        let lu = &h["list-unsubscribe"];
        let token = lu
            .split("t=")
            .nth(1)
            .and_then(|s| s.split('&').next())
            .expect("token in URL")
            .to_owned();
        // The address and the campaign, encrypted: 12-byte nonce + address + `\n` + campaign +
        // 16-byte tag, in base64url.
        assert_eq!(
            token.len(),
            (4 * (12 + to.len() + 1 + "news-7".len() + 16)).div_ceil(3),
            "{lu}"
        );
        assert!(!token.contains(to.split('@').next().unwrap()), "{lu}");
        let encoded = to.replace('@', "%40");
        assert_eq!(
            lu,
            &format!(
                "<https://example.org/u?t={token}&e={encoded}>, <mailto:unsubscribe@example.org?subject=unsubscribe-{token}>"
            )
        );
        assert_eq!(h["list-unsubscribe-post"], "List-Unsubscribe=One-Click");
        assert_eq!(h["list-id"], "Members <members.example.org>");
        assert_eq!(h["feedback-id"], "news-7:newsletter:example");
        assert!(!h["feedback-id"].contains('@'), "no personal data");
        // The same token is in the body's link, and the CLI verifies it.
        let body = String::from_utf8_lossy(&m.data).replace("=\r\n", "");
        assert!(body.contains(&token), "the body links the same token");
        p.run(&["unsubscribe-token", "verify", &token, to])
            .success()
            .stdout_has("valid");
        p.run(&["unsubscribe-token", "verify", &token, "someone.else@example.org"])
            .code(1);
        let mut tampered = token.clone();
        tampered.replace_range(0..1, if token.starts_with('A') { "B" } else { "A" });
        p.run(&["unsubscribe-token", "verify", &tampered, to])
            .code(1)
            .stdout_has("invalid");
        p.run(&["unsubscribe-token", "make", "--campaign", "news-7", to])
            .success()
            .stdout_has(&token);
        // A script's token without a campaign is another token for the same member.
        let plain = p.run(&["unsubscribe-token", "make", to]).stdout.trim().to_owned();
        assert_ne!(plain, token);
        p.run(&["unsubscribe-token", "verify", &plain, to])
            .success()
            .stdout_has("valid");
    }
}

#[test]
fn mailto_only_unsubscribe_needs_no_web_server_and_no_one_click_header() {
    let smtp = TestSmtp::start();
    let p = project(&smtp, 1, "[unsubscribe]\nmailto = \"unsubscribe@example.org\"\n")
        .env("BULLETIN_UNSUBSCRIBE_SECRET", "");
    p.run(&["send", "n.md", "--list", "m.csv", "--yes"]).success();
    let h = headers(&smtp.messages()[0].data);
    assert_eq!(
        h["list-unsubscribe"],
        "<mailto:unsubscribe@example.org?subject=unsubscribe>"
    );
    assert!(!h.contains_key("list-unsubscribe-post"));
}

#[test]
fn suppressed_addresses_never_reach_the_server_nor_the_dry_run() {
    let smtp = TestSmtp::start();
    let p = project(&smtp, 4, "[unsubscribe]\nmailto = \"unsubscribe@example.org\"\n");
    p.run(&["suppress", "M2@Example.org", "m3@example.org"])
        .success()
        .stdout_has("added 2 addresses to");
    p.run(&["suppress", "m2@example.org"])
        .success()
        .stdout_has("nothing added: the address was already in");
    p.run(&["check", "n.md", "--list", "m.csv"])
        .success()
        .stdout_has("lists/unsubscribed.csv");
    p.run(&["send", "n.md", "--list", "m.csv", "--dry-run"])
        .success()
        .stdout_has("wrote 2 messages");
    p.run(&["send", "n.md", "--list", "m.csv", "--test", "--yes"])
        .success()
        .stdout_has("2 sent");
    p.run(&["send", "n.md", "--list", "m.csv", "--yes"])
        .success()
        .stdout_has("2 sent");
    let got: Vec<String> = smtp.messages().iter().map(|m| m.rcpt_to[0].clone()).collect();
    assert_eq!(got.len(), 4);
    assert!(
        got.iter().all(|a| a == "m1@example.org" || a == "m4@example.org"),
        "{got:?}"
    );
}

#[test]
fn suppress_failed_adds_dead_mailboxes_only_and_later_sends_skip_them() {
    let smtp = TestSmtp::start_with(Options {
        fault: Some(Box::new(|e| match (e.stage, e.rcpt) {
            (Stage::Rcpt, Some("m2@example.org")) => Action::Reply(550, "5.1.1 User unknown".into()),
            (Stage::Rcpt, Some("m3@example.org")) => Action::Reply(554, "5.7.1 Rejected as spam".into()),
            _ => Action::Continue,
        })),
        ..Options::default()
    });
    let p = project(&smtp, 3, "[unsubscribe]\nmailto = \"unsubscribe@example.org\"\n");
    p.run(&["send", "n.md", "--list", "m.csv", "--yes"]).code(3);
    p.run(&["report", "n.md", "--suppress-failed"])
        .success()
        .stderr_has("suppressed 1 address");
    let suppressed = p.read("lists/unsubscribed.csv");
    assert!(
        suppressed.contains("m2@example.org") && !suppressed.contains("m3@example.org"),
        "{suppressed}"
    );
    // The next newsletter never goes to the dead mailbox.
    let p = p.file("n2.md", NEWSLETTER.replace("news-7", "news-8"));
    let clean = TestSmtp::start();
    p.run(&["send", "n2.md", "--list", "m.csv", "--yes", "--smtp", &clean.url()])
        .success()
        .stdout_has("2 sent");
    let got: Vec<String> = clean.messages().iter().map(|m| m.rcpt_to[0].clone()).collect();
    assert!(!got.contains(&"m2@example.org".to_owned()), "{got:?}");
}

#[test]
fn check_advises_on_deliverability_and_prints_the_dns_records() {
    let smtp = TestSmtp::start();
    let p = project(&smtp, 1, "").file("n.md", NEWSLETTER.replace(" [Leave]({{ unsubscribe_url }})", ""));
    let keygen = p.run(&[
        "dkim",
        "keygen",
        "--selector",
        "s1",
        "--domain",
        "other.example",
        "--algorithm",
        "ed25519",
    ]);
    keygen.success();
    let record = keygen
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("value: "))
        .expect("record")
        .to_owned();
    let config = p.read("bulletin.toml").replace(
        "from = \"Example Network <news@example.org>\"",
        "from = '\"news@example.org\" <news@example.org>'",
    ) + "\n[dkim]\ndomain = \"other.example\"\nselector = \"s1\"\nprivate_key = \"keys/s1.other.example.pem\"\n";
    let p = p.file("bulletin.toml", config).file(
        "n.md",
        NEWSLETTER
            .replace("subject: \"News", "subject: \"Re: News")
            .replace(" [Leave]({{ unsubscribe_url }})", ""),
    );
    let run = p.run(&["check", "n.md", "--list", "m.csv"]);
    run.success()
        .stdout_has("no unsubscribe")
        .stdout_has("is not the DKIM domain other.example")
        .stdout_has("display name \"news@example.org\" contains an address")
        .stdout_has("n.md:2: the subject starts like a reply")
        .stdout_has(&format!("s1._domainkey.other.example TXT \"{record}\""))
        .stdout_has("_dmarc.example.org")
        .stdout_has("v=spf1");
}

/// Verifies every DKIM signature of `raw` with dkimpy, answering DNS from `records`.
fn dkim_verifies(raw: &[u8], record: &str) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.eml");
    std::fs::write(&path, raw).unwrap();
    let script = "import sys, dkim\nrec = sys.argv[2].encode()\nmsg = open(sys.argv[1], 'rb').read()\n\
                  ok = dkim.verify(msg, dnsfunc=lambda name, timeout=5: rec)\nprint('pass' if ok else 'fail')\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .arg(record)
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "dkimpy failed to run (pip install dkimpy pynacl): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.trim() == "pass"
}

/// The Subject field of `raw` as sent: its first line and its continuation lines.
fn subject_field(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let start = text.find("\r\nSubject: ").expect("a Subject") + 2;
    let lines: Vec<&str> = text[start..].split("\r\n").collect();
    let folded = lines[1..].iter().take_while(|l| l.starts_with([' ', '\t'])).count();
    lines[..=folded].join("\r\n")
}

#[test]
#[ignore = "needs Python's dkimpy and pynacl; run by .ci/run"]
fn dkim_signatures_verify_after_crossing_smtp_for_both_key_types() {
    for algorithm in ["rsa", "ed25519"] {
        let smtp = TestSmtp::start();
        let unsub =
            "[unsubscribe]\nurl = \"https://example.org/u?t={{ token }}\"\nmailto = \"unsubscribe@example.org\"\n";
        let p = project(&smtp, 2, unsub);
        let keygen = p.run(&[
            "dkim",
            "keygen",
            "--selector",
            "news",
            "--domain",
            "example.org",
            "--algorithm",
            algorithm,
        ]);
        keygen.success();
        let record = keygen
            .stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("value: "))
            .unwrap()
            .to_owned();
        let config = p.read("bulletin.toml")
            + "\n[dkim]\ndomain = \"example.org\"\nselector = \"news\"\nprivate_key = \"keys/news.example.org.pem\"\n";
        // A second newsletter whose subject lettre encodes (RFC 2047) and folds over lines.
        let long = NEWSLETTER.replace("id: news-7", "id: news-9").replace(
            "News for {{ first_name | default('you') }}",
            "News for {{ first_name | default('you') }}: l'été du réseau — numéro 9, avec les membres et leurs amis",
        );
        let p = p.file("bulletin.toml", config).file("long.md", long);
        p.run(&["send", "n.md", "--list", "m.csv", "--yes"]).success();
        p.run(&["send", "long.md", "--list", "m.csv", "--yes"]).success();
        let messages = smtp.messages();
        assert_eq!(messages.len(), 4);
        let encoded_and_folded = messages
            .iter()
            .map(|m| subject_field(&m.data))
            .filter(|s| s.contains("=?utf-8?") && s.contains("\r\n "))
            .count();
        assert_eq!(encoded_and_folded, 2, "the long subjects are encoded and folded");
        for m in &messages {
            let h = headers(&m.data);
            let sig = &h["dkim-signature"];
            assert!(sig.contains("c=relaxed/relaxed"), "{sig}");
            for needed in [
                "from",
                "to",
                "subject",
                "date",
                "message-id",
                "mime-version",
                "reply-to",
                "list-id",
                "list-unsubscribe",
                "list-unsubscribe-post",
                "feedback-id",
            ] {
                let list = sig
                    .split("h=")
                    .nth(1)
                    .unwrap()
                    .split(';')
                    .next()
                    .unwrap()
                    .replace(' ', "");
                assert!(
                    list.split(':').any(|x| x == needed),
                    "{algorithm}: {needed} not signed: {sig}"
                );
            }
            assert!(
                dkim_verifies(&m.data, &record),
                "{algorithm}: signature does not verify"
            );
            let text = String::from_utf8_lossy(&m.data);
            let tampered = text.replacen("Subject: News", "Subject: Olds", 1);
            assert_ne!(tampered, text);
            assert!(
                !dkim_verifies(tampered.as_bytes(), &record),
                "{algorithm}: a changed Subject must fail"
            );
            let tampered = text.replacen("List-Id: Members", "List-Id: Others", 1);
            assert!(
                !dkim_verifies(tampered.as_bytes(), &record),
                "{algorithm}: a changed List-Id must fail"
            );
        }
    }
}
