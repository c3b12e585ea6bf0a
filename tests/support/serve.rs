//! `bulletin serve` started in a test project on a free loopback port, and a plain HTTP
//! client (ureq) that reports every status instead of failing on 4xx.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::{Arc, Mutex};

use super::project::{DEFAULT_CONFIG, Project};

/// The unsubscribe secret of [`web_project`].
pub const SECRET: &str = "s3cret-for-serve-tests";
/// The list id of [`web_project`] (tokens are made for it).
pub const LIST_ID: &str = "Members <members.example.org>";

/// A project with a one-click unsubscribe URL, a suppression file and the secret.
pub fn web_project() -> Project {
    let config = DEFAULT_CONFIG.replace(
        "[unsubscribe]\nmailto = \"unsubscribe@example.org\"\n",
        "[unsubscribe]\nurl = \"https://news.example.org/unsubscribe/{{ token }}\"\n",
    );
    Project::new()
        .file(
            "bulletin.toml",
            format!("suppress = [\"lists/unsubscribed.csv\"]\n{config}"),
        )
        .file("lists/unsubscribed.csv", "email,reason,date,campaign\n")
        .env("BULLETIN_UNSUBSCRIBE_SECRET", SECRET)
}

/// A member's token, made by the library as `send` makes it.
pub fn token(address: &str) -> String {
    let u = bulletin::unsubscribe::Unsubscribe::new(
        None,
        None,
        Some(bulletin::secret::Secret::new(SECRET.into())),
        LIST_ID.into(),
    );
    u.token(&bulletin::email::Email::parse(address).expect("valid address"))
        .expect("a secret is set")
}

/// A running `bulletin serve`; stopped with SIGTERM when dropped.
pub struct Server {
    child: Child,
    pub base: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// `bulletin serve --listen 127.0.0.1:0 EXTRA…` in `p`, once it listens.
    pub fn start(p: &Project, extra: &[&str]) -> Server {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut child = p.spawn(&args);
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let mut base = None;
        for line in lines.by_ref() {
            let line = line.expect("stderr line");
            if let Some(rest) = line.split("listening on ").nth(1) {
                base = Some(
                    rest.split_whitespace()
                        .next()
                        .unwrap_or("")
                        .trim_end_matches('/')
                        .to_owned(),
                );
                break;
            }
            assert!(!line.starts_with("error"), "serve failed: {line}");
        }
        let base = base.unwrap_or_else(|| panic!("serve did not start: {:?}", child.wait()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Server { child, base, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The address and port.
    pub fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_owned()
    }

    /// What the server logged so far (after its first line).
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The log once it has at least `n` lines (or after 5 seconds).
    pub fn log_of(&self, n: usize) -> Vec<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while self.log().len() < n && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        self.log()
    }

    /// Sends SIGTERM and waits; returns the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        self.terminate();
        self.child.wait().expect("wait for serve")
    }

    /// Sends SIGTERM without waiting.
    pub fn terminate(&self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.stop();
        }
    }
}

/// An HTTP client that returns 4xx and 5xx answers like any other.
pub fn client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

/// Status, headers and body of an answer.
pub struct Answer {
    pub status: u16,
    pub headers: ureq::http::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

impl From<Result<ureq::http::Response<ureq::Body>, ureq::Error>> for Answer {
    fn from(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
        let mut r = r.expect("an HTTP answer");
        Answer {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            body: r.body_mut().read_to_string().unwrap_or_default(),
        }
    }
}

pub fn get(agent: &ureq::Agent, url: &str) -> Answer {
    Answer::from(agent.get(url).call())
}

/// A form POST (`application/x-www-form-urlencoded`).
pub fn post(agent: &ureq::Agent, url: &str, body: &str) -> Answer {
    Answer::from(
        agent
            .post(url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send(body),
    )
}

/// The one-click POST a mail provider sends (RFC 8058).
pub fn one_click(agent: &ureq::Agent, url: &str) -> Answer {
    post(agent, url, "List-Unsubscribe=One-Click")
}

/// Sends `raw` bytes on a fresh connection and returns the status line's code (0 if the
/// server closed without answering).
pub fn raw(addr: &str, request: &[u8]) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.write_all(request).expect("write");
    let mut out = Vec::new();
    s.set_read_timeout(Some(std::time::Duration::from_secs(15))).unwrap();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}
