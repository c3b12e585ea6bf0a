//! The IMAP source: the `imap` crate (synchronous, no runtime) over rustls, the TLS stack
//! lettre already brings. `imaps://` is implicit TLS with the certificate verified against the
//! web's roots (plus those in `SSL_CERT_FILE`, for a private CA); plain `imap://` only to a
//! loopback host, like SMTP. Messages are read with `BODY.PEEK[]` (reading sets no flag), one
//! at a time; a processed one is flagged `\Seen` or moved with `--move-to`. Nothing is ever
//! expunged or deleted.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use percent_encoding::percent_decode_str;

use super::source::{Body, Item, MAX_MESSAGE, Source};
use crate::secret::Secret;
use crate::send::smtp::is_loopback;

/// An IMAP mailbox URL: `imaps://user@host:993/INBOX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImapUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub mailbox: String,
}

impl ImapUrl {
    pub(crate) fn parse(s: &str) -> Result<ImapUrl> {
        let url = url::Url::parse(s).map_err(|e| anyhow::anyhow!("the IMAP URL is not a URL: {e}"))?;
        let tls = match url.scheme() {
            "imaps" => true,
            "imap" => false,
            other => bail!("IMAP URL scheme `{other}`: use imaps://user@host:993/INBOX"),
        };
        let host = url
            .host_str()
            .context("the IMAP URL has no host")?
            .trim_matches(['[', ']'])
            .to_owned();
        if !tls && !is_loopback(&host) {
            bail!(
                "plain imap:// sends the password in clear: use imaps:// (imap:// is allowed only to a loopback host)"
            );
        }
        if url.password().is_some() {
            bail!("the IMAP URL holds a password: use BULLETIN_IMAP_PASSWORD or [inbox] password_command");
        }
        let user = percent_decode_str(url.username()).decode_utf8_lossy().into_owned();
        if user.is_empty() {
            bail!("the IMAP URL names no user: imaps://user%40example.org@host:993/INBOX");
        }
        let path = url.path().trim_start_matches('/');
        let mailbox = if path.is_empty() {
            "INBOX".to_owned()
        } else {
            percent_decode_str(path).decode_utf8_lossy().into_owned()
        };
        Ok(ImapUrl {
            tls,
            port: url.port().unwrap_or(if tls { 993 } else { 143 }),
            host,
            user,
            mailbox,
        })
    }
}

/// The connection: TLS or (loopback only) plain.
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// A logged-in session on one mailbox.
pub(crate) struct Imap {
    session: imap::Session<Stream>,
    url: ImapUrl,
    uid_validity: u32,
    /// UIDs and sizes of the messages to read, last first.
    todo: Vec<(u32, u32)>,
    move_to: Option<String>,
}

impl Imap {
    /// Connects, logs in and selects the mailbox (read-only with `dry_run`).
    pub(crate) fn open(url: &ImapUrl, password: &Secret, move_to: Option<String>, dry_run: bool) -> Result<Imap> {
        let what = format!("{}:{}", url.host, url.port);
        let tcp = TcpStream::connect((url.host.as_str(), url.port))
            .with_context(|| format!("cannot connect to IMAP server {what}"))?;
        tcp.set_read_timeout(Some(Duration::from_secs(120)))?;
        tcp.set_write_timeout(Some(Duration::from_secs(120)))?;
        let stream = if url.tls {
            let config = tls_config()?;
            let name = rustls::pki_types::ServerName::try_from(url.host.clone())
                .map_err(|e| anyhow::anyhow!("{}: {e}", url.host))?;
            let conn = rustls::ClientConnection::new(Arc::new(config), name)?;
            Stream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp)))
        } else {
            Stream::Plain(tcp)
        };
        let mut client = imap::Client::new(stream);
        client
            .read_greeting()
            .with_context(|| format!("IMAP server {what} did not greet (TLS or protocol mismatch?)"))?;
        let mut session = client
            .login(&url.user, password.expose())
            .map_err(|(e, _)| anyhow::anyhow!("IMAP login as {} at {what} failed: {e}", url.user))?;
        let mailbox = if dry_run {
            session.examine(&url.mailbox)
        } else {
            session.select(&url.mailbox)
        }
        .with_context(|| format!("cannot open mailbox {:?} on {what}", url.mailbox))?;
        let uid_validity = mailbox.uid_validity.unwrap_or(0);
        let mut todo = Vec::new();
        if mailbox.exists > 0 {
            let fetches = session
                .fetch("1:*", "(UID RFC822.SIZE)")
                .context("cannot list the mailbox")?;
            for f in fetches.iter() {
                if let Some(uid) = f.uid {
                    todo.push((uid, f.size.unwrap_or(0)));
                }
            }
        }
        todo.sort_unstable_by_key(|&(uid, _)| std::cmp::Reverse(uid));
        Ok(Imap {
            session,
            url: url.clone(),
            uid_validity,
            todo,
            move_to,
        })
    }

    fn location(&self, uid: u32) -> String {
        format!(
            "imap:{}/{}/{}/{uid}",
            self.url.host, self.url.mailbox, self.uid_validity
        )
    }
}

