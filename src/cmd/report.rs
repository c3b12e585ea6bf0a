//! `bulletin report`: what the journal says about a campaign — totals per status, failures
//! grouped by the relay's reply, JSON for scripts, and the failed rows as a CSV to fix.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Result, bail};

use std::path::PathBuf;

use crate::cli::ReportArgs;
use crate::journal::{Journal, Status};
use crate::newsletter::Newsletter;
use crate::paths::DEFAULT_JOURNAL;
use crate::reply::is_address_failure;

pub fn run(config: Option<&std::path::Path>, args: &ReportArgs) -> Result<ExitCode> {
    let paths = journals(&args.journal)?;
    let shown = paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let newsletter = Newsletter::load(&args.newsletter)?;
    let base = newsletter.campaign_id();
    // Several journals (one per shard) hold disjoint members of the same campaign: merge them.
    let mut campaign = None;
    let mut rows = Vec::new();
    let mut test_ids = Vec::new();
    let mut opened = Vec::new();
    for path in &paths {
        let journal = Journal::open(path).map_err(|e| super::about_journal(e, path))?;
        test_ids.extend(journal.campaigns_like(&format!("{base}+test-"))?);
        opened.push(journal);
    }
    let id = if args.test {
        test_ids.sort();
        match test_ids.pop() {
            Some(id) => id,
            None => bail!("no test send of {base} in {shown}"),
        }
    } else {
        base
    };
    for journal in &opened {
        if let Some(c) = journal.campaign(&id)? {
            campaign.get_or_insert(c);
            rows.extend(journal.deliveries(&id)?);
        }
    }
    let Some(campaign) = campaign else {
        bail!("campaign {id} has not been sent yet (journal {shown})");
    };
    let count = |s: Status| rows.iter().filter(|d| d.status == s).count();
    let (sent, failed, pending, uncertain, in_flight) = (
        count(Status::Sent),
        count(Status::Failed),
        count(Status::Pending),
        count(Status::Uncertain),
        count(Status::InFlight),
    );
    let mut by_reply: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for d in rows.iter().filter(|d| d.status == Status::Failed) {
        by_reply
            .entry(d.reply.as_deref().unwrap_or("(no reply)"))
            .or_default()
            .push(&d.address);
    }

    if args.json {
        let failures: Vec<serde_json::Value> = by_reply
            .iter()
            .map(|(reply, who)| serde_json::json!({ "reply": reply, "count": who.len(), "addresses": who }))
            .collect();
        let uncertain_list: Vec<serde_json::Value> = rows
            .iter()
            .filter(|d| matches!(d.status, Status::Uncertain | Status::InFlight))
            .map(|d| serde_json::json!({ "address": d.address, "message_id": d.message_id, "reason": d.reply }))
            .collect();
        let out = serde_json::json!({
            "campaign": campaign.id,
            "subject": campaign.subject,
            "total": rows.len(),
            "sent": sent,
            "failed": failed,
            "pending": pending,
            // A row still in flight belongs to a run that is going on or was killed.
            "uncertain": uncertain + in_flight,
            "failures": failures,
            "uncertain_members": uncertain_list,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("campaign {} — {}", campaign.id, campaign.subject);
        println!("  total      {}", rows.len());
        println!("  sent       {sent}");
        println!("  failed     {failed}");
        println!("  pending    {pending}");
        println!("  uncertain  {}", uncertain + in_flight);
        for (reply, who) in &by_reply {
            println!("failed ({}): {reply}", who.len());
            for a in who.iter().take(5) {
                println!("    {a}");
            }
            if who.len() > 5 {
                println!("    … and {} more", who.len() - 5);
            }
        }
    }

    if let Some(path) = &args.failed_csv {
        let failed_rows: Vec<_> = rows.iter().filter(|d| d.status == Status::Failed).collect();
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
        let bytes = w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
        crate::private::private_file(path, &bytes)?;
        eprintln!("wrote {} failed members to {}", failed_rows.len(), path.display());
    }
    if args.suppress_failed {
        let config = crate::config::Config::load(config)?;
        let dead: Vec<crate::email::Email> = rows
            .iter()
            .filter(|d| d.status == Status::Failed && d.reply.as_deref().is_some_and(is_address_failure))
            .filter_map(|d| crate::email::Email::parse(&d.address).ok())
            .collect();
        let (added, file) = crate::list::append_suppression(&config.suppress_files(), &dead)?;
        eprintln!(
            "suppressed {added} address(es) whose mailbox does not exist ({} failed for other reasons were left alone) in {}",
            failed - dead.len(),
            file.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The journals to read: those named, else the default one and every shard's.
fn journals(given: &[PathBuf]) -> Result<Vec<PathBuf>> {
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
    if let Some(dir) = default.parent()
        && let Ok(entries) = std::fs::read_dir(dir)
    {
        let mut shards: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(crate::paths::is_shard_journal)
            })
            .collect();
        shards.sort();
        found.extend(shards);
    }
    if found.is_empty() {
        bail!("no journal at {DEFAULT_JOURNAL}: nothing has been sent from this directory yet");
    }
    Ok(found)
}
