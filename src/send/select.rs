//! Which members a run sends to — decided the same way on every pass over the lists
//! (preflight, recording them as pending, sending), so the lists can be streamed three times
//! instead of held in memory once.

use std::collections::{HashMap, HashSet};

use anyhow::Result;

use crate::journal::Status;
use crate::list::{Item, KeyHash, Recipient, Skip, Sources, Stream, key_hash};
use crate::shard::Shard;

/// The rules.
#[derive(Debug, Default)]
pub struct Selection {
    /// Members no longer pending in this campaign (from the journal).
    pub done: HashMap<KeyHash, Status>,
    /// Members recorded `failed` whom this run sends to again (`--retry-failed`); see
    /// [`RetryFailed::pick`].
    pub retry: HashSet<KeyHash>,
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
    /// Failed earlier and not sent again this run.
    pub failed_before: usize,
    /// Failed earlier and sent again this run (`--retry-failed`); counted in `jobs` too.
    pub retried: usize,
    pub uncertain: usize,
    /// Unsubscribed, suppressed, invalid or duplicate rows, and members needing an SMTPUTF8
    /// the relay lacks.
    pub skipped: usize,
    /// Members outside the audience: not in the `--where` segment, or on an `--exclude` list.
    pub outside: usize,
    /// Members that belong to another shard.
    pub other_shard: usize,
    /// Members left for a later run by `--limit`.
    pub over_limit: usize,
    /// The campaign's members at Gmail and Yahoo — this run's, and those sent earlier, left
    /// for a later run or in other shards — for the bulk-sender rules.
    pub(crate) audience: crate::bulk::Audience,
}

/// `--retry-failed[=PATTERN]`: which of the members recorded `failed` to send to again — all
/// of them, or those whose recorded reply contains PATTERN, ignoring case. A plain substring
/// rather than a regular expression: the replies are short, and a code (`550`, `5.2.2`) or a
/// word (`mailbox full`) is what picks them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryFailed {
    /// Lower-cased; empty matches every reply.
    pattern: String,
}

impl RetryFailed {
    pub fn new(pattern: &str) -> RetryFailed {
        RetryFailed {
            pattern: pattern.to_lowercase(),
        }
    }

    /// Whether a failed member whose relay answered `reply` is sent to again.
    pub fn matches(&self, reply: &str) -> bool {
        reply.to_lowercase().contains(&self.pattern)
    }

