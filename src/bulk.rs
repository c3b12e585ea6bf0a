//! The bulk-sender rules of Gmail and Yahoo (February 2024): a sender of more than 5,000
//! messages a day to their users must sign with DKIM and offer one-click unsubscribe, or the
//! mail is rejected or junked. `check` and `send` count the audience's addresses at those
//! providers as the lists stream past, and above the threshold a missing DKIM or one-click
//! unsubscribe is an error (a warning with `--allow-noncompliant`).

use crate::config::Config;
use crate::diagnostic::Diagnostics;
use crate::email::Email;
use crate::providers::Provider;

/// More recipients than this at one provider makes the sender a bulk sender there.
pub(crate) const THRESHOLD: usize = 5_000;

/// Recipients counted per provider.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Audience {
    pub(crate) google: usize,
    pub(crate) yahoo: usize,
}

/// What the settings provide that the rules require.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Compliance {
    pub(crate) dkim: bool,
    pub(crate) one_click: bool,
}

impl Compliance {
    /// From the settings: `[dkim]` set; `[unsubscribe] url` set (one-click needs the https URL).
    pub(crate) fn of(config: &Config) -> Compliance {
        Compliance {
            dkim: config.dkim.is_some(),
            one_click: config
                .unsubscribe
                .url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://")),
        }
    }
}

impl Audience {
    /// Counts one recipient.
    pub(crate) fn add(&mut self, email: &Email) {
        let domain = email.as_str().rsplit_once('@').map_or("", |(_, d)| d);
        match Provider::of(domain) {
            Some(Provider::Gmail) => self.google += 1,
            Some(Provider::YahooAol) => self.yahoo += 1,
            _ => {}
        }
    }

    /// Adds an error per unmet rule when the audience is bulk at Google or Yahoo (a warning
    /// when `allow` says the user knows better). Returns the plan's note about an override.
    pub(crate) fn review(
        &self,
        has: Compliance,
        allow: bool,
        at: Option<(&str, usize)>,
        diags: &mut Diagnostics,
    ) -> Option<String> {
        let providers: Vec<String> = [("Gmail", self.google), ("Yahoo/AOL", self.yahoo)]
            .iter()
            .filter(|(_, n)| *n > THRESHOLD)
            .map(|(p, n)| format!("{n} recipients at {p}"))
            .collect();
        if providers.is_empty() {
            return None;
        }
        let who = providers.join(" and ");
        let mut missing = Vec::new();
        if !has.dkim {
            missing.push((
                "DKIM",
                "create a key with `bulletin dkim keygen --selector news --domain DOMAIN`, add [dkim] and publish its record",
            ));
        }
        if !has.one_click {
            missing.push((
                "one-click unsubscribe",
                "set [unsubscribe] url = \"https://…/unsubscribe?token={{ token }}\" with its secret",
            ));
        }
        for (what, fix) in &missing {
            let text = format!(
                "bulk-sender rule (Gmail and Yahoo, more than {THRESHOLD} recipients): {who}, and no {what}: their servers reject or junk such mail; {fix}"
            );
            if allow {
                diags.warning(at, format!("{text} (overridden by --allow-noncompliant)"));
            } else {
                diags.error(at, format!("{text}; or pass --allow-noncompliant if you know better"));
            }
        }
        (allow && !missing.is_empty()).then(|| {
            let what: Vec<&str> = missing.iter().map(|(w, _)| *w).collect();
            format!(
                "--allow-noncompliant: sending to {who} without {} despite Gmail's and Yahoo's bulk-sender rules",
                what.join(" and ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audience(google: usize, yahoo: usize) -> Audience {
        let mut a = Audience::default();
        for i in 0..google {
            a.add(&Email::parse(&format!("m{i}@GMail.com")).unwrap());
        }
        for i in 0..yahoo {
            a.add(&Email::parse(&format!("m{i}@yahoo.co.uk")).unwrap());
        }
        a.add(&Email::parse("x@example.org").unwrap());
        a
    }

    #[test]
    fn errors_only_above_the_threshold_and_overridden_as_warnings() {
        let none = Compliance {
            dkim: false,
            one_click: false,
        };
        let mut d = Diagnostics::default();
        assert!(
            audience(THRESHOLD, THRESHOLD)
                .review(none, false, None, &mut d)
                .is_none()
        );
        assert_eq!(d.items.len(), 0);
        let big = audience(THRESHOLD + 1, 3);
        assert_eq!((big.google, big.yahoo), (THRESHOLD + 1, 3));
        big.review(none, false, None, &mut d);
        assert_eq!(d.errors(), 2);
        let text = format!("{}", d.items[0]);
        assert!(
            text.contains("5001 recipients at Gmail") && text.contains("no DKIM"),
            "{text}"
        );
        let mut d = Diagnostics::default();
        let note = big.review(none, true, None, &mut d).unwrap();
        assert_eq!(d.errors(), 0);
        assert!(note.contains("without DKIM and one-click unsubscribe"), "{note}");
        let mut d = Diagnostics::default();
        let all = Compliance {
            dkim: true,
            one_click: true,
        };
        assert!(big.review(all, false, None, &mut d).is_none());
        assert_eq!(d.items.len(), 0);
    }
}
