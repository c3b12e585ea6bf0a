//! Issue 12, part 1 (b, c): very long values and internationalised addresses. Every message is
//! re-read by independent parsers — mail-parser and Python's `email` package in strict mode —
//! and every line of it, headers included, is held to RFC 5322's 998 octets.

use crate::support::mime::{overlong_line, python_defects};
use crate::support::project::{DEFAULT_CONFIG, Project, send};
use crate::support::smtp_server::{Options, TestSmtp};

fn assert_lines_within_998(raw: &[u8]) {
    if let Some(problem) = overlong_line(raw) {
        panic!("{problem}");
    }
}

/// The checks every message here must pass.
fn assert_sound(raw: &[u8]) -> mail_parser::Message<'_> {
    assert_lines_within_998(raw);
    assert_eq!(
        python_defects(&[raw.to_vec()]),
        "",
        "Python's email package found defects"
    );
    mail_parser::MessageParser::default()
        .parse(raw)
        .expect("mail-parser parses the message")
}

fn preview_eml(p: &Project) -> Vec<u8> {
    p.preview("n.md", &["m.csv"], &[]).eml
}

#[test]
fn a_megabyte_cell_keeps_every_line_under_998_octets() {
    // A megabyte of words, then a megabyte with no space at all.
    let cell = format!("{}{}", "word ".repeat(200_000), "y".repeat(1_000_000));
    let p = Project::new()
        .file(
            "n.md",
            "---\nsubject: Notes\n---\nDear {{ name }},\n\n{{ note }}\n\nThe end.\n",
        )
        .file("m.csv", format!("email,name,note\nana@example.org,Ana,\"{cell}\"\n"));
    let eml = preview_eml(&p);
    let m = assert_sound(&eml);
    // The text part is wrapped at 76 columns: compare the words.
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let text = words(&m.body_text(0).unwrap());
    assert!(text.contains(&words(&cell)), "the value survives the encoding");
    assert!(m.body_html(0).unwrap().contains(&"y".repeat(1_000_000)));
}

#[test]
fn a_twenty_thousand_character_word_in_subject_name_and_body_keeps_every_line_under_998_octets() {
    let word = "w".repeat(20_000);
    let p = Project::new()
        .file(
            "n.md",
            "---\nsubject: \"News for {{ name }}\"\n---\nDear {{ name }},\n\n{{ name }}\n",
        )
        .file("m.csv", format!("email,name\nana@example.org,Ana{word}é\n"));
    let eml = preview_eml(&p);
    let m = assert_sound(&eml);
    let name = format!("Ana{word}é");
    assert_eq!(m.subject(), Some(format!("News for {name}").as_str()));
    let to = m.to().and_then(|t| t.first()).unwrap();
    assert_eq!(
        (to.name(), to.address()),
        (Some(name.as_str()), Some("ana@example.org"))
    );
    assert!(m.body_text(0).unwrap().contains(&name));
}

#[test]
fn a_long_subject_without_spaces_is_folded() {
    let subject = format!("https://example.org/{}", "a".repeat(3000));
    let p = Project::new()
        .file("n.md", format!("---\nsubject: \"{subject}\"\n---\nHello.\n"))
        .file("m.csv", "email\nana@example.org\n");
    let pv = p.preview("n.md", &["m.csv"], &[]);
    for line in pv.headers().split("\r\n") {
        assert!(line.len() <= 78, "header line of {} octets: {line:.80}", line.len());
    }
    assert_eq!(assert_sound(&pv.eml).subject(), Some(subject.as_str()));
}

#[test]
fn a_long_url_keeps_every_line_under_998_octets() {
    let path = "p".repeat(5000);
    let p = Project::new()
        .file(
            "n.md",
            "---\nsubject: Links\n---\nRead [the report](https://example.org/{{ path }}).\n",
        )
        .file("m.csv", format!("email,path\nana@example.org,{path}\n"));
    let eml = preview_eml(&p);
    let m = assert_sound(&eml);
    let url = format!("https://example.org/{path}");
    assert!(m.body_html(0).unwrap().contains(&url));
    assert!(m.body_text(0).unwrap().contains(&url));
}

/// A project whose one list is `csv`, sending through `smtp`.
fn sending(smtp: &TestSmtp, csv: &str, config_extra: &str) -> Project {
    let config = format!(
        "{config_extra}{DEFAULT_CONFIG}\n[smtp]\nurl = \"{}\"\nretry_delay = 0.01\ntimeout = 2\n",
        smtp.url()
    );
    Project::new()
        .file("bulletin.toml", config)
        .file(
            "n.md",
            "---\nsubject: \"News for {{ name }}\"\nid: intl\n---\nDear {{ name }}.\n",
        )
        .file("m.csv", csv)
}

