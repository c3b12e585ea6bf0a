//! A small, strict reader of the HTML we generate, for safety checks: every tag, its
//! attributes, and the values a browser would see. Text and attribute values in our output
//! are escaped, so every `<` starts a real tag (or a comment).
#![allow(dead_code)]

/// Elements that must never reach a message.
const FORBIDDEN_TAGS: [&str; 9] = [
    "script", "iframe", "object", "embed", "form", "input", "base", "link", "frame",
];
/// Link schemes that run code or smuggle content.
const FORBIDDEN_SCHEMES: [&str; 3] = ["javascript:", "vbscript:", "data:"];

/// Every start tag: `(name, attributes)`, names lower-cased, values unescaped.
pub fn tags(html: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find('<') {
        let after = &rest[at + 1..];
        let end = after.find('>').unwrap_or(after.len());
        let tag = &after[..end];
        rest = &after[end..];
        if tag.starts_with('!') || tag.starts_with('/') {
            continue;
        }
        let name: String = tag
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_ascii_lowercase();
        let attrs = attributes(&tag[name.len()..])
            .into_iter()
            .map(|(k, v)| (k, unescape(&v)))
            .collect();
        out.push((name, attrs));
    }
    out
}

/// The first thing in `html` that could run code: a forbidden element, an event-handler
/// attribute, a script URL in a link or image, or a `<` that starts no tag.
pub fn unsafe_markup(html: &str) -> Option<String> {
    for (name, attrs) in tags(html) {
        if name.is_empty() {
            return Some("a `<` that starts no tag".into());
        }
        if FORBIDDEN_TAGS.contains(&name.as_str()) {
            return Some(format!("a <{name}> element"));
        }
        for (attr, value) in attrs {
            if attr.starts_with("on") {
                return Some(format!("an event handler `{attr}` on <{name}>"));
            }
            if matches!(attr.as_str(), "href" | "src" | "action" | "background") {
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

/// Every `href` value, unescaped.
pub fn hrefs(html: &str) -> Vec<String> {
    tags(html)
        .into_iter()
        .flat_map(|(_, attrs)| attrs)
        .filter(|(k, _)| k == "href")
        .map(|(_, v)| v)
        .collect()
}

/// `(name, raw value)` of each attribute in a tag's text after its name.
pub fn attributes(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace() || *c == '/').is_some() {}
        let mut name = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace() && !"=/>\"'".contains(*c)) {
            name.push(c.to_ascii_lowercase());
        }
        if name.is_empty() {
            if chars.next().is_none() {
                return out;
            }
            continue;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'=').is_some() {
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            match chars.next_if(|c| *c == '"' || *c == '\'') {
                Some(q) => {
                    for c in chars.by_ref() {
                        if c == q {
                            break;
                        }
                        value.push(c);
                    }
                }
                None => {
                    while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                        value.push(c);
                    }
                }
            }
        }
        out.push((name, value));
    }
}

/// Decodes the character references a browser would decode in an attribute value.
pub fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 1..];
        let decoded = tail.find(';').filter(|&e| e <= 10).and_then(|e| {
            let ent = &tail[..e];
            let code = if let Some(h) = ent.strip_prefix("#x").or_else(|| ent.strip_prefix("#X")) {
                u32::from_str_radix(h, 16).ok()
            } else if let Some(d) = ent.strip_prefix('#') {
                d.parse().ok()
            } else {
                match ent {
                    "amp" => Some(u32::from('&')),
                    "lt" => Some(u32::from('<')),
                    "gt" => Some(u32::from('>')),
                    "quot" => Some(u32::from('"')),
                    "apos" => Some(u32::from('\'')),
                    "colon" => Some(u32::from(':')),
                    "Tab" => Some(u32::from('\t')),
                    "NewLine" => Some(u32::from('\n')),
                    _ => None,
                }
            };
            code.and_then(char::from_u32).map(|c| (c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &tail[e + 1..];
            }
            None => {
                out.push('&');
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out
}
