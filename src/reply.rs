//! What an SMTP reply says about the address it answered: whether a permanent failure means
//! the mailbox does not exist (worth suppressing) or something else (policy, spam, size) that
//! says nothing about the address.

/// Does this permanent reply say the mailbox does not exist (rather than, say, a policy or
/// spam rejection, which says nothing about the address)?
pub(crate) fn is_address_failure(reply: &str) -> bool {
    let r = reply.to_ascii_lowercase();
    if !r.contains("5") || r.contains("5.7.") {
        return false;
    }
    ["5.1.1", "5.1.0", "5.1.2", "5.1.3", "5.1.6", "5.1.10", "5.2.1"]
        .iter()
        .any(|c| r.contains(c))
        || [
            "no such user",
            "user unknown",
            "unknown user",
            "does not exist",
            "no such mailbox",
            "mailbox unavailable",
            "invalid recipient",
            "address rejected",
            "account disabled",
        ]
        .iter()
        .any(|p| r.contains(p))
}

/// The reply with every address in it (`<a@b>`, `a@b`) taken out, to compare the words a
/// relay said to different members.
pub(crate) fn without_addresses(reply: &str) -> String {
    reply
        .split_whitespace()
        .filter(|w| !w.contains('@'))
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::is_address_failure;

    #[test]
    fn only_dead_mailboxes_count_as_address_failures() {
        assert!(is_address_failure(
            "permanent error (550): 5.1.1 <x@example.org>: Recipient address rejected: User unknown"
        ));
        assert!(is_address_failure("permanent error (550): no such user here"));
        assert!(!is_address_failure(
            "permanent error (554): 5.7.1 Message rejected as spam"
        ));
        assert!(!is_address_failure("permanent error (552): 5.3.4 Message too big"));
    }
}