#[test]
fn a_non_ascii_domain_goes_out_as_punycode() {
    let smtp = TestSmtp::start();
    let p = sending(&smtp, "email,name\nAna@Bücher.example,Ana\n", "");
    send(&p, &[]).success();
    let got = smtp.messages();
    assert_eq!(got.len(), 1);
    // As Python computes it: "bücher.example".encode("idna") == b"xn--bcher-kva.example".
    assert_eq!(got[0].rcpt_to, ["Ana@xn--bcher-kva.example"]);
    assert!(!got[0].smtputf8, "an IDNA domain needs no SMTPUTF8");
    let m = assert_sound(&got[0].data);
    let to = m.to().and_then(|t| t.first()).unwrap();
    assert_eq!(to.address(), Some("Ana@xn--bcher-kva.example"));
    let head = String::from_utf8_lossy(&got[0].data);
    let head = head.split("\r\n\r\n").next().unwrap();
    assert!(head.is_ascii(), "{head}");
}

#[test]
fn a_non_ascii_sender_domain_goes_out_as_punycode() {
    let smtp = TestSmtp::start();
    let p = sending(&smtp, "email,name\nana@example.org,Ana\n", "").file(
        "n.md",
        "---\nsubject: Hi\nfrom: \"Bücher <news@bücher.example>\"\nreply_to: \"info@bücher.example\"\n---\nHi.\n",
    );
    send(&p, &[]).success();
    let got = smtp.messages();
    assert_eq!(got[0].mail_from, "news@xn--bcher-kva.example");
    let m = assert_sound(&got[0].data);
    let from = m.from().and_then(|a| a.first()).unwrap();
    assert_eq!(from.address(), Some("news@xn--bcher-kva.example"));
    let reply_to = m.reply_to().and_then(|a| a.first()).unwrap();
    assert_eq!(reply_to.address(), Some("info@xn--bcher-kva.example"));
}

#[test]
fn a_non_ascii_local_part_is_skipped_without_smtputf8() {
    let smtp = TestSmtp::start();
    let csv = "email,name\nana@example.org,Ana\njosé@example.org,José\n";
    let p = sending(&smtp, csv, "");
    let run = send(&p, &[]);
    run.success()
        .stderr_has("warning: m.csv:3: the address has a non-ASCII part before `@`: skipped")
        .stderr_has("SMTPUTF8");
    let got = smtp.messages();
    assert_eq!(got.len(), 1, "{run:?}");
    assert_eq!(got[0].rcpt_to, ["ana@example.org"]);
    assert!(run.stderr.contains("1 skipped"), "{}", run.stderr);

    // `check` names the row, as a warning.
    p.run(&["check", "n.md", "--list", "m.csv"])
        .success()
        .stdout_has("warning: m.csv:3: the address has a non-ASCII part before `@`")
        .stdout_has("0 errors");
}

#[test]
fn a_non_ascii_local_part_is_sent_with_smtputf8() {
    let smtp = TestSmtp::start_with(Options {
        smtputf8: true,
        ..Options::default()
    });
    let csv = "email,name\nana@example.org,Ana\njosé@bücher.example,José\n";
    let p = sending(&smtp, csv, "");
    let run = send(&p, &[]);
    run.success().stderr_lacks("non-ASCII part");
    let mut got = smtp.messages();
    got.sort_by(|a, b| a.rcpt_to.cmp(&b.rcpt_to));
    assert_eq!(got.len(), 2, "{run:?}");
    assert_eq!(got[0].rcpt_to, ["ana@example.org"]);
    assert!(!got[0].smtputf8, "only the message that needs it asks for SMTPUTF8");
    assert_eq!(got[1].rcpt_to, ["josé@xn--bcher-kva.example"]);
    assert!(got[1].smtputf8, "MAIL FROM carries SMTPUTF8");
    let raw = &got[1].data;
    assert_lines_within_998(raw);
    assert_eq!(
        python_defects(std::slice::from_ref(raw)),
        "",
        "Python's email package found defects"
    );
    let text = String::from_utf8(raw.clone()).unwrap();
    assert!(
        text.contains("\r\nTo: =?utf-8?b?Sm9zw6k=?= <josé@xn--bcher-kva.example>\r\n"),
        "the address raw, as RFC 6532 has it: {text}"
    );
    let m = mail_parser::MessageParser::default().parse(raw).unwrap();
    let to = m.to().and_then(|t| t.first()).unwrap();
    assert_eq!(
        (to.name(), to.address()),
        (Some("José"), Some("josé@xn--bcher-kva.example"))
    );
}

#[test]
fn the_strict_checks_see_a_broken_message() {
    let broken = b"From: News <news@example.org\r\nTo: a@@example.org\r\nSubject: x\r\n\r\nbody\r\n".to_vec();
    assert_ne!(python_defects(&[broken]), "");
    let long = format!("Subject: {}\r\n\r\nbody\r\n", "s".repeat(990));
    assert!(overlong_line(long.as_bytes()).is_some());
}
