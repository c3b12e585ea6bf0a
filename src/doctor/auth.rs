//! DKIM, SPF and DMARC as a receiver evaluates them, by mail-auth over our resolver.
//!
//! DKIM: a small message is signed with the configured key (our own signer, as `send` signs)
//! and verified against the published record — so "matches" means a receiver verifies what we
//! send. SPF: the envelope domain, evaluated for each address of the relay host. DMARC: the
//! From domain's policy, evaluated with those two results (relaxed alignment as the record says).

use std::net::IpAddr;

use mail_auth::common::parse::TxtRecordParser as _;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::dmarc::{Dmarc, Policy};
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{AuthenticatedMessage, DkimResult, DmarcResult, SpfOutput, SpfResult};

use super::Report;
use super::dns::{Dns, Lookup};
use super::settings::Sender;
use crate::config::Config;
use crate::dkim::{Algorithm, GOOD_RSA_BITS, Key, Signer};

/// DKIM, SPF and DMARC findings.
pub(crate) async fn check(
    config: &Config,
    sender: &Sender,
    dns: &Dns,
    relay_host: Option<&str>,
    relay_ips: &Lookup<Vec<IpAddr>>,
    report: &mut Report,
) {
    let from = match &sender.from {
        Ok(m) => m.clone(),
        Err(why) => {
            report.fail(
                "from",
                why.clone(),
                "from = \"Name <news@example.org>\"   (in bulletin.toml)",
            );
            return;
        }
    };
    let from_domain = sender.author_domain().unwrap_or_default();
    let message = signed_message(config, &from, report);
    let parsed = message.as_deref().and_then(AuthenticatedMessage::parse);
    let dkim_outputs = match &parsed {
        Some(m) => dns.auth.verify_dkim(m).await,
        None => Vec::new(),
    };
    if let (Some(d), Some(_)) = (&config.dkim, &parsed) {
        for (selector, path) in d.keys() {
            let result = dkim_outputs
                .iter()
                .find(|o| o.signature().is_some_and(|s| s.s == selector))
                .map(mail_auth::DkimOutput::result);
            dkim_finding(config, d, selector, path, dns, result, report).await;
        }
    }

    let envelope = sender.envelope_domain().unwrap_or_default();
    let which = if sender.bounce.is_some() {
        "the bounce domain"
    } else {
        "the From domain"
    };
    let spf = spf_finding(&envelope, which, dns, relay_host, relay_ips, report).await;

    dmarc_finding(
        &from_domain,
        &envelope,
        dns,
        parsed.as_ref(),
        &dkim_outputs,
        spf.as_ref(),
        report,
    )
    .await;
}

/// A small message from `from`, signed with `[dkim]` when set; `None` when the key cannot
/// be used (reported here).
fn signed_message(config: &Config, from: &lettre::message::Mailbox, report: &mut Report) -> Option<Vec<u8>> {
    let mut message = lettre::Message::builder()
        .from(from.clone())
        .to("doctor@example.invalid".parse().ok()?)
        .subject("bulletin doctor")
        .message_id(Some(format!(
            "<doctor.{:016x}@{}>",
            fastrand::u64(..),
            from.email.domain()
        )))
        .body(String::from(
            "A message bulletin doctor signs and verifies; it is never sent.\r\n",
        ))
        .ok()?;
    match &config.dkim {
        None => report.fail(
            "dkim",
            "no DKIM: messages are not signed, and Gmail and Yahoo require DKIM of bulk senders",
            format!(
                "bulletin dkim keygen --selector news --domain {d}\n[dkim]\ndomain = \"{d}\"\nselector = \"news\"\nprivate_key = \"keys/news.{d}.pem\"\nthen publish the TXT record keygen prints",
                d = from.email.domain()
            ),
        ),
        Some(d) => {
            let mut signers = Vec::new();
            for (selector, path) in d.keys() {
                match Key::load(&config.resolve(path), &d.domain, selector) {
                    Err(e) => {
                        report.fail(
                            "dkim",
                            format!("{e:#}"),
                            format!(
                                "bulletin dkim keygen --selector {selector}2 --domain {dom}, then point [dkim] at the new key and selector",
                                dom = d.domain
                            ),
                        );
                        return None;
                    }
                    Ok(key) => signers.push(key.signer(&["From", "To", "Subject", "Date", "Message-ID"])),
                }
            }
            if let Err(e) = Signer::sign_all(&signers, &mut message) {
                report.fail("dkim", format!("cannot sign: {e:#}"), "check [dkim] private_key");
                return None;
            }
        }
    }
    Some(message.formatted())
}

