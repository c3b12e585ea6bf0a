//! What a message in the bounce mailbox is: a hard or soft bounce, a spam complaint, an
//! unsubscribe request, an auto-reply, or anything else — and the clues it carries to the
//! member and campaign it is about. Classifying never looks at the journal: matching the clues
//! is [`super::matching`]'s job, so nothing here can act on a guess.
//!
//! Shapes understood: RFC 3464 delivery status notifications (Postfix, Gmail, Microsoft 365,
//! Amazon SES all send these), RFC 5965 feedback reports (Yahoo, Microsoft, Amazon SES), the
//! plain-text bounces of Exim, qmail and Yahoo ("Failure Notice"), which carry no
//! machine-readable status, and Amazon SES notifications mailed by SNS ([`ses`]).

mod ses;

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

use crate::reply::is_address_failure;

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// The address does not exist (or is disabled): a permanent failure about the mailbox.
    Hard,
    /// A temporary failure, a full mailbox, or a permanent failure that says nothing about the
    /// address (spam block, message too big).
    Soft,
    /// A spam complaint (ARF `Feedback-Type: abuse`).
    Complaint,
    /// A member asking by mail to be removed.
    Unsubscribe,
    /// A vacation or out-of-office reply.
    AutoReply,
    /// Anything else: a person's reply, a delivery success notice, a newsletter.
    Other,
}

impl Class {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Class::Hard => "hard bounce",
            Class::Soft => "soft bounce",
            Class::Complaint => "complaint",
            Class::Unsubscribe => "unsubscribe",
            Class::AutoReply => "auto-reply",
            Class::Other => "other",
        }
    }
}

/// What a message says about whom it concerns, each clue from a place that format defines.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Clues {
    /// Addresses the message was delivered to (`To`, `Delivered-To`, `X-Original-To`,
    /// `Envelope-To`): where a VERP token shows up.
    pub delivered_to: Vec<String>,
    /// Message-IDs of the original message: from the returned message or headers, the ARF
    /// report, `In-Reply-To` and `References`.
    pub message_ids: Vec<String>,
    /// Failed recipients as the report names them: DSN `Final-Recipient` /
    /// `Original-Recipient`, ARF `Original-Rcpt-To`, the recipient lines of the plain-text
    /// bounce formats, the returned headers' `To`.
    pub recipients: Vec<String>,
    /// The sender (for an unsubscribe request: who asks).
    pub from: Option<String>,
    /// Candidate unsubscribe tokens from the subject and body.
    pub tokens: Vec<String>,
    /// The status and diagnostic, for the summary.
    pub detail: String,
}

/// A classified message.
#[derive(Debug, Clone)]
pub(crate) struct Classified {
    pub class: Class,
    pub clues: Clues,
    /// The message's own Message-ID, if it has one.
    pub message_id: Option<String>,
}

/// Classifies `raw`. `None` when it is not a mail message at all (no headers).
pub(crate) fn classify(raw: &[u8], unsubscribe_mailto: Option<&str>) -> Option<Classified> {
    let msg = MessageParser::default().parse(raw)?;
    if msg.headers().is_empty() {
        return None;
    }
    let mut clues = Clues {
        from: msg
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .map(str::to_lowercase),
        ..Clues::default()
    };
    for name in ["Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To"] {
        for v in msg.header_values(name) {
            if let Some(t) = v.as_text() {
                clues.delivered_to.push(strip_angle(t).to_lowercase());
            }
        }
    }
    for a in msg.to().into_iter().flat_map(|a| a.iter()) {
        if let Some(a) = a.address() {
            clues.delivered_to.push(a.to_lowercase());
        }
    }
    returned_headers(&msg, &mut clues);
    for v in [msg.in_reply_to(), msg.references()] {
        push_ids(v, &mut clues.message_ids);
    }
    let class = report(&msg, &mut clues)
        .or_else(|| ses::notification(&msg.body_text(0).unwrap_or_default(), &mut clues))
        .or_else(|| plain_bounce(&msg, &mut clues))
        .or_else(|| auto_reply(&msg).then_some(Class::AutoReply))
        .or_else(|| unsubscribe(&msg, unsubscribe_mailto, &mut clues))
        .unwrap_or(Class::Other);
    dedup(&mut clues.message_ids);
    dedup(&mut clues.recipients);
    dedup(&mut clues.delivered_to);
    Some(Classified {
        class,
        clues,
        message_id: msg.message_id().map(|m| format!("<{m}>")),
    })
}

