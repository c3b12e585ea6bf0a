//! `bulletin send`: the steps of a run, in order — [`Loaded::load`] the newsletter, lists and
//! settings; for a dry run, [`dry_run`] into an outbox; otherwise [`Plan::make`] (journal,
//! campaign, preflight of every member), [`Plan::show`] and [`confirm`], then [`deliver`]
//! through the relay, and [`conclude`] with the summary and the exit code.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Result, bail};

use super::{Project, about_journal};
use crate::audience::Changed;
use crate::bulk::Compliance;
use crate::cli::SendArgs;
use crate::diagnostic::{Diagnostics, Level};
use crate::inbox::verp::Verp;
use crate::journal::{Campaign, Journal};
use crate::list::Sources;
use crate::message::Letterhead;
use crate::newsletter::Newsletter;
use crate::paths::DEFAULT_JOURNAL;
use crate::preflight::Preflight;
use crate::render::Compiled;
use crate::send::outbox::{self, EmlFolder, Mbox, Outbox};
use crate::send::progress::Progress;
use crate::send::rate::{Clock, Limits, SystemClock};
use crate::send::select::{Counts, RetryFailed, Selection};
use crate::send::smtp::Relay;
use crate::send::{Delivery, Stop, Summary};
use crate::settings::Settings;
use crate::shard::Shard;
use crate::{EXIT_INTERRUPTED, EXIT_SOME_FAILED};

/// Set by the first Ctrl-C; the second exits at once.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub(crate) fn run(config: Option<&Path>, args: &SendArgs, quiet: bool) -> Result<ExitCode> {
    let mut loaded = Loaded::load(config, args, quiet)?;
    if args.dry_run {
        return dry_run(&loaded, args);
    }
    let plan = Plan::make(&loaded, args, quiet)?;
    loaded.bounce_to(&plan.campaign.id);
    plan.show(quiet && args.yes);
    if plan.counts.jobs == 0 {
        println!(
            "nothing to send: every member of {} is already sent, failed or uncertain",
            plan.campaign.id
        );
        return Ok(ExitCode::SUCCESS);
    }
    if !confirm(&plan, args)? {
        eprintln!("not sent");
        return Ok(ExitCode::SUCCESS);
    }
    let ran = deliver(&loaded, plan, quiet)?;
    conclude(&ran, &loaded.newsletter)
}

/// The newsletter compiled, its lists opened and the delivery settings resolved, with no
/// error among them.
struct Loaded {
    /// The campaign fingerprint: the newsletter's, with the audience folded in.
    fingerprint: String,
    newsletter: Newsletter,
    /// The newsletter's text and its variants', kept in the journal for `archive`.
    source: crate::journal::Source,
    sources: Sources,
    compiled: Compiled,
    letterhead: Letterhead,
    settings: Settings,
    /// What the bulk-sender rules need, and whether `--allow-noncompliant` waives them.
    compliance: Compliance,
    allow_noncompliant: bool,
    /// `[inbox] bounce_address`: the envelope sender becomes `bounces+TOKEN@…` per member.
    verp: Option<std::sync::Arc<Verp>>,
}

impl Loaded {
    /// Loads everything and prints the warnings; any error stops here, before anything is sent.
    fn load(config: Option<&Path>, args: &SendArgs, quiet: bool) -> Result<Loaded> {
        let Project {
            config,
            audience,
            newsletter,
            source,
            sources,
            compiled,
            letterhead,
            mut diags,
        } = Project::load(config, &args.newsletter, args.lists.flags())?;
        if audience.lists.is_empty() {
            bail!("send needs at least one --list (or `audience: {{ lists: [...] }}` in the front matter)");
        }
        let settings = Settings::resolve(&config, &args.relay, &mut diags);
        let verp = crate::inbox::settings::verp(&config, &mut diags).map(std::sync::Arc::new);
        let diags = diags.into_result()?;
        let (Some(compiled), Some(mut letterhead)) = (compiled, letterhead) else {
            bail!("the newsletter did not compile; run `bulletin check` for details");
        };
        if args.test {
            letterhead.subject_prefix = config.test_subject_prefix.clone().unwrap_or_else(|| "[Test] ".into());
        }
        if !quiet {
            for d in &diags.items {
                eprintln!("{d}");
            }
        }
        Ok(Loaded {
            compliance: Compliance::of(&config),
            allow_noncompliant: args.allow_noncompliant,
            fingerprint: audience.fingerprint(&newsletter.fingerprint),
            newsletter,
            source,
            sources,
            compiled,
            letterhead,
            settings,
            verp,
        })
    }

