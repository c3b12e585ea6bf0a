//! The MIME message: `multipart/alternative` with text first and HTML last, UTF-8, one `To`,
//! a unique `Message-ID` on the sender's domain, list headers. The same builder serves
//! `preview`, dry runs and real sends.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, bail};
use lettre::Message;
use lettre::address::Envelope;
use lettre::message::header::{self, ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};

pub mod attachments;
mod encoding;
mod headers;

use crate::config::Config;
use crate::dkim::{Key, Signer};
use crate::email::Email;
use crate::list::Recipient;
use crate::newsletter::Newsletter;
use crate::render::images::Inline;
use crate::render::{Rendered, header_safe};
use crate::unsubscribe::Unsubscribe;
use attachments::Shared;
use encoding::text_body;

/// Makes a member's envelope sender.
pub type EnvelopeSender = Arc<dyn Fn(&Email) -> String + Send + Sync>;

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
    /// The envelope sender for a member (VERP, set from `[inbox] bounce_address`); the From
    /// address when unset.
    pub envelope_sender: Option<EnvelopeSender>,
    /// Put before every subject: `[Test] ` on a `send --test`, so staff tell it apart.
    pub subject_prefix: String,
    /// The DKIM signers, one per key of `[dkim]` (none when it is not configured).
    dkim: Vec<Signer>,
    /// Local images the HTML shows by `cid:`, read and encoded once for every message.
    inline: Vec<Encoded>,
    /// The newsletter's attachments, read once for every message.
    shared: Vec<Shared>,
    /// What the language variants send differently, in the order of `Compiled::variants`:
    /// [`Rendered::version`] `i` takes `variants[i - 1]`.
    variants: Vec<Version>,
    /// Random per run, so Message-IDs never repeat across runs or machines.
    nonce: String,
    counter: AtomicU64,
}

/// An embedded image with its base64 lines, encoded once for every message.
type Encoded = (Inline, Arc<[u8]>);

/// `images` with their base64 lines, encoded once for every message.
fn encoded(images: &[Inline]) -> Vec<Encoded> {
    images
        .iter()
        .map(|i| {
            let encoded = attachments::base64_lines(&i.bytes[..], i.bytes.len() as u64).expect("reading memory");
            (i.clone(), encoded.into())
        })
        .collect()
}

/// What a language variant (`NAME.es.md`) sends differently from the default.
struct Version {
    from: Mailbox,
    reply_to: Option<Mailbox>,
    inline: Vec<Encoded>,
    shared: Vec<Shared>,
}

/// The sender and the reply address of `n`: its front matter's, else the settings'.
fn sender(n: &Newsletter, config: &Config) -> Result<(Mailbox, Option<Mailbox>)> {
    let file = n.path.display();
    let from_raw = n.front.from.as_deref().or(config.from.as_deref()).with_context(|| {
        format!(
            "{file}: no sender: add `from: \"Name <news@example.org>\"` to the front matter or `from` to bulletin.toml"
        )
    })?;
    // Where a value was written: the newsletter's line, else the settings file.
    let settings = config
        .source
        .as_ref()
        .map_or_else(|| "bulletin.toml".into(), |p| p.display().to_string());
    let at = |key: &str, in_front: bool| match in_front {
        true => format!("{file}:{}", n.line_of_key(key)),
        false => settings.clone(),
    };
    let from = mailbox(from_raw).with_context(|| {
        format!(
            "{}: sender {from_raw:?} is not `Name <address>`",
            at("from", n.front.from.is_some())
        )
    })?;
    let reply_to = match n.front.reply_to.as_deref().or(config.reply_to.as_deref()) {
        Some(r) => Some(mailbox(r).with_context(|| {
            format!(
                "{}: reply_to {r:?} is not an address",
                at("reply_to", n.front.reply_to.is_some())
            )
        })?),
        None => None,
    };
    Ok((from, reply_to))
}

impl Letterhead {
    pub fn new(n: &Newsletter, config: &Config, unsubscribe: Option<Arc<Unsubscribe>>) -> Result<Letterhead> {
        Letterhead::with_variants(n, &[], config, unsubscribe)
    }

