//! Preflight: personalise every member's message before anything is sent, keeping nothing but
//! what went wrong and the largest HTML size. Members are checked one at a time as the lists
//! stream past, so a million members cost no more memory than ten.
//!
//! Only the first message is also built into MIME: building takes nothing from a member that
//! personalising has not already checked (the address was validated when read, the subject and
//! name are made header-safe), so a build that fails fails for everyone — and building every
//! message twice (here and when sending) would double the cost of a send. A dry run builds every
//! message anyway, so it personalises each member once, here ([`Preflight::render`]), and
//! reports the build ([`Preflight::built`]); its threads each keep a `Preflight` and
//! [`Preflight::merge`] them, with the same findings as one pass in list order.
//!
//! A member whose address has a non-ASCII part before `@` can only be sent through a relay
//! that offers SMTPUTF8 (RFC 6531). Preflight counts them; `send` then asks the relay, and
//! when it lacks SMTPUTF8 those members are skipped — a warning naming their rows, never an
//! abort of the run.

use std::collections::BTreeMap;

use lettre::Message;

use crate::diagnostic::Diagnostics;
use crate::list::Recipient;
use crate::message::Letterhead;
use crate::message::attachments::{MAX_BYTES, WARN_BYTES};
use crate::render::{Compiled, GMAIL_CLIP_BYTES, Rendered};

/// What preflight found.
#[derive(Debug, Default)]
pub(crate) struct Preflight {
    pub ok: usize,
    /// Failure message → the members it hit (the first few, as data row and location) and
    /// how many.
    failures: BTreeMap<String, (Vec<(u64, String)>, usize)>,
    /// Largest personalised HTML part and whose it was.
    pub largest_html: Option<(usize, String)>,
    /// The data row of `largest_html`'s member: of equal sizes, the first in the lists wins.
    largest_row: u64,
    /// Members whose address needs SMTPUTF8: the first few (data row and location), and how
    /// many.
    smtputf8: (Vec<(u64, String)>, usize),
    /// Largest message estimate (bytes of text, HTML, images and attachments) and whose.
    pub largest_message: Option<(u64, String)>,
    /// Members whose attachments pass the warning size: locations of the first few, and how many.
    pub heavy: (Vec<String>, usize),
    /// Whether the relay offers SMTPUTF8, when it was asked (`send`; `check` never connects).
    pub relay_smtputf8: Option<bool>,
    built_one: bool,
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Locations kept per kind of failure; the rest are counted.
const SHOWN: usize = 10;

impl Preflight {
    /// Checks one member.
    pub(crate) fn check(&mut self, compiled: &Compiled, letterhead: &Letterhead, r: &Recipient) {
        let Some(rendered) = self.render(compiled, r) else {
            return;
        };
        if !self.sized(letterhead, r, &rendered) {
            return;
        }
        if !self.built_one {
            if let Err(e) = letterhead.build(r, &rendered, letterhead.message_id()) {
                return self.fail(format!("{e:#}"), r);
            }
            self.built_one = true;
        }
        self.ok += 1;
    }

    /// Personalises one member's message, as [`Preflight::check`] does, and hands it over to
    /// be built; `None` when it failed (and was recorded). Report the build with
    /// [`Preflight::built`].
    pub(crate) fn render(&mut self, compiled: &Compiled, r: &Recipient) -> Option<Rendered> {
        let rendered = match compiled.personalise(r) {
            Ok(x) => x,
            Err(e) => {
                self.fail(e.message, r);
                return None;
            }
        };
        if self.largest_html.as_ref().is_none_or(|(n, _)| rendered.html.len() > *n) {
            self.largest_html = Some((rendered.html.len(), r.location()));
            self.largest_row = r.row;
        }
        if r.email.needs_smtputf8() {
            keep(&mut self.smtputf8, r);
        }
        Some(rendered)
    }

