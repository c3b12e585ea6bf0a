//! The one URL policy: which link and image targets may reach a message.
//!
//! Only `https:`, `http:`, `mailto:` and `tel:` do. Anything else (`javascript:`, `data:`,
//! `vbscript:`, `file:`, an app's scheme) either runs code, smuggles content or does nothing in
//! a mail client. Markdown links and images, buttons, authored HTML (when allowed) and merge
//! values that are a whole link all ask [`classify`], so they cannot disagree.

use std::borrow::Cow;

use super::scan::{Scan, What};

/// Schemes a link or image may use.
pub const ALLOWED_SCHEMES: [&str; 4] = ["https", "http", "mailto", "tel"];

/// What a link target is, as far as a mail client is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An allowed scheme.
    Web,
    /// Starts with a merge field: the value is the URL, checked per member (`url_start`).
    MergeField,
    /// A scheme that is not allowed (lower-case, as a browser reads it).
    Refused(String),
    /// A web or mail address without its scheme: the fix to write instead.
    NoScheme(String),
    /// A fragment (`#top`): works in a few mail clients only.
    Fragment,
    /// A relative path (`/about`, `../x`) or nothing: leads nowhere in an email.
    Relative,
}

/// Classifies a link target as written in the Markdown (entities already decoded by the
/// parser; decoded again here, as is leading or inner whitespace and control characters,
/// which browsers ignore in a scheme — so `&#106;avascript:`, ` JaVaScRiPt:` and
/// `java\tscript:` are all `javascript:`).
pub fn classify(url: &str) -> Target {
    if starts_with_merge_field(url) {
        return Target::MergeField;
    }
    classify_literal(url)
}

/// `classify` for a URL that holds no merge field (or a member's value, which is data).
fn classify_literal(url: &str) -> Target {
    let squeezed: String = decode_entities(url)
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .collect();
    let lower = squeezed.to_ascii_lowercase();
    if let Some((scheme, _)) = lower.split_once(':') {
        let valid = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        if valid && ALLOWED_SCHEMES.contains(&scheme) {
            return Target::Web;
        }
        // `example.org:8080/x` is a host and port, not a scheme called `example.org`.
        if valid && !looks_like_host(scheme) {
            return Target::Refused(scheme.to_owned());
        }
    }
    let trimmed = squeezed.as_str();
    if trimmed.is_empty() {
        return Target::Relative;
    }
    if trimmed.starts_with('#') {
        return Target::Fragment;
    }
    if let Some(rest) = trimmed.strip_prefix("//") {
        return Target::NoScheme(format!("https://{rest}"));
    }
    let first = trimmed.split(['/', '?', '#']).next().unwrap_or("");
    if let Some((local, domain)) = first.split_once('@')
        && !local.is_empty()
        && !local.contains(':')
        && looks_like_host(domain)
    {
        return Target::NoScheme(format!("mailto:{trimmed}"));
    }
    if looks_like_host(first.split(':').next().unwrap_or("")) {
        return Target::NoScheme(format!("https://{trimmed}"));
    }
    Target::Relative
}

/// Is this target one that may be written into a message?
pub fn allowed(url: &str) -> bool {
    !matches!(classify(url), Target::Refused(_))
}

/// A merge value that is a whole link target (`[Read it]({{ web_url }})`): kept as it is
/// unless its scheme is refused, when it becomes `#`.
pub fn safe_url_start(value: &str) -> String {
    // A member's value is data: a token-like value in it is no merge field.
    match classify_literal(value) {
        Target::Refused(_) => "#".to_owned(),
        _ => value.to_owned(),
    }
}

/// Does the URL begin with a merge-field token (`BLTN3Z`, `BLTN3L`)?
fn starts_with_merge_field(url: &str) -> bool {
    Scan::tokens(url)
        .next()
        .is_some_and(|p| p.at == 0 && matches!(p.what, What::Token(t) if t.index.is_some()))
}

/// `example.org`, `www.example.org`, `mail.example.co.uk`: labels of letters, digits and
/// hyphens, the last one letters only and not a file extension (`logo.png` is a relative
/// path, not a host).
fn looks_like_host(s: &str) -> bool {
    const FILE_EXTENSIONS: [&str; 24] = [
        "html", "htm", "php", "asp", "aspx", "jsp", "pdf", "png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "md",
        "txt", "css", "js", "doc", "docx", "xls", "xlsx", "zip", "csv",
    ];
    let labels: Vec<&str> = s.split('.').collect();
    let Some(tld) = labels.last() else { return false };
    labels.len() >= 2
        && labels
            .iter()
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_alphanumeric() || c == '-'))
        && tld.len() >= 2
        && tld.chars().all(char::is_alphabetic)
        && (s.starts_with("www.") || !FILE_EXTENSIONS.contains(&tld.to_ascii_lowercase().as_str()))
}

