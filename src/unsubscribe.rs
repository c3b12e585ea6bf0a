//! Unsubscribe links and headers, and the per-member token they carry.
//!
//! The token is the member's address encrypted and authenticated under keys derived from the
//! unsubscribe secret, so `bulletin serve` learns who asks from the token alone, without a
//! database, while the link reveals nothing and cannot be forged. It is a deterministic AEAD in
//! the SIV manner (the same member always gets the same token, so a link in an old message keeps
//! working):
//!
//! ```text
//! k_nonce, k_aead = HKDF-SHA256(salt "bulletin unsubscribe v2", secret)
//! plain = address, or address ‖ "\n" ‖ campaign (what `send` puts in its messages)
//! nonce = HMAC-SHA256(k_nonce, list ‖ "\n" ‖ plain)[..12]
//! token = base64url(nonce ‖ AES-256-GCM(k_aead, nonce, aad = list, plain))
//! ```
//!
//! The nonce is a MAC of the plaintext, so it repeats only for the same address (and campaign)
//! on the same list, where repeating is the point. The campaign, sealed with the address, lets
//! `serve` fill the suppression file's `campaign` column; a token without one (`bulletin
//! unsubscribe-token make`, messages sent before) opens just the same. Tokens of earlier versions (`HMAC(secret, list ‖
//! address)`, 43 characters) still pass [`Unsubscribe::verify`] but cannot be opened.

use anyhow::{Result, bail};
use base64::Engine;
use hmac::{Hmac, Mac};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use ring::{aead, hkdf};
use sha2::Sha256;

use crate::config::Config;
use crate::email::Email;
use crate::secret::Secret;

/// Characters left as they are in a percent-encoded value (RFC 3986 unreserved).
pub const URL_VALUE: &percent_encoding::AsciiSet =
    &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// How members unsubscribe, resolved from `[unsubscribe]`.
#[derive(Debug)]
pub struct Unsubscribe {
    url: Option<String>,
    mailto: Option<String>,
    secret: Option<Secret>,
    keys: Option<Keys>,
    list: String,
    /// The campaign sealed into the tokens this value makes (see [`Unsubscribe::for_campaign`]).
    campaign: Option<String>,
}

/// The keys derived from the secret.
struct Keys {
    nonce: ring::hmac::Key,
    aead: aead::LessSafeKey,
    /// Signs the values of `serve`'s forms.
    form: ring::hmac::Key,
    /// Makes the bearer token of `serve`'s `/suppressions` (what `suppress --pull` sends).
    pull: ring::hmac::Key,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("(redacted)")
    }
}

