use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::smtp_server::{Action, Event, Options, Stage, TestSmtp};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::{PoolConfig, SmtpTransportBuilder};
use lettre::{Message, SmtpTransport, Transport};

/// Plaintext transport to the test server, without connection reuse.
fn transport(server: &TestSmtp) -> SmtpTransportBuilder {
    SmtpTransport::builder_dangerous("127.0.0.1")
        .port(server.addr().port())
        .pool_config(PoolConfig::new().max_size(0))
        .timeout(Some(Duration::from_secs(5)))
}

fn creds(user: &str, pass: &str) -> Credentials {
    Credentials::new(user.into(), pass.into())
}

fn message(to: &str) -> Message {
    Message::builder()
        .from("Bulletin <news@example.com>".parse().unwrap())
        .to(to.parse().unwrap())
        .subject("Weekly news")
        .body(String::from("Hello!\r\n.a line starting with a dot\r\nBye\r\n"))
        .unwrap()
}

fn with_fault(hook: impl Fn(&Event) -> Action + Send + Sync + 'static) -> TestSmtp {
    TestSmtp::start_with(Options {
        fault: Some(Box::new(hook)),
        ..Options::default()
    })
}

#[test]
fn normal_send_is_recorded_with_envelope_and_raw_body() {
    let server = TestSmtp::start();
    assert_eq!(server.url(), format!("smtp://127.0.0.1:{}", server.addr().port()));
    let email = Message::builder()
        .from("Bulletin <news@example.com>".parse().unwrap())
        .to("Alice <alice@example.org>".parse().unwrap())
        .cc("bob@example.org".parse().unwrap())
        .subject("Weekly news")
        .body(String::from(
            "Hello!\r\n.a line starting with a dot\r\n..two dots\r\nBye",
        ))
        .unwrap();
    transport(&server).build().send(&email).unwrap();

    let msgs = server.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].mail_from, "news@example.com");
    assert_eq!(msgs[0].rcpt_to, ["alice@example.org", "bob@example.org"]);
    // lettre always terminates with "\r\n.\r\n", so the recorded data is the
    // formatted message plus CRLF, with dot-stuffing undone.
    let mut expected = email.formatted();
    expected.extend_from_slice(b"\r\n");
    assert_eq!(
        String::from_utf8_lossy(&msgs[0].data),
        String::from_utf8_lossy(&expected)
    );
    let text = String::from_utf8_lossy(&msgs[0].data);
    assert!(
        text.contains("\r\n.a line starting with a dot\r\n..two dots\r\n"),
        "{text}"
    );
    assert!(text.contains("Subject: Weekly news\r\n"), "{text}");
    assert_eq!(server.sessions(), 1);
    assert_eq!(server.attempts(Stage::Rcpt), 2);
    assert_eq!(server.attempts(Stage::DataEnd), 1);
}

#[test]
fn auth_is_enforced_and_plain_and_login_work() {
    let server = TestSmtp::start_with(Options {
        auth: Some(("user".into(), "s3cret".into())),
        ..Options::default()
    });
    let to = "alice@example.org";

    let err = transport(&server)
        .credentials(creds("user", "nope"))
        .build()
        .send(&message(to));
    let err = err.unwrap_err();
    assert!(err.is_permanent(), "{err}");
    assert_eq!(err.status().map(u16::from), Some(535));

    let login = vec![Mechanism::Login];
    let t = transport(&server)
        .credentials(creds("user", "nope"))
        .authentication(login.clone());
    let err = t.build().send(&message(to)).unwrap_err();
    assert_eq!(err.status().map(u16::from), Some(535), "{err}");

    let err = transport(&server).build().send(&message(to)).unwrap_err();
    assert!(err.is_permanent(), "{err}");
    assert_eq!(err.status().map(u16::from), Some(530));
    assert!(server.messages().is_empty());

    transport(&server)
        .credentials(creds("user", "s3cret"))
        .build()
        .send(&message(to))
        .unwrap();
    let t = transport(&server)
        .credentials(creds("user", "s3cret"))
        .authentication(login);
    t.build().send(&message(to)).unwrap();
    assert_eq!(server.messages().len(), 2);
    assert_eq!(server.attempts(Stage::Auth), 4);
}

#[test]
fn transient_rcpt_failure_then_success() {
    let server = with_fault(|ev| match (ev.stage, ev.rcpt, ev.attempt) {
        (Stage::Rcpt, Some("bob@example.org"), 1) => Action::Reply(451, "4.3.0 Try later".into()),
        _ => Action::Continue,
    });
    let t = transport(&server).build();

    let err = t.send(&message("bob@example.org")).unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(err.status().map(u16::from), Some(451));
    assert!(server.messages().is_empty());

    t.send(&message("bob@example.org")).unwrap();
    let msgs = server.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].rcpt_to, ["bob@example.org"]);
    assert_eq!(server.attempts(Stage::Rcpt), 2);
    assert_eq!(server.sessions(), 2);
}

