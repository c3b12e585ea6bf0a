//! Carrying merge-field tags safely through Markdown.
//!
//! Rendering Markdown first would percent-encode `{{ }}` inside link URLs; rendering templates
//! first would let a member's name inject Markdown. So every `{{ … }}`, `{% … %}` and `{# … #}`
//! is swapped for an inert, URL-safe token (`BLTN7Z`) before Markdown runs, and swapped back
//! afterwards. A token that sits inside a URL (not at its start) comes back wrapped in the
//! `urlencode` filter, so a merge value can never break out of its link.

use super::scan::{Piece, Scan, Token, What};

/// What kind of tag a token stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `{{ expression }}`
    Expr,
    /// `{% statement %}`
    Stmt,
    /// `{# comment #}`
    Comment,
}

/// One template tag taken out of the source.
#[derive(Debug, Clone)]
pub struct Tag {
    /// The tag as written, braces included.
    pub src: String,
    /// The expression inside `{{ }}`, without whitespace-control marks.
    pub inner: String,
    pub kind: Kind,
    /// Physical line in the newsletter file.
    pub line: usize,
}

/// All tags of a newsletter, indexed by token number.
#[derive(Debug, Default)]
pub struct Tags {
    pub list: Vec<Tag>,
}

/// A tag that never closes.
#[derive(Debug)]
pub struct Unclosed {
    pub line: usize,
    pub open: &'static str,
    pub close: &'static str,
}

/// Start of every token.
pub(super) const PREFIX: &str = "BLTN";
/// Suffix of a token in ordinary text.
pub const TEXT: char = 'Z';
/// Suffix of a token whose value must be percent-encoded (inside a URL).
pub const URL: char = 'U';
/// Suffix of a token at the very start of a URL: its value is the URL itself, so it is not
/// encoded, but a scheme that runs code (`javascript:`, `data:`…) is refused.
pub const URL_START: char = 'L';
/// Suffixes of statement tokens: opening a block (`if`, `for`), closing one (`endif`,
/// `endfor`), anything else (`else`, `set`, …). The renderers see what a statement does to
/// the structure without the tag list.
pub const OPEN: char = 'O';
pub const CLOSE: char = 'C';
pub const STMT: char = 'S';
const STATEMENTS: [char; 3] = [OPEN, CLOSE, STMT];

impl Tags {
    /// Replaces every tag in `src` with its token; `first_line` is the line `src` starts on.
    pub fn protect(&mut self, src: &str, first_line: usize) -> Result<String, Unclosed> {
        let mut out = String::with_capacity(src.len());
        let mut line = first_line;
        for piece in Scan::tags(src) {
            let kind = match piece.what {
                What::Tag(kind) => kind,
                What::Unclosed(kind) => {
                    let (open, close) = match kind {
                        Kind::Expr => ("{{", "}}"),
                        Kind::Stmt => ("{%", "%}"),
                        Kind::Comment => ("{#", "#}"),
                    };
                    return Err(Unclosed { line, open, close });
                }
                _ => {
                    out.push_str(piece.src);
                    line += piece.src.matches('\n').count();
                    continue;
                }
            };
            let tag = piece.src;
            let inner = tag[2..tag.len() - 2].trim_matches(['-', '+', '~']).trim().to_owned();
            if kind != Kind::Comment {
                let suffix = match (kind, block_step(&inner)) {
                    (Kind::Expr, _) => TEXT,
                    (_, Step::Open) => OPEN,
                    (_, Step::Close) => CLOSE,
                    _ => STMT,
                };
                out.push_str(&token(self.list.len(), suffix));
                self.list.push(Tag {
                    src: tag.to_owned(),
                    inner,
                    kind,
                    line,
                });
            }
            line += tag.matches('\n').count();
        }
        Ok(out)
    }

    /// Puts the tags back into rendered output (which `neutralise` has already made safe).
    pub fn restore(&self, rendered: &str) -> String {
        self.restore_mapped(rendered).0
    }

