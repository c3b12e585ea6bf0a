//! `bulletin inbox` end to end: the real binary over Maildirs and mboxes of fixture bounces
//! (tests/fixtures/inbox/, written from the formats), with a journal made by a real send to the
//! in-process SMTP server; the IMAP and Postfix tests start real servers and are ignored
//! unless those are installed (`.ci/run` installs them).

use crate::support::project::{Project, members, send, sending};
use crate::support::smtp_server::TestSmtp;

const NEWSLETTER: &str = "---\nsubject: \"December news\"\nid: news-1\n---\nDear member,\n\nThe news.\n";

const SECRET: &str = "inbox-test-secret";

/// A project with VERP that sent `n.md` to `n` members through `smtp`.
fn sent(smtp: &TestSmtp, n: usize) -> Project {
    let p = sending(
        &smtp.url(),
        NEWSLETTER,
        members(n),
        "\n[inbox]\nbounce_address = \"bounces@example.org\"\nsoft_limit = 2\n",
    )
    .file("lists/unsubscribed.csv", "email\n")
    .env("BULLETIN_UNSUBSCRIBE_SECRET", SECRET);
    let config = p
        .read("bulletin.toml")
        .replacen("list_id", "suppress = [\"lists/unsubscribed.csv\"]\nlist_id", 1);
    let p = p.file("bulletin.toml", config);
    send(&p, &[]).success();
    p
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
