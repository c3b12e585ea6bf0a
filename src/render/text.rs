//! The plain-text part, rendered from the Markdown tree (never scraped from the HTML):
//! wrapped at 72 columns, headings underlined, lists as `- ` / `1. `, links as numbered
//! references listed at the end, the button as its text and URL, images as their alt text.
//!
//! A paragraph holding a merge field is wrapped per recipient (the `wrap` filter), since the
//! value's length is only known then; every other paragraph is wrapped here, once.

use pulldown_cmark::{Event, HeadingLevel, Tag, TagEnd};

use super::markdown::Block;
use super::tags::{Tags, neutralise};

/// Column the text part wraps at.
pub const WIDTH: usize = 72;
/// Longest line a fixed `Label: value` line may have (URLs alone may be longer).
pub const MAX_WIDTH: usize = 76;

#[derive(Default)]
struct Writer<'t> {
    tags: Option<&'t Tags>,
    out: String,
    /// Inline text of the block being built.
    inline: String,
    /// Prefix of every line: quote marks and list indentation.
    indent: String,
    /// Marker of a list item whose first line has not been written yet.
    marker: Option<String>,
    lists: Vec<Option<u64>>,
    links: Vec<String>,
    link_start: Vec<(usize, String)>,
    heading: Option<HeadingLevel>,
    table_row: Vec<String>,
    in_code: bool,
}

