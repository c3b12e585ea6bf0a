//! `[inbox]` resolved once: the mailbox to read, VERP, the soft-bounce limit. Each problem is
//! reported with the line of bulletin.toml it comes from.

use anyhow::Result;
use toml::Spanned;

use super::verp::Verp;
use crate::config::Config;
use crate::diagnostic::Diagnostics;
use crate::secret::Secret;

/// Soft bounces in distinct campaigns before an address is suppressed, unless configured.
pub(crate) const DEFAULT_SOFT_LIMIT: usize = 3;

/// `[inbox]`, checked.
#[derive(Debug)]
pub(crate) struct InboxSettings {
    /// The IMAP URL from the file, if any (the flag wins over it).
    pub imap: Option<String>,
    pub password_command: Option<String>,
    pub soft_limit: usize,
}

/// The `[inbox]` values; problems go to `diags`, each with its line.
pub(crate) fn resolve(config: &Config, diags: &mut Diagnostics) -> InboxSettings {
    let inbox = &config.inbox;
    let soft_limit = match &inbox.soft_limit {
        None => DEFAULT_SOFT_LIMIT,
        Some(v) => match usize::try_from(*v.get_ref()) {
            Ok(n) if n >= 1 => n,
            _ => {
                error(
                    config,
                    diags,
                    v,
                    format!("[inbox] soft_limit = {}: use a whole number from 1 up", v.get_ref()),
                );
                DEFAULT_SOFT_LIMIT
            }
        },
    };
    InboxSettings {
        imap: inbox.imap.as_ref().map(|u| u.get_ref().clone()),
        password_command: inbox.password_command.clone(),
        soft_limit,
    }
}

/// VERP from `[inbox] bounce_address`, keyed with the unsubscribe secret; `None` when no
/// bounce address is configured. Problems go to `diags`.
pub(crate) fn verp(config: &Config, diags: &mut Diagnostics) -> Option<Verp> {
    let address = config.inbox.bounce_address.as_ref()?;
    match verp_of(config, address.get_ref()) {
        Ok(v) => Some(v),
        Err(e) => {
            error(config, diags, address, format!("[inbox] bounce_address: {e:#}"));
            None
        }
    }
}

fn verp_of(config: &Config, address: &str) -> Result<Verp> {
    let secret = Secret::from_env_or_command(
        "BULLETIN_UNSUBSCRIBE_SECRET",
        config.unsubscribe.secret_command.as_deref(),
        "unsubscribe secret",
    )?
    .ok_or_else(|| {
        anyhow::anyhow!(
            "VERP tokens are signed with the unsubscribe secret: export BULLETIN_UNSUBSCRIBE_SECRET or set [unsubscribe] secret_command"
        )
    })?;
    Verp::new(address, secret)
}

fn error<T>(config: &Config, diags: &mut Diagnostics, value: &Spanned<T>, message: String) {
    let at = config.at(value);
    diags.error(at.as_ref().map(|(f, l)| (f.as_str(), *l)), message);
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn bad_values_are_reported_with_their_line_and_defaults_hold() {
        let mut config = Config::parse(
            "[inbox]\nbounce_address = \"not an address\"\nsoft_limit = 0\n",
            Path::new("bulletin.toml"),
        )
        .unwrap();
        config.source = Some("bulletin.toml".into());
        let mut diags = Diagnostics::default();
        let s = resolve(&config, &mut diags);
        assert!(verp(&config, &mut diags).is_none());
        assert_eq!(s.soft_limit, DEFAULT_SOFT_LIMIT);
        let errors: Vec<String> = diags.items.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors
                .iter()
                .any(|e| e.contains("bulletin.toml:3:") && e.contains("soft_limit")),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.contains("bulletin.toml:2:") && e.contains("bounce_address")),
            "{errors:?}"
        );
    }
}
