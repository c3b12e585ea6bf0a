//! `bulletin serve`: resolves the settings the server needs and hands them to
//! [`crate::serve`].

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::cli::ServeArgs;
use crate::config::Config;
use crate::serve::{Brand, Options};
use crate::unsubscribe::Unsubscribe;

pub(crate) fn run(config: Option<&Path>, args: &ServeArgs) -> Result<ExitCode> {
    let config = Config::load(config)?;
    let Some(unsubscribe) = Unsubscribe::from_config(&config)? else {
        bail!("bulletin.toml has no [unsubscribe] section: set url = \"https://…/unsubscribe/{{{{ token }}}}\"");
    };
    if !unsubscribe.has_secret() {
        bail!("no unsubscribe secret: export BULLETIN_UNSUBSCRIBE_SECRET or set [unsubscribe] secret_command");
    }
    let suppress = config.suppress_files();
    if suppress.is_empty() {
        bail!(
            "no suppression file to record unsubscribes in: add `suppress = [\"lists/unsubscribed.csv\"]` to bulletin.toml"
        );
    }
    if let Some(dir) = &args.archive
        && !dir.is_dir()
    {
        bail!(
            "--archive {}: no such folder (write it with `bulletin archive`)",
            dir.display()
        );
    }
    let o = &config.organisation;
    let brand = Brand::new(
        o.name.clone().unwrap_or_else(|| "Newsletter".to_owned()),
        config.lang().to_owned(),
        config.brand_color(),
        o.website.clone(),
    );
    crate::serve::run(Options {
        listen: args.listen,
        unsubscribe,
        suppress,
        brand,
        archive: args.archive.clone(),
        trust_proxy: args.trust_proxy,
        per_client: args.per_client,
        read_timeout: std::time::Duration::from_secs(args.read_timeout.max(1)),
    })?;
    Ok(ExitCode::SUCCESS)
}
