//! Compile once, personalise cheaply.
//!
//! `compile` does the expensive work once per newsletter: Markdown, layout, CSS inlining and
//! the plain-text rendering, producing three minijinja templates (subject, HTML, text).
//! `Compiled::personalise` then only runs those templates with one member's fields.

mod html;
pub mod images;
pub mod lint;
pub mod markdown;
mod scan;
pub mod tags;
pub mod text;
pub mod url;
pub mod words;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use minijinja::value::{Enumerator, Object, Value};
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use percent_encoding::utf8_percent_encode;

use crate::config::{Config, Social, Theme};
use crate::diagnostic::Diagnostics;
use crate::list::{Columns, Recipient};
use crate::newsletter::Newsletter;
use crate::unsubscribe::{URL_VALUE, Unsubscribe};
use tags::Tags;

/// Fields every recipient has besides their list's columns (`web_url`: the issue's page in
/// the archive, with `[archive] base_url`).
pub const BUILTIN_FIELDS: [&str; 3] = ["email", "unsubscribe_url", "web_url"];

/// Gmail clips HTML bodies larger than this.
pub const GMAIL_CLIP_BYTES: usize = 102 * 1024;

pub(crate) use html::force_dark;

/// A newsletter ready to personalise.
pub struct Compiled {
    env: Environment<'static>,
    /// Fields used bare (`{{ first_name }}`, no default), with the line of their first such
    /// use: an empty value is an error.
    pub bare_fields: BTreeMap<String, usize>,
    /// The newsletter file, for messages.
    pub file: String,
    /// Per template: where each tag is in its source, and its line in the newsletter.
    tag_lines: HashMap<&'static str, Vec<(std::ops::Range<usize>, usize)>>,
    unsubscribe: Option<Arc<Unsubscribe>>,
    /// The language it is written in (front matter `lang`, default `en`), lower-case.
    pub lang: String,
    /// Variants in other languages (`NAME.es.md`), by language tag; members whose `lang`
    /// field picks one get it. See [`Compiled::variant_for`].
    pub variants: Vec<(String, Compiled)>,
    /// Which version this is: 0 the default, `i` the variant `variants[i - 1]` of the default;
    /// carried by every [`Rendered`] so the letterhead picks the variant's sender and files.
    pub version: usize,
    /// The issue's page in the archive, with `[archive] base_url`.
    pub web_url: Option<String>,
    /// Local images that travel inside every message.
    pub inline: Vec<images::Inline>,
}

/// Which of the versions in `langs` (lower-case tags, the default's first) a member asking for
/// `tag` gets: the whole tag first (`pt-br`), then its language (`es-MX` → `es`); `None` when
/// no version is in that language.
pub fn pick_version<'a>(langs: impl Iterator<Item = &'a str> + Clone, tag: &str) -> Option<usize> {
    let tag = tag.trim().to_lowercase().replace('_', "-");
    let primary = tag.split('-').next().unwrap_or("");
    let find = |t: &str| langs.clone().position(|l| l == t);
    find(&tag).or_else(|| find(primary))
}

/// Who the newsletter is compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Audience {
    /// Members, by mail: unsubscribe block, "View in your browser" link.
    Mail,
    /// Anyone, on the web (`bulletin archive`): neither.
    Web,
}

