//! Issue 12, failures that must not burn members: `send --retry-failed[=PATTERN]` sends again
//! to the members a campaign recorded as failed, and a relay that offers no AUTH to a
//! configured user is refused before anything is sent. The real binary against the
//! in-process SMTP test server; every assertion is about what the server accepted and what
//! the journal records.
//!
//! (A file of its own while tests/ is being merged into one crate; it moves into
//! tests/main.rs with the rest.)

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::support::project::{DEFAULT_CONFIG, Project, report, send};
use crate::support::smtp_server::{Action, Event, Options, Stage, TestSmtp};

const NEWSLETTER: &str = "---\nsubject: \"News for {{ first_name | default('you') }}\"\nid: news-1\n---\n\
Dear {{ first_name | default(\"friend\") }},\n\nThe news.\n";

fn addr(i: usize) -> String {
    format!("m{i}@example.org")
}

/// A project that sends six members through `smtp`, retrying quickly.
fn project(smtp: &TestSmtp) -> Project {
    let mut csv = String::from("email,first_name\n");
    for i in 1..=6 {
        csv.push_str(&format!("{},Member{i}\n", addr(i)));
    }
    let config = format!(
        "{DEFAULT_CONFIG}\n[smtp]\nurl = \"{}\"\nretry_delay = 0.01\ntimeout = 2\nconcurrency = 2\n",
        smtp.url()
    );
    Project::new()
        .file("bulletin.toml", config)
        .file("n.md", NEWSLETTER)
        .file("m.csv", csv)
}

/// Address → how many messages the server accepted for it.
fn received(smtp: &TestSmtp) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for m in smtp.messages() {
        assert_eq!(m.rcpt_to.len(), 1, "one recipient per message");
        *out.entry(m.rcpt_to[0].clone()).or_default() += 1;
    }
    out
}

/// Each of `members` once, nobody else.
fn once_each(members: &[usize]) -> HashMap<String, usize> {
    members.iter().map(|&i| (addr(i), 1)).collect()
}

/// A server that refuses m2 (no such user) and m5 (mailbox full) for good — until `accept`
/// is set, when it takes everyone.
fn refusing_two(accept: &Arc<AtomicBool>) -> TestSmtp {
    let accept = Arc::clone(accept);
    let hook = move |e: &Event| match (e.stage, e.rcpt) {
        _ if accept.load(Ordering::SeqCst) => Action::Continue,
        (Stage::Rcpt, Some("m2@example.org")) => Action::Reply(550, "5.1.1 <m2@example.org>: no such user".into()),
        (Stage::Rcpt, Some("m5@example.org")) => Action::Reply(552, "5.2.2 Mailbox full".into()),
        _ => Action::Continue,
    };
    TestSmtp::start_with(Options {
        fault: Some(Box::new(hook)),
        ..Options::default()
    })
}

