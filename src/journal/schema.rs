//! The journal's format and its upgrades. `PRAGMA user_version` counts the [`MIGRATIONS`] a
//! journal has had; opening it runs the ones it lacks, all in one transaction, and refuses a
//! journal from a newer bulletin without writing to it.

use std::path::Path;

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, TransactionBehavior};

/// The journal's format, one step per version: step `i` takes a journal from version `i` to
/// `i + 1`. To change the format, append a step; never edit one that has shipped. A new
/// delivery status needs a new version too (an empty step will do), so that an older bulletin
/// refuses the journal instead of meeting a status it does not know.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: campaigns and their members. bulletin 0.1 created these tables without setting
    // user_version, so its journals are at version 0 with the tables already there:
    // `IF NOT EXISTS` makes this step take them as they are.
    "
CREATE TABLE IF NOT EXISTS campaign (
    id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    newsletter TEXT NOT NULL,
    started INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS delivery (
    campaign TEXT NOT NULL REFERENCES campaign(id),
    address TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    reply TEXT,
    message_id TEXT,
    handed_off INTEGER,
    updated INTEGER,
    source TEXT,
    fields TEXT,
    PRIMARY KEY (campaign, address)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS delivery_handed_off ON delivery(handed_off) WHERE handed_off IS NOT NULL;
",
    // 2: what `bulletin inbox` learns after the relay's 250. A bounce, complaint or mailed
    // unsubscribe is an event about a member who stays `sent` (resume and rate windows read
    // `delivery.status` and must not change meaning), so it gets its own table rather than new
    // statuses; `inbox_outcome.kind` is read back strictly like a status. `inbox_seen` remembers
    // every message processed (by Message-ID and by mailbox location) so a second run over the
    // same mailbox changes nothing. Bounces name the original Message-ID: index it.
    "
CREATE TABLE inbox_outcome (
    campaign TEXT NOT NULL,
    address TEXT NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    detail TEXT,
    at INTEGER NOT NULL,
    PRIMARY KEY (campaign, address, kind)
) WITHOUT ROWID;
CREATE INDEX inbox_outcome_address ON inbox_outcome(address, kind);
CREATE TABLE inbox_seen (
    key TEXT PRIMARY KEY,
    class TEXT NOT NULL,
    at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX delivery_message_id ON delivery(message_id) WHERE message_id IS NOT NULL;
",
    // 3: the language of the version each member gets (`NAME.es.md`), for `report`.
    "ALTER TABLE delivery ADD COLUMN lang TEXT;",
    // 4: the newsletter as sent — its Markdown and its language variants (a JSON array of
    // [tag, text]) — so `archive` shows what went out even after the file changed or went.
    // A table of its own: `campaign` rows stay as older bulletins read them.
    "
CREATE TABLE campaign_source (
    campaign TEXT PRIMARY KEY,
    newsletter TEXT NOT NULL,
    variants TEXT NOT NULL
) WITHOUT ROWID;
",
];

/// The journal format this bulletin reads and writes.
pub(crate) const VERSION: usize = MIGRATIONS.len();

/// The journal's format version, or an error naming the file if it is newer than `known`.
fn version(db: &Connection, path: &Path, known: usize) -> Result<usize> {
    let v: i64 = db
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .with_context(|| format!("the journal {} is damaged or not a bulletin journal", path.display()))?;
    match usize::try_from(v) {
        Ok(v) if v <= known => Ok(v),
        _ => bail!(
            "the journal {} has format version {v}, and this bulletin knows only up to version {known}: \
             it was written by a newer bulletin; upgrade bulletin",
            path.display()
        ),
    }
}

/// Refuses a journal written by a newer bulletin. Reads only.
pub(super) fn refuse_newer(db: &Connection, path: &Path) -> Result<()> {
    version(db, path, VERSION).map(drop)
}

/// Brings the journal to version `steps.len()`: the steps it lacks and the new version in one
/// transaction, all or nothing. A journal already there is not written to.
pub(super) fn migrate(db: &mut Connection, path: &Path, steps: &[&str]) -> Result<()> {
    if version(db, path, steps.len())? == steps.len() {
        return Ok(());
    }
    let failed = || {
        format!(
            "cannot bring the journal {} to format version {}",
            path.display(),
            steps.len()
        )
    };
    let tx = db
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .with_context(failed)?;
    // Again, under the write lock: another bulletin may have upgraded it meanwhile.
    let from = version(&tx, path, steps.len())?;
    for step in &steps[from..] {
        tx.execute_batch(step).with_context(failed)?;
    }
    tx.pragma_update(None, "user_version", steps.len() as i64)
        .with_context(failed)?;
    tx.commit().with_context(failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Journal, Status};

    /// The schema exactly as bulletin 0.1 wrote it, before journals had a version.
    const V0_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS campaign (
    id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    newsletter TEXT NOT NULL,
    started INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS delivery (
    campaign TEXT NOT NULL REFERENCES campaign(id),
    address TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    reply TEXT,
    message_id TEXT,
    handed_off INTEGER,
    updated INTEGER,
    source TEXT,
    fields TEXT,
    PRIMARY KEY (campaign, address)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS delivery_handed_off ON delivery(handed_off) WHERE handed_off IS NOT NULL;
";

    /// A v0 journal as bulletin 0.1 wrote it: one campaign, a member in each status.
    fn v0_journal(path: &Path) {
        let db = Connection::open(path).unwrap();
        db.pragma_update(None, "page_size", 1024).unwrap();
        db.pragma_update(None, "journal_mode", "WAL").unwrap();
        db.execute_batch(V0_SCHEMA).unwrap();
        db.execute_batch(
            "INSERT INTO campaign VALUES ('c1', 'Hello', 'fp1', 'newsletters/n.md', 1700000000000);
             INSERT INTO delivery VALUES
               ('c1', 'p@example.org', 'pending', 0, NULL, NULL, NULL, 1, 'l.csv:2', NULL),
               ('c1', 'i@example.org', 'in-flight', 1, NULL, '<i@x>', 20, 20, 'l.csv:3', NULL),
               ('c1', 's@example.org', 'sent', 1, '250 ok', '<s@x>', 21, 22, 'l.csv:4', NULL),
               ('c1', 'f@example.org', 'failed', 2, '550 no such user', '<f@x>', 23, 24, 'l.csv:5', '{\"email\":\"f@example.org\"}'),
               ('c1', 'u@example.org', 'uncertain', 1, 'timeout after DATA', '<u@x>', 25, 26, 'l.csv:6', NULL);",
        )
        .unwrap();
    }

    fn user_version(path: &Path) -> i64 {
        let db = Connection::open(path).unwrap();
        db.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap()
    }

    /// Every table's definition and every row, as text.
    fn dump(path: &Path) -> Vec<String> {
        let db = Connection::open(path).unwrap();
        let mut out = Vec::new();
        for sql in [
            "SELECT type || ' ' || name || ' ' || ifnull(sql, '') FROM sqlite_master ORDER BY name",
            "SELECT id || '|' || subject || '|' || fingerprint || '|' || newsletter || '|' || started FROM campaign",
            "SELECT quote(campaign) || quote(address) || quote(status) || quote(attempts) || quote(reply) \
             || quote(message_id) || quote(handed_off) || quote(updated) || quote(source) || quote(fields) \
             FROM delivery ORDER BY address",
        ] {
            let mut stmt = db.prepare(sql).unwrap();
            out.extend(
                stmt.query_map([], |r| r.get::<_, String>(0))
                    .unwrap()
                    .map(Result::unwrap),
            );
        }
        out
    }

    #[test]
    fn a_journal_bulletin_0_1_wrote_opens_as_the_current_version_with_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        v0_journal(&path);
        let before = dump(&path);
        assert_eq!(user_version(&path), 0);

        let j = Journal::open(&path).unwrap();
        assert_eq!(user_version(&path), VERSION as i64);
        let rows = |d: Vec<String>| {
            d.into_iter()
                .filter(|l| !l.starts_with("table ") && !l.starts_with("index "))
                .collect::<Vec<_>>()
        };
        assert_eq!(rows(dump(&path)), rows(before), "the data is untouched");
        let c = j.campaign("c1").unwrap().unwrap();
        assert_eq!(
            (c.subject.as_str(), c.fingerprint.as_str(), c.started),
            ("Hello", "fp1", 1700000000000)
        );
        let statuses: Vec<_> = j
            .deliveries("c1")
            .unwrap()
            .into_iter()
            .map(|d| (d.address, d.status, d.attempts))
            .collect();
        let expected = [
            ("p@example.org", Status::Pending, 0),
            ("i@example.org", Status::InFlight, 1),
            ("s@example.org", Status::Sent, 1),
            ("f@example.org", Status::Failed, 2),
            ("u@example.org", Status::Uncertain, 1),
        ]
        .map(|(a, s, n)| (a.to_owned(), s, n));
        assert_eq!(statuses, expected);
        let done = j.done("c1").unwrap();
        let expected_done = &expected[1..];
        assert_eq!(done.len(), expected_done.len());
        for (a, s, _) in expected_done {
            assert_eq!(done[&crate::list::key_hash(a)], *s, "{a}");
        }
        let mut handoffs = j.handoffs_since(0).unwrap();
        handoffs.sort_unstable();
        assert_eq!(handoffs, [20, 21, 23, 25]);
        assert_eq!(j.recover("c1").unwrap(), 1, "the member left in flight");
        // A campaign sent before the journal kept newsletters has no copy.
        assert!(j.source("c1").unwrap().is_none());
    }

    #[test]
    fn a_new_journal_gets_the_current_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        drop(Journal::open(&path).unwrap());
        assert_eq!(VERSION, 4);
        assert_eq!(user_version(&path), VERSION as i64);
        let db = Connection::open(&path).unwrap();
        let page_size: i64 = db.pragma_query_value(None, "page_size", |r| r.get(0)).unwrap();
        let mode: String = db.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
        assert_eq!((page_size, mode.as_str()), (1024, "wal"));
        let tables: i64 = db
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name IN ('campaign', 'delivery', 'delivery_handed_off', \
                 'inbox_outcome', 'inbox_seen', 'delivery_message_id', 'campaign_source')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 7);
    }

    #[test]
    fn opening_twice_changes_nothing_the_second_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        v0_journal(&path);
        drop(Journal::open(&path).unwrap());
        let (bytes, rows) = (std::fs::read(&path).unwrap(), dump(&path));
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.deliveries("c1").unwrap().len(), 5);
        drop(j);
        assert_eq!(user_version(&path), VERSION as i64);
        assert_eq!(dump(&path), rows);
        assert!(
            std::fs::read(&path).unwrap() == bytes,
            "an up-to-date journal is not written to"
        );
    }

    #[test]
    fn a_journal_from_a_newer_bulletin_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        // One as a newer bulletin would leave it (WAL), and one in SQLite's default rollback
        // mode, which opening it as usual would switch to WAL.
        for wal in [true, false] {
            let path = dir.path().join(format!("journal-{wal}.db"));
            if wal {
                drop(Journal::open(&path).unwrap());
            }
            let db = Connection::open(&path).unwrap();
            db.execute_batch(V0_SCHEMA).unwrap();
            db.pragma_update(None, "user_version", 99).unwrap();
            drop(db);
            let bytes = std::fs::read(&path).unwrap();

            let e = Journal::open(&path).err().expect("a journal of version 99 is refused");
            let e = format!("{e:#}");
            assert!(e.contains(&path.display().to_string()), "{e}");
            assert!(e.contains("version 99") && e.contains("upgrade bulletin"), "{e}");
            assert!(
                std::fs::read(&path).unwrap() == bytes,
                "the file is unchanged (wal: {wal})"
            );
            assert_eq!(user_version(&path), 99);
        }
    }

    #[test]
    fn a_later_step_runs_once_and_all_steps_run_or_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        v0_journal(&path);
        let mut db = Connection::open(&path).unwrap();
        // The next version as a later feature might add it: one more entry.
        let next: Vec<&str> = MIGRATIONS
            .iter()
            .copied()
            .chain(["ALTER TABLE delivery ADD COLUMN bounce TEXT"])
            .collect();
        let n = next.len();
        migrate(&mut db, &path, &next).unwrap();
        migrate(&mut db, &path, &next).unwrap();
        assert_eq!(user_version(&path), n as i64);
        let bounce: Vec<Option<String>> = db
            .prepare("SELECT bounce FROM delivery")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(bounce, vec![None; 5], "every member kept, the new column added once");

        // A step that fails leaves the journal as it was: not the steps before it either.
        let rows = dump(&path);
        let mut broken = next.clone();
        broken.extend([
            "ALTER TABLE delivery ADD COLUMN complaint TEXT",
            "SELECT * FROM nowhere",
        ]);
        let e = migrate(&mut db, &path, &broken).unwrap_err();
        assert!(format!("{e:#}").contains(&format!("format version {}", n + 2)), "{e:#}");
        assert_eq!(user_version(&path), n as i64);
        assert_eq!(dump(&path), rows);
        // And this bulletin refuses the newer journal.
        drop(db);
        let e = Journal::open(&path).err().expect("refused");
        assert!(format!("{e:#}").contains("upgrade bulletin"), "{e:#}");
    }
}
