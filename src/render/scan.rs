//! The one scanner for template tags and the tokens that stand in for them.
//!
//! Protecting tags, neutralising stray braces, restoring tokens, marking tokens in URLs and
//! telling `{% %}` blocks apart all need to know where a tag or a token starts and ends. They
//! all ask `Scan`, so they cannot disagree about it.

use super::tags::{CLOSE, Kind, OPEN, PREFIX, STMT, TEXT, URL, URL_START};

/// Every suffix a token can end with.
const SUFFIXES: [char; 6] = [TEXT, URL, URL_START, OPEN, CLOSE, STMT];

/// One piece of the scanned text: what was looked for, or the text between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Piece<'a> {
    /// Byte offset of the piece in the scanned text.
    pub at: usize,
    pub src: &'a str,
    pub what: What,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum What {
    /// Text between the things looked for.
    Text,
    /// `{{`, `{%` or `{#` on its own (`Scan::openers`).
    Opener(Kind),
    /// A whole tag, braces included (`Scan::tags`).
    Tag(Kind),
    /// A tag that never closes: from its opener to the end of the text (`Scan::tags`).
    Unclosed(Kind),
    /// A token, `BLTN` + digits + suffix (`Scan::tokens`).
    Token(Token),
}

/// What a token says: which tag (None when the digits overflow) and how it is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Token {
    pub index: Option<usize>,
    pub suffix: char,
}

#[derive(Debug, Clone, Copy)]
enum Target {
    Openers,
    Tags,
    Tokens,
}

/// Splits text into `Piece`s, in order, with nothing left out: the pieces' `src` joined give
/// the text back.
#[derive(Debug, Clone)]
pub(super) struct Scan<'a> {
    text: &'a str,
    at: usize,
    target: Target,
    /// The mark found after a run of text, yielded next.
    next_mark: Option<Piece<'a>>,
}

impl<'a> Scan<'a> {
    /// Finds tags in newsletter source. A closing mark inside a quoted string does not end a
    /// `{{ }}` or `{% %}` tag; a tag that never closes ends the scan.
    pub(super) fn tags(text: &'a str) -> Self {
        Scan::new(text, Target::Tags)
    }

    /// Finds every `{{`, `{%` and `{#`, closed or not.
    pub(super) fn openers(text: &'a str) -> Self {
        Scan::new(text, Target::Openers)
    }

    /// Finds tokens in text `Tags::protect` has made.
    pub(super) fn tokens(text: &'a str) -> Self {
        Scan::new(text, Target::Tokens)
    }

    fn new(text: &'a str, target: Target) -> Self {
        Scan {
            text,
            at: 0,
            target,
            next_mark: None,
        }
    }

    /// The next mark at or after `from`: its start, end and what it is.
    fn mark_from(&self, from: usize) -> Option<(usize, usize, What)> {
        let s = &self.text[from..];
        match self.target {
            Target::Openers => {
                let at = find_open(s)?;
                Some((from + at, from + at + 2, What::Opener(kind_at(&s[at..]))))
            }
            Target::Tags => {
                let at = find_open(s)?;
                let kind = kind_at(&s[at..]);
                let close = match kind {
                    Kind::Expr => "}}",
                    Kind::Stmt => "%}",
                    Kind::Comment => "#}",
                };
                Some(match find_close(&s[at + 2..], close, kind != Kind::Comment) {
                    Some(end) => (from + at, from + at + 2 + end + 2, What::Tag(kind)),
                    None => (from + at, self.text.len(), What::Unclosed(kind)),
                })
            }
            Target::Tokens => {
                let mut search = from;
                loop {
                    let at = search + self.text[search..].find(PREFIX)?;
                    let tail = &self.text[at + PREFIX.len()..];
                    let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
                    match tail[digits..].chars().next() {
                        Some(suffix) if digits > 0 && SUFFIXES.contains(&suffix) => {
                            let index = tail[..digits].parse().ok();
                            let end = at + PREFIX.len() + digits + 1;
                            return Some((at, end, What::Token(Token { index, suffix })));
                        }
                        // `BLTN` that is not a token (`BLTNOURS…`, or text): look further.
                        _ => search = at + PREFIX.len(),
                    }
                }
            }
        }
    }