/// Decodes the character references a browser would in an attribute: numeric ones (with or
/// without the `;`) and the few named ones that can spell a scheme.
fn decode_entities(s: &str) -> Cow<'_, str> {
    if !s.contains('&') {
        return s.into();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let (decoded, len) = entity(rest).unwrap_or(('&', 1));
        out.push(decoded);
        rest = &rest[len..];
    }
    out.push_str(rest);
    out.into()
}

/// The character a reference at the start of `s` stands for, and its length.
fn entity(s: &str) -> Option<(char, usize)> {
    let body = &s[1..];
    if let Some(num) = body.strip_prefix('#') {
        let (radix, digits_at) = match num.chars().next() {
            Some('x' | 'X') => (16, 2),
            _ => (10, 1),
        };
        let digits: String = s[1 + digits_at..]
            .chars()
            .take_while(|c| c.is_digit(radix))
            .take(8)
            .collect();
        if digits.is_empty() {
            return None;
        }
        let mut len = 1 + digits_at + digits.len();
        if s[len..].starts_with(';') {
            len += 1;
        }
        let c = u32::from_str_radix(&digits, radix)
            .ok()
            .and_then(char::from_u32)
            .unwrap_or('\u{fffd}');
        return Some((c, len));
    }
    let named = [
        ("colon;", ':'),
        ("tab;", '\t'),
        ("newline;", '\n'),
        ("amp;", '&'),
        ("nbsp;", ' '),
    ];
    named.iter().find_map(|(name, c)| {
        body.get(..name.len())
            .filter(|b| b.eq_ignore_ascii_case(name))
            .map(|_| (*c, 1 + name.len()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_web_mail_and_phone_schemes_are_allowed() {
        for ok in [
            "https://example.org/a:b",
            "HTTP://example.org",
            "mailto:a@example.org",
            "tel:+15551234",
        ] {
            assert_eq!(classify(ok), Target::Web, "{ok}");
        }
        for (bad, scheme) in [
            ("javascript:alert(1)", "javascript"),
            ("JaVaScRiPt:alert(1)", "javascript"),
            (" javascript:alert(1)", "javascript"),
            ("java\tscript:alert(1)", "javascript"),
            ("java\nscript:alert(1)", "javascript"),
            ("\u{1}javascript:x", "javascript"),
            ("&#106;avascript:x", "javascript"),
            ("&#x6A;avascript:x", "javascript"),
            ("&#0000106avascript:x", "javascript"),
            ("javascript&colon;x", "javascript"),
            ("data:text/html,<script>", "data"),
            ("vbscript:x", "vbscript"),
            ("file:///etc/passwd", "file"),
            ("ftp://example.org", "ftp"),
            ("slack://open", "slack"),
            ("localhost:3000", "localhost"),
        ] {
            assert_eq!(classify(bad), Target::Refused(scheme.into()), "{bad:?}");
        }
    }

    #[test]
    fn addresses_without_a_scheme_get_their_fix() {
        for (url, fix) in [
            ("example.org/x", "https://example.org/x"),
            ("www.example.org", "https://www.example.org"),
            ("example.org:8080/x", "https://example.org:8080/x"),
            ("//cdn.example.org/a.png", "https://cdn.example.org/a.png"),
            ("name@example.org", "mailto:name@example.org"),
        ] {
            assert_eq!(classify(url), Target::NoScheme(fix.into()), "{url}");
        }
        assert_eq!(classify("#section"), Target::Fragment);
        for rel in ["/about", "../x", "a.png", "report.pdf", "page?x=a:b", ""] {
            assert_eq!(classify(rel), Target::Relative, "{rel}");
        }
        assert_eq!(classify("BLTN0Z"), Target::MergeField);
        assert_eq!(classify("BLTN0L/path"), Target::MergeField);
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
            "&#106;avascript:x",
            "BLTN0Zjavascript:x",
        ] {
            assert_eq!(safe_url_start(bad), "#", "{bad:?}");
        }
        for good in [
            "https://example.org/a:b",
            "mailto:a@example.org",
            "/relative:path",
            "page?x=a:b",
            "",
            "BLTN0Z",
        ] {
            assert_eq!(safe_url_start(good), good);
        }
    }
}
