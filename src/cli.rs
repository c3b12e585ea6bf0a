//! Command-line definitions. Each doc comment is the `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::paths::{ARCHIVE_DIR, DEFAULT_JOURNAL, PREVIEW_DIR, SERVE_LISTEN};
pub use crate::settings::RelayArgs;
use crate::shard::Shard;

/// Compose a Markdown newsletter, merge it with subscriber lists, and send it through
/// rate-limited SMTP — previewed, resumable, and never twice to the same member.
#[derive(Debug, Parser)]
#[command(name = "bulletin", version = env!("BULLETIN_VERSION"), max_term_width = 100)]
pub struct Cli {
    /// Settings file [default: the nearest bulletin.toml in this folder or above]
    #[arg(long, global = true, env = "BULLETIN_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print nothing but errors (no progress, no summary)
    #[arg(long, short, global = true)]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start your newsletter: asks for your organisation, sender, postal address and relay
    /// (or takes them from the flags), then writes bulletin.toml, a first issue and a test list.
    /// Without a terminal and without flags, writes the bundled example project
    Init(InitArgs),
    /// Find every problem in a newsletter and its lists before anything is sent
    Check {
        /// The newsletter (Markdown with front matter)
        newsletter: PathBuf,
        #[command(flatten)]
        lists: ListArgs,
        /// Check these delivery settings too, as `send` would take them
        #[command(flatten)]
        relay: RelayArgs,
        /// Downgrade the bulk-sender rules (DKIM and one-click unsubscribe above 5,000
        /// recipients at Gmail or Yahoo) to warnings
        #[arg(long)]
        allow_noncompliant: bool,
    },
    /// Write the HTML, text and raw message one member would receive
    Preview(PreviewArgs),
    /// Send the newsletter to every member of the lists
    Send(SendArgs),
    /// Summarise a campaign's journal: who got it, who failed, who is pending
    Report(ReportArgs),
    /// Survey the lists and the audience: counts per file, fields filled, languages, receiving domains
    Lists(ListsArgs),
    /// List the campaigns in the journal: id, subject, when it started, sent/failed/pending
    Campaigns {
        /// Print JSON
        #[arg(long)]
        json: bool,
        /// Journal file; repeat to merge several (one per shard) [default: .bulletin/journal.db
        /// and any .bulletin/journal-shard-*.db]
        #[arg(long, value_name = "FILE", env = "BULLETIN_JOURNAL")]
        journal: Vec<PathBuf>,
    },
    /// Print a shell completion script: bash, zsh, fish, powershell or elvish (see the README's
    /// Install section for where it goes)
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `bulletin man > ~/.local/share/man/man1/bulletin.1`
    Man,
    /// Add addresses to the main suppression file: they are never mailed again
    Suppress {
        /// Addresses to suppress
        #[arg(required_unless_present = "pull", value_name = "ADDRESS")]
        addresses: Vec<String>,
        /// Bring in the unsubscribes (and undos) `bulletin serve` recorded at URL, e.g.
        /// https://news.example.org (authenticated with a token derived from the unsubscribe
        /// secret)
        #[arg(long, value_name = "URL", conflicts_with = "addresses")]
        pull: Option<String>,
    },
    /// Read the bounce mailbox: suppress hard bounces, complaints and mailed unsubscribes
    Inbox(InboxArgs),
    /// DKIM keys: generate a key pair and the DNS record to publish
    Dkim {
        #[command(subcommand)]
        command: DkimCommand,
    },
    /// Check DNS (DKIM, SPF, DMARC, MX) and the relay for real before a send
    Doctor(DoctorArgs),
    /// Make or check a member's unsubscribe token (for your unsubscribe endpoint or script)
    UnsubscribeToken {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Run the one-click unsubscribe endpoint (and serve the archive)
    Serve(ServeArgs),
    /// Write the static archive of sent campaigns, with an Atom feed
    Archive(ArchiveArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on (put it behind an HTTPS reverse proxy)
    #[arg(long, value_name = "ADDR", env = "BULLETIN_LISTEN", default_value = SERVE_LISTEN)]
    pub listen: std::net::SocketAddr,
    /// Also serve this folder (what `bulletin archive` wrote) at /
    #[arg(long, value_name = "DIR")]
    pub archive: Option<PathBuf>,
    /// Behind a reverse proxy: take the client from X-Forwarded-For and X-Forwarded-Proto
    #[arg(long)]
    pub trust_proxy: bool,
    /// Requests per minute per client address (0: no limit)
    #[arg(long, value_name = "N", default_value_t = 300)]
    pub per_client: u32,
    /// Seconds a client has to send a request's headers, and then its body
    #[arg(long, value_name = "SECONDS", default_value_t = 10, hide = true)]
    pub read_timeout: u64,
}

#[derive(Debug, Args)]
pub struct ArchiveArgs {
    /// Folder to write the site into
    #[arg(long, value_name = "DIR", default_value = ARCHIVE_DIR)]
    pub out: PathBuf,
    /// Journal file
    #[arg(long, value_name = "FILE", env = "BULLETIN_JOURNAL", default_value = DEFAULT_JOURNAL)]
    pub journal: PathBuf,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory to create the project in
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Your organisation's name, shown in every footer
    #[arg(long, value_name = "NAME")]
    pub org: Option<String>,
    /// The sender, `Name <news@your-domain.org>`
    #[arg(long, value_name = "SENDER")]
    pub from: Option<String>,
    /// Your postal address (anti-spam law wants one in every message)
    #[arg(long, value_name = "POSTAL ADDRESS")]
    pub address: Option<String>,
    /// Your relay: a URL (smtps://user@host:465, smtp://user@host:587) or one of google,
    /// microsoft, ses, mailgun, postmark, postfix
    #[arg(long, value_name = "URL|RELAY")]
    pub smtp: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum DkimCommand {
    /// Write a new private key and print the DNS TXT record for it
    Keygen {
        /// Selector, the name of this key in DNS (e.g. news2026)
        #[arg(long)]
        selector: String,
        /// Domain the key signs for (the From address's domain)
        #[arg(long)]
        domain: String,
        /// Key type; RSA 2048 is understood everywhere, Ed25519 is smaller
        #[arg(long, value_enum, default_value = "rsa")]
        algorithm: crate::dkim::Algorithm,
        /// Directory for the private key
        #[arg(long, value_name = "DIR", default_value = "keys")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print the token for each address, one per line
    Make {
        /// The members' addresses
        #[arg(required = true, value_name = "EMAIL")]
        emails: Vec<String>,
        /// Seal this campaign id into the token, as `send` does in its messages (`serve`
        /// then records it with the unsubscribe)
        #[arg(long, value_name = "ID")]
        campaign: Option<String>,
    },
    /// Exit 0 if TOKEN belongs to EMAIL, 1 if it does not
    Verify {
        /// The token from the unsubscribe link or subject
        token: String,
        /// The address asking to unsubscribe
        email: String,
    },
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Subscriber CSV; repeat to merge several (addresses are deduplicated)
    #[arg(long = "list", short = 'l', value_name = "CSV")]
    pub lists: Vec<PathBuf>,
    /// Only the members for whom this minijinja expression over their fields is true, e.g.
    /// 'city == "Salinas"' or '"volunteer" in tags' [front matter: audience.where]
    #[arg(long = "where", value_name = "EXPR")]
    pub segment: Option<String>,
    /// Nobody on this list gets it; repeat for several [front matter: audience.exclude]
    #[arg(long, value_name = "CSV")]
    pub exclude: Vec<PathBuf>,
    /// Read the lists as this export instead of recognising it from the header
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<crate::list::Format>,
}

impl ListArgs {
    /// The audience flags, as `audience::Audience::resolve` takes them.
    pub fn flags(&self) -> crate::audience::Flags<'_> {
        crate::audience::Flags {
            lists: &self.lists,
            segment: self.segment.as_deref(),
            exclude: &self.exclude,
            format: self.format,
        }
    }
}

fn parse_shard(s: &str) -> Result<Shard, String> {
    Shard::parse(s).map_err(|e| format!("{e:#}"))
}

#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// The newsletter (Markdown with front matter)
    pub newsletter: PathBuf,
    #[command(flatten)]
    pub lists: ListArgs,
    /// Preview for the Nth data row of the lists (1 = first member)
    #[arg(long, value_name = "N", conflicts_with = "to")]
    pub row: Option<u64>,
    /// Preview for the member with this address
    #[arg(long, value_name = "EMAIL")]
    pub to: Option<String>,
    /// Directory for email.html, email.txt and email.eml
    #[arg(long, value_name = "DIR", default_value = PREVIEW_DIR)]
    pub out: PathBuf,
    /// Open the HTML (or, with --serve, the live preview) in the default browser
    #[arg(long)]
    pub open: bool,
    /// Preview this language's variant (`NAME.es.md`), whatever the member's language
    #[arg(long, value_name = "CODE")]
    pub lang: Option<String>,
    /// Serve a live preview on 127.0.0.1 that reloads whenever a file changes
    #[arg(long)]
    pub serve: bool,
    /// Port of the live preview (0: any free port)
    #[arg(long, value_name = "N", default_value_t = 4300, requires = "serve")]
    pub port: u16,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// The newsletter (Markdown with front matter)
    pub newsletter: PathBuf,
    #[command(flatten)]
    pub lists: ListArgs,
    /// Build every message and write one .eml per member (or one mbox, with --mbox); send
    /// nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Where --dry-run writes [default: .bulletin/dry-run/<campaign>/]
    #[arg(long, value_name = "DIR", requires = "dry_run")]
    pub out: Option<PathBuf>,
    /// Write --dry-run's messages to this one mbox file (mboxrd) instead of .eml files
    #[arg(long, value_name = "FILE", requires = "dry_run", conflicts_with = "out")]
    pub mbox: Option<PathBuf>,
    /// A real send to a test list, recorded apart from the campaign
    #[arg(long)]
    pub test: bool,
    #[command(flatten)]
    pub relay: RelayArgs,
    /// Send to at most N members in this run (the rest stay pending)
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Also send to members whose earlier delivery is uncertain (may duplicate)
    #[arg(long)]
    pub resend_uncertain: bool,
    /// Send again to the members this campaign recorded as failed — all of them, or with
    /// =PATTERN only those whose recorded reply contains PATTERN (ignoring case), e.g.
    /// --retry-failed='mailbox full'. Members recorded as sent are never sent again
    #[arg(
        long,
        value_name = "PATTERN",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "",
        conflicts_with_all = ["dry_run", "test"]
    )]
    pub retry_failed: Option<String>,
    /// Resume although the newsletter changed since the campaign began
    #[arg(long)]
    pub allow_changed: bool,
    /// Send although the bulk-sender rules (DKIM and one-click unsubscribe above 5,000
    /// recipients at Gmail or Yahoo) are not met
    #[arg(long)]
    pub allow_noncompliant: bool,
    /// Send only to the members whose address hashes to shard K of N (for N machines); each
    /// shard keeps its own journal
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    pub shard: Option<Shard>,
    /// Journal file [shards: .bulletin/journal-shard-K-of-N.db]
    #[arg(long, value_name = "FILE", env = "BULLETIN_JOURNAL", default_value = DEFAULT_JOURNAL)]
    pub journal: PathBuf,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// A newsletter: check its sender, and (with --list) its largest message against the
    /// relay's size limit
    pub newsletter: Option<PathBuf>,
    #[command(flatten)]
    pub lists: ListArgs,
    /// Print JSON: what the text shows, one object per check
    #[arg(long)]
    pub json: bool,
    /// Name server to ask, IP or IP:PORT [default: the system's]
    #[arg(long, value_name = "ADDR", env = "BULLETIN_DNS", value_parser = crate::doctor::parse_server)]
    pub dns: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub relay: RelayArgs,
}

