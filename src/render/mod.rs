//! Compile once, personalise cheaply.
//!
//! `compile` does the expensive work once per newsletter: Markdown, layout, CSS inlining and
//! the plain-text rendering, producing three minijinja templates (subject, HTML, text).
//! `Compiled::personalise` then only runs those templates with one member's fields.

mod html;
pub mod lint;
pub mod markdown;
mod scan;
pub mod tags;
pub mod text;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use minijinja::value::{Enumerator, Object, Value};
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use percent_encoding::utf8_percent_encode;

use crate::config::Config;
use crate::diagnostic::Diagnostics;
use crate::list::{Columns, Recipient};
use crate::newsletter::Newsletter;
use crate::unsubscribe::{URL_VALUE, Unsubscribe};
use tags::Tags;

/// Fields every recipient has besides their list's columns.
pub const BUILTIN_FIELDS: [&str; 2] = ["email", "unsubscribe_url"];

/// Gmail clips HTML bodies larger than this.
pub const GMAIL_CLIP_BYTES: usize = 102 * 1024;

/// A newsletter ready to personalise.
pub struct Compiled {
    env: Environment<'static>,
    /// Fields used bare (`{{ first_name }}`, no default), with the line of their first such
    /// use: an empty value is an error.
    pub bare_fields: BTreeMap<String, usize>,
    /// The newsletter file, for messages.
    pub file: String,
    unsubscribe: Option<Arc<Unsubscribe>>,
}

/// One member's message content.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub subject: String,
    pub html: String,
    pub text: String,
}

/// Why one member's message could not be rendered.
#[derive(Debug)]
pub struct RenderError {
    pub message: String,
}

impl Compiled {
    /// Compiles `n`. `fields` are the list columns available (None: no list given, so merge
    /// fields cannot be checked). Problems go to `diags`; `None` when there were errors.
    pub fn compile(
        n: &Newsletter,
        config: &Config,
        fields: Option<&[String]>,
        unsubscribe: Option<Arc<Unsubscribe>>,
        diags: &mut Diagnostics,
    ) -> Option<Compiled> {
        let file = n.path.display().to_string();
        let errors_before = diags.errors();
        let mut tags = Tags::default();
        let mut protect = |src: &str, line: usize, diags: &mut Diagnostics| match tags.protect(src, line) {
            Ok(s) => s,
            Err(u) => {
                diags.error(
                    Some((&file, u.line)),
                    format!("`{}` is never closed: add `{}`", u.open, u.close),
                );
                String::new()
            }
        };
        let subject = match n.front.subject.as_deref().map(str::trim) {
            Some(s) if !s.is_empty() => protect(s, n.line_of_key("subject"), diags),
            _ => {
                diags.error(
                    Some((&file, 1)),
                    "the newsletter has no subject: add `subject: \"…\"` to the front matter",
                );
                String::new()
            }
        };
        let preheader = n
            .front
            .preheader
            .as_deref()
            .map(|p| protect(p, n.line_of_key("preheader"), diags));
        let body = protect(&n.body, n.body_line, diags);
        let unsub_token = protect("{{ unsubscribe_url }}", 0, diags);
        lint::foreign_placeholders(n, fields, diags);
        lint::broken_links(n, diags);
        lint::header_spellings(&tags, fields, &file, diags);
        if diags.errors() > errors_before {
            return None;
        }

        // Syntax and field checks on the tags alone, at their real lines.
        let mut env = environment();
        let skeleton = tags.skeleton();
        let (used, bare) = match env.template_from_named_str(&file, &skeleton) {
            Ok(t) => {
                let used: BTreeSet<String> = t.undeclared_variables(false).into_iter().collect();
                (used, bare_fields(&tags))
            }
            Err(e) => {
                diags.error(
                    Some((&file, e.line().unwrap_or(1))),
                    format!("merge field syntax: {}", e.detail().unwrap_or("invalid")),
                );
                return None;
            }
        };
        for name in &used {
            let known = BUILTIN_FIELDS.contains(&name.as_str()) || fields.is_none_or(|f| f.contains(name));
            let line = tags
                .list
                .iter()
                .find(|t| mentions(&t.inner, name))
                .map_or(1, |t| t.line);
            if !known {
                let have = fields.unwrap_or(&[]).join(", ");
                let hint = lint::suggestion(name, fields.unwrap_or(&[]))
                    .map_or(String::new(), |s| format!(": did you mean `{{{{ {s} }}}}`?"));
                diags.error(Some((&file, line)), format!(
                    "unknown merge field `{name}`{hint} (no list has that column; columns: {have}; also email, unsubscribe_url)"
                ));
            } else if name == "unsubscribe_url" && unsubscribe.is_none() && line > 0 {
                diags.error(
                    Some((&file, line)),
                    "`unsubscribe_url` is used but bulletin.toml has no [unsubscribe] url or mailto",
                );
            }
        }

        let blocks = markdown::parse(&body, n.body_line, &file, diags);
        if diags.errors() > errors_before {
            return None;
        }
        let brand = config.brand_color();
        let fragment = html::fragment(&blocks, config.allow_raw_html, brand);
        let page = html::Page {
            lang: n.front.lang.as_deref().unwrap_or("en"),
            title: &subject,
            preheader: preheader.as_deref(),
            unsubscribe: unsubscribe.is_some().then_some(unsub_token.as_str()),
            config,
        };
        let document = html::layout(&page, &fragment);
        let inlined = match html::inline_css(&document) {
            Ok(h) => h,
            Err(e) => {
                diags.error(None, format!("CSS inlining failed: {e}"));
                return None;
            }
        };
        let (body_text, links) = text::render(&blocks, &tags);
        let text_doc = text_document(
            &body_text,
            &links,
            config,
            unsubscribe.as_deref().map(|u| (unsub_token.as_str(), u)),
        );

        let templates = [
            ("subject", tags.restore(&subject)),
            ("body.html", tags.restore(&tags::neutralise(&inlined))),
            ("body.txt", tags.restore(&text_doc)),
        ];
        for (name, source) in templates {
            if let Err(e) = env.add_template_owned(name, source) {
                diags.error(Some((&file, 0)), format!("internal template error in {name}: {e}"));
                return None;
            }
        }
        Some(Compiled {
            env,
            bare_fields: bare,
            file,
            unsubscribe,
        })
    }