/// Renders the body to a text template (tokens still in place).
pub fn render(blocks: &[Block<'_>], tags: &Tags) -> (String, Vec<String>) {
    let mut w = Writer {
        tags: Some(tags),
        ..Writer::default()
    };
    for block in blocks {
        match block {
            Block::Md(e) => w.event(e),
            Block::Button(b) => {
                w.flush();
                let label = wrap(&format!("{}:", neutralise(b.text.trim())), &w.indent, &w.indent);
                w.out
                    .push_str(&format!("{label}\n{}{}\n\n", w.indent, neutralise(&b.url)));
            }
            Block::Image(img) => {
                if !img.alt.trim().is_empty() {
                    w.inline.push_str(&format!("[{}]", neutralise(img.alt.trim())));
                }
                if let Some(caption) = &img.caption {
                    w.inline.push_str(&format!("\n{}", neutralise(caption.trim())));
                }
            }
        }
    }
    w.flush();
    (w.out.trim_end().to_owned() + "\n", w.links)
}

/// Wraps `text` with a first-line and a continuation prefix. Words are never broken, so a
/// long URL stands alone on a longer line.
pub fn wrap(text: &str, first: &str, rest: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for (i, para_line) in text.split('\n').enumerate() {
        let (f, r) = if i == 0 { (first, rest) } else { (rest, rest) };
        let opts = textwrap::Options::new(WIDTH)
            .initial_indent(f)
            .subsequent_indent(r)
            .word_separator(textwrap::WordSeparator::Custom(words_keeping_urls))
            // Hyphenated words still break after their hyphens (the separator allows it);
            // the splitter would also cut URLs there.
            .word_splitter(textwrap::WordSplitter::NoHyphenation)
            .break_words(false);
        let collapsed: String = para_line.split_whitespace().collect::<Vec<_>>().join(" ");
        for (j, l) in textwrap::wrap(&collapsed, opts).iter().enumerate() {
            if i + j > 0 {
                out.push('\n');
            }
            out.push_str(l.trim_end());
        }
    }
    out
}

/// Words for wrapping: Unicode line-break rules (so text without spaces, such as Chinese,
/// still wraps), except that a URL is one word — UAX #14 would break it after a `/` or `-`,
/// and a URL cut in two cannot be clicked.
fn words_keeping_urls(line: &str) -> Box<dyn Iterator<Item = textwrap::core::Word<'_>> + '_> {
    use textwrap::WordSeparator::UnicodeBreakProperties;
    use textwrap::core::Word;
    let mut words = Vec::new();
    let mut rest = line;
    while !rest.is_empty() {
        // One space-separated chunk with the spaces after it.
        let end = rest.find(' ').unwrap_or(rest.len());
        let end = end + rest[end..].len() - rest[end..].trim_start_matches(' ').len();
        let (chunk, tail) = rest.split_at(end);
        if looks_like_url(chunk.trim_end_matches(' ')) {
            words.push(Word::from(chunk));
        } else {
            words.extend(UnicodeBreakProperties.find_words(chunk));
        }
        rest = tail;
    }
    Box::new(words.into_iter())
}

fn looks_like_url(word: &str) -> bool {
    word.contains("://") || word.contains("mailto:") || word.contains("www.")
}

impl Writer<'_> {
    fn event(&mut self, e: &Event<'_>) {
        match e {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(*tag),
            Event::Text(t) => {
                if self.in_code {
                    for line in t.lines() {
                        self.out.push_str(&format!("{}    {}\n", self.indent, neutralise(line)));
                    }
                } else {
                    self.inline.push_str(&neutralise(t));
                }
            }
            Event::Code(t) | Event::Html(t) | Event::InlineHtml(t) => self.inline.push_str(&neutralise(t)),
            Event::SoftBreak => self.inline.push(' '),
            Event::HardBreak => self.inline.push('\n'),
            Event::Rule => {
                self.flush();
                self.out.push_str(&format!("{}{}\n\n", self.indent, "-".repeat(24)));
            }
            Event::FootnoteReference(name) => self.inline.push_str(&format!("[^{name}]")),
            Event::TaskListMarker(done) => self.inline.push_str(if *done { "[x] " } else { "[ ] " }),
            Event::InlineMath(t) | Event::DisplayMath(t) => self.inline.push_str(t),
        }
    }

    fn start(&mut self, tag: &Tag<'_>) {
        match tag {
            Tag::Paragraph => {}
            Tag::Heading { level, .. } => {
                self.flush();
                self.heading = Some(*level);
            }
            Tag::BlockQuote(_) => {
                self.flush();
                self.indent.push_str("> ");
            }
            Tag::CodeBlock(_) => {
                self.flush();
                self.in_code = true;
            }
            Tag::List(start) => {
                self.flush();
                self.lists.push(*start);
            }
            Tag::Item => {
                self.flush();
                let marker = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        *n += 1;
                        format!("{}. ", *n - 1)
                    }
                    _ => "- ".to_owned(),
                };
                self.marker = Some(marker);
            }
            Tag::FootnoteDefinition(name) => {
                self.flush();
                self.inline.push_str(&format!("[^{name}]: "));
            }
            Tag::Link { dest_url, .. } => self.link_start.push((self.inline.len(), dest_url.to_string())),
            Tag::Table(_) | Tag::TableHead | Tag::TableRow => self.flush(),
            Tag::TableCell => {}
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph | TagEnd::FootnoteDefinition => self.flush(),
            TagEnd::Heading(_) => self.flush(),
            TagEnd::BlockQuote(_) => {
                self.flush();
                let n = self.indent.len().saturating_sub(2);
                self.indent.truncate(n);
            }
            TagEnd::CodeBlock => {
                self.in_code = false;
                self.out.push('\n');
            }
            TagEnd::List(_) => {
                self.flush();
                self.lists.pop();
                if self.lists.is_empty() {
                    self.out.push('\n');
                }
            }
            TagEnd::Item => {
                self.flush_item();
                self.marker = None;
            }
            TagEnd::Link => {
                let Some((at, url)) = self.link_start.pop() else { return };
                let text = self.inline[at..].trim();
                let bare = url.trim_start_matches("mailto:");
                if text == url || text == bare {
                    return; // an autolink already shows its address
                }
                let n = match self.links.iter().position(|l| *l == url) {
                    Some(i) => i + 1,
                    None => {
                        self.links.push(url);
                        self.links.len()
                    }
                };
                self.inline.push_str(&format!(" [{n}]"));
            }
            TagEnd::TableCell => {
                let cell = std::mem::take(&mut self.inline);
                self.table_row.push(cell.trim().to_owned());
            }
            TagEnd::TableHead | TagEnd::TableRow => {
                let row = std::mem::take(&mut self.table_row).join(" | ");
                self.out.push_str(&format!("{}{row}\n", self.indent));
            }
            TagEnd::Table => self.out.push('\n'),
            _ => {}
        }
    }

    /// Writes the pending inline text as a wrapped block followed by a blank line.
    fn flush(&mut self) {
        if self.marker.is_some() || !self.lists.is_empty() {
            self.flush_item();
            return;
        }
        let text = std::mem::take(&mut self.inline);
        if text.trim().is_empty() {
            return;
        }
        if let Some(level) = self.heading.take() {
            let underline = match level {
                HeadingLevel::H1 => Some('='),
                HeadingLevel::H2 => Some('-'),
                _ => None,
            };
            let t = match underline {
                Some(_) => wrap(text.trim(), "", ""),
                None => wrap(text.trim(), "### ", "    "),
            };
            self.out.push_str(&t);
            self.out.push('\n');
            if let Some(c) = underline {
                let longest = t.lines().map(width).max().unwrap_or(3);
                self.out.push_str(&c.to_string().repeat(longest));
                self.out.push('\n');
            }
            self.out.push('\n');
            return;
        }
        let (first, rest) = (self.indent.clone(), self.indent.clone());
        self.block(&text, &first, &rest, "\n");
    }

    /// Writes a list item's text with its marker and a hanging indent.
    fn flush_item(&mut self) {
        let text = std::mem::take(&mut self.inline);
        if text.trim().is_empty() {
            return;
        }
        let depth = self.lists.len().saturating_sub(1);
        let pad = "  ".repeat(depth);
        let (first, rest) = match self.marker.take() {
            Some(m) => (
                format!("{}{pad}{m}", self.indent),
                format!("{}{pad}{}", self.indent, " ".repeat(m.len())),
            ),
            None => {
                let hang = format!("{}{pad}  ", self.indent);
                (hang.clone(), hang)
            }
        };
        self.block(&text, &first, &rest, "");
        // Later paragraphs of the same item hang under the text.
        self.marker = None;
    }

    /// Writes one wrapped block followed by `after` (a blank line after a paragraph). Text
    /// that is only `{% %}` statements takes no lines of its own, and a block that is one
    /// `{% if %}…{% endif %}` carries its blank line inside, so a false condition leaves
    /// nothing behind.
    fn block(&mut self, text: &str, first: &str, rest: &str, after: &str) {
        let tags = self.tags.expect("tags");
        if tags.only_statements(text) {
            self.out.push_str(text.trim());
            return;
        }
        if let Some((open, inner, close)) = tags.enclosing_block(text) {
            self.out.push_str(open);
            self.out.push_str(&per_recipient(inner, first, rest));
            self.out.push('\n');
            self.out.push_str(after);
            self.out.push_str(close);
            return;
        }
        if tags.has_token(text) && tags.self_contained(text) {
            // Wrapped per recipient, once the merge values are known.
            self.out.push_str(&per_recipient(text, first, rest));
        } else {
            self.out.push_str(&wrap(text, first, rest));
        }
        self.out.push('\n');
        self.out.push_str(after);
    }
}

