//! `bulletin init` that starts *your* newsletter: the organisation's name, the sender, the
//! postal address and the relay — asked on a terminal (with the common relays' settings
//! offered), or taken from `--org`, `--from`, `--address`, `--smtp` without asking — written
//! into bulletin.toml beside a short neutral first issue and a test list with the user's own
//! address. Without a terminal and without those flags, `init` writes the bundled example
//! instead (`cmd/init.rs`).

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::cli::InitArgs;
use crate::email::Email;
use crate::init::compliant as init;

/// A relay people already have, with the settings it wants.
struct Relay {
    /// Short name accepted by `--smtp`.
    key: &'static str,
    label: &'static str,
    /// URL with `{user}` (percent-encoded) and, for SES, `{region}`; Postfix's has `{host}`.
    url: &'static str,
    /// What the user name is, asked when the preset has one.
    user_is: Option<&'static str>,
    /// Whether the relay's user name is the sender's own address (Google, Microsoft), so
    /// `init` with flags can fill it in; otherwise it is left for the user to write.
    user_is_sender: bool,
    /// Rate the provider allows a new sender, as a safe start.
    rate: &'static str,
    note: &'static str,
}

const RELAYS: [Relay; 6] = [
    Relay {
        key: "google",
        label: "Google Workspace (smtp.gmail.com, port 465, TLS)",
        url: "smtps://{user}@smtp.gmail.com:465",
        user_is: Some("your Google Workspace address"),
        user_is_sender: true,
        rate: "2000/day",
        note: "password: an app password (Google account → Security → App passwords)",
    },
    Relay {
        key: "microsoft",
        label: "Microsoft 365 (smtp.office365.com, port 587, STARTTLS)",
        url: "smtp://{user}@smtp.office365.com:587",
        user_is: Some("your Microsoft 365 address"),
        user_is_sender: true,
        rate: "30/min",
        note: "SMTP AUTH must be enabled for the mailbox (Microsoft 365 admin centre → Mail)",
    },
    Relay {
        key: "ses",
        label: "Amazon SES (email-smtp.REGION.amazonaws.com, port 587, STARTTLS)",
        url: "smtp://{user}@email-smtp.{region}.amazonaws.com:587",
        user_is: Some("the SES SMTP user name (not your AWS login)"),
        user_is_sender: false,
        rate: "14/s",
        note: "password: the SES SMTP password created with the SMTP user name",
    },
    Relay {
        key: "mailgun",
        label: "Mailgun (smtp.mailgun.org, port 587, STARTTLS)",
        url: "smtp://{user}@smtp.mailgun.org:587",
        user_is: Some("the domain's SMTP login, e.g. postmaster@mg.example.org"),
        user_is_sender: false,
        rate: "10/s",
        note: "password: the SMTP password of that login (Mailgun → Sending → Domain settings)",
    },
    Relay {
        key: "postmark",
        label: "Postmark (smtp.postmarkapp.com, port 587, STARTTLS)",
        url: "smtp://{user}@smtp.postmarkapp.com:587",
        user_is: Some("the Server API token (use a Broadcast message stream)"),
        user_is_sender: false,
        rate: "10/s",
        note: "password: the same Server API token",
    },
    Relay {
        key: "postfix",
        label: "Postfix smarthost (your own server, port 587, STARTTLS)",
        url: "smtp://{user}@{host}:587",
        user_is: Some("the SASL user name on that server"),
        user_is_sender: false,
        rate: "5/s",
        note: "for a Postfix on this machine use smtp://127.0.0.1:25 (plain text to loopback only)",
    },
];

/// What init writes into the project.
struct Answers {
    org: String,
    from: String,
    address: String,
    smtp: Option<String>,
    /// The relay's URL still to be completed by the user (a preset whose user name `init`
    /// cannot know without asking), written commented out, and what to put in it.
    smtp_template: Option<(String, String)>,
    rate: &'static str,
    note: Option<&'static str>,
    /// The user's own address, the one line of lists/test.csv.
    own: String,
}

