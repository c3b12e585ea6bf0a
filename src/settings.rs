//! Delivery settings resolved once and checked in one place: a command-line flag (which clap
//! also fills from its `BULLETIN_…` variable) over `bulletin.toml` over the default. `send`
//! delivers with them; `check` reports the same problems, each with the line of
//! `bulletin.toml` (or the flag) it comes from, so a file `check` passes is one `send` takes.

use std::time::Duration;

use anyhow::Result;
use clap::Args;
use toml::Spanned;

use crate::config::Config;
use crate::diagnostic::Diagnostics;
use crate::secret::Secret;
use crate::send::Policy;
use crate::send::rate::Rate;
use crate::send::smtp::Relay;

/// Most parallel SMTP sessions a run may open.
pub(crate) const MAX_CONCURRENCY: usize = 64;

/// How to reach the relay, as flags (`send`, `check`); over `[smtp]` in bulletin.toml.
#[derive(Debug, Default, Args)]
pub struct RelayArgs {
    /// SMTP relay URL, e.g. smtps://user@smtp.example.org:465
    #[arg(long, value_name = "URL", env = "BULLETIN_SMTP_URL")]
    pub smtp: Option<String>,
    /// Rate limit, e.g. 14/s, 600/min, 2000/h, 50000/day; repeat for several windows
    #[arg(long, value_name = "N/UNIT", env = "BULLETIN_RATE", value_delimiter = ',', value_parser = parse_rate_flag)]
    pub rate: Vec<Rate>,
    /// Parallel SMTP sessions (1 to 64)
    #[arg(long, value_name = "N", env = "BULLETIN_CONCURRENCY", value_parser = parse_concurrency_flag)]
    pub concurrency: Option<usize>,
}

/// Everything about how to deliver, resolved.
#[derive(Debug)]
pub(crate) struct Settings {
    /// The rate limits, as they will be enforced (none: no limit).
    pub rates: Vec<Rate>,
    pub policy: Policy,
    /// The relay, without its password (that is read only when sending), or `None` when no
    /// URL is set anywhere.
    relay: Option<Relay>,
    /// The URL as given, to mask it in messages.
    url: Option<String>,
    password_command: Option<String>,
}

impl Settings {
    /// Resolves the flags over `config`. Every problem goes into `diags` (with the line of
    /// `bulletin.toml` when it comes from there); the settings returned then hold the default
    /// in that place, so one run reports every problem at once.
    pub(crate) fn resolve(config: &Config, flags: &RelayArgs, diags: &mut Diagnostics) -> Settings {
        let smtp = &config.smtp;
        let mut file = FileValues { config, diags };
        let rates = if flags.rate.is_empty() {
            smtp.rate.iter().filter_map(|r| file.rate(r)).collect()
        } else {
            flags.rate.clone()
        };
        let concurrency = match flags.concurrency {
            Some(n) => n,
            None => file.whole("concurrency", smtp.concurrency.as_ref(), 1, 1, MAX_CONCURRENCY),
        };
        let policy = Policy {
            concurrency,
            attempts: file.whole("attempts", smtp.attempts.as_ref(), 4, 1, u32::MAX as usize) as u32,
            retry_delay: file.seconds("retry_delay", smtp.retry_delay.as_ref(), 2.0, true),
            stop_after_failures: file.whole(
                "stop_after_failures",
                smtp.stop_after_failures.as_ref(),
                20,
                1,
                usize::MAX,
            ),
        };
        let timeout = file.seconds("timeout", smtp.timeout.as_ref(), 60.0, false);
        let (url, relay) = match (&flags.smtp, &smtp.url) {
            (Some(u), _) => (Some(u.clone()), file.relay(u, None, timeout)),
            (None, Some(u)) => (Some(u.get_ref().clone()), file.relay(u.get_ref(), Some(u), timeout)),
            (None, None) => (None, None),
        };
        Settings {
            rates,
            policy,
            relay,
            url,
            password_command: smtp.password_command.clone(),
        }
    }

    /// What `check` can say about the relay without sending: a URL that names a user while no
    /// password is configured anywhere.
    pub(crate) fn review(&self, config: &Config, diags: &mut Diagnostics) {
        if self.relay.as_ref().is_some_and(Relay::has_user)
            && self.password_command.is_none()
            && std::env::var_os("BULLETIN_SMTP_PASSWORD").is_none()
        {
            let at = config.source.as_ref().map(|p| p.display().to_string());
            diags.warning(
                at.as_deref().map(|f| (f, 0)),
                "the SMTP URL names a user but no password is configured: send will need \
                 BULLETIN_SMTP_PASSWORD or [smtp] password_command",
            );
        }
    }

