//! The relay: SMTP URL and TLS policy, and opening one authenticated session per worker
//! ([`session`] sends the messages and classifies each outcome by the stage it reached).
//!
//! lettre's client does the protocol; we drive it command by command (rather than through
//! its pooled `SmtpTransport`) because exactly-once needs to know *where* a failure happened.

mod session;

pub use session::{Outcome, Ready, Session};

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Result, bail};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{SmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::Ehlo;
use lettre::transport::smtp::extension::ClientId;

use crate::secret::Secret;

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `smtps://`: TLS from the first byte.
    Implicit,
    /// `smtp://`: STARTTLS, required.
    StartTls,
    /// Plain text: only to a loopback host, or with `?tls=none`.
    None,
}

/// Where and how to deliver.
#[derive(Debug, Clone)]
pub struct Relay {
    pub host: String,
    pub port: u16,
    pub security: Security,
    user: Option<String>,
    password: Option<Secret>,
    pub timeout: Duration,
    hello: ClientId,
}

/// Why a session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Wrong credentials or no common mechanism: retrying will not help.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// A user is configured, but the relay offers no AUTH bulletin can use — none at all, none
    /// before a STARTTLS this URL does not use, or only mechanisms other than PLAIN and LOGIN.
    /// Never a reason to send unauthenticated: the relay would take the mail from anyone, or
    /// refuse every member one by one.
    #[error("{0}")]
    NoAuth(String),
    /// TLS could not be set up or the certificate did not verify.
    #[error("TLS failed: {0}")]
    Tls(String),
    /// The server refused us for good (5xx greeting).
    #[error("the server refused the connection: {0}")]
    Refused(String),
    /// Network trouble or a 4xx: worth another try later.
    #[error("cannot connect: {0}")]
    Transient(String),
}

impl Relay {
    /// Parses `smtps://user@host:465`, `smtp://user@host:587`, `smtp://127.0.0.1:2525`,
    /// `smtp://host:25?tls=none`. The password never comes from the URL.
    pub fn parse(raw: &str, password: Option<Secret>, timeout: Duration) -> Result<Relay> {
        Relay::parse_url(raw, timeout)?.with_password(password)
    }

