//! `bulletin check`: every problem with a newsletter, its lists and the settings, before
//! anything is sent. Exits non-zero when there are errors.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;

use super::Project;
use crate::list::Skip;
use crate::preflight::Preflight;

pub fn run(config: Option<&Path>, newsletter: &Path, lists: &[PathBuf], quiet: bool) -> Result<ExitCode> {
    let mut p = Project::load(config, newsletter, lists)?;
    let file = p.newsletter.path.display().to_string();
    if lists.is_empty() {
        p.diags.warning(
            Some((&file, 0)),
            "no --list given: merge fields were not checked against any list",
        );
    }
    for s in &p.lists.skipped {
        if matches!(s.why, Skip::Invalid { .. } | Skip::Duplicate { .. }) {
            let msg = s.to_string();
            let (at, rest) = msg.split_once(": ").unwrap_or(("", &msg));
            p.diags.warning(Some((at, 0)), rest.to_owned());
        }
    }
    let dns = crate::deliverability::review(&p.config, &p.newsletter, &mut p.diags);
    let mut largest = None;
    if let (Some(compiled), Some(letterhead)) = (&p.compiled, &p.letterhead) {
        let pre = Preflight::run(compiled, letterhead, &p.lists.recipients);
        pre.report(compiled, &mut p.diags);
        largest = pre.largest_html;
    }

    for d in &p.diags.items {
        println!("{d}");
    }
    if !quiet {
        for s in &p.lists.skipped {
            if matches!(s.why, Skip::Status(_) | Skip::Suppressed { .. }) {
                println!("note: {s}");
            }
        }
    }
    if !quiet && !dns.is_empty() {
        println!(
            "DNS records to publish for deliverability (bulletin cannot look them up; check them with your DNS host):"
        );
        for line in &dns {
            println!("  {line}");
        }
    }
    let (errors, warnings) = (p.diags.errors(), p.diags.warnings());
    let mut summary = format!(
        "{}: {} recipients, {} rows skipped; {errors} error{}, {warnings} warning{}",
        file,
        p.lists.recipients.len(),
        p.lists.skipped.len(),
        if errors == 1 { "" } else { "s" },
        if warnings == 1 { "" } else { "s" },
    );
    if let Some((size, _)) = largest {
        summary.push_str(&format!("; largest HTML part {:.1} KB", size as f64 / 1024.0));
    }
    println!("{summary}");
    Ok(if errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