    /// As [`Letterhead::new`], with the newsletter's language variants (in the order of
    /// `Compiled::variants`, their front matter settled by `audience::lang::variants`): each
    /// may give the sender another name, another `reply_to` and its own attachments — not
    /// another sender address, which DKIM, the Message-IDs and the bounces are about.
    pub fn with_variants(
        n: &Newsletter,
        variants: &[&Newsletter],
        config: &Config,
        unsubscribe: Option<Arc<Unsubscribe>>,
    ) -> Result<Letterhead> {
        let (from, reply_to) = sender(n, config)?;
        let mut versions = Vec::new();
        for v in variants {
            let (v_from, v_reply_to) = sender(v, config)?;
            if v_from.email != from.email {
                bail!(
                    "{}:{}: from {}: a language variant may give the sender another name, not another address — write `from: \"{} <{}>\"`",
                    v.path.display(),
                    v.line_of_key("from"),
                    v_from,
                    v_from.name.as_deref().unwrap_or("Name"),
                    from.email
                );
            }
            versions.push(Version {
                from: v_from,
                reply_to: v_reply_to,
                inline: Vec::new(),
                shared: Shared::load(v)?,
            });
        }
        let any_reply_to = reply_to.is_some() || versions.iter().any(|v| v.reply_to.is_some());
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
            None => Vec::new(),
            Some(d) => {
                // Sign what a receiver judges and what a relay must not change; only headers
                // the messages carry. Content-Type is not listed, as it was not with lettre's
                // signer, which could not sign it (lettre writes it outside the message headers).
                let mut headers = vec!["From", "To", "Subject", "Date", "Message-ID", "MIME-Version"];
                let present = [
                    ("Reply-To", any_reply_to),
                    ("List-Id", config.list_id.is_some()),
                    ("List-Unsubscribe", unsubscribe.is_some()),
                    (
                        "List-Unsubscribe-Post",
                        unsubscribe.as_ref().is_some_and(|u| u.one_click()),
                    ),
                    ("Feedback-ID", feedback_id.is_some()),
                ];
                headers.extend(present.iter().filter(|(_, here)| *here).map(|(h, _)| *h));
                d.keys()
                    .map(|(selector, path)| Ok(Key::load(&config.resolve(path), &d.domain, selector)?.signer(&headers)))
                    .collect::<Result<Vec<_>>>()?
            }
        };
        Ok(Letterhead {
            from,
            reply_to,
            list_id: config.list_id.as_deref().map(header_safe),
            domain,
            unsubscribe,
            feedback_id,
            envelope_sender: None,
            dkim,
            inline: Vec::new(),
            shared: Shared::load(n)?,
            variants: versions,
            subject_prefix: String::new(),
            nonce: format!("{:016x}", fastrand::u64(..)),
            counter: AtomicU64::new(0),
        })
    }

    /// Carries `images` in every message, as `multipart/related` around the HTML part.
    pub fn embed(&mut self, images: &[Inline]) {
        self.inline = encoded(images);
    }

    /// [`Letterhead::embed`] for the variant of that [`Rendered::version`] (from 1).
    pub fn embed_variant(&mut self, version: usize, images: &[Inline]) {
        if let Some(v) = version.checked_sub(1).and_then(|i| self.variants.get_mut(i)) {
            v.inline = encoded(images);
        }
    }

    /// Sender, reply address, images and attachments of a [`Rendered::version`].
    fn version(&self, version: usize) -> (&Mailbox, Option<&Mailbox>, &[Encoded], &[Shared]) {
        match version.checked_sub(1).and_then(|i| self.variants.get(i)) {
            Some(v) => (&v.from, v.reply_to.as_ref(), &v.inline, &v.shared),
            None => (&self.from, self.reply_to.as_ref(), &self.inline, &self.shared),
        }
    }

    /// The sender of a [`Rendered::version`]: a variant may give it another name.
    pub fn from_of(&self, version: usize) -> &Mailbox {
        self.version(version).0
    }

    /// Bytes every message of a [`Rendered::version`] carries besides its text: embedded
    /// images and shared attachments.
    pub fn fixed_bytes(&self, version: usize) -> u64 {
        let (_, _, inline, shared) = self.version(version);
        let images: usize = inline.iter().map(|(i, _)| i.bytes.len()).sum();
        let files: u64 = shared.iter().map(|s| s.size).sum();
        images as u64 + files
    }

    /// A member's own attachments (list column `attachment`), checked to exist and be
    /// readable, and their total size.
    pub fn member_attachments(&self, r: &Recipient) -> Result<(Vec<std::path::PathBuf>, u64)> {
        let files = attachments::member_files(r)?;
        let bytes = attachments::member_bytes(&files)?;
        Ok((files, bytes))
    }

    /// A new unique Message-ID, `<nonce.counter.random@domain>`.
    pub fn message_id(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("<{}.{n}.{:08x}@{}>", self.nonce, fastrand::u32(..), self.domain)
    }

    /// Builds the message for one member.
    pub fn build(&self, r: &Recipient, content: &Rendered, message_id: String) -> Result<Message> {
        // A non-ASCII domain goes out in its IDNA form; a non-ASCII local part as it is (RFC
        // 6532), for the relays that offer SMTPUTF8 (the others never get it: see preflight).
        let address: lettre::Address = r.email.smtp().parse().context("invalid recipient address")?;
        let name = r.display_name().map(|n| header_safe(&n)).filter(|n| !n.is_empty());
        let (from, reply_to, inline, shared) = self.version(content.version);
        // The envelope is the From and To headers, given here so lettre need not parse them
        // back out of the headers it just wrote (a tenth of the time to build a message).
        let sender = match &self.envelope_sender {
            Some(f) => f(&r.email).parse().context("invalid envelope sender")?,
            None => from.email.clone(),
        };
        let envelope = Envelope::new(Some(sender), vec![address.clone()])?;
        let to = Mailbox::new(name, address);
        let mut b = Message::builder()
            .envelope(envelope)
            .raw_header(headers::mailbox::<header::From>(from))
            .raw_header(headers::mailbox::<header::To>(&to))
            .raw_header(headers::unstructured(
                "Subject",
                &format!("{}{}", self.subject_prefix, content.subject),
            ))
            .message_id(Some(message_id))
            .date_now();
        if let Some(r) = reply_to {
            b = b.raw_header(headers::mailbox::<header::ReplyTo>(r));
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
        let text = SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .body(text_body(&content.text));
        let html = SinglePart::builder()
            .header(ContentType::TEXT_HTML)
            .body(text_body(&content.html));
        let alternative = MultiPart::alternative().singlepart(text);
        let body = if inline.is_empty() {
            alternative.singlepart(html)
        } else {
            // RFC 2387: the HTML first, then the images it refers to by Content-ID.
            let mut related = MultiPart::related().singlepart(html);
            for (image, encoded) in inline {
                let content_type = ContentType::parse(image.content_type).context("image content type")?;
                related = related.singlepart(
                    Attachment::new_inline_with_name(image.cid.clone(), image.name.clone())
                        .body(attachments::base64_body(encoded.to_vec()), content_type),
                );
            }
            alternative.multipart(related)
        };
        let own = attachments::member_files(r).with_context(|| r.location())?;
        let body = if shared.is_empty() && own.is_empty() {
            body
        } else {
            // RFC 2046: the readable message first, the files after it.
            let mut mixed = MultiPart::mixed().multipart(body);
            for s in shared {
                mixed = mixed.singlepart(s.part());
            }
            for path in &own {
                mixed = mixed.singlepart(attachments::member_part(path).with_context(|| r.location())?);
            }
            mixed
        };
        let mut message = b.multipart(body).context("cannot build the message")?;
        Signer::sign_all(&self.dkim, &mut message).context("cannot DKIM-sign the message")?;
        Ok(message)
    }
}

