//! The relay: SMTP URL and TLS policy, one authenticated session per worker, and each
//! delivery's outcome classified by the stage it reached.
//!
//! lettre's client does the protocol; we drive it command by command (rather than through
//! its pooled `SmtpTransport`) because exactly-once needs to know *where* a failure happened:
//! before the end of DATA nothing was delivered and a retry is safe; after the final `.`
//! without a reply the relay may have accepted the message, so the member is `uncertain`.

use std::cell::Cell;
use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Result, bail};
use lettre::Address;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{SmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};

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

/// What happened to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted; the server's reply.
    Sent(String),
    /// Not delivered, safe to retry (4xx, or the connection broke before the end of DATA).
    Transient(String),
    /// Rejected for good (5xx).
    Permanent(String),
    /// The connection broke after the final `.`: the server may have the message.
    Uncertain(String),
}

impl Relay {
    /// Parses `smtps://user@host:465`, `smtp://user@host:587`, `smtp://127.0.0.1:2525`,
    /// `smtp://host:25?tls=none`. The password never comes from the URL.
    pub fn parse(raw: &str, password: Option<Secret>, timeout: Duration) -> Result<Relay> {
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
        if user.is_some() && password.is_none() {
            bail!(
                "the SMTP URL names user {:?} but no password is set: export BULLETIN_SMTP_PASSWORD or set [smtp] password_command",
                user.as_deref().unwrap_or("")
            );
        }
        Ok(Relay {
            port: url.port().unwrap_or(default_port),
            host,
            security,
            user,
            password,
            timeout,
            hello: ClientId::default(),
        })
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
        if let (Some(user), Some(password)) = (&self.user, &self.password) {
            let creds = Credentials::new(user.clone(), password.expose().to_owned());
            if let Err(e) = conn.auth(&[Mechanism::Plain, Mechanism::Login], &creds) {
                conn.abort();
                return Err(match e.status() {
                    Some(code) if e.is_transient() => ConnectError::Transient(format!("{code} during AUTH: {e}")),
                    _ => ConnectError::Auth(e.to_string()),
                });
            }
        }
        Ok(Session { conn })
    }
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

/// One open SMTP session.
pub struct Session {
    conn: SmtpConnection,
}

impl Session {
    /// Is the session still usable?
    pub fn is_broken(&self) -> bool {
        self.conn.has_broken()
    }

    /// Delivers one message to one recipient.
    pub fn send(&mut self, from: &Address, to: &Address, message: &[u8]) -> Outcome {
        let mut params = Vec::new();
        if !message.is_ascii() {
            if !self.conn.server_info().supports_feature(Extension::EightBitMime) {
                return Outcome::Permanent("the message is not ASCII and the server lacks 8BITMIME".into());
            }
            params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        if let Err(e) = self.conn.command(Mail::new(Some(from.clone()), params)) {
            return self.refused(&e);
        }
        if let Err(e) = self.conn.command(Rcpt::new(to.clone(), Vec::new())) {
            return self.refused(&e);
        }
        if let Err(e) = self.conn.command(Data) {
            return self.refused(&e);
        }
        // lettre writes the body, then the final `.`, then reads the reply. The iterator's
        // end marks the moment the whole body was written: a failure before it cannot have
        // delivered anything.
        let body_written = Cell::new(false);
        let chunks = std::iter::once(message).chain(std::iter::from_fn(|| {
            body_written.set(true);
            None
        }));
        match self.conn.message_iter(chunks) {
            Ok(reply) => Outcome::Sent(reply_text(&reply)),
            Err(e) if e.status().is_some() => {
                if e.is_permanent() {
                    Outcome::Permanent(e.to_string())
                } else {
                    Outcome::Transient(e.to_string())
                }
            }
            Err(e) if body_written.get() => {
                self.conn.abort();
                Outcome::Uncertain(format!(
                    "connection lost after the end of the message, before the reply: {e}"
                ))
            }
            Err(e) => {
                self.conn.abort();
                Outcome::Transient(format!("connection lost during DATA: {e}"))
            }
        }
    }

    /// A failure before DATA completed: classify it and leave the session clean.
    fn refused(&mut self, e: &lettre::transport::smtp::Error) -> Outcome {
        let outcome = if e.is_permanent() {
            Outcome::Permanent(e.to_string())
        } else {
            Outcome::Transient(e.to_string())
        };
        let closing = e.status().is_some_and(|c| c.to_string() == "421");
        if e.status().is_none() || closing || self.conn.command(Rset).is_err() {
            self.conn.abort();
        }
        outcome
    }

    /// Says goodbye politely.
    pub fn quit(mut self) {
        let _ = self.conn.quit();
    }
}

fn reply_text(r: &lettre::transport::smtp::response::Response) -> String {
    let lines: Vec<&str> = r.message().collect();
    format!("{} {}", r.code(), lines.join(" "))
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
    fn describe_never_shows_the_password() {
        let r = parse("smtps://u@smtp.example.org", true).unwrap();
        assert!(!format!("{} {r:?}", r.describe()).contains("pw\""));
    }
}
