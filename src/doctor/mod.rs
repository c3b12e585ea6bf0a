//! `bulletin doctor`: what Gmail, Yahoo and every careful receiver will look up before trusting
//! a newsletter — DKIM, SPF, DMARC, MX — looked up for real, and the relay tried for real
//! (connect, TLS, EHLO, AUTH, QUIT; no message). Each check is one [`Finding`]: passed, failed
//! (with the exact record or setting that fixes it) or unknown (DNS timed out, SERVFAIL: never a
//! false failure).
//!
//! DNS goes through hickory's resolver; SPF, DKIM and DMARC are evaluated by mail-auth on top of
//! it, with a message signed by our own signer, so "the key matches" means "a receiver verifies
//! our signature".

mod auth;
mod dns;
mod probe;
mod relay;
mod settings;

use std::net::SocketAddr;

use anyhow::Result;
use serde::Serialize;

use crate::config::Config;
use crate::newsletter::Newsletter;
use crate::settings::Settings;

pub(crate) use dns::parse_server;

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    Pass,
    Fail,
    /// Not a failure, but worth knowing (or could not be determined, e.g. a DNS timeout).
    Warn,
}

impl Status {
    fn mark(self) -> char {
        match self {
            Status::Pass => '✓',
            Status::Fail => '✗',
            Status::Warn => '!',
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Finding {
    /// `from`, `dkim`, `spf`, `dmarc`, `mx`, `relay`, `relay-size`, `unsubscribe`, `one-click`, `list-id`,
    /// `postal-address`.
    pub(crate) check: &'static str,
    pub(crate) status: Status,
    pub(crate) message: String,
    /// For a failure: the record to publish or the setting to write.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) fix: Option<String>,
}

/// Every finding, in the order they print.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Report {
    pub(crate) ok: bool,
    /// The name server asked.
    pub(crate) dns: String,
    pub(crate) checks: Vec<Finding>,
}

impl Report {
    fn add(&mut self, check: &'static str, status: Status, message: impl Into<String>, fix: Option<String>) {
        self.checks.push(Finding {
            check,
            status,
            message: message.into(),
            fix,
        });
        self.ok = !self.checks.iter().any(|f| f.status == Status::Fail);
    }

    pub(crate) fn pass(&mut self, check: &'static str, message: impl Into<String>) {
        self.add(check, Status::Pass, message, None);
    }

    pub(crate) fn fail(&mut self, check: &'static str, message: impl Into<String>, fix: impl Into<String>) {
        self.add(check, Status::Fail, message, Some(fix.into()));
    }

    pub(crate) fn warn(&mut self, check: &'static str, message: impl Into<String>) {
        self.add(check, Status::Warn, message, None);
    }

    /// The text form: one line per check, the fix indented under each ✗.
    pub(crate) fn text(&self) -> String {
        let mut out = format!("DNS looked up through {}\n", self.dns);
        for f in &self.checks {
            out.push_str(&format!("{} {:<14} {}\n", f.status.mark(), f.check, f.message));
            if let Some(fix) = &f.fix {
                for (i, line) in fix.lines().enumerate() {
                    let lead = if i == 0 { "fix:" } else { "" };
                    out.push_str(&format!("  {:<14} {lead:<4} {line}\n", ""));
                }
            }
        }
        let failed = self.checks.iter().filter(|f| f.status == Status::Fail).count();
        let warned = self.checks.iter().filter(|f| f.status == Status::Warn).count();
        out.push_str(&format!(
            "{failed} problem{} to fix, {warned} warning{}\n",
            if failed == 1 { "" } else { "s" },
            if warned == 1 { "" } else { "s" }
        ));
        out
    }
}

/// What `doctor` is asked to look at.
pub(crate) struct Inputs<'a> {
    pub(crate) config: &'a Config,
    pub(crate) settings: &'a Settings,
    /// The newsletter whose From and size to check, if one was named.
    pub(crate) newsletter: Option<&'a Newsletter>,
    /// The largest message the newsletter makes, in bytes, when known.
    pub(crate) largest_message: Option<usize>,
    /// The name server to ask; `None`: the system's.
    pub(crate) dns: Option<SocketAddr>,
}

/// Runs every check, in the order they print: DNS, then the relay, then the settings.
pub(crate) fn run(inputs: &Inputs) -> Result<Report> {
    let sender = settings::Sender::of(inputs.config, inputs.newsletter);
    let mut relay_report = Report::default();
    let relay = relay::check(inputs.settings, inputs.largest_message, &mut relay_report);
    let resolver = dns::Dns::new(inputs.dns)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut report = Report {
        dns: resolver.server.clone(),
        ..Report::default()
    };
    runtime.block_on(async {
        let relay_ips = match &relay {
            Some(host) => resolver.addresses(host).await,
            None => dns::Lookup::Missing,
        };
        auth::check(
            inputs.config,
            &sender,
            &resolver,
            relay.as_deref(),
            &relay_ips,
            &mut report,
        )
        .await;
        settings::check_domains(&sender, &resolver, &mut report).await;
    });
    for f in relay_report.checks {
        report.add(f.check, f.status, f.message, f.fix);
    }
    settings::check_settings(inputs.config, &resolver, &runtime, &mut report);
    report.ok = !report.checks.iter().any(|f| f.status == Status::Fail);
    Ok(report)
}
