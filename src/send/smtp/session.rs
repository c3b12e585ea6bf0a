//! One open SMTP session: a message at a time, or — when the server offers PIPELINING — a
//! message's body and the next message's envelope in one write; each outcome classified by the
//! stage it reached. Before the end of DATA nothing was delivered and a retry is safe; after
//! the final `.` without a reply the relay may have accepted the message, so the member is
//! `uncertain`. With PIPELINING, MAIL, RCPT and DATA go in one write, and a body and its final
//! `.` can share a write with the next envelope ([`Session::finish_and_open`]): one round trip
//! a message. Without it, four.

use std::cell::Cell;

use lettre::Address;
use lettre::transport::smtp::client::SmtpConnection;
use lettre::transport::smtp::commands::{Data, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;

use super::Offers;

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
    /// The relay refused the sender or the session, not this recipient (530 authentication
    /// required, relaying denied, any 5xx to MAIL FROM): nothing was delivered, and no other
    /// member would fare better, so the run stops and the member stays pending.
    Session(String),
    /// The relay did not answer a command before the end of DATA in time: nothing was
    /// delivered; the member is tried again after the others.
    Stalled(String),
}

/// The command a refusal before the body answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Mail,
    Rcpt,
    Data,
}

/// A message the relay is ready to take: it accepted the envelope and answered DATA with
/// 354. None of the message has left yet.
pub struct Ready {
    body: Body,
}

enum Body {
    /// Dot-stuffed, with the final `.`: what goes on the wire.
    Stuffed(String),
    /// Not UTF-8 (never the case for messages bulletin builds): written by lettre.
    Raw(Vec<u8>),
}

impl Ready {
    fn new(message: &[u8]) -> Ready {
        Ready {
            body: match std::str::from_utf8(message) {
                Ok(text) => Body::Stuffed(dot_stuffed(text)),
                Err(_) => Body::Raw(message.to_vec()),
            },
        }
    }
}

/// One open SMTP session.
pub struct Session {
    conn: SmtpConnection,
    /// The server offers PIPELINING (RFC 2920): MAIL, RCPT and DATA go in one write.
    pipelining: bool,
    /// The server offers SMTPUTF8 (RFC 6531): a non-ASCII local part can be sent.
    smtputf8: bool,
    /// The largest message the server takes (its `SIZE n`), when it says.
    size_limit: Option<u64>,
}

impl Session {
    pub(super) fn new(conn: SmtpConnection, offers: Offers) -> Session {
        Session {
            conn,
            pipelining: offers.pipelining,
            smtputf8: offers.smtputf8,
            size_limit: offers.size,
        }
    }

    /// Is the session still usable?
    pub fn is_broken(&self) -> bool {
        self.conn.has_broken()
    }

    /// Does the server take commands in batches (PIPELINING)?
    pub fn pipelines(&self) -> bool {
        self.pipelining
    }

    /// Does the server take addresses with a non-ASCII local part (SMTPUTF8)?
    pub fn smtputf8(&self) -> bool {
        self.smtputf8
    }

    /// The largest message the server takes, from its EHLO reply (`SIZE n`; RFC 1870); `None`
    /// when it announces none.
    pub fn size_limit(&self) -> Option<u64> {
        self.size_limit
    }

    /// Closes the session at once (e.g. with a message open whose body must not be sent:
    /// the relay discards a transaction whose data never ended).
    pub fn abort(&mut self) {
        self.conn.abort();
    }

    /// Opens a transaction for one message to one recipient: MAIL, RCPT and DATA. `Ok` when
    /// the relay is ready for the body; otherwise nothing of the message has left, so every
    /// failure is safe to retry.
    pub fn open(&mut self, from: &Address, to: &Address, message: &[u8]) -> Result<Ready, Outcome> {
        let (mail, rcpt) = self.envelope(from, to, message)?;
        if self.pipelining {
            let mail_reply = self.conn.command(format!("{mail}{rcpt}{Data}"));
            if let Some(refused) = self.envelope_replies(mail_reply) {
                return Err(refused);
            }
        } else {
            if let Err(e) = self.conn.command(mail) {
                return Err(self.refused(Stage::Mail, &e));
            }
            if let Err(e) = self.conn.command(rcpt) {
                return Err(self.refused(Stage::Rcpt, &e));
            }
            if let Err(e) = self.conn.command(Data) {
                return Err(self.refused(Stage::Data, &e));
            }
        }
        Ok(Ready::new(message))
    }

    /// Sends the body of an open message and its final `.`, and reads the reply.
    pub fn finish(&mut self, ready: Ready) -> Outcome {
        match ready.body {
            Body::Stuffed(text) => self.data_in_one_write(&text),
            Body::Raw(bytes) => self.data_in_two_writes(&bytes),
        }
    }

