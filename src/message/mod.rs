//! The MIME message: `multipart/alternative` with text first and HTML last, UTF-8, one `To`,
//! a unique `Message-ID` on the sender's domain, list headers. The same builder serves
//! `preview`, dry runs and real sends.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, bail};
use lettre::Message;
use lettre::address::Envelope;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};

mod encoding;

use crate::config::Config;
use crate::dkim::{Key, Signer};
use crate::email::Email;
use crate::list::Recipient;
use crate::newsletter::Newsletter;
use crate::render::{Rendered, header_safe};
use crate::unsubscribe::Unsubscribe;
use encoding::text_body;

/// What every message of a campaign shares.
pub struct Letterhead {
    pub from: Mailbox,
    pub reply_to: Option<Mailbox>,
    pub list_id: Option<String>,
    /// Domain of the `Message-ID`s (the sender's).
    pub domain: String,
    pub unsubscribe: Option<Arc<Unsubscribe>>,
    /// `Feedback-ID` value: campaign and the configured identifier.
    pub feedback_id: Option<String>,
    /// The DKIM signer, when `[dkim]` is configured.
    dkim: Option<Signer>,
    /// Random per run, so Message-IDs never repeat across runs or machines.
    nonce: String,
    counter: AtomicU64,
}

impl Letterhead {
    pub fn new(n: &Newsletter, config: &Config, unsubscribe: Option<Arc<Unsubscribe>>) -> Result<Letterhead> {
        let file = n.path.display();
        let from_raw = n.front.from.as_deref().or(config.from.as_deref()).with_context(|| {
            format!("{file}: no sender: add `from: \"Name <news@example.org>\"` to the front matter or `from` to bulletin.toml")
        })?;
        let from = mailbox(from_raw).with_context(|| format!("sender {from_raw:?} is not `Name <address>`"))?;
        let reply_to = match n.front.reply_to.as_deref().or(config.reply_to.as_deref()) {
            Some(r) => Some(mailbox(r).with_context(|| format!("reply_to {r:?} is not an address"))?),
            None => None,
        };
        if let Some(id) = &config.list_id {
            let inner = id.rsplit_once('<').and_then(|(_, r)| r.strip_suffix('>'));
            if !inner.is_some_and(|i| i.contains('.') && !i.contains('@') && !i.contains(' ')) {
                bail!("list_id {id:?} must look like `Members <members.example.org>` (RFC 2919)");
            }
        }
        let domain = from.email.domain().to_ascii_lowercase();
        let feedback_id = config
            .feedback_id
            .as_deref()
            .map(|f| header_safe(&format!("{}:{f}", n.campaign_id())));
        let dkim = match &config.dkim {
            None => None,
            Some(d) => {
                let key = Key::load(&config.resolve(&d.private_key), &d.domain, &d.selector)?;
                // Sign what a receiver judges and what a relay must not change; only headers
                // the messages carry. Content-Type is not listed, as it was not with lettre's
                // signer, which could not sign it (lettre writes it outside the message headers).
                let mut headers = vec!["From", "To", "Subject", "Date", "Message-ID", "MIME-Version"];
                let present = [
                    ("Reply-To", reply_to.is_some()),
                    ("List-Id", config.list_id.is_some()),
                    ("List-Unsubscribe", unsubscribe.is_some()),
                    (
                        "List-Unsubscribe-Post",
                        unsubscribe.as_ref().is_some_and(|u| u.one_click()),
                    ),
                    ("Feedback-ID", feedback_id.is_some()),
                ];
                headers.extend(present.iter().filter(|(_, here)| *here).map(|(h, _)| *h));
                Some(key.signer(&headers))
            }
        };
        Ok(Letterhead {
            from,
            reply_to,
            list_id: config.list_id.as_deref().map(header_safe),
            domain,
            unsubscribe,
            feedback_id,
            dkim,
            nonce: format!("{:016x}", fastrand::u64(..)),
            counter: AtomicU64::new(0),
        })
    }

    /// A new unique Message-ID, `<nonce.counter.random@domain>`.
    pub fn message_id(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("<{}.{n}.{:08x}@{}>", self.nonce, fastrand::u32(..), self.domain)
    }

    /// Builds the message for one member.
    pub fn build(&self, r: &Recipient, content: &Rendered, message_id: String) -> Result<Message> {
        let address: lettre::Address = r.email.as_str().parse().context("invalid recipient address")?;
        let name = r.display_name().map(|n| header_safe(&n)).filter(|n| !n.is_empty());
        // The envelope is the From and To headers, given here so lettre need not parse them
        // back out of the headers it just wrote (a tenth of the time to build a message).
        let envelope = Envelope::new(Some(self.from.email.clone()), vec![address.clone()])?;
        let to = Mailbox::new(name, address);
        let mut b = Message::builder()
            .envelope(envelope)
            .from(self.from.clone())
            .to(to)
            .subject(content.subject.clone())
            .message_id(Some(message_id))
            .date_now();
        if let Some(r) = &self.reply_to {
            b = b.reply_to(r.clone());
        }
        if let Some(id) = &self.list_id {
            b = b.raw_header(HeaderValue::new(HeaderName::new_from_ascii_str("List-Id"), id.clone()));
        }
        if let Some(u) = &self.unsubscribe {
            b = b.raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe"),
                u.header(&r.email),
            ));
            if u.one_click() {
                b = b.raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                    "List-Unsubscribe=One-Click".into(),
                ));
            }
        }
        if let Some(f) = &self.feedback_id {
            b = b.raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("Feedback-ID"),
                f.clone(),
            ));
        }
        let body = MultiPart::alternative()
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(text_body(&content.text)),
            )
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(text_body(&content.html)),
            );
        let mut message = b.multipart(body).context("cannot build the message")?;
        if let Some(dkim) = &self.dkim {
            dkim.sign(&mut message).context("cannot DKIM-sign the message")?;
        }
        Ok(message)
    }
}

/// Parses `Name <address>` or a bare address, refusing header-breaking characters.
pub fn mailbox(s: &str) -> Result<Mailbox> {
    if s.chars().any(|c| c.is_control()) {
        bail!("it contains a line break or control character");
    }
    let m: Mailbox = s.trim().parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    Email::parse(m.email.as_ref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::list::Columns;

    fn letterhead(settings: &str) -> Letterhead {
        let n = Newsletter::parse("---\nsubject: Hi\n---\nHello.\n", Path::new("n.md")).unwrap();
        let config = Config::parse(settings, Path::new("bulletin.toml")).unwrap();
        Letterhead::new(&n, &config, None).unwrap()
    }

    fn member(email: &str, name: &str) -> Recipient {
        Recipient {
            email: Email::parse(email).unwrap(),
            columns: Arc::new(Columns {
                path: PathBuf::from("members.csv"),
                names: vec!["email".into(), "name".into()],
                email: 0,
            }),
            line: 2,
            row: 1,
            values: vec![email.into(), name.into()],
        }
    }

    #[test]
    fn experiment() {
        let l = letterhead("from = \"News <news@example.org>\"\n");
        let word = "x".repeat(20_000);
        let r = member("ana@example.org", &format!("Ana {word}"));
        let content = Rendered {
            subject: format!("S {word} é"),
            html: word.clone(),
            text: word.clone(),
        };
        let m = l.build(&r, &content, l.message_id()).unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        for line in raw.split("\r\n") {
            if line.len() > 120 {
                println!("{}: {}", line.len(), &line[..100]);
            }
        }
        println!("{}", &raw[..2000]);
    }
}