/// A `multipart/report`: a DSN or a feedback report.
fn report(msg: &Message, clues: &mut Clues) -> Option<Class> {
    let ct = msg.root_part().content_type()?;
    if !(ct.ctype().eq_ignore_ascii_case("multipart") && ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case("report")))
    {
        return None;
    }
    match ct.attribute("report-type").map(str::to_ascii_lowercase).as_deref() {
        Some("feedback-report") => Some(feedback(msg, clues)),
        Some("delivery-status") => Some(delivery_status(msg, clues)),
        _ => None,
    }
}

/// RFC 5965, through mail-auth's parser.
fn feedback(msg: &Message, clues: &mut Clues) -> Class {
    let Ok(f) = mail_auth::report::Feedback::parse_rfc5322(msg.raw_message()) else {
        return Class::Other;
    };
    if let Some(r) = f.original_rcpt_to() {
        clues.recipients.push(strip_angle(r).to_lowercase());
    }
    if let Some(m) = f.original_mail_from() {
        clues.delivered_to.push(strip_angle(m).to_lowercase());
    }
    clues.detail = format!("Feedback-Type: {:?}", f.feedback_type());
    match f.feedback_type() {
        mail_auth::report::FeedbackType::Abuse => Class::Complaint,
        _ => Class::Other,
    }
}

/// RFC 3464: the `message/delivery-status` part, one group of fields per recipient.
fn delivery_status(msg: &Message, clues: &mut Clues) -> Class {
    let Some(part) = msg.parts.iter().find(|p| {
        p.content_type().is_some_and(|ct| {
            ct.ctype().eq_ignore_ascii_case("message")
                && ct.subtype().is_some_and(|s| {
                    s.eq_ignore_ascii_case("delivery-status") || s.eq_ignore_ascii_case("global-delivery-status")
                })
        })
    }) else {
        return Class::Other;
    };
    let text = String::from_utf8_lossy(part.contents());
    let mut class = Class::Other;
    for group in fields(&text).split(|f| f.0.is_empty()) {
        let get = |name: &str| {
            group
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let Some(action) = get("Action").map(str::to_ascii_lowercase) else {
            continue;
        };
        for name in ["Original-Recipient", "Final-Recipient"] {
            if let Some(r) = get(name) {
                // `rfc822; ana@example.org`
                let address = r.split_once(';').map_or(r, |(_, a)| a);
                clues.recipients.push(strip_angle(address.trim()).to_lowercase());
            }
        }
        let status = get("Status").unwrap_or("");
        let diagnostic = get("Diagnostic-Code").unwrap_or("");
        let this = match action.trim() {
            "failed" if status.starts_with('5') => {
                if is_address_failure(&format!("{status} {diagnostic}")) {
                    Class::Hard
                } else {
                    Class::Soft
                }
            }
            "failed" | "delayed" => Class::Soft,
            _ => Class::Other,
        };
        if rank(this) > rank(class) {
            class = this;
            clues.detail = format!("{action} {status} {diagnostic}").trim().to_owned();
        }
    }
    class
}

fn rank(c: Class) -> u8 {
    match c {
        Class::Hard => 2,
        Class::Soft => 1,
        _ => 0,
    }
}

/// Header-like `Name: value` lines with continuation lines unfolded; a blank line is an entry
/// with an empty name (a DSN's groups are separated by blank lines).
fn fields(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            out.push((String::new(), String::new()));
        } else if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut().filter(|l| !l.0.is_empty()) {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            out.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    out
}

/// The headers of the original message, returned as `message/rfc822`, `text/rfc822-headers`,
/// or (in the plain-text formats) quoted in the body after the bounce text.
fn returned_headers(msg: &Message, clues: &mut Clues) {
    for part in msg.parts.iter().skip(1) {
        match &part.body {
            PartType::Message(m) => {
                if let Some(id) = m.message_id() {
                    clues.message_ids.push(format!("<{id}>"));
                }
                for a in m.to().into_iter().flat_map(|a| a.iter()) {
                    if let Some(a) = a.address() {
                        clues.recipients.push(a.to_lowercase());
                    }
                }
            }
            PartType::Text(t)
                if part.content_type().is_some_and(|ct| {
                    ct.ctype().eq_ignore_ascii_case("text")
                        && ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case("rfc822-headers"))
                }) =>
            {
                quoted_ids(t, clues);
            }
            _ => {}
        }
    }
}

