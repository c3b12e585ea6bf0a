//! The Markdown tree both parts are rendered from, with our two extensions recognised:
//!
//! - a **button**: a link alone in its paragraph whose title is `button`,
//!   `[Give today](https://example.org/donate "button")`;
//! - an **image size**: an image title of the form `WIDTHxHEIGHT`,
//!   `![Marchers at the rally](https://example.org/rally.jpg "600x338")`.

use pulldown_cmark::{CowStr, Event, LinkType, Options, Parser, Tag, TagEnd};

use super::tags::Tags;
use super::url::{self, Target};
use crate::diagnostic::Diagnostics;

/// A call-to-action button.
#[derive(Debug, Clone)]
pub struct Button {
    pub text: String,
    pub url: String,
}

/// An image with its size.
#[derive(Debug, Clone)]
pub struct Image {
    pub url: String,
    pub alt: String,
    pub width: u32,
    pub height: u32,
}

/// Events our renderers add on top of pulldown-cmark's.
#[derive(Debug, Clone)]
pub enum Block<'a> {
    Md(Event<'a>),
    Button(Button),
    Image(Image),
}

/// Deepest nesting of Markdown elements (quotes, lists and their items, emphasis, links…)
/// rendered as such; anything deeper is flattened into its parent, text kept. Real
/// newsletters nest a handful of levels; at 32 the text part's `> ` and list indentation
/// already fill most of its 72 columns, and no mail client shows more. The cap is what keeps
/// hostile input (100,000 `>` on a line) from the recursive HTML parser and serialiser that
/// inline the CSS, which would otherwise take quadratic time and overflow the stack.
pub const MAX_DEPTH: usize = 32;

/// Deepest nesting of authored HTML elements (when `allow_raw_html` lets it through) before
/// it is an error: the same parser and serialiser would choke on it. Generous, as the count is
/// rough (elements whose end tag may be left out are not counted).
pub const MAX_HTML_DEPTH: usize = 256;

type Spanned<'a> = (Event<'a>, std::ops::Range<usize>);

/// The blocks of a body, and what only matters when authored HTML is allowed.
pub struct Parsed<'a> {
    pub blocks: Vec<Block<'a>>,
    /// Line where authored HTML first nests deeper than `MAX_HTML_DEPTH`.
    pub deep_html_line: Option<usize>,
}

/// Parses `body` (tags already protected) into blocks, reporting problems with lines. Link and
/// image targets go through the one URL policy (`url::classify`): a refused scheme never
/// reaches the blocks (the text stays), and is an error.
pub fn parse<'a>(body: &'a str, body_line: usize, file: &str, tags: &Tags, diags: &mut Diagnostics) -> Parsed<'a> {
    let mut opts = Options::empty();
    opts.insert(Options::ENABLE_TABLES);
    opts.insert(Options::ENABLE_STRIKETHROUGH);
    opts.insert(Options::ENABLE_FOOTNOTES);
    opts.insert(Options::ENABLE_TASKLISTS);
    let lines = LineIndex::new(body, body_line);
    let (events, flattened) = flatten(Parser::new_ext(body, opts).into_offset_iter(), MAX_DEPTH);
    if let Some(offset) = flattened {
        diags.warning(
            Some((file, lines.at(offset))),
            format!(
                "quotes, lists or emphasis nested more than {MAX_DEPTH} levels deep: the levels beyond {MAX_DEPTH} \
                 are flattened (their text is kept)"
            ),
        );
    }
    let check = |url: &str, what: &str, offset: usize, diags: &mut Diagnostics| {
        check_target(url, what, (file, lines.at(offset)), tags, diags)
    };
    let mut out = Vec::with_capacity(events.len());
    let mut html_depth = 0usize;
    let mut deep_html_line = None;
    // The end of a link whose start was dropped (links never nest).
    let mut dropped_link = false;
    let mut i = 0;
    while i < events.len() {
        match &events[i].0 {
            Event::Start(Tag::Paragraph) => {
                if let Some((mut button, len)) = button_at(&events[i + 1..]) {
                    if check(&button.url, "button", events[i + 1].1.start, diags) {
                        button.url = Tags::mark_url(&button.url);
                        out.push(Block::Button(button));
                    } else {
                        out.push(Block::Md(Event::Start(Tag::Paragraph)));
                        out.push(Block::Md(Event::Text(button.text.into())));
                        out.push(Block::Md(Event::End(TagEnd::Paragraph)));
                    }
                    i += len + 2;
                    continue;
                }
                out.push(Block::Md(events[i].0.clone()));
            }
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }) => {
                // An email autolink's target is an address; the writers add `mailto:`.
                if *link_type != LinkType::Email && !check(dest_url, "link", events[i].1.start, diags) {
                    dropped_link = true;
                    i += 1;
                    continue;
                }
                let dest_url = CowStr::from(Tags::mark_url(dest_url));
                let link_type = if *link_type == LinkType::Autolink || *link_type == LinkType::Email {
                    *link_type
                } else {
                    LinkType::Inline
                };
                out.push(Block::Md(Event::Start(Tag::Link {
                    link_type,
                    dest_url,
                    title: title.clone(),
                    id: id.clone(),
                })));
            }
            Event::End(TagEnd::Link) if dropped_link => dropped_link = false,
            Event::Html(h) | Event::InlineHtml(h) => {
                let deepest;
                (html_depth, deepest) = html_nesting(h, html_depth);
                if deepest > MAX_HTML_DEPTH && deep_html_line.is_none() {
                    deep_html_line = Some(lines.at(events[i].1.start));
                }
                out.push(Block::Md(events[i].0.clone()));
            }
            Event::Start(Tag::Image { dest_url, title, .. }) => {
                let offset = events[i].1.start;
                let line = lines.at(offset);
                let mut alt = String::new();
                let mut depth = 0;
                i += 1;
                while i < events.len() {
                    match &events[i].0 {
                        Event::Start(_) => depth += 1,
                        Event::End(TagEnd::Image) if depth == 0 => break,
                        Event::End(_) => depth -= 1,
                        Event::Text(t) | Event::Code(t) => alt.push_str(t),
                        _ => {}
                    }
                    i += 1;
                }
                if !check(dest_url, "image", offset, diags) {
                    out.push(Block::Md(Event::Text(alt.into())));
                    i += 1;
                    continue;
                }
                if alt.trim().is_empty() {
                    diags.warning(
                        Some((file, line)),
                        format!(
                            "image {dest_url} has no alt text: describe it, ![what it shows]({dest_url}), \
                         for readers whose mail client blocks images"
                        ),
                    );
                }
                let (width, height) =
                    match parse_size(title) {
                        Some(size) => size,
                        None => {
                            diags.error(Some((file, line)), format!(
                            "image {dest_url} has no size: give it as the title, ![{alt}]({dest_url} \"600x400\")"
                        ));
                            (600, 400)
                        }
                    };
                out.push(Block::Image(Image {
                    url: Tags::mark_url(dest_url),
                    alt,
                    width,
                    height,
                }));
            }
            other => out.push(Block::Md(other.clone())),
        }
        i += 1;
    }
    Parsed {
        blocks: out,
        deep_html_line,
    }
}

