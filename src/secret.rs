//! `Secret`: a password or key that never prints, and where secrets come from.

use std::fmt;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// A secret value. `Debug` and `Display` print `(redacted)`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Secret {
        Secret(s)
    }

    /// The value, for the one place that must use it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reads the secret from `env_var`, else from the output of `command` (run by `sh -c`).
    /// Neither the value nor the command's output is ever put in an error message.
    pub fn from_env_or_command(env_var: &str, command: Option<&str>, what: &str) -> Result<Option<Secret>> {
        if let Ok(v) = std::env::var(env_var)
            && !v.is_empty()
        {
            return Ok(Some(Secret(v)));
        }
        let Some(cmd) = command else { return Ok(None) };
        let out = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .stdin(std::process::Stdio::null())
            .output()
            .with_context(|| format!("cannot run the {what} command"))?;
        if !out.status.success() {
            bail!(
                "the {what} command `{cmd}` failed ({}); run it yourself to see why",
                out.status
            );
        }
        let v = String::from_utf8(out.stdout)
            .map_err(|_| anyhow::anyhow!("the {what} command printed non-UTF-8 output"))?;
        let v = v.trim_end_matches(['\r', '\n']).to_owned();
        if v.is_empty() {
            bail!("the {what} command `{cmd}` printed nothing");
        }
        Ok(Some(Secret(v)))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(redacted)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(redacted)")
    }
}
