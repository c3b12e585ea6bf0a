//! `bulletin send` end to end against Postfix's `smtp-sink`, a real SMTP server written in C,
//! on 127.0.0.1: a clean send at four sessions, and each of its fault flags (`-r` soft
//! rejection, `-f` hard rejection, `-q` dropped connection) with the outcome every member
//! must end in. `smtp-sink -d` writes each message it receives to a file; those files are the
//! record of what the relay got.
//!
//! These need Postfix installed, so plain `cargo test` skips them; `.ci/run` runs them with
//! `cargo test --test main smtp_sink:: -- --ignored`, and then a missing `smtp-sink` is a failure.
//! Every fault flag applies to every message, so each test asserts one outcome for everyone.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::project::{DEFAULT_CONFIG, Project, addr, report, send, uncertain_addresses};
use crate::support::wait_until;

/// Where Debian's `postfix` package puts it; `SMTP_SINK` overrides.
const SINK_PLACES: [&str; 2] = ["/usr/sbin/smtp-sink", "/usr/bin/smtp-sink"];

/// One `smtp-sink` on a free 127.0.0.1 port, killed (by PID) when dropped.
pub(crate) struct Sink {
    child: Child,
    port: u16,
    dumps: tempfile::TempDir,
    log: PathBuf,
}

/// One message as `smtp-sink -d` wrote it: its own `X-…` records, then the message.
struct Dump {
    rcpt: Vec<String>,
    bytes: Vec<u8>,
}

impl Sink {
    /// Starts `smtp-sink FLAGS` and waits until it answers with its own greeting.
    pub(crate) fn start(flags: &[&str]) -> Sink {
        let program = sink_program();
        for _ in 0..20 {
            if let Some(sink) = Sink::try_start(&program, flags) {
                return sink;
            }
        }
        panic!("could not start {} on a free port", program.display());
    }

    fn try_start(program: &Path, flags: &[&str]) -> Option<Sink> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        // The greeting names this sink, so we never mistake another server on the port for it.
        let name = format!("sink-{}-{port}", std::process::id());
        let dumps = tempfile::Builder::new()
            .prefix("bulletin-sink")
            .tempdir()
            .expect("tempdir");
        // With `-u nobody` the sink writes its files as nobody.
        std::fs::set_permissions(dumps.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let log = dumps.path().join("smtp-sink.log");
        let mut cmd = Command::new(program);
        if running_as_root() {
            cmd.args(["-u", "nobody"]);
        }
        cmd.args(["-h", &name, "-d"])
            .arg(dumps.path().join("%M."))
            .args(flags)
            .arg(format!("127.0.0.1:{port}"))
            .arg("64")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("sink log"));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        let mut sink = Sink {
            child,
            port,
            dumps,
            log,
        };
        // Not a timing assertion: a guard against waiting forever on a sink that hangs.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = sink.child.try_wait().expect("wait for smtp-sink") {
                let log = std::fs::read_to_string(&sink.log).unwrap_or_default();
                if log.contains("in use") {
                    return None; // someone took the port meanwhile; try another
                }
                panic!("smtp-sink exited at start ({status}):\n{log}");
            }
            if let Some(greeting) = greeting(port) {
                if greeting.contains(&name) {
                    return Some(sink);
                }
                return None; // another server answered; ours will fail to bind
            }
            assert!(Instant::now() < deadline, "smtp-sink never answered on port {port}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message the sink received in full (whether or not it then accepted it).
    fn dumps(&self) -> Vec<Dump> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.dumps.path()).expect("read dump dir") {
            let path = entry.expect("dump entry").path();
            if path == self.log {
                continue;
            }
            let bytes = std::fs::read(&path).expect("read dump");
            let rcpt: Vec<String> = String::from_utf8_lossy(&bytes)
                .lines()
                .take_while(|l| !l.is_empty())
                .filter_map(|l| l.strip_prefix("X-Rcpt-Args: "))
                .map(|a| a.trim().trim_start_matches('<').trim_end_matches('>').to_owned())
                .collect();
            // A transaction still open with no recipient yet (the sink creates the file at
            // MAIL and drops it if the client goes away): nothing can be delivered by it.
            if rcpt.is_empty() {
                continue;
            }
            out.push(Dump { rcpt, bytes });
        }
        out
    }

    /// Recipient → how many messages the sink received for them.
    fn received(&self) -> HashMap<String, usize> {
        let mut out = HashMap::new();
        for d in self.dumps() {
            assert_eq!(d.rcpt.len(), 1, "one recipient per message: {:?}", d.rcpt);
            *out.entry(d.rcpt[0].clone()).or_default() += 1;
        }
        out
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server's first line, if something accepts connections on `port`.
fn greeting(port: u16) -> Option<String> {
    let stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).ok()?;
    Some(line)
}

