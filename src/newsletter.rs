//! A newsletter source file: front matter (YAML between `---` or TOML between `+++`) and a
//! CommonMark body. Errors name the file and the line.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::{Social, Theme};

/// Front matter fields. Unknown keys are errors so a typo is not silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontMatter {
    /// The subject line; merge fields allowed.
    pub subject: Option<String>,
    /// The inbox preview line; merge fields allowed.
    pub preheader: Option<String>,
    /// Sender, overriding `bulletin.toml`.
    pub from: Option<String>,
    pub reply_to: Option<String>,
    /// Campaign id; default: the file stem.
    pub id: Option<String>,
    /// Language of the text, for `<html lang>`; default `en`.
    pub lang: Option<String>,
    /// `[theme]` keys overridden for this issue.
    pub theme: Option<Theme>,
    /// Social links for this issue, instead of `bulletin.toml`'s.
    pub social: Option<Vec<Social>>,
    /// The footer's text for this issue, instead of `[organisation] reason`.
    pub footer: Option<String>,
    /// Files attached to every member's message, relative to the newsletter.
    #[serde(default)]
    pub attachments: Vec<PathBuf>,
    /// Who the newsletter is for; `--list`, `--where` and `--exclude` override each part.
    pub audience: Option<AudienceFront>,
}

/// Front matter `audience: { lists: [...], where: "...", exclude: [...] }`. Paths are relative
/// to the project (the folder of `bulletin.toml`).
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudienceFront {
    #[serde(default)]
    pub lists: Vec<PathBuf>,
    /// A minijinja expression over member fields, as `--where`.
    #[serde(rename = "where")]
    pub segment: Option<String>,
    #[serde(default)]
    pub exclude: Vec<PathBuf>,
}

/// A parsed newsletter.
#[derive(Debug)]
pub struct Newsletter {
    pub path: PathBuf,
    pub front: FrontMatter,
    /// Line of each front-matter key, for messages.
    pub key_lines: Vec<(String, usize)>,
    pub body: String,
    /// Physical line on which the body starts (1-based).
    pub body_line: usize,
    /// SHA-256 of the file, hex: tells a resumed send that the newsletter changed.
    pub fingerprint: String,
    /// The file's text as read (what the journal keeps of a sent campaign, for `archive`).
    pub source: String,
}

