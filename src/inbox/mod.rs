//! `bulletin inbox`: reads the bounce mailbox and closes the loop — bounces, complaints and
//! mailed unsubscribes go back into the suppression file and the journal.
//!
//! One message at a time: [`source`] hands it out, [`classify`] says what it is, [`matching`]
//! finds the member it is about, and [`Run`] acts. Work is committed in batches, in an order
//! that makes a crash or Ctrl-C at any instant harmless: first the suppression file (an append
//! that skips addresses already there), then the journal (outcomes and the messages' "seen"
//! keys in one transaction), then the mailbox flags. A batch cut short is simply done again by
//! the next run, with the same result; a message the journal has seen is never acted on twice.
//!
//! Only what bulletin handled is flagged `\Seen` (or moved): matched bounces, complaints and
//! unsubscribe requests, and auto-replies. A person's reply and anything unmatched are left
//! unread where they are, for a person to read, and remembered so later runs skip them.

pub(crate) mod classify;
pub(crate) mod imap;
pub(crate) mod matching;
pub(crate) mod settings;
pub(crate) mod source;
pub(crate) mod verp;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::email::Email;
use crate::journal::{Journal, Member, Outcome, Processed};
use crate::list::{Reason, Suppression, append_suppression};
use classify::{Class, classify};
use matching::Matcher;
use source::{Body, Source};

/// Messages acted on per commit.
const BATCH: usize = 500;

/// What a run did (or, dry, would do). The JSON keys are the contract of `inbox --json`.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Summary {
    /// Messages classified this run (all the counts below).
    pub processed: usize,
    /// Matched hard bounces.
    pub hard: usize,
    /// Matched soft bounces.
    pub soft: usize,
    /// Matched spam complaints.
    pub complaints: usize,
    /// Matched unsubscribe requests.
    pub unsubscribes: usize,
    pub auto_replies: usize,
    pub other: usize,
    /// Bounces, complaints and unsubscribe requests that matched no member: left alone.
    pub unmatched: usize,
    /// Messages left unread where they are (IMAP: not flagged or moved): the `other` and the
    /// `unmatched` ones, for a person to read.
    pub left_alone: usize,
    /// Addresses added to the suppression file.
    pub suppressed: Vec<Suppressed>,
    /// Messages an earlier run processed.
    pub already_processed: usize,
    /// Messages too big or unreadable: reported, skipped, left in the mailbox.
    pub skipped: usize,
    pub dry_run: bool,
    /// Ctrl-C stopped the run; what was done is committed.
    pub interrupted: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct Suppressed {
    pub email: String,
    pub reason: &'static str,
    pub campaign: String,
}

/// What a run needs.
pub(crate) struct Run<'a> {
    pub journal: &'a mut Journal,
    pub matcher: Matcher<'a>,
    pub suppress_files: Vec<PathBuf>,
    pub unsubscribe_mailto: Option<String>,
    pub soft_limit: usize,
    pub dry_run: bool,
    /// Set by Ctrl-C: stop after the current message (and commit what is done).
    pub interrupted: &'a AtomicBool,
    /// Prints one line per message acted on or skipped (stderr).
    pub verbose: bool,
}

/// The work of a batch, not yet committed.
#[derive(Default)]
struct Batch {
    records: Vec<Processed>,
    suppress: Vec<Suppression>,
    /// Locations to finish in the mailbox once the batch is committed.
    locations: Vec<String>,
    /// Soft bounces of this batch, (address, campaign), for the limit.
    soft: Vec<(String, String)>,
    /// Keys of this batch's messages (a mailbox may hold the same message twice), and
    /// whether that message is left alone.
    keys: HashMap<String, bool>,
}

