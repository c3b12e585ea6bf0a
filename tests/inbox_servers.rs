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
    /// What the INBOX started with: (name, text).
    messages: Vec<(String, String)>,
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
        Dovecot {
            dir,
            messages: messages.to_vec(),
            child,
            plain,
            tls,
        }
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
    let (seen, unseen) = by_seen(&dovecot, "");
    assert_eq!(seen, HANDLED, "what bulletin handled is flagged \\Seen: {files:?}");
    assert_eq!(unseen, LEFT_ALONE, "the rest stays unread: {files:?}");
    let again = json(p.run(&["inbox", "--imap", &url, "--json"]).success());
    assert_eq!(
        (again["processed"].as_u64(), again["already_processed"].as_u64()),
        (Some(0), Some(9))
    );
    assert_eq!(by_seen(&dovecot, "").1, LEFT_ALONE, "and stays so");
}

/// The messages of [`mailbox`] bulletin handles (matched, or an auto-reply), and those it
/// leaves unread for a person (a person's reply, the unmatched), by name.
const HANDLED: [&str; 6] = [
    "auto",
    "complaint-m3",
    "hard-m1",
    "hard-m2",
    "soft-m5",
    "unsubscribe-m4",
];
const LEFT_ALONE: [&str; 3] = ["forged", "person", "stranger"];

/// The messages in a folder of the Maildir (`""` for INBOX), by their names in [`mailbox`]
/// (found by content: Dovecot may rename a file it moves), split into those flagged `\Seen`
/// and not.
fn by_seen(dovecot: &Dovecot, folder: &str) -> (Vec<String>, Vec<String>) {
    let mut seen = Vec::new();
    let mut unseen = Vec::new();
    for sub in ["new", "cur"] {
        let dir = dovecot.maildir().join(folder).join(sub);
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let (name, _) = dovecot
                .messages
                .iter()
                .find(|(_, t)| *t == text)
                .unwrap_or_else(|| panic!("a message bulletin did not put there: {}", path.display()));
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            let flagged = file.split(":2,").nth(1).is_some_and(|flags| flags.contains('S'));
            if flagged { &mut seen } else { &mut unseen }.push(name.clone());
        }
    }
    seen.sort_unstable();
    unseen.sort_unstable();
    (seen, unseen)
}

/// `a` and `b` together, sorted.
fn both(split: (Vec<String>, Vec<String>)) -> Vec<String> {
    let mut all = [split.0, split.1].concat();
    all.sort_unstable();
    all
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
    assert_eq!(
        both(by_seen(&dovecot, ".Processed")),
        HANDLED,
        "what bulletin handled is moved to Processed"
    );
    assert_eq!(
        by_seen(&dovecot, ""),
        (vec![], LEFT_ALONE.map(String::from).to_vec()),
        "a person's reply and the unmatched stay unread in INBOX"
    );
    // A second run moves nothing more and counts nothing again.
    let again = json(
        p.run(&["inbox", "--imap", &url, "--move-to", "Processed", "--json"])
            .success(),
    );
    assert_eq!(
        (again["processed"].as_u64(), again["already_processed"].as_u64()),
        (Some(0), Some(3)),
        "{again:#}"
    );
    assert_eq!(by_seen(&dovecot, ""), (vec![], LEFT_ALONE.map(String::from).to_vec()));
    assert_eq!(both(by_seen(&dovecot, ".Processed")), HANDLED);

    // A wrong password is an error, and nothing else happens.
    let wrong = p.env("BULLETIN_IMAP_PASSWORD", "wrong");
    let r = wrong.run(&["inbox", "--imap", &url]);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("login"), "{}", r.stderr);
}

/// A Postfix of its own (config, queue and data directories in a temporary directory) on a
/// free loopback port: `members.test` is its local domain, where every user is unknown (so
/// local(8) bounces), and `example.org` a virtual domain whose `bounces` mailbox (with `+`
/// extensions, i.e. VERP) is a Maildir. Stopped by its master's PID when dropped.
struct Postfix {
    dir: tempfile::TempDir,
    port: u16,
}

