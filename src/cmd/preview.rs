//! `bulletin preview`: exactly what one member will receive, as `email.html`, `email.txt`
//! and the raw MIME message `email.eml`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use super::{Project, private_dir, private_file};
use crate::cli::PreviewArgs;
use crate::email::Email;

pub fn run(config: Option<&Path>, args: &PreviewArgs) -> Result<ExitCode> {
    if args.lists.lists.is_empty() {
        bail!("preview needs a list to take the member from: add --list lists/test.csv");
    }
    let p = Project::load(config, &args.newsletter, &args.lists.lists)?;
    let diags = p.diags.into_result()?;
    let (Some(compiled), Some(letterhead)) = (&p.compiled, &p.letterhead) else {
        bail!("the newsletter did not compile; run `bulletin check` for details");
    };
    let recipient = if let Some(to) = &args.to {
        let key = Email::parse(to).map_err(|e| anyhow::anyhow!("--to {to:?}: {e}"))?;
        match p.lists.recipients.iter().find(|r| r.email.key() == key.key()) {
            Some(r) => r,
            None => match p.lists.skipped.iter().find(|s| s.key.as_deref() == Some(key.key())) {
                Some(s) => bail!("{to} will not receive this newsletter: {s}"),
                None => bail!("{to} is in none of the lists"),
            },
        }
    } else {
        let row = args.row.unwrap_or(1);
        if row == 0 {
            bail!("--row counts from 1 (the first member)");
        }
        match p.lists.recipients.iter().find(|r| r.row == row) {
            Some(r) => r,
            None => match p.lists.skipped.iter().find(|s| s.row == row) {
                Some(s) => bail!("row {row} will not receive this newsletter: {s}"),
                None => {
                    let rows = p.lists.recipients.len() + p.lists.skipped.len();
                    bail!("--row {row}: the lists have {rows} data rows");
                }
            },
        }
    };
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
