//! In-process SMTP test server with fault injection (std-only, plaintext loopback).
//!
//! One listener thread plus one thread per connection; no STARTTLS; PIPELINING when asked
//! (commands are read from a buffer one line at a time, so a batch is answered in order).
//! Dropping [`TestSmtp`] stops every thread (stalled ones included) within ~50 ms.
//! The fault hook runs once a command has parsed, before the server's own checks
//! (auth, sequencing, size). A `Reply` below 400 counts as success for the session
//! state (e.g. a positive `Reply` at `Rcpt` adds the recipient); after any 421 reply
//! the server closes the connection, as RFC 5321 requires. Example hook:
//! `|ev: &Event| match (ev.stage, ev.rcpt, ev.attempt) { (Stage::Rcpt,
//! Some("bob@example.org"), 1..=2) => Action::Reply(451, "4.3.0 later".into()), _ => Action::Continue }`
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::ErrorKind::{Interrupted, TimedOut, UnexpectedEof, WouldBlock};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How often blocked reads, sleeps and the listener re-check the shutdown flag.
const POLL: Duration = Duration::from_millis(20);

/// A running test SMTP server on `127.0.0.1`; stopped when dropped.
pub struct TestSmtp {
    addr: SocketAddr,
    shared: Arc<Shared>,
    listener: Option<JoinHandle<()>>,
}

/// A message the server accepted (a reply < 400 after the final `.`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// Address from `MAIL FROM:<...>` (empty for the null sender `<>`).
    pub mail_from: String,
    /// Addresses from each accepted `RCPT TO:<...>`, in order.
    pub rcpt_to: Vec<String>,
    /// Raw message after dot-unstuffing, without the final `.\r\n` line.
    pub data: Vec<u8>,
    /// `MAIL FROM` carried the SMTPUTF8 parameter (RFC 6531).
    pub smtputf8: bool,
}

/// Points in an SMTP session where the fault hook is consulted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    Greeting,
    /// EHLO or HELO.
    Ehlo,
    Auth,
    Mail,
    Rcpt,
    /// After the DATA command, before the 354 reply.
    Data,
    /// After the first line of the message body, before the rest is read.
    Body,
    /// After the final "." of the message, before the reply.
    DataEnd,
}

/// What the fault hook wants the server to do at a [`Stage`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Behave normally.
    Continue,
    /// Send this reply instead of the normal one (at `DataEnd`, >= 400 means not recorded).
    Reply(u16, String),
    /// Close the socket without replying (at `DataEnd`: message not recorded).
    Disconnect,
    /// Sleep, then behave normally.
    Delay(Duration),
    /// Never reply; keep the socket open until the server is dropped.
    Stall,
}

/// Passed to the fault hook each time a stage is reached.
#[derive(Debug)]
pub struct Event<'a> {
    pub stage: Stage,
    /// 1-based connection number (see [`TestSmtp::sessions`]).
    pub session: usize,
    /// 1-based count of this (stage, rcpt) pair so far, across sessions.
    pub attempt: usize,
    /// `Rcpt`: the recipient; `Mail`: the sender; `Data`/`Body`/`DataEnd`: the first
    /// recipient of the transaction; otherwise `None`.
    pub rcpt: Option<&'a str>,
}

/// The fault hook type: `Options::fault` is an `Option<Box<FaultHook>>`.
pub type FaultHook = dyn Fn(&Event) -> Action + Send + Sync;

/// Server configuration; the default has no auth, no faults and no size limit.
#[derive(Default)]
pub struct Options {
    /// Require AUTH PLAIN or LOGIN with these credentials (535 if wrong; MAIL before AUTH → 530).
    pub auth: Option<(String, String)>,
    /// Fault hook consulted at every [`Stage`].
    pub fault: Option<Box<FaultHook>>,
    /// Advertised as `SIZE n`; bigger messages get 552 at `DataEnd` and are not recorded.
    pub max_message_bytes: Option<usize>,
    /// Advertise PIPELINING (RFC 2920).
    pub pipelining: bool,
    /// Advertise SMTPUTF8 (RFC 6531). Either way a non-ASCII address in a transaction whose
    /// `MAIL FROM` lacks the SMTPUTF8 parameter gets 553 5.6.7, as RFC 6531 3.4 says.
    pub smtputf8: bool,
}

