//! `bulletin.toml`: the organisation's settings, read once and validated.
//!
//! Precedence is flag > environment > file > default; flags carry their `BULLETIN_…` variable
//! through clap, so by the time values reach here the first two are already merged and this
//! module only fills in what they left unset. Unknown keys are errors: a typo must not silently
//! drop a setting.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use toml::Spanned;

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Default sender, `Name <address>`; a newsletter's front matter may override it.
    pub from: Option<String>,
    /// Default Reply-To.
    pub reply_to: Option<String>,
    /// RFC 2919 List-Id, `Name <label.example.org>`.
    pub list_id: Option<String>,
    /// Feedback-ID header (Gmail's feedback loop), e.g. `newsletter:hvmrn`; the campaign id is
    /// put in front. Never personal data.
    pub feedback_id: Option<String>,
    /// Put before the subject of a `send --test`, so staff can tell a test from the real
    /// one (default `"[Test] "`; `""` for none).
    pub test_subject_prefix: Option<String>,
    /// Suppression files: their addresses are never mailed.
    #[serde(default)]
    pub suppress: Vec<PathBuf>,
    /// Let raw HTML in Markdown through (sanitised). Off: it is shown as text.
    #[serde(default)]
    pub allow_raw_html: bool,
    #[serde(default)]
    pub organisation: Organisation,
    #[serde(default)]
    pub smtp: Smtp,
    #[serde(default)]
    pub unsubscribe: Unsubscribe,
    pub dkim: Option<Dkim>,
    #[serde(default)]
    pub theme: Theme,
    #[serde(default)]
    pub social: Vec<Social>,
    #[serde(default)]
    pub archive: Archive,
    #[serde(default)]
    pub inbox: Inbox,
    /// Directory the file was found in; relative paths are resolved against it.
    #[serde(skip)]
    pub root: PathBuf,
    /// Where the settings came from, for messages.
    #[serde(skip)]
    pub source: Option<PathBuf>,
    /// The file's text, to turn a value's span into a line number.
    #[serde(skip)]
    text: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Organisation {
    pub name: Option<String>,
    /// Postal address printed in every footer (CAN-SPAM and friends require one).
    pub postal_address: Option<String>,
    pub website: Option<String>,
    /// Why the reader gets this newsletter, printed in the footer.
    pub reason: Option<String>,
    /// Language of the pages `bulletin serve` and `bulletin archive` write (BCP 47; default `en`).
    pub lang: Option<String>,
}

/// `[archive]`: the newsletter on the web (`bulletin archive`, `bulletin serve --archive`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Archive {
    /// Where the archive is published, e.g. `https://news.example.org`: messages then link
    /// "View in your browser" to their page, and `{{ web_url }}` is that page's address.
    pub base_url: Option<String>,
}

/// `[smtp]`. Each value keeps where it was written, so [`crate::settings`] can name the line
/// of a value it refuses.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smtp {
    /// `smtps://user@host:465`, `smtp://user@host:587` (STARTTLS), `smtp://127.0.0.1:2525`.
    pub url: Option<Spanned<String>>,
    /// Command whose standard output is the SMTP password.
    pub password_command: Option<String>,
    /// Rate limits such as `14/s`, `50000/day`.
    #[serde(default)]
    pub rate: Vec<Spanned<String>>,
    /// Parallel SMTP sessions.
    pub concurrency: Option<Spanned<i64>>,
    /// Seconds to wait for a server reply (default 60).
    pub timeout: Option<Spanned<f64>>,
    /// Attempts per member per run after a temporary failure, first try included (default 4).
    pub attempts: Option<Spanned<i64>>,
    /// Seconds before the first retry; doubled each time, with jitter (default 2).
    pub retry_delay: Option<Spanned<f64>>,
    /// Stop the run after this many members in a row could not be delivered (default 20).
    pub stop_after_failures: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unsubscribe {
    /// https URL template with `{{ token }}` (the member, encrypted; what `bulletin serve`
    /// reads), e.g. `https://news.example.org/unsubscribe/{{ token }}`; `{{ email }}` also works
    /// for an endpoint of your own, but puts the address in the link.
    pub url: Option<String>,
    /// Address that takes unsubscribe requests by mail.
    pub mailto: Option<String>,
    /// Command whose output is the token secret (else `BULLETIN_UNSUBSCRIBE_SECRET`).
    pub secret_command: Option<String>,
}

