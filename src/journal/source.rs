//! The newsletter as a campaign sent it (its Markdown and its language variants), kept so
//! `bulletin archive` shows what went out, not what the file says today.

use anyhow::{Context, Result};
use rusqlite::{OptionalExtension, params};

use super::Journal;

/// A campaign's newsletter text and its variants (`(tag, text)`, as `NAME.TAG.md` beside it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Source {
    pub newsletter: String,
    pub variants: Vec<(String, String)>,
}

impl Journal {
    /// Keeps `source` as campaign `campaign`'s newsletter (replacing what an earlier run of the
    /// same campaign kept: a resumed send with a changed newsletter sends the new text).
    pub(crate) fn keep_source(&self, campaign: &str, source: &Source) -> Result<()> {
        let variants = serde_json::to_string(&source.variants)?;
        self.db.execute(
            "INSERT INTO campaign_source (campaign, newsletter, variants) VALUES (?1, ?2, ?3)
             ON CONFLICT(campaign) DO UPDATE SET newsletter = excluded.newsletter, variants = excluded.variants",
            params![campaign, source.newsletter, variants],
        )?;
        Ok(())
    }

    /// The newsletter campaign `campaign` sent, when this journal kept it (journals from before
    /// format version 4 did not).
    pub(crate) fn source(&self, campaign: &str) -> Result<Option<Source>> {
        let row: Option<(String, String)> = self
            .db
            .query_row(
                "SELECT newsletter, variants FROM campaign_source WHERE campaign = ?1",
                [campaign],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        row.map(|(newsletter, variants)| {
            let variants = serde_json::from_str(&variants)
                .with_context(|| format!("the journal's copy of campaign {campaign}'s newsletter is damaged"))?;
            Ok(Source { newsletter, variants })
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_newsletter_reads_back_and_a_later_run_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("journal.db")).unwrap();
        assert_eq!(j.source("c1").unwrap(), None);
        let first = Source {
            newsletter: "---\nsubject: Hi\n---\nHello\n".into(),
            variants: vec![("es".into(), "---\nsubject: Hola\n---\nHola\n".into())],
        };
        j.keep_source("c1", &first).unwrap();
        assert_eq!(j.source("c1").unwrap().as_ref(), Some(&first));
        let second = Source {
            newsletter: "---\nsubject: Hi\n---\nHello again\n".into(),
            variants: Vec::new(),
        };
        j.keep_source("c1", &second).unwrap();
        assert_eq!(j.source("c1").unwrap(), Some(second));
        assert_eq!(j.source("c2").unwrap(), None);
    }
}