    /// Records how building the message [`Preflight::render`] gave for `r` went; the message
    /// when it was built.
    pub(crate) fn built(&mut self, r: &Recipient, message: anyhow::Result<Message>) -> Option<Message> {
        match message {
            Ok(m) => {
                self.built_one = true;
                self.ok += 1;
                Some(m)
            }
            Err(e) => {
                self.fail(format!("{e:#}"), r);
                None
            }
        }
    }

    /// Adds what another pass found. Each pass must have seen its members in list order, and
    /// the result is what one pass over all of them would have found.
    pub(crate) fn merge(&mut self, other: Preflight) {
        self.ok += other.ok;
        self.built_one |= other.built_one;
        for (message, rows) in other.failures {
            merge_rows(self.failures.entry(message).or_default(), rows);
        }
        merge_rows(&mut self.smtputf8, other.smtputf8);
        if let Some((size, at)) = other.largest_html {
            let bigger = self
                .largest_html
                .as_ref()
                .is_none_or(|(n, _)| size > *n || (size == *n && other.largest_row < self.largest_row));
            if bigger {
                self.largest_html = Some((size, at));
                self.largest_row = other.largest_row;
            }
        }
    }

    /// Adds up a member's attachments and images: over 25 MB fails them, over 10 MB is counted
    /// for a warning. Returns whether they passed.
    pub(crate) fn sized(&mut self, letterhead: &Letterhead, r: &Recipient, rendered: &Rendered) -> bool {
        let files = match letterhead.member_attachments(r) {
            Ok((_, bytes)) => bytes + letterhead.fixed_bytes(rendered.version),
            Err(e) => {
                self.fail(format!("{e:#}"), r);
                return false;
            }
        };
        if files > MAX_BYTES {
            self.fail(
                format!(
                    "attachments and images make {:.1} MB, over the 25 MB Gmail accepts in one message",
                    mb(files)
                ),
                r,
            );
            return false;
        }
        if files > WARN_BYTES {
            let (rows, n) = &mut self.heavy;
            if rows.len() < SHOWN {
                rows.push(r.location());
            }
            *n += 1;
        }
        let size = files + (rendered.html.len() + rendered.text.len()) as u64;
        if self.largest_message.as_ref().is_none_or(|(n, _)| size > *n) {
            self.largest_message = Some((size, r.location()));
        }
        true
    }

    fn fail(&mut self, message: String, r: &Recipient) {
        keep(self.failures.entry(message).or_default(), r);
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
        let (rows, n) = &self.heavy;
        if *n > 0 {
            let size = self.largest_message.as_ref().map_or(0, |(s, _)| *s);
            diags.warning(
                Some((&rows[0], 0)),
                format!(
                    "{n} messages carry more than 10 MB of attachments and images (largest {:.1} MB): many servers \
                     refuse mail that size; link to the files instead: {}{}",
                    mb(size),
                    rows.join(", "),
                    if *n > rows.len() {
                        format!(" and {} more", n - rows.len())
                    } else {
                        String::new()
                    }
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
        for (i, (_, at)) in rows.iter().enumerate() {
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

/// Counts `r` in `rows`, keeping its row and location if it is among the first few.
fn keep((rows, n): &mut (Vec<(u64, String)>, usize), r: &Recipient) {
    if rows.len() < SHOWN {
        rows.push((r.row, r.location()));
    }
    *n += 1;
}

/// Adds `other`'s rows to `mine`, keeping the first few in list order.
fn merge_rows((mine, count): &mut (Vec<(u64, String)>, usize), (rows, n): (Vec<(u64, String)>, usize)) {
    mine.extend(rows);
    mine.sort_by_key(|(row, _)| *row);
    mine.truncate(SHOWN);
    *count += n;
}

/// `a, b and 3 more`.
fn listed(rows: &[(u64, String)], count: usize) -> String {
    let mut list = rows.iter().map(|(_, at)| at.as_str()).collect::<Vec<_>>().join(", ");
    if count > rows.len() {
        list.push_str(&format!(" and {} more", count - rows.len()));
    }
    list
}
