//! VERP: each message's envelope sender is `bounces+TOKEN@example.org`, so a bounce names the
//! member and campaign it is about in the address it comes back to — whatever the bouncing
//! server wrote in its body. TOKEN is a truncated `HMAC-SHA256(unsubscribe secret, campaign ‖
//! address)` in lower-case base32: 26 characters (130 bits, of which 128 carry the MAC), which
//! survive servers that lower-case the local part, and cannot be forged without the secret.
//! Nothing is stored at send time: `inbox` recomputes the tokens of the journal's members.

use std::collections::HashMap;

use anyhow::{Result, bail};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::email::Email;
use crate::journal::{Journal, Member};
use crate::secret::Secret;

/// Length of a token.
pub(crate) const TOKEN_LEN: usize = 26;

/// The bounce address and the key tokens are made with.
pub(crate) struct Verp {
    local: String,
    domain: String,
    secret: Secret,
}

impl Verp {
    /// `bounce_address` as `[inbox] bounce_address` gives it; its local part must leave room
    /// for `+TOKEN` within the 64 characters SMTP allows.
    pub(crate) fn new(bounce_address: &str, secret: Secret) -> Result<Verp> {
        let email = Email::parse(bounce_address).map_err(|why| anyhow::anyhow!("{bounce_address:?}: {why}"))?;
        let (local, domain) = email.key().rsplit_once('@').expect("an Email has an @");
        if local.contains('+') {
            bail!("{bounce_address:?}: the local part must not contain `+` (bulletin adds +TOKEN)");
        }
        if local.len() + 1 + TOKEN_LEN > 64 {
            bail!(
                "{bounce_address:?}: the local part may be at most {} characters, so that +TOKEN fits in 64",
                63 - TOKEN_LEN
            );
        }
        Ok(Verp {
            local: local.to_owned(),
            domain: domain.to_owned(),
            secret,
        })
    }

    /// The token for `address` (the journal's lower-cased key) in `campaign`.
    pub(crate) fn token(&self, campaign: &str, address: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(self.secret.expose().as_bytes()).expect("HMAC takes any key length");
        mac.update(b"verp\n");
        mac.update(campaign.as_bytes());
        mac.update(b"\n");
        mac.update(address.to_lowercase().as_bytes());
        base32(&mac.finalize().into_bytes()[..16])
    }

    /// The envelope sender for `address` in `campaign`.
    pub(crate) fn address(&self, campaign: &str, address: &str) -> String {
        format!("{}+{}@{}", self.local, self.token(campaign, address), self.domain)
    }

    /// The token in `address` if it is one of ours (`local+TOKEN@domain`, any case).
    pub(crate) fn token_of<'a>(&self, address: &'a str) -> Option<&'a str> {
        let (local, domain) = address.trim().rsplit_once('@')?;
        let (base, token) = local.split_once('+')?;
        (base.eq_ignore_ascii_case(&self.local)
            && domain.eq_ignore_ascii_case(&self.domain)
            && token.len() == TOKEN_LEN)
            .then_some(token)
    }
}

/// Tokens of every member a message was handed to, built on first use: one HMAC per member
/// and campaign, about a microsecond each.
pub(crate) struct Index<'v> {
    verp: &'v Verp,
    tokens: Option<HashMap<String, Member>>,
}

impl<'v> Index<'v> {
    pub(crate) fn new(verp: &'v Verp) -> Index<'v> {
        Index { verp, tokens: None }
    }

    pub(crate) fn verp(&self) -> &'v Verp {
        self.verp
    }

    /// The member `token` was made for, if any, among those of `journals`.
    pub(crate) fn resolve(&mut self, journals: &[&Journal], token: &str) -> Result<Option<Member>> {
        if self.tokens.is_none() {
            let mut map = HashMap::new();
            for journal in journals {
                journal.each_handed_off(|m| {
                    map.insert(self.verp.token(&m.campaign, &m.address), m);
                })?;
            }
            self.tokens = Some(map);
        }
        let tokens = self.tokens.as_ref().expect("built above");
        Ok(tokens.get(&token.to_ascii_lowercase()).cloned())
    }
}

/// RFC 4648 base32, lower-case, no padding.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verp() -> Verp {
        Verp::new("Bounces@Example.org", Secret::new("k".into())).unwrap()
    }

    #[test]
    fn base32_matches_rfc_4648() {
        assert_eq!(base32(b"foobar"), "mzxw6ytboi");
        assert_eq!(base32(b"f"), "my");
    }

    #[test]
    fn the_address_carries_a_token_that_survives_lower_and_upper_casing() {
        let v = verp();
        let a = v.address("2026-12-news", "Ana@Example.net");
        assert!(a.starts_with("bounces+") && a.ends_with("@example.org"), "{a}");
        let local = a.split_once('@').unwrap().0;
        assert!(local.len() <= 64);
        assert_eq!(v.token("2026-12-news", "ana@example.net"), v.token_of(&a).unwrap());
        assert_eq!(
            v.token_of(&a.to_uppercase()).unwrap().to_lowercase(),
            v.token_of(&a).unwrap()
        );
        assert_ne!(
            v.token("2027-01-news", "ana@example.net"),
            v.token("2026-12-news", "ana@example.net")
        );
        let other = Verp::new("bounces@example.org", Secret::new("j".into())).unwrap();
        assert_ne!(
            other.token("c", "a@x.org"),
            v.token("c", "a@x.org"),
            "depends on the secret"
        );
        assert!(v.token_of("bounces@example.org").is_none());
        assert!(v.token_of("other+abcdefghijklmnopqrstuvwxyz@example.org").is_none());
        assert!(v.token_of("bounces+abcdefghijklmnopqrstuvwxyz@example.com").is_none());
    }

    #[test]
    fn a_bounce_address_that_leaves_no_room_is_refused() {
        let long = format!("{}@example.org", "b".repeat(38));
        assert!(Verp::new(&long, Secret::new("k".into())).is_err());
        assert!(Verp::new(&format!("{}@example.org", "b".repeat(37)), Secret::new("k".into())).is_ok());
        assert!(Verp::new("bounces+x@example.org", Secret::new("k".into())).is_err());
    }
}
