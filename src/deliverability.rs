//! What Gmail, Yahoo and the anti-spam laws expect of a bulk sender, checked against the
//! settings — and the DNS records to publish; `check` only lists them, `bulletin doctor`
//! ([`crate::doctor`]) looks them up.

use crate::config::Config;
use crate::diagnostic::Diagnostics;
use crate::dkim::Key;
use crate::message::mailbox;
use crate::newsletter::Newsletter;

/// Adds deliverability findings to `diags` and returns the DNS records to publish, one per line.
pub(crate) fn review(config: &Config, newsletter: &Newsletter, diags: &mut Diagnostics) -> Vec<String> {
    let settings = config
        .source
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "bulletin.toml".into());
    let at = Some((settings.as_str(), 0));
    let org = &config.organisation;
    if org.postal_address.is_none() {
        diags.warning(
            at,
            "no postal address: set [organisation] postal_address (anti-spam laws require one in every message)",
        );
    }
    if config.unsubscribe.url.is_none() && config.unsubscribe.mailto.is_none() {
        diags.warning(at, "no unsubscribe: set [unsubscribe] url and/or mailto (Gmail and Yahoo require one-click unsubscribe for bulk mail)");
    } else if config.unsubscribe.url.is_none() {
        diags.warning(at, "unsubscribe by mail only: an https [unsubscribe] url adds the one-click header Gmail and Yahoo ask bulk senders for");
    }
    if config.list_id.is_none() {
        diags.warning(at, "no list_id: set list_id = \"Members <members.example.org>\" so mail clients can filter and offer unsubscribe");
    }
    let from_raw = newsletter.front.from.as_deref().or(config.from.as_deref());
    let from = from_raw.and_then(|f| mailbox(f).ok());
    let from_domain = from.as_ref().map(|m| m.email.domain().to_ascii_lowercase());
    if let Some(m) = &from
        && m.name.as_deref().is_some_and(|n| n.contains('@'))
    {
        diags.warning(
            at,
            format!(
                "the sender's display name {:?} contains an address: spam filters distrust that",
                m.name.as_deref().unwrap_or("")
            ),
        );
    }
    if let Some(subject) = &newsletter.front.subject {
        let s = subject.trim_start().to_ascii_lowercase();
        if ["re:", "fwd:", "fw:"].iter().any(|p| s.starts_with(p)) {
            let file = newsletter.path.display().to_string();
            diags.warning(
                Some((&file, newsletter.line_of_key("subject"))),
                "the subject starts like a reply or forward: spam filters and readers treat that as deception",
            );
        }
    }

    let mut dns = Vec::new();
    let Some(domain) = from_domain else { return dns };
    dns.push(format!("SPF    {domain} TXT \"v=spf1 include:<your relay's SPF domain> ~all\" — one SPF record that authorises your relay; its documentation names the include"));
    match &config.dkim {
        None => {
            diags.warning(at, "no DKIM: messages are not signed; create a key with `bulletin dkim keygen --selector news --domain DOMAIN` and add a [dkim] section");
            dns.push(format!(
                "DKIM   none configured: run `bulletin dkim keygen --selector news --domain {domain}`"
            ));
        }
        Some(d) => {
            let aligned = domain == d.domain.to_ascii_lowercase()
                || domain.ends_with(&format!(".{}", d.domain.to_ascii_lowercase()));
            if !aligned {
                diags.warning(at, format!("the From domain {domain} is not the DKIM domain {}: DMARC alignment fails; sign with d={domain}", d.domain));
            }
            for (selector, path) in d.keys() {
                match Key::load(&config.resolve(path), &d.domain, selector) {
                    Ok(key) => {
                        if key.algorithm == crate::dkim::Algorithm::Rsa && key.bits < crate::dkim::GOOD_RSA_BITS {
                            diags.warning(at, format!("the DKIM key {} has {} bits: receivers accept it, but Gmail advises {}; make a new one with `bulletin dkim keygen --selector {selector}2 --domain {}`", path.display(), key.bits, crate::dkim::GOOD_RSA_BITS, d.domain));
                        }
                        dns.push(format!(
                            "DKIM   {selector}._domainkey.{} TXT \"{}\"",
                            d.domain,
                            key.dns_record()
                        ));
                    }
                    Err(e) => diags.error(at, format!("{e:#}")),
                }
            }
        }
    }
    dns.push(format!("DMARC  _dmarc.{domain} TXT \"v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}\" — start with p=none, read the reports, then tighten"));
    dns
}