    /// Renders one member's subject, HTML and text.
    pub fn personalise(&self, r: &Recipient) -> Result<Rendered, RenderError> {
        let unsubscribe_url = self.unsubscribe.as_ref().map(|u| u.link(&r.email));
        let ctx = Value::from_object(Fields {
            columns: Arc::clone(&r.columns),
            values: r.values.clone(),
            email: r.email.as_str().to_owned(),
            unsubscribe_url,
        });
        let render = |name: &str| -> Result<String, RenderError> {
            let t = self.env.get_template(name).map_err(|e| self.error(r, e))?;
            t.render(&ctx).map_err(|e| self.error(r, e))
        };
        Ok(Rendered {
            subject: header_safe(&render("subject")?),
            html: render("body.html")?,
            text: render("body.txt")?,
        })
    }

    fn error(&self, r: &Recipient, e: minijinja::Error) -> RenderError {
        // The failing expression, from the template source at the error's range.
        let expr = e
            .range()
            .zip(self.env.get_template(e.name().unwrap_or("")).ok())
            .and_then(|(range, t)| t.source().get(range).map(str::trim).map(str::to_owned))
            .filter(|x| !x.is_empty());
        let empty_fields: Vec<String> = self
            .bare_fields
            .keys()
            .filter(|f| !BUILTIN_FIELDS.contains(&f.as_str()) && r.field(f).is_none())
            .filter(|f| expr.as_deref().is_none_or(|x| mentions(x, f)))
            .cloned()
            .collect();
        let message = match (e.kind(), empty_fields.as_slice()) {
            (minijinja::ErrorKind::UndefinedError, [_, ..]) => {
                format!("`{}` is empty and used without a default", empty_fields.join("`, `"))
            }
            _ => format!("{e:#}"),
        };
        RenderError { message }
    }
}

