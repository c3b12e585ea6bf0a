//! Transfer encodings for the text and HTML parts: `7bit` when every line is short printable
//! ASCII, otherwise quoted-printable or base64, so no line of a part ever exceeds RFC 5322's
//! limits whatever a member's values hold.

use lettre::message::Body;
use lettre::message::header::ContentTransferEncoding;

/// Encodes a text part with CRLF line endings as `7bit` (short lines of printable ASCII),
/// `quoted-printable` (mostly ASCII: the usual newsletter) or `base64` (mostly non-Latin text),
/// the choice lettre's `Body::new` makes.
///
/// Why not `Body::new`: it inserts each CR by shifting the rest of the string, which on the
/// example newsletter (17 KB) was most of the time to build a message. Here line endings are
/// converted in one pass and [`quoted_printable`] encodes.
pub(super) fn text_body(s: &str) -> Body {
    let crlf = to_crlf(s);
    let non_ascii = count_non_ascii(&crlf);
    let seven_bit = non_ascii == 0
        && crlf.split(|&b| b == b'\n').all(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            line.len() < 76
                && !line.ends_with(b" ")
                && !line.ends_with(b"\t")
                && line.iter().all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
        });
    if seven_bit {
        Body::dangerous_pre_encoded(crlf, ContentTransferEncoding::SevenBit)
    } else if non_ascii * 3 <= s.len() {
        let qp = quoted_printable(&crlf);
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
/// this one: `cargo bench --bench personalise`, "build + format only"). Finding runs of
/// plain characters eight bytes at a time, escapes written in place and line ends found with
/// `memchr` halved that again (37.7 → 19.9 µs of CPU a message, the same bench, A/B).
fn quoted_printable(input: &[u8]) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Vec::with_capacity(input.len() + input.len() / 8 + 16);
    // Characters on the current output line, and where the last thing appended starts (a
    // soft break goes there when the line is already full).
    let (mut on_line, mut last) = (0usize, 0usize);
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if plain(b) {
            if on_line + 3 <= LIMIT {
                // A run of plain characters, stopping two short of the limit.
                let end = input.len().min(i + LIMIT - on_line - 2);
                let j = plain_run(input, i + 1, end);
                out.extend_from_slice(&input[i..j]);
                on_line += j - i;
                last = out.len();
                i = j;
            } else {
                append_qp(&mut out, &[b], &mut on_line, &mut last);
                i += 1;
            }
        } else if b == b'\r' && input.get(i + 1) == Some(&b'\n') {
            encode_trailing_blank(&mut out, &mut on_line, &mut last);
            out.extend_from_slice(b"\r\n");
            on_line = 0;
            i += 2;
        } else {
            let escaped = [b'=', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]];
            if on_line + escaped.len() <= LIMIT {
                out.extend_from_slice(&escaped);
                on_line += escaped.len();
                last = out.len() - escaped.len();
            } else {
                append_qp(&mut out, &escaped, &mut on_line, &mut last);
            }
            i += 1;
        }
    }
    encode_trailing_blank(&mut out, &mut on_line, &mut last);
    out
}

/// Characters on an encoded line, `=` of a soft break included.
const LIMIT: usize = 76;

/// Bytes written as they are: printable ASCII but `=`, space and tab.
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

fn plain(b: u8) -> bool {
    PLAIN[usize::from(b)]
}

/// Where the run of plain bytes from `j` ends, at `end` at the latest.
fn plain_run(input: &[u8], mut j: usize, end: usize) -> usize {
    while j + 8 <= end {
        let flags = not_plain(u64::from_le_bytes(input[j..j + 8].try_into().expect("8 bytes")));
        if flags != 0 {
            // The lowest flag is exact (only the bytes above it can be flagged wrongly).
            j += flags.trailing_zeros() as usize / 8;
            break;
        }
        j += 8;
    }
    while j < end && plain(input[j]) {
        j += 1;
    }
    j
}

/// Flags (the high bit of the byte) the bytes of `w` below space (tab included, which the
/// byte-by-byte loop then takes), above `~`, or `=`.
fn not_plain(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w;
    let above_tilde = w.wrapping_add(ONES) | w;
    let eq = w ^ (ONES * u64::from(b'='));
    let equals = eq.wrapping_sub(ONES) & !eq;
    (below_space | above_tilde | equals) & HIGH
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
    if *on_line + token.len() > LIMIT {
        if *on_line == LIMIT {
            let (at, end) = (*last, out.len());
            *on_line = end - at;
            out.extend_from_slice(b"=\r\n");
            out.copy_within(at..end, at + 3);
            out[at..at + 3].copy_from_slice(b"=\r\n");
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

/// LF or CRLF line endings → CRLF; a lone CR is kept (and encoded later), but one at the very
/// end is dropped.
fn to_crlf(s: &str) -> Vec<u8> {
    let s = s.as_bytes();
    let mut out = Vec::with_capacity(s.len() + s.len() / 32 + 2);
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', s).chain(std::iter::once(s.len())) {
        if start > 0 {
            out.extend_from_slice(b"\r\n");
        }
        let line = &s[start..end];
        out.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
        start = end + 1;
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
