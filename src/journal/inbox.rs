//! The journal's side of `bulletin inbox`: finding the member a bounce is about, remembering
//! which mailbox messages were processed, and recording what they said — each message's
//! outcome and its "seen" marks in one transaction, so an interrupted run leaves either all of
//! it or none (and the next run redoes it).
//!
//! `inbox_seen.class` is text for the record: the class, with [`LEFT_ALONE`] appended for a
//! message the run left where it was (a person's reply, anything unmatched), so that a later
//! run does not flag or move it either.

use std::collections::HashMap;

use anyhow::Result;
use rusqlite::{OptionalExtension, params};

use super::{Journal, Outcome};

/// A member of a campaign, as the journal keys them (address lower-cased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub campaign: String,
    pub address: String,
}

/// Appended to `inbox_seen.class` for a message left unread where it was.
const LEFT_ALONE: &str = " (left alone)";

/// What one processed message changed.
#[derive(Debug, Clone)]
pub struct Processed {
    /// Every key the message is known by (Message-ID, mailbox location).
    pub keys: Vec<String>,
    /// The class as text, for the record.
    pub class: &'static str,
    /// Left unread where it was (a person's reply, an unmatched message): never flagged or
    /// moved, by this run or a later one.
    pub left_alone: bool,
    /// The member it matched, what it says about them, and the report's detail.
    pub outcome: Option<(Member, Outcome, String)>,
    pub at: i64,
}

impl Journal {
    /// Was any of `keys` processed before? `Some(left_alone)` if so: whether that run left
    /// the message where it was.
    pub fn inbox_seen(&self, keys: &[String]) -> Result<Option<bool>> {
        let mut stmt = self.db.prepare_cached("SELECT class FROM inbox_seen WHERE key = ?1")?;
        for k in keys {
            if let Some(class) = stmt.query_row([k], |r| r.get::<_, String>(0)).optional()? {
                return Ok(Some(class.ends_with(LEFT_ALONE)));
            }
        }
        Ok(None)
    }

