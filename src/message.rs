//! The MIME message: `multipart/alternative` with text first and HTML last, UTF-8, one `To`,
//! a unique `Message-ID` on the sender's domain, list headers. The same builder serves
//! `preview`, dry runs and real sends.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, bail};
use lettre::Message;
use lettre::address::Envelope;
use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};

use crate::config::Config;
use crate::dkim::{Key, Signer};
use crate::email::Email;
use crate::list::Recipient;
use crate::newsletter::Newsletter;
use crate::render::{Rendered, header_safe};
use crate::unsubscribe::Unsubscribe;

/// What every message of a campaign shares.
pub struct Letterhead {
    pub from: Mailbox,
    pub reply_to: Option<Mailbox>,
    pub list_id: Option<String>,
    /// Domain of the `Message-ID`s (the sender's).
    pub domain: String,
    pub unsubscribe: Option<Arc<Unsubscribe>>,
    /// `Feedback-ID` value: campaign and the configured identifier.
    pub feedback_id: Option<String>,
    /// The DKIM signer, when `[dkim]` is configured.
    dkim: Option<Signer>,
    /// Random per run, so Message-IDs never repeat across runs or machines.
    nonce: String,
    counter: AtomicU64,
}

impl Letterhead {
    pub fn new(n: &Newsletter, config: &Config, unsubscribe: Option<Arc<Unsubscribe>>) -> Result<Letterhead> {
        let file = n.path.display();
        let from_raw = n.front.from.as_deref().or(config.from.as_deref()).with_context(|| {
            format!("{file}: no sender: add `from: \"Name <news@example.org>\"` to the front matter or `from` to bulletin.toml")
        })?;
        // Where a value was written: the newsletter's line, else the settings file.
        let settings = config
            .source
            .as_ref()
            .map_or_else(|| "bulletin.toml".into(), |p| p.display().to_string());
        let at = |key: &str, in_front: bool| match in_front {
            true => format!("{file}:{}", n.line_of_key(key)),
            false => settings.clone(),
        };
        let from = mailbox(from_raw).with_context(|| {
            format!(
                "{}: sender {from_raw:?} is not `Name <address>`",
                at("from", n.front.from.is_some())
            )
        })?;
        let reply_to = match n.front.reply_to.as_deref().or(config.reply_to.as_deref()) {
            Some(r) => Some(mailbox(r).with_context(|| {
                format!(
                    "{}: reply_to {r:?} is not an address",
                    at("reply_to", n.front.reply_to.is_some())
                )
            })?),
            None => None,
        };
        if let Some(id) = &config.list_id {
            let inner = id.rsplit_once('<').and_then(|(_, r)| r.strip_suffix('>'));
            if !inner.is_some_and(|i| i.contains('.') && !i.contains('@') && !i.contains(' ')) {
                bail!("list_id {id:?} must look like `Members <members.example.org>` (RFC 2919)");
            }
        }
        let domain = from.email.domain().to_ascii_lowercase();
        let feedback_id = config
            .feedback_id
            .as_deref()
            .map(|f| header_safe(&format!("{}:{f}", n.campaign_id())));
        let dkim = match &config.dkim {
            None => None,
            Some(d) => {
                let key = Key::load(&config.resolve(&d.private_key), &d.domain, &d.selector)?;
                // Sign what a receiver judges and what a relay must not change; only headers
                // the messages carry. Content-Type is not listed, as it was not with lettre's
                // signer, which could not sign it (lettre writes it outside the message headers).
                let mut headers = vec!["From", "To", "Subject", "Date", "Message-ID", "MIME-Version"];
                let present = [
                    ("Reply-To", reply_to.is_some()),
                    ("List-Id", config.list_id.is_some()),
                    ("List-Unsubscribe", unsubscribe.is_some()),
                    (
                        "List-Unsubscribe-Post",
                        unsubscribe.as_ref().is_some_and(|u| u.one_click()),
                    ),
                    ("Feedback-ID", feedback_id.is_some()),
                ];
                headers.extend(present.iter().filter(|(_, here)| *here).map(|(h, _)| *h));
                Some(key.signer(&headers))
            }
        };
        Ok(Letterhead {
            from,
            reply_to,
            list_id: config.list_id.as_deref().map(header_safe),
            domain,
            unsubscribe,
            feedback_id,
            dkim,
            nonce: format!("{:016x}", fastrand::u64(..)),
            counter: AtomicU64::new(0),
        })
    }