async fn dkim_finding(
    config: &Config,
    d: &crate::config::Dkim,
    selector: &str,
    path: &std::path::Path,
    dns: &Dns,
    result: Option<&DkimResult>,
    report: &mut Report,
) {
    let name = format!("{selector}._domainkey.{}", d.domain);
    // Loaded once already to sign: it loads.
    let Ok(key) = Key::load(&config.resolve(path), &d.domain, selector) else {
        return;
    };
    let record = key.dns_record();
    let kind = match key.algorithm {
        Algorithm::Rsa => format!("rsa-{}", key.bits),
        Algorithm::Ed25519 => "ed25519".to_owned(),
    };
    let publish = format!("{name} TXT \"{record}\"");
    match dns.txt(&name).await {
        Lookup::Unknown(why) => return report.warn("dkim", format!("cannot look up {name}: {why}")),
        Lookup::Missing => {
            return report.fail("dkim", format!("no DKIM record at {name}"), publish);
        }
        Lookup::Found(_) => {}
    }
    match result {
        Some(DkimResult::Pass) => {
            if key.algorithm == Algorithm::Rsa && key.bits < GOOD_RSA_BITS {
                report.warn(
                    "dkim",
                    format!(
                        "{name}: the {kind} key verifies, but Gmail advises {GOOD_RSA_BITS} bits: `bulletin dkim keygen --selector {selector}2 --domain {}` makes one",
                        d.domain
                    ),
                );
            } else {
                report.pass(
                    "dkim",
                    format!("{name}: {kind} key published; a signed message verifies"),
                );
            }
        }
        Some(DkimResult::TempError(e)) => report.warn("dkim", format!("cannot verify at {name}: {e}")),
        Some(DkimResult::Fail(_)) => report.fail(
            "dkim",
            format!("{name} publishes another key than {}: signatures fail", path.display()),
            format!("replace the record: {publish}"),
        ),
        Some(DkimResult::PermError(e) | DkimResult::Neutral(e)) => report.fail(
            "dkim",
            format!("the record at {name} is not a usable DKIM key ({e})"),
            format!("replace the record: {publish}"),
        ),
        Some(DkimResult::None) | None => {
            report.fail("dkim", format!("no DKIM key found at {name}"), publish);
        }
    }
}

/// The SPF finding for the envelope domain `domain` (`which`: the From or the VERP bounce
/// domain); returns the result for the first relay address, for DMARC.
async fn spf_finding(
    domain: &str,
    which: &str,
    dns: &Dns,
    relay_host: Option<&str>,
    relay_ips: &Lookup<Vec<IpAddr>>,
    report: &mut Report,
) -> Option<SpfOutput> {
    let records = match dns.txt(domain).await {
        Lookup::Unknown(why) => {
            report.warn("spf", format!("cannot look up the TXT records of {domain}: {why}"));
            return None;
        }
        Lookup::Missing => Vec::new(),
        Lookup::Found(txt) => txt,
    };
    let spf: Vec<&String> = records
        .iter()
        .filter(|r| {
            let r = r.to_ascii_lowercase();
            r == "v=spf1" || r.starts_with("v=spf1 ")
        })
        .collect();
    let suggest = |ips: &[IpAddr]| {
        let mechanisms: Vec<String> = ips
            .iter()
            .map(|ip| match ip {
                IpAddr::V4(v4) => format!("ip4:{v4}"),
                IpAddr::V6(v6) => format!("ip6:{v6}"),
            })
            .collect();
        let mechanisms = if mechanisms.is_empty() {
            "include:<your relay's SPF domain>".to_owned()
        } else {
            mechanisms.join(" ")
        };
        format!("{domain} TXT \"v=spf1 {mechanisms} ~all\"   (or the include: your relay documents)")
    };
    let ips: &[IpAddr] = match relay_ips {
        Lookup::Found(ips) => ips,
        _ => &[],
    };
    match spf.len() {
        0 => {
            report.fail(
                "spf",
                format!("{which} {domain} has no SPF record (the envelope sender's domain, which SPF judges)"),
                suggest(ips),
            );
            return None;
        }
        1 => {}
        n => {
            report.fail(
                "spf",
                format!("{domain} has {n} SPF records: receivers treat that as an error (permerror)"),
                format!("merge them into one TXT record, e.g. {}", suggest(ips)),
            );
            return None;
        }
    }
    let Some(host) = relay_host else {
        report.warn(
            "spf",
            format!("{domain} has one SPF record; no relay is configured to test it with"),
        );
        return None;
    };
    let ips = match relay_ips {
        Lookup::Found(ips) => ips,
        Lookup::Missing => {
            report.warn(
                "spf",
                format!("the relay host {host} has no address: cannot evaluate SPF for it"),
            );
            return None;
        }
        Lookup::Unknown(why) => {
            report.warn("spf", format!("cannot look up the relay host {host}: {why}"));
            return None;
        }
    };
    let sender = format!("postmaster@{domain}");
    let mut first = None;
    let mut failing = Vec::new();
    let mut unknown = Vec::new();
    for ip in ips {
        let out = dns
            .auth
            .verify_spf(SpfParameters::verify_mail_from(*ip, host, host, &sender))
            .await;
        match out.result() {
            SpfResult::Pass => {}
            SpfResult::TempError => unknown.push(*ip),
            SpfResult::PermError => {
                report.fail(
                    "spf",
                    format!(
                        "the SPF record of {domain} is invalid or needs more than 10 DNS lookups (permerror): receivers ignore it"
                    ),
                    format!(
                        "flatten it: fewer include:, a, mx and exists mechanisms (at most 10 lookups in all), e.g. {}",
                        suggest(ips)
                    ),
                );
                return Some(out);
            }
            other => failing.push((*ip, other)),
        }
        first.get_or_insert(out);
    }
    if !failing.is_empty() {
        let list: Vec<String> = failing.iter().map(|(ip, r)| format!("{ip} ({r})")).collect();
        let missing: Vec<IpAddr> = failing.iter().map(|(ip, _)| *ip).collect();
        report.fail(
            "spf",
            format!(
                "the SPF record of {domain} does not authorise the relay {host}: {}",
                list.join(", ")
            ),
            format!("add the relay to the one record: {}", suggest(&missing)),
        );
    } else if !unknown.is_empty() {
        report.warn(
            "spf",
            format!("SPF of {domain} could not be evaluated for {host}: a DNS lookup failed (temperror)"),
        );
    } else {
        let list: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
        report.pass(
            "spf",
            format!(
                "{which} {domain} authorises the relay {host} ({}): pass",
                list.join(", ")
            ),
        );
    }
    first
}

