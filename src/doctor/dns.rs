//! The resolver `doctor` asks — the system's, or the one `--dns ADDR` / `BULLETIN_DNS` names —
//! and lookups that keep "there is no such record" apart from "the DNS did not answer"
//! (timeout, SERVFAIL, REFUSED): the first is a finding, the second only means we do not know.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result};
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RData;
use mail_auth::MessageAuthenticator;

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lookup<T> {
    Found(T),
    /// The name or the record type does not exist (NXDOMAIN, or an empty answer).
    Missing,
    /// No usable answer: timeout, SERVFAIL, REFUSED, network error.
    Unknown(String),
}

/// Parses `--dns`: `IP` (port 53) or `IP:PORT` (`[v6]:PORT` for IPv6).
pub(crate) fn parse_server(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    s.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("{s:?} is not a name server address: give IP or IP:PORT, e.g. 127.0.0.1:5353"))
}

/// The resolver, shared by our own lookups and mail-auth's.
pub(crate) struct Dns {
    pub(crate) auth: MessageAuthenticator,
    /// Which server answers, for messages.
    pub(crate) server: String,
}

impl Dns {
    /// A resolver asking `server` over UDP and TCP, or the system's name servers.
    pub(crate) fn new(server: Option<SocketAddr>) -> Result<Dns> {
        let (config, mut opts, name) = match server {
            Some(addr) => {
                let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                for c in &mut ns.connections {
                    c.port = addr.port();
                }
                (
                    ResolverConfig::from_name_servers(vec![ns]),
                    ResolverOpts::default(),
                    addr.to_string(),
                )
            }
            None => {
                let (config, opts) = hickory_resolver::system_conf::read_system_conf()
                    .context("cannot read the system's DNS settings (/etc/resolv.conf): pass --dns ADDR")?;
                (config, opts, "the system's name servers".to_owned())
            }
        };
        // A doctor that hangs is no help: a short timeout and one retry; a slow server is
        // reported as unknown, not as a missing record.
        opts.timeout = Duration::from_secs(3);
        opts.attempts = 1;
        let auth = MessageAuthenticator::new(config, opts).context("cannot set up the DNS resolver")?;
        Ok(Dns { auth, server: name })
    }

    /// The TXT records at `name`, each with its strings joined.
    pub(crate) async fn txt(&self, name: &str) -> Lookup<Vec<String>> {
        match self.auth.resolver().txt_lookup(fqdn(name)).await {
            Ok(lookup) => {
                let records: Vec<String> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::TXT(txt) => Some(
                            txt.txt_data
                                .iter()
                                .map(|part| String::from_utf8_lossy(part))
                                .collect::<String>(),
                        ),
                        _ => None,
                    })
                    .collect();
                if records.is_empty() {
                    Lookup::Missing
                } else {
                    Lookup::Found(records)
                }
            }
            Err(e) => classify(&e),
        }
    }

    /// The MX hosts of `name`.
    pub(crate) async fn mx(&self, name: &str) -> Lookup<Vec<String>> {
        match self.auth.resolver().mx_lookup(fqdn(name)).await {
            Ok(lookup) => {
                let hosts: Vec<String> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::MX(mx) => Some(mx.exchange.to_string()),
                        _ => None,
                    })
                    .collect();
                if hosts.is_empty() {
                    Lookup::Missing
                } else {
                    Lookup::Found(hosts)
                }
            }
            Err(e) => classify(&e),
        }
    }

    /// The A and AAAA addresses of `host` (an IP address stands for itself).
    pub(crate) async fn addresses(&self, host: &str) -> Lookup<Vec<IpAddr>> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Lookup::Found(vec![ip]);
        }
        let resolver = self.auth.resolver();
        let (v4, v6) = tokio::join!(resolver.ipv4_lookup(fqdn(host)), resolver.ipv6_lookup(fqdn(host)));
        let mut ips = Vec::new();
        let mut unknown = None;
        for result in [v4, v6] {
            match result {
                Ok(lookup) => ips.extend(lookup.answers().iter().filter_map(|r| match &r.data {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                    _ => None,
                })),
                Err(e) => {
                    if let Lookup::Unknown(why) = classify::<()>(&e) {
                        unknown = Some(why);
                    }
                }
            }
        }
        match (ips.is_empty(), unknown) {
            (false, _) => Lookup::Found(ips),
            (true, Some(why)) => Lookup::Unknown(why),
            (true, None) => Lookup::Missing,
        }
    }
}

/// `name.` — an absolute name, so no search domain of the system's is tried.
fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    }
}

fn classify<T>(e: &NetError) -> Lookup<T> {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(none))
            if matches!(none.response_code, ResponseCode::NXDomain | ResponseCode::NoError) =>
        {
            Lookup::Missing
        }
        NetError::Dns(DnsError::NoRecordsFound(none)) => {
            Lookup::Unknown(format!("the name server answered {}", none.response_code))
        }
        NetError::Dns(DnsError::ResponseCode(code)) => Lookup::Unknown(format!("the name server answered {code}")),
        other => Lookup::Unknown(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses() {
        assert_eq!(parse_server("127.0.0.1:5353").unwrap().port(), 5353);
        assert_eq!(parse_server("9.9.9.9").unwrap().port(), 53);
        assert_eq!(parse_server("[::1]:53").unwrap().ip(), "::1".parse::<IpAddr>().unwrap());
        assert!(parse_server("dns.example.org").unwrap_err().contains("IP:PORT"));
    }
}