/// The minijinja environment: strict about unknown values, HTML-escaping in HTML.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // Undefined (unknown or empty) fields fail when printed, but `default()` and `{% if %}` work.
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env.set_keep_trailing_newline(true);
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env.add_filter("urlencode", |v: Value| -> Value {
        let s = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
        Value::from_safe_string(utf8_percent_encode(&s, URL_VALUE).to_string())
    });
    env.add_filter("url_start", |v: Value| -> String {
        let s = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
        safe_url_start(&s)
    });
    let wrapped = WrapCache::default();
    env.add_filter("wrap", move |s: String, first: String, rest: String| -> String {
        wrapped.wrap(s, first, rest)
    });
    env
}

/// Remembers what the `wrap` filter returned. A paragraph with merge fields is wrapped per
/// recipient, and wrapping (Unicode line breaking) costs more than the rest of personalising;
/// yet most recipients give the same text (a `{% if city %}` that is false, a common first
/// name). Keeps the first `WRAP_CACHE_ENTRIES` distinct paragraphs and no more: common ones
/// come early, and a list of a million distinct names cannot grow it.
#[derive(Default)]
struct WrapCache(Mutex<HashMap<(String, String, String), String>>);

const WRAP_CACHE_ENTRIES: usize = 1024;

impl WrapCache {
    fn wrap(&self, text: String, first: String, rest: String) -> String {
        let key = (text, first, rest);
        let lock = || self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(hit) = lock().get(&key) {
            return hit.clone();
        }
        // Wrapped without holding the lock, so threads rendering in parallel do not wait.
        let wrapped = text::wrap(&key.0, &key.1, &key.2);
        let mut cache = lock();
        if cache.len() < WRAP_CACHE_ENTRIES {
            cache.insert(key, wrapped.clone());
        }
        wrapped
    }
}

/// Fields a tag prints with nothing to fall back on: `{{ name }}`, `{{ name | upper }}`.
fn bare_fields(tags: &Tags) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let bare = tags.list.iter().filter(|t| {
        t.kind == tags::Kind::Expr
            && !t.inner.contains("default")
            && !t.inner.contains(" or ")
            && !t.inner.contains(" if ")
    });
    for t in bare {
        let head: String = t
            .inner
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !head.is_empty() {
            out.entry(head).or_insert(t.line);
        }
    }
    out
}

/// Does `expr` use `name` as an identifier?
fn mentions(expr: &str, name: &str) -> bool {
    expr.match_indices(name).any(|(at, _)| {
        let ident = |c: char| c.is_alphanumeric() || c == '_';
        let before = expr[..at].chars().next_back().is_none_or(|c| !ident(c) && c != '.');
        let after = expr[at + name.len()..].chars().next().is_none_or(|c| !ident(c));
        before && after
    })
}

/// A merge value that is a whole link target: kept as it is unless its scheme could run code
/// or smuggle content (`javascript:`, `vbscript:`, `data:`, anything but web, mail and phone
/// links), which becomes `#`. Browsers ignore leading spaces and controls and the tabs and line
/// breaks inside a scheme, so the check does too.
pub fn safe_url_start(value: &str) -> String {
    let squeezed: String = value
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .take(32)
        .collect::<String>()
        .to_ascii_lowercase();
    let scheme = squeezed
        .split_once(':')
        .map(|(s, _)| s)
        .filter(|s| !s.contains(['/', '?', '#']));
    match scheme {
        Some("http" | "https" | "mailto" | "tel") | None => value.to_owned(),
        Some(_) => "#".to_owned(),
    }
}

/// Removes what must never reach a header: CR, LF, NUL and the other control and
/// line-separator characters all become spaces.
pub fn header_safe(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| {
            if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
                ' '
            } else {
                c
            }
        })
        .collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Body text, link references and the footer, as the text template.