/// The journal's (status, attempts) for a member of campaign `news-1`.
fn row(p: &Project, address: &str) -> (String, i64) {
    let db = rusqlite::Connection::open(p.join(".bulletin/journal.db")).unwrap();
    db.query_row(
        "SELECT status, attempts FROM delivery WHERE campaign = 'news-1' AND address = ?1",
        [address],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

/// The first send: m2 and m5 fail, everyone else gets it; then the relay accepts everyone.
fn first_send_with_two_failures() -> (Arc<AtomicBool>, TestSmtp, Project) {
    let accept = Arc::new(AtomicBool::new(false));
    let smtp = refusing_two(&accept);
    let p = project(&smtp);
    send(&p, &[]).code(3).stdout_has("4 sent, 2 failed");
    assert_eq!(received(&smtp), once_each(&[1, 3, 4, 6]));
    assert_eq!(report(&p)["failed"], 2);
    accept.store(true, Ordering::SeqCst);
    (accept, smtp, p)
}

#[test]
fn retry_failed_sends_again_to_every_failed_member_and_nobody_gets_a_second_copy() {
    let (_accept, smtp, p) = first_send_with_two_failures();

    // Without the flag, failed members stay as they are; the plan says how to retry them.
    send(&p, &[])
        .success()
        .stdout_has("nothing to send")
        .stderr_has("2 failed earlier (--retry-failed sends to them again)");
    assert_eq!(received(&smtp).len(), 4);

    send(&p, &["--retry-failed"])
        .success()
        .stderr_has(
            "recipients: 2 to send now (2 of them failed earlier: --retry-failed), 4 already sent, 0 failed earlier",
        )
        .stdout_has("news-1: 2 sent, 0 failed, 0 pending, 0 uncertain this run (4 sent earlier)");
    assert_eq!(received(&smtp), once_each(&[1, 2, 3, 4, 5, 6]));
    let r = report(&p);
    assert_eq!((r["sent"].as_u64(), r["failed"].as_u64()), (Some(6), Some(0)), "{r}");
    // The same journal and campaign: the retried rows went back through in-flight to sent,
    // and their attempts kept counting.
    assert_eq!(row(&p, &addr(2)), ("sent".into(), 2));
    assert_eq!(row(&p, &addr(5)), ("sent".into(), 2));
    assert_eq!(row(&p, &addr(1)), ("sent".into(), 1));

    // Nobody is left failed, and a member recorded sent is never retried.
    send(&p, &["--retry-failed"]).success().stdout_has("nothing to send");
    assert_eq!(received(&smtp), once_each(&[1, 2, 3, 4, 5, 6]));
}

#[test]
fn retry_failed_with_a_pattern_sends_again_only_to_members_whose_reply_contains_it() {
    let (_accept, smtp, p) = first_send_with_two_failures();

    send(&p, &["--retry-failed=MAILBOX FULL"])
        .success()
        .stderr_has(
            "recipients: 1 to send now (1 of them failed earlier with a reply containing \"MAILBOX FULL\": \
             --retry-failed), 4 already sent, 1 failed earlier (not retried)",
        )
        .stdout_has("news-1: 1 sent, 0 failed");
    assert_eq!(received(&smtp), once_each(&[1, 3, 4, 5, 6]));
    assert_eq!(row(&p, &addr(5)), ("sent".into(), 2));
    assert_eq!(row(&p, &addr(2)), ("failed".into(), 1));
    let r = report(&p);
    assert_eq!((r["sent"].as_u64(), r["failed"].as_u64()), (Some(5), Some(1)), "{r}");

    // A pattern no reply contains sends nothing.
    send(&p, &["--retry-failed=5.7.1"])
        .success()
        .stdout_has("nothing to send");
    // The rest later, by their code.
    send(&p, &["--retry-failed=5.1.1"])
        .success()
        .stdout_has("news-1: 1 sent");
    assert_eq!(received(&smtp), once_each(&[1, 2, 3, 4, 5, 6]));
}

#[test]
fn retry_failed_with_dry_run_or_test_is_a_usage_error() {
    let smtp = TestSmtp::start();
    let p = project(&smtp);
    for extra in [&["--retry-failed", "--dry-run"][..], &["--test", "--retry-failed=550"]] {
        send(&p, extra).code(2).stderr_has("cannot be used with");
    }
    assert!(smtp.messages().is_empty());
}

/// `send` with user `news@example.org` (and a password) through `smtp`, as `--smtp URL`.
fn send_as_user(smtp: &TestSmtp) -> crate::support::project::Run {
    let url = smtp.url().replace("smtp://", "smtp://news%40example.org@");
    let p = project(smtp).env("BULLETIN_SMTP_PASSWORD", "pw-4711");
    let run = p.run(&["send", "n.md", "--list", "m.csv", "--yes", "--smtp", &url]);
    assert_eq!(smtp.attempts(Stage::Mail), 0, "no MAIL FROM, unauthenticated or not");
    assert!(smtp.messages().is_empty());
    run.code(1)
        .stderr_has("bulletin will not send unauthenticated when a user is configured")
        .stderr_has("check the URL's port/TLS or remove the user")
        .stderr_has("nothing was sent")
        .stderr_lacks("pw-4711");
    run
}

/// A server whose EHLO reply lists exactly `extensions`.
fn ehlo_lists(extensions: &'static str, auth: Option<(String, String)>) -> TestSmtp {
    let hook = move |e: &Event| match e.stage {
        Stage::Ehlo => Action::Reply(250, format!("127.0.0.1 greets you\n{extensions}")),
        _ => Action::Continue,
    };
    TestSmtp::start_with(Options {
        auth,
        fault: Some(Box::new(hook)),
        ..Options::default()
    })
}

#[test]
fn a_configured_user_and_a_relay_offering_no_auth_is_an_error_before_anything_is_sent() {
    // The test server offers AUTH only when it has credentials to check: here it has none,
    // and would take the mail from anyone.
    let smtp = TestSmtp::start();
    send_as_user(&smtp).stderr_has("the relay 127.0.0.1 offers no AUTH (its EHLO lists: SIZE, 8BITMIME)");
}

#[test]
fn a_configured_user_and_a_relay_offering_auth_only_after_starttls_is_an_error_before_anything_is_sent() {
    // As Postfix with smtpd_tls_auth_only: STARTTLS is offered, AUTH only once it is used —
    // and a plain-text loopback URL does not use it.
    let smtp = ehlo_lists(
        "SIZE\n8BITMIME\nSTARTTLS",
        Some(("news@example.org".into(), "pw-4711".into())),
    );
    send_as_user(&smtp).stderr_has(
        "the relay 127.0.0.1 offers no AUTH before STARTTLS, which this plain-text URL does not use \
         (its EHLO lists: SIZE, 8BITMIME, STARTTLS)",
    );
}

#[test]
fn a_configured_user_and_a_relay_offering_only_unknown_auth_mechanisms_is_an_error_before_anything_is_sent() {
    let smtp = ehlo_lists(
        "SIZE\nAUTH CRAM-MD5",
        Some(("news@example.org".into(), "pw-4711".into())),
    );
    send_as_user(&smtp).stderr_has("offers AUTH only as CRAM-MD5, and bulletin speaks PLAIN and LOGIN");
}

/// Postfix's `smtp-sink` on a free 127.0.0.1 port, killed (by PID) when dropped; each message
/// it receives is written to a file in `dumps`. Like tests/smtp_sink.rs, whose helper is not
/// shared: these tests need Postfix, so plain `cargo test` skips them (`-- --ignored`).
struct Sink {
    child: std::process::Child,
    port: u16,
    dumps: tempfile::TempDir,
}

impl Sink {
    fn start(flags: &[&str]) -> Sink {
        use std::io::BufRead;
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let program = ["/usr/sbin/smtp-sink", "/usr/bin/smtp-sink"]
            .into_iter()
            .find(|p| std::path::Path::new(p).is_file())
            .expect("smtp-sink not found: install Postfix (apt-get install postfix)");
        for _ in 0..20 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let name = format!("sink-{}-{port}", std::process::id());
            let dumps = tempfile::Builder::new().prefix("bulletin-sink").tempdir().unwrap();
            std::fs::set_permissions(dumps.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
            let mut cmd = std::process::Command::new(program);
            if std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
                cmd.args(["-u", "nobody"]);
            }
            cmd.args(["-h", &name, "-d"])
                .arg(dumps.path().join("%M."))
                .args(flags)
                .arg(format!("127.0.0.1:{port}"))
                .arg("16")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            let mut sink = Sink {
                child: cmd.spawn().expect("start smtp-sink"),
                port,
                dumps,
            };
            // Not a timing assertion: a guard against waiting forever on a sink that hangs.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while std::time::Instant::now() < deadline {
                if sink.child.try_wait().unwrap().is_some() {
                    break; // the port was taken meanwhile; try another
                }
                let greeting = std::net::TcpStream::connect(("127.0.0.1", port)).ok().and_then(|s| {
                    let mut line = String::new();
                    std::io::BufReader::new(s).read_line(&mut line).ok()?;
                    Some(line)
                });
                match greeting {
                    Some(g) if g.contains(&name) => return sink,
                    Some(_) => break, // another server answered; ours will fail to bind
                    None => std::thread::sleep(std::time::Duration::from_millis(10)),
                }
            }
        }
        panic!("could not start smtp-sink on a free port");
    }

    /// How many messages the sink received (files it wrote with a recipient in them).
    fn received(&self) -> usize {
        std::fs::read_dir(self.dumps.path())
            .unwrap()
            .filter(|e| {
                let bytes = std::fs::read(e.as_ref().unwrap().path()).unwrap_or_default();
                String::from_utf8_lossy(&bytes).contains("X-Rcpt-Args:")
            })
            .count()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "needs Postfix's smtp-sink; .ci/run installs it"]
fn a_configured_user_and_smtp_sink_offering_no_auth_is_an_error_before_anything_is_sent() {
    let run_as_user = |sink: &Sink| {
        let url = format!("smtp://news%40example.org@127.0.0.1:{}", sink.port);
        let smtp = TestSmtp::start(); // only for project(); the URL goes to the sink
        let p = project(&smtp).env("BULLETIN_SMTP_PASSWORD", "pw-4711");
        p.run(&["send", "n.md", "--list", "m.csv", "--yes", "--smtp", &url])
    };
    // `-a`: the sink does not announce AUTH (by default it offers AUTH PLAIN LOGIN and takes
    // any credentials).
    let sink = Sink::start(&["-a"]);
    run_as_user(&sink)
        .code(1)
        .stderr_has(
            "the relay 127.0.0.1 offers no AUTH (its EHLO lists: PIPELINING, 8BITMIME, XCLIENT NAME HELO, \
             XFORWARD NAME ADDR PROTO HELO, ENHANCEDSTATUSCODES, DSN); bulletin will not send unauthenticated \
             when a user is configured — check the URL's port/TLS or remove the user",
        )
        .stderr_has("nothing was sent");
    assert_eq!(sink.received(), 0);
    // The same user against the sink as it comes, offering AUTH: everyone gets it.
    let sink = Sink::start(&[]);
    run_as_user(&sink).success().stdout_has("6 sent, 0 failed");
    assert_eq!(sink.received(), 6);
}