    /// With VERP, makes each member's envelope sender carry their token for `campaign`.
    fn bounce_to(&mut self, campaign: &str) {
        if let Some(verp) = self.verp.clone() {
            let campaign = campaign.to_owned();
            self.letterhead.envelope_sender = Some(std::sync::Arc::new(move |e| verp.address(&campaign, e.key())));
        }
    }

    /// Pass one over the lists: personalises every member `selection` picks, keeping none;
    /// any failure aborts with nothing sent. When some members need SMTPUTF8, `relay` (none
    /// on a dry run) is asked whether it offers it; if not, `selection` skips them from now
    /// on, with a warning naming their rows. Returns how the rows were sorted, and the plan's
    /// note when `--allow-noncompliant` overrides a bulk-sender rule.
    fn preflight(&self, selection: &mut Selection, relay: Option<&Relay>) -> Result<(Counts, Option<String>)> {
        let (mut counts, mut pre) = self.preflight_pass(selection)?;
        if pre.smtputf8_members() > 0
            && let Some(relay) = relay
        {
            let offered = relay
                .offers_smtputf8()
                .map_err(|e| anyhow::anyhow!("{e} ({}); nothing was sent", relay.describe()))?;
            pre.relay_smtputf8 = Some(offered);
            if !offered {
                // Skipping them changes who --limit picks: sort the rows again.
                selection.skip_smtputf8 = true;
                counts = self.preflight_pass(selection)?.0;
            }
        }
        let note = self.judge(&pre, &counts)?;
        Ok((counts, note))
    }

    fn preflight_pass(&self, selection: &Selection) -> Result<(Counts, Preflight)> {
        let mut pre = Preflight::default();
        let mut jobs = selection.jobs(&self.sources);
        for r in jobs.by_ref() {
            pre.check(&self.compiled, &self.letterhead, &r?);
        }
        Ok((jobs.counts, pre))
    }

    /// Prints the preflight's warnings; its errors, if any, are the error returned. Returns
    /// the note for the plan when `--allow-noncompliant` overrides a bulk-sender rule.
    fn judge(&self, pre: &Preflight, counts: &Counts) -> Result<Option<String>> {
        let mut diags = Diagnostics::default();
        pre.report(&self.compiled, &mut diags);
        let note = counts
            .audience
            .review(self.compliance, self.allow_noncompliant, None, &mut diags);
        for d in diags.items.iter().filter(|d| d.level == Level::Warning) {
            eprintln!("{d}");
        }
        diags
            .into_result()
            .map_err(|e| anyhow::anyhow!("{e:#}\nnothing was sent"))?;
        Ok(note)
    }

    /// Fills `outbox` with the members `selection` picks and publishes it, or drops it (and
    /// what it holds) on any error or failed member.
    fn dry_run_into(&self, outbox: impl Outbox, selection: &Selection) -> Result<(usize, Counts)> {
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let mut jobs = selection.jobs(&self.sources);
        let filled = outbox::fill(&outbox, &mut jobs, &self.compiled, &self.letterhead, threads)?;
        if let Some(note) = self.judge(&filled.preflight, &jobs.counts)? {
            eprintln!("note: {note}");
        }
        outbox.publish()?;
        Ok((filled.written, jobs.counts))
    }
}

/// `--dry-run`: every message built and written to the outbox — an `.eml` folder or, with
/// `--mbox`, one mbox file; the journal is not touched. One pass over the lists, on every
/// core, is the preflight and the build; the outbox appears only if the preflight found no
/// error, with the same diagnostics as a send's preflight.
fn dry_run(loaded: &Loaded, args: &SendArgs) -> Result<ExitCode> {
    let selection = Selection {
        shard: args.shard,
        limit: args.limit,
        ..Selection::default()
    };
    let (place, (written, counts)) = match &args.mbox {
        Some(file) => (file.clone(), loaded.dry_run_into(Mbox::create(file)?, &selection)?),
        None => {
            let dir = args
                .out
                .clone()
                .unwrap_or_else(|| crate::paths::dry_run_dir(&loaded.newsletter.campaign_id()));
            let folder = EmlFolder::create(&dir)?;
            (dir, loaded.dry_run_into(folder, &selection)?)
        }
    };
    let outside = match counts.outside {
        0 => String::new(),
        n => format!(", {n} outside the audience"),
    };
    println!(
        "dry run: wrote {} to {} (nothing sent; journal untouched; {} skipped{outside})",
        count(written, "message"),
        place.display(),
        count(counts.skipped, "row"),
    );
    Ok(ExitCode::SUCCESS)
}