impl Run<'_> {
    /// Processes every message of `source`.
    pub(crate) fn run(&mut self, source: &mut dyn Source) -> Result<Summary> {
        let mut summary = Summary {
            dry_run: self.dry_run,
            ..Summary::default()
        };
        let mut batch = Batch::default();
        let mut suppressed: HashSet<String> = HashSet::new();
        loop {
            if self.interrupted.load(Ordering::SeqCst) {
                summary.interrupted = true;
                break;
            }
            let item = match source.next_item() {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(e) => {
                    // Keep what is done; the rest waits for the next run.
                    let e = e.context("reading the mailbox stopped");
                    return Err(match self.commit(&mut batch, source, &mut summary, &mut suppressed) {
                        Ok(()) => e.context("what was processed is recorded; run inbox again for the rest"),
                        Err(kept) => kept.context(format!("{e:#}")),
                    });
                }
            };
            let bytes = match item.body {
                Body::Message(b) => b,
                Body::TooBig(n) => {
                    eprintln!(
                        "skipped {}: {} MB, over the {} MB limit",
                        item.location,
                        n / 1_000_000,
                        source::MAX_MESSAGE / 1_048_576
                    );
                    summary.skipped += 1;
                    continue;
                }
                Body::Unreadable(why) => {
                    eprintln!("skipped {}: {why}", item.location);
                    summary.skipped += 1;
                    continue;
                }
            };
            self.one(&item.location, &bytes, &mut batch, &mut summary)?;
            if batch.records.len() >= BATCH {
                self.commit(&mut batch, source, &mut summary, &mut suppressed)?;
            }
        }
        self.commit(&mut batch, source, &mut summary, &mut suppressed)?;
        source.close()?;
        Ok(summary)
    }

    /// Classifies and matches one message, adding what to do to `batch`.
    fn one(&mut self, location: &str, bytes: &[u8], batch: &mut Batch, summary: &mut Summary) -> Result<()> {
        let Some(c) = classify(bytes, self.unsubscribe_mailto.as_deref()) else {
            eprintln!("skipped {location}: not a mail message");
            summary.skipped += 1;
            return Ok(());
        };
        let mut keys = vec![format!("at:{location}")];
        if let Some(id) = &c.message_id {
            keys.push(format!("id:{id}"));
        }
        let seen = match self.journal.inbox_seen(&keys)? {
            Some(left) => Some(left),
            None => keys.iter().find_map(|k| batch.keys.get(k).copied()),
        };
        if let Some(left_alone) = seen {
            summary.already_processed += 1;
            if !left_alone {
                // Finished again: a run may have stopped before flagging it.
                batch.locations.push(location.to_owned());
            }
            return Ok(());
        }
        summary.processed += 1;
        let found = self.matcher.member(self.journal, &c)?;
        let outcome = match (c.class, &found) {
            (Class::AutoReply, _) => {
                summary.auto_replies += 1;
                None
            }
            (Class::Other, _) => {
                summary.other += 1;
                None
            }
            (_, None) => {
                summary.unmatched += 1;
                if self.verbose {
                    eprintln!("unmatched {} ({}): {}", c.class.as_str(), location, c.clues.detail);
                }
                None
            }
            (class, Some((member, how))) => {
                if self.verbose {
                    eprintln!(
                        "{} for {} in {} (by {})",
                        class.as_str(),
                        member.address,
                        member.campaign,
                        how.as_str()
                    );
                }
                self.act(class, member, batch, summary)?
            }
        };
        // Handled (matched, or an auto-reply) is finished in the mailbox; the rest is for a person.
        let left_alone = match c.class {
            Class::AutoReply => false,
            Class::Other => true,
            _ => found.is_none(),
        };
        batch.keys.extend(keys.iter().map(|k| (k.clone(), left_alone)));
        if left_alone {
            summary.left_alone += 1;
        } else {
            batch.locations.push(location.to_owned());
        }
        batch.records.push(Processed {
            keys,
            class: c.class.as_str(),
            left_alone,
            outcome: outcome.map(|o| (found.expect("an outcome has a member").0, o, c.clues.detail.clone())),
            at: now_ms(),
        });
        Ok(())
    }

    /// Counts a matched message and decides its outcome and suppression.
    fn act(&mut self, class: Class, m: &Member, batch: &mut Batch, summary: &mut Summary) -> Result<Option<Outcome>> {
        let (outcome, reason) = match class {
            Class::Hard => {
                summary.hard += 1;
                (Outcome::BouncedHard, Some(Reason::Bounce))
            }
            Class::Complaint => {
                summary.complaints += 1;
                (Outcome::Complained, Some(Reason::Complaint))
            }
            Class::Unsubscribe => {
                summary.unsubscribes += 1;
                (Outcome::Unsubscribed, Some(Reason::Unsubscribe))
            }
            Class::Soft => {
                summary.soft += 1;
                batch.soft.push((m.address.clone(), m.campaign.clone()));
                let also: Vec<&str> = batch
                    .soft
                    .iter()
                    .filter(|(a, _)| *a == m.address)
                    .map(|(_, c)| c.as_str())
                    .collect();
                let campaigns = self.journal.soft_bounce_campaigns(&m.address, &also)?;
                (
                    Outcome::BouncedSoft,
                    (campaigns >= self.soft_limit).then_some(Reason::SoftBounce),
                )
            }
            Class::AutoReply | Class::Other => return Ok(None),
        };
        if let Some(reason) = reason
            && let Ok(email) = Email::parse(&m.address)
        {
            batch.suppress.push(Suppression {
                email,
                reason,
                campaign: (!m.campaign.is_empty()).then(|| m.campaign.clone()),
            });
        }
        Ok(Some(outcome))
    }

    /// Suppression file, then journal, then mailbox: see the module's comment.
    fn commit(
        &mut self,
        batch: &mut Batch,
        source: &mut dyn Source,
        summary: &mut Summary,
        done: &mut HashSet<String>,
    ) -> Result<()> {
        let b = std::mem::take(batch);
        let fresh: Vec<Suppression> = b
            .suppress
            .into_iter()
            .filter(|s| !done.contains(s.email.key()))
            .collect();
        if !self.dry_run {
            if !fresh.is_empty() {
                append_suppression(&self.suppress_files, &fresh)?;
            }
            self.journal.inbox_record(&b.records)?;
            for l in &b.locations {
                source
                    .finish(l)
                    .context("the messages processed are recorded; run inbox again to flag or move them")?;
            }
        }
        for s in fresh {
            if done.insert(s.email.key().to_owned()) {
                summary.suppressed.push(Suppressed {
                    email: s.email.key().to_owned(),
                    reason: s.reason.as_str(),
                    campaign: s.campaign.unwrap_or_default(),
                });
            }
        }
        Ok(())
    }
}

impl Summary {
    /// The text summary for stdout.
    pub(crate) fn print_text(&self, from: &str) {
        let would = if self.dry_run { "dry run, nothing changed: " } else { "" };
        println!(
            "{would}{from}: {} processed: {} hard bounces, {} soft bounces, {} complaints, {} unsubscribes, \
             {} auto-replies, {} other, {} unmatched ({} left unread for a person, {} processed earlier, {} skipped)",
            self.processed,
            self.hard,
            self.soft,
            self.complaints,
            self.unsubscribes,
            self.auto_replies,
            self.other,
            self.unmatched,
            self.left_alone,
            self.already_processed,
            self.skipped
        );
        let verb = if self.dry_run { "would suppress" } else { "suppressed" };
        for s in &self.suppressed {
            let campaign = if s.campaign.is_empty() {
                String::new()
            } else {
                format!(", {}", s.campaign)
            };
            println!("{verb} {} ({}{campaign})", s.email, s.reason);
        }
        if self.interrupted {
            println!("interrupted: what was processed is recorded; run inbox again for the rest");
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests;