/// `[inbox]`: the mailbox `bulletin inbox` reads, and VERP. Resolved by
/// [`crate::inbox::settings`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inbox {
    /// `imaps://user@host:993/INBOX` (plain `imap://` only to a loopback host).
    pub imap: Option<Spanned<String>>,
    /// Command whose standard output is the IMAP password (else `BULLETIN_IMAP_PASSWORD`).
    pub password_command: Option<String>,
    /// Envelope sender base for VERP: `bounces@example.org` sends as `bounces+TOKEN@example.org`.
    pub bounce_address: Option<Spanned<String>>,
    /// Soft bounces, in distinct campaigns, before an address is suppressed (default 3).
    pub soft_limit: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dkim {
    pub domain: String,
    pub selector: String,
    pub private_key: PathBuf,
    /// More keys for the same domain, each adding its own signature to every message
    /// (`[[dkim.also]]`): an Ed25519 key beside the RSA one, or the next key while rotating.
    #[serde(default)]
    pub also: Vec<DkimKey>,
}

/// One more DKIM key: its selector and PEM file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimKey {
    pub selector: String,
    pub private_key: PathBuf,
}

impl Dkim {
    /// Every key as (selector, private key path as written): the first, then `also`.
    pub fn keys(&self) -> impl Iterator<Item = (&str, &Path)> {
        std::iter::once((self.selector.as_str(), self.private_key.as_path()))
            .chain(self.also.iter().map(|k| (k.selector.as_str(), k.private_key.as_path())))
    }
}

/// `[theme]`; a newsletter's front matter may override any key for one issue.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Theme {
    /// Colour of buttons, links and the top rule, `#rrggbb`.
    pub brand_color: Option<String>,
    /// Logo image URL shown at the top.
    pub logo: Option<String>,
    /// Logo shown instead in dark mode (Apple Mail, Outlook.com, Outlook for Mac, iOS Mail).
    pub logo_dark: Option<String>,
    pub logo_alt: Option<String>,
    pub logo_width: Option<u32>,
    pub logo_height: Option<u32>,
    /// Where the newsletter's local images are hosted (`https://example.org/news/`): local
    /// images are then linked there instead of travelling inside every message.
    pub image_base_url: Option<String>,
}

impl Theme {
    /// `self` with every key `over` sets replaced.
    pub fn merged(&self, over: &Theme) -> Theme {
        let pick = |a: &Option<String>, b: &Option<String>| b.clone().or_else(|| a.clone());
        Theme {
            brand_color: pick(&self.brand_color, &over.brand_color),
            logo: pick(&self.logo, &over.logo),
            logo_dark: pick(&self.logo_dark, &over.logo_dark),
            logo_alt: pick(&self.logo_alt, &over.logo_alt),
            logo_width: over.logo_width.or(self.logo_width),
            logo_height: over.logo_height.or(self.logo_height),
            image_base_url: pick(&self.image_base_url, &over.image_base_url),
        }
    }

    /// The brand colour, with a sober default.
    pub fn brand_color(&self) -> &str {
        self.brand_color.as_deref().unwrap_or("#2b5797")
    }
}