/// What this run will do: the campaign as recorded, who it sends to, through which relay.
struct Plan {
    campaign: Campaign,
    test: bool,
    journal: Journal,
    journal_path: PathBuf,
    selection: Selection,
    counts: Counts,
    /// `--retry-failed`'s pattern (empty: every failed member).
    retry_failed: Option<String>,
    shard: Option<Shard>,
    relay: Relay,
    rate_text: String,
    concurrency: usize,
    /// The newsletter or its audience changed since the campaign began.
    changed: Option<Changed>,
    /// Members a stopped run left in flight, now `uncertain`.
    recovered: usize,
    /// `--allow-noncompliant` overrode a bulk-sender rule: what the plan says about it.
    noncompliant: Option<String>,
    clock: SystemClock,
}

impl Plan {
    /// Opens the journal, finds or names the campaign, and runs the preflight.
    fn make(loaded: &Loaded, args: &SendArgs, quiet: bool) -> Result<Plan> {
        let relay = loaded.settings.relay()?;
        let clock = SystemClock::default();
        let journal_path = journal_path(&args.journal, args.shard);
        let journal = Journal::open(&journal_path).map_err(|e| about_journal(e, &journal_path))?;
        let base_id = loaded.newsletter.campaign_id();
        let id = if args.test {
            format!("{base_id}+test-{}", clock.unix_ms())
        } else {
            base_id
        };
        let previous = journal.campaign(&id)?;
        let changed = previous
            .as_ref()
            .and_then(|c| crate::audience::changed(&c.fingerprint, &loaded.fingerprint));
        let recovered = journal.recover(&id)?;
        let mut selection = Selection {
            done: journal.done(&id)?,
            retry: match &args.retry_failed {
                Some(pattern) => RetryFailed::new(pattern).pick(journal.failed(&id)?),
                None => std::collections::HashSet::new(),
            },
            shard: args.shard,
            resend_uncertain: args.resend_uncertain,
            limit: args.limit,
            skip_smtputf8: false,
        };
        let (counts, noncompliant) = loaded.preflight(&mut selection, Some(&relay))?;
        if changed.is_some() && !args.allow_changed && counts.jobs == 0 && args.retry_failed.is_none() {
            bail!("{}", already_sent(&id, &journal.tally(&id)?, &loaded.newsletter.path));
        }
        if !quiet && counts.skipped > 0 {
            eprintln!(
                "{} skipped (unsubscribed, suppressed, invalid or duplicate; `bulletin check` lists them)",
                count(counts.skipped, "row")
            );
        }
        let campaign = Campaign {
            id,
            subject: format!(
                "{}{}",
                loaded.letterhead.subject_prefix,
                super::subject_as_seen(
                    &loaded.compiled,
                    &loaded.sources,
                    loaded.newsletter.front.subject.as_deref().unwrap_or_default()
                )
            ),
            fingerprint: loaded.fingerprint.clone(),
            newsletter: loaded.newsletter.path.display().to_string(),
            started: previous.map_or_else(|| clock.unix_ms(), |c| c.started),
        };
        Ok(Plan {
            campaign,
            test: args.test,
            journal,
            journal_path,
            selection,
            counts,
            retry_failed: args.retry_failed.clone(),
            shard: args.shard,
            relay,
            rate_text: loaded.settings.rate_text(),
            concurrency: loaded.settings.policy.concurrency,
            changed,
            recovered,
            noncompliant,
            clock,
        })
    }

    /// How many of the members to send to failed earlier, under `--retry-failed`.
    fn retried_text(&self) -> String {
        match self.retry_failed.as_deref() {
            None => String::new(),
            Some("") => format!(" ({} of them failed earlier: --retry-failed)", self.counts.retried),
            Some(pattern) => format!(
                " ({} of them failed earlier with a reply containing {pattern:?}: --retry-failed)",
                self.counts.retried
            ),
        }
    }