/// `text` inside the `wrap` filter, whitespace collapsed but hard line breaks kept.
fn per_recipient(text: &str, first: &str, rest: &str) -> String {
    let collapsed: Vec<String> = text
        .trim()
        .split('\n')
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    format!(
        "{{% filter wrap({}, {}) %}}{}{{% endfilter %}}",
        json(first),
        json(rest),
        collapsed.join("\n")
    )
}

fn json(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn width(s: &str) -> usize {
    textwrap::core::display_width(s).clamp(3, WIDTH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_at_72_and_keeps_long_urls_whole() {
        let long = "word ".repeat(40);
        let out = wrap(&long, "- ", "  ");
        assert!(out.lines().all(|l| l.chars().count() <= WIDTH), "{out}");
        assert!(out.starts_with("- word"));
        assert!(out.lines().skip(1).all(|l| l.starts_with("  word")));
        let url = format!("see https://example.org/{}", "a".repeat(90));
        let out = wrap(&url, "", "");
        assert_eq!(out.lines().collect::<Vec<_>>(), ["see", &url[4..]]);
    }

    #[test]
    fn never_breaks_inside_a_url_but_still_wraps_text_without_spaces() {
        let text =
            "Read the full report on our website at https://example.org/reports/2027/annual-report-on-rights.pdf today";
        let out = wrap(text, "", "");
        assert!(
            out.lines()
                .any(|l| l == "https://example.org/reports/2027/annual-report-on-rights.pdf today"),
            "{out}"
        );
        let out = wrap(
            "(<https://example.org/a/b>) and mailto:someone-with-a-long-name@example.org",
            "",
            "",
        );
        assert!(out.contains("mailto:someone-with-a-long-name@example.org"), "{out}");
        let chinese = "我们".repeat(60);
        let out = wrap(&chinese, "", "");
        assert!(out.lines().count() > 1, "{out}");
        assert!(out.lines().all(|l| textwrap::core::display_width(l) <= WIDTH), "{out}");
    }
}