fn sink_program() -> PathBuf {
    if let Some(p) = std::env::var_os("SMTP_SINK") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "SMTP_SINK={} is not a file", p.display());
        return p;
    }
    let in_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("smtp-sink"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    SINK_PLACES
        .iter()
        .map(PathBuf::from)
        .chain(in_path)
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "smtp-sink not found (looked in {} and $PATH): these tests need Postfix's smtp-sink; \
                 install it with `apt-get install postfix` or set SMTP_SINK=/path/to/smtp-sink",
                SINK_PLACES.join(", ")
            )
        })
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

const NEWSLETTER: &str = "---\nsubject: \"News for {{ first_name | default('you') }}\"\nid: sink-1\n---\n\
Dear {{ first_name | default(\"friend\") }},\n\n\
The news. A line that starts with a dot follows, to exercise SMTP dot-stuffing:\n\n\
.well, that was it.\n";

const NAMES: [&str; 6] = ["Zoë", "李伟", "José", "Ольга", "محمد", "Søren"];

fn name(i: usize) -> &'static str {
    NAMES[i % NAMES.len()]
}

/// `n` members sent through `sink`: quick retries, three attempts, no early stop.
fn project(sink: &Sink, n: usize, concurrency: usize) -> Project {
    let mut csv = String::from("email,first_name\n");
    for i in 1..=n {
        csv.push_str(&format!("{},{}\n", addr(i), name(i)));
    }
    let config = format!(
        "{DEFAULT_CONFIG}\n[smtp]\nurl = \"{}\"\nretry_delay = 0.01\nattempts = 3\ntimeout = 10\n\
         concurrency = {concurrency}\nstop_after_failures = 1000\n",
        sink.url()
    );
    Project::new()
        .file("bulletin.toml", config)
        .file("n.md", NEWSLETTER)
        .file("m.csv", csv)
}

/// `(total, sent, failed, pending, uncertain)` from `report --json`.
fn totals(r: &serde_json::Value) -> [u64; 5] {
    ["total", "sent", "failed", "pending", "uncertain"].map(|k| r[k].as_u64().unwrap_or_else(|| panic!("{k} in {r}")))
}

/// A later run through a sink without faults delivers exactly the members still pending.
fn rerun_delivers_each_once(p: &Project, n: usize) {
    let clean = Sink::start(&[]);
    send(p, &["--smtp", &clean.url()])
        .success()
        .stdout_has(&format!("{n} sent, 0 failed, 0 pending"));
    let got = clean.received();
    assert_eq!(got.len(), n, "{got:?}");
    assert!(got.values().all(|&c| c == 1), "{got:?}");
}

#[test]
#[ignore = "needs Postfix smtp-sink; run by .ci/run"]
fn clean_send_at_four_sessions_delivers_every_member_exactly_once() {
    let sink = Sink::start(&[]);
    let p = project(&sink, 50, 4);
    send(&p, &[])
        .success()
        .stdout_has("50 sent, 0 failed, 0 pending, 0 uncertain");
    let dumps = sink.dumps();
    assert_eq!(dumps.len(), 50);
    let mut got: Vec<String> = Vec::new();
    for d in &dumps {
        let m = mail_parser::MessageParser::default()
            .parse(&d.bytes)
            .expect("mail-parser parses what the sink received");
        let to = m.to().and_then(|t| t.first()).and_then(|a| a.address()).expect("To");
        assert_eq!(d.rcpt, [to], "envelope recipient = To header, and only them");
        let i: usize = to
            .trim_start_matches('m')
            .trim_end_matches("@example.org")
            .parse()
            .expect("member number");
        assert_eq!(m.subject(), Some(format!("News for {}", name(i)).as_str()));
        let text = m.body_text(0).expect("text part");
        assert!(text.contains(&format!("Dear {},", name(i))), "{text}");
        assert!(text.contains("\n.well, that was it."), "dot-stuffing undone: {text}");
        got.push(to.to_owned());
    }
    got.sort();
    let mut want: Vec<String> = (1..=50).map(addr).collect();
    want.sort();
    assert_eq!(got, want, "everyone exactly once");
    assert_eq!(totals(&report(&p)), [50, 50, 0, 0, 0]);
    send(&p, &[]).success().stdout_has("nothing to send");
    assert_eq!(sink.dumps().len(), 50, "a rerun sends nothing");
}