impl Keys {
    fn derive(secret: &Secret) -> Keys {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"bulletin unsubscribe v2").extract(secret.expose().as_bytes());
        let nonce: ring::hmac::Key = prk
            .expand(&[b"nonce"], ring::hmac::HMAC_SHA256)
            .expect("32 bytes is a valid HKDF length")
            .into();
        let aead: aead::UnboundKey = prk
            .expand(&[b"aes-256-gcm"], &aead::AES_256_GCM)
            .expect("32 bytes is a valid HKDF length")
            .into();
        let form: ring::hmac::Key = prk
            .expand(&[b"form"], ring::hmac::HMAC_SHA256)
            .expect("32 bytes is a valid HKDF length")
            .into();
        let pull: ring::hmac::Key = prk
            .expand(&[b"pull"], ring::hmac::HMAC_SHA256)
            .expect("32 bytes is a valid HKDF length")
            .into();
        Keys {
            nonce,
            aead: aead::LessSafeKey::new(aead),
            form,
            pull,
        }
    }

    fn seal(&self, list: &str, email: &Email, campaign: Option<&str>) -> String {
        let mut plain = email.key().as_bytes().to_vec();
        if let Some(c) = campaign {
            plain.push(b'\n');
            plain.extend_from_slice(c.as_bytes());
        }
        let mut input = Vec::with_capacity(list.len() + 1 + plain.len());
        input.extend_from_slice(list.as_bytes());
        input.push(b'\n');
        input.extend_from_slice(&plain);
        let tag = ring::hmac::sign(&self.nonce, &input);
        let mut nonce = [0u8; aead::NONCE_LEN];
        nonce.copy_from_slice(&tag.as_ref()[..aead::NONCE_LEN]);
        let mut out = plain;
        self.aead
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(list.as_bytes()),
                &mut out,
            )
            .expect("an address is far below AES-GCM's length limit");
        let mut token = nonce.to_vec();
        token.extend_from_slice(&out);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token)
    }

    fn open(&self, list: &str, token: &str) -> Option<(Email, Option<String>)> {
        // An address is at most 254 bytes and a campaign id 200: refuse anything longer
        // before decoding it.
        if token.len() > 1024 {
            return None;
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).ok()?;
        if bytes.len() < aead::NONCE_LEN + aead::AES_256_GCM.tag_len() + 3 {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(aead::NONCE_LEN);
        let nonce = aead::Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut sealed = sealed.to_vec();
        let plain = self
            .aead
            .open_in_place(nonce, aead::Aad::from(list.as_bytes()), &mut sealed)
            .ok()?;
        let plain = std::str::from_utf8(plain).ok()?;
        let (address, campaign) = match plain.split_once('\n') {
            Some((a, c)) => (a, Some(c.to_owned())),
            None => (plain, None),
        };
        let email = Email::parse(address).ok()?;
        // The nonce must be the one this address gets: a token is valid in one form only.
        (self.seal(list, &email, campaign.as_deref()) == token).then_some((email, campaign))
    }
}

impl Unsubscribe {
    /// `None` when nothing is configured.
    pub fn from_config(config: &Config) -> Result<Option<Unsubscribe>> {
        let u = &config.unsubscribe;
        if u.url.is_none() && u.mailto.is_none() {
            return Ok(None);
        }
        let secret = Secret::from_env_or_command(
            "BULLETIN_UNSUBSCRIBE_SECRET",
            u.secret_command.as_deref(),
            "unsubscribe secret",
        )?;
        if let Some(url) = &u.url {
            if !url.starts_with("https://") && !url.starts_with("http://") {
                bail!("[unsubscribe] url {url:?} must be an https:// URL");
            }
            if needs_token(url) && secret.is_none() {
                bail!(
                    "[unsubscribe] url uses {{{{ token }}}} but no secret is set: \
                     export BULLETIN_UNSUBSCRIBE_SECRET or set [unsubscribe] secret_command"
                );
            }
        }
        if let Some(m) = &u.mailto
            && Email::parse(m).is_err()
        {
            bail!("[unsubscribe] mailto {m:?} is not an email address");
        }
        let list = config
            .list_id
            .clone()
            .or_else(|| config.from.clone())
            .unwrap_or_default();
        Ok(Some(Unsubscribe::new(u.url.clone(), u.mailto.clone(), secret, list)))
    }

    /// Settings as they are, for `serve` and tests.
    pub fn new(url: Option<String>, mailto: Option<String>, secret: Option<Secret>, list: String) -> Unsubscribe {
        Unsubscribe {
            url,
            mailto,
            keys: secret.as_ref().map(Keys::derive),
            secret,
            list,
            campaign: None,
        }
    }

    /// Seals `campaign` into the tokens of the links and headers made from now on, so an
    /// unsubscribe through them names the campaign it came from.
    #[must_use]
    pub fn for_campaign(mut self, campaign: &str) -> Unsubscribe {
        self.campaign = Some(campaign.to_owned());
        self
    }

    /// Whether a secret is configured (tokens can be made and opened).
    pub fn has_secret(&self) -> bool {
        self.keys.is_some()
    }

    /// The member's token (with the campaign set by [`Unsubscribe::for_campaign`], if any),
    /// when a secret is configured.
    pub fn token(&self, email: &Email) -> Option<String> {
        self.keys
            .as_ref()
            .map(|k| k.seal(&self.list, email, self.campaign.as_deref()))
    }

