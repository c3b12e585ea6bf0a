//! Crashes and a journal that cannot be written.
//!
//! The crash loop kills a 2,000-member send (4 sessions) with SIGKILL at random instants, 20
//! times, resuming after each, then lets a last run finish: nobody gets two copies, everyone
//! not `uncertain` gets exactly one, each crash leaves at most 4 (the concurrency) uncertain,
//! and the journal opens cleanly after every kill.
//!
//! A journal that cannot be written — its directory is a file, read-only, or on a full disk —
//! is an error before anything is sent, and a disk that fills mid-send stops the run cleanly
//! with every message accounted for. Read-only and full file systems are made with a tmpfs, so
//! those tests need root and are `#[ignore]`d: `.ci/run` runs them as root.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::project::{Project, members, report, send, sending, uncertain_addresses};
use crate::support::smtp_server::{Action, Event, Options, Stage, TestSmtp};

const NEWSLETTER: &str = "---\nsubject: \"Hi {{ first_name }}\"\nid: crash\n---\nDear {{ first_name }},\n\nThe news.\n";

fn project(smtp: &TestSmtp, n: usize) -> Project {
    sending(&smtp.url(), NEWSLETTER, members(n), "concurrency = 4\ntimeout = 5")
}

/// Each accepted message takes a little while, so a kill finds messages in flight. The server
/// offers PIPELINING, so the client holds each ready message until the next one's envelope
/// can go with it: the path with the most in the air at once.
fn slow_server(delay: Duration) -> TestSmtp {
    TestSmtp::start_with(Options {
        fault: Some(Box::new(move |e: &Event| match e.stage {
            Stage::DataEnd => Action::Delay(delay),
            _ => Action::Continue,
        })),
        pipelining: true,
        ..Options::default()
    })
}

/// SQLite's own check of the journal file.
fn integrity(path: &Path) -> String {
    let db = rusqlite::Connection::open(path).expect("the journal opens");
    db.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
        .expect("integrity_check runs")
}

