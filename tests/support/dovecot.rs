//! A Dovecot of the test's own on 127.0.0.1 (plain IMAP and IMAPS with a certificate made by
//! `openssl req`) serving one user's Maildir. Needs `dovecot-imapd` and root.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::daemon::{free_port, run, wait_for_port};

/// A Dovecot of its own (its config, run and state directories in a temporary directory),
/// serving one user's Maildir; stopped by its PID when dropped.
pub struct Dovecot {
    dir: tempfile::TempDir,
    /// What the INBOX started with: (name, text).
    messages: Vec<(String, String)>,
    child: Child,
    pub plain: u16,
    pub tls: u16,
}

pub const USER: &str = "bounces@example.org";
pub const PASSWORD: &str = "imap-test-password";

impl Dovecot {
    /// Starts Dovecot with `messages` in the user's INBOX and an empty `Processed` folder.
    pub fn start(messages: &[(String, String)]) -> Dovecot {
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

    pub fn maildir(&self) -> PathBuf {
        self.dir.path().join("home/Maildir")
    }

    pub fn cert(&self) -> String {
        self.dir.path().join("cert.pem").display().to_string()
    }

    /// File names in a folder of the Maildir (`""` for INBOX), new/ and cur/.
    pub fn files(&self, folder: &str) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let dir = self.maildir().join(folder).join(sub);
            for e in std::fs::read_dir(dir).unwrap() {
                out.push(e.unwrap().file_name().to_string_lossy().into_owned());
            }
        }
        out
    }

    /// The messages in a folder of the Maildir (`""` for INBOX), by the names [`Dovecot::start`]
    /// was given them with (found by content: Dovecot may rename a file it moves), split into
    /// those flagged `\Seen` and not.
    pub fn by_seen(&self, folder: &str) -> (Vec<String>, Vec<String>) {
        let mut seen = Vec::new();
        let mut unseen = Vec::new();
        for sub in ["new", "cur"] {
            let dir = self.maildir().join(folder).join(sub);
            for e in std::fs::read_dir(dir).unwrap() {
                let path = e.unwrap().path();
                let text = std::fs::read_to_string(&path).unwrap();
                let (name, _) = self
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