#[test]
#[ignore = "needs Postfix smtp-sink; run by .ci/run"]
fn soft_rejected_rcpt_leaves_everyone_pending_for_the_next_run() {
    let sink = Sink::start(&["-r", "rcpt"]);
    let p = project(&sink, 6, 2);
    send(&p, &[])
        .code(3)
        .stdout_has("0 sent, 0 failed, 6 pending, 0 uncertain");
    assert!(sink.dumps().is_empty(), "no message got past RCPT");
    assert_eq!(totals(&report(&p)), [6, 0, 0, 6, 0]);
    rerun_delivers_each_once(&p, 6);
}

#[test]
#[ignore = "needs Postfix smtp-sink; run by .ci/run"]
fn soft_rejection_after_the_message_is_retried_then_left_pending() {
    let sink = Sink::start(&["-r", "."]);
    let p = project(&sink, 4, 2);
    send(&p, &[])
        .code(3)
        .stdout_has("0 sent, 0 failed, 4 pending, 0 uncertain");
    let got = sink.received();
    assert_eq!(got.len(), 4);
    assert!(got.values().all(|&c| c == 3), "each tried `attempts` times: {got:?}");
    assert_eq!(totals(&report(&p)), [4, 0, 0, 4, 0]);
}

/// `smtp-sink -f STAGE`: the relay says the same words to every member, so they are about the
/// sender, the session or the message, not the members: the run stops with the relay's words,
/// nobody is marked failed, and a later run through a working relay reaches everyone once.
fn the_same_hard_rejection_for_everyone_stops_the_run_and_burns_nobody(stage: &str) {
    let sink = Sink::start(&["-f", stage]);
    let p = project(&sink, 6, 2);
    send(&p, &[])
        .code(1)
        .stderr_has("5.3.0 Error: command failed")
        .stderr_has("to resume:");
    assert!(sink.dumps().is_empty(), "nothing got as far as the message");
    assert_eq!(totals(&report(&p)), [6, 0, 0, 6, 0], "everyone still pending");
    rerun_delivers_each_once(&p, 6);
}

#[test]
#[ignore = "needs Postfix smtp-sink; run by .ci/run"]
fn a_hard_rejected_sender_stops_the_run_and_burns_nobody() {
    the_same_hard_rejection_for_everyone_stops_the_run_and_burns_nobody("mail");
}

#[test]
#[ignore = "needs Postfix smtp-sink; run by .ci/run"]
fn the_same_hard_rejected_rcpt_for_everyone_stops_the_run_and_burns_nobody() {
    the_same_hard_rejection_for_everyone_stops_the_run_and_burns_nobody("rcpt");
}

#[test]
#[ignore = "needs Postfix smtp-sink; run by .ci/run"]
fn the_same_hard_rejected_data_for_everyone_stops_the_run_and_burns_nobody() {
    the_same_hard_rejection_for_everyone_stops_the_run_and_burns_nobody("data");
}

#[test]
#[ignore = "needs Postfix smtp-sink; run by .ci/run"]
fn a_relay_that_never_answers_data_leaves_everyone_pending_after_their_attempts() {
    // `-w 5`: the sink waits five seconds before answering DATA; bulletin gives up after one,
    // before any of the message left, so each member goes to the back of the line and is
    // tried again (three attempts), then left pending — never failed, never uncertain.
    let sink = Sink::start(&["-w", "5"]);
    let p = project(&sink, 4, 2).file(
        "bulletin.toml",
        format!(
            "{DEFAULT_CONFIG}\n[smtp]\nurl = \"{}\"\nretry_delay = 0.01\nattempts = 2\ntimeout = 1\n\
             concurrency = 2\nstop_after_failures = 1000\n",
            sink.url()
        ),
    );
    send(&p, &[])
        .code(3)
        .stdout_has("0 sent, 0 failed, 4 pending, 0 uncertain");
    assert!(sink.dumps().is_empty(), "no body left");
    assert_eq!(totals(&report(&p)), [4, 0, 0, 4, 0]);
    rerun_delivers_each_once(&p, 4);
}

