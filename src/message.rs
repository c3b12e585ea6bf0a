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
        let from = mailbox(from_raw).with_context(|| format!("sender {from_raw:?} is not `Name <address>`"))?;
        let reply_to = match n.front.reply_to.as_deref().or(config.reply_to.as_deref()) {
            Some(r) => Some(mailbox(r).with_context(|| format!("reply_to {r:?} is not an address"))?),
            None => None,
        };
        if let Some(id) = &config.list_id {
            let inner = id.rsplit_once('<').and_then(|(_, r)| r.strip_suffix('>'));
            if !inner.is_some_and(|i| i.contains('.') && !i.contains('@') && !i.contains(' ')) {
                bail!("list_id {id:?} must look like `Members <members.example.org>` (RFC 2919)");
            }
        }
        let domain = from.email.domain().to_ascii_lowercase();
        Ok(Letterhead {
            from,
            reply_to,
            list_id: config.list_id.as_deref().map(header_safe),
            domain,
            unsubscribe,
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
        b.multipart(body).context("cannot build the message")
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
/// Why not `Body::new`: it inserts each CR by shifting the rest of the string and its
/// quoted-printable encoder grows the output a byte at a time; on the example newsletter
/// (17 KB) that was 85 % of the time to build a message. Here one pass over the text encodes
/// it, and the same pass tells whether it needed encoding at all.
fn text_body(s: &str) -> Body {
    let qp = QuotedPrintable::encode(s);
    if qp.escaped == 0 && !qp.wrapped {
        // Nothing was encoded: the output is the text itself with CRLF, valid as 7bit.
        Body::dangerous_pre_encoded(qp.out, ContentTransferEncoding::SevenBit)
    } else if qp.escaped * 3 <= s.len() {
        Body::dangerous_pre_encoded(qp.out, ContentTransferEncoding::QuotedPrintable)
    } else {
        // Mostly non-ASCII: quoted-printable would triple it, base64 is shorter.
        Body::new(s.to_owned())
    }
}

/// Quoted-printable (RFC 2045 §6.7) of a text whose lines end in LF or CRLF.
struct QuotedPrintable {
    /// Lines end in CRLF and are at most 76 columns.
    out: Vec<u8>,
    /// Bytes written as `=XX`.
    escaped: usize,
    /// Whether any line needed a soft break.
    wrapped: bool,
}

/// Output columns per quoted-printable line, soft-break `=` included.
const QP_LINE: usize = 76;

/// Bytes quoted-printable writes as they are: printable ASCII except `=`, space and tab.
/// A table, because this test runs on every byte of every message.
const QP_LITERAL: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = matches!(b as u8, b' ' | b'\t' | b'!'..=b'<' | b'>'..=b'~');
        b += 1;
    }
    table
};

/// How many bytes at the start of `bytes` quoted-printable writes as they are. Most of a
/// newsletter is, so this first checks 16 bytes at a time with a test the compiler turns into
/// SIMD compares (a table lookup would go byte by byte), then finishes with the table.
fn literal_run(bytes: &[u8]) -> usize {
    let mut n = 0;
    for chunk in bytes.chunks_exact(16) {
        // Printable ASCII but `=` (tabs, also literal, take the slow path below).
        let plain = chunk.iter().fold(true, |all, &b| {
            all & (b.wrapping_sub(b' ') <= b'~' - b' ') & (b != b'=')
        });
        if !plain {
            break;
        }
        n += 16;
    }
    let rest = &bytes[n..];
    n + rest
        .iter()
        .position(|&b| !QP_LITERAL[usize::from(b)])
        .unwrap_or(rest.len())
}

impl QuotedPrintable {
    fn encode(s: &str) -> QuotedPrintable {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        // Content columns per output line: the last one is kept for a soft break.
        const MAX: usize = QP_LINE - 1;
        let mut qp = QuotedPrintable {
            out: Vec::with_capacity(s.len() + s.len() / 16),
            escaped: 0,
            wrapped: false,
        };
        let out = &mut qp.out;
        for (i, line) in s.split('\n').enumerate() {
            if i > 0 {
                out.extend_from_slice(b"\r\n");
            }
            let line = line.strip_suffix('\r').unwrap_or(line).as_bytes();
            let mut col = 0;
            let mut at = 0;
            while at < line.len() {
                // Copy the run of literal bytes, whole or in pieces that fit the line.
                let rest = &line[at..];
                let mut run = literal_run(rest);
                if run == rest.len() && matches!(rest.last(), Some(b' ' | b'\t')) {
                    run -= 1; // whitespace ending a line is encoded, or transport may strip it
                }
                let mut literal = &rest[..run];
                while !literal.is_empty() {
                    if col == MAX {
                        out.extend_from_slice(b"=\r\n");
                        (col, qp.wrapped) = (0, true);
                    }
                    let n = literal.len().min(MAX - col);
                    out.extend_from_slice(&literal[..n]);
                    col += n;
                    literal = &literal[n..];
                }
                at += run;
                // Then the byte that stopped it, as `=XX`.
                if let Some(&b) = line.get(at) {
                    if col + 3 > MAX {
                        out.extend_from_slice(b"=\r\n");
                        (col, qp.wrapped) = (0, true);
                    }
                    out.extend_from_slice(&[b'=', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
                    col += 3;
                    at += 1;
                    qp.escaped += 1;
                }
            }
        }
        qp
    }
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
    fn quoted_printable_round_trips_with_short_lines() {
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
            "lone\rcarriage return\n".into(),
            format!("{}\n", "x".repeat(75)),
            format!("{}  \n{} ", "x".repeat(74), "y".repeat(74)),
        ];
        for s in &cases {
            let out = QuotedPrintable::encode(s).out;
            let text = String::from_utf8(out.clone()).unwrap();
            for line in text.split("\r\n") {
                assert!(line.len() <= QP_LINE, "line too long ({}): {line:?}", line.len());
                assert!(!line.ends_with([' ', '\t']), "trailing whitespace: {line:?}");
                assert!(!line.contains(['\r', '\n']), "bare CR or LF: {line:?}");
            }
            assert_eq!(decode(&out, "quoted-printable"), crlf(s), "for {s:?}");
        }
    }

    #[test]
    fn literal_run_stops_at_the_first_byte_to_encode() {
        let text = "0123456789abcdef0123456789 \tabcdef=xyz";
        assert_eq!(literal_run(text.as_bytes()), text.find('=').unwrap());
        for stop in ["=", "\r", "\n", "\x7f", "é", "\0"] {
            for at in [0, 5, 15, 16, 17, 40] {
                let s = format!("{}{stop}{}", "a".repeat(at), "b".repeat(20));
                assert_eq!(literal_run(s.as_bytes()), at, "{stop:?} at {at}");
            }
        }
        assert_eq!(literal_run(&[b'x'; 40]), 40);
    }

    #[test]
    fn quoted_printable_keeps_ascii_readable() {
        let qp = QuotedPrintable::encode("Dear Meera,\nA = 1 — ok\n");
        assert_eq!(qp.out, b"Dear Meera,\r\nA =3D 1 =E2=80=94 ok\r\n");
        assert_eq!((qp.escaped, qp.wrapped), (4, false));
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
