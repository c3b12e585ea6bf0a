//! `bulletin report`: what the journal says about a campaign — totals per status, failures
//! grouped by the relay's reply, JSON for scripts, and the failed rows as a CSV to fix.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::cli::ReportArgs;
use crate::config::Config;
use crate::email::Email;
use crate::journal::{Campaign, Delivery, Journal, Outcome, Status};
use crate::list::{Reason, Suppression, append_suppression};
use crate::newsletter::Newsletter;
use crate::paths::DEFAULT_JOURNAL;
use crate::private::private_file;
use crate::reply::is_address_failure;

pub(crate) fn run(config: Option<&Path>, args: &ReportArgs) -> Result<ExitCode> {
    let paths = journals(&args.journal)?;
    let id = if super::campaigns::is_newsletter_path(&args.newsletter) {
        Newsletter::load(&args.newsletter)?.campaign_id()
    } else {
        args.newsletter.to_string_lossy().into_owned()
    };
    let report = Report::gather(&paths, &id, args.test)?;
    if args.json {
        report.print_json()?;
    } else {
        report.print_text();
    }
    if let Some(path) = &args.failed_csv {
        write_failed_csv(&report, path)?;
    }
    if args.suppress_failed {
        suppress_failed(config, &report)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A campaign as the journals record it: several journals (one per shard) hold disjoint members
/// of the same campaign, merged here.
struct Report {
    campaign: Campaign,
    rows: Vec<Delivery>,
    counts: Counts,
}

/// How many rows are in each state.
struct Counts {
    sent: usize,
    failed: usize,
    pending: usize,
    /// Uncertain rows and rows still in flight: those belong to a run that is going on or was
    /// killed.
    uncertain: usize,
    /// What `bulletin inbox` matched to members of the campaign afterwards.
    bounced_hard: usize,
    bounced_soft: usize,
    complaints: usize,
    unsubscribed: usize,
}

impl Counts {
    fn of(rows: &[Delivery]) -> Counts {
        let count = |s: Status| rows.iter().filter(|d| d.status == s).count();
        Counts {
            sent: count(Status::Sent),
            failed: count(Status::Failed),
            pending: count(Status::Pending),
            uncertain: count(Status::Uncertain) + count(Status::InFlight),
            bounced_hard: 0,
            bounced_soft: 0,
            complaints: 0,
            unsubscribed: 0,
        }
    }

    /// Adds the inbox outcomes one journal holds for the campaign.
    fn add_outcomes(&mut self, outcomes: &std::collections::HashMap<Outcome, usize>) {
        let n = |o: Outcome| outcomes.get(&o).copied().unwrap_or(0);
        self.bounced_hard += n(Outcome::BouncedHard);
        self.bounced_soft += n(Outcome::BouncedSoft);
        self.complaints += n(Outcome::Complained);
        self.unsubscribed += n(Outcome::Unsubscribed);
    }
}

impl Report {
    /// Reads the campaign `base` (with `test`, its latest test send) from every journal.
    fn gather(paths: &[PathBuf], base: &str, test: bool) -> Result<Report> {
        let shown = paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let mut opened = Vec::new();
        let mut test_ids = Vec::new();
        for path in paths {
            let journal = Journal::open(path).map_err(|e| super::about_journal(e, path))?;
            test_ids.extend(journal.campaigns_like(&format!("{base}+test-"))?);
            opened.push(journal);
        }
        let id = if test {
            test_ids.sort();
            match test_ids.pop() {
                Some(id) => id,
                None => bail!("no test send of {base} in {shown}"),
            }
        } else {
            base.to_owned()
        };
        let mut campaign = None;
        let mut rows = Vec::new();
        for journal in &opened {
            if let Some(c) = journal.campaign(&id)? {
                campaign.get_or_insert(c);
                rows.extend(journal.deliveries(&id)?);
            }
        }
        let Some(campaign) = campaign else {
            bail!("campaign {id} has not been sent yet (journal {shown}); `bulletin campaigns` lists those that were");
        };
        let mut counts = Counts::of(&rows);
        for journal in &opened {
            counts.add_outcomes(&journal.outcome_counts(&id)?);
        }
        Ok(Report { campaign, rows, counts })
    }

    fn failed(&self) -> impl Iterator<Item = &Delivery> {
        self.rows.iter().filter(|d| d.status == Status::Failed)
    }

    /// The failed rows' addresses, grouped by the relay's reply.
    fn by_reply(&self) -> BTreeMap<&str, Vec<&str>> {
        let mut by_reply: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for d in self.failed() {
            by_reply
                .entry(d.reply.as_deref().unwrap_or("(no reply)"))
                .or_default()
                .push(&d.address);
        }
        by_reply
    }

    /// Sent members per language of the version they got (`-`: recorded before languages).
    fn sent_by_language(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for d in self.rows.iter().filter(|d| d.status == Status::Sent) {
            *out.entry(d.lang.clone().unwrap_or_else(|| "-".into())).or_default() += 1;
        }
        out
    }

    fn print_text(&self) {
        let (campaign, counts) = (&self.campaign, &self.counts);
        println!("campaign {} — {}", campaign.id, campaign.subject);
        println!("  total      {}", self.rows.len());
        println!("  sent       {}", counts.sent);
        println!("  failed     {}", counts.failed);
        println!("  pending    {}", counts.pending);
        println!("  uncertain  {}", counts.uncertain);
        let langs = self.sent_by_language();
        if langs.len() > 1 || langs.keys().any(|l| l != "-") {
            let each: Vec<String> = langs.iter().map(|(l, n)| format!("{l} {n}")).collect();
            println!("  sent per language: {}", each.join(", "));
        }
        if counts.bounced_hard + counts.bounced_soft + counts.complaints + counts.unsubscribed > 0 {
            println!("after sending (bulletin inbox):");
            println!("  bounced (hard)  {}", counts.bounced_hard);
            println!("  bounced (soft)  {}", counts.bounced_soft);
            println!("  complaints      {}", counts.complaints);
            println!("  unsubscribed    {}", counts.unsubscribed);
        }
        for (reply, who) in &self.by_reply() {
            println!("failed ({}): {reply}", who.len());
            for a in who.iter().take(5) {
                println!("    {a}");
            }
            if who.len() > 5 {
                println!("    … and {} more", who.len() - 5);
            }
        }
    }

    fn print_json(&self) -> Result<()> {
        let failures: Vec<serde_json::Value> = self
            .by_reply()
            .iter()
            .map(|(reply, who)| serde_json::json!({ "reply": reply, "count": who.len(), "addresses": who }))
            .collect();
        let uncertain_list: Vec<serde_json::Value> = self
            .rows
            .iter()
            .filter(|d| matches!(d.status, Status::Uncertain | Status::InFlight))
            .map(|d| serde_json::json!({ "address": d.address, "message_id": d.message_id, "reason": d.reply }))
            .collect();
        let out = serde_json::json!({
            "campaign": self.campaign.id,
            "subject": self.campaign.subject,
            "total": self.rows.len(),
            "sent": self.counts.sent,
            "failed": self.counts.failed,
            "pending": self.counts.pending,
            "uncertain": self.counts.uncertain,
            "bounced_hard": self.counts.bounced_hard,
            "bounced_soft": self.counts.bounced_soft,
            "complaints": self.counts.complaints,
            "unsubscribed": self.counts.unsubscribed,
            "failures": failures,
            "uncertain_members": uncertain_list,
            "sent_by_language": self.sent_by_language(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        Ok(())
    }

    /// The failed members as a CSV to fix and send again: their list columns (as the journal
    /// kept them, else just the address) and the relay's reply.
    fn failed_csv(&self) -> Result<Vec<u8>> {
        let failed_rows: Vec<_> = self.failed().collect();
        let parsed: Vec<serde_json::Map<String, serde_json::Value>> = failed_rows
            .iter()
            .map(
                |d| match d.fields.as_deref().and_then(|f| serde_json::from_str(f).ok()) {
                    Some(serde_json::Value::Object(m)) => m,
                    _ => {
                        serde_json::Map::from_iter([("email".to_owned(), serde_json::Value::String(d.address.clone()))])
                    }
                },
            )
            .collect();
        let mut columns: Vec<String> = Vec::new();
        for m in &parsed {
            for k in m.keys() {
                if !columns.contains(k) {
                    columns.push(k.clone());
                }
            }
        }
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut header = columns.clone();
        header.push("error".into());
        w.write_record(&header)?;
        for (d, m) in failed_rows.iter().zip(&parsed) {
            let mut rec: Vec<String> = columns
                .iter()
                .map(|c| m.get(c).and_then(|v| v.as_str()).unwrap_or("").to_owned())
                .collect();
            rec.push(d.reply.clone().unwrap_or_default());
            w.write_record(&rec)?;
        }
        w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))
    }
}

/// `--failed-csv`: writes the failed members to `path`, readable by the owner only.
fn write_failed_csv(report: &Report, path: &Path) -> Result<()> {
    let bytes = report.failed_csv()?;
    private_file(path, &bytes)?;
    eprintln!("wrote {} failed members to {}", report.counts.failed, path.display());
    Ok(())
}

/// `--suppress-failed`: adds the addresses whose mailbox does not exist to the main
/// suppression file, leaving those that failed for other reasons.
fn suppress_failed(config: Option<&Path>, report: &Report) -> Result<()> {
    let config = Config::load(config)?;
    let dead: Vec<Suppression> = report
        .failed()
        .filter(|d| d.reply.as_deref().is_some_and(is_address_failure))
        .filter_map(|d| Email::parse(&d.address).ok())
        .map(|email| Suppression {
            email,
            reason: Reason::Bounce,
            campaign: Some(report.campaign.id.clone()),
        })
        .collect();
    let (added, file) = append_suppression(&config.suppress_files(), &dead)?;
    eprintln!(
        "suppressed {added} address(es) whose mailbox does not exist ({} failed for other reasons were left alone) in {}",
        report.counts.failed - dead.len(),
        file.display()
    );
    Ok(())
}

/// The journals to read: those named, else the default one and every shard's.
pub(crate) fn journals(given: &[PathBuf]) -> Result<Vec<PathBuf>> {
    if !given.is_empty() {
        for p in given {
            if !p.exists() {
                bail!("no journal at {}", p.display());
            }
        }
        return Ok(given.to_vec());
    }
    let mut found: Vec<PathBuf> = Vec::new();
    let default = PathBuf::from(DEFAULT_JOURNAL);
    if default.exists() {
        found.push(default.clone());
    }
    found.extend(crate::paths::shard_journals());
    if found.is_empty() {
        bail!("no journal at {DEFAULT_JOURNAL}: nothing has been sent from this directory yet");
    }
    Ok(found)
}