    /// Prints the plan on stderr (unless `silent`).
    fn show(&self, silent: bool) {
        if silent {
            return;
        }
        let c = &self.counts;
        let concurrency = self.concurrency;
        let mut lines = vec![
            format!("subject:    {}", self.campaign.subject),
            format!(
                "campaign:   {}{}",
                self.campaign.id,
                if self.test { " (test send, recorded apart)" } else { "" }
            ),
            format!(
                "recipients: {} to send now{}, {} already sent, {} failed earlier{}, {} skipped{}{}{}",
                c.jobs,
                self.retried_text(),
                c.sent_before,
                c.failed_before,
                match &self.retry_failed {
                    _ if c.failed_before == 0 => "",
                    None => " (--retry-failed sends to them again)",
                    Some(_) => " (not retried)",
                },
                c.skipped,
                if c.outside > 0 {
                    format!(", {} outside the audience", c.outside)
                } else {
                    String::new()
                },
                self.shard.map_or(String::new(), |s| format!(
                    ", {} in other shards (this is shard {s})",
                    c.other_shard
                )),
                if c.over_limit > 0 {
                    format!(", {} left for a later run by --limit", c.over_limit)
                } else {
                    String::new()
                },
            ),
            format!(
                "relay:      {} at {}, {concurrency} session{}",
                self.relay.describe(),
                self.rate_text,
                if concurrency == 1 { "" } else { "s" }
            ),
        ];
        if c.uncertain > 0 || self.recovered > 0 {
            lines.push(format!(
                "uncertain:  {} member(s) may or may not have received it (a run stopped mid-send); \
                 not resent — check the relay's logs, then use --resend-uncertain if they did not",
                c.uncertain
            ));
        }
        if let Some(note) = &self.noncompliant {
            lines.push(format!("override:   {note}"));
        }
        if let Some(what) = self.changed {
            lines.push(format!(
                "warning:    {} since this campaign began; members already sent got the earlier version",
                changed_text(what)
            ));
        }
        for line in &lines {
            eprintln!("{line}");
        }
    }
}

/// "1 row", "2 rows".
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A campaign is *already sent* when every member of the lists has an outcome in its journal;
/// with another text now, this is not a resume but a new issue that kept the old id (a copied
/// file, an unchanged `id:`), and sending would skip everyone who got the old one. A campaign
/// with members still to reach (stopped, `--limit`ed) and edited stays a resume, confirmed on
/// a terminal or with `--allow-changed`.
pub(crate) fn already_sent(id: &str, tally: &crate::journal::Tally, newsletter: &Path) -> String {
    format!(
        "campaign {id:?} was already sent ({} sent, {} failed) with another text of {}: \
         change `id:` in the front matter or the file name to start a new campaign (nothing sent). \
         To send this text under the same campaign to the members it has not reached, pass --allow-changed",
        tally.sent,
        tally.failed,
        newsletter.display()
    )
}

/// Asks on a terminal; refuses without `--yes` when stdin is not one. A changed newsletter
/// needs `--allow-changed` when nobody can be asked.
fn confirm(plan: &Plan, args: &SendArgs) -> Result<bool> {
    let terminal = std::io::stdin().is_terminal();
    if let Some(what) = plan.changed
        && !args.allow_changed
        && !terminal
    {
        bail!(
            "{} since {} began; pass --allow-changed to resume with the new version (nothing sent)",
            changed_text(what),
            plan.campaign.id
        );
    }
    if args.yes {
        return Ok(true);
    }
    if !terminal {
        bail!("refusing to send without confirmation: stdin is not a terminal; add --yes (nothing sent)");
    }
    eprint!("Send to {} now? [y/N] ", count(plan.counts.jobs, "member"));
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
}

/// What changed in a campaign under way, in words.
fn changed_text(what: Changed) -> &'static str {
    match what {
        Changed::Newsletter => "the newsletter changed",
        Changed::Audience => "the audience (--where, --exclude or the front matter's audience) changed",
        Changed::Both => "the newsletter and its audience (--where, --exclude) changed",
    }
}

/// What a delivery did, for [`conclude`].
struct Ran {
    summary: Summary,
    campaign: String,
    sent_before: usize,
    journal_path: PathBuf,
}

