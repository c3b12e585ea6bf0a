//! Every fixture in tests/fixtures/inbox/ (written from the formats, invented people), and
//! what it must be classified as, with the clues it must yield.

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/inbox")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn of(name: &str) -> Classified {
    classify(&fixture(name), Some("unsubscribe@example.org")).expect(name)
}

#[test]
fn each_bounce_shape_is_classified_with_its_recipient_and_original_message_id() {
    let cases = [
        (
            "postfix-hard.eml",
            Class::Hard,
            "gone.member@example.net",
            "<r1.1.00000001@example.org>",
        ),
        (
            "gmail-hard.eml",
            Class::Hard,
            "no.such.reader@gmail.example",
            "<r1.2.00000002@example.org>",
        ),
        (
            "microsoft-hard.eml",
            Class::Hard,
            "old.colleague@contoso.example",
            "<r1.3.00000003@example.org>",
        ),
        (
            "ses-hard.eml",
            Class::Hard,
            "left.long.ago@example.com",
            "<r1.4.00000004@example.org>",
        ),
        (
            "exim-hard.eml",
            Class::Hard,
            "closed.account@example.net",
            "<r1.5.00000005@example.org>",
        ),
        (
            "exim-delayed.eml",
            Class::Soft,
            "slow.server@example.net",
            "<r1.6.00000006@example.org>",
        ),
        (
            "qmail-hard.eml",
            Class::Hard,
            "nobody.here@example.com",
            "<r1.7.00000007@example.org>",
        ),
        (
            "yahoo-hard.eml",
            Class::Hard,
            "dormant.reader@yahoo.example",
            "<r1.8.00000008@example.org>",
        ),
        (
            "dsn-soft-mailbox-full.eml",
            Class::Soft,
            "full.box@example.com",
            "<r1.9.00000009@example.org>",
        ),
        (
            "yahoo-arf.eml",
            Class::Complaint,
            "annoyed.reader@yahoo.example",
            "<r1.10.00000010@example.org>",
        ),
        (
            "ses-notification-bounce.eml",
            Class::Hard,
            "moved.away@example.com",
            "<r1.12.00000012@example.org>",
        ),
        (
            "ses-notification-complaint.eml",
            Class::Complaint,
            "angry.reader@example.net",
            "<r1.13.00000013@example.org>",
        ),
        (
            "ses-complaint-arf.eml",
            Class::Complaint,
            "tired.reader@example.net",
            "<r1.14.00000014@example.org>",
        ),
    ];
    for (name, class, recipient, id) in cases {
        let c = of(name);
        assert_eq!(c.class, class, "{name}: {:?}", c.clues);
        assert!(
            c.clues.recipients.iter().any(|r| r == recipient),
            "{name}: {:?}",
            c.clues
        );
        assert!(c.clues.message_ids.iter().any(|m| m == id), "{name}: {:?}", c.clues);
        assert!(!c.clues.detail.is_empty(), "{name}");
    }
}

#[test]
fn a_feedback_report_without_a_recipient_still_carries_the_original_message_id_and_verp() {
    let c = of("microsoft-arf.eml");
    assert_eq!(c.class, Class::Complaint);
    assert!(c.clues.message_ids.contains(&"<r1.11.00000011@example.org>".to_owned()));
    assert!(
        c.clues
            .delivered_to
            .contains(&"bounces+abcdefghijklmnopqrstuvwxyz@example.org".to_owned()),
        "{:?}",
        c.clues
    );
}

#[test]
fn auto_replies_unsubscribes_and_people_are_told_apart() {
    assert_eq!(of("auto-reply.eml").class, Class::AutoReply);
    assert_eq!(of("out-of-office.eml").class, Class::AutoReply);
    let u = of("unsubscribe.eml");
    assert_eq!(u.class, Class::Unsubscribe);
    assert_eq!(u.clues.from.as_deref(), Some("quiet.reader@example.com"));
    assert_eq!(u.clues.tokens, ["TOKENPLACEHOLDER"]);
    let p = of("person-reply.eml");
    assert_eq!(p.class, Class::Other);
    assert_eq!(p.message_id.as_deref(), Some("<reply.1@example.com>"));
    // Without a configured mailto, a token is still enough; without either, nothing.
    let raw = fixture("unsubscribe.eml");
    assert_eq!(classify(&raw, None).unwrap().class, Class::Unsubscribe);
    let plain = String::from_utf8(raw)
        .unwrap()
        .replace("unsubscribe-TOKENPLACEHOLDER", "remove me");
    assert_eq!(classify(plain.as_bytes(), None).unwrap().class, Class::Other);
    assert_eq!(
        classify(plain.as_bytes(), Some("UNSUBSCRIBE@example.org"))
            .unwrap()
            .class,
        Class::Unsubscribe
    );
}

#[test]
fn text_quoted_from_the_returned_newsletter_does_not_sway_the_verdict() {
    // exim-hard.eml quotes a newsletter that says "try again later" below the bounce text.
    assert_eq!(of("exim-hard.eml").class, Class::Hard);
}

#[test]
fn a_spam_block_is_a_soft_bounce_not_a_dead_address() {
    let raw = String::from_utf8(fixture("postfix-hard.eml"))
        .unwrap()
        .replace("Status: 5.1.1", "Status: 5.7.1")
        .replace(
            "X-Postfix; unknown user: \"gone.member\"",
            "smtp; 554 5.7.1 Message rejected as spam",
        );
    assert_eq!(classify(raw.as_bytes(), None).unwrap().class, Class::Soft);
}

#[test]
fn garbage_is_not_a_message() {
    assert!(classify(b"", None).is_none());
    assert!(classify(&[0xff; 64], None).is_none_or(|c| c.class == Class::Other));
}
