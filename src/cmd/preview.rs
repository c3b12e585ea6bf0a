//! `bulletin preview`: exactly what one member will receive, as `email.html`, `email.txt`
//! and the raw MIME message `email.eml`; with `--serve`, a live preview in the browser.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, bail};

use super::Project;
use crate::cli::PreviewArgs;
use crate::private::{private_dir, private_file};

pub(crate) fn run(config: Option<&Path>, args: &PreviewArgs) -> Result<ExitCode> {
    if args.serve {
        let inputs = crate::preview::Inputs {
            config: config.map(Path::to_owned),
            newsletter: args.newsletter.clone(),
            lists: args.lists.lists.clone(),
        };
        let options = crate::preview::Options {
            port: args.port,
            open: args.open,
            row: args.row,
            to: args.to.clone(),
            lang: args.lang.clone(),
        };
        crate::preview::serve(inputs, options)?;
        return Ok(ExitCode::SUCCESS);
    }
    let p = Project::load(config, &args.newsletter, args.lists.flags())?;
    let invented = p.audience.lists.is_empty();
    if invented && (args.row.is_some() || args.to.is_some()) {
        bail!("--row and --to pick a member from the lists: add --list lists/test.csv");
    }
    // A preview renders whenever it can: problems it can render past (a missing image) are
    // printed, and only what stops rendering (a broken merge field, no sender) refuses.
    let (Some(compiled), Some(letterhead)) = (&p.compiled, &p.letterhead) else {
        p.diags.into_result()?;
        bail!("the newsletter did not compile; run `bulletin check` for details");
    };
    let diags = &p.diags;
    let recipient = if invented {
        crate::project::invented_member()
    } else {
        p.member(crate::project::pick(args.row, args.to.as_deref())?)?
    };
    let recipient = &recipient;
    let version = match &args.lang {
        None => compiled.variant_for(recipient),
        Some(tag) => compiled.variant(tag).ok_or_else(|| {
            anyhow::anyhow!(
                "--lang {tag}: no variant in that language (have: {}); write it as {}",
                compiled.langs().join(", "),
                args.newsletter.with_extension(format!("{tag}.md")).display()
            )
        })?,
    };
    let rendered = version
        .personalise_this(recipient)
        .map_err(|e| anyhow::anyhow!("{}: {}", recipient.location(), e.message))?;
    let message = letterhead.build(recipient, &rendered, letterhead.message_id())?;
    private_dir(&args.out)?;
    // A browser cannot follow `cid:`: the file shows the images from where they are.
    let mut html = rendered.html.clone();
    for image in &version.inline {
        let path = std::path::absolute(&image.path).unwrap_or_else(|_| image.path.clone());
        html = html.replace(&format!("cid:{}", image.cid), &format!("file://{}", path.display()));
    }
    let paths = [
        ("email.html", html.into_bytes()),
        ("email.txt", rendered.text.into_bytes()),
        ("email.eml", message.formatted()),
    ];
    for d in &diags.items {
        eprintln!("{d}");
    }
    if diags.errors() > 0 {
        eprintln!("note: rendered anyway; `check` and `send` refuse until the errors above are fixed");
    }
    if invented {
        eprintln!(
            "preview for an invented member, {} (no --list given; add --list lists/test.csv to see a real one)",
            recipient.email
        );
    } else {
        eprintln!("preview for {} ({})", recipient.email, recipient.location());
    }
    let eml_len = paths[2].1.len();
    eprintln!(
        "size: message {:.1} KB, HTML part {:.1} KB of the {} KB Gmail shows before clipping",
        eml_len as f64 / 1024.0,
        rendered.html.len() as f64 / 1024.0,
        crate::render::GMAIL_CLIP_BYTES / 1024
    );
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
