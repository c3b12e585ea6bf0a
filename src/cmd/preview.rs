//! `bulletin preview`: exactly what one member will receive, as `email.html`, `email.txt`
//! and the raw MIME message `email.eml`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Result, bail};

use super::Project;
use crate::cli::PreviewArgs;
use crate::email::Email;
use crate::list::{Columns, Found, Pick, Recipient};
use crate::private::{private_dir, private_file};

pub(crate) fn run(config: Option<&Path>, args: &PreviewArgs) -> Result<ExitCode> {
    let invented = args.lists.lists.is_empty();
    if invented && (args.row.is_some() || args.to.is_some()) {
        bail!("--row and --to pick a member from the lists: add --list lists/test.csv");
    }
    let p = Project::load(config, &args.newsletter, &args.lists.lists)?;
    let diags = p.diags.into_result()?;
    let (Some(compiled), Some(letterhead)) = (&p.compiled, &p.letterhead) else {
        bail!("the newsletter did not compile; run `bulletin check` for details");
    };
    let recipient = if invented {
        invented_member()
    } else {
        let pick = match &args.to {
            Some(to) => Pick::Address(Email::parse(to).map_err(|e| anyhow::anyhow!("--to {to:?}: {e}"))?),
            None => match args.row.unwrap_or(1) {
                0 => bail!("--row counts from 1 (the first member)"),
                n => Pick::Row(n),
            },
        };
        match (p.sources.find(&pick)?, pick) {
            (Found::Member(r), _) => r,
            (Found::Skipped(s), Pick::Row(n)) => bail!("row {n} will not receive this newsletter: {s}"),
            (Found::Skipped(s), Pick::Address(e)) => bail!("{e} will not receive this newsletter: {s}"),
            (Found::Absent { rows }, Pick::Row(n)) => bail!("--row {n}: the lists have {rows} data rows"),
            (Found::Absent { .. }, Pick::Address(e)) => bail!("{e} is in none of the lists"),
        }
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
    if invented {
        eprintln!(
            "preview for an invented member, {} (no --list given; add --list lists/test.csv to see a real one)",
            recipient.email
        );
    } else {
        eprintln!("preview for {} ({})", recipient.email, recipient.location());
    }
    for (name, bytes) in &paths {
        let path = args.out.join(name);
        private_file(&path, bytes)?;
        println!("{}", path.display());
    }
    if args.open {
        open_in_browser(&args.out.join("email.html"));
    }
    Ok(ExitCode::SUCCESS)
}

/// The member a preview without `--list` is written for: a name, so a bare `{{ first_name }}`
/// renders; any other field must come from a list.
fn invented_member() -> Recipient {
    let columns = Arc::new(Columns {
        path: PathBuf::from("(invented member)"),
        names: vec!["email".into(), "first_name".into(), "last_name".into()],
        email: 0,
    });
    Recipient {
        email: Email::parse("sam.example@example.org").expect("a valid address"),
        columns,
        line: 2,
        row: 1,
        values: vec!["sam.example@example.org".into(), "Sam".into(), "Example".into()],
    }
}

/// Opens the HTML in a browser when there is one; without one (a server, a container, an SSH
/// session) the files are written all the same, so say where and carry on: `--open` is a
/// convenience, not the result.
fn open_in_browser(html: &Path) {
    let graphical = cfg!(target_os = "macos")
        || std::env::var_os("DISPLAY").is_some()
        || std::env::var_os("WAYLAND_DISPLAY").is_some();
    let opener = if cfg!(target_os = "macos") { "open" } else { "xdg-open" };
    let opened = graphical
        && std::process::Command::new(opener)
            .arg(html)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .is_ok();
    if !opened {
        eprintln!(
            "no browser to open it here: open {} yourself (the files above are written)",
            html.display()
        );
    }
}
