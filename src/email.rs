//! `Email`: a subscriber address, validated and normalised once.
//!
//! The normalised key (trimmed, lower-cased) is what dedupe, suppression and the journal
//! compare; the address as written is what goes into `To`, with an internationalised domain
//! in its ASCII form (IDNA, `xn--…`) as SMTP and most receivers need it ([`Email::smtp`]).

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

    /// The address as it goes out, in the envelope and in `To`: as written, but a non-ASCII
    /// domain in its IDNA form (`ana@bücher.example` → `ana@xn--bcher-kva.example`).
    pub fn smtp(&self) -> std::borrow::Cow<'_, str> {
        smtp_form(&self.address).expect("checked when parsed")
    }

    /// A non-ASCII part before `@` can only travel through a relay that offers SMTPUTF8
    /// (RFC 6531): no ASCII form exists for it.
    pub fn needs_smtputf8(&self) -> bool {
        !self.address.is_ascii()
            && self
                .address
                .rsplit_once('@')
                .is_some_and(|(local, _)| !local.is_ascii())
    }
}

/// `address` with its domain in IDNA form (unchanged when the domain is ASCII), or why the
/// domain has none.
pub fn smtp_form(address: &str) -> Result<std::borrow::Cow<'_, str>, &'static str> {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Err("the address has no `@`");
    };
    if domain.is_ascii() {
        return Ok(address.into());
    }
    match idna::domain_to_ascii_strict(domain) {
        Ok(ascii) => Ok(format!("{local}@{ascii}").into()),
        Err(_) => Err("the domain is not a valid internationalised domain name (IDNA)"),
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
    // lettre must accept it too, as it goes out, or it could not be sent.
    let smtp = smtp_form(address)?;
    // RFC 5321 4.5.3.1.3: a path is at most 256 octets with its angle brackets.
    if smtp.len() > 254 {
        return Err("the address is longer than 254 octets, more than SMTP allows");
    }
    if smtp.parse::<lettre::Address>().is_err() {
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
            "ana@bücher.example",
            "josé@example.org",
            "用户@例子.广告",
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
            // No IDNA form: a disallowed code point, a label over 63 octets once encoded.
            "a@ex\u{2488}ample.org",
            &format!("a@{}.example", "ü".repeat(60)),
            // Over 254 octets.
            &format!("a@{}example", format!("{}.", "b".repeat(60)).repeat(5)),
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn a_non_ascii_domain_has_an_idna_form() {
        let e = Email::parse("Ana@Bücher.example").unwrap();
        assert_eq!(e.smtp(), "Ana@xn--bcher-kva.example");
        assert_eq!(e.as_str(), "Ana@Bücher.example");
        assert!(!e.needs_smtputf8());
        let ascii = Email::parse("ana@example.org").unwrap();
        assert!(matches!(ascii.smtp(), std::borrow::Cow::Borrowed("ana@example.org")));
        let e = Email::parse("用户@例子.广告").unwrap();
        // As Python computes it: "例子.广告".encode("idna").
        assert_eq!(e.smtp(), "用户@xn--fsqu00a.xn--4rr70v");
        assert!(e.needs_smtputf8());
        assert!(Email::parse("josé@example.org").unwrap().needs_smtputf8());
    }
}
