use std::process::Child;
use std::time::{Duration, Instant};

pub mod html;
pub mod project;
pub mod smtp_server;

/// Header fields bulletin's messages may carry; a header line naming anything else in a built
/// message was injected.
#[allow(dead_code)]
pub const MESSAGE_HEADERS: [&str; 14] = [
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "reply-to",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "feedback-id",
    "dkim-signature",
];

/// A host name other than `localhost` that resolves only to loopback here (Debian maps the
/// machine's own name to 127.0.1.1): the client treats it as remote (STARTTLS required) while
/// a test server on 127.0.0.1 still answers. `None` when there is no such name.
#[allow(dead_code)]
pub fn remote_looking_loopback_name() -> Option<String> {
    use std::net::ToSocketAddrs;
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()?
        .trim()
        .to_owned();
    if name.is_empty() || name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    let mut addrs = (name.as_str(), 25).to_socket_addrs().ok()?;
    addrs.all(|a| a.ip().is_loopback()).then_some(name)
}

/// [`remote_looking_loopback_name`] for the tests that need one: they are `#[ignore]`d, so
/// running them where there is no such name is a mistake worth a clear failure.
pub fn require_remote_looking_loopback_name() -> String {
    remote_looking_loopback_name().expect(
        "this test needs a host name other than `localhost` that resolves only to loopback: the \
         machine's own name mapped to 127.0.0.1 or 127.0.1.1 in /etc/hosts (as Debian does)",
    )
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
