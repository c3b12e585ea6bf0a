pub mod daemon;
pub mod dovecot;
pub mod html;
pub mod mime;
pub mod postfix;
pub mod project;
pub mod serve;
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

pub use smtp_server::wait_until;