impl Postfix {
    fn start() -> Postfix {
        let dir = tempfile::Builder::new().prefix("bulletin-postfix").tempdir().unwrap();
        let d = dir.path();
        run(Command::new("chmod").arg("755").arg(d));
        for sub in ["conf", "mail", "queue", "data"] {
            std::fs::create_dir(d.join(sub)).unwrap();
        }
        run(Command::new("chown")
            .args(["postfix:postfix"])
            .arg(d.join("mail"))
            .arg(d.join("data")));
        let port = free_port();
        // The stock master.cf, unchrooted, with its SMTP server on our port.
        let stock = std::fs::read_to_string("/etc/postfix/master.cf").expect("postfix installed");
        let master: String = stock
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let mut f: Vec<&str> = l.split_whitespace().collect();
                if f.len() >= 8 && !l.starts_with(char::is_whitespace) {
                    if f[0] == "smtp" && f[1] == "inet" {
                        return format!("127.0.0.1:{port} inet n - n - - smtpd\n");
                    }
                    f[4] = "n";
                    return format!("{}\n", f.join(" "));
                }
                format!("{l}\n")
            })
            .collect();
        std::fs::write(d.join("conf/master.cf"), master).unwrap();
        let id = |flag: &str| {
            let out = Command::new("id").args([flag, "postfix"]).output().unwrap();
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        };
        let p = d.display();
        let main = format!(
            "compatibility_level = 3.6\nqueue_directory = {p}/queue\ndata_directory = {p}/data\n\
             mail_owner = postfix\nsetgid_group = postdrop\ninet_interfaces = 127.0.0.1\ninet_protocols = ipv4\n\
             myhostname = mx.members.test\nmydomain = members.test\nmyorigin = members.test\n\
             mydestination = members.test\nlocal_recipient_maps =\nalias_maps =\nalias_database =\n\
             mynetworks = 127.0.0.0/8\nrelayhost =\nsmtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n\
             recipient_delimiter = +\nvirtual_mailbox_domains = example.org\n\
             virtual_mailbox_maps = texthash:{p}/conf/vmailbox\nvirtual_mailbox_base = {p}/mail\n\
             virtual_uid_maps = static:{}\nvirtual_gid_maps = static:{}\n\
             maillog_file_prefixes = {p}\nmaillog_file = {p}/maillog\nsmtputf8_enable = no\nbiff = no\n",
            id("-u"),
            id("-g")
        );
        std::fs::write(d.join("conf/main.cf"), main).unwrap();
        std::fs::write(d.join("conf/vmailbox"), "bounces@example.org maildir/\n").unwrap();
        for verb in ["check", "start"] {
            run(Command::new("postfix").arg("-c").arg(d.join("conf")).arg(verb));
        }
        wait_for_port(port, "postfix", &d.join("maillog"));
        Postfix { dir, port }
    }

    fn maildir(&self) -> PathBuf {
        self.dir.path().join("mail/maildir")
    }

    /// Waits until `n` messages are in the bounce Maildir.
    fn wait_for_bounces(&self, n: usize) -> Vec<String> {
        let start = Instant::now();
        loop {
            let new = self.maildir().join("new");
            let files: Vec<PathBuf> = std::fs::read_dir(&new)
                .map(|d| d.map(|e| e.unwrap().path()).collect())
                .unwrap_or_default();
            if files.len() >= n {
                return files.iter().map(|f| std::fs::read_to_string(f).unwrap()).collect();
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no bounces from postfix: {}",
                std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let pid = std::fs::read_to_string(self.dir.path().join("queue/pid/master.pid")).unwrap_or_default();
        if let Ok(pid) = pid.trim().parse::<u32>() {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            // The master stops its children and removes its PID file.
            let start = Instant::now();
            while Path::new(&format!("/proc/{pid}")).exists() && start.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

#[test]
#[ignore = "needs postfix"]
fn a_bounce_written_by_postfix_for_an_unknown_user_suppresses_that_member() {
    let postfix = Postfix::start();
    let p = crate::inbox::sent_through(
        &format!("smtp://127.0.0.1:{}", postfix.port),
        "email\ngone.one@members.test\ngone.two@members.test\n",
    );
    let bounces = postfix.wait_for_bounces(2);
    for b in &bounces {
        // Postfix's own DSN, come back to the member's VERP address.
        assert!(
            b.contains("report-type=delivery-status") && b.contains("Status: 5.1.1"),
            "{b}"
        );
        assert!(b.contains("bounces+"), "{b}");
    }
    let maildir = postfix.maildir().display().to_string();
    let v = json(p.run(&["inbox", "--maildir", &maildir, "--json"]).success());
    assert_eq!(
        (v["processed"].as_u64(), v["hard"].as_u64(), v["unmatched"].as_u64()),
        (Some(2), Some(2), Some(0)),
        "{v:#}"
    );
    let expected = ["gone.one@members.test", "gone.two@members.test"]
        .map(|e| (e.to_owned(), "bounce".to_owned(), "news-1".to_owned()));
    assert_eq!(suppressed(&v), expected);
    let r = crate::support::project::report(&p);
    assert_eq!(r["bounced_hard"].as_u64(), Some(2), "{r:#}");
}
