//! Header values that keep every line within RFC 5322's limits whatever a member's values hold.
//!
//! lettre folds a header only at its spaces, so one long word — a 20,000-character name or a
//! subject that is a long URL — stays a line of its own, past the 998 octets a line may have
//! (RFC 5322 2.1.1). A value with a word too long to fit a line is written instead as RFC 2047
//! encoded words (email-encoding's encoder, the one lettre uses for non-ASCII text), which
//! fold anywhere and read back as the same text. Every other value is left to lettre, as before.

use std::fmt::Write;

use email_encoding::headers::rfc2047;
use email_encoding::headers::writer::EmailWriter;
use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Mailboxes};

/// The longest word lettre may write as it is: folded onto a line of its own after one space,
/// it fits the 78 octets RFC 5322 recommends, far inside the 998 it allows.
const LONGEST_WORD: usize = 77;

/// RFC 5322 2.1.1: lines SHOULD be no longer than 78 characters.
const RECOMMENDED_LINE: usize = 78;

fn has_long_word(value: &str) -> bool {
    value.split([' ', '\t']).any(|word| word.len() > LONGEST_WORD)
}

/// Whether a value written as it is would be read back as something else: a member's name or
/// subject that holds `=?…?=` text, which a reader decodes as an encoded word (into a line break,
/// say). Written as encoded words itself, it reads back as the same text.
fn needs_encoding(value: &str) -> bool {
    has_long_word(value) || value.contains("=?")
}

/// An unstructured header such as `Subject`.
pub(super) fn unstructured(name: &'static str, value: &str) -> HeaderValue {
    let name = HeaderName::new_from_ascii_str(name);
    if !needs_encoding(value) {
        return HeaderValue::new(name, value.to_owned());
    }
    let mut encoded = String::new();
    {
        let mut w = EmailWriter::new(&mut encoded, name.len() + ": ".len(), 0, false);
        rfc2047::encode(value, &mut w).expect("writing to a String");
    }
    HeaderValue::dangerous_new_pre_encoded(name, value.to_owned(), encoded)
}

