//! `bulletin inbox` against real servers started by the test on 127.0.0.1: Dovecot (IMAP,
//! plain on loopback and TLS with a certificate made by `openssl req`) serving a Maildir, and
//! Postfix writing a real bounce. Ignored unless asked for: `.ci/run` installs
//! `dovecot-imapd` and `postfix` and runs them as root.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::inbox::{json, mailbox, sent, suppressed};
use crate::support::smtp_server::TestSmtp;

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub(crate) fn wait_for_port(port: u16, what: &str, log: &Path) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what} did not listen on {port}: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A Dovecot of its own (its config, run and state directories in a temporary directory),
/// serving one user's Maildir; stopped by its PID when dropped.
struct Dovecot {
    dir: tempfile::TempDir,
    child: Child,
    plain: u16,
    tls: u16,
}

const USER: &str = "bounces@example.org";
const PASSWORD: &str = "imap-test-password";

impl Dovecot {
    /// Starts Dovecot with `messages` in the user's INBOX and an empty `Processed` folder.
    fn start(messages: &[(String, String)]) -> Dovecot {
        let dir = tempfile::Builder::new().prefix("bulletin-dovecot").tempdir().unwrap();
        let d = dir.path();
        // Dovecot's unprivileged processes must reach the files.
        run(Command::new("chmod").arg("755").arg(d));
        let maildir = d.join("home/Maildir");
        for sub in [
            "new",
            "cur",
            "tmp",
            ".Processed/new",
            ".Processed/cur",
            ".Processed/tmp",
        ] {
            std::fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        for (i, (name, text)) in messages.iter().enumerate() {
            std::fs::write(maildir.join(format!("new/{i}.{name}.test")), text).unwrap();
        }
        run(Command::new("chown")
            .args(["-R", "dovecot:dovecot"])
            .arg(d.join("home")));
        run(Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=localhost",
            ])
            .args([
                "-addext",
                "subjectAltName=DNS:localhost",
                "-addext",
                "basicConstraints=critical,CA:FALSE",
            ])
            .arg("-keyout")
            .arg(d.join("key.pem"))
            .arg("-out")
            .arg(d.join("cert.pem"))
            .stderr(Stdio::null()));
        let id = |flag: &str| {
            let out = Command::new("id").args([flag, "dovecot"]).output().unwrap();
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        };
        std::fs::write(
            d.join("passwd"),
            format!(
                "{USER}:{{PLAIN}}{PASSWORD}:{}:{}::{}::\n",
                id("-u"),
                id("-g"),
                d.join("home").display()
            ),
        )
        .unwrap();
        let (plain, tls) = (free_port(), free_port());
        let p = d.display();
        let conf = format!(
            "base_dir = {p}/run\nstate_dir = {p}/state\nlog_path = {p}/dovecot.log\n\
             protocols = imap\nlisten = 127.0.0.1\nssl = yes\nssl_cert = <{p}/cert.pem\nssl_key = <{p}/key.pem\n\
             disable_plaintext_auth = no\nauth_mechanisms = plain login\n\
             default_internal_user = dovecot\ndefault_internal_group = dovecot\ndefault_login_user = dovenull\nfirst_valid_uid = 1\n\
             mail_location = maildir:{p}/home/Maildir\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {p}/passwd\n}}\n\
             userdb {{\n  driver = passwd-file\n  args = username_format=%u {p}/passwd\n}}\n\
             service imap-login {{\n  chroot =\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {plain}\n  }}\n\
             \x20 inet_listener imaps {{\n    address = 127.0.0.1\n    port = {tls}\n    ssl = yes\n  }}\n}}\n\
             service anvil {{\n  chroot =\n}}\n"
        );
        std::fs::write(d.join("dovecot.conf"), conf).unwrap();
        let child = Command::new("dovecot")
            .arg("-c")
            .arg(d.join("dovecot.conf"))
            .arg("-F")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dovecot (apt-get install dovecot-imapd)");
        let log = d.join("dovecot.log");
        wait_for_port(plain, "dovecot", &log);
        wait_for_port(tls, "dovecot", &log);
        Dovecot { dir, child, plain, tls }
    }

    fn maildir(&self) -> PathBuf {
        self.dir.path().join("home/Maildir")
    }

    fn cert(&self) -> String {
        self.dir.path().join("cert.pem").display().to_string()
    }

    /// File names in a folder of the Maildir (`""` for INBOX), new/ and cur/.
    fn files(&self, folder: &str) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let dir = self.maildir().join(folder).join(sub);
            for e in std::fs::read_dir(dir).unwrap() {
                out.push(e.unwrap().file_name().to_string_lossy().into_owned());
            }
        }
        out
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // SIGTERM to our own Dovecot's master (by PID), which stops its children.
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default();
            eprintln!("--- dovecot.log:\n{log}");
        }
    }
}

