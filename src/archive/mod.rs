//! `bulletin archive`: the newsletter on the web. One page per campaign the journal says was
//! sent, rendered from the newsletter the journal kept when it went out (the file as it is now
//! for journals from before that, with a warning if it changed) for nobody in particular (merge fields take their defaults, no member data,
//! no unsubscribe block), an index newest first, and an Atom feed. Every link between the pages
//! is relative, so the folder works from `file://` and from any static host; with
//! `[archive] base_url` the pages and the feed also carry their absolute addresses.

mod feed;
mod pages;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::audience::Changed;
use crate::config::Config;
use crate::diagnostic::Diagnostics;
use crate::journal::{Campaign, Journal, Source};
use crate::newsletter::Newsletter;
use crate::paths::archive_slug;
use crate::render::Compiled;

/// One issue as the archive shows it.
#[derive(Debug, Clone)]
pub(crate) struct Issue {
    pub campaign: String,
    /// Folder name under the archive, and the page's path: `SLUG/index.html`.
    pub slug: String,
    pub subject: String,
    pub preheader: Option<String>,
    /// When the campaign began, Unix milliseconds.
    pub started: i64,
    /// The page's absolute address, with `[archive] base_url`.
    pub url: Option<String>,
    /// The message's HTML for nobody in particular.
    pub html: String,
}

/// What [`write`] did.
#[derive(Debug, Default)]
pub(crate) struct Written {
    pub issues: usize,
    /// Campaigns left out, each with why.
    pub skipped: Vec<String>,
    /// Issues shown from a newsletter file that changed since it was sent (journals from
    /// before bulletin kept what it sent).
    pub warnings: Vec<String>,
}

/// Writes the archive of the campaigns in `journal` into `out`.
pub(crate) fn write(config: &Config, journal: &Path, out: &Path) -> Result<Written> {
    let mut written = Written::default();
    let journal = if journal.exists() {
        Some(Journal::open(journal)?)
    } else {
        None
    };
    let campaigns = match &journal {
        Some(j) => j.sent_campaigns()?,
        None => Vec::new(),
    };
    let mut issues = Vec::new();
    for c in &campaigns {
        let kept = match &journal {
            Some(j) => j.source(&c.id)?,
            None => None,
        };
        match issue(config, c, kept, &mut written.warnings) {
            Ok(i) => issues.push(i),
            Err(why) => written.skipped.push(format!("{}: {why:#}", c.id)),
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for i in &issues {
        let dir = out.join(&i.slug);
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        write_file(&dir.join("index.html"), &pages::issue(config, i))?;
    }
    write_file(&out.join("index.html"), &pages::index(config, &issues))?;
    write_file(&out.join("feed.xml"), &feed::atom(config, &issues)?)?;
    written.issues = issues.len();
    Ok(written)
}

/// Renders campaign `c` from the newsletter it sent (`kept` by the journal), or else from its
/// file as it is now.
fn issue(config: &Config, c: &Campaign, kept: Option<Source>, warnings: &mut Vec<String>) -> Result<Issue> {
    let path = PathBuf::from(&c.newsletter);
    let n = match kept {
        Some(kept) => Newsletter::parse(&kept.newsletter, &path)
            .with_context(|| format!("cannot read the journal's copy of {}", path.display()))?,
        None => {
            let n = Newsletter::load(&path).with_context(|| {
                format!(
                    "cannot read its newsletter {} (this journal predates kept copies of what was sent)",
                    path.display()
                )
            })?;
            let variants = crate::audience::lang::variants(&n).unwrap_or_default();
            let now = crate::audience::lang::fingerprint(&n, &variants);
            if matches!(
                crate::audience::changed(&c.fingerprint, &now),
                Some(Changed::Newsletter | Changed::Both)
            ) {
                warnings.push(format!(
                    "{}: {} changed since it was sent, and this journal (from before bulletin kept what it sent) \
                     has no copy: the archive shows the file as it is now",
                    c.id,
                    path.display()
                ));
            }
            n
        }
    };
    let mut diags = Diagnostics::default();
    let compiled = Compiled::compile_for_web(&n, config, &mut diags).ok_or_else(|| {
        anyhow::anyhow!(
            "{}",
            diags
                .items
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;
    let rendered = compiled
        .generic()
        .map_err(|e| anyhow::anyhow!("{} (give the field a default(...) to archive it)", e.message))?;
    let preheader = n.front.preheader.as_deref().map(|p| {
        // The preheader may hold merge fields: take it from the rendered page's hidden line.
        hidden_preheader(&rendered.html).unwrap_or_else(|| p.to_owned())
    });
    let campaign = n.campaign_id();
    Ok(Issue {
        slug: archive_slug(&c.id),
        subject: rendered.subject,
        preheader,
        started: c.started,
        url: crate::render::web_url(config, &campaign),
        html: rendered.html,
        campaign: c.id.clone(),
    })
}

/// The text of the message's hidden preview line, as rendered.
fn hidden_preheader(html: &str) -> Option<String> {
    let start = html.find("class=\"preheader\"")?;
    let open = start + html[start..].find('>')? + 1;
    let text = &html[open..];
    let end = ["&#847;", "\u{34f}", "&#8199;", "\u{2007}", "<"]
        .iter()
        .filter_map(|m| text.find(m))
        .min()?;
    let text = &text[..end];
    let text = text.trim();
    (!text.is_empty()).then(|| unescape(text))
}

/// Undoes the HTML escaping of a text node.
fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// A date as the pages show it: `2 December 2026`.
pub(crate) fn long_date(unix_ms: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(unix_ms.div_euclid(1000)).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!("{} {} {}", t.day(), t.month(), t.year())
}

pub(crate) use crate::when::rfc3339;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_read_well() {
        assert_eq!(long_date(1_764_651_600_000), "2 December 2025");
        assert_eq!(rfc3339(1_764_651_600_000), "2025-12-02T05:00:00Z");
    }

    #[test]
    fn the_preheader_is_read_back_from_the_page() {
        let html = "<div class=\"preheader\" style=\"display:none\">Our agenda &amp; plan&#8199;&#65279;</div>";
        assert_eq!(hidden_preheader(html).as_deref(), Some("Our agenda & plan"));
    }
}
