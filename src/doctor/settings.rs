//! Who the mail claims to be from (the From, Reply-To and envelope domains the DNS checks look
//! at), whether those domains can receive mail, and the settings a bulk sender must have:
//! one-click unsubscribe, List-Id, a postal address.

use lettre::message::Mailbox;

use super::Report;
use super::dns::{Dns, Lookup};
use crate::config::Config;
use crate::message::mailbox;
use crate::newsletter::Newsletter;

/// The identities a receiver checks.
pub(crate) struct Sender {
    /// The From address, or why there is none usable.
    pub(crate) from: Result<Mailbox, String>,
    pub(crate) reply_to: Option<Mailbox>,
    /// `[inbox] bounce_address`: with it, `send` makes the envelope sender `bounces+TOKEN@…`
    /// (VERP) there instead of the From address.
    pub(crate) bounce: Option<String>,
}

impl Sender {
    /// From and Reply-To as a send of `newsletter` (or of any newsletter, by the settings)
    /// would use them.
    pub(crate) fn of(config: &Config, newsletter: Option<&Newsletter>) -> Sender {
        let front = newsletter.map(|n| &n.front);
        let from = match front.and_then(|f| f.from.as_deref()).or(config.from.as_deref()) {
            None => Err("no sender: set `from = \"Name <news@example.org>\"` in bulletin.toml".to_owned()),
            Some(raw) => mailbox(raw).map_err(|e| format!("the sender {raw:?} is not `Name <address>`: {e:#}")),
        };
        let reply_to = front
            .and_then(|f| f.reply_to.as_deref())
            .or(config.reply_to.as_deref())
            .and_then(|r| mailbox(r).ok());
        let bounce = config
            .inbox
            .bounce_address
            .as_ref()
            .map(|b| b.get_ref().trim().to_owned());
        Sender { from, reply_to, bounce }
    }

    /// The From address's domain, lower-case.
    pub(crate) fn author_domain(&self) -> Option<String> {
        self.from.as_ref().ok().map(|m| m.email.domain().to_ascii_lowercase())
    }

    /// The envelope sender (MAIL FROM) domain SPF judges: the VERP bounce address's domain
    /// when `[inbox] bounce_address` is set, else the From address's (bulletin's envelope
    /// sender otherwise).
    pub(crate) fn envelope_domain(&self) -> Option<String> {
        match self.bounce.as_deref().and_then(|b| b.rsplit_once('@')) {
            Some((_, domain)) if !domain.is_empty() => Some(domain.to_ascii_lowercase()),
            _ => self.author_domain(),
        }
    }
}

/// MX (or, failing that, A/AAAA) for the From and Reply-To domains: replies and bounces need
/// somewhere to go, and receivers refuse senders whose domain cannot receive.
pub(crate) async fn check_domains(sender: &Sender, dns: &Dns, report: &mut Report) {
    let Some(from) = sender.author_domain() else { return };
    let mut domains = vec![("From", from)];
    if let Some(r) = &sender.reply_to {
        let d = r.email.domain().to_ascii_lowercase();
        if d != domains[0].1 {
            domains.push(("Reply-To", d));
        }
    }
    for (which, domain) in domains {
        match dns.mx(&domain).await {
            Lookup::Found(hosts) => report.pass("mx", format!("{which} domain {domain} receives mail (MX {})", hosts.join(", "))),
            Lookup::Unknown(why) => report.warn("mx", format!("cannot look up the MX of {domain}: {why}")),
            Lookup::Missing => match dns.addresses(&domain).await {
                Lookup::Found(_) => report.pass("mx", format!("{which} domain {domain} has no MX but an address record, where mail goes")),
                Lookup::Unknown(why) => report.warn("mx", format!("cannot look up the addresses of {domain}: {why}")),
                Lookup::Missing => report.fail(
                    "mx",
                    format!("{which} domain {domain} has neither MX nor A/AAAA records: replies and bounces cannot arrive, and receivers distrust it"),
                    format!("{domain} MX 10 <your mail server>   (your mail host names it; e.g. Google Workspace: smtp.google.com)"),
                ),
            },
        }
    }
}

/// One-click unsubscribe (the endpoint tried with a probe, its host looked up through `dns`),
/// List-Id and postal address.
pub(crate) fn check_settings(config: &Config, dns: &Dns, runtime: &tokio::runtime::Runtime, report: &mut Report) {
    let u = &config.unsubscribe;
    let unsubscribe = crate::unsubscribe::Unsubscribe::from_config(config);
    match u.url.as_deref() {
        None => report.fail(
            "unsubscribe",
            "no one-click unsubscribe: Gmail and Yahoo require it of bulk senders",
            "[unsubscribe]\nurl = \"https://example.org/unsubscribe?token={{ token }}\"\nsecret_command = \"cat .bulletin/unsubscribe.secret\"   (then run `bulletin serve` there)",
        ),
        Some(url) if !url.starts_with("https://") => report.fail(
            "unsubscribe",
            format!("the unsubscribe URL {url:?} is not https: one-click unsubscribe needs https (RFC 8058)"),
            format!("[unsubscribe] url = \"{}\"", url.replacen("http://", "https://", 1)),
        ),
        Some(url) => match &unsubscribe {
            Err(e) => report.fail(
                "unsubscribe",
                format!("one-click unsubscribe cannot work: {e:#}"),
                "[unsubscribe] secret_command = \"cat .bulletin/unsubscribe.secret\"   (or export BULLETIN_UNSUBSCRIBE_SECRET)",
            ),
            Ok(_) => report.pass("unsubscribe", format!("one-click unsubscribe at {url}")),
        },
    }
    // An http URL is a failure above, but the endpoint behind it is still tried when it is
    // this machine's (a test, or `serve` before its https proxy); elsewhere probe skips it.
    if let Ok(Some(unsubscribe)) = &unsubscribe
        && u.url.is_some()
    {
        super::probe::check(unsubscribe, dns, runtime, report);
    }
    match &config.list_id {
        Some(id) => report.pass("list-id", format!("List-Id {id}")),
        None => report.warn(
            "list-id",
            "no list_id: set list_id = \"Members <members.example.org>\" so mail clients can filter and offer unsubscribe",
        ),
    }
    match &config.organisation.postal_address {
        Some(a) => report.pass("postal-address", format!("postal address {a:?}")),
        None => report.fail(
            "postal-address",
            "no postal address: anti-spam laws (CAN-SPAM, CASL) require one in every message",
            "[organisation] postal_address = \"PO Box 1, Oakland, CA 94601\"",
        ),
    }
}