/// Element nesting after `html`, starting at `depth`, and the deepest it got: a rough count of
/// start and end tags, leaving out void elements, self-closing tags and elements whose end tag
/// is optional.
fn html_nesting(html: &str, mut depth: usize) -> (usize, usize) {
    let mut deepest = depth;
    const UNCOUNTED: [&str; 30] = [
        "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr", "p",
        "li", "dt", "dd", "tr", "td", "th", "option", "optgroup", "thead", "tbody", "tfoot", "colgroup", "caption",
        "rb", "rt", "rp",
    ];
    let mut rest = html;
    while let Some(at) = rest.find('<') {
        rest = &rest[at + 1..];
        let closing = rest.starts_with('/');
        let name: String = rest
            .trim_start_matches('/')
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .take(16)
            .collect::<String>()
            .to_ascii_lowercase();
        if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphabetic()) || UNCOUNTED.contains(&name.as_str())
        {
            continue;
        }
        let self_closing = rest.find('>').is_some_and(|end| rest[..end].ends_with('/'));
        if closing {
            depth = depth.saturating_sub(1);
        } else if !self_closing {
            depth += 1;
            deepest = deepest.max(depth);
        }
    }
    (depth, deepest)
}

/// Applies the URL policy to one link, button or image target at `at`, reporting what is
/// wrong. False when the target must not be written (a refused scheme).
fn check_target(url: &str, what: &str, at: (&str, usize), tags: &Tags, diags: &mut Diagnostics) -> bool {
    let shown = display(&tags.restore(url));
    match url::classify(url) {
        Target::Web | Target::MergeField => true,
        Target::Refused(scheme) => {
            let allowed = url::ALLOWED_SCHEMES.map(|s| format!("{s}:")).join(", ");
            diags.error(
                Some(at),
                format!(
                    "{what} `{shown}` uses the `{scheme}:` scheme, which mail clients block or which can run code: \
                     only {allowed} targets are allowed (the {what} is left out of the message, its text kept)"
                ),
            );
            false
        }
        Target::NoScheme(fix) => {
            let fix = display(&tags.restore(&fix));
            diags.error(
                Some(at),
                format!("{what} `{shown}` has no scheme, so mail clients cannot open it: write {fix}"),
            );
            true
        }
        Target::Fragment => {
            diags.warning(
                Some(at),
                format!(
                    "{what} `{shown}` jumps within the message, which only some mail clients (Apple Mail) \
                     follow; Gmail and Outlook ignore it"
                ),
            );
            true
        }
        Target::Relative => {
            diags.warning(
                Some(at),
                format!(
                    "{what} `{shown}` is a relative address, which leads nowhere in an email: write the \
                     full address, https://…"
                ),
            );
            true
        }
    }
}

/// A URL for a message: control characters visible, at most 80 characters.
fn display(url: &str) -> String {
    let escaped: String = url.chars().flat_map(char::escape_debug).collect();
    match escaped.char_indices().nth(80) {
        Some((at, _)) => format!("{}…", &escaped[..at]),
        None => escaped,
    }
}