    /// [`Session::finish`] `ready` and [`Session::open`] the next message, with the body, the
    /// final `.` and the next envelope in one write (RFC 2920 allows a new batch of commands
    /// right after the end of the data): one round trip for both. Returns the first message's
    /// outcome and the second's state.
    ///
    /// A connection lost before the first message's reply makes it `uncertain` — part of the
    /// write may have been its final `.` — and leaves the second unsent (its body never left).
    pub fn finish_and_open(
        &mut self,
        ready: Ready,
        from: &Address,
        to: &Address,
        message: &[u8],
    ) -> (Outcome, Result<Ready, Outcome>) {
        let envelope = self.envelope(from, to, message);
        let (Body::Stuffed(text), true, Ok((mail, rcpt))) = (&ready.body, self.pipelining, &envelope) else {
            let done = self.finish(ready);
            if self.is_broken() {
                return (done, Err(Outcome::Transient("the connection was lost".into())));
            }
            return (done, envelope.and_then(|_| self.open(from, to, message)));
        };
        let done = match self.conn.command(format!("{text}{mail}{rcpt}{Data}")) {
            Ok(reply) => Outcome::Sent(reply_text(&reply)),
            Err(e) if e.status().is_some_and(|c| c.to_string() == "421") => {
                self.conn.abort();
                let closed = format!("the relay closed the session: {e}");
                return (status_outcome(&e), Err(Outcome::Transient(closed)));
            }
            Err(e) if e.status().is_some() => status_outcome(&e),
            Err(e) => {
                self.conn.abort();
                return (
                    Outcome::Uncertain(format!(
                        "connection lost after the end of the message, before the reply: {e}"
                    )),
                    Err(Outcome::Transient(format!(
                        "connection lost before the envelope's replies: {e}"
                    ))),
                );
            }
        };
        let mail_reply = self.conn.read_response();
        match self.envelope_replies(mail_reply) {
            None => (done, Ok(Ready::new(message))),
            Some(refused) => (done, Err(refused)),
        }
    }

