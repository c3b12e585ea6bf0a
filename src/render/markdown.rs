//! The Markdown tree both parts are rendered from, with our two extensions recognised:
//!
//! - a **button**: a link alone in its paragraph whose title is `button`,
//!   `[Give today](https://example.org/donate "button")`;
//! - an **image size**: an image title of the form `WIDTHxHEIGHT`,
//!   `![Marchers at the rally](https://example.org/rally.jpg "600x338")`;
//! - a **caption** (a photo credit): an emphasised line right under an image, in the same
//!   paragraph, `![Marchers](rally.jpg)` then `*Photo: Ana López*` on the next line.

use pulldown_cmark::{CowStr, Event, LinkType, Options, Parser, Tag, TagEnd};

use super::tags::Tags;
use crate::diagnostic::Diagnostics;

/// A call-to-action button.
#[derive(Debug, Clone)]
pub struct Button {
    pub text: String,
    pub url: String,
}

/// An image, with its size when the title gave one (else [`super::images`] finds it).
#[derive(Debug, Clone)]
pub struct Image {
    pub url: String,
    pub alt: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Line of the source, for messages.
    pub line: usize,
    /// The emphasised line right under the image.
    pub caption: Option<String>,
}

/// Events our renderers add on top of pulldown-cmark's.
#[derive(Debug, Clone)]
pub enum Block<'a> {
    Md(Event<'a>),
    Button(Button),
    Image(Image),
}

/// Parses `body` (tags already protected) into blocks, reporting problems with lines.
pub fn parse<'a>(body: &'a str, body_line: usize, file: &str, diags: &mut Diagnostics) -> Vec<Block<'a>> {
    let mut opts = Options::empty();
    opts.insert(Options::ENABLE_TABLES);
    opts.insert(Options::ENABLE_STRIKETHROUGH);
    opts.insert(Options::ENABLE_FOOTNOTES);
    opts.insert(Options::ENABLE_TASKLISTS);
    let events: Vec<(Event<'a>, std::ops::Range<usize>)> = Parser::new_ext(body, opts).into_offset_iter().collect();
    let line_at = |offset: usize| body_line + body[..offset].matches('\n').count();
    let mut out = Vec::with_capacity(events.len());
    let mut i = 0;
    while i < events.len() {
        match &events[i].0 {
            Event::Start(Tag::Paragraph) => {
                if let Some((button, len)) = button_at(&events[i + 1..]) {
                    out.push(Block::Button(button));
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
            Event::Start(Tag::Image { dest_url, title, .. }) => {
                let line = line_at(events[i].1.start);
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
                if alt.trim().is_empty() {
                    diags.warning(
                        Some((file, line)),
                        format!(
                            "image {dest_url} has no alt text: describe it, ![what it shows]({dest_url}), \
                         for readers whose mail client blocks images"
                        ),
                    );
                }
                let (width, height) = parse_size(title).unzip();
                let caption = caption_at(&events[i + 1..]).map(|(text, len)| {
                    i += len;
                    text
                });
                out.push(Block::Image(Image {
                    url: Tags::mark_url(dest_url),
                    alt,
                    width,
                    height,
                    line,
                    caption,
                }));
            }
            other => out.push(Block::Md(other.clone())),
        }
        i += 1;
    }
    out
}

/// If `events` (after a paragraph start) are one button link and the paragraph end, the button
/// and the number of events it spans (link start to link end).
fn button_at(events: &[(Event<'_>, std::ops::Range<usize>)]) -> Option<(Button, usize)> {
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
            url: Tags::mark_url(dest_url),
        },
        end + 1,
    ))
}

/// If `events` (after an image) are a line break and an emphasised line ending the paragraph,
/// its text and the number of events it spans (break to emphasis end).
fn caption_at(events: &[(Event<'_>, std::ops::Range<usize>)]) -> Option<(String, usize)> {
    if !matches!(events.first(), Some((Event::SoftBreak | Event::HardBreak, _)))
        || !matches!(events.get(1), Some((Event::Start(Tag::Emphasis), _)))
    {
        return None;
    }
    let end = events
        .iter()
        .position(|(e, _)| matches!(e, Event::End(TagEnd::Emphasis)))?;
    if !matches!(events.get(end + 1), Some((Event::End(TagEnd::Paragraph), _))) {
        return None;
    }
    let text: String = events[2..end]
        .iter()
        .filter_map(|(e, _)| match e {
            Event::Text(t) | Event::Code(t) => Some(t.as_ref()),
            Event::SoftBreak | Event::HardBreak => Some(" "),
            _ => None,
        })
        .collect();
    Some((text, end + 1))
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
            &mut d,
        );
        let buttons = blocks.iter().filter(|b| matches!(b, Block::Button(_))).count();
        assert_eq!(buttons, 1);
    }

    #[test]
    fn an_emphasised_line_under_an_image_is_its_caption() {
        let mut d = Diagnostics::default();
        let blocks = parse(
            "![Marchers](r.jpg \"600x400\")\n*Photo: Ana López*\n\n![Coats](c.jpg \"600x400\")\n*not* a caption\n",
            1,
            "n.md",
            &mut d,
        );
        let captions: Vec<Option<String>> = blocks
            .iter()
            .filter_map(|b| match b {
                Block::Image(i) => Some(i.caption.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(captions, [Some("Photo: Ana López".to_owned()), None]);
    }

    #[test]
    fn image_problems_are_reported_with_lines() {
        let mut d = Diagnostics::default();
        parse("text\n\n![](a.png)\n", 7, "n.md", &mut d);
        let all = d.to_string();
        assert!(all.contains("n.md:9: image a.png has no alt text"), "{all}");
        assert!(
            !all.contains("size"),
            "a missing size is found later, not an error: {all}"
        );
    }
}
