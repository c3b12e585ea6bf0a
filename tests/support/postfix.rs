//! A Postfix of the test's own on a free loopback port, whose bounce daemon writes real DSNs.
//! Needs `postfix` and root.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::daemon::{free_port, run, wait_for_port};

/// A Postfix of its own (config, queue and data directories in a temporary directory) on a
/// free loopback port: `members.test` is its local domain, where every user is unknown (so
/// local(8) bounces), and `example.org` a virtual domain whose `bounces` mailbox (with `+`
/// extensions, i.e. VERP) is a Maildir. Stopped by its master's PID when dropped.
pub struct Postfix {
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Postfix {
    pub fn start() -> Postfix {
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

    pub fn maildir(&self) -> PathBuf {
        self.dir.path().join("mail/maildir")
    }

    /// Waits until `n` messages are in the bounce Maildir.
    pub fn wait_for_bounces(&self, n: usize) -> Vec<String> {
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
