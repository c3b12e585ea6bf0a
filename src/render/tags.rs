//! Carrying merge-field tags safely through Markdown.
//!
//! Rendering Markdown first would percent-encode `{{ }}` inside link URLs; rendering templates
//! first would let a member's name inject Markdown. So every `{{ … }}`, `{% … %}` and `{# … #}`
//! is swapped for an inert, URL-safe token (`BLTN7Z`) before Markdown runs, and swapped back
//! afterwards. A token that sits inside a URL (not at its start) comes back wrapped in the
//! `urlencode` filter, so a merge value can never break out of its link.

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

const PREFIX: &str = "BLTN";
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
        let mut rest = src;
        let mut line = first_line;
        while let Some(at) = find_open(rest) {
            let (before, tail) = rest.split_at(at);
            out.push_str(before);
            line += before.matches('\n').count();
            let (open, close, kind) = match &tail[..2] {
                "{{" => ("{{", "}}", Kind::Expr),
                "{%" => ("{%", "%}", Kind::Stmt),
                _ => ("{#", "#}", Kind::Comment),
            };
            let Some(end) = find_close(&tail[2..], close, kind != Kind::Comment) else {
                return Err(Unclosed { line, open, close });
            };
            let tag = &tail[..2 + end + 2];
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
            rest = &tail[tag.len()..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Puts the tags back into rendered output (which `neutralise` has already made safe).
    pub fn restore(&self, rendered: &str) -> String {
        let mut out = String::with_capacity(rendered.len() + 64);
        let mut rest = rendered;
        while let Some(at) = rest.find(PREFIX) {
            out.push_str(&rest[..at]);
            let tail = &rest[at + PREFIX.len()..];
            let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
            let suffix = tail[digits..].chars().next();
            let tag = tail[..digits].parse::<usize>().ok().and_then(|i| self.list.get(i));
            match (tag, suffix) {
                (Some(tag), Some(TEXT | OPEN | CLOSE | STMT)) => out.push_str(&tag.src),
                (Some(tag), Some(URL)) if tag.kind == Kind::Expr => {
                    out.push_str("{{ (");
                    out.push_str(&tag.inner);
                    out.push_str(")|urlencode }}");
                }
                (Some(tag), Some(URL_START)) if tag.kind == Kind::Expr => {
                    out.push_str("{{ (");
                    out.push_str(&tag.inner);
                    out.push_str(")|url_start }}");
                }
                (Some(tag), Some(URL | URL_START)) => out.push_str(&tag.src),
                _ => {
                    out.push_str(PREFIX);
                    rest = tail;
                    continue;
                }
            }
            rest = &tail[digits + 1..];
        }
        out.push_str(rest);
        out
    }

    /// In a URL, every token but one at the very start is marked for percent-encoding: a
    /// leading `{{ unsubscribe_url }}` is a whole URL (marked to have its scheme checked), a
    /// later `{{ first_name }}` is data.
    pub fn mark_url(url: &str) -> String {
        let mut out = String::with_capacity(url.len());
        let mut rest = url;
        while let Some(at) = rest.find(PREFIX) {
            let tail = &rest[at + PREFIX.len()..];
            let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
            out.push_str(&rest[..at + PREFIX.len() + digits]);
            let is_start = out.len() == PREFIX.len() + digits;
            match tail[digits..].strip_prefix(TEXT) {
                Some(after) if digits > 0 => {
                    out.push(if is_start { URL_START } else { URL });
                    rest = after;
                }
                _ => rest = &tail[digits..],
            }
        }
        out.push_str(rest);
        out
    }

    /// Does this text hold a token for a `{% %}` statement?
    pub fn has_statement(&self, text: &str) -> bool {
        self.tokens_in(text).any(|t| t.kind == Kind::Stmt)
    }

    /// Does this text hold any token?
    pub fn has_token(&self, text: &str) -> bool {
        self.tokens_in(text).next().is_some()
    }

    /// Is this text nothing but statement tokens (and whitespace)?
    pub fn only_statements(&self, text: &str) -> bool {
        let mut rest = text.trim();
        let mut any = false;
        while let Some(tail) = rest.strip_prefix(PREFIX) {
            let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
            let Some(tag) = tail[..digits].parse::<usize>().ok().and_then(|i| self.list.get(i)) else {
                return false;
            };
            if tag.kind != Kind::Stmt || !tail[digits..].starts_with(STATEMENTS) {
                return false;
            }
            any = true;
            rest = tail[digits + 1..].trim_start();
        }
        any && rest.is_empty()
    }

    /// Can `text` be wrapped in a `{% filter %}` block as it is? Only when its statements are
    /// `if`/`for` blocks that open and close inside it; `set`, macros, includes and the like
    /// (whose meaning a filter block's scope would change) never are.
    pub fn self_contained(&self, text: &str) -> bool {
        let mut depth = 0usize;
        for tag in self.tokens_in(text).filter(|t| t.kind == Kind::Stmt) {
            match block_step(&tag.inner) {
                Step::Open => depth += 1,
                Step::Middle if depth > 0 => {}
                Step::Close if depth > 0 => depth -= 1,
                _ => return false,
            }
        }
        depth == 0
    }

    /// If `text` is one `if`/`for` block from its first token to its last, as in
    /// `{% if city %}Meet us in {{ city }}.{% endif %}`, the opening token, what is inside, and
    /// the closing token. The inside must be self-contained (no `else` of the outer block).
    pub fn enclosing_block<'a>(&self, text: &'a str) -> Option<(&'a str, &'a str, &'a str)> {
        let text = text.trim();
        let (open, rest) = self.leading_token(text)?;
        let close_at = rest.rfind(PREFIX)?;
        let (inner, close) = rest.split_at(close_at);
        let close_tag = self.leading_token(close).filter(|(_, after)| after.is_empty())?.0;
        let is = |tok: &str, step: Step| {
            self.tokens_in(tok)
                .next()
                .is_some_and(|t| t.kind == Kind::Stmt && block_step(&t.inner) == step)
        };
        (is(open, Step::Open) && is(close_tag, Step::Close) && self.self_contained(inner))
            .then_some((open, inner, close_tag))
    }

    /// The text token at the start of `text` and what follows it.
    fn leading_token<'a>(&self, text: &'a str) -> Option<(&'a str, &'a str)> {
        let tail = text.strip_prefix(PREFIX)?;
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || !tail[digits..].starts_with([TEXT, OPEN, CLOSE, STMT]) {
            return None;
        }
        Some(text.split_at(PREFIX.len() + digits + 1))
    }

    fn tokens_in<'a>(&'a self, text: &'a str) -> impl Iterator<Item = &'a Tag> + 'a {
        text.match_indices(PREFIX).filter_map(move |(at, _)| {
            let tail = &text[at + PREFIX.len()..];
            let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
            tail[..digits].parse::<usize>().ok().and_then(|i| self.list.get(i))
        })
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