#[test]
fn disconnect_at_data_end_records_nothing() {
    let server = with_fault(|ev| match ev.stage {
        Stage::DataEnd => Action::Disconnect,
        _ => Action::Continue,
    });
    let err = transport(&server)
        .build()
        .send(&message("alice@example.org"))
        .unwrap_err();
    assert!(!err.is_transient() && !err.is_permanent(), "{err}");
    assert!(server.messages().is_empty());
    assert_eq!(server.attempts(Stage::DataEnd), 1);
}

#[test]
fn busy_greeting_is_transient_and_closes_the_connection() {
    let server = with_fault(|ev| match (ev.stage, ev.attempt) {
        (Stage::Greeting, 1) => Action::Reply(421, "4.3.2 Too busy".into()),
        _ => Action::Continue,
    });
    let t = transport(&server).build();
    let err = t.send(&message("alice@example.org")).unwrap_err();
    assert!(err.is_transient(), "{err}");
    t.send(&message("alice@example.org")).unwrap();
    assert_eq!((server.sessions(), server.messages().len()), (2, 1));
    assert_eq!(server.attempts(Stage::Ehlo), 1);
}

#[test]
fn stall_times_out_the_client_and_drop_does_not_hang() {
    let server = with_fault(|ev| match ev.stage {
        Stage::Data => Action::Stall,
        Stage::Mail => Action::Delay(Duration::from_millis(50)),
        _ => Action::Continue,
    });
    let t = transport(&server).timeout(Some(Duration::from_millis(300))).build();
    let start = Instant::now();
    let err = t.send(&message("alice@example.org")).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(3), "{err}");
    // A raw client that connects and never says anything keeps a session open too.
    let _idle = TcpStream::connect(server.addr()).unwrap();
    let start = Instant::now();
    drop(server);
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "drop took {:?}",
        start.elapsed()
    );
}

/// Minimal line-based SMTP client for protocol details lettre never exercises.
struct Raw(BufReader<TcpStream>);

impl Raw {
    fn connect(server: &TestSmtp) -> Raw {
        let stream = TcpStream::connect(server.addr()).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut raw = Raw(BufReader::new(stream));
        assert!(raw.reply().starts_with("220 "));
        raw
    }

    /// Reads one (possibly multi-line) reply.
    fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            assert!(self.0.read_line(&mut line).unwrap() > 0, "server closed early");
            all += &line;
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }

    fn cmd(&mut self, line: &str) -> String {
        self.0.get_mut().write_all(format!("{line}\r\n").as_bytes()).unwrap();
        self.reply()
    }
}

#[test]
fn raw_protocol_details_and_abrupt_disconnects() {
    let server = TestSmtp::start_with(Options {
        max_message_bytes: Some(2000),
        ..Options::default()
    });
    let mut c = Raw::connect(&server);
    let ehlo = c.cmd("EHLO client.test");
    assert!(
        ehlo.contains("250-SIZE 2000\r\n") && ehlo.contains("8BITMIME"),
        "{ehlo}"
    );
    assert!(!ehlo.contains("STARTTLS") && !ehlo.contains("PIPELINING"), "{ehlo}");
    assert!(!ehlo.contains("AUTH"), "{ehlo}");
    assert!(c.cmd("VRFY bob").starts_with("502 "));
    assert!(c.cmd("NOOP").starts_with("250 "));
    assert!(c.cmd("RCPT TO:<bob@example.org>").starts_with("503 "));
    assert!(c.cmd("MAIL FROM:<>").starts_with("250 "));
    assert!(c.cmd("RSET").starts_with("250 "));
    assert!(c.cmd("DATA").starts_with("503 "));

    // Too big: 552 and not recorded.
    assert!(c.cmd("mail from:<a@example.com>").starts_with("250 "));
    assert!(c.cmd("rcpt to:<b@example.org>").starts_with("250 "));
    assert!(c.cmd("DATA").starts_with("354 "));
    let big = format!("Subject: x\r\n\r\n{}\r\n.", "y".repeat(3000));
    assert!(c.cmd(&big).starts_with("552 "));

    // Small message with a dot-stuffed line is recorded exactly.
    c.cmd("MAIL FROM:<a@example.com>");
    c.cmd("RCPT TO:<b@example.org>");
    c.cmd("DATA");
    assert!(c.cmd("Subject: y\r\n\r\n..dot\r\n.").starts_with("250 "));
    assert!(c.cmd("QUIT").starts_with("221 "));
    let msgs = server.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].data, b"Subject: y\r\n\r\n.dot\r\n");

    // Client vanishes in the middle of DATA, then another right after the greeting.
    let mut c = Raw::connect(&server);
    c.cmd("EHLO x");
    c.cmd("MAIL FROM:<a@example.com>");
    c.cmd("RCPT TO:<b@example.org>");
    c.cmd("DATA");
    c.0.get_mut().write_all(b"Subject: half\r\n\r\npartial li").unwrap();
    drop(c);
    drop(Raw::connect(&server));

    // The server is still healthy.
    transport(&server).build().send(&message("alice@example.org")).unwrap();
    assert_eq!(server.messages().len(), 2);
    assert_eq!(server.sessions(), 4);
}