/// Whether this `init` starts the user's newsletter: a flag was given, or someone can be
/// asked. Otherwise the bundled example is written.
pub(crate) fn wanted(args: &InitArgs) -> bool {
    args.org.is_some() || args.from.is_some() || args.address.is_some() || args.smtp.is_some() || terminal()
}

fn terminal() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

pub(crate) fn run(args: &InitArgs) -> Result<ExitCode> {
    let dir = &args.dir;
    let files = [
        "bulletin.toml",
        "newsletters/first-issue.md",
        "lists/test.csv",
        "lists/unsubscribed.csv",
    ];
    let existing: Vec<String> = files
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !existing.is_empty() {
        bail!(
            "{} already exist: init never overwrites; choose an empty directory",
            existing.join(", ")
        );
    }
    let answers = if terminal() { ask(args)? } else { from_flags(args)? };
    let domain = sender_address(&answers.from)?
        .rsplit('@')
        .next()
        .unwrap_or_default()
        .to_owned();
    let taken: Vec<String> = init::secured_paths(&domain)
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !taken.is_empty() {
        bail!(
            "{} already exist: init never overwrites; choose an empty directory",
            taken.join(", ")
        );
    }
    let texts = [
        init::compliant(&settings(&answers), &domain)?,
        first_issue(&answers),
        format!("email,first_name\n{},\n", answers.own),
        "email,reason,date,campaign\n".to_owned(),
    ];
    for (name, text) in files.iter().zip(texts) {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        println!("created {}", path.display());
    }
    init::secure(dir, &domain)?;
    let d = dir.display();
    eprintln!(
        "\nnext:\n  cd {d}\n  bulletin check newsletters/first-issue.md --list lists/test.csv\n  \
         bulletin preview newsletters/first-issue.md --list lists/test.csv --open\n  \
         BULLETIN_SMTP_PASSWORD=… bulletin send newsletters/first-issue.md --list lists/test.csv --test"
    );
    if let Some((url, what)) = &answers.smtp_template {
        eprintln!(
            "relay: complete the url in {} ({what}) and remove its `#`, or run init again with the whole URL: --smtp {url}",
            dir.join("bulletin.toml").display()
        );
    }
    if let Some(note) = answers.note {
        eprintln!("relay: {note}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Without a terminal: everything from the flags, nothing asked.
fn from_flags(args: &InitArgs) -> Result<Answers> {
    let missing: Vec<&str> = [
        ("--org", &args.org),
        ("--from", &args.from),
        ("--address", &args.address),
    ]
    .into_iter()
    .filter(|(_, v)| v.is_none())
    .map(|(f, _)| f)
    .collect();
    if !missing.is_empty() {
        bail!(
            "init without a terminal needs {} (and --smtp URL or a relay name: {}); nothing written",
            missing.join(", "),
            RELAYS.map(|r| r.key).join(", ")
        );
    }
    let from = args.from.clone().unwrap_or_default();
    let own = sender_address(&from)?;
    let mut smtp_template = None;
    let (smtp, rate, note) = match args.smtp.as_deref() {
        None => (None, "14/s", None),
        Some(s) => match RELAYS.iter().find(|r| r.key.eq_ignore_ascii_case(s)) {
            Some(r) if r.user_is_sender => (Some(fill(r.url, &own, "", "")), r.rate, Some(r.note)),
            // The user name is not the sender's address: never guess it (a wrong login is a
            // refused send later); write the URL for the user to complete and say how.
            Some(r) => {
                smtp_template = Some(template(r));
                (None, r.rate, Some(r.note))
            }
            None => (Some(s.to_owned()), "14/s", None),
        },
    };
    Ok(Answers {
        org: args.org.clone().unwrap_or_default(),
        from,
        address: args.address.clone().unwrap_or_default(),
        smtp,
        smtp_template,
        rate,
        note,
        own,
    })
}

/// On a terminal: asks for what the flags did not give.
fn ask(args: &InitArgs) -> Result<Answers> {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut q = |question: &str, default: Option<&str>| -> Result<String> {
        loop {
            match default {
                Some(d) if !d.is_empty() => eprint!("{question} [{d}]: "),
                _ => eprint!("{question}: "),
            }
            std::io::stderr().flush().ok();
            let mut line = String::new();
            if input.read_line(&mut line)? == 0 {
                bail!("no answer (end of input); nothing written");
            }
            let line = line.trim();
            if !line.is_empty() {
                return Ok(line.to_owned());
            }
            if let Some(d) = default.filter(|d| !d.is_empty()) {
                return Ok(d.to_owned());
            }
        }
    };
    eprintln!("Let's start your newsletter. Press Enter to take the value in [brackets].\n");
    let org = match &args.org {
        Some(o) => o.clone(),
        None => q("Organisation name (shown in every footer)", None)?,
    };
    let from = match &args.from {
        Some(f) => f.clone(),
        None => loop {
            let f = q("Sender, as members see it (e.g. Our News <news@our-domain.org>)", None)?;
            match sender_address(&f) {
                Ok(_) => break f,
                Err(e) => eprintln!("  {e:#}"),
            }
        },
    };
    let own_default = sender_address(&from)?;
    let address = match &args.address {
        Some(a) => a.clone(),
        None => q("Postal address (the law wants one in every message)", None)?,
    };
    let (smtp, rate, note) = match &args.smtp {
        Some(s) => (Some(s.clone()), "14/s", None),
        None => {
            eprintln!("\nWhich relay sends your mail?");
            for (i, r) in RELAYS.iter().enumerate() {
                eprintln!("  {}. {}", i + 1, r.label);
            }
            eprintln!("  7. another: type its URL (smtps://user@host:465 or smtp://user@host:587)");
            eprintln!("  8. decide later");
            let choice = q("Relay", Some("8"))?;
            match choice.parse::<usize>() {
                Ok(n @ 1..=6) => {
                    let r = &RELAYS[n - 1];
                    let region = if r.key == "ses" {
                        q("SES region", Some("us-east-1"))?
                    } else {
                        String::new()
                    };
                    let host = if r.key == "postfix" {
                        q("Server's host name", None)?
                    } else {
                        String::new()
                    };
                    let user = q(
                        &format!("User name ({})", r.user_is.unwrap_or("login")),
                        Some(if matches!(r.key, "google" | "microsoft") {
                            own_default.as_str()
                        } else {
                            ""
                        }),
                    )?;
                    (Some(fill(r.url, &user, &region, &host)), r.rate, Some(r.note))
                }
                Ok(7) => (Some(q("Relay URL", None)?), "14/s", None),
                _ => (None, "14/s", None),
            }
        }
    };
    let own = q("\nYour own address, for test sends", Some(&own_default))?;
    Email::parse(&own).map_err(|e| anyhow::anyhow!("{own:?} is not an email address: {e}"))?;
    Ok(Answers {
        org,
        from,
        address,
        smtp,
        smtp_template: None,
        rate,
        note,
        own,
    })
}

/// The address inside `Name <address>` (or the whole value), checked.
fn sender_address(from: &str) -> Result<String> {
    let raw = match (from.rfind('<'), from.rfind('>')) {
        (Some(a), Some(b)) if a < b => &from[a + 1..b],
        _ => from,
    };
    let email = Email::parse(raw.trim())
        .map_err(|e| anyhow::anyhow!("sender {from:?}: {e}; write it as `Name <news@your-domain.org>`"))?;
    Ok(email.as_str().to_owned())
}

/// What must be escaped in a URL's user name: `news@our.org` is `news%40our.org`.
const USERINFO: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b'@')
    .add(b':')
    .add(b'/')
    .add(b'%')
    .add(b'?')
    .add(b'#')
    .add(b' ');

fn fill(url: &str, user: &str, region: &str, host: &str) -> String {
    let user = percent_encoding::utf8_percent_encode(user, USERINFO).to_string();
    url.replace("{user}", &user)
        .replace("{region}", region)
        .replace("{host}", host)
}

/// A preset's URL with words in capitals where the user's own values go, and what to put there.
fn template(r: &Relay) -> (String, String) {
    let url = r
        .url
        .replace("{user}", "SMTP-USER")
        .replace("{region}", "REGION")
        .replace("{host}", "HOST");
    let mut what = vec![format!("SMTP-USER: {}", r.user_is.unwrap_or("the login"))];
    if r.url.contains("{region}") {
        what.push("REGION: the SES region, e.g. eu-west-1".to_owned());
    }
    if r.url.contains("{host}") {
        what.push("HOST: the server's name".to_owned());
    }
    (url, what.join("; "))
}

/// A TOML string, quoted and escaped.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn settings(a: &Answers) -> String {
    let smtp = match (&a.smtp, &a.smtp_template) {
        (Some(url), _) => format!("url = {}", quoted(url)),
        (None, Some((url, what))) => format!(
            "# url = {}  # complete it and remove the `#`: {what}",
            quoted(url)
        ),
        (None, None) => "# url = \"smtps://you%40your-domain.org@smtp.your-domain.org:465\"  # your relay: run `bulletin init` again or write it here".to_owned(),
    };
    format!(
        r#"# Settings for {org}'s newsletter, written by `bulletin init`.
# Secrets never live here: the SMTP password comes from BULLETIN_SMTP_PASSWORD or password_command.

from = {from}
suppress = ["lists/unsubscribed.csv"]        # addresses excluded from every send

[organisation]
name = {org_q}
postal_address = {address}

[smtp]
{smtp}
# password_command = "pass show smtp"     # optional; otherwise BULLETIN_SMTP_PASSWORD
rate = ["{rate}"]                           # a safe start for this relay; raise it when it allows more

[unsubscribe]
mailto = {mailto}                           # where "unsubscribe" requests go
{unsubscribe_template}
{dkim_template}
"#,
        unsubscribe_template = init::UNSUBSCRIBE_TEMPLATE.trim_end(),
        dkim_template = init::DKIM_TEMPLATE.trim_end(),
        org = a.org.replace('\n', " "),
        from = quoted(&a.from),
        org_q = quoted(&a.org),
        address = quoted(&a.address),
        rate = a.rate,
        mailto = quoted(&sender_address(&a.from).unwrap_or_else(|_| a.own.clone())),
    )
}

fn first_issue(a: &Answers) -> String {
    format!(
        r#"---
subject: "News from {org}"
preheader: "What we have been doing, and what comes next"
---
Dear {{{{ first_name | default("friend") }}}},

This is our first newsletter. Write here what happened since you last wrote to your members,
what comes next, and what you ask of them.

## What comes next

- One thing members can do this month.
- A date to remember.

[Read more on our website](https://example.org "button")

With thanks,
{org}
"#,
        org = a.org.replace('"', "'"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relay_user_is_percent_encoded_into_its_url() {
        assert_eq!(
            fill(RELAYS[0].url, "news@our.org", "", ""),
            "smtps://news%40our.org@smtp.gmail.com:465"
        );
        assert_eq!(
            fill(RELAYS[2].url, "AKIA1", "eu-west-1", ""),
            "smtp://AKIA1@email-smtp.eu-west-1.amazonaws.com:587"
        );
    }

    #[test]
    fn the_sender_address_comes_out_of_name_and_brackets() {
        assert_eq!(sender_address("Our News <news@our.org>").unwrap(), "news@our.org");
        assert!(sender_address("Our News").is_err());
    }
}
