//! `bulletin` composes a newsletter from Markdown, merges it with subscriber CSVs, and sends
//! personalised HTML + text messages through rate-limited SMTP.
//!
//! One pipeline, one direction:
//!
//! ```text
//! newsletter.rs  Markdown + front matter ─┐
//! list/          CSVs → Recipients ───────┤
//! render/        compile once (Markdown, layout, CSS) → personalise per member
//! message/       MIME (lettre) ─▶ send/ outbox (dry-run files) | SMTP (rate, retries)
//! journal/       SQLite record of every outcome (versioned) ─▶ report, resume
//! ```
//!
//! `settings.rs` resolves the delivery settings once (flags over bulletin.toml over defaults)
//! for every command that needs them.
//!
//! Each subcommand lives in `cmd/`; `run` dispatches and returns the exit code.

pub(crate) mod archive;
pub(crate) mod audience;
pub(crate) mod bulk;
pub mod cli;
mod cmd;
pub mod config;
pub(crate) mod deliverability;
pub mod diagnostic;
pub mod dkim;
pub(crate) mod doctor;
pub mod email;
pub(crate) mod inbox;
mod init;
pub(crate) mod journal;
pub mod list;
pub mod message;
pub mod newsletter;
pub(crate) mod paths;
pub(crate) mod preflight;
pub(crate) mod preview;
pub(crate) mod private;
pub(crate) mod project;
pub(crate) mod providers;
pub(crate) mod pull;
pub mod render;
pub(crate) mod reply;
pub mod secret;
pub mod send;
pub(crate) mod serve;
pub(crate) mod settings;
pub(crate) mod shard;
pub mod unsubscribe;
pub(crate) mod when;

use std::process::ExitCode;

use cli::{Cli, Command};

/// Exit code when some recipients failed but the run finished.
pub const EXIT_SOME_FAILED: u8 = 3;
/// Exit code after Ctrl-C: the send can be resumed.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Runs one command.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = cli.config.as_deref();
    match cli.command {
        Command::Init(args) if init::questions::wanted(&args) => init::questions::run(&args),
        Command::Init(args) => cmd::init::run(&args.dir),
        Command::Check {
            newsletter,
            lists,
            relay,
            allow_noncompliant,
        } => cmd::check::run(config, &newsletter, &lists, &relay, allow_noncompliant, cli.quiet),
        Command::Preview(args) => cmd::preview::run(config, &args),
        Command::Send(args) => cmd::send::run(config, &args, cli.quiet),
        Command::Report(args) => cmd::report::run(config, &args),
        Command::Lists(args) => cmd::lists::run(config, &args),
        Command::Campaigns { json, journal } => cmd::campaigns::run(&journal, json),
        Command::Completions { shell } => cmd::install::completions(shell),
        Command::Man => cmd::install::man(),
        Command::Suppress { addresses, pull } => match pull {
            Some(url) => cmd::suppress::pull(config, &url),
            None => cmd::suppress::run(config, &addresses),
        },
        Command::Inbox(args) => cmd::inbox::run(config, &args, cli.quiet),
        Command::Dkim { command } => cmd::dkim::run(&command),
        Command::Doctor(args) => cmd::doctor::run(
            config,
            args.newsletter.as_deref(),
            &args.lists,
            &args.relay,
            args.dns,
            args.json,
        ),
        Command::UnsubscribeToken { command } => cmd::token::run(config, &command),
        Command::Serve(args) => cmd::serve::run(config, &args),
        Command::Archive(args) => cmd::archive::run(config, &args),
    }
}