    /// The relay's host, when a URL is set (no password needed).
    pub(crate) fn relay_host(&self) -> Option<String> {
        self.relay.as_ref().map(|r| r.host.clone())
    }

    /// The rates as the plan shows them.
    pub(crate) fn rate_text(&self) -> String {
        if self.rates.is_empty() {
            "no limit".to_owned()
        } else {
            self.rates.iter().map(Rate::to_string).collect::<Vec<_>>().join(" and ")
        }
    }

    /// The relay, with its password read now (from `BULLETIN_SMTP_PASSWORD` or
    /// `password_command`).
    pub(crate) fn relay(&self) -> Result<Relay> {
        let Some(relay) = self.relay.clone() else {
            anyhow::bail!("no SMTP relay: set [smtp] url in bulletin.toml or pass --smtp URL");
        };
        let password = Secret::from_env_or_command(
            "BULLETIN_SMTP_PASSWORD",
            self.password_command.as_deref(),
            "SMTP password",
        )?;
        let url = self.url.as_deref().unwrap_or_default();
        relay
            .with_password(password)
            .map_err(|e| anyhow::anyhow!("{}", without_userinfo(&format!("{e:#}"), url)))
    }
}

/// `message` with the user part of `url` (what comes before its last `@`) masked wherever the
/// message quotes the URL: a mistyped URL can hold a password, and `Relay::parse` quotes a URL
/// it cannot parse as it is.
fn without_userinfo(message: &str, url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return message.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return message.to_owned();
    };
    if userinfo.is_empty() {
        return message.to_owned();
    }
    let masked = format!("{scheme}://…@{host}");
    let mut out = message
        .replace(&format!("{url:?}"), &format!("{masked:?}"))
        .replace(url, &masked);
    if let Some((_, password)) = userinfo.split_once(':')
        && !password.is_empty()
    {
        let quoted = format!("{password:?}");
        out = out.replace(password, "…").replace(&quoted[1..quoted.len() - 1], "…");
    }
    out
}

/// Values from `[smtp]`, each checked, its problems reported with its line.
struct FileValues<'a> {
    config: &'a Config,
    diags: &'a mut Diagnostics,
}

impl FileValues<'_> {
    fn error<T>(&mut self, value: Option<&Spanned<T>>, message: String) {
        let at = value.and_then(|v| self.config.at(v));
        self.diags.error(at.as_ref().map(|(f, l)| (f.as_str(), *l)), message);
    }

    fn rate(&mut self, r: &Spanned<String>) -> Option<Rate> {
        Rate::parse(r.get_ref())
            .map_err(|e| self.error(Some(r), format!("[smtp] rate: {e:#}")))
            .ok()
    }

    /// A whole number from `min` to `max`, or `default` when unset (or wrong).
    fn whole(&mut self, key: &str, value: Option<&Spanned<i64>>, default: usize, min: usize, max: usize) -> usize {
        let Some(v) = value else { return default };
        match usize::try_from(*v.get_ref()) {
            Ok(n) if (min..=max).contains(&n) => n,
            _ => {
                let range = if max == usize::MAX || max == u32::MAX as usize {
                    format!("a whole number from {min} up")
                } else {
                    format!("{min} to {max}")
                };
                self.error(Some(v), format!("[smtp] {key} = {}: use {range}", v.get_ref()));
                default
            }
        }
    }

    /// A number of seconds up to a day (0 allowed when `zero_ok`), or `default`.
    fn seconds(&mut self, key: &str, value: Option<&Spanned<f64>>, default: f64, zero_ok: bool) -> Duration {
        let Some(v) = value else {
            return Duration::from_secs_f64(default);
        };
        let s = *v.get_ref();
        let least = if zero_ok { 0.0 } else { f64::MIN_POSITIVE };
        if s.is_finite() && s >= least && s <= 86_400.0 {
            return Duration::from_secs_f64(s);
        }
        let range = if zero_ok {
            "0 to 86400"
        } else {
            "more than 0, up to 86400"
        };
        self.error(Some(v), format!("[smtp] {key} = {s}: use a number of seconds, {range}"));
        Duration::from_secs_f64(default)
    }

    /// The relay of `url` (from the file when `at` is set, else from the flag), checked.
    fn relay(&mut self, url: &str, at: Option<&Spanned<String>>, timeout: Duration) -> Option<Relay> {
        Relay::parse_url(url, timeout)
            .map_err(|e| {
                let from = if at.is_some() {
                    "[smtp] url"
                } else {
                    "--smtp (or BULLETIN_SMTP_URL)"
                };
                let message = format!("{from}: {}", without_userinfo(&format!("{e:#}"), url));
                self.error(at, message);
            })
            .ok()
    }
}

