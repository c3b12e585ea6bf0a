//! One newsletter in several languages: `NAME.md` is the default, `NAME.es.md` (any BCP 47
//! tag) the Spanish variant — the same campaign, one journal, one resume. Members pick a
//! variant by their `lang` or `language` field (see `render::Compiled::variant_for`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use sha2::{Digest, Sha256};

use crate::list::Recipient;
use crate::newsletter::Newsletter;
use crate::render::Compiled;

/// How many members get each language, and who asked for one there is no variant for.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub per_lang: BTreeMap<String, usize>,
    /// Tags with no variant → members (they get the default).
    pub unmatched: BTreeMap<String, usize>,
}

impl Counts {
    pub(crate) fn count(&mut self, compiled: &Compiled, r: &Recipient) {
        let got = compiled.variant_for(r);
        *self.per_lang.entry(got.lang.clone()).or_default() += 1;
        if let Some(tag) = r.language()
            && compiled.variant(&tag).is_none()
        {
            *self.unmatched.entry(tag).or_default() += 1;
        }
    }

    /// `languages: en 3, es 2; 1 member asked for a language with no variant (fr 1) and gets en`.
    pub(crate) fn summary(&self, compiled: &Compiled) -> String {
        let mut out = format!(
            "languages: {}",
            self.per_lang
                .iter()
                .map(|(l, n)| format!("{l} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let n: usize = self.unmatched.values().sum();
        if n > 0 {
            out.push_str(&format!(
                "; {n} member{} asked for a language with no variant ({}) and get{} the default ({})",
                if n == 1 { "" } else { "s" },
                self.unmatched
                    .iter()
                    .map(|(l, n)| format!("{l} {n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if n == 1 { "s" } else { "" },
                compiled.lang
            ));
        }
        out
    }
}

/// The variants beside `n` (`NAME.TAG.md` for `NAME.md`), sorted by tag, each with its front
/// matter's `lang` set to the tag unless it sets one.
pub(crate) fn variants(n: &Newsletter) -> Result<Vec<(String, Newsletter)>> {
    let (Some(dir), Some(stem)) = (n.path.parent(), n.path.file_stem()) else {
        return Ok(Vec::new());
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!("{}.", stem.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut found: Vec<(String, PathBuf)> = entries
        .filter_map(std::result::Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let tag = name.strip_prefix(&prefix)?.strip_suffix(".md")?.to_owned();
            is_tag(&tag).then(|| (tag.to_lowercase(), n.path.with_file_name(&name)))
        })
        .collect();
    found.sort();
    let mut out = Vec::new();
    for (tag, path) in found {
        let mut v = Newsletter::load(&path)?;
        if v.front.lang.is_none() {
            v.front.lang = Some(tag.clone());
        }
        out.push((tag, v));
    }
    Ok(out)
}

/// A BCP 47 language tag as file names hold them: `es`, `es-MX`, `pt-BR`, `zh-Hant`.
fn is_tag(s: &str) -> bool {
    let mut parts = s.split('-');
    let primary = parts.next().unwrap_or("");
    (2..=3).contains(&primary.len())
        && primary.chars().all(|c| c.is_ascii_alphabetic())
        && parts.all(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// The campaign's newsletter fingerprint with its variants folded in: editing the Spanish
/// text of a campaign under way is a changed newsletter too. Unchanged without variants.
pub(crate) fn fingerprint(n: &Newsletter, variants: &[(String, Newsletter)]) -> String {
    if variants.is_empty() {
        return n.fingerprint.clone();
    }
    let mut h = Sha256::new();
    h.update(n.fingerprint.as_bytes());
    for (tag, v) in variants {
        h.update(format!("\0{tag}\0{}", v.fingerprint).as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_variants_beside_the_newsletter() {
        let dir = tempfile::tempdir().unwrap();
        let w = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        w("n.md", "---\nsubject: Hi\n---\nHello\n");
        w("n.es.md", "---\nsubject: Hola\n---\nHola\n");
        w("n.pt-BR.md", "---\nsubject: Olá\nlang: pt-br\n---\nOlá\n");
        w("n.draft-old.md", "---\nsubject: x\n---\nx\n");
        w("nn.fr.md", "---\nsubject: x\n---\nx\n");
        let n = Newsletter::load(&dir.path().join("n.md")).unwrap();
        let v = variants(&n).unwrap();
        let tags: Vec<(&str, Option<&str>)> = v.iter().map(|(t, n)| (t.as_str(), n.front.lang.as_deref())).collect();
        assert_eq!(tags, [("es", Some("es")), ("pt-br", Some("pt-br"))]);
        assert_ne!(fingerprint(&n, &v), n.fingerprint);
        assert_eq!(fingerprint(&n, &[]), n.fingerprint);
    }
}