impl Source for Imap {
    fn next_item(&mut self) -> Result<Option<Item>> {
        let Some((uid, size)) = self.todo.pop() else {
            return Ok(None);
        };
        let location = self.location(uid);
        if u64::from(size) > MAX_MESSAGE {
            return Ok(Some(Item {
                location,
                body: Body::TooBig(u64::from(size)),
            }));
        }
        let fetches = self
            .session
            .uid_fetch(uid.to_string(), "BODY.PEEK[]")
            .with_context(|| format!("cannot fetch message UID {uid}"))?;
        let body = match fetches.iter().find(|f| f.uid == Some(uid)).and_then(|f| f.body()) {
            Some(b) => Body::Message(b.to_vec()),
            // Expunged by someone else meanwhile.
            None => Body::Unreadable(format!("message UID {uid} is gone from the mailbox")),
        };
        Ok(Some(Item { location, body }))
    }

    fn finish(&mut self, location: &str) -> Result<()> {
        let Some(uid) = location.rsplit('/').next().filter(|_| location.starts_with("imap:")) else {
            return Ok(());
        };
        match &self.move_to {
            Some(folder) => self
                .session
                .uid_mv(uid, folder)
                .with_context(|| format!("cannot move message UID {uid} to {folder:?}")),
            None => self
                .session
                .uid_store(uid, "+FLAGS.SILENT (\\Seen)")
                .map(drop)
                .with_context(|| format!("cannot flag message UID {uid} \\Seen")),
        }
    }

    fn close(&mut self) -> Result<()> {
        self.session.logout().context("IMAP logout")
    }

    fn describe(&self) -> String {
        format!("{}:{}/{}", self.url.host, self.url.port, self.url.mailbox)
    }
}

/// The web's roots, plus the certificates in `SSL_CERT_FILE` when it names one.
fn tls_config() -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(file) = std::env::var_os("SSL_CERT_FILE") {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let path = std::path::PathBuf::from(file);
        for cert in CertificateDer::pem_file_iter(&path).with_context(|| format!("SSL_CERT_FILE {}", path.display()))? {
            roots
                .add(cert.with_context(|| format!("SSL_CERT_FILE {}", path.display()))?)
                .with_context(|| format!("SSL_CERT_FILE {}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed_and_plain_text_only_goes_to_loopback() {
        let u = ImapUrl::parse("imaps://bounces%40example.org@imap.example.org:993/INBOX").unwrap();
        assert_eq!(
            u,
            ImapUrl {
                tls: true,
                host: "imap.example.org".into(),
                port: 993,
                user: "bounces@example.org".into(),
                mailbox: "INBOX".into()
            }
        );
        assert_eq!(ImapUrl::parse("imaps://u@h").unwrap().mailbox, "INBOX");
        assert_eq!(ImapUrl::parse("imap://u@127.0.0.1:1143/Bounces").unwrap().port, 1143);
        for bad in [
            "imap://u@imap.example.org/INBOX",
            "imaps://u:pw@h/INBOX",
            "imaps://h/INBOX",
            "pop3://u@h",
        ] {
            assert!(ImapUrl::parse(bad).is_err(), "{bad}");
        }
        let e = ImapUrl::parse("imaps://u:hunter2@h/INBOX").unwrap_err();
        assert!(!format!("{e:#}").contains("hunter2"));
    }
}