impl TestSmtp {
    /// Starts a server with no faults and no auth.
    pub fn start() -> TestSmtp {
        TestSmtp::start_with(Options::default())
    }

    /// Starts a server with the given options.
    pub fn start_with(opts: Options) -> TestSmtp {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind test SMTP server");
        listener.set_nonblocking(true).expect("set_nonblocking");
        let addr = listener.local_addr().expect("local_addr");
        let state = Mutex::default();
        let shared = Arc::new(Shared {
            opts,
            shutdown: AtomicBool::new(false),
            state,
        });
        let sh = Arc::clone(&shared);
        let handle = thread::Builder::new()
            .name("test-smtp-listener".into())
            .spawn(move || accept_loop(&listener, &sh))
            .expect("spawn listener");
        TestSmtp {
            addr,
            shared,
            listener: Some(handle),
        }
    }

    /// The listening address (`127.0.0.1:<ephemeral port>`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `smtp://127.0.0.1:PORT` (plaintext loopback).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.addr.port())
    }

    /// Accepted messages, in acceptance order.
    pub fn messages(&self) -> Vec<Received> {
        self.shared.lock().messages.clone()
    }

    /// Address → how many messages the server accepted for it (each message has exactly one
    /// recipient: bulletin never sends one message to two members).
    pub fn received(&self) -> HashMap<String, usize> {
        let mut out = HashMap::new();
        for m in self.messages() {
            assert_eq!(m.rcpt_to.len(), 1, "one recipient per message: {:?}", m.rcpt_to);
            *out.entry(m.rcpt_to[0].clone()).or_default() += 1;
        }
        out
    }

    /// Waits until the server has accepted `n` messages in all, from the run `child`. Panics
    /// (killing `child`) if it exits first or the wait exceeds [`PATIENCE`].
    pub fn wait_for(&self, n: usize, child: &mut Child) {
        wait_until(
            &format!("{n} accepted messages"),
            Duration::from_millis(5),
            child,
            |c| {
                if let Some(status) = c.try_wait().expect("try_wait") {
                    let got = self.messages().len();
                    assert!(
                        got >= n,
                        "bulletin exited ({status}) after {got} accepted messages, before {n}"
                    );
                }
                self.messages().len() >= n
            },
        );
    }

    /// Waits until the server has accepted `n` messages in all or `child` has exited, whichever
    /// comes first; polls often, so a kill that follows lands right after an acceptance.
    pub fn wait_for_or_exit(&self, n: usize, child: &mut Child) {
        wait_until(
            &format!("{n} accepted messages or the end of the run"),
            Duration::from_micros(200),
            child,
            |c| self.messages().len() >= n || c.try_wait().expect("try_wait").is_some(),
        );
    }

    /// How many times `stage` was reached, over all sessions and recipients.
    pub fn attempts(&self, stage: Stage) -> usize {
        let st = self.shared.lock();
        st.attempts
            .iter()
            .filter(|((s, _), _)| *s == stage)
            .map(|(_, n)| n)
            .sum()
    }

    /// Number of connections accepted so far.
    pub fn sessions(&self) -> usize {
        self.shared.lock().sessions
    }
}

impl Drop for TestSmtp {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        if let Some(handle) = self.listener.take() {
            let _ = handle.join(); // the listener joins the session threads
        }
    }
}

struct Shared {
    opts: Options,
    shutdown: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    sessions: usize,
    messages: Vec<Received>,
    attempts: HashMap<(Stage, Option<String>), usize>,
}