/// `Message-ID:` lines quoted in a body (the returned headers of a plain-text bounce).
fn quoted_ids(text: &str, clues: &mut Clues) {
    for (k, v) in fields(text) {
        if k.eq_ignore_ascii_case("Message-ID") && v.starts_with('<') && v.ends_with('>') {
            clues.message_ids.push(v);
        }
    }
}

/// The plain-text bounce formats (no `multipart/report`): recognised by their fixed sentences,
/// recipients taken only from the lines those formats reserve for them.
fn plain_bounce(msg: &Message, clues: &mut Clues) -> Option<Class> {
    let subject = msg.subject().unwrap_or("").to_ascii_lowercase();
    let body = msg.body_text(0).unwrap_or_default();
    let lower = body.to_ascii_lowercase();
    let from = clues.from.clone().unwrap_or_default();
    let daemon =
        from.starts_with("mailer-daemon@") || from.starts_with("postmaster@") || from.starts_with("mail-daemon@");
    let delay = subject.contains("delayed") || subject.starts_with("warning:") || subject.contains("delivery delay");
    let shape = if lower.contains("this message was created automatically by mail delivery software") {
        Shape::Exim
    } else if lower.contains("this is the qmail-send program") || subject.contains("failure notice") {
        Shape::Qmail
    } else if daemon
        && [
            "undeliverable",
            "undelivered mail",
            "delivery status notification",
            "returned mail",
            "delivery failure",
            "mail delivery failed",
        ]
        .iter()
        .any(|s| subject.contains(s))
    {
        Shape::Generic
    } else {
        return None;
    };
    shape.recipients(&body, &mut clues.recipients);
    quoted_ids(&body, clues);
    let verdict = first_paragraphs(&lower);
    clues.detail = verdict
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    let soft_words = [
        "mailbox full",
        "over quota",
        "quota exceeded",
        "mailbox is full",
        "greylist",
        "try again later",
        "temporar",
    ];
    Some(if delay || soft_words.iter().any(|w| verdict.contains(w)) {
        Class::Soft
    } else if is_address_failure(verdict)
        || verdict.contains("no mailbox here")
        || verdict.contains("address not found")
    {
        Class::Hard
    } else {
        Class::Soft
    })
}

/// The bounce text before the returned message (so a quoted newsletter cannot sway the verdict).
fn first_paragraphs(lower: &str) -> &str {
    let cut = [
        "------ this is a copy of the message",
        "--- below this line is a copy of the message",
        "original message",
        "------ the body of the message",
        "message-id:",
    ]
    .iter()
    .filter_map(|m| lower.find(m))
    .min()
    .unwrap_or(lower.len());
    &lower[..cut]
}

#[derive(Clone, Copy)]
enum Shape {
    Exim,
    Qmail,
    Generic,
}