    /// A new unique Message-ID, `<nonce.counter.random@domain>`.
    pub fn message_id(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("<{}.{n}.{:08x}@{}>", self.nonce, fastrand::u32(..), self.domain)
    }

    /// Builds the message for one member.
    pub fn build(&self, r: &Recipient, content: &Rendered, message_id: String) -> Result<Message> {
        let address: lettre::Address = r.email.as_str().parse().context("invalid recipient address")?;
        let name = r.display_name().map(|n| header_safe(&n)).filter(|n| !n.is_empty());
        // The envelope is the From and To headers, given here so lettre need not parse them
        // back out of the headers it just wrote (a tenth of the time to build a message).
        let envelope = Envelope::new(Some(self.from.email.clone()), vec![address.clone()])?;
        let to = Mailbox::new(name, address);
        let mut b = Message::builder()
            .envelope(envelope)
            .from(self.from.clone())
            .to(to)
            .subject(content.subject.clone())
            .message_id(Some(message_id))
            .date_now();
        if let Some(r) = &self.reply_to {
            b = b.reply_to(r.clone());
        }
        if let Some(id) = &self.list_id {
            b = b.raw_header(HeaderValue::new(HeaderName::new_from_ascii_str("List-Id"), id.clone()));
        }
        if let Some(u) = &self.unsubscribe {
            b = b.raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe"),
                u.header(&r.email),
            ));
            if u.one_click() {
                b = b.raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                    "List-Unsubscribe=One-Click".into(),
                ));
            }
        }
        if let Some(f) = &self.feedback_id {
            b = b.raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("Feedback-ID"),
                f.clone(),
            ));
        }
        let body = MultiPart::alternative()
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(text_body(&content.text)),
            )
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(text_body(&content.html)),
            );
        let mut message = b.multipart(body).context("cannot build the message")?;
        if let Some(dkim) = &self.dkim {
            dkim.sign(&mut message).context("cannot DKIM-sign the message")?;
        }
        Ok(message)
    }
}

/// Parses `Name <address>` or a bare address, refusing header-breaking characters.
pub fn mailbox(s: &str) -> Result<Mailbox> {
    if s.chars().any(|c| c.is_control()) {
        bail!("it contains a line break or control character");
    }
    let m: Mailbox = s.trim().parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    Email::parse(m.email.as_ref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(m)
}

/// Encodes a text part with CRLF line endings as `7bit` (short lines of printable ASCII),
/// `quoted-printable` (mostly ASCII: the usual newsletter) or `base64` (mostly non-Latin text),
/// the choice lettre's `Body::new` makes.
///
/// Why not `Body::new`: it inserts each CR by shifting the rest of the string, which on the
/// example newsletter (17 KB) was most of the time to build a message. Here line endings are
/// converted in one pass and [`quoted_printable`] encodes.
fn text_body(s: &str) -> Body {
    let crlf = to_crlf(s);
    let non_ascii = count_non_ascii(crlf.as_bytes());
    let seven_bit = non_ascii == 0
        && crlf.split("\r\n").all(|line| {
            line.len() < 76
                && !line.ends_with([' ', '\t'])
                && line.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
        });
    if seven_bit {
        Body::dangerous_pre_encoded(crlf.into_bytes(), ContentTransferEncoding::SevenBit)
    } else if non_ascii * 3 <= s.len() {
        let qp = quoted_printable(crlf.as_bytes());
        Body::dangerous_pre_encoded(qp, ContentTransferEncoding::QuotedPrintable)
    } else {
        // Mostly non-ASCII: quoted-printable would triple it, base64 is shorter.
        Body::new(s.to_owned())
    }
}

/// Quoted-printable (RFC 2045 §6.7) of text with CRLF line breaks: byte for byte what the
/// `quoted_printable` crate's `encode` (the encoder lettre uses) writes, lines of at most 76
/// characters, but working on bytes and copying runs of plain characters whole. The crate
/// appends `char` by `char` to a `String`; on the example's HTML part, full of `=` in its
/// attributes, that was most of the time to build a message (31 µs → 18 µs a message with
/// this one: `cargo bench --bench personalise`, "build + format only").
fn quoted_printable(input: &[u8]) -> Vec<u8> {
    const LIMIT: usize = 76;
    // Bytes written as they are: printable ASCII but `=`, space and tab.
    const PLAIN: [bool; 256] = {
        let mut t = [false; 256];
        let mut b = b' ';
        while b <= b'~' {
            t[b as usize] = b != b'=';
            b += 1;
        }
        t[b'\t' as usize] = true;
        t
    };
    let plain = |b: u8| PLAIN[usize::from(b)];
    let mut out = Vec::with_capacity(input.len() + input.len() / 8 + 16);
    // Characters on the current output line, and where the last thing appended starts (a
    // soft break goes there when the line is already full).
    let (mut on_line, mut last) = (0usize, 0usize);
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b == b'\r' && input.get(i + 1) == Some(&b'\n') {
            encode_trailing_blank(&mut out, &mut on_line, &mut last);
            out.extend_from_slice(b"\r\n");
            on_line = 0;
            i += 2;
        } else if plain(b) && on_line + 3 <= LIMIT {
            // A run of plain characters, stopping two short of the limit.
            let end = input.len().min(i + LIMIT - on_line - 2);
            let mut j = i + 1;
            while j < end && plain(input[j]) {
                j += 1;
            }
            out.extend_from_slice(&input[i..j]);
            on_line += j - i;
            last = out.len();
            i = j;
        } else {
            let hex = |n: u8| b"0123456789ABCDEF"[usize::from(n & 15)];
            let escaped = [b'=', hex(b >> 4), hex(b)];
            let token: &[u8] = if plain(b) { &[b] } else { &escaped };
            append_qp(&mut out, token, &mut on_line, &mut last);
            i += 1;
        }
    }
    encode_trailing_blank(&mut out, &mut on_line, &mut last);
    out
}

