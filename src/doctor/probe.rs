//! The one-click endpoint tried for real: a POST as a mail provider sends it (RFC 8058), with
//! a probe token that `bulletin serve` answers like a member's but records nothing. Only https
//! URLs are tried — and http ones on this machine (127.0.0.1, ::1, localhost), as tests use.
//! The host is looked up through doctor's resolver (`--dns`), like every other name here.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use super::Report;
use super::dns::{Dns, Lookup};
use crate::unsubscribe::Unsubscribe;

/// Adds the `one-click` finding for `u`'s URL: ✓ when it answers the probe 200, ✗ when it
/// answers anything else, ! when it cannot be reached (not deployed yet) or is not tried.
pub(crate) fn check(u: &Unsubscribe, dns: &Dns, runtime: &tokio::runtime::Runtime, report: &mut Report) {
    let Some(url) = u.probe_url() else {
        return report.warn(
            "one-click",
            "not probed: the URL carries no {{ token }}, so it is not `bulletin serve`'s",
        );
    };
    let parsed = match url::Url::parse(&url) {
        Ok(p) if p.scheme() == "https" || loopback(&p) => p,
        // Plain http elsewhere: the unsubscribe line already failed; nothing is sent.
        _ => return,
    };
    let token = u.probe_token().unwrap_or_default();
    let shown = url.replace(&token, "PROBE");
    let host = match parsed.host() {
        Some(url::Host::Domain(d)) => d.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return,
    };
    let ips = match runtime.block_on(dns.addresses(&host)) {
        Lookup::Found(ips) => ips,
        Lookup::Missing => {
            return report.warn(
                "one-click",
                format!("{host} has no address record: not deployed yet? Run `bulletin serve` at {shown} before the first send"),
            );
        }
        Lookup::Unknown(why) => return report.warn("one-click", format!("cannot look up {host}: {why}")),
    };
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(10)))
        .user_agent("bulletin doctor")
        .build();
    let agent = ureq::Agent::with_parts(config, DefaultConnector::new(), Addresses(ips));
    let answer = agent
        .post(&url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send("List-Unsubscribe=One-Click");
    match answer {
        Ok(r) if r.status() == 200 => report.pass(
            "one-click",
            format!("POST {shown} with a probe token answers 200 (nothing recorded)"),
        ),
        Ok(r) => report.fail(
            "one-click",
            format!(
                "POST {shown} with a probe token answers {}: mail providers' one-click unsubscribes would fail",
                r.status()
            ),
            "run `bulletin serve` (this version) behind that URL, with this project's unsubscribe secret and list_id;\nit must answer the POST itself with 200, not redirect (RFC 8058)",
        ),
        Err(e) => report.warn(
            "one-click",
            format!("cannot reach {shown} ({e}): not deployed yet? Run `bulletin serve` there before the first send"),
        ),
    }
}

/// An http URL whose host is this machine.
fn loopback(url: &url::Url) -> bool {
    url.scheme() == "http"
        && match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            None => false,
        }
}

/// The addresses doctor's resolver found for the URL's host, so ureq connects there (TLS
/// still verifies the certificate for the host name).
#[derive(Debug)]
struct Addresses(Vec<IpAddr>);

impl Resolver for Addresses {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        _: &ureq::config::Config,
        _: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("http") { 80 } else { 443 });
        let mut out = self.empty();
        for ip in self.0.iter().take(16) {
            out.push(SocketAddr::new(*ip, port));
        }
        if self.0.is_empty() {
            return Err(ureq::Error::HostNotFound);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_machine_is_tried_over_http() {
        let is = |u: &str| loopback(&url::Url::parse(u).unwrap());
        assert!(is("http://127.0.0.1:8080/u/x"));
        assert!(is("http://[::1]/u/x"));
        assert!(is("http://localhost/u/x"));
        assert!(!is("http://example.org/u/x"));
        assert!(!is("http://127.0.0.1.example.org/u/x"));
        assert!(!is("https://127.0.0.1/u/x"));
    }
}