const EXPECTED_COUNTS: [u64; 8] = [9, 2, 1, 1, 1, 1, 1, 2];

fn counts(v: &serde_json::Value) -> [u64; 8] {
    [
        "processed",
        "hard",
        "soft",
        "complaints",
        "unsubscribes",
        "auto_replies",
        "other",
        "unmatched",
    ]
    .map(|k| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}")))
}

#[test]
#[ignore = "needs dovecot"]
fn over_plain_imap_on_loopback_messages_are_processed_and_flagged_seen_once() {
    let smtp = TestSmtp::start();
    let p = sent(&smtp, 6);
    let messages = mailbox(&p, &smtp);
    let dovecot = Dovecot::start(&messages);
    let p = p.env("BULLETIN_IMAP_PASSWORD", PASSWORD);
    let url = format!("imap://bounces%40example.org@127.0.0.1:{}/INBOX", dovecot.plain);

    let dry = json(p.run(&["inbox", "--imap", &url, "--dry-run", "--json"]).success());
    assert_eq!(counts(&dry), EXPECTED_COUNTS, "{dry:#}");
    assert!(
        dovecot
            .files("")
            .iter()
            .all(|f| !f.contains(":2,") || !f.split(":2,").nth(1).unwrap().contains('S')),
        "a dry run flags nothing: {:?}",
        dovecot.files("")
    );

    let v = json(p.run(&["inbox", "--imap", &url, "--json"]).success());
    assert_eq!(counts(&v), EXPECTED_COUNTS, "{v:#}");
    assert_eq!(suppressed(&v).len(), 4, "{v:#}");
    let files = dovecot.files("");
    assert_eq!(files.len(), 9, "nothing deleted: {files:?}");
    assert!(
        files
            .iter()
            .all(|f| f.split(":2,").nth(1).is_some_and(|flags| flags.contains('S'))),
        "every message flagged \\Seen: {files:?}"
    );
    let again = json(p.run(&["inbox", "--imap", &url, "--json"]).success());
    assert_eq!(
        (again["processed"].as_u64(), again["already_processed"].as_u64()),
        (Some(0), Some(9))
    );
}

#[test]
#[ignore = "needs dovecot"]
fn over_imaps_with_a_verified_certificate_messages_are_moved_to_a_folder() {
    let smtp = TestSmtp::start();
    let p = sent(&smtp, 6);
    let messages = mailbox(&p, &smtp);
    let dovecot = Dovecot::start(&messages);
    let url = format!("imaps://bounces%40example.org@localhost:{}/INBOX", dovecot.tls);

    // The test's own certificate is not trusted by default: refused.
    let untrusted = p.env("BULLETIN_IMAP_PASSWORD", PASSWORD);
    let r = untrusted.run(&["inbox", "--imap", &url]);
    assert_ne!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stderr.to_lowercase().contains("certificate"), "{}", r.stderr);

    let p = untrusted.env("SSL_CERT_FILE", &dovecot.cert());
    let v = json(
        p.run(&["inbox", "--imap", &url, "--move-to", "Processed", "--json"])
            .success(),
    );
    assert_eq!(counts(&v), EXPECTED_COUNTS, "{v:#}");
    assert!(
        dovecot.files("").is_empty(),
        "INBOX emptied by moving: {:?}",
        dovecot.files("")
    );
    assert_eq!(dovecot.files(".Processed").len(), 9, "every message kept in Processed");

    // A wrong password is an error, and nothing else happens.
    let wrong = p.env("BULLETIN_IMAP_PASSWORD", "wrong");
    let r = wrong.run(&["inbox", "--imap", &url]);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("login"), "{}", r.stderr);
}