    /// Parses and checks the URL alone (scheme, host, TLS policy), with no password yet:
    /// what `check` can know without asking for a secret.
    pub fn parse_url(raw: &str, timeout: Duration) -> Result<Relay> {
        let url = url::Url::parse(raw).map_err(|e| anyhow::anyhow!("SMTP URL {raw:?}: {e}"))?;
        if url.password().is_some() {
            bail!(
                "the SMTP URL contains a password: remove it (it would show in process lists and shell history) \
                 and export BULLETIN_SMTP_PASSWORD or set [smtp] password_command"
            );
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| anyhow::anyhow!("SMTP URL {raw:?} has no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let mut tls_none = false;
        for (k, v) in url.query_pairs() {
            match (k.as_ref(), v.as_ref()) {
                ("tls", "none") => tls_none = true,
                _ => bail!("SMTP URL {raw:?}: unknown option `{k}={v}` (the only one is `tls=none`)"),
            }
        }
        let loopback = is_loopback(&host);
        let (security, default_port) = match url.scheme() {
            "smtps" if tls_none => bail!("SMTP URL {raw:?}: smtps:// with tls=none contradicts itself"),
            "smtps" => (Security::Implicit, 465),
            "smtp" if tls_none || loopback => (Security::None, 25),
            "smtp" => (Security::StartTls, 587),
            other => bail!("SMTP URL {raw:?}: scheme `{other}` is not smtp:// or smtps://"),
        };
        let user = (!url.username().is_empty()).then(|| {
            percent_encoding::percent_decode_str(url.username())
                .decode_utf8_lossy()
                .into_owned()
        });
        if user.is_some() && security == Security::None && !loopback {
            bail!(
                "SMTP URL {raw:?}: refusing to send a password in plain text to {host}: \
                 use smtp:// (STARTTLS) or smtps://"
            );
        }
        Ok(Relay {
            port: url.port().unwrap_or(default_port),
            host,
            security,
            user,
            password: None,
            timeout,
            hello: ClientId::default(),
        })
    }

    /// The relay with its password; a URL that names a user needs one.
    pub fn with_password(mut self, password: Option<Secret>) -> Result<Relay> {
        if let Some(user) = &self.user
            && password.is_none()
        {
            bail!(
                "the SMTP URL names user {user:?} but no password is set: export BULLETIN_SMTP_PASSWORD or set [smtp] password_command"
            );
        }
        self.password = password;
        Ok(self)
    }

    /// Whether the URL names a user (who will need a password).
    pub fn has_user(&self) -> bool {
        self.user.is_some()
    }

    /// `smtp.example.org:587 (STARTTLS)`, for the confirmation and messages. No secrets.
    pub fn describe(&self) -> String {
        let how = match self.security {
            Security::Implicit => "TLS",
            Security::StartTls => "STARTTLS",
            Security::None => "plain text",
        };
        let who = self.user.as_deref().map(|u| format!("{u} at ")).unwrap_or_default();
        format!("{who}{}:{} ({how})", self.host, self.port)
    }

    /// Opens a session: greeting, EHLO, TLS, AUTH.
    pub fn connect(&self) -> Result<Session, ConnectError> {
        let tls = match self.security {
            Security::None => None,
            _ => Some(TlsParameters::new(self.host.clone()).map_err(|e| ConnectError::Tls(e.to_string()))?),
        };
        let implicit = if self.security == Security::Implicit {
            tls.as_ref()
        } else {
            None
        };
        let mut conn = SmtpConnection::connect(
            (self.host.as_str(), self.port),
            Some(self.timeout),
            &self.hello,
            implicit,
            None,
        )
        .map_err(|e| classify_connect(&e))?;
        if self.security == Security::StartTls {
            if !conn.can_starttls() {
                conn.abort();
                return Err(ConnectError::Tls(format!(
                    "{} does not offer STARTTLS; refusing to continue in plain text",
                    self.host
                )));
            }
            let tls = tls.as_ref().expect("STARTTLS has TLS parameters");
            conn.starttls(tls, &self.hello)
                .map_err(|e| match classify_connect(&e) {
                    ConnectError::Transient(m) if e.is_tls() => ConnectError::Tls(m),
                    other => other,
                })?;
        }
        // lettre keeps no record of PIPELINING, so ask again (one round trip per session); SMTPUTF8
        // and AUTH are read from the same answer.
        let extensions: Vec<String> = match conn.command(Ehlo::new(self.hello.clone())) {
            // (Postfix's smtp-sink ends the list with an empty `250 ` line.)
            Ok(reply) => reply
                .message()
                .skip(1)
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect(),
            Err(e) => {
                conn.abort();
                return Err(classify_connect(&e));
            }
        };
        let offers = Offers::from_extensions(&extensions);
        if let Some(user) = &self.user {
            // A URL naming a user always has a password (`with_password`); without one, AUTH
            // cannot happen either, and the session must not go on as if it had.
            let (Some(password), Some(_)) = (&self.password, conn.server_info().get_auth_mechanism(MECHANISMS)) else {
                conn.abort();
                return Err(ConnectError::NoAuth(self.no_auth(&extensions)));
            };
            let creds = Credentials::new(user.clone(), password.expose().to_owned());
            if let Err(e) = conn.auth(MECHANISMS, &creds) {
                conn.abort();
                return Err(match e.status() {
                    Some(code) if e.is_transient() => ConnectError::Transient(format!("{code} during AUTH: {e}")),
                    _ => ConnectError::Auth(e.to_string()),
                });
            }
        }
        Ok(Session::new(conn, offers))
    }

    /// Whether the relay offers SMTPUTF8 (RFC 6531), asked in a session of its own, closed at
    /// once: preflight needs to know before the members who need it are counted.
    pub fn offers_smtputf8(&self) -> Result<bool, ConnectError> {
        let session = self.connect()?;
        let offered = session.smtputf8();
        session.quit();
        Ok(offered)
    }

    /// Why a session with a user cannot authenticate, from the relay's EHLO `extensions`.
    fn no_auth(&self, extensions: &[String]) -> String {
        let host = &self.host;
        let listed = if extensions.is_empty() {
            "nothing".to_owned()
        } else {
            extensions.join(", ")
        };
        let has = |k: &str| extensions.iter().any(|l| keyword(l).eq_ignore_ascii_case(k));
        let what = if let Some(auth) = extensions.iter().find(|l| keyword(l).eq_ignore_ascii_case("AUTH")) {
            match auth.split_whitespace().skip(1).collect::<Vec<_>>().join(" ") {
                none if none.is_empty() => format!("the relay {host} offers AUTH with no mechanism"),
                offered => {
                    format!("the relay {host} offers AUTH only as {offered}, and bulletin speaks PLAIN and LOGIN")
                }
            }
        } else if has("STARTTLS") && self.security == Security::None {
            format!("the relay {host} offers no AUTH before STARTTLS, which this plain-text URL does not use")
        } else {
            format!("the relay {host} offers no AUTH")
        };
        format!(
            "{what} (its EHLO lists: {listed}); bulletin will not send unauthenticated when a user is configured \
             — check the URL's port/TLS or remove the user"
        )
    }
}

/// The EHLO keywords bulletin acts on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offers {
    /// PIPELINING (RFC 2920): MAIL, RCPT and DATA in one write.
    pub pipelining: bool,
    /// SMTPUTF8 (RFC 6531): addresses with a non-ASCII local part, UTF-8 headers.
    pub smtputf8: bool,
    /// SIZE (RFC 1870): the largest message the relay takes; `None` when it names no limit
    /// (or 0, which means none).
    pub size: Option<u64>,
}

impl Offers {
    /// From the EHLO reply's extension lines (`PIPELINING`, `AUTH PLAIN LOGIN`…).
    fn from_extensions(extensions: &[String]) -> Offers {
        let has = |k: &str| extensions.iter().any(|l| keyword(l).eq_ignore_ascii_case(k));
        let size = extensions
            .iter()
            .find(|l| keyword(l).eq_ignore_ascii_case("SIZE"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse::<u64>().ok())
            .filter(|&n| n > 0);
        Offers {
            pipelining: has("PIPELINING"),
            smtputf8: has("SMTPUTF8"),
            size,
        }
    }
}

/// The AUTH mechanisms bulletin uses, in order of preference.
const MECHANISMS: &[Mechanism] = &[Mechanism::Plain, Mechanism::Login];

/// An EHLO extension line's keyword (`AUTH` in `AUTH PLAIN LOGIN`).
fn keyword(line: &str) -> &str {
    line.split_whitespace().next().unwrap_or_default()
}

fn classify_connect(e: &lettre::transport::smtp::Error) -> ConnectError {
    if e.is_tls() {
        ConnectError::Tls(e.to_string())
    } else if e.is_permanent() {
        ConnectError::Refused(e.to_string())
    } else {
        ConnectError::Transient(e.to_string())
    }
}

/// `localhost`, 127.0.0.0/8, ::1.
pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str, pw: bool) -> Result<Relay> {
        Relay::parse(url, pw.then(|| Secret::new("pw".into())), Duration::from_secs(5))
    }

