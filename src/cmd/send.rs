//! `bulletin send`: preflight every message, confirm, connect and authenticate once, then
//! deliver at the configured rate, recording each outcome in the journal as it happens.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Result, bail};

use super::{Project, about_journal};
use crate::cli::SendArgs;
use crate::diagnostic::Diagnostics;
use crate::journal::{Campaign, Journal};
use crate::list::Sources;
use crate::message::Letterhead;
use crate::paths::DEFAULT_JOURNAL;
use crate::preflight::Preflight;
use crate::private::{private_dir, private_file};
use crate::render::Compiled;
use crate::secret::Secret;
use crate::send::progress::Progress;
use crate::send::rate::{Clock, Limits, SystemClock};
use crate::send::select::{Counts, Selection};
use crate::send::smtp::Relay;
use crate::send::{Delivery, Policy, Stop, parse_rates};
use crate::shard::Shard;
use crate::{EXIT_INTERRUPTED, EXIT_SOME_FAILED};

/// Set by the first Ctrl-C; the second exits at once.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub fn run(config: Option<&Path>, args: &SendArgs, quiet: bool) -> Result<ExitCode> {
    if args.lists.lists.is_empty() {
        bail!("send needs at least one --list");
    }
    let p = Project::load(config, &args.newsletter, &args.lists.lists)?;
    let Project {
        config,
        newsletter,
        sources,
        compiled,
        letterhead,
        diags,
    } = p;
    let diags = diags.into_result()?;
    let (Some(compiled), Some(letterhead)) = (compiled, letterhead) else {
        bail!("the newsletter did not compile; run `bulletin check` for details");
    };
    if !quiet {
        for d in &diags.items {
            eprintln!("{d}");
        }
    }
    let shard = args.shard.as_deref().map(Shard::parse).transpose()?;
    let base_id = newsletter.campaign_id();
    let subject = newsletter.front.subject.clone().unwrap_or_default();

    if args.dry_run {
        let out = args.out.clone().unwrap_or_else(|| crate::paths::dry_run_dir(&base_id));
        let selection = Selection {
            shard,
            limit: args.limit,
            ..Selection::default()
        };
        let counts = preflight(&selection, &sources, &compiled, &letterhead)?;
        private_dir(&out)?;
        for (i, r) in selection.jobs(&sources).enumerate() {
            let r = r?;
            let content = compiled
                .personalise(&r)
                .map_err(|e| anyhow::anyhow!("{}: {}", r.location(), e.message))?;
            let message = letterhead.build(&r, &content, letterhead.message_id())?;
            let name: String = r
                .email
                .key()
                .chars()
                .map(|c| {
                    if c.is_alphanumeric() || "@.-_+".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            private_file(&out.join(format!("{:06}-{name}.eml", i + 1)), &message.formatted())?;
        }
        println!(
            "dry run: wrote {} messages to {} (nothing sent; journal untouched; {} rows skipped)",
            counts.jobs,
            out.display(),
            counts.skipped
        );
        return Ok(ExitCode::SUCCESS);
    }

    // Settings: flag (or its BULLETIN_ variable) > bulletin.toml > default.
    let rate_strings = if args.rate.is_empty() {
        config.smtp.rate.clone()
    } else {
        args.rate.clone()
    };
    let rates = parse_rates(&rate_strings)?;
    let concurrency = args.concurrency.or(config.smtp.concurrency).unwrap_or(1);
    if !(1..=64).contains(&concurrency) {
        bail!("concurrency {concurrency}: use 1 to 64 sessions");
    }
    let Some(url) = args.smtp.clone().or_else(|| config.smtp.url.clone()) else {
        bail!("no SMTP relay: set [smtp] url in bulletin.toml or pass --smtp URL");
    };
    let password = Secret::from_env_or_command(
        "BULLETIN_SMTP_PASSWORD",
        config.smtp.password_command.as_deref(),
        "SMTP password",
    )?;
    let relay = Relay::parse(&url, password, Duration::from_secs(config.smtp.timeout.unwrap_or(60)))
        .map_err(|e| anyhow::anyhow!("{}", without_userinfo(&format!("{e:#}"), &url)))?;
    let policy = Policy {
        concurrency,
        attempts: config.smtp.attempts.unwrap_or(4).max(1),
        retry_delay: Duration::from_secs_f64(config.smtp.retry_delay.unwrap_or(2.0).max(0.0)),
        stop_after_failures: config.smtp.stop_after_failures.unwrap_or(20).max(1),
    };

    let clock = SystemClock::default();
    let journal_path = journal_path(&args.journal, shard);
    let mut journal = Journal::open(&journal_path).map_err(|e| about_journal(e, &journal_path))?;
    let campaign_id = if args.test {
        format!("{base_id}+test-{}", clock.unix_ms())
    } else {
        base_id.clone()
    };
    let previous = journal.campaign(&campaign_id)?;
    let changed = previous
        .as_ref()
        .is_some_and(|c| c.fingerprint != newsletter.fingerprint);
    let recovered = journal.recover(&campaign_id)?;
    let selection = Selection {
        done: journal.done(&campaign_id)?,
        shard,
        resend_uncertain: args.resend_uncertain,
        limit: args.limit,
    };
    let counts = preflight(&selection, &sources, &compiled, &letterhead)?;
    let Counts {
        sent_before,
        failed_before,
        uncertain,
        ..
    } = counts;
    if !quiet && counts.skipped > 0 {
        eprintln!(
            "{} rows skipped (unsubscribed, suppressed, invalid or duplicate; `bulletin check` lists them)",
            counts.skipped
        );
    }

    // The plan, then confirmation.
    let rate_text = if rates.is_empty() {
        "no limit".to_owned()
    } else {
        rate_strings.join(" and ")
    };
    let mut plan = vec![
        format!("subject:    {subject}"),
        format!(
            "campaign:   {campaign_id}{}",
            if args.test { " (test send, recorded apart)" } else { "" }
        ),
        format!(
            "recipients: {} to send now, {sent_before} already sent, {failed_before} failed earlier, {} skipped{}{}",
            counts.jobs,
            counts.skipped,
            shard.map_or(String::new(), |s| format!(
                ", {} in other shards (this is shard {s})",
                counts.other_shard
            )),
            if counts.over_limit > 0 {
                format!(", {} left for a later run by --limit", counts.over_limit)
            } else {
                String::new()
            },
        ),
        format!(
            "relay:      {} at {rate_text}, {concurrency} session{}",
            relay.describe(),
            if concurrency == 1 { "" } else { "s" }
        ),
    ];
    if uncertain > 0 || recovered > 0 {
        plan.push(format!(
            "uncertain:  {uncertain} member(s) may or may not have received it (a run stopped mid-send); \
             not resent — check the relay's logs, then use --resend-uncertain if they did not"
        ));
    }
    if changed {
        plan.push("warning:    the newsletter changed since this campaign began; members already sent got the earlier version".into());
    }
    if !quiet || !args.yes {
        for line in &plan {
            eprintln!("{line}");
        }
    }
    if counts.jobs == 0 {
        println!("nothing to send: every member of {campaign_id} is already sent, failed or uncertain");
        return Ok(ExitCode::SUCCESS);
    }
    let terminal = std::io::stdin().is_terminal();
    if changed && !args.allow_changed && !terminal {
        bail!(
            "the newsletter changed since {campaign_id} began; pass --allow-changed to resume with the new version (nothing sent)"
        );
    }
    if !args.yes {
        if !terminal {
            bail!("refusing to send without confirmation: stdin is not a terminal; add --yes (nothing sent)");
        }
        eprint!("Send to {} members now? [y/N] ", counts.jobs);
        std::io::stderr().flush().ok();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "Yes") {
            eprintln!("not sent");
            return Ok(ExitCode::SUCCESS);
        }
    }

    // Connect and authenticate once before touching anyone.
    let session = relay
        .connect()
        .map_err(|e| anyhow::anyhow!("{e} ({}); nothing was sent", relay.describe()))?;
    let now = clock.unix_ms();
    let longest = rates.iter().map(|r| r.per).max().unwrap_or_default();
    let record = || -> Result<Vec<i64>> {
        let campaign = Campaign {
            id: campaign_id.clone(),
            subject: subject.clone(),
            fingerprint: newsletter.fingerprint.clone(),
            newsletter: newsletter.path.display().to_string(),
            started: previous.map_or(now, |c| c.started),
        };
        let members = selection
            .jobs(&sources)
            .map(|r| r.map(|r| (r.email.key().to_owned(), r.location())));
        journal.start(&campaign, members, now)?;
        journal.handoffs_since(now - longest.as_millis() as i64)
    };
    let history = record().map_err(|e| {
        anyhow::anyhow!(
            "cannot write the journal {}: {e:#}; nothing was sent",
            journal_path.display()
        )
    })?;
    let limits = Limits::new(&rates, clock.clone(), &history);
    let journal = Mutex::new(journal);

    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            eprintln!("\nstopped at once; the messages in flight will be reported `uncertain`");
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
        eprintln!("\nfinishing the messages in flight… (Ctrl-C again to stop at once)");
    });
    let limit_per_sec = rates.iter().map(|r| r.per_second()).reduce(f64::min);
    let progress = Progress::new(counts.jobs, quiet, limit_per_sec);
    let delivery = Delivery {
        relay: &relay,
        compiled: &compiled,
        letterhead: &letterhead,
        journal: &journal,
        campaign: &campaign_id,
        limits: &limits,
        clock,
        policy,
        interrupted: &INTERRUPTED,
        progress: &progress,
    };
    let summary = delivery.run(selection.jobs(&sources), counts.jobs, session);
    progress.finish();

    println!(
        "{campaign_id}: {} sent, {} failed, {} pending, {} uncertain this run ({} sent earlier)",
        summary.sent, summary.failed, summary.pending, summary.uncertain, sent_before
    );
    let resume = resume_command(args);
    match &summary.stopped {
        Some(Stop::Interrupted) => {
            eprintln!("interrupted; to resume: {resume}");
            return Ok(ExitCode::from(EXIT_INTERRUPTED));
        }
        Some(Stop::QuotaSpent { rate, resume_at }) => {
            eprintln!(
                "{rate} quota reached; resume after {} with: {resume}",
                local_time(*resume_at)
            );
            return Ok(ExitCode::SUCCESS);
        }
        Some(Stop::Relay(why)) => bail!("stopped: {why}; to resume: {resume}"),
        Some(Stop::TooManyFailures(why)) => {
            bail!("stopped: {why} (is the relay refusing everything?); see `bulletin report`; to resume: {resume}")
        }
        Some(Stop::Journal(why)) => bail!(
            "stopped: cannot write the journal {}: {why}; once it can be written, to resume: {resume}",
            journal_path.display()
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

/// Pass one over the lists: personalises every member this run would send to, keeping none;
/// any failure aborts with nothing sent. Returns how the rows were sorted.
fn preflight(selection: &Selection, sources: &Sources, compiled: &Compiled, letterhead: &Letterhead) -> Result<Counts> {
    let mut pre = Preflight::default();
    let mut jobs = selection.jobs(sources);
    for r in jobs.by_ref() {
        pre.check(compiled, letterhead, &r?);
    }
    let mut diags = Diagnostics::default();
    pre.report(compiled, &mut diags);
    for d in diags
        .items
        .iter()
        .filter(|d| d.level == crate::diagnostic::Level::Warning)
    {
        eprintln!("{d}");
    }
    diags
        .into_result()
        .map_err(|e| anyhow::anyhow!("{e:#}\nnothing was sent"))?;
    Ok(jobs.counts)
}

/// The journal to use: each shard keeps its own unless one is named.
fn journal_path(given: &Path, shard: Option<Shard>) -> PathBuf {
    match shard {
        Some(s) if given == Path::new(DEFAULT_JOURNAL) => crate::paths::shard_journal(s.index, s.count),
        _ => given.to_owned(),
    }
}

/// `message` with the user part of `url` (what comes before its last `@`) masked wherever the
/// message quotes the URL: a mistyped URL can hold a password, and `Relay::parse` quotes a URL
/// it cannot parse as it is.
fn without_userinfo(message: &str, url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return message.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return message.to_owned();
    };
    if userinfo.is_empty() {
        return message.to_owned();
    }
    let masked = format!("{scheme}://…@{host}");
    let mut out = message
        .replace(&format!("{url:?}"), &format!("{masked:?}"))
        .replace(url, &masked);
    if let Some((_, password)) = userinfo.split_once(':')
        && !password.is_empty()
    {
        let quoted = format!("{password:?}");
        out = out.replace(password, "…").replace(&quoted[1..quoted.len() - 1], "…");
    }
    out
}

fn resume_command(_args: &SendArgs) -> String {
    let argv: Vec<String> = std::env::args()
        .map(|a| if a.contains(' ') { format!("{a:?}") } else { a })
        .collect();
    argv.join(" ")
}

/// `HH:MM` local time (UTC when the offset is unknown) for a Unix-ms instant.
fn local_time(unix_ms: i64) -> String {
    let utc = time::OffsetDateTime::from_unix_timestamp(unix_ms / 1000).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let t = time::UtcOffset::current_local_offset()
        .map(|o| utc.to_offset(o))
        .unwrap_or(utc);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}
