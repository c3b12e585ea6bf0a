//! `bulletin check`: every problem with a newsletter, its lists and the settings, before
//! anything is sent. Exits non-zero when there are errors. The lists are streamed: findings
//! about rows are printed as they are read, so a million-row list needs no more memory.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;

use super::Project;
use crate::bulk::{Audience, Compliance};
use crate::cli::{ListArgs, RelayArgs};
use crate::diagnostic::{Diagnostics, Level};
use crate::list::{Item, Skip};
use crate::paths::DEFAULT_JOURNAL;
use crate::preflight::Preflight;
use crate::settings::Settings;

pub(crate) fn run(
    config: Option<&Path>,
    newsletter: &Path,
    lists: &ListArgs,
    relay: &RelayArgs,
    allow_noncompliant: bool,
    quiet: bool,
) -> Result<ExitCode> {
    let mut p = Project::load(config, newsletter, lists.flags())?;
    Settings::resolve(&p.config, relay, &mut p.diags).review(&p.config, &mut p.diags);
    // `[inbox]`: what send (VERP) and inbox would refuse.
    crate::inbox::settings::resolve(&p.config, &mut p.diags);
    crate::inbox::settings::verp(&p.config, &mut p.diags);
    let file = p.newsletter.path.display().to_string();
    if p.audience.lists.is_empty() {
        p.diags.warning(
            Some((&file, 0)),
            "no --list given: merge fields were not checked against any list",
        );
    }
    let dns = crate::deliverability::review(&p.config, &p.newsletter, &mut p.diags);
    let (mut errors, mut warnings) = (0, 0);
    let mut print = |d: &crate::diagnostic::Diagnostic| {
        match d.level {
            Level::Error => errors += 1,
            Level::Warning => warnings += 1,
        }
        println!("{d}");
    };
    p.diags.items.iter().for_each(&mut print);

    let (mut recipients, mut skipped, mut outside) = (0usize, 0usize, 0usize);
    let mut pre = Preflight::default();
    let mut audience = Audience::default();
    let mut langs = p.compiled.as_ref().map(crate::audience::lang::Counts::of);
    let mut sent_before = SentBefore::find(&p);
    for item in p.sources.stream() {
        match item? {
            Item::Member(r) => {
                recipients += 1;
                audience.add(&r.email);
                if let Some(before) = &mut sent_before {
                    before.see(&r);
                }
                if let Some(langs) = &mut langs {
                    langs.count(&r);
                }
                if let (Some(compiled), Some(letterhead)) = (&p.compiled, &p.letterhead) {
                    pre.check(compiled, letterhead, &r);
                }
            }
            Item::Skipped(s) if matches!(s.why, Skip::Outside | Skip::Excluded { .. }) => outside += 1,
            Item::Skipped(s) => {
                skipped += 1;
                if matches!(s.why, Skip::Invalid { .. } | Skip::Duplicate { .. }) {
                    let msg = s.to_string();
                    let (at, rest) = msg.split_once(": ").unwrap_or(("", &msg));
                    let mut d = Diagnostics::default();
                    d.warning(Some((at, 0)), rest.to_owned());
                    d.items.iter().for_each(&mut print);
                } else if !quiet {
                    println!("note: {s}");
                }
            }
        }
    }
    let mut d = Diagnostics::default();
    if let Some(warning) = sent_before.and_then(|b| b.warning(&p, recipients)) {
        d.warning(Some((&file, 0)), warning);
    }
    if let Some(compiled) = &p.compiled {
        pre.report(compiled, &mut d);
    }
    let settings_file = p.config.source.as_ref().map(|s| s.display().to_string());
    let at = settings_file.as_deref().map(|f| (f, 0));
    audience.review(Compliance::of(&p.config), allow_noncompliant, at, &mut d);
    d.items.iter().for_each(&mut print);

    if let Some(langs) = langs.filter(|l| l.versions() > 1) {
        println!("{}", langs.summary());
    }
    if !quiet && !dns.is_empty() {
        println!("DNS records to publish for deliverability (`bulletin doctor` looks them up and tries the relay):");
        for line in &dns {
            println!("  {line}");
        }
    }
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let mut summary = format!(
        "{file}: {recipients} recipient{}, {}{skipped} row{} skipped; {errors} error{}, {warnings} warning{}",
        plural(recipients),
        if outside > 0 {
            format!("{outside} outside the audience, ")
        } else {
            String::new()
        },
        plural(skipped),
        plural(errors),
        plural(warnings),
    );
    if let Some((size, _)) = pre.largest_html {
        summary.push_str(&format!("; largest HTML part {:.1} KB", size as f64 / 1024.0));
    }
    if let Some((size, _)) = pre.largest_message {
        summary.push_str(&format!(
            "; largest message {:.1} KB with images and attachments",
            size as f64 / 1024.0
        ));
    }
    println!("{summary}");
    Ok(if errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// A campaign the journal shows as finished under the newsletter's id, with another text: the
/// members it reached, so `check` can tell whether `send` would refuse it (every member of the
/// lists reached, see [`super::send::already_sent`]). Only an existing journal is read.
struct SentBefore {
    id: String,
    tally: crate::journal::Tally,
    reached: std::collections::HashMap<crate::list::KeyHash, crate::journal::Status>,
    /// Members of the lists now that the campaign has not reached.
    unreached: usize,
}

impl SentBefore {
    fn find(p: &Project) -> Option<SentBefore> {
        let path = std::env::var_os("BULLETIN_JOURNAL").map_or_else(|| PathBuf::from(DEFAULT_JOURNAL), PathBuf::from);
        if !path.is_file() {
            return None;
        }
        let id = p.newsletter.campaign_id();
        let journal = crate::journal::Journal::open(&path).ok()?;
        let campaign = journal.campaign(&id).ok()??;
        if campaign.fingerprint == p.newsletter.fingerprint {
            return None;
        }
        let tally = journal.tally(&id).ok()?;
        let reached = journal.done(&id).ok()?;
        tally.finished().then_some(SentBefore {
            id,
            tally,
            reached,
            unreached: 0,
        })
    }

    fn see(&mut self, member: &crate::list::Recipient) {
        if !self.reached.contains_key(&crate::list::key_hash(member.email.key())) {
            self.unreached += 1;
        }
    }

    /// The warning, when `send` would refuse: nobody on the lists left to reach.
    fn warning(&self, p: &Project, recipients: usize) -> Option<String> {
        (recipients > 0 && self.unreached == 0)
            .then(|| super::send::already_sent(&self.id, &self.tally, &p.newsletter.path))
    }
}