/// One member's message content.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub subject: String,
    pub html: String,
    pub text: String,
    /// The [`Compiled::version`] it was rendered from.
    pub version: usize,
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
        Compiled::compile_for(n, config, fields, unsubscribe, Audience::Mail, diags)
    }

    /// Compiles `n` for the web archive: no unsubscribe block, no "View in your browser"
    /// link; render it with [`Compiled::generic`].
    pub fn compile_for_web(n: &Newsletter, config: &Config, diags: &mut Diagnostics) -> Option<Compiled> {
        Compiled::compile_for(n, config, None, None, Audience::Web, diags)
    }

    fn compile_for(
        n: &Newsletter,
        config: &Config,
        fields: Option<&[String]>,
        unsubscribe: Option<Arc<Unsubscribe>>,
        audience: Audience,
        diags: &mut Diagnostics,
    ) -> Option<Compiled> {
        let web_url = web_url(config, &n.campaign_id());
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
        let date_words = words::words(n.front.lang.as_deref().unwrap_or("en"));
        env.add_filter("date", move |v: String| -> String { date_words.date(&v) });
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
                    "unknown merge field `{name}`{hint} (no list has that column; columns: {have}; also email, unsubscribe_url, web_url)"
                ));
            } else if name == "web_url" && web_url.is_none() {
                diags.error(
                    Some((&file, line)),
                    "`web_url` is used but bulletin.toml has no [archive] base_url",
                );
            } else if name == "unsubscribe_url" && unsubscribe.is_none() && line > 0 && audience == Audience::Mail {
                diags.error(
                    Some((&file, line)),
                    "`unsubscribe_url` is used but bulletin.toml has no [unsubscribe] url or mailto",
                );
            }
        }

        let parsed = markdown::parse(&body, n.body_line, &file, &tags, diags);
        if config.allow_raw_html
            && let Some(line) = parsed.deep_html_line
        {
            diags.error(
                Some((&file, line)),
                format!(
                    "the HTML here nests elements more than {} deep: close them (`</div>`) or write it in Markdown",
                    markdown::MAX_HTML_DEPTH
                ),
            );
        }
        let mut blocks = parsed.blocks;
        if diags.errors() > errors_before {
            return None;
        }
        let issue = Issue::of(n, config, diags);
        // Image problems are reported but do not stop the compile: a preview still shows the rest.
        let dir = n.path.parent().unwrap_or(std::path::Path::new(""));
        let inline = images::place(&mut blocks, dir, &file, issue.theme.image_base_url.as_deref(), diags);
        let fragment = html::fragment(&blocks, config.allow_raw_html, issue.theme.brand_color());
        let lang = n.front.lang.as_deref().unwrap_or("en").trim().to_lowercase();
        let words = words::words(&lang);
        let page = html::Page {
            lang: &lang,
            title: &subject,
            preheader: preheader.as_deref(),
            unsubscribe: unsubscribe.is_some().then_some(unsub_token.as_str()),
            web_url: web_url.as_deref().filter(|_| audience == Audience::Mail),
            config,
            theme: &issue.theme,
            social: issue.social,
            footer: issue.footer,
        };
        let document = html::layout(&page, &fragment);
        let inlined = match html::inline_css(&document, issue.theme.brand_color()) {
            Ok(h) => h,
            Err(e) => {
                diags.error(None, format!("CSS inlining failed: {e}"));
                return None;
            }
        };
        let (body_text, links) = text::render(&blocks, &tags);
        let mut text_doc = text_document(
            &body_text,
            &links,
            config,
            &issue,
            unsubscribe.as_deref().map(|u| (unsub_token.as_str(), u)),
            words,
        );
        if let Some(url) = web_url.as_deref().filter(|_| audience == Audience::Mail) {
            let line = labelled("View in your browser", &tags::neutralise(url), url.len());
            text_doc.insert_str(0, &format!("{line}\n"));
        }

        let templates = [
            ("subject", tags.restore_mapped(&subject)),
            ("body.html", tags.restore_mapped(&tags::neutralise(&inlined))),
            ("body.txt", tags.restore_mapped(&text_doc)),
        ];
        let mut tag_lines = HashMap::new();
        for (name, (source, spans)) in templates {
            tag_lines.insert(name, spans);
            if let Err(e) = env.add_template_owned(name, source) {
                diags.error(Some((&file, 0)), format!("internal template error in {name}: {e}"));
                return None;
            }
        }
        Some(Compiled {
            env,
            bare_fields: bare,
            file,
            tag_lines,
            unsubscribe,
            web_url,
            lang,
            variants: Vec::new(),
            version: 0,
            inline,
        })
    }

    /// Renders for nobody in particular (the web archive): every merge field is empty, so
    /// `default(...)` applies and `{% if %}` is false; `email` and `unsubscribe_url` are empty
    /// too. A field printed bare has nothing to print and is an error.
    pub fn generic(&self) -> Result<Rendered, RenderError> {
        let ctx = Value::from_object(Fields {
            columns: None,
            values: Vec::new(),
            email: None,
            unsubscribe_url: None,
            web_url: self.web_url.clone(),
        });
        self.render(&ctx).map_err(|e| RenderError {
            message: format!("{e:#}"),
        })
    }

    fn render(&self, ctx: &Value) -> Result<Rendered, minijinja::Error> {
        let render = |name: &str| self.env.get_template(name)?.render(ctx);
        Ok(Rendered {
            subject: header_safe(&render("subject")?),
            html: render("body.html")?,
            text: render("body.txt")?,
            version: self.version,
        })
    }

    /// Adds a variant in another language (compiled from `NAME.LANG.md`).
    pub fn add_variant(&mut self, lang: &str, mut variant: Compiled) {
        variant.version = self.variants.len() + 1;
        self.variants.push((lang.to_lowercase(), variant));
    }

    /// The local images of this version and of every variant, each once: a message carries
    /// those its HTML refers to.
    pub fn all_inline(&self) -> Vec<images::Inline> {
        let mut all = self.inline.clone();
        for (_, v) in &self.variants {
            for image in &v.inline {
                if !all.iter().any(|i| i.cid == image.cid) {
                    all.push(image.clone());
                }
            }
        }
        all
    }

    /// The version a member gets: the variant for their `lang` (or `language`) field — the
    /// whole tag first (`pt-br`), then its language (`es-MX` → `es`) — else this one.
    pub fn variant_for(&self, r: &Recipient) -> &Compiled {
        if self.variants.is_empty() {
            return self;
        }
        r.language().and_then(|tag| self.variant(&tag)).unwrap_or(self)
    }

    /// The variant for a language tag, `None` when there is none (this one's own language
    /// gives this one).
    pub fn variant(&self, tag: &str) -> Option<&Compiled> {
        let langs = std::iter::once(self.lang.as_str()).chain(self.variants.iter().map(|(l, _)| l.as_str()));
        match pick_version(langs, tag)? {
            0 => Some(self),
            i => self.variants.get(i - 1).map(|(_, c)| c),
        }
    }

    /// The languages of the versions: this one's, then its variants', lower-case.
    pub fn langs(&self) -> Vec<&str> {
        std::iter::once(self.lang.as_str())
            .chain(self.variants.iter().map(|(l, _)| l.as_str()))
            .collect()
    }

    /// Renders one member's subject, HTML and text, in the member's language.
    pub fn personalise(&self, r: &Recipient) -> Result<Rendered, RenderError> {
        self.variant_for(r).personalise_this(r)
    }

    /// Renders one member's message from this version, whatever their language.
    pub fn personalise_this(&self, r: &Recipient) -> Result<Rendered, RenderError> {
        let unsubscribe_url = self.unsubscribe.as_ref().map(|u| u.link(&r.email));
        let ctx = Value::from_object(Fields {
            columns: Some(Arc::clone(&r.columns)),
            values: r.values.clone(),
            email: Some(r.email.as_str().to_owned()),
            unsubscribe_url,
            web_url: self.web_url.clone(),
        });
        let render = |name: &str| -> Result<String, RenderError> {
            let t = self.env.get_template(name).map_err(|e| self.error(r, e))?;
            t.render(&ctx).map_err(|e| self.error(r, e))
        };
        Ok(Rendered {
            subject: header_safe(&render("subject")?),
            html: render("body.html")?,
            text: render("body.txt")?,
            version: self.version,
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
            // Preflight names the line of the field's first bare use.
            (minijinja::ErrorKind::UndefinedError, [_, ..]) => {
                format!("`{}` is empty and used without a default", empty_fields.join("`, `"))
            }
            // Never minijinja's own rendering of the error: it names our internal templates
            // (`body.html:20`) and quotes their source.
            (kind, _) => {
                let what = e.detail().map_or_else(|| kind.to_string(), |d| format!("{kind}: {d}"));
                match self.line_of(&e) {
                    Some(line) => format!("{}:{line}: {what}", self.file),
                    None => format!("{}: {what}", self.file),
                }
            }
        };
        RenderError { message }
    }

    /// The newsletter line of the tag an error is in: by the error's byte range, else by its
    /// line in the template.
    fn line_of(&self, e: &minijinja::Error) -> Option<usize> {
        let name = e.name()?;
        let spans = self.tag_lines.get(name)?;
        let within = |at: usize| spans.iter().find(|(r, _)| r.start <= at && at < r.end).map(|(_, l)| *l);
        if let Some(line) = e.range().and_then(|r| within(r.start)) {
            return Some(line);
        }
        let template = self.env.get_template(name).ok()?;
        let source = template.source();
        let start: usize = source
            .split_inclusive('\n')
            .take(e.line()?.checked_sub(1)?)
            .map(str::len)
            .sum();
        let end = source[start..].find('\n').map_or(source.len(), |n| start + n);
        spans
            .iter()
            .find(|(r, _)| r.start < end && r.end > start)
            .map(|(_, l)| *l)
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
        url::safe_url_start(&s)
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

/// The issue's page in the archive: `BASE/CAMPAIGN/`, where `bulletin archive` writes it.
pub fn web_url(config: &Config, campaign: &str) -> Option<String> {
    let base = config.archive.base_url.as_deref()?;
    Some(format!(
        "{}/{}/",
        base.trim_end_matches('/'),
        utf8_percent_encode(&crate::paths::archive_slug(campaign), URL_VALUE)
    ))
}

/// The organisation-wide parts with this issue's front-matter overrides applied.
struct Issue<'a> {
    theme: Theme,
    social: &'a [Social],
    footer: Option<&'a str>,
}

impl<'a> Issue<'a> {
    fn of(n: &'a Newsletter, config: &'a Config, diags: &mut Diagnostics) -> Issue<'a> {
        let mut theme = match &n.front.theme {
            Some(over) => config.theme.merged(over),
            None => config.theme.clone(),
        };
        if let Some(c) = n.front.theme.as_ref().and_then(|t| t.brand_color.as_deref())
            && crate::config::bad_colour(c)
        {
            let file = n.path.display().to_string();
            diags.warning(
                Some((&file, n.line_of_key("theme"))),
                format!("theme brand_color {c:?} is not a colour: write it as \"#rrggbb\"; using bulletin.toml's"),
            );
            theme.brand_color.clone_from(&config.theme.brand_color);
        }
        Issue {
            theme,
            social: n.front.social.as_deref().unwrap_or(&config.social),
            footer: n.front.footer.as_deref().or(config.organisation.reason.as_deref()),
        }
    }
}