    /// `restore`, and where each tag landed in the output with its line in the newsletter, so
    /// an error minijinja reports in a template can name the line the author wrote.
    pub fn restore_mapped(&self, rendered: &str) -> (String, Vec<(std::ops::Range<usize>, usize)>) {
        let mut out = String::with_capacity(rendered.len() + 64);
        let mut spans = Vec::new();
        for piece in Scan::tokens(rendered) {
            let What::Token(t) = piece.what else {
                out.push_str(piece.src);
                continue;
            };
            let start = out.len();
            if let Some(tag) = self.tag(t) {
                spans.push((start..start, tag.line));
            }
            match (self.tag(t), t.suffix) {
                (Some(tag), URL) if tag.kind == Kind::Expr => {
                    out.push_str("{{ (");
                    out.push_str(&tag.inner);
                    out.push_str(")|urlencode }}");
                }
                (Some(tag), URL_START) if tag.kind == Kind::Expr => {
                    out.push_str("{{ (");
                    out.push_str(&tag.inner);
                    out.push_str(")|url_start }}");
                }
                (Some(tag), _) => out.push_str(&tag.src),
                (None, _) => out.push_str(piece.src),
            }
            if let Some((range, _)) = spans.last_mut().filter(|(r, _)| r.start == start) {
                range.end = out.len();
            }
        }
        (out, spans)
    }

    /// In a URL, every token but one at the very start is marked for percent-encoding: a
    /// leading `{{ unsubscribe_url }}` is a whole URL (marked to have its scheme checked), a
    /// later `{{ first_name }}` is data.
    pub fn mark_url(url: &str) -> String {
        let mut out = String::with_capacity(url.len());
        for piece in Scan::tokens(url) {
            match piece.what {
                What::Token(t) if t.suffix == TEXT => {
                    out.push_str(&piece.src[..piece.src.len() - 1]);
                    out.push(if piece.at == 0 { URL_START } else { URL });
                }
                _ => out.push_str(piece.src),
            }
        }
        out
    }

    /// Does this text hold any token?
    pub fn has_token(&self, text: &str) -> bool {
        Scan::tokens(text).any(|p| matches!(p.what, What::Token(t) if self.tag(t).is_some()))
    }

    /// Is this text nothing but statement tokens (and whitespace)?
    pub fn only_statements(&self, text: &str) -> bool {
        self.blocks().only_statements(text)
    }

    /// Can `text` be wrapped in a `{% filter %}` block as it is? Only when its statements are
    /// `if`/`for` blocks that open and close inside it; `set`, macros, includes and the like
    /// (whose meaning a filter block's scope would change) never are.
    pub fn self_contained(&self, text: &str) -> bool {
        self.blocks().self_contained(text)
    }

    /// If `text` is one `if`/`for` block from its first token to its last, as in
    /// `{% if city %}Meet us in {{ city }}.{% endif %}`, the opening token, what is inside, and
    /// the closing token. The inside must be self-contained (no `else` of the outer block).
    pub fn enclosing_block<'a>(&self, text: &'a str) -> Option<(&'a str, &'a str, &'a str)> {
        self.blocks().enclosing(text)
    }

    /// The block detector, knowing each statement from its tag.
    fn blocks(&self) -> Blocks<impl Fn(Token) -> Option<Step> + '_> {
        Blocks(|t: Token| {
            let tag = self.tag(t)?;
            (tag.kind == Kind::Stmt && STATEMENTS.contains(&t.suffix)).then(|| block_step(&tag.inner))
        })
    }

    /// The tag a token stands for.
    fn tag(&self, t: Token) -> Option<&Tag> {
        self.list.get(t.index?)
    }

    /// Every tag at its own line, nothing else: compiling this finds syntax errors and
    /// unknown fields with the newsletter's real line numbers.
    pub fn skeleton(&self) -> String {
        let mut out = String::new();
        let mut line = 1;
        for tag in &self.list {
            while line < tag.line {
                out.push('\n');
                line += 1;
            }
            out.push_str(&tag.src);
            line += tag.src.matches('\n').count();
        }
        out
    }
}

