//! One newsletter in several languages: `NAME.md` is the default, `NAME.es.md` (any BCP 47
//! tag) the Spanish variant — the same campaign, one journal, one resume. Members pick a
//! variant by their `lang` or `language` field (see `render::Compiled::variant_for`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
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
/// matter settled against the default's (see [`settle`]): `lang` the tag unless it sets one.
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
        settle(n, &tag, &mut v)?;
        out.push((tag, v));
    }
    Ok(out)
}

/// A variant is another text of the same campaign. The campaign's keys — `id` and `audience` —
/// are the default's: a variant may repeat them, not change them. The text's keys — `subject`,
/// `preheader`, `lang`, `footer` — are its own. The sending keys it does not write — `from`,
/// `reply_to`, `social`, `attachments` — are the default's, and its `theme` keys are laid over
/// the default's. (`from` may change the sender's name, not the address: see
/// `Letterhead::add_variant`.)
fn settle(n: &Newsletter, tag: &str, v: &mut Newsletter) -> Result<()> {
    let at = |v: &Newsletter, key: &str| format!("{}:{}", v.path.display(), v.line_of_key(key));
    let default = n.path.display();
    let id = n.campaign_id();
    if let Some(own) = &v.front.id
        && *own != id
    {
        bail!(
            "{}: id {own:?} is not the campaign's ({id:?}, from {default}): a language variant is part of the same campaign — remove `id:` here or write `id: {id}`",
            at(v, "id")
        );
    }
    v.front.id = Some(id);
    if v.has_key("audience") && v.front.audience != n.front.audience {
        bail!(
            "{}: audience differs from {default}'s: a language variant goes to the same audience (members pick it by their `lang` field) — remove `audience:` here",
            at(v, "audience")
        );
    }
    v.front.audience.clone_from(&n.front.audience);
    match &v.front.lang {
        Some(lang) if primary(lang) != primary(tag) => bail!(
            "{}: lang {lang:?} is not the language of the file name (`{tag}`): write `lang: {tag}` or rename the file",
            at(v, "lang")
        ),
        Some(_) => {}
        None => v.front.lang = Some(tag.to_owned()),
    }
    let own = n
        .front
        .lang
        .as_deref()
        .unwrap_or("en")
        .trim()
        .to_lowercase()
        .replace('_', "-");
    if own == tag {
        bail!(
            "{}:1: {default} is already in `{tag}`{}, so this variant would never be sent: give {default} its own `lang:` or remove this file",
            v.path.display(),
            if n.front.lang.is_some() {
                " (its `lang`)"
            } else {
                " (the default language)"
            }
        );
    }
    let f = &mut v.front;
    if f.from.is_none() {
        f.from.clone_from(&n.front.from);
    }
    if f.reply_to.is_none() {
        f.reply_to.clone_from(&n.front.reply_to);
    }
    if f.social.is_none() {
        f.social.clone_from(&n.front.social);
    }
    f.theme = match (&n.front.theme, f.theme.take()) {
        (Some(base), Some(over)) => Some(base.merged(&over)),
        (base, over) => over.or_else(|| base.clone()),
    };
    if !v.has_key("attachments") {
        v.front.attachments.clone_from(&n.front.attachments);
    }
    Ok(())
}

/// The language of a tag: `es` for `es-MX`, lower-case.
fn primary(tag: &str) -> String {
    tag.trim().split(['-', '_']).next().unwrap_or("").to_lowercase()
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
