//! Preflight: personalise every member's message before anything is sent, keeping nothing but
//! what went wrong and the largest HTML size. Members are checked one at a time as the lists
//! stream past, so a million members cost no more memory than ten.
//!
//! Only the first message is also built into MIME: building takes nothing from a member that
//! personalising has not already checked (the address was validated when read, the subject and
//! name are made header-safe), so a build that fails fails for everyone — and building every
//! message twice (here and when sending) would double the cost of a send.
//!
//! A member whose address has a non-ASCII part before `@` can only be sent through a relay
//! that offers SMTPUTF8 (RFC 6531). Preflight counts them; `send` then asks the relay, and
//! when it lacks SMTPUTF8 those members are skipped — a warning naming their rows, never an
//! abort of the run.

use std::collections::BTreeMap;

use crate::diagnostic::Diagnostics;
use crate::list::Recipient;
use crate::message::Letterhead;
use crate::render::{Compiled, GMAIL_CLIP_BYTES};

/// What preflight found.
#[derive(Debug, Default)]
pub(crate) struct Preflight {
    pub ok: usize,
    /// Failure message → locations of the members it hit (the first few) and how many.
    pub failures: BTreeMap<String, (Vec<String>, usize)>,
    /// Largest personalised HTML part and whose it was.
    pub largest_html: Option<(usize, String)>,
    /// Members whose address needs SMTPUTF8: locations of the first few, and how many.
    pub smtputf8: (Vec<String>, usize),
    /// Whether the relay offers SMTPUTF8, when it was asked (`send`; `check` never connects).
    pub relay_smtputf8: Option<bool>,
    /// Members at Gmail and Yahoo, for the bulk-sender rules.
    pub audience: crate::bulk::Audience,
    built_one: bool,
}

/// Locations kept per kind of failure; the rest are counted.
const SHOWN: usize = 10;

impl Preflight {
    /// Checks one member.
    pub(crate) fn check(&mut self, compiled: &Compiled, letterhead: &Letterhead, r: &Recipient) {
        self.audience.add(&r.email);
        let rendered = match compiled.personalise(r) {
            Ok(x) => x,
            Err(e) => return self.fail(e.message, r),
        };
        if self.largest_html.as_ref().is_none_or(|(n, _)| rendered.html.len() > *n) {
            self.largest_html = Some((rendered.html.len(), r.location()));
        }
        if r.email.needs_smtputf8() {
            let (rows, n) = &mut self.smtputf8;
            if rows.len() < SHOWN {
                rows.push(r.location());
            }
            *n += 1;
        }
        if !self.built_one {
            if let Err(e) = letterhead.build(r, &rendered, letterhead.message_id()) {
                return self.fail(format!("{e:#}"), r);
            }
            self.built_one = true;
        }
        self.ok += 1;
    }

    fn fail(&mut self, message: String, r: &Recipient) {
        let (rows, n) = self.failures.entry(message).or_default();
        if rows.len() < SHOWN {
            rows.push(r.location());
        }
        *n += 1;
    }

    /// Adds the findings to `diags`: one error per kind of failure, listing the rows, and a
    /// warning for the members that need SMTPUTF8 unless the relay offers it.
    pub(crate) fn report(&self, compiled: &Compiled, diags: &mut Diagnostics) {
        for (message, (rows, count)) in &self.failures {
            let list = listed(rows, *count);
            let field = compiled
                .bare_fields
                .iter()
                .find(|(f, _)| message.contains(&format!("`{f}`")));
            let hint = field.map_or(String::new(), |(f, _)| {
                format!(
                    " — give it a fallback, {{{{ {f} | default(\"…\") }}}}, or wrap it in {{% if {f} %}}…{{% endif %}}"
                )
            });
            let n = *count;
            let members = if n == 1 { "member" } else { "members" };
            let at = field.map(|(_, line)| (compiled.file.as_str(), *line));
            diags.error(at, format!("{message} for {n} {members}: {list}{hint}"));
        }
        if let Some((size, at)) = &self.largest_html
            && *size > GMAIL_CLIP_BYTES
        {
            diags.warning(
                Some((at, 0)),
                format!(
                    "the HTML part is {} KB, over Gmail's 102 KB limit: Gmail will clip it and hide the rest \
                     (and the unsubscribe link); shorten the newsletter or split it",
                    size / 1024
                ),
            );
        }
        let (rows, n) = &self.smtputf8;
        let fate = match self.relay_smtputf8 {
            Some(true) => return,
            Some(false) => "skipped: the relay does not offer SMTPUTF8 (RFC 6531), which it needs",
            None => "sent only through a relay that offers SMTPUTF8 (RFC 6531), skipped otherwise",
        };
        let them = if *n - rows.len() == 1 { "member" } else { "members" };
        // One warning per row, so each names its file and line.
        for (i, at) in rows.iter().enumerate() {
            let more = if i + 1 == rows.len() && *n > rows.len() {
                format!(" ({} more {them} like it)", n - rows.len())
            } else {
                String::new()
            };
            diags.warning(
                Some((at, 0)),
                format!("the address has a non-ASCII part before `@`: {fate}{more}"),
            );
        }
    }

    /// How many members need SMTPUTF8.
    pub(crate) fn smtputf8_members(&self) -> usize {
        self.smtputf8.1
    }
}

/// `a, b and 3 more`.
fn listed(rows: &[String], count: usize) -> String {
    let mut list = rows.join(", ");
    if count > rows.len() {
        list.push_str(&format!(" and {} more", count - rows.len()));
    }
    list
}
