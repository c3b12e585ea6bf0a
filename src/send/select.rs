//! Which members a run sends to — decided the same way on every pass over the lists
//! (preflight, recording them as pending, sending), so the lists can be streamed three times
//! instead of held in memory once.

use std::collections::HashMap;

use anyhow::Result;

use crate::journal::Status;
use crate::list::{Item, KeyHash, Recipient, Sources, Stream, key_hash};
use crate::shard::Shard;

/// The rules.
#[derive(Debug, Default)]
pub struct Selection {
    /// Members no longer pending in this campaign (from the journal).
    pub done: HashMap<KeyHash, Status>,
    pub shard: Option<Shard>,
    pub resend_uncertain: bool,
    pub limit: Option<usize>,
    /// Skip members whose address needs SMTPUTF8 (the relay lacks it; preflight warned).
    pub skip_smtputf8: bool,
}

/// How the rows of one pass were sorted.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub jobs: usize,
    pub sent_before: usize,
    pub failed_before: usize,
    pub uncertain: usize,
    /// Unsubscribed, suppressed, invalid or duplicate rows, and members needing an SMTPUTF8
    /// the relay lacks.
    pub skipped: usize,
    /// Members that belong to another shard.
    pub other_shard: usize,
    /// Members left for a later run by `--limit`.
    pub over_limit: usize,
}

impl Selection {
    /// A pass over the lists yielding the members to send to.
    pub fn jobs<'a>(&'a self, sources: &'a Sources) -> Jobs<'a> {
        Jobs {
            stream: sources.stream(),
            selection: self,
            counts: Counts::default(),
        }
    }
}

/// See `Selection::jobs`.
pub struct Jobs<'a> {
    stream: Stream<'a>,
    selection: &'a Selection,
    pub counts: Counts,
}

impl Iterator for Jobs<'_> {
    type Item = Result<Recipient>;

    fn next(&mut self) -> Option<Self::Item> {
        let sel = self.selection;
        loop {
            let r = match self.stream.next()? {
                Err(e) => return Some(Err(e)),
                Ok(Item::Skipped(_)) => {
                    self.counts.skipped += 1;
                    continue;
                }
                Ok(Item::Member(r)) => r,
            };
            let c = &mut self.counts;
            if sel.shard.is_some_and(|s| !s.contains(r.email.key())) {
                c.other_shard += 1;
                continue;
            }
            match sel.done.get(&key_hash(r.email.key())) {
                Some(Status::Sent) => c.sent_before += 1,
                Some(Status::Failed) => c.failed_before += 1,
                Some(Status::Uncertain | Status::InFlight) if !sel.resend_uncertain => c.uncertain += 1,
                _ if sel.skip_smtputf8 && r.email.needs_smtputf8() => c.skipped += 1,
                _ if sel.limit.is_some_and(|l| c.jobs >= l) => c.over_limit += 1,
                _ => {
                    c.jobs += 1;
                    return Some(Ok(r));
                }
            }
        }
    }
}