impl Newsletter {
    pub fn load(path: &Path) -> Result<Newsletter> {
        let bytes =
            std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read newsletter {}: {e}", path.display()))?;
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                let line = crate::config::line_of(&String::from_utf8_lossy(&e.as_bytes()[..at]), at);
                bail!("{}:{line}: the file is not UTF-8: save it as UTF-8", path.display());
            }
        };
        Newsletter::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Newsletter> {
        let fingerprint = hex(&Sha256::digest(text.as_bytes()));
        let source = text.to_owned();
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        let first = lines.first().map_or("", |l| l.trim_end());
        let fence = match first {
            "---" => "---",
            "+++" => "+++",
            _ => {
                return Ok(Newsletter {
                    path: path.to_owned(),
                    front: FrontMatter::default(),
                    key_lines: Vec::new(),
                    body: text.to_owned(),
                    body_line: 1,
                    fingerprint,
                    source,
                });
            }
        };
        let Some(close) = lines.iter().skip(1).position(|l| l.trim_end() == fence).map(|i| i + 1) else {
            let last = last_key_line(&lines, fence);
            bail!(
                "{}:1: front matter opened with `{fence}` is never closed: add `{fence}` on its own line after line {last}",
                path.display()
            );
        };
        let raw: String = lines[1..close].concat();
        let front: FrontMatter = if fence == "---" {
            serde_saphyr::from_str(&raw).map_err(|e| {
                let line = e.location().map_or(2, |l| l.line() as usize + 1);
                let msg = e.to_string();
                let msg = msg.lines().next().unwrap_or("invalid YAML");
                let hint = lines.get(line - 1).and_then(|l| quote_hint(l)).unwrap_or_default();
                anyhow::anyhow!("{}:{line}: front matter: {msg}{hint}", path.display())
            })?
        } else {
            toml::from_str(&raw).map_err(|e| {
                let line = e.span().map_or(1, |s| crate::config::line_of(&raw, s.start)) + 1;
                anyhow::anyhow!("{}:{line}: front matter: {}", path.display(), e.message())
            })?
        };
        let key_lines: Vec<(String, usize)> = lines[1..close]
            .iter()
            .enumerate()
            .filter_map(|(i, l)| {
                let key: String = l.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                let rest = l[key.len()..].trim_start();
                (!key.is_empty() && (rest.starts_with(':') || rest.starts_with('='))).then_some((key, i + 2))
            })
            .collect();
        if let Some(id) = &front.id
            && let Err(why) = check_id(id)
        {
            let line = key_lines.iter().find(|(k, _)| k == "id").map_or(1, |(_, l)| *l);
            bail!("{}:{line}: id {id:?} {why}", path.display());
        }
        if let Some(lang) = &front.lang
            && !is_language_tag(lang)
        {
            let line = key_lines.iter().find(|(k, _)| k == "lang").map_or(1, |(_, l)| *l);
            bail!(
                "{}:{line}: lang {lang:?} is not a language tag: write a BCP 47 code such as `en`, `es` or `pt-BR`",
                path.display()
            );
        }
        Ok(Newsletter {
            path: path.to_owned(),
            front,
            key_lines,
            body: lines[close + 1..].concat(),
            body_line: close + 2,
            fingerprint,
            source,
        })
    }

    /// Whether the front matter writes `key` (even as an empty value).
    pub fn has_key(&self, key: &str) -> bool {
        self.key_lines.iter().any(|(k, _)| k == key)
    }

    /// Line of a front-matter key, or 1.
    pub fn line_of_key(&self, key: &str) -> usize {
        self.key_lines.iter().find(|(k, _)| k == key).map_or(1, |(_, l)| *l)
    }

    /// Campaign id: front matter `id`, else the file stem.
    pub fn campaign_id(&self) -> String {
        self.front.id.clone().unwrap_or_else(|| {
            self.path
                .file_stem()
                .map_or_else(|| "newsletter".into(), |s| s.to_string_lossy().into_owned())
        })
    }
}

/// A campaign id names the dry-run directory (`.bulletin/dry-run/<id>/`) and the journal's
/// rows: it must stay one harmless path component.
fn check_id(id: &str) -> Result<(), &'static str> {
    if id.trim().is_empty() {
        return Err("is empty: give the campaign a name such as `2027-01-welcome`");
    }
    if id.starts_with('.') || id.contains(['/', '\\']) {
        return Err("would name a directory outside the dry-run folder: drop the `/`, `\\` or leading `.`");
    }
    if id.chars().any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}') {
        return Err("contains a line break or control character");
    }
    if id.len() > 200 {
        return Err("is longer than 200 bytes");
    }
    Ok(())
}

/// A BCP 47 tag's shape (`en`, `pt-BR`, `zh-Hant-TW`): a 2–3 letter language (or 4–8 for a
/// registered one), then subtags of 1–8 letters or digits. Not checked against the registry.
fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let lang = parts.next().unwrap_or("");
    (2..=8).contains(&lang.len())
        && lang.chars().all(|c| c.is_ascii_alphabetic())
        && parts.all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// The last line of the unclosed front matter that still looks like a `key: value` line.
fn last_key_line(lines: &[&str], fence: &str) -> usize {
    let sep = if fence == "---" { ':' } else { '=' };
    let mut last = 1;
    for (i, l) in lines.iter().enumerate().skip(1) {
        let t = l.trim();
        let keyish = t.split_once(sep).is_some_and(|(k, _)| {
            !k.is_empty() && k.trim().chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        });
        if keyish || t.starts_with('#') || (l.starts_with(' ') && !t.is_empty()) {
            last = i + 1;
        } else {
            break;
        }
    }
    last
}