#[test]
fn crash_loop_twenty_kills_then_everyone_exactly_once() {
    const N: usize = 2000;
    const ROUNDS: usize = 20;
    const CONCURRENCY: usize = 4;
    let started = Instant::now();
    let smtp = slow_server(Duration::from_millis(2));
    let p = project(&smtp, N);
    let mut rng = fastrand::Rng::with_seed(20_260_105);
    let mut uncertain_before = 0;
    let mut per_crash = Vec::new();
    let (mut mid_send, mut before_first) = (0, 0);
    for round in 0..ROUNDS {
        let accepted = smtp.messages().len();
        let mut child = Command::new(env!("CARGO_BIN_EXE_bulletin"))
            .args(["send", "n.md", "--list", "m.csv", "--yes"])
            .current_dir(p.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn bulletin");
        // Where to strike is chosen by progress, not by the clock alone, so the loop does the
        // same on a fast machine and on a loaded one.
        match round % 4 {
            // Early: loading, preflight, opening and filling the journal, the first hand-offs.
            0 => std::thread::sleep(Duration::from_millis(rng.u64(0..150))),
            // Right after some message was accepted, before its `sent` is committed.
            1 | 2 => smtp.wait_for_or_exit(accepted + rng.usize(1..=60), &mut child),
            // Some time into sending.
            _ => {
                smtp.wait_for_or_exit(accepted + 1, &mut child);
                std::thread::sleep(Duration::from_micros(rng.u64(0..30_000)));
            }
        }
        let finished = child.try_wait().expect("try_wait").is_some();
        child.kill().ok(); // SIGKILL
        child.wait().expect("wait");
        assert!(
            !finished,
            "round {round}: the run finished before the kill; make the server slower"
        );
        if smtp.messages().len() > accepted {
            mid_send += 1;
        } else {
            before_first += 1;
        }
        // The journal opens cleanly after every kill.
        if p.join(".bulletin/journal.db").exists() {
            assert_eq!(integrity(&p.join(".bulletin/journal.db")), "ok", "round {round}");
            let started_campaign = p.run(&["report", "n.md", "--json"]);
            if started_campaign.code == Some(0) {
                let r: serde_json::Value = serde_json::from_str(&started_campaign.stdout).unwrap();
                let now = r["uncertain"].as_u64().unwrap() as usize;
                let new = now - uncertain_before;
                assert!(new <= CONCURRENCY, "round {round}: {new} uncertain after one crash");
                per_crash.push(new);
                uncertain_before = now;
                assert_eq!(
                    r["total"].as_u64(),
                    Some(N as u64),
                    "round {round}: every member recorded"
                );
            } else {
                // Killed before the campaign was recorded: nothing may have been sent.
                started_campaign.stderr_has("has not been sent yet");
                assert_eq!(smtp.messages().len(), 0, "round {round}");
                per_crash.push(0);
            }
        } else {
            assert_eq!(smtp.messages().len(), 0, "round {round}");
            per_crash.push(0);
        }
        assert!(smtp.received().values().all(|&n| n == 1), "round {round}: a duplicate");
    }
    let before_final = smtp.messages().len();
    send(&p, &[]).success();
    let r = report(&p);
    let uncertain = uncertain_addresses(&r);
    let got = smtp.received();
    let duplicates: Vec<_> = got.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicates.is_empty(), "duplicates: {duplicates:?}");
    for i in 1..=N {
        let a = format!("m{i}@example.org");
        let copies = got.get(&a).copied().unwrap_or(0);
        if uncertain.contains(&a) {
            assert!(copies <= 1, "{a}");
        } else {
            assert_eq!(copies, 1, "{a} is not uncertain, yet has {copies} copies");
        }
    }
    assert_eq!(r["sent"].as_u64().unwrap() as usize + uncertain.len(), N);
    assert_eq!((r["failed"].as_u64(), r["pending"].as_u64()), (Some(0), Some(0)));
    let delivered_uncertain = uncertain.iter().filter(|a| got.contains_key(*a)).count();
    println!(
        "crash loop: {ROUNDS} SIGKILLs ({mid_send} mid-send, {before_first} before the run's first message), \
         {N} members, concurrency {CONCURRENCY}; accepted before the last run {before_final}; \
         uncertain per crash {per_crash:?} (max {}), {} uncertain in all ({delivered_uncertain} of them had \
         reached the server); duplicates {}; {:.1} s",
        per_crash.iter().max().unwrap_or(&0),
        uncertain.len(),
        duplicates.len(),
        started.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------------
// A journal that cannot be written.

#[test]
fn a_journal_directory_that_is_a_file_is_an_error_before_connecting() {
    let smtp = TestSmtp::start();
    let p = project(&smtp, 3).file("notadir", "I am a file\n");
    let run = send(&p, &["--journal", "notadir/journal.db"]);
    run.code(1).stderr_has("notadir");
    assert_eq!(smtp.sessions(), 0, "not even a connection");
}

/// A file system mounted at a directory for the length of a test (root only).
struct Mount(PathBuf);

impl Mount {
    /// A tmpfs of `size` at `dir`; panics where mounting is not allowed (not root).
    fn tmpfs(dir: &Path, size: &str) -> Mount {
        std::fs::create_dir_all(dir).expect("create the mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test needs to mount a tmpfs (run it as root, as .ci/run does): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Mount(dir.to_owned())
    }

    fn remount(&self, options: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.0)
            .status()
            .expect("mount");
        assert!(status.success(), "remount {options}");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Fills the file system holding `dir` until no block is left.
fn fill(dir: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(dir.join("filler")).expect("create filler");
    let block = vec![0u8; 4096];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
}

#[test]
#[ignore = "needs root to mount a tmpfs; run by .ci/run"]
fn a_read_only_journal_directory_is_an_error_before_sending() {
    let smtp = TestSmtp::start();
    let p = project(&smtp, 3);
    // A fresh journal in a read-only directory.
    let mount = Mount::tmpfs(&p.join(".bulletin"), "1m");
    mount.remount("ro");
    let run = send(&p, &[]);
    run.code(1).stderr_has(".bulletin/journal.db");
    assert_eq!(smtp.sessions(), 0, "the journal is opened before connecting");
    println!("read-only journal directory, new journal: {}", run.stderr.trim());
    // An existing journal whose directory became read-only.
    mount.remount("rw");
    send(&p, &["--limit", "1"]).success();
    assert_eq!(smtp.messages().len(), 1);
    let sessions = smtp.sessions();
    mount.remount("ro");
    let run = send(&p, &[]);
    run.code(1).stderr_has(".bulletin/journal.db");
    assert_eq!(smtp.sessions(), sessions, "no connection");
    assert_eq!(smtp.messages().len(), 1, "nothing more sent");
    println!("read-only journal directory, existing journal: {}", run.stderr.trim());
    mount.remount("rw");
    send(&p, &[]).success().stdout_has("2 sent");
    assert!(smtp.received().values().all(|&n| n == 1));
}

#[test]
#[ignore = "needs root to mount a tmpfs; run by .ci/run"]
fn a_full_disk_is_an_error_before_sending_and_a_clean_stop_mid_send() {
    let smtp = slow_server(Duration::from_millis(1));
    let p = project(&smtp, 2000);
    let mount = Mount::tmpfs(&p.join(".bulletin"), "1m");
    // Nothing left at all: the journal cannot even be created.
    fill(&p.join(".bulletin"));
    let run = send(&p, &[]);
    run.code(1).stderr_has(".bulletin/journal.db").stderr_has("full");
    assert_eq!(smtp.sessions(), 0, "the journal is opened before connecting");
    println!("full disk, new journal: {}", run.stderr.trim());
    for f in ["filler", "journal.db", "journal.db-wal", "journal.db-shm"] {
        std::fs::remove_file(p.join(".bulletin").join(f)).ok();
    }

    // Room for the journal (or nearly), not for the 2,000 members it lists before sending.
    mount.remount("size=96k");
    let run = send(&p, &[]);
    run.code(1).stderr_has(".bulletin/journal.db").stderr_has("full");
    assert_eq!(smtp.attempts(Stage::Mail), 0, "nothing sent: {}", run.stderr);
    println!(
        "full disk, listing members: {}",
        run.stderr.lines().last().unwrap_or("")
    );
    // The members are listed in one transaction: all of them or none.
    mount.remount("size=640k");
    let listed = p.run(&["report", "n.md", "--json"]);
    if listed.code == Some(0) {
        assert_eq!(report(&p)["total"], 0, "a half-listed campaign");
    } else {
        listed.code(1).stderr_has("has not been sent yet");
    }

    // Room to start, then the disk fills while sending: a clean stop, nothing unaccounted.
    let run = send(&p, &[]);
    let stopped_mid_send = run.code == Some(1);
    println!(
        "full disk mid-send: exit {:?}: {}",
        run.code,
        run.stderr.lines().last().unwrap_or("")
    );
    let sent_before = smtp.messages().len();
    mount.remount("size=64m");
    let r = report(&p);
    let stuck = uncertain_addresses(&r);
    assert!(stuck.len() <= 4, "at most the concurrency in flight: {stuck:?}");
    println!(
        "full disk mid-send: {sent_before} accepted before the stop, {} left uncertain, {} sent and recorded",
        stuck.len(),
        r["sent"]
    );
    send(&p, &[]).success();
    let r = report(&p);
    let uncertain = uncertain_addresses(&r);
    let got = smtp.received();
    assert!(got.values().all(|&n| n == 1), "a duplicate");
    assert_eq!(r["sent"].as_u64().unwrap() as usize + uncertain.len(), 2000);
    for i in 1..=2000 {
        let a = format!("m{i}@example.org");
        assert!(got.contains_key(&a) || uncertain.contains(&a), "{a} lost");
    }
    if stopped_mid_send {
        run.stderr_has("cannot write the journal .bulletin/journal.db")
            .stderr_has("to resume");
        assert!(sent_before > 0 && sent_before < 2000, "{sent_before}");
    } else {
        println!("note: 640k sufficed for the whole run; the mid-send stop was not exercised");
    }
}
