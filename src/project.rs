//! Everything a command loads for a newsletter: settings, the newsletter, its lists, the
//! compiled templates and the letterhead. Shared by the commands and the live preview.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Result, bail};

use crate::audience::{Audience, Flags};
use crate::config::Config;
use crate::diagnostic::Diagnostics;
use crate::email::Email;
use crate::list::{Found, Pick, Recipient, Sources};
use crate::message::Letterhead;
use crate::newsletter::Newsletter;
use crate::render::Compiled;
use crate::unsubscribe::Unsubscribe;

/// Everything loaded for a newsletter and its lists. The lists are opened, not read: commands
/// stream them (`sources.stream()`), so memory does not grow with the number of members.
pub(crate) struct Project {
    pub config: Config,
    /// The lists, segment and exclusions: flags, else the front matter.
    pub audience: Audience,
    pub newsletter: Newsletter,
    /// The text of the newsletter and of its language variants as loaded: what a send keeps
    /// in the journal for `archive`.
    pub source: crate::journal::Source,
    pub sources: Sources,
    pub compiled: Option<Compiled>,
    pub letterhead: Option<Letterhead>,
    pub diags: Diagnostics,
}

impl Project {
    /// Loads settings, newsletter and lists and compiles. File-level failures (unreadable
    /// settings, broken front matter, a list that is not UTF-8) are returned as errors;
    /// everything else is collected in `diags`.
    pub(crate) fn load(config: Option<&Path>, newsletter: &Path, flags: Flags<'_>) -> Result<Project> {
        let config = Config::require(config)?;
        let mut newsletter = Newsletter::load(newsletter)?;
        let variants = crate::audience::lang::variants(&newsletter)?;
        newsletter.fingerprint = crate::audience::lang::fingerprint(&newsletter, &variants);
        let audience = Audience::resolve(flags, newsletter.front.audience.as_ref(), |p| config.resolve(p));
        let lists: &[PathBuf] = &audience.lists;
        let mut sources = Sources::open_as(lists, &config.suppress_files(), flags.format)?;
        let mut diags = Diagnostics::default();
        if let Err(message) = audience.install(&mut sources)? {
            let file = newsletter.path.display().to_string();
            let at = (flags.segment.is_none() && newsletter.front.audience.is_some())
                .then(|| (file.as_str(), newsletter.line_of_key("audience")));
            diags.error(at, message);
        }
        // The campaign goes into each member's token, so `serve` records which issue the
        // unsubscribe came from.
        let unsubscribe = match Unsubscribe::from_config(&config) {
            Ok(u) => u.map(|u| Arc::new(u.for_campaign(&newsletter.campaign_id()))),
            Err(e) => {
                diags.error(config_at(&config).as_deref().map(|f| (f, 0)), format!("{e:#}"));
                None
            }
        };
        let fields = (!lists.is_empty()).then_some(sources.fields.as_slice());
        let mut compiled = Compiled::compile(&newsletter, &config, fields, unsubscribe.clone(), &mut diags);
        // The variants compiled, in the order of `compiled.variants` (their versions).
        let mut kept: Vec<&Newsletter> = Vec::new();
        for (tag, variant) in &variants {
            let v = Compiled::compile(variant, &config, fields, unsubscribe.clone(), &mut diags);
            if let (Some(c), Some(v)) = (compiled.as_mut(), v) {
                c.add_variant(tag, v);
                kept.push(variant);
            }
        }
        let source = crate::journal::Source {
            newsletter: newsletter.source.clone(),
            variants: variants
                .iter()
                .map(|(tag, v)| (tag.clone(), v.source.clone()))
                .collect(),
        };
        let letterhead = match Letterhead::with_variants(&newsletter, &kept, &config, unsubscribe) {
            Ok(mut l) => {
                if let Some(c) = &compiled {
                    l.embed(&c.inline);
                    for (_, v) in &c.variants {
                        l.embed_variant(v.version, &v.inline);
                    }
                }
                Some(l)
            }
            Err(e) => {
                diags.error(None, format!("{e:#}"));
                None
            }
        };
        Ok(Project {
            config,
            audience,
            newsletter,
            source,
            sources,
            compiled,
            letterhead,
            diags,
        })
    }
}

fn config_at(config: &Config) -> Option<String> {
    config.source.as_ref().map(|p| p.display().to_string())
}

/// The member a preview is for: `--row N` (from 1) or `--to ADDRESS`.
pub(crate) fn pick(row: Option<u64>, to: Option<&str>) -> Result<Pick> {
    Ok(match to {
        Some(to) => Pick::Address(Email::parse(to).map_err(|e| anyhow::anyhow!("--to {to:?}: {e}"))?),
        None => match row.unwrap_or(1) {
            0 => bail!("--row counts from 1 (the first member)"),
            n => Pick::Row(n),
        },
    })
}

impl Project {
    /// The member `pick` names, or why they get no message.
    pub(crate) fn member(&self, pick: Pick) -> Result<Recipient> {
        Ok(match (self.sources.find(&pick)?, pick) {
            (Found::Member(r), _) => r,
            (Found::Skipped(s), Pick::Row(n)) => bail!("row {n} will not receive this newsletter: {s}"),
            (Found::Skipped(s), Pick::Address(e)) => bail!("{e} will not receive this newsletter: {s}"),
            (Found::Absent { rows }, Pick::Row(n)) => bail!("--row {n}: the lists have {rows} data rows"),
            (Found::Absent { .. }, Pick::Address(e)) => bail!("{e} is in none of the lists"),
        })
    }
}

/// The member a preview without `--list` is written for: a name, so a bare `{{ first_name }}`
/// renders; any other field must come from a list.
pub(crate) fn invented_member() -> crate::list::Recipient {
    let columns = std::sync::Arc::new(crate::list::Columns {
        path: std::path::PathBuf::from("(invented member)"),
        names: vec!["email".into(), "first_name".into(), "last_name".into()],
        email: 0,
        format: crate::list::Format::Csv,
        raw: 3,
        status: None,
        attributes: None,
    });
    crate::list::Recipient {
        email: crate::email::Email::parse("sam.example@example.org").expect("a valid address"),
        columns,
        line: 2,
        row: 1,
        values: vec!["sam.example@example.org".into(), "Sam".into(), "Example".into()],
    }
}