/// Body text, link references and the footer, as the text template.
fn text_document(
    body: &str,
    links: &[String],
    config: &Config,
    issue: &Issue<'_>,
    unsubscribe: Option<(&str, &Unsubscribe)>,
    words: &words::Words,
) -> String {
    // Settings are literal text: `neutralise` keeps a `{{` in them from running as a tag.
    let mut out = body.to_owned();
    if !links.is_empty() {
        out.push_str(&format!("\n{}:\n", words.links));
        for (i, l) in links.iter().enumerate() {
            out.push_str(&format!("[{}] {}\n", i + 1, tags::neutralise(l)));
        }
    }
    if !issue.social.is_empty() {
        out.push('\n');
        for s in issue.social {
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
    if let Some(footer) = issue.footer {
        out.push_str(&tags::neutralise(&text::wrap(footer, "", "")));
        out.push('\n');
    }
    if let Some((token, u)) = unsubscribe {
        // The URL is only known per member: measure it for a typical 30-character address.
        let sample = crate::email::Email::parse("firstname.lastname@example.org").map(|e| u.link(&e).len());
        out.push_str(&labelled(words.unsubscribe, token, sample.unwrap_or(80)));
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
    columns: Option<Arc<Columns>>,
    values: Vec<Box<str>>,
    email: Option<String>,
    unsubscribe_url: Option<String>,
    web_url: Option<String>,
}

impl Object for Fields {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str()?;
        match key {
            "email" => self.email.as_deref().map(Value::from),
            "unsubscribe_url" => self.unsubscribe_url.as_deref().map(Value::from),
            "web_url" => self.web_url.as_deref().map(Value::from),
            _ => column_value(self.columns.as_ref()?, &self.values, key),
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::NonEnumerable
    }
}

/// A column's value as templates and `--where` see it: for the multi-valued columns (`tags`)
/// a list, empty when blank (so `"x" in tags` works for everyone); otherwise the text,
/// undefined when absent or blank.
pub fn column_value(columns: &Columns, values: &[Box<str>], name: &str) -> Option<Value> {
    let i = columns.names.iter().position(|n| &**n == name)?;
    let v = values.get(i)?.trim();
    if crate::list::MULTI_VALUED.contains(&name) {
        return Some(Value::from(crate::list::split_items(v)));
    }
    (!v.is_empty()).then(|| Value::from(v))
}

/// A member's field by name (`email` included), as [`column_value`].
pub fn member_value(r: &Recipient, name: &str) -> Option<Value> {
    match name {
        "email" => Some(Value::from(r.email.as_str())),
        _ => column_value(&r.columns, &r.values, name),
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

    fn compile(src: &str, config: &Config) -> (Option<Compiled>, String) {
        let n = Newsletter::parse(src, std::path::Path::new("n.md")).unwrap();
        let mut d = Diagnostics::default();
        let fields = ["first_name".to_owned(), "link".to_owned()];
        let c = Compiled::compile(&n, config, Some(&fields), None, &mut d);
        (c, d.to_string())
    }

    fn member(first_name: &str, link: &str) -> Recipient {
        let columns = Arc::new(Columns {
            path: "m.csv".into(),
            names: vec!["email".into(), "first_name".into(), "link".into()],
            email: 0,
            format: crate::list::Format::Csv,
            raw: 3,
            status: None,
            attributes: None,
        });
        Recipient {
            email: crate::email::Email::parse("a@example.org").unwrap(),
            columns,
            line: 2,
            row: 1,
            values: vec!["a@example.org".into(), first_name.into(), link.into()],
        }
    }

    /// Compiles and personalises on a thread with a 1 MB stack (a quarter of what a spawned
    /// thread gets, an eighth of the main thread's): a nesting depth that reached any recursive
    /// parser or serialiser unbounded would overflow it.
    fn render_on_small_stack(src: String) -> (Option<Rendered>, String) {
        std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(move || {
                let (c, diags) = compile(&src, &Config::default());
                (
                    c.map(|c| c.personalise(&member("Ana", "https://e.org")).unwrap()),
                    diags,
                )
            })
            .unwrap()
            .join()
            .unwrap()
    }

    #[test]
    fn a_hundred_thousand_quote_levels_render_flattened_on_a_small_stack() {
        let src = format!("---\nsubject: s\n---\n{} deep\n", ">".repeat(100_000));
        let (rendered, diags) = render_on_small_stack(src);
        let rendered = rendered.expect(&diags);
        assert!(
            diags.contains("n.md:4: quotes, lists or emphasis nested more than 32"),
            "{diags}"
        );
        assert_eq!(rendered.html.matches("<blockquote").count(), markdown::MAX_DEPTH);
        assert!(rendered.html.contains("deep") && rendered.text.contains("deep"));
    }

    #[test]
    fn five_thousand_nested_list_items_and_emphasis_render_flattened_on_a_small_stack() {
        let items: String = (0..5000).map(|i| format!("{}- item{i}\n", "  ".repeat(i))).collect();
        let emphasis = format!("{}x{}", "*".repeat(20_000), "*".repeat(20_000));
        for (body, kept) in [
            (items, "item4999"),
            ("- ".repeat(5000) + "x\n", "x"),
            ("1. ".repeat(5000) + "x\n", "x"),
            (emphasis, "x"),
        ] {
            let (rendered, diags) = render_on_small_stack(format!("---\nsubject: s\n---\n{body}"));
            let rendered = rendered.expect(&diags);
            assert!(diags.contains("nested more than 32"), "{diags}");
            assert!(rendered.text.contains(kept), "{}", rendered.text);
            assert!(rendered.text.lines().all(|l| l.len() < 998));
        }
    }

    #[test]
    fn deeply_nested_authored_html_is_an_error_naming_its_line() {
        let mut config = Config::default();
        config.allow_raw_html = true;
        let src = format!("---\nsubject: s\n---\nHi\n\n{}x\n", "<div>".repeat(100_000));
        let (c, diags) = compile(&src, &config);
        assert!(c.is_none());
        assert!(
            diags.contains("n.md:6: the HTML here nests elements more than 256 deep"),
            "{diags}"
        );
        let ok = format!("---\nsubject: s\n---\n{}\n", "<p>x".repeat(1000));
        assert!(compile(&ok, &config).0.is_some());
    }

    #[test]
    fn javascript_links_and_images_never_reach_either_part() {
        let src = "---\nsubject: s\n---\n[click](javascript:alert(1)) [b](<JaVaScRiPt:x>) [c](&#106;avascript:x)\n\n\
                   ![pic](data:image/png;base64,AAAA \"10x10\") [v](vbscript:msgbox)\n\n\
                   [Give](file:///etc/passwd \"button\")\n";
        let n = Newsletter::parse(src, std::path::Path::new("n.md")).unwrap();
        let mut d = Diagnostics::default();
        assert!(Compiled::compile(&n, &Config::default(), None, None, &mut d).is_none());
        let all = d.to_string();
        for (line, scheme) in [(4, "javascript"), (6, "data"), (6, "vbscript"), (8, "file")] {
            assert!(
                all.contains(&format!("error: n.md:{line}: ")) && all.contains(&format!("`{scheme}:` scheme")),
                "{all}"
            );
        }
        assert_eq!(all.matches("`javascript:` scheme").count(), 3, "{all}");
        // What would be rendered: the blocks carry no trace of the targets, the text stays.
        let mut tags = tags::Tags::default();
        let body = tags.protect(&n.body, n.body_line).unwrap();
        let blocks = markdown::parse(&body, n.body_line, "n.md", &tags, &mut Diagnostics::default()).blocks;
        let html = html::fragment(&blocks, false, "#000");
        let (text, links) = text::render(&blocks, &tags);
        for part in [&html, &text] {
            let lower = part.to_ascii_lowercase();
            assert!(
                !lower.contains("script:") && !lower.contains("data:") && !lower.contains("file:"),
                "{part}"
            );
            assert!(
                part.contains("click") && part.contains("pic") && part.contains("Give"),
                "{part}"
            );
        }
        assert!(
            links.is_empty() && !html.contains("href") && !html.contains("<img"),
            "{html}"
        );
    }

    #[test]
    fn a_link_without_a_scheme_is_an_error_with_the_fix() {
        let src = "---\nsubject: s\n---\n[a](example.org/x)\n[b](www.example.org)\n[c](name@example.org)\n\
                   [d](#section) [e](/about)\n";
        let (c, all) = compile(src, &Config::default());
        assert!(c.is_none());
        for want in [
            "error: n.md:4: link `example.org/x` has no scheme, so mail clients cannot open it: write https://example.org/x",
            "error: n.md:5: link `www.example.org` has no scheme, so mail clients cannot open it: write https://www.example.org",
            "error: n.md:6: link `name@example.org` has no scheme, so mail clients cannot open it: write mailto:name@example.org",
            "warning: n.md:7: link `#section` jumps within the message",
            "warning: n.md:7: link `/about` is a relative address",
        ] {
            assert!(all.contains(want), "{want}\n{all}");
        }
        let ok = "---\nsubject: s\n---\n[a](https://e.org) [b](mailto:x@e.org) [c](tel:+1555) <x@e.org> [d]({{ link }}) [e](https://e.org/?n={{ first_name }})\n";
        let (c, all) = compile(ok, &Config::default());
        assert!(!all.contains("error"), "{all}");
        let html = c
            .unwrap()
            .personalise(&member("Ana", " JaVaScRiPt:alert(1)"))
            .unwrap()
            .html;
        assert!(
            html.contains("href=\"#\"") && !html.to_ascii_lowercase().contains("javascript"),
            "{html}"
        );
    }

    #[test]
    fn authored_html_links_follow_the_same_policy() {
        let mut config = Config::default();
        config.allow_raw_html = true;
        let src = "---\nsubject: s\n---\n<a href=\"ftp://e.org\">f</a> <a href=\"{{ link }}\">l</a> <img src=\"data:x\" alt=\"d\">\n";
        let c = compile(src, &config).0.unwrap();
        let html = c.personalise(&member("Ana", "vbscript:x")).unwrap().html;
        let lower = html.to_ascii_lowercase();
        assert!(
            !lower.contains("ftp:") && !lower.contains("vbscript") && !lower.contains("data:"),
            "{html}"
        );
        let html = c.personalise(&member("Ana", "https://e.org/ok")).unwrap().html;
        assert!(html.contains("href=\"https:&#x2f;&#x2f;e.org&#x2f;ok\""), "{html}");
    }

    #[test]
    fn an_unknown_filter_in_the_body_names_the_newsletter_line() {
        let body = "Dear reader,\n\n".repeat(4);
        let src = format!("---\nsubject: s\n---\n{body}[x](https://e.org/?n={{{{ first_name | nope }}}})\n");
        let c = compile(&src, &Config::default()).0.unwrap();
        let e = c.personalise(&member("Ana", "")).unwrap_err().message;
        assert!(e.starts_with("n.md:12: unknown filter"), "{e}");
        let src = format!("---\nsubject: s\n---\n{body}\n\n{{{{ first_name | bogus }}}} and {{{{ link }}}}\n");
        let e = compile(&src, &Config::default())
            .0
            .unwrap()
            .personalise(&member("Ana", ""))
            .unwrap_err()
            .message;
        assert!(e.starts_with("n.md:14: unknown filter"), "{e}");
        assert!(!e.contains("body.") && !e.contains("subject:"), "{e}");
    }

    #[test]
    fn errors_in_the_subject_name_its_line() {
        let (c, diags) = compile("---\nsubject: \"Hi {{ first_name | }}\"\n---\nx\n", &Config::default());
        assert!(c.is_none());
        assert!(diags.starts_with("error: n.md:2: merge field syntax"), "{diags}");
        let src = "---\nid: x\nsubject: \"Hi {{ first_name | nosuch }}\"\npreheader: p\n---\nx\n";
        let c = compile(src, &Config::default()).0.unwrap();
        let e = c.personalise(&member("Ana", "")).unwrap_err().message;
        assert_eq!(e, "n.md:3: unknown filter: filter nosuch is unknown");
        let src = "---\nsubject: s\npreheader: \"{{ first_name | upper(1, 2) }}\"\n---\nx\n";
        let e = compile(src, &Config::default())
            .0
            .unwrap()
            .personalise(&member("Ana", ""))
            .unwrap_err()
            .message;
        assert!(e.starts_with("n.md:3: "), "{e}");
    }

    #[test]
    fn mentions_is_whole_word() {
        assert!(mentions("first_name | default(\"x\")", "first_name"));
        assert!(!mentions("first_name_2", "first_name"));
        assert!(!mentions("user.name", "name"));
    }
}