/// What a statement does to block nesting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Open,
    Middle,
    Close,
    /// Anything else (`set`, `macro`, `include`, …).
    Other,
}

fn block_step(inner: &str) -> Step {
    match inner.split_whitespace().next().unwrap_or("") {
        "if" | "for" => Step::Open,
        "elif" | "else" => Step::Middle,
        "endif" | "endfor" => Step::Close,
        _ => Step::Other,
    }
}

/// The one block detector: how a run of protected text stands to `{% %}` blocks. Its
/// function says what a token does to nesting (`None`: it is no statement). The text part
/// asks it knowing every tag (`Tags::blocks`); the HTML part, which has only the tokens, by
/// their suffixes (`by_suffix`).
struct Blocks<S>(S);

impl<S: Fn(Token) -> Option<Step>> Blocks<S> {
    /// Is `text` nothing but statement tokens (and whitespace)?
    fn only_statements(&self, text: &str) -> bool {
        let mut any = false;
        for piece in Scan::tokens(text) {
            match piece.what {
                What::Token(t) if (self.0)(t).is_some() => any = true,
                What::Text if piece.src.trim().is_empty() => {}
                _ => return false,
            }
        }
        any
    }

    /// Do the statements of `text` open and close inside it, with an `else` only inside a
    /// block and nothing but `if`, `for` and their parts?
    fn self_contained(&self, text: &str) -> bool {
        self.nests(Scan::tokens(text))
    }

    /// `text`, trimmed, as (opening token, inside, closing token) when it is one `if`/`for`
    /// block from its first token to its last with a self-contained inside.
    fn enclosing<'a>(&self, text: &'a str) -> Option<(&'a str, &'a str, &'a str)> {
        let text = text.trim();
        let pieces: Vec<Piece<'a>> = Scan::tokens(text).collect();
        let [open, inside @ .., close] = pieces.as_slice() else {
            return None;
        };
        let is = |p: &Piece<'_>, step: Step| matches!(p.what, What::Token(t) if (self.0)(t) == Some(step));
        (is(open, Step::Open) && is(close, Step::Close) && self.nests(inside.iter().copied()))
            .then(|| (open.src, &text[open.src.len()..close.at], close.src))
    }

    fn nests<'a>(&self, pieces: impl IntoIterator<Item = Piece<'a>>) -> bool {
        let mut depth = 0usize;
        let steps = pieces.into_iter().filter_map(|p| match p.what {
            What::Token(t) => (self.0)(t),
            _ => None,
        });
        for step in steps {
            match step {
                Step::Open => depth += 1,
                Step::Middle if depth > 0 => {}
                Step::Close if depth > 0 => depth -= 1,
                _ => return false,
            }
        }
        depth == 0
    }
}

/// What a statement token does, from its suffix alone. The suffix cannot tell an `else` from
/// a `set`; either counts as `Middle`, allowed inside a nested block: in HTML no filter block
/// wraps the inside whose scope a `set` could change.
fn by_suffix(t: Token) -> Option<Step> {
    match t.suffix {
        OPEN => Some(Step::Open),
        CLOSE => Some(Step::Close),
        STMT => Some(Step::Middle),
        _ => None,
    }
}

/// Keeps `{% %}` statements from leaving empty or half-open paragraphs in rendered HTML: a
/// `<p>` holding nothing but statements loses its tags, and a `<p>` that is one
/// `{% if %}…{% endif %}` block gets its tags inside the block, so a false condition leaves
/// no empty paragraph behind.
pub fn lift_statements(html: &str) -> String {
    let blocks = Blocks(by_suffix);
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(at) = rest.find("<p>") {
        let Some(len) = rest[at..].find("</p>") else { break };
        out.push_str(&rest[..at]);
        let content = &rest[at + 3..at + len];
        if blocks.only_statements(content) {
            out.push_str(content.trim());
        } else if let Some((open, inner, close)) = blocks.enclosing(content) {
            out.push_str(open);
            out.push_str("<p>");
            out.push_str(inner.trim());
            out.push_str("</p>");
            out.push_str(close);
        } else {
            out.push_str(&rest[at..at + len + 4]);
        }
        rest = &rest[at + len + 4..];
    }
    out.push_str(rest);
    out
}

