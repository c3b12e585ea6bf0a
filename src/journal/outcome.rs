//! What `bulletin inbox` learned about a member after their message was handed off, stored as
//! `inbox_outcome.kind`. Like [`super::Status`], a value this bulletin does not know is an
//! error when read back, never a default.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

/// A bounce, complaint or mailed unsubscribe matched to a member of a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    BouncedHard,
    BouncedSoft,
    Complained,
    Unsubscribed,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::BouncedHard,
        Outcome::BouncedSoft,
        Outcome::Complained,
        Outcome::Unsubscribed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::BouncedHard => "bounced-hard",
            Outcome::BouncedSoft => "bounced-soft",
            Outcome::Complained => "complained",
            Outcome::Unsubscribed => "unsubscribed",
        }
    }
}

impl ToSql for Outcome {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for Outcome {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let stored = value.as_str()?;
        Outcome::ALL.into_iter().find(|s| s.as_str() == stored).ok_or_else(|| {
            FromSqlError::Other(
                format!("unknown inbox outcome {stored:?} in the journal: it was written by a newer bulletin; upgrade bulletin")
                    .into(),
            )
        })
    }
}