/// Connects and authenticates once before touching anyone, records the campaign and its
/// pending members, then sends.
fn deliver(loaded: &Loaded, plan: Plan, quiet: bool) -> Result<Ran> {
    let Plan {
        campaign,
        mut journal,
        journal_path,
        selection,
        counts,
        relay,
        clock,
        ..
    } = plan;
    let session = relay
        .connect()
        .map_err(|e| anyhow::anyhow!("{e} ({}); nothing was sent", relay.describe()))?;
    let rates = &loaded.settings.rates;
    let now = clock.unix_ms();
    let longest = rates.iter().map(|r| r.per).max().unwrap_or_default();
    let mut record = || -> Result<Vec<i64>> {
        let members = selection.jobs(&loaded.sources).map(|r| {
            r.map(|r| {
                let lang = loaded.compiled.variant_for(&r).lang.clone();
                (r.email.key().to_owned(), r.location(), Some(lang))
            })
        });
        journal.keep_source(&campaign.id, &loaded.source)?;
        journal.start_in(&campaign, members, now)?;
        journal.handoffs_since(now - i64::try_from(longest.as_millis()).unwrap_or(i64::MAX))
    };
    let history = record().map_err(|e| {
        anyhow::anyhow!(
            "cannot write the journal {}: {e:#}; nothing was sent",
            journal_path.display()
        )
    })?;
    let limits = Limits::new(rates, clock.clone(), &history);
    let journal = Mutex::new(journal);

    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            eprintln!("\nstopped at once; the messages in flight will be reported `uncertain`");
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
        eprintln!("\nfinishing the messages in flight… (Ctrl-C again to stop at once)");
    });
    let limit_per_sec = rates
        .iter()
        .map(super::super::send::rate::Rate::per_second)
        .reduce(f64::min);
    let progress = Progress::new(counts.jobs, quiet, limit_per_sec, &campaign.subject);
    let delivery = Delivery {
        relay: &relay,
        compiled: &loaded.compiled,
        letterhead: &loaded.letterhead,
        journal: &journal,
        campaign: &campaign.id,
        limits: &limits,
        clock,
        policy: loaded.settings.policy.clone(),
        interrupted: &INTERRUPTED,
        progress: &progress,
    };
    let summary = delivery.run(selection.jobs(&loaded.sources), counts.jobs, session);
    progress.finish();
    Ok(Ran {
        summary,
        campaign: campaign.id,
        sent_before: counts.sent_before,
        journal_path,
    })
}

/// Prints the summary and how to go on; the exit code says how the run ended.
fn conclude(ran: &Ran, newsletter: &Newsletter) -> Result<ExitCode> {
    let summary = &ran.summary;
    println!(
        "{}: {} sent, {} failed, {} pending, {} uncertain this run ({} sent earlier)",
        ran.campaign, summary.sent, summary.failed, summary.pending, summary.uncertain, ran.sent_before
    );
    let resume = resume_command(std::env::args());
    match &summary.stopped {
        Some(Stop::Interrupted) => {
            eprintln!("interrupted; to resume: {resume}");
            return Ok(ExitCode::from(EXIT_INTERRUPTED));
        }
        Some(Stop::QuotaSpent { rate, resume_at }) => {
            eprintln!(
                "{rate} quota reached; resume after {} with: {resume}",
                crate::when::local_time(*resume_at)
            );
            return Ok(ExitCode::SUCCESS);
        }
        Some(Stop::Relay(why)) => bail!("stopped: {why}; to resume: {resume}"),
        Some(Stop::TooManyFailures(why)) => {
            bail!("stopped: {why} (is the relay refusing everything?); see `bulletin report`; to resume: {resume}")
        }
        Some(Stop::Journal(why)) => bail!(
            "stopped: cannot write the journal {}: {why}; once it can be written, to resume: {resume}",
            ran.journal_path.display()
        ),
        Some(Stop::Lists(why)) => bail!("stopped: {why} (did a list change during the send?); to resume: {resume}"),
        None => {}
    }
    if summary.failed > 0 || summary.pending > 0 {
        eprintln!(
            "see `bulletin report {}`; run the same command again to retry the pending ones",
            newsletter.path.display()
        );
        return Ok(ExitCode::from(EXIT_SOME_FAILED));
    }
    Ok(ExitCode::SUCCESS)
}

/// The journal to use: each shard keeps its own unless one is named.
fn journal_path(given: &Path, shard: Option<Shard>) -> PathBuf {
    match shard {
        Some(s) if given == Path::new(DEFAULT_JOURNAL) => crate::paths::shard_journal(s.index, s.count),
        _ => given.to_owned(),
    }
}

/// The command line that resumes this run, quoted by the shell's rules.
fn resume_command(argv: impl Iterator<Item = String>) -> String {
    let argv: Vec<String> = argv.collect();
    shlex::try_join(argv.iter().map(String::as_str)).unwrap_or_else(|_| argv.join(" "))
}

#[cfg(test)]
mod tests {
    use super::resume_command;

    #[test]
    fn the_resume_hint_quotes_by_shell_rules() {
        let argv = ["bulletin", "send", "news letters/it's.md", "--list", "a$b.csv", "--yes"];
        let line = resume_command(argv.iter().map(|s| (*s).to_owned()));
        assert_eq!(shlex::split(&line).unwrap(), argv);
        assert!(line.starts_with("bulletin send "), "{line}");
    }
}