    fn piece(&self, start: usize, end: usize, what: What) -> Piece<'a> {
        Piece {
            at: start,
            src: &self.text[start..end],
            what,
        }
    }
}

impl<'a> Iterator for Scan<'a> {
    type Item = Piece<'a>;

    fn next(&mut self) -> Option<Piece<'a>> {
        if let Some(mark) = self.next_mark.take() {
            return Some(mark);
        }
        if self.at >= self.text.len() {
            return None;
        }
        let start = self.at;
        match self.mark_from(start) {
            Some((at, end, what)) => {
                self.at = end;
                let mark = self.piece(at, end, what);
                if at == start {
                    return Some(mark);
                }
                self.next_mark = Some(mark);
                Some(self.piece(start, at, What::Text))
            }
            None => {
                self.at = self.text.len();
                Some(self.piece(start, self.text.len(), What::Text))
            }
        }
    }
}

/// The kind of tag whose opener starts `s`.
fn kind_at(s: &str) -> Kind {
    match &s.as_bytes()[..2] {
        b"{{" => Kind::Expr,
        b"{%" => Kind::Stmt,
        _ => Kind::Comment,
    }
}

fn find_open(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    (0..b.len().saturating_sub(1)).find(|&i| b[i] == b'{' && matches!(b[i + 1], b'{' | b'%' | b'#'))
}

