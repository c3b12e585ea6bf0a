//! The relay, tried as `send` would open it — connect, TLS as the URL asks (certificate
//! verified), EHLO, AUTH with the configured secret — then QUIT with no message sent; and its
//! SIZE limit against the newsletter's largest message.

use super::Report;
use crate::send::smtp::ConnectError;
use crate::settings::Settings;

/// Checks the relay; returns its host (for SPF) when one is configured.
pub(crate) fn check(settings: &Settings, largest_message: Option<usize>, report: &mut Report) -> Option<String> {
    let relay = match settings.relay() {
        Ok(r) => r,
        Err(e) => {
            let text = format!("{e:#}");
            let fix = if text.contains("no SMTP relay") {
                "[smtp] url = \"smtp://user%40example.org@smtp.example.org:587\"   (or --smtp / BULLETIN_SMTP_URL)"
            } else {
                "export BULLETIN_SMTP_PASSWORD, or set [smtp] password_command = \"pass show smtp\""
            };
            report.fail("relay", text, fix);
            return settings.relay_host();
        }
    };
    let host = relay.host.clone();
    match relay.connect() {
        Ok(session) => {
            let size = session.size_limit();
            session.quit();
            let auth = if relay.has_user() { ", logged in" } else { "" };
            report.pass("relay", format!("{} answers{auth}", relay.describe()));
            match (size, largest_message) {
                (Some(limit), Some(biggest)) if biggest as u64 > limit => report.fail(
                    "relay-size",
                    format!("the newsletter's largest message is {biggest} bytes; {host} takes at most {limit} (SIZE)"),
                    "shrink the message: fewer or smaller attachments and images (link to them instead)",
                ),
                (Some(limit), Some(biggest)) => report.pass(
                    "relay-size",
                    format!("largest message {biggest} bytes, within the relay's {limit}"),
                ),
                (None, Some(biggest)) => report.pass(
                    "relay-size",
                    format!("largest message {biggest} bytes; the relay announces no size limit"),
                ),
                _ => {}
            }
        }
        Err(e) => {
            let fix = match &e {
                ConnectError::NoAuth(_) => {
                    "use the relay's submission port with TLS (smtps://HOST:465 or smtp://HOST:587), where it offers AUTH PLAIN or LOGIN"
                }
                ConnectError::Auth(_) => {
                    "check the user in [smtp] url and the password (BULLETIN_SMTP_PASSWORD or [smtp] password_command)"
                }
                ConnectError::Tls(_) => {
                    "use the port and scheme the relay documents: smtps://HOST:465 (TLS) or smtp://HOST:587 (STARTTLS); a certificate must be valid for HOST"
                }
                ConnectError::Refused(_) | ConnectError::Transient(_) => {
                    "check [smtp] url's host and port, and that this machine may reach it"
                }
            };
            report.fail("relay", format!("{}: {e}", relay.describe()), fix);
        }
    }
    Some(host)
}
