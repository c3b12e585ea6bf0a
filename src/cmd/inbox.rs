//! `bulletin inbox`: opens the mailbox named by a flag or `[inbox] imap`, and runs
//! [`crate::inbox::Run`] over it with the journal, the suppression file and the unsubscribe
//! secret. Exit 0 when the run completed (unmatched messages included), 130 after Ctrl-C.

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Result, bail};

use super::about_journal;
use crate::EXIT_INTERRUPTED;
use crate::cli::InboxArgs;
use crate::config::Config;
use crate::diagnostic::Diagnostics;
use crate::inbox::imap::{Imap, ImapUrl};
use crate::inbox::matching::Matcher;
use crate::inbox::settings::{self, InboxSettings};
use crate::inbox::source::{Maildir, Mbox, Source};
use crate::inbox::{Run, Summary};
use crate::journal::Journal;
use crate::paths::DEFAULT_JOURNAL;
use crate::secret::Secret;
use crate::unsubscribe::Unsubscribe;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub(crate) fn run(config: Option<&Path>, args: &InboxArgs, quiet: bool) -> Result<ExitCode> {
    let config = Config::load(config)?;
    let mut diags = Diagnostics::default();
    let inbox = settings::resolve(&config, &mut diags);
    let verp = settings::verp(&config, &mut diags);
    diags.into_result()?;
    let unsubscribe = Unsubscribe::from_config(&config)?;
    let mut source = open(args, &inbox)?;
    // The journal named records what inbox learns; the default one is read together with the
    // journals `send --shard` wrote beside it (and created if only those exist).
    let shard_paths = if args.journal == Path::new(DEFAULT_JOURNAL) {
        crate::paths::shard_journals()
    } else {
        Vec::new()
    };
    if !args.journal.exists() && shard_paths.is_empty() {
        bail!(
            "no journal at {}: nothing has been sent from this directory yet",
            args.journal.display()
        );
    }
    let mut shards = Vec::new();
    for path in &shard_paths {
        shards.push(Journal::open(path).map_err(|e| about_journal(e, path))?);
    }
    // A dry run creates nothing: without the default journal, a shard's stands in (read only).
    let mut journal = if args.dry_run && !args.journal.exists() {
        shards.remove(0)
    } else {
        Journal::open(&args.journal).map_err(|e| about_journal(e, &args.journal))?
    };
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
        eprintln!("\nstopping after the current message… (Ctrl-C again to stop at once; nothing is lost either way)");
    });
    let mut run = Run {
        journal: &mut journal,
        matcher: Matcher::new(verp.as_ref(), unsubscribe.as_ref(), shards),
        suppress_files: config.suppress_files(),
        unsubscribe_mailto: config.unsubscribe.mailto.clone(),
        soft_limit: inbox.soft_limit,
        dry_run: args.dry_run,
        interrupted: &INTERRUPTED,
        verbose: !quiet && !args.json,
    };
    let summary = run.run(source.as_mut())?;
    print(&summary, args, &source.describe())?;
    Ok(if summary.interrupted {
        ExitCode::from(EXIT_INTERRUPTED)
    } else {
        ExitCode::SUCCESS
    })
}

/// The mailbox: a flag, else `[inbox] imap`.
fn open(args: &InboxArgs, inbox: &InboxSettings) -> Result<Box<dyn Source>> {
    if let Some(dir) = &args.maildir {
        return Ok(Box::new(Maildir::open(dir)?));
    }
    if let Some(file) = &args.mbox {
        return Ok(Box::new(Mbox::open(file)?));
    }
    let (url, from) = match (&args.imap, &inbox.imap) {
        (Some(u), _) => (u, "--imap"),
        (None, Some(u)) => (u, "[inbox] imap"),
        (None, None) => {
            bail!("no mailbox: pass --imap URL, --maildir DIR or --mbox FILE, or set [inbox] imap in bulletin.toml")
        }
    };
    let url = ImapUrl::parse(url).map_err(|e| anyhow::anyhow!("{from}: {e:#}"))?;
    let password = Secret::from_env_or_command(
        "BULLETIN_IMAP_PASSWORD",
        inbox.password_command.as_deref(),
        "IMAP password",
    )?
    .ok_or_else(|| {
        anyhow::anyhow!("no IMAP password: export BULLETIN_IMAP_PASSWORD or set [inbox] password_command")
    })?;
    Ok(Box::new(Imap::open(
        &url,
        &password,
        args.move_to.clone(),
        args.dry_run,
    )?))
}

fn print(summary: &Summary, args: &InboxArgs, from: &str) -> Result<()> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(summary)?);
    } else {
        summary.print_text(from);
    }
    Ok(())
}