/// Is `color` something other than `#rrggbb` or `#rgb`?
pub fn bad_colour(color: &str) -> bool {
    let hex = color.strip_prefix('#').unwrap_or("");
    !(hex.len() == 6 || hex.len() == 3) || !hex.chars().all(|c| c.is_ascii_hexdigit())
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Social {
    pub name: String,
    pub url: String,
}

/// File name looked for in the current directory and the folders above it.
pub const FILE_NAME: &str = "bulletin.toml";

impl Config {
    /// Loads `explicit`, else the nearest `bulletin.toml` in this folder or above, else
    /// defaults (for the commands that can do without one).
    pub fn load(explicit: Option<&Path>) -> Result<Config> {
        match explicit.map(Path::to_owned).or_else(find) {
            Some(path) => Config::read(&path),
            None => Ok(Config {
                root: PathBuf::from("."),
                ..Config::default()
            }),
        }
    }

    /// Like [`Config::load`], for the commands that build messages (check, preview, send):
    /// without a settings file there is no sender, footer or relay, and saying "no sender"
    /// would send a newcomer looking in the wrong place.
    pub fn require(explicit: Option<&Path>) -> Result<Config> {
        match explicit.map(Path::to_owned).or_else(find) {
            Some(path) => Config::read(&path),
            None => {
                let here = std::env::current_dir().map_or_else(|_| ".".to_owned(), |d| d.display().to_string());
                bail!(
                    "no {FILE_NAME} in {here} or any folder above it: this is not a bulletin project yet.\n  \
                     Make one here with `bulletin init` (it asks for your organisation, sender and relay),\n  \
                     or run bulletin from your project's folder, or name the file with --config FILE"
                )
            }
        }
    }

    fn read(path: &Path) -> Result<Config> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read settings file {}", path.display()))?;
        let mut config = Config::parse(&text, path)?;
        config.root = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned();
        config.source = Some(path.to_owned());
        Ok(config)
    }

    /// Parses settings text; errors name the file and line.
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let mut config: Config = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(1, |s| line_of(text, s.start));
            anyhow::anyhow!("{}:{line}: {}", path.display(), e.message())
        })?;
        if let Some(color) = &config.theme.brand_color
            && bad_colour(color)
        {
            bail!(
                "{}: theme.brand_color {color:?} is not a colour: write it as \"#rrggbb\"",
                path.display()
            );
        }
        if let Some(url) = &config.archive.base_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            bail!("{}: archive.base_url {url:?} must be an https:// URL", path.display());
        }
        config.text = text.to_owned();
        Ok(config)
    }

    /// `bulletin.toml:LINE` of a value read from the file, for messages.
    pub fn at<T>(&self, value: &Spanned<T>) -> Option<(String, usize)> {
        let file = self.source.as_ref()?.display().to_string();
        Some((file, line_of(&self.text, value.span().start)))
    }

    /// Resolves a path from the file against the file's directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() || self.root == Path::new(".") {
            p.to_owned()
        } else {
            self.root.join(p)
        }
    }

    /// Suppression files, resolved.
    pub fn suppress_files(&self) -> Vec<PathBuf> {
        self.suppress.iter().map(|p| self.resolve(p)).collect()
    }

    /// The language of bulletin's own pages.
    pub fn lang(&self) -> &str {
        self.organisation.lang.as_deref().unwrap_or("en")
    }

    /// The brand colour, with a sober default.
    pub fn brand_color(&self) -> &str {
        self.theme.brand_color()
    }
}

/// The nearest `bulletin.toml`: in the current directory, else in the closest folder above it
/// (as git and cargo find theirs), so commands work from `newsletters/` too. A file in the
/// current directory is named relatively, keeping messages and resolved paths short.
fn find() -> Option<PathBuf> {
    let here = PathBuf::from(FILE_NAME);
    if here.is_file() {
        return Some(here);
    }
    let cwd = std::env::current_dir().ok()?;
    cwd.ancestors().skip(1).map(|d| d.join(FILE_NAME)).find(|p| p.is_file())
}

/// 1-based line of byte offset `at` in `text`.
pub fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_errors_naming_the_line() {
        let err = Config::parse(
            "from = \"a <a@example.org>\"\n[smtp]\nurll = \"x\"\n",
            Path::new("b.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("b.toml:3:"), "{err}");
        assert!(err.contains("urll"), "{err}");
    }

    #[test]
    fn bad_colour_is_an_error() {
        let err = Config::parse("[theme]\nbrand_color = \"red\"\n", Path::new("b.toml")).unwrap_err();
        assert!(err.to_string().contains("#rrggbb"));
    }
}