/// How many bytes are not ASCII, eight at a time.
fn count_non_ascii(bytes: &[u8]) -> usize {
    let chunks = bytes.chunks_exact(8);
    let rest = chunks.remainder().iter().filter(|&&b| b >= 0x80).count();
    chunks
        .map(|c| (u64::from_ne_bytes(c.try_into().expect("8 bytes")) & 0x8080_8080_8080_8080).count_ones() as usize)
        .sum::<usize>()
        + rest
}

/// Appends one character or `=XX` escape, breaking the line first (`=` CRLF) if it would not
/// fit; a line already at the limit breaks before its last token instead.
fn append_qp(out: &mut Vec<u8>, token: &[u8], on_line: &mut usize, last: &mut usize) {
    const LIMIT: usize = 76;
    if *on_line + token.len() > LIMIT {
        if *on_line == LIMIT {
            *on_line = out.len() - *last;
            out.splice(*last..*last, *b"=\r\n");
        } else {
            out.extend_from_slice(b"=\r\n");
            *on_line = 0;
        }
    }
    out.extend_from_slice(token);
    *on_line += token.len();
    *last = out.len() - token.len();
}

/// A space or tab may not end an encoded line: escape it.
fn encode_trailing_blank(out: &mut Vec<u8>, on_line: &mut usize, last: &mut usize) {
    let token: &[u8] = match out.last() {
        Some(b' ') => b"=20",
        Some(b'\t') => b"=09",
        _ => return,
    };
    out.pop();
    *on_line -= 1;
    append_qp(out, token, on_line, last);
}