#[derive(Debug, Args)]
pub struct ListsArgs {
    /// Survey this newsletter's audience (its front matter `audience:`) and count who gets
    /// which of its language versions (`NAME.es.md`)
    #[arg(value_name = "NEWSLETTER")]
    pub newsletter: Option<PathBuf>,
    /// [default: every .csv and .zip in lists/ but the suppression files]
    #[command(flatten)]
    pub lists: ListArgs,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The newsletter whose campaign to report, or the campaign's id (`bulletin campaigns`
    /// lists them)
    #[arg(value_name = "NEWSLETTER|CAMPAIGN")]
    pub newsletter: PathBuf,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
    /// Write the failed members to this CSV, with an `error` column
    #[arg(long, value_name = "FILE")]
    pub failed_csv: Option<PathBuf>,
    /// Report the test sends instead of the campaign
    #[arg(long)]
    pub test: bool,
    /// Append every address that failed with a permanent "no such mailbox" reply to the main
    /// suppression file
    #[arg(long)]
    pub suppress_failed: bool,
    /// Journal file; repeat to merge several (one per shard) [default: .bulletin/journal.db and
    /// any .bulletin/journal-shard-*.db]
    #[arg(long, value_name = "FILE", env = "BULLETIN_JOURNAL")]
    pub journal: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InboxArgs {
    /// IMAP mailbox, e.g. imaps://bounces%40example.org@imap.example.org:993/INBOX
    /// [default: [inbox] imap; password from BULLETIN_IMAP_PASSWORD or [inbox] password_command]
    #[arg(long, value_name = "URL", conflicts_with_all = ["maildir", "mbox"])]
    pub imap: Option<String>,
    /// Read a Maildir (its new/ and cur/) instead
    #[arg(long, value_name = "DIR", conflicts_with = "mbox")]
    pub maildir: Option<PathBuf>,
    /// Read an mbox file instead
    #[arg(long, value_name = "FILE")]
    pub mbox: Option<PathBuf>,
    /// Print what would be done; change nothing (no suppression, journal or mailbox change)
    #[arg(long)]
    pub dry_run: bool,
    /// Print the summary as JSON
    #[arg(long)]
    pub json: bool,
    /// IMAP: move processed messages to this folder instead of flagging them \Seen
    #[arg(long, value_name = "FOLDER", conflicts_with_all = ["maildir", "mbox"])]
    pub move_to: Option<String>,
    /// Journal file
    #[arg(long, value_name = "FILE", env = "BULLETIN_JOURNAL", default_value = DEFAULT_JOURNAL)]
    pub journal: PathBuf,
}