    #[test]
    fn url_forms_and_tls_policy() {
        let r = parse("smtps://news%40example.org@smtp.example.org", true).unwrap();
        assert_eq!(
            (r.security, r.port, r.user.as_deref()),
            (Security::Implicit, 465, Some("news@example.org"))
        );
        let r = parse("smtp://u@smtp.example.org", true).unwrap();
        assert_eq!((r.security, r.port), (Security::StartTls, 587));
        let r = parse("smtp://127.0.0.1:2525", false).unwrap();
        assert_eq!((r.security, r.port), (Security::None, 2525));
        let r = parse("smtp://relay.example.org:25?tls=none", false).unwrap();
        assert_eq!(r.security, Security::None);
        assert!(r.describe().contains("plain text"));
    }

    #[test]
    fn refuses_unsafe_or_unclear_urls() {
        let err = |u: &str, pw: bool| parse(u, pw).unwrap_err().to_string();
        assert!(err("smtps://u:secret@smtp.example.org", true).contains("contains a password"));
        assert!(!err("smtps://u:secret@smtp.example.org", true).contains("secret"));
        assert!(err("smtp://u@relay.example.org?tls=none", true).contains("plain text"));
        assert!(err("smtp://u@smtp.example.org", false).contains("BULLETIN_SMTP_PASSWORD"));
        assert!(err("http://smtp.example.org", false).contains("scheme"));
        assert!(err("smtp://smtp.example.org?tls=maybe", false).contains("unknown option"));
    }

    #[test]
    fn the_size_limit_comes_from_ehlo() {
        let lines = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            Offers::from_extensions(&lines(&["PIPELINING", "SIZE 10240000"])).size,
            Some(10_240_000)
        );
        assert_eq!(Offers::from_extensions(&lines(&["SIZE"])).size, None);
        assert_eq!(Offers::from_extensions(&lines(&["size 0"])).size, None);
    }

    #[test]
    fn no_auth_says_what_the_relay_offers_and_what_to_check() {
        let lines = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let plain = parse("smtp://u@127.0.0.1:2525", true).unwrap();
        let tls = parse("smtps://u@smtp.example.org", true).unwrap();
        let tail = "; bulletin will not send unauthenticated when a user is configured \
                    — check the URL's port/TLS or remove the user";
        assert_eq!(
            plain.no_auth(&lines(&["SIZE 10240000", "8BITMIME"])),
            format!("the relay 127.0.0.1 offers no AUTH (its EHLO lists: SIZE 10240000, 8BITMIME){tail}")
        );
        assert_eq!(
            plain.no_auth(&lines(&["PIPELINING", "STARTTLS"])),
            format!(
                "the relay 127.0.0.1 offers no AUTH before STARTTLS, which this plain-text URL does not use \
                 (its EHLO lists: PIPELINING, STARTTLS){tail}"
            )
        );
        assert_eq!(
            tls.no_auth(&lines(&["AUTH CRAM-MD5 GSSAPI"])),
            format!(
                "the relay smtp.example.org offers AUTH only as CRAM-MD5 GSSAPI, and bulletin speaks PLAIN and LOGIN \
                 (its EHLO lists: AUTH CRAM-MD5 GSSAPI){tail}"
            )
        );
        assert!(tls.no_auth(&[]).contains("offers no AUTH (its EHLO lists: nothing)"));
        assert!(tls.no_auth(&lines(&["auth"])).contains("offers AUTH with no mechanism"));
    }

    #[test]
    fn describe_never_shows_the_password() {
        let r = parse("smtps://u@smtp.example.org", true).unwrap();
        assert!(!format!("{} {r:?}", r.describe()).contains("pw\""));
    }
}
