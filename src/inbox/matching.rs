//! Who a message is about, from its clues and the journal — never guessed. A bounce or
//! complaint matches through, in order: the VERP token in the address it came back to, the
//! original Message-ID (returned message or headers, ARF, `In-Reply-To`/`References`), or a
//! recipient the report names in its own fields (DSN `Final-Recipient`/`Original-Recipient`,
//! ARF `Original-Rcpt-To`, the returned `To`) that the journal shows was sent a campaign. An
//! unsubscribe request matches when its unsubscribe token verifies against its sender, or when
//! it answers a message the journal sent to that same sender. Anything else is unmatched.
//!
//! "The journal" is the one inbox records in plus, read-only, the journals `send --shard`
//! wrote beside it: a member sent from a shard is found there.

use anyhow::Result;

use super::classify::{Class, Classified};
use super::verp::{Index, Verp};
use crate::email::Email;
use crate::journal::{Journal, Member};
use crate::unsubscribe::Unsubscribe;

/// How a member was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum How {
    Verp,
    MessageId,
    Recipient,
    Token,
}

impl How {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            How::Verp => "VERP token",
            How::MessageId => "Message-ID",
            How::Recipient => "report recipient",
            How::Token => "unsubscribe token",
        }
    }
}

pub(crate) struct Matcher<'a> {
    verp: Option<Index<'a>>,
    unsubscribe: Option<&'a Unsubscribe>,
    /// The shards' journals, searched after the one the run records in.
    shards: Vec<Journal>,
}

impl<'a> Matcher<'a> {
    pub(crate) fn new(
        verp: Option<&'a Verp>,
        unsubscribe: Option<&'a Unsubscribe>,
        shards: Vec<Journal>,
    ) -> Matcher<'a> {
        Matcher {
            verp: verp.map(Index::new),
            unsubscribe,
            shards,
        }
    }

    /// The member whose message had this Message-ID, in any journal.
    fn by_message_id(&self, journal: &Journal, id: &str) -> Result<Option<Member>> {
        for j in std::iter::once(journal).chain(&self.shards) {
            if let Some(m) = j.member_by_message_id(id)? {
                return Ok(Some(m));
            }
        }
        Ok(None)
    }

    /// The latest campaign handed to `address` in any journal.
    fn latest_campaign(&self, journal: &Journal, address: &str) -> Result<Option<String>> {
        let mut latest: Option<(String, i64)> = None;
        for j in std::iter::once(journal).chain(&self.shards) {
            if let Some((c, at)) = j.latest_campaign(address)?
                && latest.as_ref().is_none_or(|(_, t)| at > *t)
            {
                latest = Some((c, at));
            }
        }
        Ok(latest.map(|(c, _)| c))
    }

    /// The member `c` is about, if it is a bounce, complaint or unsubscribe that matches one.
    pub(crate) fn member(&mut self, journal: &Journal, c: &Classified) -> Result<Option<(Member, How)>> {
        match c.class {
            Class::Hard | Class::Soft | Class::Complaint => self.reported(journal, c),
            Class::Unsubscribe => self.requester(journal, c),
            Class::AutoReply | Class::Other => Ok(None),
        }
    }

    fn reported(&mut self, journal: &Journal, c: &Classified) -> Result<Option<(Member, How)>> {
        if let Some(m) = self.by_verp(journal, c)? {
            return Ok(Some((m, How::Verp)));
        }
        for id in &c.clues.message_ids {
            if let Some(m) = self.by_message_id(journal, id)? {
                return Ok(Some((m, How::MessageId)));
            }
        }
        for r in &c.clues.recipients {
            let Ok(email) = Email::parse(r) else { continue };
            if let Some(campaign) = self.latest_campaign(journal, email.key())? {
                let address = email.key().to_owned();
                return Ok(Some((Member { campaign, address }, How::Recipient)));
            }
        }
        Ok(None)
    }

    fn by_verp(&mut self, journal: &Journal, c: &Classified) -> Result<Option<Member>> {
        let Some(index) = self.verp.as_mut() else {
            return Ok(None);
        };
        let journals: Vec<&Journal> = std::iter::once(journal).chain(&self.shards).collect();
        for to in &c.clues.delivered_to {
            if let Some(token) = index.verp().token_of(to)
                && let Some(m) = index.resolve(&journals, token)?
            {
                return Ok(Some(m));
            }
        }
        Ok(None)
    }

    fn requester(&mut self, journal: &Journal, c: &Classified) -> Result<Option<(Member, How)>> {
        let Some(from) = c.clues.from.as_deref().and_then(|f| Email::parse(f).ok()) else {
            return Ok(None);
        };
        let address = from.key().to_owned();
        // The campaign it answers, when it answers one sent to this sender.
        let mut answered = None;
        for id in &c.clues.message_ids {
            if let Some(m) = self.by_message_id(journal, id)?
                && m.address == address
            {
                answered = Some(m);
                break;
            }
        }
        if let Some(u) = self.unsubscribe {
            for t in &c.clues.tokens {
                if u.verify(t, &from).unwrap_or(false) {
                    let campaign = match &answered {
                        Some(m) => m.campaign.clone(),
                        None => self.latest_campaign(journal, &address)?.unwrap_or_default(),
                    };
                    return Ok(Some((Member { campaign, address }, How::Token)));
                }
            }
        }
        Ok(answered.map(|m| (m, How::MessageId)))
    }
}

#[cfg(test)]
mod tests;