impl Shared {
    /// Locks the state, ignoring poisoning (a panicking hook must not break the server).
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn stopped(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    /// Sleeps for `d` (forever if `None`); `Err` as soon as the server shuts down.
    fn sleep(&self, d: Option<Duration>) -> io::Result<()> {
        let deadline = d.and_then(|d| Instant::now().checked_add(d));
        while !self.stopped() {
            let left = deadline.map_or(POLL, |t| t.saturating_duration_since(Instant::now()));
            if left.is_zero() {
                return Ok(());
            }
            thread::sleep(left.min(POLL));
        }
        Err(ended())
    }
}

fn ended() -> io::Error {
    io::Error::other("session ended by the test server")
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    let mut sessions: Vec<JoinHandle<()>> = Vec::new();
    while !shared.stopped() {
        let Ok((stream, _)) = listener.accept() else {
            thread::sleep(Duration::from_millis(5)); // WouldBlock, or transient (EMFILE...)
            continue;
        };
        let mut session = Session {
            stream,
            buf: Vec::new(),
            shared: Arc::clone(shared),
            id: 0,
            authed: false,
            from: None,
            rcpts: Vec::new(),
            utf8: false,
        };
        let mut st = shared.lock();
        st.sessions += 1;
        session.id = st.sessions;
        drop(st);
        sessions.retain(|h| !h.is_finished());
        // Any I/O error or fault simply ends the session.
        sessions.extend(thread::Builder::new().spawn(move || drop(session.run())).ok());
    }
    for h in sessions {
        let _ = h.join();
    }
}

type Reply = (u16, String);

fn reply(code: u16, text: &str) -> Reply {
    (code, text.to_owned())
}

struct Session {
    stream: TcpStream,
    buf: Vec<u8>,
    shared: Arc<Shared>,
    id: usize,
    authed: bool,
    from: Option<String>,
    rcpts: Vec<String>,
    /// This transaction's `MAIL FROM` carried SMTPUTF8.
    utf8: bool,
}

impl Session {
    fn run(&mut self) -> io::Result<()> {
        self.stream.set_nonblocking(false)?;
        // Replies go out one write each: without this, the second reply to a pipelined batch
        // waits for the client's delayed ACK of the first (Nagle), 40 ms.
        self.stream.set_nodelay(true)?;
        self.stream.set_read_timeout(Some(POLL))?;
        self.stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        let greeting = self.fire(Stage::Greeting, None)?;
        let mut r = greeting.unwrap_or_else(|| reply(220, "127.0.0.1 ESMTP bulletin test server"));
        loop {
            let closing = r.0 == 421; // RFC 5321 3.8: 421 closes the connection
            self.send(r)?;
            if closing {
                return Ok(());
            }
            let raw = self.read_line()?;
            let line = String::from_utf8_lossy(&raw);
            let (verb, arg) = line.trim_end().split_once(' ').unwrap_or((line.trim_end(), ""));
            r = match verb.to_ascii_uppercase().as_str() {
                "EHLO" => self.ehlo(true, arg.trim())?,
                "HELO" => self.ehlo(false, arg.trim())?,
                "AUTH" => self.auth(arg)?,
                "MAIL" => self.mail(arg.trim())?,
                "RCPT" => self.rcpt(arg.trim())?,
                "DATA" => self.data()?,
                "RSET" => {
                    (self.from, self.rcpts) = (None, Vec::new());
                    reply(250, "2.0.0 Ok")
                }
                "NOOP" => reply(250, "2.0.0 Ok"),
                "QUIT" => return self.send(reply(221, "2.0.0 Bye")),
                _ => reply(502, "5.5.2 Command not recognized"),
            };
        }
    }

    /// Counts the stage and consults the fault hook; `Err` ends the session.
    fn fire(&self, stage: Stage, rcpt: Option<&str>) -> io::Result<Option<Reply>> {
        let attempt = {
            let mut st = self.shared.lock();
            let n = st.attempts.entry((stage, rcpt.map(str::to_owned))).or_insert(0);
            *n += 1;
            *n
        };
        let Some(hook) = &self.shared.opts.fault else {
            return Ok(None);
        };
        match hook(&Event {
            stage,
            session: self.id,
            attempt,
            rcpt,
        }) {
            Action::Continue => Ok(None),
            Action::Reply(code, text) => Ok(Some((code, text))),
            Action::Disconnect => Err(ended()),
            Action::Delay(d) => self.shared.sleep(Some(d)).map(|()| None),
            Action::Stall => self.shared.sleep(None).map(|()| None),
        }
    }

