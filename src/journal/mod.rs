//! The send journal: SQLite (bundled, WAL, mode 0600) at `.bulletin/journal.db`.
//!
//! Every state change is committed as it happens: a member is marked `in-flight` before the
//! first byte of their message leaves, and `failed` or back to `pending` as soon as the relay
//! answers. `sent` is committed together with the same worker's next `in-flight` mark (one
//! commit per member instead of two), or on its own before the worker waits or stops; changes
//! several workers queue together go in one transaction ([`crate::send::record`]). Each worker
//! therefore has at most one row in flight at any instant, so a `kill -9` leaves at most
//! `concurrency` members unknown; the next run reports them `uncertain` and does not resend
//! them unless asked.

use std::path::Path;

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, params};

mod inbox;
mod outcome;
mod schema;
mod source;
mod status;

pub(crate) use inbox::{Member, Processed};
pub(crate) use outcome::Outcome;
pub(crate) use source::Source;
pub(crate) use status::Status;

/// A campaign as recorded.
#[derive(Debug, Clone)]
pub struct Campaign {
    pub id: String,
    pub subject: String,
    pub fingerprint: String,
    pub newsletter: String,
    pub started: i64,
}

/// One member's row.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub address: String,
    pub status: Status,
    pub attempts: i64,
    pub reply: Option<String>,
    pub message_id: Option<String>,
    pub source: Option<String>,
    /// The member's CSV fields as JSON, kept for failed members (for `--failed-csv`).
    pub fields: Option<String>,
    /// The language of the version the member gets (none in journals from before languages).
    pub lang: Option<String>,
}

/// A campaign's members by state; in flight counts as pending.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    pub sent: usize,
    pub failed: usize,
    pub pending: usize,
    pub uncertain: usize,
}

impl Tally {
    /// Every member it recorded has an outcome: a run went to the end.
    pub fn finished(&self) -> bool {
        self.pending == 0 && self.sent + self.failed + self.uncertain > 0
    }
}

pub struct Journal {
    db: Connection,
}

/// One change to a member's row, applied with others in one transaction by
/// [`Journal::apply`].
#[derive(Debug, Clone)]
pub enum Change {
    /// About to be handed to the relay.
    InFlight {
        address: String,
        message_id: String,
        handed_off: i64,
    },
    /// An outcome (`fields`: the CSV row as JSON, kept for failed members).
    Finish {
        address: String,
        status: Status,
        reply: String,
        fields: Option<String>,
        at: i64,
    },
}

