//! `Email`: a subscriber address, validated and normalised once.
//!
//! The normalised key (trimmed, lower-cased) is what dedupe, suppression and the journal
//! compare; the address as written is what goes into `To`.

use std::fmt;

/// A validated email address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Email {
    address: Box<str>,
    key: Box<str>,
}

impl Email {
    /// Validates `raw` (surrounding whitespace ignored) or says what is wrong with it.
    pub fn parse(raw: &str) -> Result<Email, &'static str> {
        let address = raw.trim();
        check(address)?;
        let key = address.to_lowercase();
        // Dedupe, suppression files and the journal store the key and read it back as an
        // address: it must be valid too. A few letters lower-case into something longer or
        // into a combining mark (`İ` → `i̇`), which would make a suppressed address unreadable.
        if key != address && check(&key).is_err() {
            return Err("the address is not valid once lower-cased (`İ` and a few other letters change)");
        }
        Ok(Email {
            key: key.into(),
            address: address.into(),
        })
    }

    /// The address as written in the list.
    pub fn as_str(&self) -> &str {
        &self.address
    }

    /// The comparison key: lower-cased, so `Ana@Example.org` and `ana@example.org` are one member.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The domain part, lower-cased.
    pub fn domain(&self) -> &str {
        self.key.rsplit_once('@').map_or("", |(_, d)| d)
    }
}

/// Says what is wrong with `address` (already trimmed), if anything.
fn check(address: &str) -> Result<(), &'static str> {
    if address.is_empty() {
        return Err("the address is empty");
    }
    if address.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("the address contains a space or control character");
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Err("the address has no `@`");
    };
    if local.contains('@') {
        return Err("the address has more than one `@`");
    }
    if local.is_empty() || local.len() > 64 {
        return Err("the part before `@` is empty or longer than 64 characters");
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("the part before `@` has a misplaced dot");
    }
    let atext = |c: char| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c);
    if !local.chars().all(atext) {
        return Err("the part before `@` contains a character addresses cannot have");
    }
    if domain.is_empty() {
        return Err("the domain after `@` is missing");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err("the domain needs a dot, as in example.org");
    }
    for label in &labels {
        if label.is_empty() || label.len() > 63 {
            return Err("the domain has an empty or over-long part");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a domain part starts or ends with `-`");
        }
        if !label.chars().all(|c| c.is_alphanumeric() || c == '-') {
            return Err("the domain contains a character domains cannot have");
        }
    }
    let tld = labels[labels.len() - 1];
    if tld.len() < 2 || tld.chars().all(|c| c.is_ascii_digit()) {
        return Err("the domain does not end in a real top-level domain");
    }
    // lettre must accept it too, or it could not be sent.
    if address.parse::<lettre::Address>().is_err() {
        return Err("the address is not valid for SMTP");
    }
    Ok(())
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.address)
    }
}

#[cfg(test)]
mod tests {
    use super::Email;

    #[test]
    fn accepts_ordinary_and_international_addresses() {
        for ok in [
            "a@example.org",
            " Ana.Lopez@Example.org ",
            "o'brien+news@mail.example.co.uk",
        ] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
        let e = Email::parse("Ana.Lopez@Example.ORG").unwrap();
        assert_eq!(e.key(), "ana.lopez@example.org");
        assert_eq!(e.as_str(), "Ana.Lopez@Example.ORG");
        assert_eq!(e.domain(), "example.org");
    }

    #[test]
    fn rejects_broken_addresses_with_a_reason() {
        for bad in [
            "jane@@example.org",
            "no-at-sign.example.org",
            "bob@",
            "space in@example.org",
            "carla@example",
            "a..b@example.org",
            "x@exa_mple.org",
            "line\nbreak@example.org",
            "",
            // Lower-cases to `i̇` (with a combining dot): the key would not read back.
            "A@EXAMPLE.İO",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