/// Finds `close`, skipping quoted strings when `quotes` is set. Works on bytes: every mark it
/// looks for is ASCII, so whatever it returns is a character boundary.
fn find_close(s: &str, close: &str, quotes: bool) -> Option<usize> {
    let b = s.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < b.len() {
        match quote {
            Some(_) if b[i] == b'\\' => i += 1,
            Some(q) if b[i] == q => quote = None,
            Some(_) => {}
            None if quotes && (b[i] == b'"' || b[i] == b'\'') => quote = Some(b[i]),
            None if b[i..].starts_with(close.as_bytes()) => return Some(i),
            None => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(src, what)` of every piece.
    fn pieces(scan: Scan<'_>) -> Vec<(&str, What)> {
        scan.map(|p| (p.src, p.what)).collect()
    }

    fn token(index: usize, suffix: char) -> What {
        What::Token(Token {
            index: Some(index),
            suffix,
        })
    }

    #[test]
    fn pieces_cover_the_text_in_order() {
        for text in ["", "plain", "a {{ b }} c {% d %}{# e #}", "BLTN0ZxBLTN1O BLTN", "{{ x"] {
            for scan in [Scan::tags(text), Scan::openers(text), Scan::tokens(text)] {
                let mut at = 0;
                for p in scan {
                    assert_eq!(p.at, at, "{text:?}");
                    assert!(!p.src.is_empty(), "{text:?}");
                    at += p.src.len();
                }
                assert_eq!(at, text.len(), "{text:?}");
            }
        }
    }

    #[test]
    fn finds_the_three_kinds_of_tag_and_adjacent_tags() {
        assert_eq!(
            pieces(Scan::tags("Hi {{ a }}{% if b %}{# c #}!")),
            [
                ("Hi ", What::Text),
                ("{{ a }}", What::Tag(Kind::Expr)),
                ("{% if b %}", What::Tag(Kind::Stmt)),
                ("{# c #}", What::Tag(Kind::Comment)),
                ("!", What::Text),
            ]
        );
        assert_eq!(pieces(Scan::tags("{{}}")), [("{{}}", What::Tag(Kind::Expr))]);
    }

    #[test]
    fn a_closing_mark_in_a_string_does_not_close_the_tag() {
        assert_eq!(
            pieces(Scan::tags(r#"{{ "}}" }}{% set x = '%}' %}{{ "a\"}}" }}"#)),
            [
                (r#"{{ "}}" }}"#, What::Tag(Kind::Expr)),
                ("{% set x = '%}' %}", What::Tag(Kind::Stmt)),
                (r#"{{ "a\"}}" }}"#, What::Tag(Kind::Expr)),
            ]
        );
        // Comments have no strings: a quote in one is just a character.
        assert_eq!(
            pieces(Scan::tags("{# don't #}x")),
            [("{# don't #}", What::Tag(Kind::Comment)), ("x", What::Text)]
        );
        // Braces nested in a tag do not nest: the first closing mark closes it.
        assert_eq!(
            pieces(Scan::tags("{{ {'a': 1} }}}")),
            [("{{ {'a': 1} }}", What::Tag(Kind::Expr)), ("}", What::Text)]
        );
    }

    #[test]
    fn an_unclosed_tag_runs_to_the_end_and_ends_the_scan() {
        assert_eq!(
            pieces(Scan::tags("a {{ b }} c {% d {{ e }}")),
            [
                ("a ", What::Text),
                ("{{ b }}", What::Tag(Kind::Expr)),
                (" c ", What::Text),
                ("{% d {{ e }}", What::Unclosed(Kind::Stmt)),
            ]
        );
        assert_eq!(
            pieces(Scan::tags("{{ \"}} ")),
            [("{{ \"}} ", What::Unclosed(Kind::Expr))]
        );
        assert_eq!(pieces(Scan::tags("{#}")), [("{#}", What::Unclosed(Kind::Comment))]);
        assert_eq!(pieces(Scan::tags("{ {} %} #} {")), [("{ {} %} #} {", What::Text)]);
    }

    #[test]
    fn non_ascii_next_to_tags_and_tokens_is_not_a_panic() {
        // A multibyte character right after an opener, after a backslash in a string and
        // after a token's digits once split text inside a character.
        assert_eq!(
            pieces(Scan::tags("é{{ 'Σ' }}Ω{% Σ")),
            [
                ("é", What::Text),
                ("{{ 'Σ' }}", What::Tag(Kind::Expr)),
                ("Ω", What::Text),
                ("{% Σ", What::Unclosed(Kind::Stmt)),
            ]
        );
        for text in ["{{ \"x\\é", "{%\u{2028}", "🏽{{", "{{🏽}}", "{#é#}", "{\u{300}{"] {
            assert_eq!(Scan::tags(text).map(|p| p.src).collect::<String>(), text);
            assert_eq!(Scan::openers(text).map(|p| p.src).collect::<String>(), text);
        }
        assert_eq!(
            pieces(Scan::tokens("éBLTN0ZΩBLTN1éBLTNé")),
            [
                ("é", What::Text),
                ("BLTN0Z", token(0, TEXT)),
                ("ΩBLTN1éBLTNé", What::Text),
            ]
        );
    }

    #[test]
    fn openers_are_found_even_inside_tags() {
        assert_eq!(
            pieces(Scan::openers("{{ {%x{#{")),
            [
                ("{{", What::Opener(Kind::Expr)),
                (" ", What::Text),
                ("{%", What::Opener(Kind::Stmt)),
                ("x", What::Text),
                ("{#", What::Opener(Kind::Comment)),
                ("{", What::Text),
            ]
        );
        assert_eq!(
            pieces(Scan::openers("{{{")),
            [("{{", What::Opener(Kind::Expr)), ("{", What::Text)]
        );
    }

    #[test]
    fn tokens_need_digits_and_a_known_suffix() {
        assert_eq!(
            pieces(Scan::tokens("BLTN0ZBLTN12UBLTN3LBLTN4OBLTN5CBLTN6S")),
            [
                ("BLTN0Z", token(0, TEXT)),
                ("BLTN12U", token(12, URL)),
                ("BLTN3L", token(3, URL_START)),
                ("BLTN4O", token(4, OPEN)),
                ("BLTN5C", token(5, CLOSE)),
                ("BLTN6S", token(6, STMT)),
            ]
        );
        // Our own markers (`BLTNOURS0X`), unknown suffixes and a missing suffix are text, and
        // a token right after them is still found.
        assert_eq!(
            pieces(Scan::tokens("BLTNOURS0X BLTN1x BLTN2BLTN3Z BLTN4")),
            [
                ("BLTNOURS0X BLTN1x BLTN2", What::Text),
                ("BLTN3Z", token(3, TEXT)),
                (" BLTN4", What::Text)
            ]
        );
        // Digits that overflow still make a token, of no tag.
        let huge = format!("BLTN{}Z", "9".repeat(40));
        assert_eq!(
            pieces(Scan::tokens(&huge)),
            [(
                huge.as_str(),
                What::Token(Token {
                    index: None,
                    suffix: TEXT
                })
            )]
        );
    }
}
