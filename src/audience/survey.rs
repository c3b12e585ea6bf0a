//! `bulletin lists`: what a sender should know before sending — per file, how many rows are
//! valid, invalid, duplicate, suppressed or unsubscribed; who the audience is after the
//! segment; how often each field is filled (the "Dear ," risk); and where the mail goes (the
//! receiving domains, with the share at the providers whose bulk-sender rules apply).

use std::collections::{BTreeMap, HashMap};

use anyhow::Result;
use serde::Serialize;

use super::lang::Counts;
use crate::list::{Item, Skip, Sources};
use crate::providers::Provider;

/// Domains shown.
const TOP_DOMAINS: usize = 10;

/// One file's rows.
#[derive(Debug, Default, Serialize)]
pub(crate) struct FileCounts {
    pub path: String,
    pub format: &'static str,
    pub rows: u64,
    /// Valid, first-seen, mailable rows (before the segment).
    pub valid: u64,
    pub invalid: u64,
    pub duplicate: u64,
    pub suppressed: u64,
    /// Unsubscribed, cleaned, bounced, blocklisted or disabled by their `status`.
    pub unsubscribed: u64,
}

/// A field and how many members of the audience have it filled.
#[derive(Debug, Serialize)]
pub(crate) struct Fill {
    pub field: String,
    pub filled: u64,
    pub percent: f64,
}

/// A receiving domain and its members in the audience.
#[derive(Debug, Serialize)]
pub(crate) struct Domain {
    pub domain: String,
    pub members: u64,
    pub percent: f64,
}

/// The audience's languages: what the members' `lang` or `language` field asks for and, with
/// a newsletter, who gets which of its versions.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Languages {
    /// Members by the language their field asks for (lower-case, as written).
    pub asked: BTreeMap<String, u64>,
    /// Members with neither field: they get the default version.
    pub none: u64,
    /// With a newsletter: the language of its default version (`NAME.md`).
    pub default: Option<String>,
    /// With a newsletter: members per version, by its language.
    pub versions: Option<BTreeMap<String, u64>>,
    /// With a newsletter: languages asked for that no version is in, with their members (they
    /// get the default).
    pub no_variant: Option<BTreeMap<String, u64>>,
}

/// The whole survey, as `lists --json` prints it.
#[derive(Debug, Serialize)]
pub(crate) struct Survey {
    pub files: Vec<FileCounts>,
    /// Members the newsletter would go to.
    pub audience: u64,
    /// The `--where` expression, if any.
    #[serde(rename = "where")]
    pub segment: Option<String>,
    /// Mailable members outside the segment.
    pub outside_segment: u64,
    /// Mailable members on an `--exclude` list.
    pub excluded: u64,
    pub fields: Vec<Fill>,
    pub languages: Languages,
    pub top_domains: Vec<Domain>,
    /// Percent of the audience at Gmail, Yahoo/AOL and Microsoft, by their consumer domains
    /// (see `crate::providers`).
    pub providers: HashMap<&'static str, f64>,
}

fn percent(n: u64, of: u64) -> f64 {
    if of == 0 {
        0.0
    } else {
        (n as f64 * 1000.0 / of as f64).round() / 10.0
    }
}

/// Reads the lists once (`sources` with the audience installed) and counts; `versions`, for a
/// newsletter, counts who gets which of its language versions.
pub(crate) fn survey(sources: &Sources, segment: Option<&str>, mut versions: Option<Counts>) -> Result<Survey> {
    let mut files: Vec<FileCounts> = sources
        .parts()
        .map(|c| FileCounts {
            path: c.path.display().to_string(),
            format: c.format.name(),
            ..FileCounts::default()
        })
        .collect();
    let index: HashMap<std::path::PathBuf, usize> =
        sources.parts().enumerate().map(|(i, c)| (c.path.clone(), i)).collect();
    let mut fills: HashMap<String, u64> = sources.fields.iter().map(|f| (f.clone(), 0)).collect();
    let mut domains: HashMap<String, u64> = HashMap::new();
    let mut languages = Languages::default();
    let (mut audience, mut outside, mut excluded) = (0u64, 0u64, 0u64);
    for item in sources.stream() {
        let (path, why) = match item? {
            Item::Member(r) => {
                audience += 1;
                match r.language() {
                    Some(tag) => *languages.asked.entry(tag).or_default() += 1,
                    None => languages.none += 1,
                }
                if let Some(v) = &mut versions {
                    v.count(&r);
                }
                for (name, value) in r.columns.names.iter().zip(&r.values) {
                    if !value.trim().is_empty()
                        && let Some(n) = fills.get_mut(&**name)
                    {
                        *n += 1;
                    }
                }
                let domain = r.email.key().rsplit_once('@').map_or("", |(_, d)| d);
                match domains.get_mut(domain) {
                    Some(n) => *n += 1,
                    None => {
                        domains.insert(domain.to_owned(), 1);
                    }
                }
                (r.columns.path.clone(), None)
            }
            Item::Skipped(s) => (s.path, Some(s.why)),
        };
        let Some(file) = index.get(&path).map(|&i| &mut files[i]) else {
            continue;
        };
        file.rows += 1;
        match why {
            None => file.valid += 1,
            Some(Skip::Outside) => (file.valid, outside) = (file.valid + 1, outside + 1),
            Some(Skip::Excluded { .. }) => (file.valid, excluded) = (file.valid + 1, excluded + 1),
            Some(Skip::Invalid { .. }) => file.invalid += 1,
            Some(Skip::Duplicate { .. }) => file.duplicate += 1,
            Some(Skip::Suppressed { .. }) => file.suppressed += 1,
            Some(Skip::Status(_)) => file.unsubscribed += 1,
        }
    }
    let mut fields: Vec<Fill> = fills
        .into_iter()
        .map(|(field, filled)| Fill {
            percent: percent(filled, audience),
            field,
            filled,
        })
        .collect();
    fields.sort_by(|a, b| a.field.cmp(&b.field));
    let mut at = [0u64; 3];
    for (domain, n) in &domains {
        match Provider::of(domain) {
            Some(Provider::Gmail) => at[0] += n,
            Some(Provider::YahooAol) => at[1] += n,
            Some(Provider::Microsoft) => at[2] += n,
            None => {}
        }
    }
    let providers = ["gmail", "yahoo_aol", "microsoft"]
        .into_iter()
        .zip(at)
        .map(|(name, n)| (name, percent(n, audience)))
        .collect();
    if let Some(v) = versions {
        languages.default = Some(v.default_lang().to_owned());
        languages.versions = Some(v.per_lang());
        languages.no_variant = Some(v.unmatched);
    }
    let mut top: Vec<(String, u64)> = domains.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let top_domains = top
        .into_iter()
        .take(TOP_DOMAINS)
        .map(|(domain, members)| Domain {
            percent: percent(members, audience),
            domain,
            members,
        })
        .collect();
    Ok(Survey {
        files,
        audience,
        segment: segment.map(str::to_owned),
        outside_segment: outside,
        excluded,
        fields,
        languages,
        top_domains,
        providers,
    })
}

