//! The relay: SMTP URL and TLS policy, one authenticated session per worker, and each
//! delivery's outcome classified by the stage it reached.
//!
//! lettre's client does the protocol; we drive it command by command (rather than through
//! its pooled `SmtpTransport`) because exactly-once needs to know *where* a failure happened:
//! before the end of DATA nothing was delivered and a retry is safe; after the final `.`
//! without a reply the relay may have accepted the message, so the member is `uncertain`.
//! When the server offers PIPELINING a message costs two round trips (MAIL, RCPT and DATA
//! in one write, then the body with its final `.` in one write); without it, four.

use std::cell::Cell;
use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Result, bail};
use lettre::Address;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{SmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt, Rset};
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
    /// The relay was ready for the body but the caller withheld it (the journal could not
    /// record the hand-off); the session was closed, so nothing was delivered.
    Withheld(String),
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
        // lettre keeps no record of PIPELINING, so ask again (one round trip per session).
        let pipelining = match conn.command(Ehlo::new(self.hello.clone())) {
            Ok(reply) => reply.message().skip(1).any(|line| {
                line.split_whitespace()
                    .next()
                    .is_some_and(|k| k.eq_ignore_ascii_case("PIPELINING"))
            }),
            Err(e) => {
                conn.abort();
                return Err(classify_connect(&e));
            }
        };
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
        Ok(Session { conn, pipelining })
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
    /// The server offers PIPELINING (RFC 2920): MAIL, RCPT and DATA go in one write.
    pipelining: bool,
}

impl Session {
    /// Is the session still usable?
    pub fn is_broken(&self) -> bool {
        self.conn.has_broken()
    }