    /// Reads one line (terminator included), polling the shutdown flag.
    fn read_line(&mut self) -> io::Result<Vec<u8>> {
        let mut scanned = 0;
        loop {
            if let Some(i) = self.buf[scanned..].iter().position(|&b| b == b'\n') {
                return Ok(self.buf.drain(..=scanned + i).collect());
            }
            scanned = self.buf.len();
            if self.shared.stopped() {
                return Err(ended());
            }
            let mut chunk = [0u8; 8192];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(UnexpectedEof.into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), WouldBlock | TimedOut | Interrupted) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes a reply; a text containing '\n' becomes a multi-line reply.
    fn send(&mut self, (code, text): Reply) -> io::Result<()> {
        let n = text.split('\n').count();
        let mut out = String::new();
        for (i, l) in text.split('\n').enumerate() {
            out += &format!("{code}{}{l}\r\n", if i + 1 == n { ' ' } else { '-' });
        }
        self.stream.write_all(out.as_bytes())
    }

    fn ehlo(&mut self, extended: bool, arg: &str) -> io::Result<Reply> {
        if arg.is_empty() {
            return Ok(reply(501, "5.5.4 Syntax: EHLO hostname"));
        }
        let mut lines = vec![format!("127.0.0.1 greets {arg}")];
        if extended {
            let max = self.shared.opts.max_message_bytes;
            lines.push(max.map_or("SIZE".into(), |m| format!("SIZE {m}")));
            lines.push("8BITMIME".into());
            if self.shared.opts.pipelining {
                lines.push("PIPELINING".into());
            }
            if self.shared.opts.smtputf8 {
                lines.push("SMTPUTF8".into());
            }
            if self.shared.opts.auth.is_some() {
                lines.push("AUTH PLAIN LOGIN".into());
            }
        }
        let r = self.fire(Stage::Ehlo, None)?.unwrap_or((250, lines.join("\n")));
        if r.0 < 400 {
            (self.from, self.rcpts) = (None, Vec::new());
        }
        Ok(r)
    }

    fn auth(&mut self, arg: &str) -> io::Result<Reply> {
        let mut parts = arg.split_whitespace();
        let mech = parts.next().unwrap_or("").to_ascii_uppercase();
        let initial = parts.next().map(str::to_owned);
        let r = match (self.fire(Stage::Auth, None)?, self.shared.opts.auth.clone()) {
            (Some(r), _) => r,
            (None, None) => reply(503, "5.5.1 AUTH not available"),
            (None, Some(_)) if self.authed => reply(503, "5.5.1 Already authenticated"),
            (None, Some(creds)) => self.authenticate(&mech, initial, &creds)?,
        };
        self.authed |= r.0 < 400;
        Ok(r)
    }

    fn authenticate(&mut self, mech: &str, initial: Option<String>, creds: &(String, String)) -> io::Result<Reply> {
        let (user, pass) = (creds.0.as_bytes(), creds.1.as_bytes());
        let ok = match mech {
            "PLAIN" => {
                let resp = match initial {
                    Some(r) => r,
                    None => self.challenge("")?,
                };
                b64decode(&resp).map(|d| {
                    let f: Vec<&[u8]> = d.split(|&b| b == 0).collect();
                    f.len() == 3 && f[1] == user && f[2] == pass
                })
            }
            "LOGIN" => {
                let u = match initial {
                    Some(u) => u,
                    None => self.challenge("VXNlcm5hbWU6")?, // "Username:"
                };
                let p = self.challenge("UGFzc3dvcmQ6")?; // "Password:"
                b64decode(&u).zip(b64decode(&p)).map(|(u, p)| u == user && p == pass)
            }
            _ => return Ok(reply(504, "5.5.4 Unrecognized authentication type")),
        };
        Ok(match ok {
            Some(true) => reply(235, "2.7.0 Authentication successful"),
            Some(false) => reply(535, "5.7.8 Authentication credentials invalid"),
            None => reply(501, "5.5.2 Invalid base64 or cancelled"),
        })
    }

    /// Sends a 334 challenge and returns the client's (trimmed) answer line.
    fn challenge(&mut self, text: &str) -> io::Result<String> {
        self.send(reply(334, text))?;
        Ok(String::from_utf8_lossy(&self.read_line()?).trim().to_owned())
    }

    fn mail(&mut self, arg: &str) -> io::Result<Reply> {
        let Some((from, params)) = parse_path(arg, "FROM:") else {
            return Ok(reply(501, "5.5.4 Syntax: MAIL FROM:<address>"));
        };
        let utf8 = params.split_whitespace().any(|p| p.eq_ignore_ascii_case("SMTPUTF8"));
        let r = match self.fire(Stage::Mail, Some(&from))? {
            Some(r) => r,
            None if utf8 && !self.shared.opts.smtputf8 => reply(555, "5.5.4 SMTPUTF8 not supported"),
            None if !utf8 && !from.is_ascii() => reply(553, "5.6.7 Non-ASCII address needs SMTPUTF8"),
            None if self.shared.opts.auth.is_some() && !self.authed => reply(530, "5.7.0 Authentication required"),
            None if self.from.is_some() => reply(503, "5.5.1 Nested MAIL command"),
            None => reply(250, "2.1.0 Ok"),
        };
        if r.0 < 400 {
            (self.from, self.rcpts, self.utf8) = (Some(from), Vec::new(), utf8);
        }
        Ok(r)
    }

    fn rcpt(&mut self, arg: &str) -> io::Result<Reply> {
        let Some((to, _)) = parse_path(arg, "TO:").filter(|(to, _)| !to.is_empty()) else {
            return Ok(reply(501, "5.5.4 Syntax: RCPT TO:<address>"));
        };
        let r = match self.fire(Stage::Rcpt, Some(&to))? {
            Some(r) => r,
            None if self.from.is_none() => reply(503, "5.5.1 Need MAIL before RCPT"),
            None if !self.utf8 && !to.is_ascii() => reply(553, "5.6.7 Non-ASCII address needs SMTPUTF8"),
            None => reply(250, "2.1.5 Ok"),
        };
        if r.0 < 400 {
            self.rcpts.push(to);
        }
        Ok(r)
    }

    fn data(&mut self) -> io::Result<Reply> {
        let first = self.rcpts.first().cloned();
        let r = match self.fire(Stage::Data, first.as_deref())? {
            Some(r) => r,
            None if self.from.is_none() => reply(503, "5.5.1 Need MAIL command"),
            None if self.rcpts.is_empty() => reply(503, "5.5.1 Need RCPT command"),
            None => reply(354, "End data with <CR><LF>.<CR><LF>"),
        };
        if r.0 >= 400 {
            return Ok(r);
        }
        self.send(r)?;
        let mut data = Vec::new();
        loop {
            let line = self.read_line()?;
            if line == b".\r\n" || line == b".\n" {
                break;
            }
            if data.is_empty() {
                // A `Reply` here has no meaning (the client is still sending): only
                // `Disconnect`, `Delay` and `Stall` act.
                self.fire(Stage::Body, first.as_deref())?;
            }
            data.extend_from_slice(line.strip_prefix(b".").unwrap_or(&line));
        }
        let mail_from = self.from.take().unwrap_or_default();
        let rcpt_to = std::mem::take(&mut self.rcpts);
        let too_big = self.shared.opts.max_message_bytes.is_some_and(|m| data.len() > m);
        let r = match self.fire(Stage::DataEnd, rcpt_to.first().map(String::as_str))? {
            Some(r) => r,
            None if too_big => reply(552, "5.3.4 Message too big"),
            None => reply(250, "2.0.0 Ok: queued"),
        };
        if r.0 < 400 {
            self.shared.lock().messages.push(Received {
                mail_from,
                rcpt_to,
                data,
                smtputf8: self.utf8,
            });
        }
        Ok(r)
    }
}

/// Parses `FROM:<addr> params` / `TO:<addr> params` (keyword case-insensitive).
fn parse_path<'a>(arg: &'a str, keyword: &str) -> Option<(String, &'a str)> {
    let head = arg.get(..keyword.len())?;
    let rest = arg[keyword.len()..].trim_start().strip_prefix('<')?;
    let end = rest.find('>')?;
    let path = head.eq_ignore_ascii_case(keyword).then(|| rest[..end].to_owned())?;
    Some((path, &rest[end + 1..]))
}

/// Minimal standard base64 decoder (padding optional); `None` on invalid input.
fn b64decode(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0u32);
    for c in s.trim().trim_end_matches('=').bytes() {
        acc = (acc << 6) | ALPHABET.iter().position(|&a| a == c)? as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// How long a test waits for a child process to bring something about before it gives up: far
/// more than a healthy run needs, so a run that died or hung fails the test instead of hanging
/// it. Not a timing assertion.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Polls `done` every `every` until it holds. After [`PATIENCE`] it kills and reaps `child`, so
/// no run outlives its test, and panics saying it was waiting for `what`.
pub fn wait_until(what: &str, every: Duration, child: &mut Child, mut done: impl FnMut(&mut Child) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done(child) {
        if Instant::now() > deadline {
            let _ = child.kill();
            let status = child.wait().map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
            panic!("gave up after {PATIENCE:?} waiting for {what}; killed bulletin ({status})");
        }
        std::thread::sleep(every);
    }
}