/// LF or CRLF line endings → CRLF; a lone CR is kept (and encoded later).
fn to_crlf(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 32);
    for (i, line) in s.split('\n').enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `encoded` with an independent parser (mail-parser).
    fn decode(encoded: &[u8], cte: &str) -> String {
        let mut raw =
            format!("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: {cte}\r\n\r\n").into_bytes();
        raw.extend_from_slice(encoded);
        let m = mail_parser::MessageParser::default().parse(&raw).unwrap();
        m.body_text(0).unwrap().into_owned()
    }

    fn crlf(s: &str) -> String {
        s.replace("\r\n", "\n").replace('\n', "\r\n")
    }

    #[test]
    fn text_bodies_round_trip_with_short_lines() {
        let long = "word ".repeat(40);
        let cases = [
            String::new(),
            "\n".into(),
            "a = b\n".into(),
            "trailing space \nand tab\t\r\nlast ".into(),
            format!("{long}\n{}\n", "x".repeat(300)),
            format!("{}\n", "=".repeat(100)),
            format!("{}é{}", "y".repeat(73), "z".repeat(80)),
            "Dear Lucía — “quoted” ✊🏽\n".repeat(20),
            format!("{}\n", "x".repeat(75)),
            format!("{}  \n{} ", "x".repeat(74), "y".repeat(74)),
        ];
        for s in &cases {
            let body = text_body(s);
            let cte = match body.encoding() {
                ContentTransferEncoding::SevenBit => "7bit",
                ContentTransferEncoding::QuotedPrintable => "quoted-printable",
                _ => "base64",
            };
            let out = body.into_vec();
            for line in String::from_utf8(out.clone()).unwrap().split("\r\n") {
                assert!(line.len() <= 76, "line too long ({}): {line:?}", line.len());
                assert!(!line.ends_with([' ', '\t']), "trailing whitespace: {line:?}");
                assert!(!line.contains(['\r', '\n']), "bare CR or LF: {line:?}");
            }
            assert_eq!(decode(&out, cte), crlf(s), "for {s:?}");
        }
    }

    #[test]
    fn quoted_printable_matches_the_crate_lettre_uses() {
        let cases = [
            "",
            " ",
            "\r",
            "\r\n",
            "a \r\n\t\r\n",
            "x\r",
            "x \r",
            "=\r\n=",
            "lone\rCR and\nLF",
            "Dear Lucía — “quoted” ✊🏽\r\n",
        ];
        for s in cases {
            assert_eq!(quoted_printable(s.as_bytes()), quoted_printable::encode(s), "for {s:?}");
        }
        use proptest::prelude::*;
        let bytes = proptest::collection::vec(
            prop_oneof![
                4 => proptest::sample::select(b"ab= \t\r\n.".to_vec()),
                1 => any::<u8>(),
            ],
            0..400,
        );
        proptest::test_runner::TestRunner::new(proptest::test_runner::Config::with_cases(2000))
            .run(&bytes, |input| {
                prop_assert_eq!(quoted_printable(&input), quoted_printable::encode(&input));
                Ok(())
            })
            .unwrap();
        let html = format!(
            "<p style=\"margin: 0 0 16px 0;\">{}</p>\r\n",
            "Dear Amélie — ".repeat(40)
        );
        assert_eq!(quoted_printable(html.as_bytes()), quoted_printable::encode(&html));
    }

    #[test]
    fn quoted_printable_keeps_ascii_readable() {
        let body = text_body("Dear Meera,\nA = 1 — ok\n");
        assert_eq!(body.into_vec(), b"Dear Meera,\r\nA =3D 1 =E2=80=94 ok\r\n");
    }

    #[test]
    fn text_body_chooses_like_lettre() {
        let short = "Hello\nworld\n";
        let b = text_body(short);
        assert_eq!(b.encoding(), ContentTransferEncoding::SevenBit);
        assert_eq!(b.as_ref(), b"Hello\r\nworld\r\n");
        let seven = ContentTransferEncoding::SevenBit;
        assert_eq!(text_body(&format!("{}\r\n", "x".repeat(75))).encoding(), seven);
        assert_ne!(text_body(&format!("{}\n", "x".repeat(76))).encoding(), seven);
        assert_ne!(text_body("trailing space \n").encoding(), seven);
        assert_ne!(text_body("lone\rCR").encoding(), seven);
        assert_eq!(
            text_body(&"long line ".repeat(10)).encoding(),
            ContentTransferEncoding::QuotedPrintable
        );
        assert_eq!(
            text_body("Hello — world").encoding(),
            ContentTransferEncoding::QuotedPrintable
        );
        let greek = "Αγαπητά μέλη, ευχαριστούμε.\n".repeat(5);
        let b = text_body(&greek);
        assert_eq!(b.encoding(), ContentTransferEncoding::Base64);
        assert_eq!(decode(b.as_ref(), "base64"), crlf(&greek));
    }
}
