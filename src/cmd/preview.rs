//! `bulletin preview`: exactly what one member will receive, as `email.html`, `email.txt`
//! and the raw MIME message `email.eml`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use super::Project;
use crate::cli::PreviewArgs;
use crate::email::Email;
use crate::list::{Found, Pick};
use crate::private::{private_dir, private_file};

pub(crate) fn run(config: Option<&Path>, args: &PreviewArgs) -> Result<ExitCode> {
    if args.lists.lists.is_empty() {
        bail!("preview needs a list to take the member from: add --list lists/test.csv");
    }
    let p = Project::load(config, &args.newsletter, &args.lists.lists)?;
    let diags = p.diags.into_result()?;
    let (Some(compiled), Some(letterhead)) = (&p.compiled, &p.letterhead) else {
        bail!("the newsletter did not compile; run `bulletin check` for details");
    };
    let pick = match &args.to {
        Some(to) => Pick::Address(Email::parse(to).map_err(|e| anyhow::anyhow!("--to {to:?}: {e}"))?),
        None => match args.row.unwrap_or(1) {
            0 => bail!("--row counts from 1 (the first member)"),
            n => Pick::Row(n),
        },
    };
    let recipient = match (p.sources.find(&pick)?, pick) {
        (Found::Member(r), _) => r,
        (Found::Skipped(s), Pick::Row(n)) => bail!("row {n} will not receive this newsletter: {s}"),
        (Found::Skipped(s), Pick::Address(e)) => bail!("{e} will not receive this newsletter: {s}"),
        (Found::Absent { rows }, Pick::Row(n)) => bail!("--row {n}: the lists have {rows} data rows"),
        (Found::Absent { .. }, Pick::Address(e)) => bail!("{e} is in none of the lists"),
    };
    let recipient = &recipient;
    let rendered = compiled
        .personalise(recipient)
        .map_err(|e| anyhow::anyhow!("{}: {}", recipient.location(), e.message))?;
    let message = letterhead.build(recipient, &rendered, letterhead.message_id())?;
    private_dir(&args.out)?;
    let paths = [
        ("email.html", rendered.html.as_bytes().to_vec()),
        ("email.txt", rendered.text.into_bytes()),
        ("email.eml", message.formatted()),
    ];
    for d in &diags.items {
        eprintln!("{d}");
    }
    eprintln!("preview for {} ({})", recipient.email, recipient.location());
    for (name, bytes) in &paths {
        let path = args.out.join(name);
        private_file(&path, bytes)?;
        println!("{}", path.display());
    }
    if args.open {
        let html = args.out.join("email.html");
        let opener = if cfg!(target_os = "macos") { "open" } else { "xdg-open" };
        std::process::Command::new(opener)
            .arg(&html)
            .spawn()
            .with_context(|| format!("cannot run {opener} to open {}", html.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}
