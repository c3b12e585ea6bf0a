//! Amazon SES notifications that arrive as mail: an SNS topic with an email subscription
//! delivers each bounce or complaint notification as a text message whose body is the
//! notification's JSON (protocol `email`), or SNS's envelope around it with the notification
//! as the string `Message` (protocol `email-json`). SES's own feedback forwarding sends
//! RFC 3464 DSNs and RFC 5965 reports instead, which the rest of the classifier reads.
//!
//! Only a body that *is* such a notification counts: JSON from its first character, with
//! `notificationType` (or `eventType`, for configuration-set events) `Bounce` or `Complaint`
//! and a `mail` object. Clues come from the fields SES defines: the recipients it names, the
//! original `Message-ID` (`mail.commonHeaders.messageId`) and the envelope sender
//! (`mail.source`), where a VERP token shows up.

use serde_json::Value;

use super::{Class, Clues, strip_angle};

/// The class of an SES notification in `body`, with its clues; `None` when `body` is not one.
pub(super) fn notification(body: &str, clues: &mut Clues) -> Option<Class> {
    let body = body.trim_start();
    if !body.starts_with('{') {
        return None;
    }
    // The first JSON value; SNS appends an unsubscribe footer after it.
    let outer: Value = serde_json::Deserializer::from_str(body)
        .into_iter::<Value>()
        .next()?
        .ok()?;
    let n = match outer.get("Message").and_then(Value::as_str) {
        Some(inner) if outer.get("Type").and_then(Value::as_str) == Some("Notification") => {
            serde_json::from_str::<Value>(inner).ok()?
        }
        _ => outer,
    };
    let kind = n
        .get("notificationType")
        .or_else(|| n.get("eventType"))
        .and_then(Value::as_str)?;
    let mail = n.get("mail").filter(|m| m.is_object())?;
    let (class, recipients) = match kind {
        "Bounce" => {
            let b = n.get("bounce")?;
            let kind = b.get("bounceType").and_then(Value::as_str).unwrap_or("");
            let sub = b.get("bounceSubType").and_then(Value::as_str).unwrap_or("");
            let first = b.pointer("/bouncedRecipients/0");
            let field = |k: &str| first.and_then(|r| r.get(k)).and_then(Value::as_str).unwrap_or("");
            clues.detail = format!("SES {kind} {sub} {} {}", field("status"), field("diagnosticCode"))
                .trim()
                .to_owned();
            // Permanent: General, NoEmail, Suppressed, OnAccountSuppressionList — SES will
            // not deliver to the address again. Transient and Undetermined: try again later.
            let class = if kind == "Permanent" { Class::Hard } else { Class::Soft };
            (class, b.get("bouncedRecipients"))
        }
        "Complaint" => {
            let c = n.get("complaint")?;
            let feedback = c.get("complaintFeedbackType").and_then(Value::as_str).unwrap_or("");
            clues.detail = format!("SES complaint {feedback}").trim().to_owned();
            // SES reports a complaint without a feedback type as a complaint too.
            let class = if feedback.is_empty() || feedback == "abuse" {
                Class::Complaint
            } else {
                Class::Other
            };
            (class, c.get("complainedRecipients"))
        }
        _ => return None,
    };
    for r in recipients.and_then(Value::as_array).into_iter().flatten() {
        if let Some(a) = r.get("emailAddress").and_then(Value::as_str) {
            clues.recipients.push(strip_angle(a).to_lowercase());
        }
    }
    if let Some(id) = mail.pointer("/commonHeaders/messageId").and_then(Value::as_str) {
        let id = id.trim();
        if id.starts_with('<') && id.ends_with('>') {
            clues.message_ids.push(id.to_owned());
        }
    }
    if let Some(source) = mail.get("source").and_then(Value::as_str) {
        clues.delivered_to.push(strip_angle(source).to_lowercase());
    }
    Some(class)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_body_that_is_a_notification_counts() {
        let mut clues = Clues::default();
        for body in [
            "Hello {\"notificationType\":\"Bounce\"}",
            "{\"notificationType\":\"Bounce\",\"bounce\":{\"bounceType\":\"Permanent\"}}",
            "{\"notificationType\":\"Delivery\",\"mail\":{}}",
            "{not json",
            "{\"Type\":\"Notification\",\"Message\":\"plain text\"}",
        ] {
            assert!(notification(body, &mut clues).is_none(), "{body}");
        }
        let transient = "{\"eventType\":\"Bounce\",\"bounce\":{\"bounceType\":\"Transient\",\
                         \"bounceSubType\":\"MailboxFull\",\"bouncedRecipients\":[{\"emailAddress\":\"A@Example.net\"}]},\
                         \"mail\":{\"source\":\"bounces@example.org\"}}\n--\nfooter";
        assert_eq!(notification(transient, &mut clues), Some(Class::Soft));
        assert_eq!(clues.recipients, ["a@example.net"]);
        assert!(clues.detail.contains("MailboxFull"), "{}", clues.detail);
    }
}