/// Drops the start and end of every element nested deeper than `max` (an image is kept
/// whole: its content is only its alt text), so what the renderers see is at most `max`
/// deep. A dropped block's start and end become a soft break, so words from two flattened
/// paragraphs or items do not run together. Also returns the offset of the first element dropped.
fn flatten<'a>(events: impl Iterator<Item = Spanned<'a>>, max: usize) -> (Vec<Spanned<'a>>, Option<usize>) {
    let mut out = Vec::new();
    let mut kept_depth = 0usize;
    // Whether each open element was kept.
    let mut open: Vec<bool> = Vec::new();
    let mut first_dropped = None;
    for (event, range) in events {
        match &event {
            Event::Start(tag) => {
                let keep = kept_depth < max || matches!(tag, Tag::Image { .. });
                open.push(keep);
                if keep {
                    kept_depth += 1;
                } else {
                    first_dropped.get_or_insert(range.start);
                    if !is_inline(tag.to_end()) {
                        soft_break(&mut out, range);
                    }
                    continue;
                }
            }
            Event::End(end) => {
                if open.pop().unwrap_or(true) {
                    kept_depth = kept_depth.saturating_sub(1);
                } else {
                    if !is_inline(*end) {
                        soft_break(&mut out, range);
                    }
                    continue;
                }
            }
            _ => {}
        }
        out.push((event, range));
    }
    (out, first_dropped)
}

/// A soft break between the text of flattened blocks, one for a run of them.
fn soft_break<'a>(out: &mut Vec<Spanned<'a>>, range: std::ops::Range<usize>) {
    if !matches!(out.last(), Some((Event::SoftBreak, _))) {
        out.push((Event::SoftBreak, range));
    }
}

fn is_inline(end: TagEnd) -> bool {
    matches!(
        end,
        TagEnd::Emphasis
            | TagEnd::Strong
            | TagEnd::Strikethrough
            | TagEnd::Superscript
            | TagEnd::Subscript
            | TagEnd::Link
            | TagEnd::Image
    )
}

/// Physical line of a byte offset in the body, by binary search (a newsletter with thousands
/// of links must not count newlines from the start for each).
struct LineIndex {
    starts: Vec<usize>,
    first: usize,
}

impl LineIndex {
    fn new(body: &str, first: usize) -> LineIndex {
        let starts = std::iter::once(0)
            .chain(body.match_indices('\n').map(|(at, _)| at + 1))
            .collect();
        LineIndex { starts, first }
    }

    fn at(&self, offset: usize) -> usize {
        self.first + self.starts.partition_point(|s| *s <= offset).saturating_sub(1)
    }
}

/// If `events` (after a paragraph start) are one button link and the paragraph end, the button
/// (its URL as written) and the number of events it spans (link start to link end).
fn button_at(events: &[Spanned<'_>]) -> Option<(Button, usize)> {
    let Some((Event::Start(Tag::Link { dest_url, title, .. }), _)) = events.first() else {
        return None;
    };
    if !title.eq_ignore_ascii_case("button") {
        return None;
    }
    let end = events.iter().position(|(e, _)| matches!(e, Event::End(TagEnd::Link)))?;
    if !matches!(events.get(end + 1), Some((Event::End(TagEnd::Paragraph), _))) {
        return None;
    }
    let text: String = events[1..end]
        .iter()
        .filter_map(|(e, _)| match e {
            Event::Text(t) | Event::Code(t) => Some(t.as_ref()),
            Event::SoftBreak | Event::HardBreak => Some(" "),
            _ => None,
        })
        .collect();
    Some((
        Button {
            text,
            url: dest_url.to_string(),
        },
        end + 1,
    ))
}

/// `600x400` → (600, 400).
fn parse_size(title: &str) -> Option<(u32, u32)> {
    let (w, h) = title.trim().split_once(['x', 'X', '×'])?;
    let (w, h) = (w.trim().parse().ok()?, h.trim().parse().ok()?);
    (w > 0 && h > 0).then_some((w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("600x338"), Some((600, 338)));
        assert_eq!(parse_size(" 300 × 200 "), Some((300, 200)));
        assert_eq!(parse_size("Photo credit"), None);
        assert_eq!(parse_size("0x10"), None);
    }

    #[test]
    fn button_only_when_alone_in_its_paragraph() {
        let mut d = Diagnostics::default();
        let blocks = parse(
            "[Give](https://e.org/d \"button\")\n\nSee [Give](https://e.org/d \"button\") now.\n",
            1,
            "n.md",
            &Tags::default(),
            &mut d,
        );
        let buttons = blocks.blocks.iter().filter(|b| matches!(b, Block::Button(_))).count();
        assert_eq!(buttons, 1);
    }

    #[test]
    fn image_problems_are_reported_with_lines() {
        let mut d = Diagnostics::default();
        parse("text\n\n![](a.png)\n", 7, "n.md", &Tags::default(), &mut d);
        let all = d.to_string();
        assert!(all.contains("n.md:9: image a.png has no alt text"), "{all}");
        assert!(all.contains("n.md:9: image a.png has no size"), "{all}");
    }
}