impl std::fmt::Display for Survey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in &self.files {
            writeln!(
                f,
                "{} ({}): {} rows — {} valid, {} invalid, {} duplicate, {} suppressed, {} unsubscribed",
                c.path, c.format, c.rows, c.valid, c.invalid, c.duplicate, c.suppressed, c.unsubscribed
            )?;
        }
        write!(f, "audience: {} members", self.audience)?;
        if let Some(s) = &self.segment {
            write!(f, " where `{s}` ({} outside the segment)", self.outside_segment)?;
        }
        if self.excluded > 0 {
            write!(f, ", {} excluded by --exclude", self.excluded)?;
        }
        writeln!(f)?;
        writeln!(f, "fields (filled for how many of the audience):")?;
        for x in &self.fields {
            let warn = if x.filled < self.audience {
                "  — empty for some: use `| default(…)` in the newsletter"
            } else {
                ""
            };
            writeln!(f, "  {:<24} {:>5.1}%  ({}){warn}", x.field, x.percent, x.filled)?;
        }
        let l = &self.languages;
        if !l.asked.is_empty() {
            let asked: Vec<String> = l.asked.iter().map(|(t, n)| format!("{t} {n}")).collect();
            writeln!(
                f,
                "languages asked for (`lang` or `language`): {}; {} member{} without one",
                asked.join(", "),
                l.none,
                if l.none == 1 { "" } else { "s" }
            )?;
        }
        if let (Some(versions), Some(default)) = (&l.versions, &l.default) {
            let none = BTreeMap::new();
            let unmatched = l.no_variant.as_ref().unwrap_or(&none);
            writeln!(
                f,
                "versions of the newsletter: {}",
                super::lang::describe(versions, unmatched, default)
            )?;
        }
        writeln!(f, "top receiving domains:")?;
        for d in &self.top_domains {
            writeln!(f, "  {:<32} {:>8}  {:>5.1}%", d.domain, d.members, d.percent)?;
        }
        let p = |k: &str| self.providers.get(k).copied().unwrap_or(0.0);
        writeln!(
            f,
            "at the providers with bulk-sender rules: Gmail {:.1}%, Yahoo/AOL {:.1}%, Microsoft {:.1}% (by address domain)",
            p("gmail"),
            p("yahoo_aol"),
            p("microsoft")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_files_fields_and_providers() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("m.csv");
        std::fs::write(
            &list,
            "email,first_name,status\na@gmail.com,Ann,\nb@yahoo.com,,\nnot-an-address,,\nA@gmail.com,,\nc@example.org,Cy,unsubscribed\nd@hotmail.com,Di,\n",
        )
        .unwrap();
        let sources = Sources::open(&[list], &[]).unwrap();
        let s = survey(&sources, None, None).unwrap();
        let f = &s.files[0];
        assert_eq!(
            (f.rows, f.valid, f.invalid, f.duplicate, f.unsubscribed),
            (6, 3, 1, 1, 1)
        );
        assert_eq!(s.audience, 3);
        let first = s.fields.iter().find(|x| x.field == "first_name").unwrap();
        assert_eq!((first.filled, first.percent), (2, 66.7));
        assert_eq!(s.top_domains[0].domain, "gmail.com");
        assert_eq!(
            (s.providers["gmail"], s.providers["yahoo_aol"], s.providers["microsoft"]),
            (33.3, 33.3, 33.3)
        );
    }
}
