//! `bulletin doctor`: DNS (DKIM, SPF, DMARC, MX) and the relay checked for real before a send;
//! the checks live in [`crate::doctor`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};

use super::Project;
use crate::config::Config;
use crate::diagnostic::Diagnostics;
use crate::doctor::{Inputs, run as diagnose};
use crate::list::Item;
use crate::settings::{RelayArgs, Settings};

pub(crate) fn run(
    config: Option<&Path>,
    newsletter: Option<&Path>,
    lists: &[PathBuf],
    relay: &RelayArgs,
    dns: Option<SocketAddr>,
    json: bool,
) -> Result<ExitCode> {
    let project = match newsletter {
        Some(n) => Some(Project::load(config, n, lists)?),
        None if !lists.is_empty() => bail!("--list needs a NEWSLETTER to measure its messages"),
        None => None,
    };
    let loaded;
    let cfg = match &project {
        Some(p) => &p.config,
        None => {
            loaded = Config::load(config)?;
            &loaded
        }
    };
    let mut diags = Diagnostics::default();
    let settings = Settings::resolve(cfg, relay, &mut diags);
    diags.into_result()?;
    let largest_message = match &project {
        Some(p) => largest_message(p)?,
        None => None,
    };
    let report = diagnose(&Inputs {
        config: cfg,
        settings: &settings,
        newsletter: project.as_ref().map(|p| &p.newsletter),
        largest_message,
        dns,
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The size of the largest message the lists make, built for the member whose personalised
/// parts are longest; `None` without lists.
fn largest_message(p: &Project) -> Result<Option<usize>> {
    let (Some(compiled), Some(letterhead)) = (&p.compiled, &p.letterhead) else {
        bail!("the newsletter did not compile; run `bulletin check` for details");
    };
    let mut biggest = None;
    let mut size = 0;
    for item in p.sources.stream() {
        if let Item::Member(r) = item?
            && let Ok(rendered) = compiled.personalise(&r)
        {
            let n = rendered.html.len() + rendered.text.len() + rendered.subject.len();
            if n > size {
                size = n;
                biggest = Some((r, rendered));
            }
        }
    }
    let Some((r, rendered)) = biggest else { return Ok(None) };
    let message = letterhead.build(&r, &rendered, letterhead.message_id())?;
    Ok(Some(message.formatted().len()))
}
