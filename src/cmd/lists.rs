//! `bulletin lists`: the lists and the audience, surveyed before anything is written or sent.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::audience::Audience;
use crate::audience::lang::{self, Counts};
use crate::audience::survey::survey;
use crate::cli::ListsArgs;
use crate::config::Config;
use crate::list::Sources;
use crate::newsletter::Newsletter;

pub(crate) fn run(config: Option<&Path>, args: &ListsArgs) -> Result<ExitCode> {
    let config = Config::load(config)?;
    // With a newsletter: its audience, and its language versions to count.
    let newsletter = args.newsletter.as_deref().map(Newsletter::load).transpose()?;
    let versions = match &newsletter {
        Some(n) => Some(Counts::of_files(n, &lang::variants(n)?)),
        None => None,
    };
    let front = newsletter.as_ref().and_then(|n| n.front.audience.as_ref());
    let mut audience = Audience::resolve(args.lists.flags(), front, |p| config.resolve(p));
    if audience.lists.is_empty() {
        audience.lists = default_lists(&config)?;
    }
    let mut sources = Sources::open_as(&audience.lists, &config.suppress_files(), args.lists.format)?;
    if let Err(message) = audience.install(&mut sources)? {
        match newsletter.filter(|n| args.lists.segment.is_none() && n.front.audience.is_some()) {
            Some(n) => bail!("{}:{}: {message}", n.path.display(), n.line_of_key("audience")),
            None => bail!("{message}"),
        }
    }
    let s = survey(&sources, audience.segment.as_deref(), versions)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{s}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Without `--list`: every CSV and ZIP in the project's `lists/` that is not a suppression file.
fn default_lists(config: &Config) -> Result<Vec<PathBuf>> {
    let dir = config.resolve(Path::new("lists"));
    let suppress = config.suppress_files();
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| anyhow::anyhow!("no --list given and cannot read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("csv") || x.eq_ignore_ascii_case("zip"))
        })
        .filter(|p| !suppress.iter().any(|s| s == p))
        .collect();
    found.sort();
    if found.is_empty() {
        bail!("no --list given and {} holds no .csv or .zip file", dir.display());
    }
    Ok(found)
}