/// Keeps `{% %}` statements from leaving empty or half-open paragraphs in rendered HTML: a
/// `<p>` holding nothing but statements loses its tags, and a `<p>` that is one
/// `{% if %}…{% endif %}` block gets its tags inside the block, so a false condition leaves
/// no empty paragraph behind.
pub fn lift_statements(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(at) = rest.find("<p>") {
        let Some(len) = rest[at..].find("</p>") else { break };
        out.push_str(&rest[..at]);
        let content = &rest[at + 3..at + len];
        let toks = tokens(content);
        let outside: String = {
            let mut s = String::new();
            let mut from = 0;
            for &(start, end, _) in &toks {
                s.push_str(&content[from..start]);
                from = end;
            }
            s.push_str(&content[from..]);
            s
        };
        let statements = toks.iter().filter(|t| STATEMENTS.contains(&t.2)).count();
        if statements > 0 && statements == toks.len() && outside.trim().is_empty() {
            out.push_str(content.trim());
        } else if let Some((open, inner, close)) = enclosing(content.trim()) {
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

/// `(start, end, suffix)` of every token in `s`.
fn tokens(s: &str) -> Vec<(usize, usize, char)> {
    let mut found = Vec::new();
    for (at, _) in s.match_indices(PREFIX) {
        let tail = &s[at + PREFIX.len()..];
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        if let Some(c) = tail[digits..].chars().next().filter(|_| digits > 0) {
            found.push((at, at + PREFIX.len() + digits + 1, c));
        }
    }
    found
}

/// `text` as (opening token, inside, closing token) when it is exactly one `if`/`for` block
/// whose inside has no `else` or other statement of its own level.
fn enclosing(text: &str) -> Option<(&str, &str, &str)> {
    let toks = tokens(text);
    let first = toks.first()?;
    let last = toks.last()?;
    if first.0 != 0 || last.1 != text.len() || first.2 != OPEN || last.2 != CLOSE || toks.len() < 2 {
        return None;
    }
    let mut depth = 0usize;
    for (i, t) in toks.iter().enumerate() {
        match t.2 {
            OPEN => depth += 1,
            CLOSE => depth -= 1,
            STMT if depth == 1 => return None,
            _ => {}
        }
        if depth == 0 && i + 1 < toks.len() {
            return None;
        }
    }
    (depth == 0).then(|| (&text[..first.1], &text[first.1..last.0], &text[last.0..]))
}

/// Makes literal `{{`, `{%`, `{#` that did not come from a tag (a CSS rule, a setting, an
/// escaped brace in the text) inert, so only the author's real tags run.
pub fn neutralise(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains("{{") && !s.contains("{%") && !s.contains("{#") {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 16);
    let mut rest = s;
    while let Some(at) = find_open(rest) {
        out.push_str(&rest[..at]);
        out.push_str(&format!("{{{{ '{}' }}}}", &rest[at..at + 2]));
        rest = &rest[at + 2..];
    }
    out.push_str(rest);
    out.into()
}

/// The token for tag `i`.
pub fn token(i: usize, suffix: char) -> String {
    format!("{PREFIX}{i}{suffix}")
}

fn find_open(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    (0..b.len().saturating_sub(1)).find(|&i| b[i] == b'{' && matches!(b[i + 1], b'{' | b'%' | b'#'))
}

/// Finds `close`, skipping quoted strings when `quotes` is set.
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
    fn recognises_statement_only_text() {
        let mut tags = Tags::default();
        let p = tags.protect("{% if a %} {{ b }} {% endif %}", 1).unwrap();
        assert!(!tags.only_statements(&p));
        assert!(tags.has_statement(&p));
        let p = tags.protect(" {% if a %}\n", 1).unwrap();
        assert!(tags.only_statements(&p));
    }
}