    /// MAIL and RCPT for this message (8BITMIME when it is not ASCII; SMTPUTF8 when an address
    /// is not: RFC 6531 3.4, and its headers then carry the address as UTF-8, RFC 6532).
    fn envelope(&self, from: &Address, to: &Address, message: &[u8]) -> Result<(Mail, Rcpt), Outcome> {
        let mut params = Vec::new();
        let ascii = |a: &Address| AsRef::<str>::as_ref(a).is_ascii();
        if !ascii(from) || !ascii(to) {
            if !self.smtputf8 {
                // Preflight skips these members when the relay lacks SMTPUTF8: only a relay
                // that stopped offering it since then gets here.
                return Err(Outcome::Permanent(
                    "the address is not ASCII and the server lacks SMTPUTF8".into(),
                ));
            }
            params.push(MailParameter::SmtpUtfEight);
        }
        if !message.is_ascii() {
            if !self.conn.server_info().supports_feature(Extension::EightBitMime) {
                return Err(Outcome::Permanent(
                    "the message is not ASCII and the server lacks 8BITMIME".into(),
                ));
            }
            params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        Ok((Mail::new(Some(from.clone()), params), Rcpt::new(to.clone(), Vec::new())))
    }

    /// The replies to a pipelined MAIL, RCPT and DATA, in order, given the first. `None` when
    /// the server is ready for the body. Nothing of the message has left yet, so every failure
    /// here is safe to retry.
    fn envelope_replies(&mut self, mail_reply: Result<Response, lettre::transport::smtp::Error>) -> Option<Outcome> {
        let mut refusal = None;
        let mut first = Some(mail_reply);
        for stage in [Stage::Mail, Stage::Rcpt, Stage::Data] {
            let reply = first.take().unwrap_or_else(|| self.conn.read_response());
            match reply {
                // A 354 after a refused MAIL or RCPT: never send a body into that.
                Ok(_) if stage == Stage::Data && refusal.is_some() => self.conn.abort(),
                Ok(_) => {}
                Err(e) if e.status().is_none() => {
                    self.conn.abort();
                    return Some(match &refusal {
                        Some((stage, refused)) => refusal_outcome(*stage, refused),
                        None => refusal_outcome(stage, &e),
                    });
                }
                Err(e) => {
                    refusal.get_or_insert((stage, e));
                }
            }
        }
        refusal.map(|(stage, e)| self.refused(stage, &e))
    }

    /// The body and the final `.` (already dot-stuffed) in a single write, then the reply.
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
    fn data_in_one_write(&mut self, stuffed: &str) -> Outcome {
        match self.conn.command(stuffed) {
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
    fn refused(&mut self, stage: Stage, e: &lettre::transport::smtp::Error) -> Outcome {
        let outcome = refusal_outcome(stage, e);
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

/// A failure before the body left, by what it says: a command the relay never answered, a
/// refusal of the sender or the session, or one about this recipient or message.
fn refusal_outcome(stage: Stage, e: &lettre::transport::smtp::Error) -> Outcome {
    use std::io::ErrorKind::{TimedOut, WouldBlock};
    let Some(code) = e.status() else {
        return match io_kind(e) {
            Some(TimedOut | WouldBlock) => Outcome::Stalled(format!("no answer in time: {e}")),
            _ => status_outcome(e),
        };
    };
    let code = code.to_string();
    let text = e.to_string().to_ascii_lowercase();
    let about_the_session = code == "530"
        || (code.starts_with('5') && stage == Stage::Mail)
        || (code.starts_with('5') && text.contains("relay"))
        || text.contains("authentication required")
        || text.contains("must issue a starttls");
    if about_the_session {
        Outcome::Session(e.to_string())
    } else {
        status_outcome(e)
    }
}

fn io_kind(e: &lettre::transport::smtp::Error) -> Option<std::io::ErrorKind> {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .map(std::io::Error::kind)
}

fn reply_text(r: &Response) -> String {
    let lines: Vec<&str> = r.message().collect();
    format!("{} {}", r.code(), lines.join(" "))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::send::smtp::Relay;

    /// A one-connection server on 127.0.0.1 that offers PIPELINING and answers each command
    /// with `answer(VERB)` (`None`: hang up without a word). Yields every byte it read.
    fn pipelining_server(answer: fn(&str) -> Option<&'static str>) -> (Relay, std::thread::JoinHandle<String>) {
        server_offering("250-test\r\n250-PIPELINING\r\n250 8BITMIME", answer)
    }

    /// [`pipelining_server`] answering EHLO with `ehlo`.
    fn server_offering(
        ehlo: &'static str,
        answer: fn(&str) -> Option<&'static str>,
    ) -> (Relay, std::thread::JoinHandle<String>) {
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
                    "EHLO" => Some(ehlo),
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

    const MESSAGE: &[u8] = b"Subject: hi\r\n\r\n.dot first\r\n";

    fn open(s: &mut Session, to: &str) -> Result<Ready, Outcome> {
        s.open(&"news@example.org".parse().unwrap(), &to.parse().unwrap(), MESSAGE)
    }

    fn send_one(s: &mut Session, to: &str) -> Outcome {
        open(s, to).map_or_else(|refused| refused, |ready| s.finish(ready))
    }

    fn finish_and_open(s: &mut Session, ready: Ready, to: &str) -> (Outcome, Result<Ready, Outcome>) {
        s.finish_and_open(
            ready,
            &"news@example.org".parse().unwrap(),
            &to.parse().unwrap(),
            MESSAGE,
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
            // A refused MAIL FROM is about the sender, not this recipient.
            Outcome::Session(reply) => assert!(reply.contains("not from you"), "{reply}"),
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
    fn an_aborted_open_message_never_leaves() {
        let (relay, server) = pipelining_server(|verb| match verb {
            "DATA" => Some("354 go ahead"),
            _ => Some("250 ok"),
        });
        let mut s = relay.connect().unwrap();
        let ready = open(&mut s, "a@example.org").unwrap_or_else(|o| panic!("{o:?}"));
        s.abort();
        drop(ready);
        assert!(s.is_broken());
        drop(s);
        let seen = server.join().unwrap();
        assert!(seen.contains("DATA\r\n") && !seen.contains("dot first"), "{seen}");
    }

    #[test]
    fn a_body_and_the_next_envelope_share_a_write() {
        let (relay, server) = pipelining_server(|verb| match verb {
            "DATA" => Some("354 go ahead"),
            "." => Some("250 2.0.0 queued"),
            _ => Some("250 ok"),
        });
        let mut s = relay.connect().unwrap();
        let a = open(&mut s, "a@example.org").unwrap_or_else(|o| panic!("{o:?}"));
        let (done, b) = finish_and_open(&mut s, a, "b@example.org");
        assert_eq!(done, Outcome::Sent("250 2.0.0 queued".into()));
        let b = b.unwrap_or_else(|o| panic!("{o:?}"));
        assert_eq!(s.finish(b), Outcome::Sent("250 2.0.0 queued".into()));
        s.quit();
        let seen = server.join().unwrap();
        assert!(
            seen.contains(
                "..dot first\r\n\r\n.\r\nMAIL FROM:<news@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"
            ),
            "{seen}"
        );
        assert_eq!(seen.matches("..dot first").count(), 2, "{seen}");
    }

    #[test]
    fn after_a_shared_write_each_message_is_judged_on_its_own() {
        // Refused after its data: the first fails for good, the next one goes on.
        let (relay, _server) = pipelining_server(|verb| match verb {
            "DATA" => Some("354 go ahead"),
            "." => Some("554 5.6.0 content rejected"),
            _ => Some("250 ok"),
        });
        let mut s = relay.connect().unwrap();
        let a = open(&mut s, "a@example.org").unwrap_or_else(|o| panic!("{o:?}"));
        let (done, b) = finish_and_open(&mut s, a, "b@example.org");
        assert!(matches!(done, Outcome::Permanent(r) if r.contains("content rejected")));
        assert!(b.is_ok() && !s.is_broken());

        // The relay hangs up before answering the first "." : it may have the first message
        // (uncertain); the next one's body never left (retry).
        let (relay, _server) = pipelining_server(|verb| match verb {
            "DATA" => Some("354 go ahead"),
            "." => None,
            _ => Some("250 ok"),
        });
        let mut s = relay.connect().unwrap();
        let a = open(&mut s, "a@example.org").unwrap_or_else(|o| panic!("{o:?}"));
        let (done, b) = finish_and_open(&mut s, a, "b@example.org");
        assert!(matches!(done, Outcome::Uncertain(_)), "{done:?}");
        assert!(matches!(b, Err(Outcome::Transient(_))));
        assert!(s.is_broken());

        // 421 after the data: the relay closes the session; both are worth another try.
        let (relay, _server) = pipelining_server(|verb| match verb {
            "DATA" => Some("354 go ahead"),
            "." => Some("421 4.3.2 shutting down"),
            _ => Some("250 ok"),
        });
        let mut s = relay.connect().unwrap();
        let a = open(&mut s, "a@example.org").unwrap_or_else(|o| panic!("{o:?}"));
        let (done, b) = finish_and_open(&mut s, a, "b@example.org");
        assert!(matches!(done, Outcome::Transient(r) if r.contains("shutting down")));
        assert!(matches!(b, Err(Outcome::Transient(_))));
        assert!(s.is_broken());
    }

    #[test]
    fn a_non_ascii_local_part_goes_with_smtputf8_when_offered() {
        let (relay, server) =
            server_offering(
                "250-test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8",
                |verb| match verb {
                    "DATA" => Some("354 go ahead"),
                    _ => Some("250 2.0.0 ok"),
                },
            );
        let mut s = relay.connect().unwrap();
        assert!(s.smtputf8());
        assert_eq!(
            send_one(&mut s, "josé@example.org"),
            Outcome::Sent("250 2.0.0 ok".into())
        );
        assert_eq!(
            send_one(&mut s, "ana@example.org"),
            Outcome::Sent("250 2.0.0 ok".into())
        );
        s.quit();
        let seen = server.join().unwrap();
        assert!(
            seen.contains("MAIL FROM:<news@example.org> SMTPUTF8\r\nRCPT TO:<josé@example.org>\r\n"),
            "{seen}"
        );
        assert!(
            seen.contains("MAIL FROM:<news@example.org>\r\nRCPT TO:<ana@example.org>\r\n"),
            "{seen}"
        );
    }

    #[test]
    fn a_non_ascii_local_part_never_leaves_without_smtputf8() {
        let (relay, server) = pipelining_server(|verb| match verb {
            "DATA" => Some("354 go ahead"),
            _ => Some("250 2.0.0 ok"),
        });
        assert!(!relay.offers_smtputf8().unwrap());
        drop(server);
        let (relay, server) = pipelining_server(|verb| match verb {
            "DATA" => Some("354 go ahead"),
            _ => Some("250 2.0.0 ok"),
        });
        let mut s = relay.connect().unwrap();
        assert!(!s.smtputf8());
        match send_one(&mut s, "josé@example.org") {
            Outcome::Permanent(why) => assert!(why.contains("SMTPUTF8"), "{why}"),
            other => panic!("{other:?}"),
        }
        s.quit();
        let seen = server.join().unwrap();
        assert!(!seen.contains("MAIL FROM"), "{seen}");
    }

    #[test]
    fn dot_stuffing_doubles_leading_dots_and_ends_the_data() {
        let stuffed = dot_stuffed;
        assert_eq!(stuffed("a\r\nb\r\n"), "a\r\nb\r\n\r\n.\r\n");
        assert_eq!(stuffed(".a\r\n.\r\n..b"), "..a\r\n..\r\n...b\r\n.\r\n");
        assert_eq!(stuffed("a.b\n.c"), "a.b\n.c\r\n.\r\n", "only CRLF starts a line");
        assert_eq!(stuffed(""), "\r\n.\r\n");
    }
}