fn text_document(body: &str, links: &[String], config: &Config, unsubscribe: Option<(&str, &Unsubscribe)>) -> String {
    // Settings are literal text: `neutralise` keeps a `{{` in them from running as a tag.
    let mut out = body.to_owned();
    if !links.is_empty() {
        out.push_str("\nLinks:\n");
        for (i, l) in links.iter().enumerate() {
            out.push_str(&format!("[{}] {}\n", i + 1, tags::neutralise(l)));
        }
    }
    if !config.social.is_empty() {
        out.push('\n');
        for s in &config.social {
            out.push_str(&labelled(
                &tags::neutralise(&s.name),
                &tags::neutralise(&s.url),
                s.url.len(),
            ));
        }
    }
    out.push_str("\n-- \n");
    let org = &config.organisation;
    for line in [&org.name, &org.postal_address].into_iter().flatten() {
        out.push_str(&tags::neutralise(line));
        out.push('\n');
    }
    if let Some(reason) = &org.reason {
        out.push_str(&tags::neutralise(&text::wrap(reason, "", "")));
        out.push('\n');
    }
    if let Some((token, u)) = unsubscribe {
        // The URL is only known per member: measure it for a typical 30-character address.
        let sample = crate::email::Email::parse("firstname.lastname@example.org").map(|e| u.link(&e).len());
        out.push_str(&labelled("Unsubscribe", token, sample.unwrap_or(80)));
    }
    if let Some(site) = &org.website {
        out.push_str(&tags::neutralise(site));
        out.push('\n');
    }
    out
}

/// `Label: url` on one line when it fits in the text width, else the URL on a line of its own.
fn labelled(label: &str, url: &str, url_len: usize) -> String {
    if label.chars().count() + 2 + url_len <= text::MAX_WIDTH {
        format!("{label}: {url}\n")
    } else {
        format!("{label}:\n{url}\n")
    }
}

/// One member's fields as minijinja sees them: blank values are undefined.
#[derive(Debug)]
struct Fields {
    columns: Arc<Columns>,
    values: Vec<Box<str>>,
    email: String,
    unsubscribe_url: Option<String>,
}

impl Object for Fields {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str()?;
        match key {
            "email" => Some(Value::from(self.email.as_str())),
            "unsubscribe_url" => self.unsubscribe_url.as_deref().map(Value::from),
            _ => {
                let i = self.columns.names.iter().position(|n| &**n == key)?;
                let v = self.values.get(i)?.trim();
                (!v.is_empty()).then(|| Value::from(v))
            }
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::NonEnumerable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_safe_removes_line_breaks() {
        assert_eq!(
            header_safe("Hi\r\nBcc: x@example.org\0 \u{2028}there"),
            "Hi Bcc: x@example.org there"
        );
    }

    #[test]
    fn wrap_cache_returns_what_wrap_returns_and_stays_bounded() {
        let cache = WrapCache::default();
        let long = "Thank you to everyone in Salinas who gave an evening, a phone call or a tank of gas. ".repeat(3);
        for _ in 0..2 {
            assert_eq!(
                cache.wrap(long.clone(), "> ".into(), "  ".into()),
                text::wrap(&long, "> ", "  ")
            );
        }
        for i in 0..WRAP_CACHE_ENTRIES + 10 {
            let s = format!("Dear {i}:");
            assert_eq!(
                cache.wrap(s.clone(), String::new(), String::new()),
                text::wrap(&s, "", "")
            );
        }
        assert_eq!(cache.0.lock().unwrap().len(), WRAP_CACHE_ENTRIES);
    }

    #[test]
    fn a_link_target_from_a_merge_field_cannot_run_code() {
        for bad in [
            "javascript:alert(1)",
            " JavaScript:alert(1)",
            "java\tscript:alert(1)",
            "\u{1}javascript:x",
            "data:text/html,<script>",
            "vbscript:x",
        ] {
            assert_eq!(safe_url_start(bad), "#", "{bad:?}");
        }
        for good in [
            "https://example.org/a:b",
            "mailto:a@example.org",
            "/relative:path",
            "page?x=a:b",
            "",
        ] {
            assert_eq!(safe_url_start(good), good);
        }
    }

    #[test]
    fn mentions_is_whole_word() {
        assert!(mentions("first_name | default(\"x\")", "first_name"));
        assert!(!mentions("first_name_2", "first_name"));
        assert!(!mentions("user.name", "name"));
    }
}
