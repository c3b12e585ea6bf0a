//! The XSS oracle: the HTML we generate, read by a browser's parser (html5ever, through
//! scraper) rather than by assumptions shared with the code that writes it. Every element of
//! the resulting DOM is judged with its attributes as a browser would see them (names
//! lower-cased, character references decoded). What a browser leaves as text but some mail
//! client may still read as markup is parsed again and judged too: the inside of comments
//! (Outlook runs `<!--[if mso]>` conditional comments) and of raw-text elements such as
//! `<noscript>`.
#![allow(dead_code)]

use scraper::{Html, Node};

/// Elements that must never reach a message.
const FORBIDDEN_TAGS: [&str; 9] = [
    "script", "iframe", "object", "embed", "form", "input", "base", "link", "frame",
];
/// Link schemes that run code or smuggle content.
const FORBIDDEN_SCHEMES: [&str; 3] = ["javascript:", "vbscript:", "data:"];
/// Attributes whose value a browser follows as a URL.
const URL_ATTRIBUTES: [&str; 7] = [
    "href",
    "src",
    "action",
    "background",
    "formaction",
    "poster",
    "xlink:href",
];
/// Elements whose content the parser keeps as raw text, not decoded: parsed again, in case a
/// reader does not (`<noscript>` is markup where scripts are off, as in mail). `<title>` and
/// `<textarea>` are not among them: their text is decoded, so it no longer shows whether a `<`
/// was written as `&lt;`, and no reader takes it for markup.
const RAW_TEXT: [&str; 6] = ["style", "xmp", "noscript", "noembed", "noframes", "iframe"];

/// An element: `(name, attributes)`, as the DOM has them.
pub type Tag = (String, Vec<(String, String)>);

/// What one parse found: the elements, in document order, and whether some `<` started no
/// tag (a parse error html5ever reports from its tag-open state).
struct Parsed {
    tags: Vec<Tag>,
    stray_lt: bool,
    /// The name of each element's parent element, beside `tags`.
    parents: Vec<Option<String>>,
}

fn parse(html: &str, document: bool, out: &mut Parsed) {
    // A NUL becomes U+FFFD in a browser; said beforehand, it is no error to the parser.
    let html = html.replace('\0', "\u{FFFD}");
    let doc = if document {
        Html::parse_document(&html)
    } else {
        Html::parse_fragment(&html)
    };
    out.stray_lt |= doc.errors.iter().any(|e| e.contains("state TagOpen"));
    for node in doc.tree.nodes() {
        match node.value() {
            Node::Element(e) => {
                let attrs = e.attrs().map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned())).collect();
                out.tags.push((e.name().to_ascii_lowercase(), attrs));
                let parent = node
                    .parent()
                    .and_then(|p| p.value().as_element().map(|p| p.name().to_owned()));
                out.parents.push(parent);
            }
            Node::Comment(c) => parse(c, false, out),
            Node::Text(t) => {
                let in_raw_text = node
                    .parent()
                    .and_then(|p| p.value().as_element().map(|p| RAW_TEXT.contains(&p.name())))
                    .unwrap_or(false);
                if in_raw_text && t.contains('<') {
                    parse(t, false, out);
                }
            }
            _ => {}
        }
    }
}

fn parsed(html: &str) -> Parsed {
    let mut out = Parsed {
        tags: Vec::new(),
        stray_lt: false,
        parents: Vec::new(),
    };
    parse(html, true, &mut out);
    out
}

/// Every element: `(name, attributes)`, names lower-cased, values decoded.
pub fn tags(html: &str) -> Vec<Tag> {
    parsed(html).tags
}