    /// The member a token names, when it is genuine (made with this secret for this list).
    pub fn open(&self, token: &str) -> Option<Email> {
        self.open_with_campaign(token).map(|(email, _)| email)
    }

    /// [`Unsubscribe::open`], with the campaign the token was made for (none for tokens made
    /// by `bulletin unsubscribe-token make` or before campaigns went into tokens).
    pub fn open_with_campaign(&self, token: &str) -> Option<(Email, Option<String>)> {
        self.keys.as_ref()?.open(&self.list, token.trim())
    }

    /// The bearer token of `serve`'s `/suppressions`: a MAC of the list under its own key
    /// derived from the secret, so both sides of `suppress --pull` know it without sharing
    /// anything more, and it reveals nothing of the secret or the tokens.
    pub fn pull_token(&self) -> Option<String> {
        let key = &self.keys.as_ref()?.pull;
        Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ring::hmac::sign(key, self.list.as_bytes())))
    }

    /// Checks a [`Unsubscribe::pull_token`], in constant time.
    pub fn check_pull_token(&self, given: &str) -> bool {
        let Some(keys) = &self.keys else { return false };
        let Ok(tag) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(given.trim()) else {
            return false;
        };
        ring::hmac::verify(&keys.pull, self.list.as_bytes(), &tag).is_ok()
    }

    /// Does `token` belong to `email`? Tokens of the earlier HMAC-only format are still
    /// accepted (compared in constant time): messages sent before the change carry them.
    pub fn verify(&self, token: &str, email: &Email) -> Result<bool> {
        let Some(secret) = &self.secret else {
            bail!("no secret: export BULLETIN_UNSUBSCRIBE_SECRET or set [unsubscribe] secret_command");
        };
        if let Some(member) = self.open(token) {
            return Ok(member.key() == email.key());
        }
        let Ok(given) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.trim()) else {
            return Ok(false);
        };
        Ok(given.len() == 32 && legacy_mac(secret, &self.list, email).verify_slice(&given).is_ok())
    }

    /// A MAC over `parts` under a key derived from the secret (for `serve`'s undo form), or
    /// `None` without a secret.
    pub fn sign(&self, parts: &[&str]) -> Option<String> {
        let key = &self.keys.as_ref()?.form;
        Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ring::hmac::sign(key, &joined(parts))))
    }

    /// Checks a [`Unsubscribe::sign`] value, in constant time.
    pub fn check_signature(&self, parts: &[&str], signature: &str) -> bool {
        let Some(keys) = &self.keys else { return false };
        let Ok(tag) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        ring::hmac::verify(&keys.form, &joined(parts), &tag).is_ok()
    }

    /// A token `serve` answers like a member's one-click POST while recording nothing, for
    /// `bulletin doctor` to try the endpoint with: `probe.` and a MAC of the list under the
    /// secret. No member's token contains a `.`, and only the secret's holder can make one.
    pub fn probe_token(&self) -> Option<String> {
        self.sign(&[PROBE, &self.list]).map(|mac| format!("probe.{mac}"))
    }

    /// Is `token` this secret's and this list's [`Unsubscribe::probe_token`]?
    pub fn is_probe(&self, token: &str) -> bool {
        token
            .trim()
            .strip_prefix("probe.")
            .is_some_and(|mac| self.check_signature(&[PROBE, &self.list], mac))
    }

    /// The configured URL carrying the probe token, when it carries a token at all.
    pub fn probe_url(&self) -> Option<String> {
        let url = self.url.as_deref().filter(|u| needs_token(u))?;
        let token = self.probe_token()?;
        let mut out = url.replace("{{ token }}", &token).replace("{{token}}", &token);
        for form in ["{{ email }}", "{{email}}"] {
            out = out.replace(form, "probe%40bulletin.invalid");
        }
        Some(out)
    }

    /// The link shown in the footer and given to templates as `unsubscribe_url`.
    pub fn link(&self, email: &Email) -> String {
        match &self.url {
            Some(url) => self.https(url, email),
            None => self.mailto_link(email).unwrap_or_default(),
        }
    }

    fn https(&self, url: &str, email: &Email) -> String {
        let token = self.token(email).unwrap_or_default();
        let address = utf8_percent_encode(email.key(), URL_VALUE).to_string();
        let mut out = url.to_owned();
        for (name, value) in [("token", &token), ("email", &address)] {
            for form in [format!("{{{{ {name} }}}}"), format!("{{{{{name}}}}}")] {
                out = out.replace(&form, value);
            }
        }
        out
    }

    fn mailto_link(&self, email: &Email) -> Option<String> {
        let to = self.mailto.as_ref()?;
        Some(match self.token(email) {
            Some(t) => format!("mailto:{to}?subject=unsubscribe-{t}"),
            None => format!("mailto:{to}?subject=unsubscribe"),
        })
    }

    /// The `List-Unsubscribe` header value.
    pub fn header(&self, email: &Email) -> String {
        let mut parts = Vec::new();
        if let Some(url) = &self.url {
            parts.push(format!("<{}>", self.https(url, email)));
        }
        if let Some(m) = self.mailto_link(email) {
            parts.push(format!("<{m}>"));
        }
        parts.join(", ")
    }

    /// One-click unsubscribe (RFC 8058) needs an https URL.
    pub fn one_click(&self) -> bool {
        self.url.as_deref().is_some_and(|u| u.starts_with("https://"))
    }
}