/// Parses a `--rate` value (clap's `value_parser`): a bad rate is a usage error.
pub(crate) fn parse_rate_flag(s: &str) -> Result<Rate, String> {
    Rate::parse(s).map_err(|e| format!("{e:#}"))
}

/// Parses a `--concurrency` value (clap's `value_parser`).
pub(crate) fn parse_concurrency_flag(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_CONCURRENCY).contains(&n) => Ok(n),
        _ => Err(format!("use a whole number of sessions from 1 to {MAX_CONCURRENCY}")),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn resolve(toml: &str, flags: &RelayArgs) -> (Settings, Vec<String>) {
        let mut config = Config::parse(toml, Path::new("bulletin.toml")).unwrap();
        config.source = Some("bulletin.toml".into());
        let mut diags = Diagnostics::default();
        let settings = Settings::resolve(&config, flags, &mut diags);
        (settings, diags.items.iter().map(ToString::to_string).collect())
    }

    fn none() -> RelayArgs {
        RelayArgs::default()
    }

    #[test]
    fn the_file_fills_what_flags_leave_unset_and_defaults_the_rest() {
        let (s, errors) = resolve(
            "[smtp]\nurl = \"smtp://127.0.0.1:2525\"\nrate = [\"14/s\", \"50000/day\"]\nconcurrency = 4\n",
            &none(),
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(s.rate_text(), "14/s and 50000/day");
        assert_eq!(s.policy.concurrency, 4);
        assert_eq!(s.policy.attempts, 4);
        assert_eq!(s.policy.stop_after_failures, 20);
        assert_eq!(s.policy.retry_delay, Duration::from_secs(2));
        assert_eq!(s.relay().unwrap().port, 2525);
    }

    #[test]
    fn flags_win_over_the_file() {
        let flags = RelayArgs {
            smtp: Some("smtp://127.0.0.1:2600".into()),
            rate: vec![Rate::parse("2/min").unwrap()],
            concurrency: Some(8),
        };
        let (s, errors) = resolve(
            "[smtp]\nurl = \"smtp://127.0.0.1:2525\"\nrate = [\"14/s\"]\nconcurrency = 4\n",
            &flags,
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!((s.rate_text().as_str(), s.policy.concurrency), ("2/min", 8));
        assert_eq!(s.relay().unwrap().port, 2600);
    }

    #[test]
    fn every_bad_value_is_reported_with_its_line() {
        let (_, errors) = resolve(
            "from = \"a <a@example.org>\"\n[smtp]\nurl = \"ftp://x\"\nrate = [\"14/fortnight\"]\n\
             concurrency = 500\nattempts = 0\ntimeout = 0\nretry_delay = -1\nstop_after_failures = 0\n",
            &none(),
        );
        let expect = [
            ("bulletin.toml:3:", "scheme `ftp`"),
            ("bulletin.toml:4:", "14/fortnight"),
            ("bulletin.toml:5:", "1 to 64"),
            ("bulletin.toml:6:", "attempts"),
            ("bulletin.toml:7:", "timeout"),
            ("bulletin.toml:8:", "retry_delay"),
            ("bulletin.toml:9:", "stop_after_failures"),
        ];
        assert_eq!(errors.len(), expect.len(), "{errors:#?}");
        for (at, what) in expect {
            assert!(
                errors.iter().any(|e| e.contains(at) && e.contains(what)),
                "no error at {at} about {what}: {errors:#?}"
            );
        }
    }

    #[test]
    fn a_bad_url_from_a_flag_is_named_and_its_password_masked() {
        let flags = RelayArgs {
            smtp: Some("ftp://u:hunter2@x".into()),
            ..RelayArgs::default()
        };
        let (_, errors) = resolve("", &flags);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("--smtp"), "{errors:?}");
        assert!(!errors[0].contains("hunter2"), "{errors:?}");
    }

    #[test]
    fn flag_values_are_checked_where_they_are_parsed() {
        assert!(parse_rate_flag("fast").is_err());
        assert_eq!(parse_rate_flag("14/s").unwrap().count, 14);
        assert!(parse_concurrency_flag("0").is_err());
        assert!(parse_concurrency_flag("65").is_err());
        assert_eq!(parse_concurrency_flag("64"), Ok(64));
    }
}
