//! Unsubscribe links and headers: a per-member token, `HMAC-SHA256(secret, list id ‖ address)`
//! in base64url, so a web endpoint or a mail script can check a request without a database.

use anyhow::{Result, bail};
use base64::Engine;
use hmac::{Hmac, Mac};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
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
    list: String,
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
        Ok(Some(Unsubscribe {
            url: u.url.clone(),
            mailto: u.mailto.clone(),
            secret,
            list,
        }))
    }

    /// The member's token, when a secret is configured.
    pub fn token(&self, email: &Email) -> Option<String> {
        self.secret.as_ref().map(|s| token(s, &self.list, email))
    }

    /// Does `token` belong to `email`? Compared in constant time.
    pub fn verify(&self, token: &str, email: &Email) -> Result<bool> {
        let Some(secret) = &self.secret else {
            bail!("no secret: export BULLETIN_UNSUBSCRIBE_SECRET or set [unsubscribe] secret_command");
        };
        let Ok(given) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.trim()) else {
            return Ok(false);
        };
        Ok(mac(secret, &self.list, email).verify_slice(&given).is_ok())
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

fn needs_token(url: &str) -> bool {
    url.contains("{{ token }}") || url.contains("{{token}}")
}

/// The token for `email` on `list`.
pub fn token(secret: &Secret, list: &str, email: &Email) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac(secret, list, email).finalize().into_bytes())
}

fn mac(secret: &Secret, list: &str, email: &Email) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key length");
    mac.update(list.as_bytes());
    mac.update(b"\n");
    mac.update(email.key().as_bytes());
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_depends_on_secret_list_and_address_not_case() {
        let s = Secret::new("k".into());
        let a = Email::parse("Ana@Example.org").unwrap();
        let b = Email::parse("ana@example.org").unwrap();
        assert_eq!(token(&s, "L", &a), token(&s, "L", &b));
        assert_ne!(token(&s, "L", &a), token(&s, "M", &a));
        assert_ne!(token(&Secret::new("j".into()), "L", &a), token(&s, "L", &a));
        assert_eq!(token(&s, "L", &a).len(), 43);
    }
}
