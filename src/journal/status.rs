//! A member's state in a campaign, and how it is stored: the journal's `delivery.status` text.
//! Reading back a value this bulletin does not know is an error, never a default: taking an
//! outcome written by a newer bulletin for `pending` would send that member the message again.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

/// A member's state in a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    InFlight,
    Sent,
    Failed,
    Uncertain,
}

impl Status {
    /// Every status, each stored as its [`Status::as_str`].
    pub const ALL: [Status; 5] = [
        Status::Pending,
        Status::InFlight,
        Status::Sent,
        Status::Failed,
        Status::Uncertain,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::InFlight => "in-flight",
            Status::Sent => "sent",
            Status::Failed => "failed",
            Status::Uncertain => "uncertain",
        }
    }
}

impl ToSql for Status {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for Status {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let stored = value.as_str()?;
        Status::ALL.into_iter().find(|s| s.as_str() == stored).ok_or_else(|| {
            FromSqlError::Other(
                format!(
                    "unknown delivery status {stored:?} in the journal: it was written by a newer bulletin; upgrade bulletin"
                )
                .into(),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn read(db: &Connection, sql: &str) -> rusqlite::Result<Status> {
        db.query_row(sql, [], |r| r.get(0))
    }

    #[test]
    fn each_status_is_stored_as_its_name_and_reads_back_as_itself() {
        let db = Connection::open_in_memory().unwrap();
        let names = ["pending", "in-flight", "sent", "failed", "uncertain"];
        assert_eq!(Status::ALL.map(Status::as_str), names);
        for (status, name) in Status::ALL.into_iter().zip(names) {
            let stored: String = db.query_row("SELECT ?1", [status], |r| r.get(0)).unwrap();
            assert_eq!(stored, name);
            assert_eq!(read(&db, &format!("SELECT '{name}'")).unwrap(), status);
        }
    }

    #[test]
    fn an_unknown_status_is_an_error_not_pending() {
        let db = Connection::open_in_memory().unwrap();
        for unknown in ["bounced", "", "Sent", "sent "] {
            let e = read(&db, &format!("SELECT '{unknown}'")).unwrap_err();
            assert!(
                e.to_string()
                    .contains(&format!("unknown delivery status \"{unknown}\" in the journal")),
                "{e}"
            );
            assert!(e.to_string().contains("upgrade bulletin"), "{e}");
        }
        assert!(read(&db, "SELECT NULL").is_err());
        assert!(read(&db, "SELECT 1").is_err());
    }
}
