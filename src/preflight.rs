//! Preflight: render and build every member's message before anything is sent, keeping
//! nothing but what went wrong and the largest HTML size.

use std::collections::BTreeMap;

use crate::diagnostic::Diagnostics;
use crate::list::Recipient;
use crate::message::Letterhead;
use crate::render::{Compiled, GMAIL_CLIP_BYTES};

/// What preflight found.
#[derive(Debug, Default)]
pub struct Preflight {
    pub ok: usize,
    /// Failure message → locations of the members it hit.
    pub failures: BTreeMap<String, Vec<String>>,
    /// Largest personalised HTML part and whose it was.
    pub largest_html: Option<(usize, String)>,
}

impl Preflight {
    pub fn run<'a>(
        compiled: &Compiled,
        letterhead: &Letterhead,
        recipients: impl IntoIterator<Item = &'a Recipient>,
    ) -> Preflight {
        let mut p = Preflight::default();
        for r in recipients {
            let rendered = match compiled.personalise(r) {
                Ok(x) => x,
                Err(e) => {
                    p.failures.entry(e.message).or_default().push(r.location());
                    continue;
                }
            };
            if p.largest_html.as_ref().is_none_or(|(n, _)| rendered.html.len() > *n) {
                p.largest_html = Some((rendered.html.len(), r.location()));
            }
            match letterhead.build(r, &rendered, letterhead.message_id()) {
                Ok(_) => p.ok += 1,
                Err(e) => p.failures.entry(format!("{e:#}")).or_default().push(r.location()),
            }
        }
        p
    }

    pub fn failed(&self) -> usize {
        self.failures.values().map(Vec::len).sum()
    }

    /// Adds the findings to `diags`: one error per kind of failure, listing the rows.
    pub fn report(&self, compiled: &Compiled, diags: &mut Diagnostics) {
        for (message, rows) in &self.failures {
            const SHOWN: usize = 10;
            let mut list = rows.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
            if rows.len() > SHOWN {
                list.push_str(&format!(" and {} more", rows.len() - SHOWN));
            }
            let field = compiled
                .bare_fields
                .iter()
                .find(|(f, _)| message.contains(&format!("`{f}`")));
            let hint = field.map_or(String::new(), |(f, _)| {
                format!(
                    " — give it a fallback, {{{{ {f} | default(\"…\") }}}}, or wrap it in {{% if {f} %}}…{{% endif %}}"
                )
            });
            let n = rows.len();
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
    }
}