#[test]
#[ignore = "needs Postfix smtp-sink; run by .ci/run"]
fn disconnect_after_the_final_dot_is_uncertain_and_never_resent() {
    let sink = Sink::start(&["-q", "."]);
    let p = project(&sink, 6, 2);
    send(&p, &[])
        .success()
        .stdout_has("0 sent, 0 failed, 0 pending, 6 uncertain");
    let got = sink.received();
    assert_eq!(got.len(), 6, "the sink has every message: {got:?}");
    assert!(got.values().all(|&c| c == 1), "none retried: {got:?}");
    let r = report(&p);
    assert_eq!(totals(&r), [6, 0, 0, 0, 6]);
    for u in r["uncertain_members"].as_array().expect("uncertain_members") {
        let id = u["message_id"].as_str().expect("message_id");
        assert!(id.starts_with('<') && id.ends_with("@example.org>"), "{id}");
    }
    send(&p, &[])
        .success()
        .stdout_has("nothing to send")
        .stderr_has("uncertain");
    assert_eq!(sink.dumps().len(), 6, "a rerun does not resend them");
    let clean = Sink::start(&[]);
    send(&p, &["--smtp", &clean.url(), "--resend-uncertain"])
        .success()
        .stdout_has("6 sent");
    assert_eq!(clean.received().len(), 6);
}

/// `smtp-sink -q STAGE` before the message: retried, left pending, delivered by a later run.
fn disconnect_before_the_message_is_retried_then_left_pending(stage: &str) {
    let sink = Sink::start(&["-q", stage]);
    let p = project(&sink, 5, 2);
    send(&p, &[])
        .code(3)
        .stdout_has("0 sent, 0 failed, 5 pending, 0 uncertain");
    assert!(sink.dumps().is_empty(), "no message got through");
    assert_eq!(totals(&report(&p)), [5, 0, 0, 5, 0]);
    rerun_delivers_each_once(&p, 5);
}

#[test]
#[ignore = "needs Postfix smtp-sink; run by .ci/run"]
fn disconnect_after_mail_is_retried_then_left_pending() {
    disconnect_before_the_message_is_retried_then_left_pending("mail");
}

#[test]
#[ignore = "needs Postfix smtp-sink; run by .ci/run"]
fn disconnect_after_rcpt_is_retried_then_left_pending() {
    disconnect_before_the_message_is_retried_then_left_pending("rcpt");
}

#[test]
#[ignore = "needs Postfix smtp-sink; run by .ci/run"]
fn disconnect_after_data_is_retried_then_left_pending() {
    disconnect_before_the_message_is_retried_then_left_pending("data");
}

#[test]
#[ignore = "needs Postfix smtp-sink; run by .ci/run"]
fn the_same_faults_without_pipelining() {
    // smtp-sink's -r and -f already turn PIPELINING off; -p does it for the rest.
    let sink = Sink::start(&["-p", "-q", "rcpt"]);
    let p = project(&sink, 3, 2);
    send(&p, &[]).code(3).stdout_has("0 sent, 0 failed, 3 pending");
    let sink = Sink::start(&["-p"]);
    send(&p, &["--smtp", &sink.url()]).success().stdout_has("3 sent");
    assert_eq!(sink.received().len(), 3);
}

#[test]
#[ignore = "needs Postfix smtp-sink; run by .ci/run"]
fn sigkill_mid_send_then_resume_delivers_everyone_at_most_once() {
    // The sink holds each reply to the final dot for a second: kill while messages wait.
    let slow = Sink::start(&["-W", ".:1"]);
    let p = project(&slow, 8, 2);
    let mut child = p.spawn(&["send", "n.md", "--list", "m.csv", "--yes"]);
    wait_until(
        "the sink to hold 3 messages",
        Duration::from_millis(10),
        &mut child,
        |_| slow.dumps().len() >= 3,
    );
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    let first = slow.received();
    assert!(first.values().all(|&c| c == 1), "{first:?}");
    let clean = Sink::start(&[]);
    send(&p, &["--smtp", &clean.url()]).success();
    let second = clean.received();
    assert!(second.values().all(|&c| c == 1), "{second:?}");
    let r = report(&p);
    let uncertain = uncertain_addresses(&r);
    assert!(uncertain.len() <= 2, "at most `concurrency` uncertain: {uncertain:?}");
    for i in 1..=8 {
        let a = addr(i);
        let (before, after) = (first.contains_key(&a), second.contains_key(&a));
        assert!(!(before && after), "{a} received twice");
        if uncertain.contains(&a) {
            assert!(!after, "{a} is uncertain, yet was resent");
        } else {
            assert!(before || after, "{a} is recorded sent but no sink has it");
        }
    }
    let [total, sent, failed, pending, unsure] = totals(&r);
    assert_eq!((total, failed, pending), (8, 0, 0));
    assert_eq!(sent + unsure, 8);
}
