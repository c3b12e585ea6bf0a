//! Mistakes a newcomer makes in a newsletter, caught with the words that fix them: merge fields
//! spelled as the spreadsheet header (`{{ First Name }}`) or as another tool wants them
//! (`*|FNAME|*`, `{first_name}`), a misspelled field, and links Markdown would print as text
//! (`[text] (url)`, an unclosed `](`). Kept apart from the renderer: it only reads the source.

use super::BUILTIN_FIELDS;
use super::tags::{Kind, Tags};
use crate::diagnostic::Diagnostics;
use crate::list::normalise_column;
use crate::newsletter::Newsletter;

/// Names a `{first_name}` is taken for a placeholder even without a list to compare with.
const COMMON_FIELDS: [&str; 3] = ["first_name", "last_name", "name"];

/// The nearest field to `name`: its normalised spelling if that is a field, else the closest
/// within a couple of typos. `fields` are the list columns; the built-in fields count too.
pub fn suggestion(name: &str, fields: &[String]) -> Option<String> {
    let all = || fields.iter().map(String::as_str).chain(BUILTIN_FIELDS);
    let normal = normalise_column(name);
    if normal != name && all().any(|f| f == normal) {
        return Some(normal);
    }
    let limit = (name.chars().count() / 3).clamp(1, 3);
    all()
        .map(|f| (strsim::damerau_levenshtein(&normal, f), f))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, f)| f.to_owned())
}

/// `{{ First Name }}`: the header as written in the spreadsheet, which the template language
/// cannot read. Reports each such tag; true when it found one (compiling would only add a
/// parser's "unexpected identifier").
pub fn header_spellings(tags: &Tags, fields: Option<&[String]>, file: &str, diags: &mut Diagnostics) -> bool {
    let mut found = false;
    for tag in tags.list.iter().filter(|t| t.kind == Kind::Expr) {
        let inner = tag.inner.trim();
        let words = !inner.is_empty()
            && inner
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '.' | '\''))
            && inner.contains([' ', '-', '\''])
            && !inner.contains(['(', '|']);
        if !words
            || inner
                .split(' ')
                .any(|w| matches!(w, "if" | "else" | "and" | "or" | "not" | "in" | "is"))
        {
            continue;
        }
        let normal = normalise_column(inner);
        let known = fields.is_none_or(|f| f.contains(&normal)) || BUILTIN_FIELDS.contains(&normal.as_str());
        if known {
            diags.error(
                Some((file, tag.line)),
                format!(
                    "`{}`: merge fields use the column name in lower case with `_` for spaces: write `{{{{ {normal} }}}}`",
                    tag.src
                ),
            );
            found = true;
        }
    }
    found
}

/// Placeholders in another tool's spelling, which bulletin would send as they are:
/// Mailchimp's `*|FNAME|*` and `{first_name}` with single braces.
pub fn foreign_placeholders(n: &Newsletter, fields: Option<&[String]>, diags: &mut Diagnostics) {
    let file = n.path.display().to_string();
    let mut texts: Vec<(&str, usize)> = Vec::new();
    if let Some(s) = &n.front.subject {
        texts.push((s, n.line_of_key("subject")));
    }
    if let Some(p) = &n.front.preheader {
        texts.push((p, n.line_of_key("preheader")));
    }
    texts.push((&n.body, n.body_line));
    for (text, first_line) in texts {
        for (offset, line) in text.split('\n').enumerate() {
            let at = first_line + offset;
            for tag in mailchimp_tags(line) {
                let name = match tag.to_ascii_uppercase().as_str() {
                    "FNAME" => "first_name".to_owned(),
                    "LNAME" => "last_name".to_owned(),
                    "EMAIL" => "email".to_owned(),
                    "UNSUB" => "unsubscribe_url".to_owned(),
                    other => normalise_column(other),
                };
                diags.error(
                    Some((&file, at)),
                    format!("`*|{tag}|*` is Mailchimp's spelling and would be sent as it is: write `{{{{ {name} }}}}`"),
                );
            }
            for name in single_braced(line) {
                let normal = normalise_column(name);
                let known = match fields {
                    Some(f) => f.contains(&normal) || BUILTIN_FIELDS.contains(&normal.as_str()),
                    None => BUILTIN_FIELDS.contains(&normal.as_str()) || COMMON_FIELDS.contains(&normal.as_str()),
                };
                if known {
                    diags.error(
                        Some((&file, at)),
                        format!(
                            "`{{{name}}}` would be sent as it is: merge fields take two braces, `{{{{ {normal} }}}}`"
                        ),
                    );
                }
            }
        }
    }
}

