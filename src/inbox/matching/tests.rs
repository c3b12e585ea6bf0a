//! Every bounce and complaint fixture in tests/fixtures/inbox/ matched to a member through
//! each clue its format carries — and to nobody while those clues name strangers.

use super::*;
use crate::inbox::classify::classify;
use crate::journal::{Campaign, Change, Status};
use crate::secret::Secret;

const MEMBER: &str = "member.one@example.net";
/// The VERP token the fixtures carry in place of a real one.
const PLACEHOLDER: &str = "abcdefghijklmnopqrstuvwxyz";

/// A journal where MEMBER got campaigns c1 and then c2, with Message-IDs `<cN.1@example.org>`.
fn journal(dir: &std::path::Path) -> Journal {
    let mut j = Journal::open(&dir.join("journal.db")).unwrap();
    for (id, at) in [("c1", 10), ("c2", 20)] {
        let c = Campaign {
            id: id.into(),
            subject: "S".into(),
            fingerprint: "f".into(),
            newsletter: "n.md".into(),
            started: at,
        };
        j.start(&c, [Ok((MEMBER.to_owned(), "l.csv:2".to_owned()))], at)
            .unwrap();
        let changes = [
            Change::InFlight {
                address: MEMBER.into(),
                message_id: format!("<{id}.1@example.org>"),
                handed_off: at,
            },
            Change::Finish {
                address: MEMBER.into(),
                status: Status::Sent,
                reply: "250".into(),
                fields: None,
                at,
            },
        ];
        j.apply(id, &changes).unwrap();
    }
    j
}

/// (fixture, class, the recipient it names or `None`, the original Message-ID it returns).
const FIXTURES: [(&str, Class, Option<&str>, &str); 14] = [
    (
        "postfix-hard.eml",
        Class::Hard,
        Some("gone.member@example.net"),
        "<r1.1.00000001@example.org>",
    ),
    (
        "gmail-hard.eml",
        Class::Hard,
        Some("no.such.reader@gmail.example"),
        "<r1.2.00000002@example.org>",
    ),
    (
        "microsoft-hard.eml",
        Class::Hard,
        Some("old.colleague@contoso.example"),
        "<r1.3.00000003@example.org>",
    ),
    (
        "ses-hard.eml",
        Class::Hard,
        Some("left.long.ago@example.com"),
        "<r1.4.00000004@example.org>",
    ),
    (
        "exim-hard.eml",
        Class::Hard,
        Some("closed.account@example.net"),
        "<r1.5.00000005@example.org>",
    ),
    (
        "exim-delayed.eml",
        Class::Soft,
        Some("slow.server@example.net"),
        "<r1.6.00000006@example.org>",
    ),
    (
        "qmail-hard.eml",
        Class::Hard,
        Some("nobody.here@example.com"),
        "<r1.7.00000007@example.org>",
    ),
    (
        "yahoo-hard.eml",
        Class::Hard,
        Some("dormant.reader@yahoo.example"),
        "<r1.8.00000008@example.org>",
    ),
    (
        "dsn-soft-mailbox-full.eml",
        Class::Soft,
        Some("full.box@example.com"),
        "<r1.9.00000009@example.org>",
    ),
    (
        "yahoo-arf.eml",
        Class::Complaint,
        Some("annoyed.reader@yahoo.example"),
        "<r1.10.00000010@example.org>",
    ),
    (
        "microsoft-arf.eml",
        Class::Complaint,
        None,
        "<r1.11.00000011@example.org>",
    ),
    (
        "ses-notification-bounce.eml",
        Class::Hard,
        Some("moved.away@example.com"),
        "<r1.12.00000012@example.org>",
    ),
    (
        "ses-notification-complaint.eml",
        Class::Complaint,
        Some("angry.reader@example.net"),
        "<r1.13.00000013@example.org>",
    ),
    (
        "ses-complaint-arf.eml",
        Class::Complaint,
        Some("tired.reader@example.net"),
        "<r1.14.00000014@example.org>",
    ),
];

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/inbox")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_bounce_and_complaint_shape_matches_by_each_clue_it_carries_and_never_by_a_stranger() {
    let dir = tempfile::tempdir().unwrap();
    let j = journal(dir.path());
    let verp = Verp::new("bounces@example.org", Secret::new("matching-test".into())).unwrap();
    let mut matcher = Matcher::new(Some(&verp), None, Vec::new());
    let member = |campaign: &str| Member {
        campaign: campaign.into(),
        address: MEMBER.into(),
    };
    let mut by_verp = 0;
    for (name, class, recipient, original) in FIXTURES {
        let text = fixture(name);
        let mut check = |what: &str, text: &str, want: Option<(Member, How)>| {
            let c = classify(text.as_bytes(), None).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(c.class, class, "{name} ({what}): {:?}", c.clues);
            let got = matcher.member(&j, &c).unwrap();
            assert_eq!(got, want, "{name} ({what}): {:?}", c.clues);
        };
        // As written, its clues name strangers: unmatched.
        check("as written", &text, None);
        // The original Message-ID the journal holds (c1's).
        check(
            "by Message-ID",
            &text.replace(original, "<c1.1@example.org>"),
            Some((member("c1"), How::MessageId)),
        );
        // The recipient it names: the campaign last sent to them (c2).
        if let Some(r) = recipient {
            check(
                "by recipient",
                &text.replace(r, MEMBER),
                Some((member("c2"), How::Recipient)),
            );
        }
        // The VERP address it came back to (or, in SES's and ARF's fields, was sent from).
        if text.contains(PLACEHOLDER) {
            by_verp += 1;
            check(
                "by VERP",
                &text.replace(PLACEHOLDER, &verp.token("c1", MEMBER)),
                Some((member("c1"), How::Verp)),
            );
            // A token made with another secret names nobody.
            let forged = Verp::new("bounces@example.org", Secret::new("guess".into())).unwrap();
            check(
                "forged VERP",
                &text.replace(PLACEHOLDER, &forged.token("c1", MEMBER)),
                None,
            );
        }
    }
    assert_eq!(by_verp, 6, "the fixtures that carry a VERP address");
}