/// The first thing in `html` that could run code: a forbidden element, an event-handler
/// attribute, a script URL in a link or image, a stylesheet outside `<head>`, or a `<` that
/// starts no tag.
pub fn unsafe_markup(html: &str) -> Option<String> {
    let parsed = parsed(html);
    if parsed.stray_lt {
        return Some("a `<` that starts no tag".into());
    }
    // The parser drops a <frame> outside a <frameset>, so no DOM shows one; its start tag
    // written anywhere is still a sign that markup got through unescaped.
    let lower = html.to_ascii_lowercase();
    if lower.match_indices("<frame").any(|(at, _)| {
        lower[at + "<frame".len()..].starts_with(|c: char| c.is_ascii_whitespace() || c == '/' || c == '>')
    }) {
        return Some("a <frame> element".into());
    }
    for ((name, attrs), parent) in parsed.tags.iter().zip(&parsed.parents) {
        if FORBIDDEN_TAGS.contains(&name.as_str()) {
            return Some(format!("a <{name}> element"));
        }
        // Our one stylesheet (the `@media` rules css-inline leaves) sits in <head>.
        if name == "style" && parent.as_deref() != Some("head") {
            return Some("a <style> element outside <head>".into());
        }
        for (attr, value) in attrs {
            if attr.starts_with("on") {
                return Some(format!("an event handler `{attr}` on <{name}>"));
            }
            if URL_ATTRIBUTES.contains(&attr.as_str()) {
                // Browsers ignore spaces and controls around and inside a scheme.
                let squeezed: String = value
                    .chars()
                    .filter(|c| !c.is_whitespace() && !c.is_control())
                    .collect::<String>()
                    .to_ascii_lowercase();
                if FORBIDDEN_SCHEMES.iter().any(|s| squeezed.starts_with(s)) {
                    return Some(format!("{attr}={value:?} on <{name}>"));
                }
            }
        }
    }
    None
}

/// `s` with its character references decoded, as a browser reads an attribute value.
pub fn unescape(s: &str) -> String {
    let fragment = scraper::Html::parse_fragment(&format!("<a title=\"{}\"></a>", s.replace('"', "&quot;")));
    let a = scraper::Selector::parse("a").expect("a selector");
    fragment
        .select(&a)
        .next()
        .and_then(|e| e.value().attr("title"))
        .unwrap_or_default()
        .to_owned()
}

/// Every `href` value, decoded.
pub fn hrefs(html: &str) -> Vec<String> {
    tags(html)
        .into_iter()
        .flat_map(|(_, attrs)| attrs)
        .filter(|(k, _)| k == "href")
        .map(|(_, v)| v)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{hrefs, unsafe_markup};

    const PAGE: &str = "<!DOCTYPE html><html><head><style>@media (max-width: 1px) {}</style></head><body>";

    fn finds(body: &str) -> Option<String> {
        unsafe_markup(&format!("{PAGE}{body}</body></html>"))
    }

    #[test]
    fn finds_what_can_run() {
        for body in [
            "<script>alert(1)</script>",
            "<SCRIPT SRC=//x></SCRIPT>",
            "<p>x</p><iframe src=x></iframe>",
            "<object data=x></object>",
            "<embed src=x>",
            "<form><button>go</button></form>",
            "<input autofocus>",
            "<base href=//evil>",
            "<link rel=stylesheet href=x>",
            "<frame src=x>",
            "<style>body{}</style>",
            "<img src=x onerror=alert(1)>",
            "<a href=\"x\" ONCLICK=\"y\">a</a>",
            "<a href=\"javascript:alert(1)\">a</a>",
            "<a href=\" JaVa&#x09;script&colon;alert(1)\">a</a>",
            "<a href=\"&#106;avascript:alert(1)\">a</a>",
            "<img src=\"data:image/svg+xml,x\">",
            "<table background=\"vbscript:x\"></table>",
            "<svg><a xlink:href=\"javascript:x\">a</a></svg>",
            "<!--[if mso]><script>alert(1)</script><![endif]-->",
            "<noscript><img src=x onerror=alert(1)></noscript>",
            "1 < 2",
            "<3",
        ] {
            assert!(finds(body).is_some(), "missed {body:?}");
        }
    }

    #[test]
    fn passes_what_is_safe() {
        for body in [
            "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>",
            "<a href=\"https://example.org/?a=1&amp;b=2\">javascript: in text</a>",
            "<p title=\"<script>\">x</p>",
            "<textarea>&lt;script&gt;alert(1)&lt;/script&gt;</textarea>",
            "<!--[if mso]><table><tr><td>x</td></tr></table><![endif]-->",
            "<img src=\"https://example.org/i.png\" alt=\"onerror\">",
        ] {
            assert_eq!(finds(body), None, "for {body:?}");
        }
    }

    #[test]
    fn hrefs_are_decoded_and_found_in_conditional_comments() {
        let html = format!(
            "{PAGE}<a href=\"https://example.org/?a=1&amp;b=%20\">x</a>\
             <!--[if mso]><v:roundrect href=\"https://example.org/o\"></v:roundrect><![endif]--></body></html>"
        );
        assert_eq!(
            hrefs(&html),
            ["https://example.org/?a=1&b=%20", "https://example.org/o"]
        );
    }
}