/// A one-mailbox address header (`From`, `To`, `Reply-To`): `H` as lettre writes it, unless the
/// display name has a word too long for a line (then the name as encoded words), or is one
/// lettre would write bare with a `.` in it (then quoted).
pub(super) fn mailbox<H: Header + From<Mailboxes>>(m: &Mailbox) -> HeaderValue {
    let header = H::name();
    // lettre writes a name of letters, digits, `-`, `_` and `.` bare, but `.` is no atom
    // character: `J.Smith` is RFC 5322's obsolete phrase, a defect to a strict reader, and a
    // lone `.` no phrase at all. Quoted, it needs no escape.
    if let Some(name) = m.name.as_deref()
        && name.contains('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !has_long_word(name)
    {
        let encoded = format!("\"{name}\" <{}>", m.email);
        return HeaderValue::dangerous_new_pre_encoded(header, m.to_string(), encoded);
    }
    // lettre folds neither a quoted name nor before `<address>`: a line that would pass the
    // 78 octets RFC 5322 recommends is written here, folded at the name's spaces (folding
    // white space may sit inside a quoted string and unfolds to the same name).
    let too_long = |n: &str| header.len() + n.len() + m.email.to_string().len() + 7 > RECOMMENDED_LINE;
    let Some(name) = m.name.as_deref().filter(|n| needs_encoding(n) || too_long(n)) else {
        return H::from(Mailboxes::from(m.clone())).display();
    };
    let mut encoded = String::new();
    if name.is_ascii() && !needs_encoding(name) {
        let mut w = EmailWriter::new(&mut encoded, header.len() + ": ".len(), 0, false);
        let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
        w.write_char('"').expect("writing to a String");
        w.folding().write_str(&escaped).expect("writing to a String");
        w.write_char('"').expect("writing to a String");
        w.space();
        // One piece: `write!` would hand the folder `<`, the address and `>` apart, and a
        // lone `<` fits any line.
        w.folding()
            .write_str(&format!("<{}>", m.email))
            .expect("writing to a String");
        drop(w);
        return HeaderValue::dangerous_new_pre_encoded(header, m.to_string(), encoded);
    }
    {
        let mut w = EmailWriter::new(&mut encoded, header.len() + ": ".len(), 0, false);
        rfc2047::encode(name, &mut w).expect("writing to a String");
        w.space();
        w.folding()
            .write_str(&format!("<{}>", m.email))
            .expect("writing to a String");
    }
    HeaderValue::dangerous_new_pre_encoded(header, m.to_string(), encoded)
}

#[cfg(test)]
mod tests {
    use lettre::message::header::{From, To};

    use super::*;

    fn wire(v: &HeaderValue) -> String {
        let mut h = lettre::message::header::Headers::new();
        h.insert_raw(v.clone());
        h.to_string()
    }

    fn assert_lines_fit(s: &str) {
        for line in s.split("\r\n") {
            assert!(line.len() <= 78, "line of {} octets: {line:?}", line.len());
        }
    }

    #[test]
    fn ordinary_values_are_written_as_lettre_writes_them() {
        let subject = "We celebrate — and we get to work, https://example.org/a/short/link";
        let v = unstructured("Subject", subject);
        assert_eq!(
            wire(&v),
            wire(&HeaderValue::new(
                HeaderName::new_from_ascii_str("Subject"),
                subject.into()
            ))
        );
        let m: Mailbox = "Ana López <ana@example.org>".parse().unwrap();
        assert_eq!(wire(&mailbox::<To>(&m)), wire(&To::from(Mailboxes::from(m)).display()));
    }

    #[test]
    fn encoded_word_text_in_a_name_or_subject_is_encoded_so_it_reads_back_as_written() {
        let trick = "Ana =?utf-8?q?x=0D=0ABcc:_evil@attacker.example?= Lopez";
        let m = Mailbox::new(Some(trick.into()), "ana@example.org".parse().unwrap());
        let to = wire(&mailbox::<To>(&m));
        assert!(!to.contains("=?utf-8?q?x=0D"), "{to}");
        assert!(to.contains("=?utf-8?"), "written as encoded words: {to}");
        let subject = wire(&unstructured("Subject", trick));
        assert!(!subject.contains("=?utf-8?q?x=0D"), "{subject}");
    }

    #[test]
    fn a_bare_name_with_a_dot_is_quoted() {
        for (name, want) in [
            ("J.Smith", "To: \"J.Smith\" <j@example.org>\r\n"),
            (".", "To: \".\" <j@example.org>\r\n"),
            ("Ana", "To: Ana <j@example.org>\r\n"),
            ("J. Smith", "To: \"J. Smith\" <j@example.org>\r\n"),
        ] {
            let m = Mailbox::new(Some(name.into()), "j@example.org".parse().unwrap());
            assert_eq!(wire(&mailbox::<To>(&m)), want);
        }
    }

    #[test]
    fn a_long_word_in_a_subject_or_name_is_folded_as_encoded_words() {
        let word = "x".repeat(20_000);
        let subject = format!("Hello {word} and https://example.org/{}", "p".repeat(100));
        let v = unstructured("Subject", &subject);
        assert_lines_fit(&wire(&v));
        let raw = format!("{}Content-Type: text/plain\r\n\r\nbody\r\n", wire(&v));
        let m = mail_parser::MessageParser::default().parse(raw.as_bytes()).unwrap();
        assert_eq!(m.subject(), Some(subject.as_str()));

        let m: Mailbox = format!("Ana {word} é <ana@example.org>").parse().unwrap();
        let v = mailbox::<From>(&m);
        assert_lines_fit(&wire(&v));
        let raw = format!("{}Content-Type: text/plain\r\n\r\nbody\r\n", wire(&v));
        let parsed = mail_parser::MessageParser::default().parse(raw.as_bytes()).unwrap();
        let from = parsed.from().and_then(|a| a.first()).unwrap();
        assert_eq!(from.address(), Some("ana@example.org"));
        assert_eq!(from.name(), m.name.as_deref());
    }
}