/// YAML reads `subject: Hello: world`, `*Big* news` or `"Quoted" rest` as structure; the
/// parser's words ("mapping values are not allowed") do not say that quoting the whole value
/// fixes it. Returns that hint with the line rewritten, when the line is `key: value` and the
/// value is not already one quoted string.
fn quote_hint(line: &str) -> Option<String> {
    let (key, value) = line.split_once(':')?;
    let (key, value) = (key.trim(), value.trim());
    let plain_key = !key.is_empty() && key.chars().all(|c| c.is_alphanumeric() || c == '_');
    let quoted =
        value.len() >= 2 && value.starts_with('"') && value.ends_with('"') && !value[1..value.len() - 1].contains('"');
    if !plain_key || value.is_empty() || quoted {
        return None;
    }
    let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
    Some(format!(
        "\n  hint: put the whole value in double quotes: {key}: \"{escaped}\" \
         (YAML reads `: `, a leading `*`, `&`, `[`, `{{` or a quote as structure)"
    ))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Newsletter> {
        Newsletter::parse(s, Path::new("n.md"))
    }

    #[test]
    fn yaml_front_matter() {
        let n = parse("---\nsubject: \"Hi — there\"\npreheader: p\nid: x1\n---\nBody\n").unwrap();
        assert_eq!(n.front.subject.as_deref(), Some("Hi — there"));
        assert_eq!(n.campaign_id(), "x1");
        assert_eq!(n.body, "Body\n");
        assert_eq!(n.body_line, 6);
        assert_eq!(n.line_of_key("preheader"), 3);
    }

    #[test]
    fn toml_front_matter() {
        let n = parse("+++\r\nsubject = \"Hello\"\r\n+++\r\n\r\nBody\r\n").unwrap();
        assert_eq!(n.front.subject.as_deref(), Some("Hello"));
        assert_eq!(n.campaign_id(), "n");
        assert_eq!(n.body_line, 4);
    }

    #[test]
    fn unclosed_front_matter_says_where_to_close_it() {
        let err = parse("---\nsubject: a\nfrom: b <b@example.org>\n\nDear reader\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("add `---` on its own line after line 3"), "{err}");
    }

    #[test]
    fn an_id_that_is_not_one_path_component_is_refused() {
        for id in [
            "\"../../etc\"",
            "\"/tmp/x\"",
            "\"a\\\\b\"",
            "\".hidden\"",
            "\"\"",
            "\"a\\nb\"",
        ] {
            let err = parse(&format!("---\nsubject: s\nid: {id}\n---\n"))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("n.md:3: id "), "{id}: {err}");
        }
        assert_eq!(
            parse("---\nid: 2027-01.v2_x\n---\n").unwrap().campaign_id(),
            "2027-01.v2_x"
        );
    }

    #[test]
    fn a_lang_that_is_no_language_tag_names_its_line() {
        for lang in ["\"en us\"", "english!", "\"<b>\"", "e"] {
            let err = parse(&format!("---\nsubject: s\nlang: {lang}\n---\n"))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("n.md:3: lang "), "{lang}: {err}");
        }
        for lang in ["en", "pt-BR", "zh-Hant-TW", "es-419"] {
            assert!(parse(&format!("---\nlang: {lang}\n---\n")).is_ok(), "{lang}");
        }
    }

    #[test]
    fn unknown_key_names_its_line() {
        let err = parse("+++\nsubject = \"a\"\nsubjet = \"b\"\n+++\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("n.md:3:"), "{err}");
        let err = parse("---\nsubject: a\nsubjet: b\n---\n").unwrap_err().to_string();
        assert!(err.starts_with("n.md:3:"), "{err}");
    }
}
