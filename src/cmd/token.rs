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
        TokenCommand::Make { email } => {
            let Some(token) = u.token(&parse(email)?) else {
                bail!("no secret: export BULLETIN_UNSUBSCRIBE_SECRET or set [unsubscribe] secret_command");
            };
            println!("{token}");
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