    /// Records processed messages: their outcomes (the first one per member, campaign and
    /// kind is kept) and their keys, all in one transaction.
    pub fn inbox_record(&mut self, batch: &[Processed]) -> Result<()> {
        let tx = self.db.transaction()?;
        for p in batch {
            if let Some((m, outcome, detail)) = &p.outcome {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO inbox_outcome (campaign, address, kind, message, detail, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![m.campaign, m.address, outcome, p.keys.first().map_or("", String::as_str), detail, p.at])?;
            }
            let class = if p.left_alone {
                format!("{}{LEFT_ALONE}", p.class)
            } else {
                p.class.to_owned()
            };
            for k in &p.keys {
                tx.prepare_cached("INSERT OR IGNORE INTO inbox_seen (key, class, at) VALUES (?1, ?2, ?3)")?
                    .execute(params![k, class, p.at])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The member whose message had this Message-ID (`<…>`).
    pub fn member_by_message_id(&self, message_id: &str) -> Result<Option<Member>> {
        Ok(self
            .db
            .prepare_cached("SELECT campaign, address FROM delivery WHERE message_id = ?1 LIMIT 1")?
            .query_row([message_id], |r| {
                Ok(Member {
                    campaign: r.get(0)?,
                    address: r.get(1)?,
                })
            })
            .optional()?)
    }

    /// The latest campaign handed to `address` (lower-cased), if any was, and when (ms).
    pub fn latest_campaign(&self, address: &str) -> Result<Option<(String, i64)>> {
        Ok(self
            .db
            .prepare_cached(
                "SELECT campaign, handed_off FROM delivery WHERE address = ?1 AND handed_off IS NOT NULL ORDER BY handed_off DESC LIMIT 1",
            )?
            .query_row([address], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    /// Calls `each` with every member a message was handed to (what a VERP token can name).
    pub fn each_handed_off(&self, mut each: impl FnMut(Member)) -> Result<()> {
        let mut stmt = self
            .db
            .prepare("SELECT campaign, address FROM delivery WHERE handed_off IS NOT NULL")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            each(Member {
                campaign: r.get(0)?,
                address: r.get(1)?,
            });
        }
        Ok(())
    }

    /// In how many distinct campaigns `address` soft-bounced, counting `also` (the campaigns
    /// of soft bounces not recorded yet) too.
    pub fn soft_bounce_campaigns(&self, address: &str, also: &[&str]) -> Result<usize> {
        let mut campaigns: std::collections::HashSet<String> = also.iter().map(|c| (*c).to_owned()).collect();
        let mut stmt = self
            .db
            .prepare_cached("SELECT DISTINCT campaign FROM inbox_outcome WHERE address = ?1 AND kind = ?2")?;
        for c in stmt.query_map(params![address, Outcome::BouncedSoft], |r| r.get::<_, String>(0))? {
            campaigns.insert(c?);
        }
        let n = campaigns.len();
        Ok(n)
    }

    /// How many members of `campaign` had each outcome.
    pub fn outcome_counts(&self, campaign: &str) -> Result<HashMap<Outcome, usize>> {
        let mut stmt = self
            .db
            .prepare("SELECT kind, count(*) FROM inbox_outcome WHERE campaign = ?1 GROUP BY kind")?;
        let rows = stmt.query_map([campaign], |r| Ok((r.get::<_, Outcome>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = HashMap::new();
        for row in rows {
            let (k, n) = row.map_err(super::unreadable)?;
            out.insert(k, usize::try_from(n).unwrap_or(0));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Campaign, Change, Status};

    fn journal(dir: &std::path::Path) -> Journal {
        let mut j = Journal::open(&dir.join("journal.db")).unwrap();
        for (id, at) in [("c1", 10), ("c2", 20)] {
            let c = Campaign {
                id: id.into(),
                subject: "S".into(),
                fingerprint: "f".into(),
                newsletter: "n.md".into(),
                started: at,
            };
            j.start(&c, [Ok(("a@example.org".to_owned(), "l.csv:2".to_owned()))], at)
                .unwrap();
            j.apply(
                id,
                &[
                    Change::InFlight {
                        address: "a@example.org".into(),
                        message_id: format!("<{id}@example.org>"),
                        handed_off: at,
                    },
                    Change::Finish {
                        address: "a@example.org".into(),
                        status: Status::Sent,
                        reply: "250".into(),
                        fields: None,
                        at,
                    },
                ],
            )
            .unwrap();
        }
        j
    }

    #[test]
    fn members_are_found_by_message_id_and_outcomes_recorded_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = journal(dir.path());
        let m = j.member_by_message_id("<c1@example.org>").unwrap().unwrap();
        assert_eq!((m.campaign.as_str(), m.address.as_str()), ("c1", "a@example.org"));
        assert!(j.member_by_message_id("<nope@example.org>").unwrap().is_none());
        assert_eq!(j.latest_campaign("a@example.org").unwrap(), Some(("c2".to_owned(), 20)));
        assert!(j.latest_campaign("b@example.org").unwrap().is_none());

        let keys = vec!["id:<b1@mx>".to_owned(), "maildir:/x/1".to_owned()];
        assert_eq!(j.inbox_seen(&keys).unwrap(), None);
        let p = Processed {
            keys: keys.clone(),
            class: "soft bounce",
            left_alone: false,
            outcome: Some((m, Outcome::BouncedSoft, "4.2.2".into())),
            at: 30,
        };
        let reply = Processed {
            keys: vec!["id:<reply@example.org>".to_owned()],
            class: "other",
            left_alone: true,
            outcome: None,
            at: 31,
        };
        j.inbox_record(&[p.clone(), p, reply]).unwrap();
        assert_eq!(j.inbox_seen(&keys[1..]).unwrap(), Some(false));
        assert_eq!(
            j.inbox_seen(&["id:<reply@example.org>".to_owned()]).unwrap(),
            Some(true),
            "a message left alone is remembered as such"
        );
        assert_eq!(j.soft_bounce_campaigns("a@example.org", &[]).unwrap(), 1);
        assert_eq!(j.soft_bounce_campaigns("a@example.org", &["c1", "c2"]).unwrap(), 2);
        assert_eq!(j.outcome_counts("c1").unwrap()[&Outcome::BouncedSoft], 1);
        let mut all = Vec::new();
        j.each_handed_off(|m| all.push(m.campaign)).unwrap();
        all.sort();
        assert_eq!(all, ["c1", "c2"]);
    }

    #[test]
    fn an_unknown_outcome_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let j = journal(dir.path());
        j.db.execute(
            "INSERT INTO inbox_outcome VALUES ('c1', 'a@example.org', 'forwarded', 'k', NULL, 1)",
            [],
        )
        .unwrap();
        let e = j.outcome_counts("c1").unwrap_err();
        assert!(
            format!("{e:#}").contains("unknown inbox outcome \"forwarded\""),
            "{e:#}"
        );
    }
}