impl Shape {
    fn recipients(self, body: &str, out: &mut Vec<String>) {
        match self {
            // "  ana@example.org\n    host mx.example.org [..]: 550 ..." after the first
            // paragraph: an indented line that is just an address.
            Shape::Exim => {
                let after = [
                    "address(es) failed:",
                    "has not yet been delivered is:",
                    "have not yet been delivered are:",
                ]
                .iter()
                .find_map(|m| body.split_once(m));
                if let Some((_, rest)) = after {
                    for line in rest
                        .lines()
                        .skip_while(|l| l.trim().is_empty())
                        .take_while(|l| !l.trim().is_empty())
                    {
                        if line.starts_with("  ") && !line.starts_with("    ") {
                            push_address(line.trim(), out);
                        }
                    }
                }
            }
            // "<ana@example.org>:" at the start of a line, before the copy of the message.
            Shape::Qmail => {
                let end = body.find("--- Below this line").unwrap_or(body.len());
                for line in body[..end].lines() {
                    let l = line.trim();
                    if l.starts_with('<') && l.ends_with(">:") {
                        push_address(&l[1..l.len() - 2], out);
                    }
                }
            }
            // Microsoft's and Google's text parts restate the DSN; without one, nothing is
            // taken from free text.
            Shape::Generic => {}
        }
    }
}

fn push_address(s: &str, out: &mut Vec<String>) {
    let s = strip_angle(s);
    if s.contains('@') && !s.contains(char::is_whitespace) {
        out.push(s.to_lowercase());
    }
}

/// RFC 3834 and the headers and subjects vacation responders use.
fn auto_reply(msg: &Message) -> bool {
    let header = |n: &str| msg.header_raw(n).map(|v| v.trim().to_ascii_lowercase());
    if header("Auto-Submitted").is_some_and(|v| v.starts_with("auto-replied")) {
        return true;
    }
    if header("X-Autoreply").is_some()
        || header("X-Autorespond").is_some()
        || header("X-Auto-Response-Suppress").is_some_and(|v| v.contains("oof"))
    {
        return true;
    }
    if header("Precedence").is_some_and(|v| v == "auto_reply") {
        return true;
    }
    let subject = msg.subject().unwrap_or("").to_lowercase();
    [
        "out of office",
        "automatic reply",
        "auto reply",
        "autoreply",
        "auto-reply",
        "away from the office",
        "on vacation",
        "abwesenheitsnotiz",
    ]
    .iter()
    .any(|s| subject.contains(s))
        || subject.starts_with("auto:")
}

/// Mail to the `[unsubscribe] mailto` address, or carrying an unsubscribe token.
fn unsubscribe(msg: &Message, mailto: Option<&str>, clues: &mut Clues) -> Option<Class> {
    let subject = msg.subject().unwrap_or("");
    let body = msg.body_text(0).unwrap_or_default();
    for text in [subject, &body] {
        tokens(text, &mut clues.tokens);
    }
    let to_mailto = mailto.is_some_and(|m| clues.delivered_to.iter().any(|d| d.eq_ignore_ascii_case(m)));
    (to_mailto || !clues.tokens.is_empty()).then_some(Class::Unsubscribe)
}

/// Words after `unsubscribe-` or `token=`: the forms the `mailto:` and https links carry.
fn tokens(text: &str, out: &mut Vec<String>) {
    let lower = text.to_ascii_lowercase();
    for marker in ["unsubscribe-", "token="] {
        let mut from = 0;
        while let Some(i) = lower[from..].find(marker) {
            let start = from + i + marker.len();
            let len = text[start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '=')))
                .unwrap_or(text.len() - start);
            if len >= 16 {
                out.push(text[start..start + len].to_owned());
            }
            from = start;
        }
    }
}

fn push_ids(v: &mail_parser::HeaderValue, out: &mut Vec<String>) {
    if let Some(t) = v.as_text() {
        out.push(format!("<{t}>"));
    } else if let Some(list) = v.as_text_list() {
        out.extend(list.iter().map(|t| format!("<{t}>")));
    }
}

fn strip_angle(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix('<').and_then(|s| s.strip_suffix('>')).unwrap_or(s)
}

fn dedup(v: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    v.retain(|x| !x.is_empty() && seen.insert(x.clone()));
}

#[cfg(test)]
mod tests;
