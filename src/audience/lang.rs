//! One newsletter in several languages: `NAME.md` is the default, `NAME.es.md` (any BCP 47
//! tag) the Spanish variant — the same campaign, one journal, one resume. Members pick a
//! variant by their `lang` or `language` field (see `render::Compiled::variant_for`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use sha2::{Digest, Sha256};

use crate::list::Recipient;
use crate::newsletter::Newsletter;
use crate::render::{Compiled, pick_version};

/// How many members get each version, and who asked for a language there is no version in.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    /// The versions' languages, lower-case, as members pick them: the default's, then each
    /// variant's file name's (`es` for `NAME.es.md`).
    langs: Vec<String>,
    /// The versions' languages as their text says (`lang:`; `es-mx` for an `NAME.es.md` with
    /// `lang: es-MX`), as `langs`.
    names: Vec<String>,
    /// Members per version, as `langs`.
    got: Vec<u64>,
    /// Tags with no version → members (they get the default).
    pub unmatched: BTreeMap<String, u64>,
}

impl Counts {
    /// For the versions in `langs` and `names` (the default's first).
    fn new(langs: Vec<String>, names: Vec<String>) -> Counts {
        Counts {
            got: vec![0; langs.len().max(1)],
            langs,
            names,
            ..Counts::default()
        }
    }

    /// For a compiled newsletter and its variants.
    pub(crate) fn of(compiled: &Compiled) -> Counts {
        let names = std::iter::once(compiled.lang.clone())
            .chain(compiled.variants.iter().map(|(_, v)| v.lang.clone()))
            .collect();
        Counts::new(compiled.langs().into_iter().map(str::to_owned).collect(), names)
    }

    /// For a newsletter and its variants (as [`variants`] gives them), uncompiled.
    pub(crate) fn of_files(n: &Newsletter, variants: &[(String, Newsletter)]) -> Counts {
        let lang = |n: &Newsletter| n.front.lang.as_deref().unwrap_or("en").trim().to_lowercase();
        let langs = std::iter::once(lang(n)).chain(variants.iter().map(|(t, _)| t.clone()));
        let names = std::iter::once(n).chain(variants.iter().map(|(_, v)| v)).map(lang);
        Counts::new(langs.collect(), names.collect())
    }

    /// Counts the version `r` gets: by their `lang` or `language`, else the default.
    pub(crate) fn count(&mut self, r: &Recipient) {
        let version = match r.language() {
            None => 0,
            Some(tag) => pick_version(self.langs.iter().map(String::as_str), &tag).unwrap_or_else(|| {
                *self.unmatched.entry(tag).or_default() += 1;
                0
            }),
        };
        self.got[version] += 1;
    }

    /// How many versions: the default and its variants.
    pub(crate) fn versions(&self) -> usize {
        self.langs.len()
    }

    /// The default version's language.
    pub(crate) fn default_lang(&self) -> &str {
        self.names.first().map_or("en", String::as_str)
    }

    /// Members per version, by its language.
    pub(crate) fn per_lang(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for (name, n) in self.names.iter().zip(&self.got) {
            *out.entry(name.clone()).or_default() += n;
        }
        out
    }

    /// `languages: en 3, es 2; 1 member asked for a language with no variant (fr 1) and gets
    /// the default (en)`.
    pub(crate) fn summary(&self) -> String {
        format!(
            "languages: {}",
            describe(&self.per_lang(), &self.unmatched, self.default_lang())
        )
    }
}

/// `en 3, es 2; 1 member asked for a language with no variant (fr 1) and gets the default
/// (en)`: members per version, and those whose language has none.
pub(crate) fn describe(per_lang: &BTreeMap<String, u64>, unmatched: &BTreeMap<String, u64>, default: &str) -> String {
    let each = |m: &BTreeMap<String, u64>| m.iter().map(|(l, n)| format!("{l} {n}")).collect::<Vec<_>>().join(", ");
    let mut out = each(per_lang);
    let n: u64 = unmatched.values().sum();
    if n > 0 {
        out.push_str(&format!(
            "; {n} member{} asked for a language with no variant ({}) and get{} the default ({default})",
            if n == 1 { "" } else { "s" },
            each(unmatched),
            if n == 1 { "s" } else { "" },
        ));
    }
    out
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

    #[test]
    fn a_variant_inherits_the_sending_keys_it_leaves_out() {
        let dir = tempfile::tempdir().unwrap();
        let w = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        w(
            "n.md",
            "---\nsubject: Hi\nfrom: \"News <n@example.org>\"\nattachments: [a.pdf]\n\
             theme:\n  brand_color: \"#aa0000\"\n  logo_alt: News\nfooter: Bye\n---\nHello\n",
        );
        w(
            "n.es.md",
            "---\nsubject: Hola\ntheme:\n  logo_alt: Noticias\nattachments: []\n---\nHola\n",
        );
        w("n.fr.md", "---\nsubject: Salut\n---\nSalut\n");
        let n = Newsletter::load(&dir.path().join("n.md")).unwrap();
        let v = variants(&n).unwrap();
        let (es, fr) = (&v[0].1.front, &v[1].1.front);
        assert_eq!(es.from.as_deref(), Some("News <n@example.org>"));
        assert_eq!(es.id.as_deref(), Some("n"), "the campaign's id, not `n.es`");
        let theme = es.theme.as_ref().unwrap();
        assert_eq!(
            (theme.brand_color.as_deref(), theme.logo_alt.as_deref()),
            (Some("#aa0000"), Some("Noticias"))
        );
        assert!(es.attachments.is_empty(), "`attachments: []` drops the default's");
        assert_eq!(fr.attachments, [PathBuf::from("a.pdf")]);
        assert_eq!(
            (es.footer.as_deref(), fr.footer.as_deref()),
            (None, None),
            "words are the text's own"
        );
        assert_eq!(Counts::of_files(&n, &v).per_lang().len(), 3);
    }
}