/// `parts`, each ended by a newline (no part holds one), so no two lists join alike.
fn joined(parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(p.as_bytes());
        out.push(b'\n');
    }
    out
}

/// What a probe token's MAC covers, with the list.
const PROBE: &str = "bulletin doctor probe";

fn needs_token(url: &str) -> bool {
    url.contains("{{ token }}") || url.contains("{{token}}")
}

/// The token for `email` on `list` (no campaign).
pub fn token(secret: &Secret, list: &str, email: &Email) -> String {
    Keys::derive(secret).seal(list, email, None)
}

/// The MAC that was the whole token before addresses were encrypted into it.
fn legacy_mac(secret: &Secret, list: &str, email: &Email) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key length");
    mac.update(list.as_bytes());
    mac.update(b"\n");
    mac.update(email.key().as_bytes());
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unsubscribe(secret: &str, list: &str) -> Unsubscribe {
        Unsubscribe::new(None, None, Some(Secret::new(secret.into())), list.into())
    }

    #[test]
    fn token_depends_on_secret_list_and_address_not_case() {
        let s = Secret::new("k".into());
        let a = Email::parse("Ana@Example.org").unwrap();
        let b = Email::parse("ana@example.org").unwrap();
        assert_eq!(token(&s, "L", &a), token(&s, "L", &b));
        assert_ne!(token(&s, "L", &a), token(&s, "M", &a));
        assert_ne!(token(&Secret::new("j".into()), "L", &a), token(&s, "L", &a));
        // 12 bytes of nonce, the 15-byte address, a 16-byte tag.
        assert_eq!(token(&s, "L", &a).len(), (4 * (12 + 15 + 16_usize)).div_ceil(3));
    }

    #[test]
    fn a_token_opens_to_its_member_and_hides_the_address() {
        let u = unsubscribe("k", "L");
        let a = Email::parse("ana@example.org").unwrap();
        let t = u.token(&a).unwrap();
        assert!(!t.contains("ana") && !t.contains("example"));
        assert_eq!(u.open(&t).unwrap().key(), "ana@example.org");
        assert!(u.verify(&t, &a).unwrap());
        assert!(!u.verify(&t, &Email::parse("bob@example.org").unwrap()).unwrap());
        // Another secret or another list cannot open it.
        assert!(unsubscribe("j", "L").open(&t).is_none());
        assert!(unsubscribe("k", "M").open(&t).is_none());
    }

    #[test]
    fn every_changed_character_is_refused() {
        let u = unsubscribe("k", "L");
        let t = u.token(&Email::parse("ana@example.org").unwrap()).unwrap();
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for i in 0..t.len() {
            for c in alphabet.chars().step_by(7) {
                let mut bad = t.clone();
                bad.replace_range(i..=i, &c.to_string());
                if bad != t {
                    assert!(u.open(&bad).is_none(), "{bad}");
                }
            }
        }
        for bad in [
            "",
            "x",
            &t[..t.len() - 1],
            &format!("{t}A"),
            &"A".repeat(600),
            "ana@example.org",
        ] {
            assert!(u.open(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_campaign_token_carries_its_campaign_and_a_plain_one_still_opens() {
        let u = unsubscribe("k", "L");
        let a = Email::parse("ana@example.org").unwrap();
        let plain = u.token(&a).unwrap();
        let u = u.for_campaign("2026-12-news");
        let t = u.token(&a).unwrap();
        assert_ne!(t, plain);
        assert!(!t.contains("2026") && !t.contains("news"));
        let (member, campaign) = u.open_with_campaign(&t).unwrap();
        assert_eq!(
            (member.key(), campaign.as_deref()),
            ("ana@example.org", Some("2026-12-news"))
        );
        assert_eq!(u.open_with_campaign(&plain).unwrap().1, None);
        assert!(u.verify(&t, &a).unwrap() && u.verify(&plain, &a).unwrap());
        // Another campaign's token is another token; a changed one opens to nothing.
        let other = unsubscribe("k", "L").for_campaign("2027-01").token(&a).unwrap();
        assert_ne!(other, t);
        let mut bad = t.clone();
        bad.replace_range(3..4, if &t[3..4] == "A" { "B" } else { "A" });
        assert!(u.open(&bad).is_none());
    }

    #[test]
    fn the_pull_token_is_bound_to_secret_and_list() {
        let u = unsubscribe("k", "L");
        let t = u.pull_token().unwrap();
        assert!(u.check_pull_token(&t));
        assert!(!unsubscribe("j", "L").check_pull_token(&t));
        assert!(!unsubscribe("k", "M").check_pull_token(&t));
        assert!(!u.check_pull_token(""));
        assert!(!u.check_pull_token(&u.sign(&["L"]).unwrap()), "not the form key");
    }

    #[test]
    fn legacy_tokens_still_verify() {
        let s = Secret::new("k".into());
        let a = Email::parse("ana@example.org").unwrap();
        let old =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(legacy_mac(&s, "L", &a).finalize().into_bytes());
        let u = unsubscribe("k", "L");
        assert!(u.verify(&old, &a).unwrap());
        assert!(!u.verify(&old, &Email::parse("bob@example.org").unwrap()).unwrap());
        assert!(u.open(&old).is_none());
    }

    #[test]
    fn a_probe_token_is_the_secrets_and_the_lists_and_no_members() {
        let u = unsubscribe("k", "L");
        let probe = u.probe_token().unwrap();
        assert!(u.is_probe(&probe));
        assert!(u.open(&probe).is_none(), "it names no member");
        assert!(!unsubscribe("j", "L").is_probe(&probe), "another secret");
        assert!(!unsubscribe("k", "M").is_probe(&probe), "another list");
        let member = u.token(&Email::parse("ana@example.org").unwrap()).unwrap();
        assert!(!u.is_probe(&member) && !u.is_probe(&format!("probe.{member}")));
        assert!(!u.is_probe("probe.") && !u.is_probe(&probe[..probe.len() - 1]));
        let with_url = Unsubscribe::new(
            Some("https://example.org/u/{{ token }}?e={{ email }}".into()),
            None,
            Some(Secret::new("k".into())),
            "L".into(),
        );
        assert_eq!(
            with_url.probe_url().unwrap(),
            format!("https://example.org/u/{probe}?e=probe%40bulletin.invalid")
        );
    }

    #[test]
    fn signatures_bind_every_part() {
        let u = unsubscribe("k", "L");
        let sig = u.sign(&["a", "b"]).unwrap();
        assert!(u.check_signature(&["a", "b"], &sig));
        assert!(!u.check_signature(&["a", "c"], &sig));
        assert!(!u.check_signature(&["ab"], &sig));
        assert!(!unsubscribe("j", "L").check_signature(&["a", "b"], &sig));
    }
}