    /// Delivers one message to one recipient. `before_body` runs once the relay has accepted
    /// the envelope and before the first byte of the message leaves; an error from it closes
    /// the session instead (nothing delivered).
    pub fn send(
        &mut self,
        from: &Address,
        to: &Address,
        message: &[u8],
        before_body: impl FnOnce() -> Result<(), String>,
    ) -> Outcome {
        let mut params = Vec::new();
        if !message.is_ascii() {
            if !self.conn.server_info().supports_feature(Extension::EightBitMime) {
                return Outcome::Permanent("the message is not ASCII and the server lacks 8BITMIME".into());
            }
            params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        let mail = Mail::new(Some(from.clone()), params);
        let rcpt = Rcpt::new(to.clone(), Vec::new());
        if self.pipelining {
            if let Some(refused) = self.envelope_pipelined(&mail, &rcpt) {
                return refused;
            }
        } else {
            if let Err(e) = self.conn.command(mail) {
                return self.refused(&e);
            }
            if let Err(e) = self.conn.command(rcpt) {
                return self.refused(&e);
            }
            if let Err(e) = self.conn.command(Data) {
                return self.refused(&e);
            }
        }
        if let Err(why) = before_body() {
            self.conn.abort();
            return Outcome::Withheld(why);
        }
        match std::str::from_utf8(message) {
            Ok(text) => self.data_in_one_write(text),
            Err(_) => self.data_in_two_writes(message),
        }
    }

    /// MAIL, RCPT and DATA in one write, then their three replies in order: two round trips
    /// a message instead of four. `None` when the server is ready for the body. Nothing of
    /// the message has left yet, so every failure here is safe to retry.
    fn envelope_pipelined(&mut self, mail: &Mail, rcpt: &Rcpt) -> Option<Outcome> {
        let mut refusal = None;
        for i in 0..3 {
            let reply = if i == 0 {
                self.conn.command(format!("{mail}{rcpt}{Data}"))
            } else {
                self.conn.read_response()
            };
            match reply {
                // A 354 after a refused MAIL or RCPT: never send a body into that.
                Ok(_) if i == 2 && refusal.is_some() => self.conn.abort(),
                Ok(_) => {}
                Err(e) if e.status().is_none() => {
                    self.conn.abort();
                    return Some(refusal.as_ref().map_or_else(|| status_outcome(&e), status_outcome));
                }
                Err(e) => {
                    refusal.get_or_insert(e);
                }
            }
        }
        refusal.map(|e| self.refused(&e))
    }

    /// The body and the final `.` in a single write, then the reply.
    ///
    /// lettre 0.11.23 writes the body and the final `\r\n.\r\n` as two writes and leaves
    /// Nagle's algorithm on (it offers no way to set `TCP_NODELAY`; fixed upstream in
    /// lettre#1159, unreleased): the five-byte write then waits for the server's delayed ACK,
    /// 40 ms on Linux, capping a session at ~23 messages a second. One write has nothing to
    /// wait for.
    ///
    /// The price: lettre reports a failed write and a failed read alike, so we cannot always
    /// tell whether the final `.` left. A broken pipe can only come from the write (nothing
    /// was delivered: retry); any other lost connection or timeout is `uncertain`, which
    /// may withhold a retry but never sends twice.
    fn data_in_one_write(&mut self, text: &str) -> Outcome {
        match self.conn.command(dot_stuffed(text)) {
            Ok(reply) => Outcome::Sent(reply_text(&reply)),
            Err(e) if e.status().is_some() => status_outcome(&e),
            Err(e) if io_kind(&e) == Some(std::io::ErrorKind::BrokenPipe) => {
                self.conn.abort();
                Outcome::Transient(format!("connection lost during DATA: {e}"))
            }
            Err(e) => {
                self.conn.abort();
                Outcome::Uncertain(format!(
                    "connection lost after the end of the message, before the reply: {e}"
                ))
            }
        }
    }

    /// lettre's own DATA writer, for a body that is not UTF-8 (ours always are): the body,
    /// then the final `.` (see [`Session::data_in_one_write`] for the cost of two writes).
    fn data_in_two_writes(&mut self, message: &[u8]) -> Outcome {
        // The iterator's end marks the moment the whole body was written: a failure before
        // it cannot have delivered anything.
        let body_written = Cell::new(false);
        let chunks = std::iter::once(message).chain(std::iter::from_fn(|| {
            body_written.set(true);
            None
        }));
        match self.conn.message_iter(chunks) {
            Ok(reply) => Outcome::Sent(reply_text(&reply)),
            Err(e) if e.status().is_some() => status_outcome(&e),
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
        let outcome = status_outcome(e);
        let closing = e.status().is_some_and(|c| c.to_string() == "421");
        if e.status().is_none() || closing || self.conn.has_broken() || self.conn.command(Rset).is_err() {
            self.conn.abort();
        }
        outcome
    }

    /// Says goodbye politely.
    pub fn quit(mut self) {
        let _ = self.conn.quit();
    }
}

/// The message body as SMTP sends it after `354`: every line starting with `.` gets a
/// second one (RFC 5321 4.5.2, exactly as lettre's codec does), then `\r\n.\r\n`.
fn dot_stuffed(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 64 + 5);
    let mut from = 0;
    let mut search = 0;
    while let Some(dot) = text[search..].find('.').map(|i| search + i) {
        if dot == 0 || text[..dot].ends_with("\r\n") {
            out.push_str(&text[from..dot]);
            out.push('.');
            from = dot;
        }
        search = dot + 1;
    }
    out.push_str(&text[from..]);
    out.push_str("\r\n.\r\n");
    out
}

/// A reply with a status code: 5xx is permanent, anything else worth retrying.
fn status_outcome(e: &lettre::transport::smtp::Error) -> Outcome {
    if e.is_permanent() {
        Outcome::Permanent(e.to_string())
    } else {
        Outcome::Transient(e.to_string())
    }
}

fn io_kind(e: &lettre::transport::smtp::Error) -> Option<std::io::ErrorKind> {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .map(std::io::Error::kind)
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

    /// A one-connection server on 127.0.0.1 that offers PIPELINING and answers each command
    /// with `answer(VERB)` (`None`: hang up without a word). Yields every byte it read.
    fn pipelining_server(answer: fn(&str) -> Option<&'static str>) -> (Relay, std::thread::JoinHandle<String>) {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("smtp://{}", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut out = stream.try_clone().unwrap();
            let mut lines = BufReader::new(stream);
            let mut seen = String::new();
            out.write_all(b"220 test ESMTP\r\n").unwrap();
            let mut line = String::new();
            while lines.read_line(&mut line).unwrap_or(0) > 0 {
                seen.push_str(&line);
                let verb = line.split([' ', ':', '\r']).next().unwrap_or("").to_ascii_uppercase();
                let mut reply = match verb.as_str() {
                    "EHLO" => Some("250-test\r\n250-PIPELINING\r\n250 8BITMIME"),
                    "RSET" => Some("250 2.0.0 reset"),
                    "QUIT" => Some("221 bye"),
                    other => answer(other),
                };
                if verb == "DATA" && reply.is_some_and(|r| r.starts_with("354")) {
                    out.write_all(b"354 go ahead\r\n").unwrap();
                    loop {
                        line.clear();
                        if lines.read_line(&mut line).unwrap_or(0) == 0 {
                            return seen;
                        }
                        seen.push_str(&line);
                        if line == ".\r\n" {
                            break;
                        }
                    }
                    reply = answer(".");
                }
                let Some(reply) = reply else { return seen };
                out.write_all(format!("{reply}\r\n").as_bytes()).unwrap();
                if verb == "QUIT" {
                    return seen;
                }
                line.clear();
            }
            seen
        });
        (Relay::parse(&url, None, Duration::from_secs(5)).unwrap(), server)
    }

    fn send_one(s: &mut Session, to: &str) -> Outcome {
        let from: Address = "news@example.org".parse().unwrap();
        s.send(
            &from,
            &to.parse().unwrap(),
            b"Subject: hi\r\n\r\n.dot first\r\n",
            || Ok(()),
        )
    }

    #[test]
    fn pipelined_envelope_delivers_and_keeps_the_session() {
        let (relay, server) = pipelining_server(|verb| match verb {
            "DATA" => Some("354 go ahead"),
            _ => Some("250 2.0.0 ok"),
        });
        let mut s = relay.connect().unwrap();
        assert!(s.pipelining);
        assert_eq!(send_one(&mut s, "a@example.org"), Outcome::Sent("250 2.0.0 ok".into()));
        assert_eq!(send_one(&mut s, "b@example.org"), Outcome::Sent("250 2.0.0 ok".into()));
        s.quit();
        let seen = server.join().unwrap();
        assert!(seen.contains("RCPT TO:<b@example.org>\r\nDATA\r\n"), "{seen}");
        assert!(seen.contains("\r\n..dot first\r\n"), "dot-stuffed: {seen}");
    }

    #[test]
    fn pipelined_refusals_are_classified_and_the_session_reset() {
        let (relay, server) = pipelining_server(|verb| match verb {
            "MAIL" => Some("550 5.7.1 not from you"),
            "DATA" => Some("503 5.5.1 no valid recipients"),
            _ => Some("503 5.5.1 need MAIL"),
        });
        let mut s = relay.connect().unwrap();
        match send_one(&mut s, "a@example.org") {
            Outcome::Permanent(reply) => assert!(reply.contains("not from you"), "{reply}"),
            other => panic!("{other:?}"),
        }
        assert!(!s.is_broken(), "every reply read, RSET sent: the session goes on");
        s.quit();
        assert!(server.join().unwrap().contains("RSET\r\n"));

        let (relay, _server) = pipelining_server(|verb| match verb {
            "RCPT" => Some("451 4.3.0 later"),
            "DATA" => Some("503 5.5.1 no valid recipients"),
            _ => Some("250 ok"),
        });
        let mut s = relay.connect().unwrap();
        assert!(matches!(send_one(&mut s, "a@example.org"), Outcome::Transient(r) if r.contains("later")));
    }

    #[test]
    fn a_hang_up_before_the_body_is_transient_after_it_uncertain() {
        let (relay, _server) = pipelining_server(|verb| match verb {
            "RCPT" => None,
            _ => Some("250 ok"),
        });
        let mut s = relay.connect().unwrap();
        assert!(matches!(send_one(&mut s, "a@example.org"), Outcome::Transient(_)));
        assert!(s.is_broken());

        let (relay, _server) = pipelining_server(|verb| match verb {
            "DATA" => Some("354 go ahead"),
            "." => None,
            _ => Some("250 ok"),
        });
        let mut s = relay.connect().unwrap();
        assert!(matches!(send_one(&mut s, "a@example.org"), Outcome::Uncertain(_)));
        assert!(s.is_broken());
    }

    #[test]
    fn a_withheld_body_never_leaves() {
        let (relay, server) = pipelining_server(|verb| match verb {
            "DATA" => Some("354 go ahead"),
            _ => Some("250 ok"),
        });
        let mut s = relay.connect().unwrap();
        let from: Address = "news@example.org".parse().unwrap();
        let to: Address = "a@example.org".parse().unwrap();
        let outcome = s.send(&from, &to, b"Subject: secret\r\n\r\nbody\r\n", || {
            Err("disk full".into())
        });
        assert_eq!(outcome, Outcome::Withheld("disk full".into()));
        assert!(s.is_broken());
        drop(s);
        let seen = server.join().unwrap();
        assert!(seen.contains("DATA\r\n") && !seen.contains("secret"), "{seen}");
    }

    #[test]
    fn dot_stuffing_doubles_leading_dots_and_ends_the_data() {
        let stuffed = dot_stuffed;
        assert_eq!(stuffed("a\r\nb\r\n"), "a\r\nb\r\n\r\n.\r\n");
        assert_eq!(stuffed(".a\r\n.\r\n..b"), "..a\r\n..\r\n...b\r\n.\r\n");
        assert_eq!(stuffed("a.b\n.c"), "a.b\n.c\r\n.\r\n", "only CRLF starts a line");
        assert_eq!(stuffed(""), "\r\n.\r\n");
    }

    #[test]
    fn describe_never_shows_the_password() {
        let r = parse("smtps://u@smtp.example.org", true).unwrap();
        assert!(!format!("{} {r:?}", r.describe()).contains("pw\""));
    }
}