/// Parses `Name <address>` or a bare address, refusing header-breaking characters, with a
/// non-ASCII domain in its IDNA form. The sender's addresses are in every message: one that
/// needs SMTPUTF8 would make every message need it, so it is refused.
pub fn mailbox(s: &str) -> Result<Mailbox> {
    if s.chars().any(char::is_control) {
        bail!("it contains a line break or control character");
    }
    let m: Mailbox = s.trim().parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let email = Email::parse(m.email.as_ref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    if email.needs_smtputf8() {
        bail!(
            "the part before `@` is not ASCII: only relays that offer SMTPUTF8 could carry it, in every message; use an ASCII address"
        );
    }
    let address = email.smtp().parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Mailbox::new(m.name, address))
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
            columns: Arc::new(Columns::plain(
                PathBuf::from("members.csv"),
                vec!["email".into(), "name".into()],
                0,
            )),
            line: 2,
            row: 1,
            values: vec![email.into(), name.into()],
        }
    }

    fn build(l: &Letterhead, r: &Recipient, subject: &str, body: &str) -> Vec<u8> {
        let content = Rendered {
            subject: subject.into(),
            html: format!("<p>{body}</p>"),
            text: body.into(),
            version: 0,
        };
        l.build(r, &content, l.message_id()).unwrap().formatted()
    }

    fn assert_lines_within_998(raw: &[u8]) {
        for (i, line) in raw.split(|&b| b == b'\n').enumerate() {
            assert!(line.len() <= 999, "line {} has {} octets", i + 1, line.len());
        }
    }

    #[test]
    fn long_values_keep_every_line_within_998_octets() {
        let l = letterhead("from = \"News <news@example.org>\"\nreply_to = \"info@example.org\"\n");
        let word = "x".repeat(20_000);
        let cell = "ab ".repeat(350_000);
        let r = member("ana@example.org", &format!("Ana {word}"));
        let raw = build(&l, &r, &format!("Read {word} now"), &format!("{word}\n{cell}\n"));
        assert_lines_within_998(&raw);
        let m = mail_parser::MessageParser::default().parse(&raw).unwrap();
        assert_eq!(m.subject(), Some(format!("Read {word} now").as_str()));
        let to = m.to().and_then(|t| t.first()).unwrap();
        assert_eq!(to.name(), Some(format!("Ana {word}").as_str()));
        assert_eq!(m.body_text(0).unwrap(), format!("{word}\r\n{cell}\r\n"));
    }

    #[test]
    fn a_non_ascii_domain_goes_out_as_idna_in_envelope_and_headers() {
        let l = letterhead("from = \"Bücher <news@bücher.example>\"\nreply_to = \"info@bücher.example\"\n");
        let r = member("ana@müller.example", "Ana");
        let content = Rendered {
            subject: "Hi".into(),
            html: "<p>Hi</p>".into(),
            text: "Hi".into(),
            version: 0,
        };
        let message = l.build(&r, &content, l.message_id()).unwrap();
        let e = message.envelope();
        assert_eq!(
            e.from().map(ToString::to_string).as_deref(),
            Some("news@xn--bcher-kva.example")
        );
        assert_eq!(e.to()[0].to_string(), "ana@xn--mller-kva.example");
        let raw = message.formatted();
        let head = String::from_utf8(raw.clone()).unwrap();
        let head = head.split("\r\n\r\n").next().unwrap();
        assert!(head.is_ascii(), "{head}");
        assert!(head.contains("To: Ana <ana@xn--mller-kva.example>"), "{head}");
        assert!(head.contains("Reply-To: info@xn--bcher-kva.example"), "{head}");
        assert!(
            head.contains("@xn--bcher-kva.example>\r\n"),
            "Message-ID on the sender's domain: {head}"
        );
    }

    #[test]
    fn a_non_ascii_local_part_is_written_raw_in_to() {
        let l = letterhead("from = \"News <news@example.org>\"\n");
        let r = member("josé@bücher.example", "José");
        let raw = build(&l, &r, "Hi", "Hi");
        let text = String::from_utf8(raw.clone()).unwrap();
        assert!(
            text.contains("To: =?utf-8?b?Sm9zw6k=?= <josé@xn--bcher-kva.example>\r\n"),
            "{text}"
        );
        let m = mail_parser::MessageParser::default().parse(&raw).unwrap();
        let to = m.to().and_then(|t| t.first()).unwrap();
        assert_eq!(to.address(), Some("josé@xn--bcher-kva.example"));
    }

    #[test]
    fn header_lines_are_folded_within_78_octets() {
        let l = letterhead(
            "from = \"The Example Network for Tenants and Workers and Neighbours <news@example.org>\"\n\
             reply_to = \"Information desk of the Example Network <info@example.org>\"\n\
             list_id = \"Members of the Example Network in all chapters <members.example.org>\"\n",
        );
        let r = member(
            "ana@example.org",
            "Ana María de los Ángeles López-García y Fernández de Córdoba",
        );
        let subject = "We celebrate — and we get to work: our agenda for the first hundred days, \
                       the assembly in March and what it means for every chapter of the network";
        let raw = build(&l, &r, subject, "Hello");
        let text = String::from_utf8(raw.clone()).unwrap();
        let head = text.split("\r\n\r\n").next().unwrap();
        for line in head.split("\r\n") {
            assert!(line.len() <= 78, "header line of {} octets: {line:?}", line.len());
        }
        let m = mail_parser::MessageParser::default().parse(&raw).unwrap();
        assert_eq!(m.subject(), Some(subject));
    }

    #[test]
    fn a_sender_that_needs_smtputf8_is_refused() {
        let err = mailbox("José <josé@example.org>").unwrap_err().to_string();
        assert!(err.contains("SMTPUTF8"), "{err}");
        assert_eq!(
            mailbox("News <news@Bücher.example>").unwrap().email.to_string(),
            "news@xn--bcher-kva.example"
        );
    }
}
