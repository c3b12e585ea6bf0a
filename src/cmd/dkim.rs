//! `bulletin dkim keygen`: a new signing key and the DNS record that makes it count.

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::DkimCommand;

pub(crate) fn run(command: &DkimCommand) -> Result<ExitCode> {
    let DkimCommand::Keygen {
        selector,
        domain,
        algorithm,
        out,
    } = command;
    let g = crate::dkim::keygen(out, selector, domain, *algorithm)?;
    println!("wrote {} (keep it private; it is mode 0600)", g.path.display());
    println!();
    println!("Publish this TXT record in DNS:");
    println!("  name:  {}", g.record_name);
    println!("  value: {}", g.record_value);
    println!();
    println!("Then add to bulletin.toml:");
    println!(
        "  [dkim]\n  domain = \"{domain}\"\n  selector = \"{selector}\"\n  private_key = \"{}\"",
        g.path.display()
    );
    Ok(ExitCode::SUCCESS)
}