/// Makes literal `{{`, `{%`, `{#` that did not come from a tag (a CSS rule, a setting, an
/// escaped brace in the text) inert, so only the author's real tags run.
pub fn neutralise(s: &str) -> std::borrow::Cow<'_, str> {
    if Scan::openers(s).all(|p| p.what == What::Text) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 16);
    for piece in Scan::openers(s) {
        match piece.what {
            What::Opener(_) => out.push_str(&format!("{{{{ '{}' }}}}", piece.src)),
            _ => out.push_str(piece.src),
        }
    }
    out.into()
}

/// The token for tag `i`.
pub fn token(i: usize, suffix: char) -> String {
    format!("{PREFIX}{i}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_url_marking() {
        let mut tags = Tags::default();
        let p = tags
            .protect(
                "Dear {{ first_name | default(\"friend\") }}:\n[x](https://e.org/?n={{ name }}) {# hidden #}",
                10,
            )
            .unwrap();
        assert_eq!(p, "Dear BLTN0Z:\n[x](https://e.org/?n=BLTN1Z) ");
        assert_eq!(tags.list[1].line, 11);
        let url = Tags::mark_url("https://e.org/?n=BLTN1Z");
        assert_eq!(url, "https://e.org/?n=BLTN1U");
        assert_eq!(Tags::mark_url("BLTN1Z/x"), "BLTN1L/x");
        assert_eq!(tags.restore("BLTN1L/x"), "{{ (name)|url_start }}/x");
        assert_eq!(
            tags.restore(&neutralise("<a href=\"https://e.org/?n=BLTN1U\">BLTN0Z</a> {{x")),
            "<a href=\"https://e.org/?n={{ (name)|urlencode }}\">{{ first_name | default(\"friend\") }}</a> {{ '{{' }}x"
        );
    }

    #[test]
    fn unclosed_tag_before_multibyte_text_is_an_error_not_a_panic() {
        for src in ["{% Σ", "{%\u{2028}", "{{ 'é' ", "{{ \"x\\é"] {
            assert!(Tags::default().protect(src, 1).is_err(), "{src:?}");
        }
    }

    #[test]
    fn unclosed_tag_names_its_line() {
        let err = Tags::default().protect("a\nb {{ name \nc", 5).unwrap_err();
        assert_eq!((err.line, err.close), (6, "}}"));
    }

    #[test]
    fn quotes_may_hold_closing_braces() {
        let mut tags = Tags::default();
        tags.protect("{{ x | default(\"}}\") }}", 1).unwrap();
        assert_eq!(tags.list[0].inner, "x | default(\"}}\")");
    }

    #[test]
    fn finds_self_contained_and_enclosing_blocks() {
        let mut tags = Tags::default();
        let p = tags
            .protect("{% if a %}Hi {{ b }}{% if c %}!{% else %}.{% endif %}{% endif %}", 1)
            .unwrap();
        assert!(tags.self_contained(&p));
        let (open, inner, close) = tags.enclosing_block(&p).unwrap();
        assert_eq!((open, close), ("BLTN0O", "BLTN5C"));
        assert_eq!(inner, "Hi BLTN1ZBLTN2O!BLTN3S.BLTN4C");
        for src in [
            "{% if a %}x{% else %}y{% endif %}",
            "{% if a %}x{% endif %} and {% if b %}y{% endif %}",
            "{% set x = 1 %}{{ x }}",
            "{% if a %}never closed",
            "{% endif %}",
        ] {
            let mut tags = Tags::default();
            let p = tags.protect(src, 1).unwrap();
            assert!(tags.enclosing_block(&p).is_none(), "{src}");
        }
        let mut tags = Tags::default();
        let p = tags.protect("x {% if a %}y{% else %}z{% endif %}", 1).unwrap();
        assert!(tags.self_contained(&p));
        for src in ["{% set x = 1 %}", "{% if a %}", "{% else %}", "{% endif %}{% if a %}"] {
            let mut tags = Tags::default();
            let p = tags.protect(src, 1).unwrap();
            assert!(!tags.self_contained(&p), "{src}");
        }
    }

    #[test]
    fn lifts_statements_out_of_paragraphs() {
        let mut tags = Tags::default();
        let p = tags
            .protect(
                "<p>{% if a %}</p>\n<p>{% if b %}\nB is {{ b }}.\n{% endif %}</p>\n<p>{% endif %}</p>\n\
                 <p>{% if c %}x{% else %}y{% endif %}</p>\n<p>{% if c %}x{% endif %} {% if d %}y{% endif %}</p>\n\
                 <p>Dear {{ n }}{% if c %}!{% endif %}</p>",
                1,
            )
            .unwrap();
        assert_eq!(
            tags.restore(&lift_statements(&p)),
            "{% if a %}\n{% if b %}<p>B is {{ b }}.</p>{% endif %}\n{% endif %}\n\
             <p>{% if c %}x{% else %}y{% endif %}</p>\n<p>{% if c %}x{% endif %} {% if d %}y{% endif %}</p>\n\
             <p>Dear {{ n }}{% if c %}!{% endif %}</p>"
        );
    }

    #[test]
    fn html_and_text_see_the_same_blocks() {
        for src in [
            "{% if a %}Hi {{ b }}{% if c %}!{% else %}.{% endif %}{% endif %}",
            "{% if a %}x{% else %}y{% endif %}",
            "{% if a %}x{% endif %} and {% if b %}y{% endif %}",
            "{% for x in y %}{{ x }}{% endfor %}",
            " {% if a %}\n{% else %} ",
            "{% set x = 1 %}{{ x }}",
            "{% if a %}{% set x = 1 %}{% endif %}",
            "{% if a %}never closed",
            "{% endif %}",
            "{{ a }}",
        ] {
            let mut tags = Tags::default();
            let p = tags.protect(src, 1).unwrap();
            let (by_tag, by_suffix) = (tags.blocks(), Blocks(by_suffix));
            assert_eq!(by_tag.only_statements(&p), by_suffix.only_statements(&p), "{src}");
            assert_eq!(by_tag.enclosing(&p), by_suffix.enclosing(&p), "{src}");
        }
        // The one difference: from suffixes a `set` inside a nested block passes for an
        // `else`, which HTML allows and the text part's `{% filter %}` does not.
        let mut tags = Tags::default();
        let p = tags
            .protect("{% if a %}{% if b %}{% set x = 1 %}{% endif %}{% endif %}", 1)
            .unwrap();
        assert!(tags.enclosing_block(&p).is_none());
        assert!(Blocks(by_suffix).enclosing(&p).is_some());
    }

    #[test]
    fn token_like_text_right_before_a_token_is_not_a_panic() {
        // `BLTN1` is no token, and the token after it is still found.
        let mut tags = Tags::default();
        let p = tags.protect("BLTN1{{ name }} BLTN{% if a %}", 1).unwrap();
        assert_eq!(p, "BLTN1BLTN0Z BLTNBLTN1O");
        let html = format!("<p>{p}</p>");
        assert_eq!(lift_statements(&html), html);
        assert_eq!(tags.restore(&p), "BLTN1{{ name }} BLTN{% if a %}");
        assert_eq!(Tags::mark_url(&p), "BLTN1BLTN0U BLTNBLTN1O");
    }

    #[test]
    fn recognises_statement_only_text() {
        let mut tags = Tags::default();
        let p = tags.protect("{% if a %} {{ b }} {% endif %}", 1).unwrap();
        assert!(!tags.only_statements(&p));
        let p = tags.protect(" {% if a %}\n", 1).unwrap();
        assert!(tags.only_statements(&p));
    }
}