/// The names inside `*|NAME|*` on a line.
fn mailchimp_tags(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(start) = rest.find("*|") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("|*") else { break };
        let name = &after[..end];
        if !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':'))
        {
            out.push(name);
        }
        rest = &after[end + 2..];
    }
    out
}

/// The names inside single braces, `{name}`, that are not part of `{{ }}`, `{% %}` or `{# #}`.
fn single_braced(line: &str) -> Vec<&str> {
    let bytes = line.as_bytes();
    let mut out = Vec::new();
    for (i, _) in line.match_indices('{') {
        if i > 0 && bytes[i - 1] == b'{' || bytes.get(i + 1).is_some_and(|b| matches!(b, b'{' | b'%' | b'#')) {
            continue;
        }
        let Some(len) = line[i + 1..].find('}') else { continue };
        let name = line[i + 1..i + 1 + len].trim();
        let closes_twice = bytes.get(i + 2 + len) == Some(&b'}');
        if !closes_twice
            && !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | ' ' | '-'))
        {
            out.push(name);
        }
    }
    out
}

/// Links Markdown does not see as links, so the brackets and the URL would be sent as text:
/// `[text] (url)` with a space, and `[text](url` never closed on its line.
pub fn broken_links(n: &Newsletter, diags: &mut Diagnostics) {
    let file = n.path.display().to_string();
    let mut fenced = false;
    for (offset, line) in n.body.split('\n').enumerate() {
        let at = n.body_line + offset;
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fenced = !fenced;
        }
        if fenced || line.starts_with("    ") || line.starts_with('\t') {
            continue;
        }
        for (i, _) in line.match_indices("] (") {
            let url = &line[i + 3..];
            let looks_like_url = ["http://", "https://", "mailto:", "www.", "/", "#", "{{"]
                .iter()
                .any(|p| url.starts_with(p));
            if looks_like_url && url.contains(')') && line[..i].contains('[') {
                diags.error(
                    Some((&file, at)),
                    "a link written `[text] (url)` is sent as text: remove the space, `[text](url)`",
                );
            }
        }
        for (i, _) in line.match_indices("](") {
            if !line[i + 2..].contains(')') {
                diags.error(
                    Some((&file, at)),
                    "a link's `](` is never closed on its line, so it would be sent as text: end the URL with `)`",
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Vec<String> {
        vec!["email".into(), "first_name".into(), "city".into()]
    }

    #[test]
    fn suggests_the_normalised_spelling_then_the_nearest_column() {
        assert_eq!(suggestion("First_Name", &fields()).as_deref(), Some("first_name"));
        assert_eq!(suggestion("frist_name", &fields()).as_deref(), Some("first_name"));
        assert_eq!(suggestion("citty", &fields()).as_deref(), Some("city"));
        assert_eq!(suggestion("postcode", &fields()), None);
    }

    #[test]
    fn finds_placeholders_of_other_tools() {
        assert_eq!(mailchimp_tags("Hi *|FNAME|*, *|MC:SUBJECT|*"), ["FNAME", "MC:SUBJECT"]);
        assert_eq!(single_braced("Hi {first_name}, {{ city }} {% if x %}"), ["first_name"]);
        assert!(single_braced("{{first_name}}").is_empty());
    }
}