    /// The members of `failed` (address key, recorded reply) to send to again, as
    /// [`Selection::retry`] holds them.
    pub fn pick(&self, failed: impl IntoIterator<Item = (String, String)>) -> HashSet<KeyHash> {
        failed
            .into_iter()
            .filter(|(_, reply)| self.matches(reply))
            .map(|(address, _)| key_hash(&address))
            .collect()
    }
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
                Ok(Item::Skipped(s)) => {
                    match s.why {
                        Skip::Outside | Skip::Excluded { .. } => self.counts.outside += 1,
                        _ => self.counts.skipped += 1,
                    }
                    continue;
                }
                Ok(Item::Member(r)) => r,
            };
            let c = &mut self.counts;
            c.audience.add(&r.email);
            if sel.shard.is_some_and(|s| !s.contains(r.email.key())) {
                c.other_shard += 1;
                continue;
            }
            let hash = key_hash(r.email.key());
            let done = sel.done.get(&hash);
            match done {
                Some(Status::Sent) => c.sent_before += 1,
                Some(Status::Failed) if !sel.retry.contains(&hash) => c.failed_before += 1,
                Some(Status::Uncertain | Status::InFlight) if !sel.resend_uncertain => c.uncertain += 1,
                _ if sel.skip_smtputf8 && r.email.needs_smtputf8() => c.skipped += 1,
                _ if sel.limit.is_some_and(|l| c.jobs >= l) => c.over_limit += 1,
                _ => {
                    c.jobs += 1;
                    c.retried += usize::from(done == Some(&Status::Failed));
                    return Some(Ok(r));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Six members: m1 sent, m2 and m3 failed (with the replies in `failed`), m4 uncertain,
    /// m5 and m6 pending.
    struct Fixture {
        _dir: tempfile::TempDir,
        sources: Sources,
        done: HashMap<KeyHash, Status>,
        failed: Vec<(String, String)>,
    }

    fn setup() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("m.csv");
        let csv: String = (1..=6).map(|i| format!("m{i}@example.org\n")).collect();
        std::fs::write(&list, format!("email\n{csv}")).unwrap();
        let sources = Sources::open(&[list], &[]).unwrap();
        let a = |i: usize| format!("m{i}@example.org");
        let done = [
            (1, Status::Sent),
            (2, Status::Failed),
            (3, Status::Failed),
            (4, Status::Uncertain),
        ]
        .into_iter()
        .map(|(i, s)| (key_hash(&a(i)), s))
        .collect();
        let failed = vec![
            (a(2), "550 5.1.1 <m2@example.org>: no such user".to_owned()),
            (a(3), "552 5.2.2 Mailbox full".to_owned()),
        ];
        Fixture {
            _dir: dir,
            sources,
            done,
            failed,
        }
    }

    /// The addresses a pass yields, and its counts.
    fn run(sel: &Selection, sources: &Sources) -> (Vec<String>, Counts) {
        let mut jobs = sel.jobs(sources);
        let picked = jobs.by_ref().map(|r| r.unwrap().email.key().to_owned()).collect();
        (picked, jobs.counts)
    }

    fn names(picked: &[String]) -> Vec<&str> {
        picked.iter().map(|a| a.trim_end_matches("@example.org")).collect()
    }

    #[test]
    fn without_retry_failed_members_stay_skipped() {
        let Fixture {
            sources,
            done,
            _dir: _keep,
            ..
        } = setup();
        let sel = Selection {
            done,
            ..Selection::default()
        };
        let (picked, c) = run(&sel, &sources);
        assert_eq!(names(&picked), ["m5", "m6"]);
        assert_eq!(
            (c.jobs, c.sent_before, c.failed_before, c.retried, c.uncertain),
            (2, 1, 2, 0, 1)
        );
    }

    #[test]
    fn retry_failed_sends_again_to_every_failed_member_and_to_the_pending_ones() {
        let Fixture {
            sources,
            done,
            failed,
            _dir: _keep,
        } = setup();
        let sel = Selection {
            done,
            retry: RetryFailed::new("").pick(failed),
            ..Selection::default()
        };
        let (picked, c) = run(&sel, &sources);
        assert_eq!(names(&picked), ["m2", "m3", "m5", "m6"]);
        assert_eq!(
            (c.jobs, c.sent_before, c.failed_before, c.retried, c.uncertain),
            (4, 1, 0, 2, 1)
        );
    }

    #[test]
    fn retry_failed_with_a_pattern_sends_again_only_to_failed_members_whose_reply_contains_it() {
        let Fixture {
            sources,
            done,
            failed,
            _dir: _keep,
        } = setup();
        let sel = Selection {
            done,
            retry: RetryFailed::new("MAILBOX Full").pick(failed),
            ..Selection::default()
        };
        let (picked, c) = run(&sel, &sources);
        assert_eq!(names(&picked), ["m3", "m5", "m6"]);
        assert_eq!((c.jobs, c.failed_before, c.retried), (3, 1, 1));
    }

    #[test]
    fn a_member_recorded_sent_is_never_retried_even_if_asked() {
        let Fixture {
            sources,
            done,
            mut failed,
            _dir: _keep,
        } = setup();
        // As if the journal listed m1 among the failed: its status says sent, and that wins.
        failed.push(("m1@example.org".into(), "550 stale".into()));
        let sel = Selection {
            done,
            retry: RetryFailed::new("").pick(failed),
            resend_uncertain: true,
            ..Selection::default()
        };
        let (picked, c) = run(&sel, &sources);
        assert_eq!(names(&picked), ["m2", "m3", "m4", "m5", "m6"]);
        assert_eq!((c.sent_before, c.retried), (1, 2));
    }

    #[test]
    fn retried_members_count_towards_the_limit() {
        let Fixture {
            sources,
            done,
            failed,
            _dir: _keep,
        } = setup();
        let sel = Selection {
            done,
            retry: RetryFailed::new("").pick(failed),
            limit: Some(1),
            ..Selection::default()
        };
        let (picked, c) = run(&sel, &sources);
        assert_eq!(names(&picked), ["m2"]);
        assert_eq!((c.jobs, c.retried, c.over_limit), (1, 1, 3));
    }

    #[test]
    fn the_pattern_is_a_case_insensitive_substring_and_empty_matches_every_reply() {
        let all = RetryFailed::new("");
        assert!(all.matches("") && all.matches("550 no such user"));
        let p = RetryFailed::new("Mailbox FULL");
        assert!(p.matches("452 4.2.2 mailbox full") && p.matches("552 5.2.2 MAILBOX FULL, try later"));
        assert!(!p.matches("550 5.1.1 no such user") && !p.matches(""));
        assert!(RetryFailed::new("5.7.1").matches("554 5.7.1 Relay access denied"));
        // Not a regular expression: its characters stand for themselves.
        assert!(!RetryFailed::new("5.0").matches("550 5x0"));
        assert!(RetryFailed::new("ÜBER").matches("550 über quota"));
    }

    #[test]
    fn members_needing_smtputf8_are_skipped_when_asked_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("m.csv");
        std::fs::write(&list, "email\nana@example.org\njosé@example.org\nb@bücher.example\n").unwrap();
        let sources = Sources::open(&[list], &[]).unwrap();
        let (picked, c) = run(&Selection::default(), &sources);
        assert_eq!((picked.len(), c.skipped), (3, 0));
        let sel = Selection {
            skip_smtputf8: true,
            limit: Some(2),
            ..Selection::default()
        };
        let (picked, c) = run(&sel, &sources);
        assert_eq!(
            picked,
            ["ana@example.org", "b@bücher.example"],
            "an IDNA domain needs no SMTPUTF8"
        );
        assert_eq!((c.jobs, c.skipped, c.over_limit), (2, 1, 0));
    }
}