impl Journal {
    /// Opens (creating, mode 0600, in a 0700 directory) the journal, and brings it to format
    /// [`VERSION`]. A journal from a newer bulletin is refused and left untouched.
    pub fn open(path: &Path) -> Result<Journal> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::private::private_dir(dir)?;
        }
        let created = !path.exists();
        if created {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("cannot create the journal {}", path.display()))?;
        }
        let mut db = Connection::open(path).with_context(|| format!("cannot open the journal {}", path.display()))?;
        db.busy_timeout(std::time::Duration::from_secs(10))?;
        // WAL + NORMAL: each commit survives the process being killed at any instant; only an
        // operating-system crash or power loss can lose the last few commits.
        if created {
            // Every commit writes the pages it changed whole into the WAL (a member's row, an
            // index leaf): small pages make that a few KB instead of a dozen.
            db.pragma_update(None, "page_size", 1024)?;
        }
        // Before anything that writes (switching to WAL does): a newer bulletin's journal is
        // left exactly as it is.
        schema::refuse_newer(&db, path)?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        // Copy the WAL back into the database every 10,000 pages (~10 MB) rather than every
        // 1,000: each copy costs two fsyncs, and during a send the commit that triggers it waits.
        db.pragma_update(None, "wal_autocheckpoint", 10_000)?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        schema::migrate(&mut db, path, schema::MIGRATIONS)?;
        Ok(Journal { db })
    }

    pub fn campaign(&self, id: &str) -> Result<Option<Campaign>> {
        Ok(self
            .db
            .query_row(
                "SELECT id, subject, fingerprint, newsletter, started FROM campaign WHERE id = ?1",
                [id],
                |r| {
                    Ok(Campaign {
                        id: r.get(0)?,
                        subject: r.get(1)?,
                        fingerprint: r.get(2)?,
                        newsletter: r.get(3)?,
                        started: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }

    /// Creates the campaign, or updates its fingerprint when the user accepted a change.
    /// Members left in flight by a crash become `uncertain`. Returns how many.
    pub fn recover(&self, campaign: &str) -> Result<usize> {
        Ok(self.db.execute(
            "UPDATE delivery SET status = 'uncertain', reply = COALESCE(reply, 'the run stopped while this message was being sent') \
             WHERE campaign = ?1 AND status = 'in-flight'",
            [campaign],
        )?)
    }

    /// Status of every member already in the campaign.
    /// Members of the campaign that are no longer pending (sent, failed, uncertain, in
    /// flight), by the hash of their address: what a resumed run skips. A 16-byte key per
    /// member, so resuming a million-member campaign stays small.
    pub fn done(&self, campaign: &str) -> Result<std::collections::HashMap<crate::list::KeyHash, Status>> {
        let mut stmt = self
            .db
            .prepare("SELECT address, status FROM delivery WHERE campaign = ?1 AND status != 'pending'")?;
        // Sized once: growing it would hold the old and the new table together.
        let count: i64 = self.db.query_row(
            "SELECT count(*) FROM delivery WHERE campaign = ?1 AND status != 'pending'",
            [campaign],
            |r| r.get(0),
        )?;
        let mut out = std::collections::HashMap::with_capacity(usize::try_from(count).unwrap_or(0));
        let rows = stmt.query_map([campaign], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))?;
        for row in rows {
            let (a, s) = row.map_err(unreadable)?;
            out.insert(crate::list::key_hash(&a), s);
        }
        Ok(out)
    }

    /// The members recorded `failed` in the campaign, with the relay's reply that failed them
    /// (empty when none was kept): what `send --retry-failed` chooses from. Only the failed
    /// rows are read, so this stays small however big the campaign.
    pub fn failed(&self, campaign: &str) -> Result<Vec<(String, String)>> {
        let mut stmt = self
            .db
            .prepare("SELECT address, COALESCE(reply, '') FROM delivery WHERE campaign = ?1 AND status = 'failed'")?;
        let rows = stmt.query_map([campaign], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Records the campaign (or, resuming, its new fingerprint) and adds its members as
    /// `pending` (those already present are left alone) — all in one transaction, so a crash or
    /// a full disk leaves either everything or nothing. `members` yields (address key,
    /// `file:line`); an error from it rolls everything back.
    pub fn start(
        &mut self,
        c: &Campaign,
        members: impl IntoIterator<Item = Result<(String, String)>>,
        now: i64,
    ) -> Result<()> {
        self.start_in(c, members.into_iter().map(|m| m.map(|(a, s)| (a, s, None))), now)
    }

    /// As [`Journal::start`], each member with the language of the version they get.
    pub fn start_in(
        &mut self,
        c: &Campaign,
        members: impl IntoIterator<Item = Result<(String, String, Option<String>)>>,
        now: i64,
    ) -> Result<()> {
        let campaign = &c.id;
        let tx = self.db.transaction()?;
        tx.execute(
            "INSERT INTO campaign (id, subject, fingerprint, newsletter, started) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(id) DO UPDATE SET subject = excluded.subject, fingerprint = excluded.fingerprint",
            params![c.id, c.subject, c.fingerprint, c.newsletter, c.started],
        )?;
        {
            let mut stmt = tx.prepare(
                "INSERT OR IGNORE INTO delivery (campaign, address, status, updated, source, lang) VALUES (?1, ?2, 'pending', ?3, ?4, ?5)",
            )?;
            for member in members {
                let (address, source, lang) = member?;
                stmt.execute(params![campaign, address, now, source, lang])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Applies `changes` in order, in one transaction: all of them or none.
    pub fn apply(&mut self, campaign: &str, changes: &[Change]) -> Result<()> {
        let tx = self.db.transaction()?;
        for change in changes {
            match change {
                Change::InFlight {
                    address,
                    message_id,
                    handed_off,
                } => in_flight(&tx, campaign, address, message_id, *handed_off)?,
                Change::Finish {
                    address,
                    status,
                    reply,
                    fields,
                    at,
                } => finish(&tx, campaign, address, *status, reply, fields.as_deref(), *at)?,
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Hand-off times since `since` (Unix ms), every campaign: what long rate windows count.
    pub fn handoffs_since(&self, since: i64) -> Result<Vec<i64>> {
        let mut stmt = self
            .db
            .prepare("SELECT handed_off FROM delivery WHERE handed_off > ?1 AND status != 'pending'")?;
        let rows = stmt.query_map([since], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<Vec<i64>>>()?)
    }

    /// Every member of a campaign.
    pub fn deliveries(&self, campaign: &str) -> Result<Vec<Delivery>> {
        let mut stmt = self.db.prepare(
            "SELECT address, status, attempts, reply, message_id, source, fields, lang FROM delivery WHERE campaign = ?1 ORDER BY source, address",
        )?;
        let rows = stmt.query_map([campaign], |r| {
            Ok(Delivery {
                address: r.get(0)?,
                status: r.get(1)?,
                attempts: r.get(2)?,
                reply: r.get(3)?,
                message_id: r.get(4)?,
                source: r.get(5)?,
                fields: r.get(6)?,
                lang: r.get(7)?,
            })
        })?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(unreadable)
    }

    /// Makes every later write fail, as a full disk or a read-only file would.
    #[cfg(test)]
    pub fn read_only_for_test(&self) {
        self.db.pragma_update(None, "query_only", true).unwrap();
    }

    /// Campaigns that reached at least one member, newest first; test sends (`+test-` ids)
    /// left out. Dry runs never reach the journal.
    pub fn sent_campaigns(&self) -> Result<Vec<Campaign>> {
        self.campaigns_where(
            "WHERE instr(id, '+test-') = 0 \
             AND EXISTS (SELECT 1 FROM delivery d WHERE d.campaign = c.id AND d.status = 'sent')",
        )
    }

    /// Every campaign, newest first.
    pub fn campaigns(&self) -> Result<Vec<Campaign>> {
        self.campaigns_where("")
    }

    /// The campaigns `filter` (a `WHERE` clause over `campaign c`, or nothing) keeps, newest
    /// first.
    fn campaigns_where(&self, filter: &str) -> Result<Vec<Campaign>> {
        let mut stmt = self.db.prepare(&format!(
            "SELECT id, subject, fingerprint, newsletter, started FROM campaign c {filter} ORDER BY started DESC, id"
        ))?;
        let rows = stmt.query_map([], |r| {
            Ok(Campaign {
                id: r.get(0)?,
                subject: r.get(1)?,
                fingerprint: r.get(2)?,
                newsletter: r.get(3)?,
                started: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// How many of a campaign's members are in each state.
    pub fn tally(&self, campaign: &str) -> Result<Tally> {
        let mut stmt = self
            .db
            .prepare("SELECT status, count(*) FROM delivery WHERE campaign = ?1 GROUP BY status")?;
        let rows = stmt.query_map([campaign], |r| Ok((r.get::<_, Status>(0)?, r.get::<_, i64>(1)?)))?;
        let mut t = Tally::default();
        for row in rows {
            let (status, n) = row.map_err(unreadable)?;
            let n = usize::try_from(n).unwrap_or(0);
            match status {
                Status::Sent => t.sent += n,
                Status::Failed => t.failed += n,
                Status::Pending | Status::InFlight => t.pending += n,
                Status::Uncertain => t.uncertain += n,
            }
        }
        Ok(t)
    }

    /// Campaign ids that start with `prefix`, newest first.
    pub fn campaigns_like(&self, prefix: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .db
            .prepare("SELECT id FROM campaign WHERE substr(id, 1, length(?1)) = ?1 ORDER BY started DESC")?;
        let rows = stmt.query_map([prefix], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
    }
}

/// A row that does not convert (an unknown status) says why on its own, without rusqlite's
/// "Conversion error from type Text at index: 1" in front.
fn unreadable(e: rusqlite::Error) -> anyhow::Error {
    match e {
        rusqlite::Error::FromSqlConversionFailure(_, _, why) => anyhow::anyhow!(why),
        e => e.into(),
    }
}

/// The reply of an earlier attempt (a 4xx, or the 5xx of a member `--retry-failed` sends to
/// again) is cleared: if the run stops now, [`Journal::recover`] must not report that old
/// reply as the reason this attempt is uncertain.
fn in_flight(db: &Connection, campaign: &str, address: &str, message_id: &str, handed_off: i64) -> Result<()> {
    db.prepare_cached(
        "UPDATE delivery SET status = 'in-flight', attempts = attempts + 1, message_id = ?3, handed_off = ?4, updated = ?4, \
         reply = NULL WHERE campaign = ?1 AND address = ?2",
    )?
    .execute(params![campaign, address, message_id, handed_off])?;
    Ok(())
}

/// The CSV row kept for a failed member is dropped once they are sent (after
/// `--retry-failed`): it is kept only to fix and resend failures.
fn finish(
    db: &Connection,
    campaign: &str,
    address: &str,
    status: Status,
    reply: &str,
    fields: Option<&str>,
    now: i64,
) -> Result<()> {
    db.prepare_cached(
        "UPDATE delivery SET status = ?3, reply = ?4, updated = ?6, \
         fields = CASE WHEN ?3 = 'sent' THEN NULL ELSE COALESCE(?5, fields) END \
         WHERE campaign = ?1 AND address = ?2",
    )?
    .execute(params![campaign, address, status, reply, fields, now])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_and_recovery() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j/journal.db");
        let mut j = Journal::open(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let c = Campaign {
            id: "c1".into(),
            subject: "S".into(),
            fingerprint: "f".into(),
            newsletter: "n.md".into(),
            started: 1,
        };
        j.start(
            &c,
            ["a", "b", "c", "d"]
                .iter()
                .enumerate()
                .map(|(i, a)| Ok((format!("{a}@example.org"), format!("l.csv:{}", i + 2)))),
            1,
        )
        .unwrap();
        let in_flight = |address: &str, n: i64| Change::InFlight {
            address: address.into(),
            message_id: format!("<m{n}@example.org>"),
            handed_off: 10 + n,
        };
        let sent = |address: &str, n: i64| Change::Finish {
            address: address.into(),
            status: Status::Sent,
            reply: "250 ok".into(),
            fields: None,
            at: 10 + n,
        };
        j.apply("c1", &[in_flight("a@example.org", 1)]).unwrap();
        j.apply("c1", &[sent("a@example.org", 2), in_flight("b@example.org", 3)])
            .unwrap();
        j.apply("c1", &[sent("b@example.org", 4), in_flight("c@example.org", 5)])
            .unwrap();
        j.apply("c1", &[in_flight("d@example.org", 6)]).unwrap();
        drop(j);
        // As after a crash: c and d were in flight.
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.recover("c1").unwrap(), 2);
        let s = j.done("c1").unwrap();
        let of = |a: &str| s[&crate::list::key_hash(a)];
        assert_eq!(of("a@example.org"), Status::Sent);
        assert_eq!(of("b@example.org"), Status::Sent);
        assert_eq!(of("c@example.org"), Status::Uncertain);
        assert_eq!(of("d@example.org"), Status::Uncertain);
        assert_eq!(j.handoffs_since(0).unwrap().len(), 4);
        assert_eq!(j.campaign("c1").unwrap().unwrap().fingerprint, "f");
    }

    #[test]
    fn a_failed_member_sent_again_goes_through_in_flight_counts_attempts_and_sheds_its_failure() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let mut j = Journal::open(&path).unwrap();
        let c = Campaign {
            id: "c1".into(),
            subject: "S".into(),
            fingerprint: "f".into(),
            newsletter: "n.md".into(),
            started: 1,
        };
        let members = ["a", "b", "c", "d"].map(|a| Ok((format!("{a}@example.org"), "l.csv:2".to_owned())));
        j.start(&c, members, 1).unwrap();
        let in_flight = |a: &str, n: i64| Change::InFlight {
            address: format!("{a}@example.org"),
            message_id: format!("<m{n}@example.org>"),
            handed_off: n,
        };
        let finish = |a: &str, status, reply: &str, n| Change::Finish {
            address: format!("{a}@example.org"),
            status,
            reply: reply.into(),
            fields: (status == Status::Failed).then(|| format!("{{\"email\":\"{a}@example.org\"}}")),
            at: n,
        };
        for (n, (a, status, reply)) in [
            ("a", Status::Sent, "250 ok"),
            ("b", Status::Failed, "550 5.1.1 no such user"),
            ("c", Status::Failed, "552 5.2.2 Mailbox FULL"),
            ("d", Status::Pending, "451 4.3.0 later"),
        ]
        .into_iter()
        .enumerate()
        {
            let n = i64::try_from(n).unwrap() * 2 + 10;
            j.apply("c1", &[in_flight(a, n), finish(a, status, reply, n + 1)])
                .unwrap();
        }
        let mut failed = j.failed("c1").unwrap();
        failed.sort();
        assert_eq!(
            failed,
            [
                ("b@example.org".to_owned(), "550 5.1.1 no such user".to_owned()),
                ("c@example.org".to_owned(), "552 5.2.2 Mailbox FULL".to_owned())
            ]
        );
        assert!(j.failed("other").unwrap().is_empty());

        // Sent again: b is accepted; c and d are in flight when the run is killed.
        j.apply("c1", &[in_flight("b", 20), finish("b", Status::Sent, "250 queued", 21)])
            .unwrap();
        j.apply("c1", &[in_flight("c", 22), in_flight("d", 23)]).unwrap();
        drop(j);
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.recover("c1").unwrap(), 2);
        let rows: Vec<_> = j
            .deliveries("c1")
            .unwrap()
            .into_iter()
            .map(|d| {
                (
                    d.address,
                    d.status,
                    d.attempts,
                    d.reply.unwrap_or_default(),
                    d.fields.is_some(),
                )
            })
            .collect();
        let stopped = "the run stopped while this message was being sent";
        let expected = [
            ("a", Status::Sent, 1, "250 ok", false),
            ("b", Status::Sent, 2, "250 queued", false),
            ("c", Status::Uncertain, 2, stopped, true),
            ("d", Status::Uncertain, 2, stopped, false),
        ]
        .map(|(a, s, n, reply, fields)| (format!("{a}@example.org"), s, n, reply.to_owned(), fields));
        assert_eq!(rows, expected);
        assert!(j.failed("c1").unwrap().is_empty());
    }

    #[test]
    fn a_row_with_an_unknown_status_makes_reads_that_touch_it_fail_not_pending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let mut j = Journal::open(&path).unwrap();
        for id in ["c1", "c2"] {
            let c = Campaign {
                id: id.into(),
                subject: "S".into(),
                fingerprint: "f".into(),
                newsletter: "n.md".into(),
                started: 1,
            };
            let members = ["a@example.org", "b@example.org"].map(|a| Ok((a.to_owned(), "l.csv:2".to_owned())));
            j.start(&c, members, 1).unwrap();
        }
        // As a newer bulletin might record an outcome this one does not know.
        let raw = Connection::open(&path).unwrap();
        raw.execute(
            "UPDATE delivery SET status = 'bounced' WHERE campaign = 'c1' AND address = 'b@example.org'",
            [],
        )
        .unwrap();
        let expected =
            "unknown delivery status \"bounced\" in the journal: it was written by a newer bulletin; upgrade bulletin";
        let e = j.done("c1").unwrap_err();
        assert_eq!(format!("{e:#}"), expected);
        let e = j.deliveries("c1").unwrap_err();
        assert_eq!(format!("{e:#}"), expected);
        // Reads that do not touch the row are unaffected.
        assert!(j.done("c2").unwrap().is_empty());
        assert_eq!(j.deliveries("c2").unwrap().len(), 2);
    }
}