async fn dmarc_finding(
    from_domain: &str,
    envelope: &str,
    dns: &Dns,
    message: Option<&AuthenticatedMessage<'_>>,
    dkim: &[mail_auth::DkimOutput<'_>],
    spf: Option<&SpfOutput>,
    report: &mut Report,
) {
    let name = format!("_dmarc.{from_domain}");
    let publish = format!(
        "{name} TXT \"v=DMARC1; p=none; rua=mailto:dmarc-reports@{from_domain}\"   (start with p=none, read the reports, then tighten)"
    );
    let records = match dns.txt(&name).await {
        Lookup::Unknown(why) => return report.warn("dmarc", format!("cannot look up {name}: {why}")),
        Lookup::Missing => return report.fail("dmarc", format!("no DMARC record at {name}"), publish),
        Lookup::Found(records) => records,
    };
    let dmarc: Vec<&String> = records
        .iter()
        .filter(|r| r.get(..8).is_some_and(|v| v.eq_ignore_ascii_case("v=DMARC1")))
        .collect();
    let record = match dmarc.as_slice() {
        [] => {
            return report.fail(
                "dmarc",
                format!("no DMARC record at {name} (TXT records, none v=DMARC1)"),
                publish,
            );
        }
        [one] => match Dmarc::parse(one.as_bytes()) {
            Ok(r) => r,
            Err(e) => {
                return report.fail(
                    "dmarc",
                    format!("the record at {name} is not a valid DMARC policy ({e})"),
                    format!("replace it: {publish}"),
                );
            }
        },
        _ => {
            return report.fail(
                "dmarc",
                format!("{name} has {} DMARC records: receivers then apply none", dmarc.len()),
                format!("keep one: {publish}"),
            );
        }
    };
    let policy = match record.p {
        Policy::None => "p=none",
        Policy::Quarantine => "p=quarantine",
        Policy::Reject => "p=reject",
        Policy::Unspecified => {
            return report.fail(
                "dmarc",
                format!("the record at {name} has no policy (p=)"),
                format!("replace it: {publish}"),
            );
        }
    };
    let Some(message) = message else {
        return report.warn(
            "dmarc",
            format!("{name}: {policy}; alignment not evaluated (no message could be built)"),
        );
    };
    let no_spf = SpfOutput::new(envelope.to_owned());
    let spf = spf.unwrap_or(&no_spf);
    let out = dns
        .auth
        .verify_dmarc(DmarcParameters::new(message, dkim, envelope, spf))
        .await;
    let dkim_ok = *out.dkim_result() == DmarcResult::Pass;
    let spf_ok = *out.spf_result() == DmarcResult::Pass;
    let temp = |r: &DmarcResult| matches!(r, DmarcResult::TempError(_));
    if dkim_ok || spf_ok {
        let by: Vec<&str> = [(dkim_ok, "DKIM"), (spf_ok, "SPF")]
            .iter()
            .filter(|(ok, _)| *ok)
            .map(|(_, w)| *w)
            .collect();
        report.pass("dmarc", format!("{name}: {policy}; aligned by {}", by.join(" and ")));
    } else if temp(out.dkim_result()) || temp(out.spf_result()) {
        report.warn(
            "dmarc",
            format!("{name}: {policy}; alignment unknown (a DNS lookup failed)"),
        );
    } else {
        let d = dkim
            .iter()
            .find_map(|o| o.signature().map(|s| s.d.clone()))
            .unwrap_or_else(|| "none".to_owned());
        report.fail(
            "dmarc",
            format!(
                "{name}: {policy}, but neither a passing DKIM signature (d={d}) nor a passing SPF domain ({envelope}) aligns with the From domain {from_domain}: DMARC fails"
            ),
            format!("sign with the From domain: [dkim] domain = \"{from_domain}\" (and publish its key), and make the DKIM and SPF checks above pass"),
        );
    }
}
