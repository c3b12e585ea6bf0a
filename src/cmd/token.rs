//! `bulletin unsubscribe-token`: the same token code as the messages, for the user's own
//! unsubscribe endpoint or mail script.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::cli::TokenCommand;
use crate::config::Config;
use crate::email::Email;
use crate::unsubscribe::Unsubscribe;

pub(crate) fn run(config: Option<&Path>, command: &TokenCommand) -> Result<ExitCode> {
    let config = Config::load(config)?;
    let Some(u) = Unsubscribe::from_config(&config)? else {
        bail!("bulletin.toml has no [unsubscribe] section");
    };
    let parse = |e: &str| Email::parse(e).map_err(|why| anyhow::anyhow!("{e:?}: {why}"));
    match command {
        TokenCommand::Make { emails, campaign } => {
            let u = match campaign {
                Some(c) if c.is_empty() || c.chars().any(char::is_control) => {
                    bail!("--campaign {c:?}: a campaign id is one line of text, such as `2026-12-news`")
                }
                Some(c) => u.for_campaign(c),
                None => u,
            };
            if !u.has_secret() {
                bail!("no secret: export BULLETIN_UNSUBSCRIBE_SECRET or set [unsubscribe] secret_command");
            }
            let mut out = String::new();
            for e in emails {
                out.push_str(&u.token(&parse(e)?).unwrap_or_default());
                out.push('\n');
            }
            print!("{out}");
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::Verify { token, email } => {
            if u.verify(token, &parse(email)?)? {
                println!("valid");
                Ok(ExitCode::SUCCESS)
            } else {
                println!("invalid");
                Ok(ExitCode::from(1))
            }
        }
    }
}
