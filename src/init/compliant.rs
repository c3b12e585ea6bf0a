//! A new project ready for Gmail's and Yahoo's bulk-sender rules: two DKIM keys (RSA-2048,
//! which every receiver verifies, and Ed25519), one-click unsubscribe with a generated secret
//! kept out of bulletin.toml, and the DNS records to publish, checked afterwards by
//! `bulletin doctor`. Used by `bulletin init` and its questions.

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::dkim::{Algorithm, Generated, keygen};
use crate::private::{private_dir, private_file};

/// The selectors init's keys are published under.
pub(crate) const RSA_SELECTOR: &str = "news-rsa";
pub(crate) const ED25519_SELECTOR: &str = "news-ed25519";
/// Where the unsubscribe secret lives, relative to the project (git-ignored, mode 0600).
pub(crate) const SECRET_FILE: &str = crate::paths::UNSUBSCRIBE_SECRET;
/// What the template says in place of the settings init writes.
pub(crate) const UNSUBSCRIBE_TEMPLATE: &str = "# url = \"https://news.example.org/unsubscribe/{{ token }}\"  # one-click link (`bulletin serve`); needs BULLETIN_UNSUBSCRIBE_SECRET\n";
pub(crate) const DKIM_TEMPLATE: &str = "# [dkim]\n";

/// The paths [`secure`] creates, to refuse before writing anything when one exists.
pub(crate) fn secured_paths(domain: &str) -> [String; 3] {
    [
        format!("keys/{RSA_SELECTOR}.{domain}.pem"),
        format!("keys/{ED25519_SELECTOR}.{domain}.pem"),
        SECRET_FILE.to_owned(),
    ]
}

/// The DKIM keys, the unsubscribe secret and the `.gitignore` for a project whose
/// bulletin.toml went through [`compliant`]; prints the DNS records to publish.
pub(crate) fn secure(dir: &Path, domain: &str) -> Result<()> {
    let keys = dir.join("keys");
    let rsa = keygen(&keys, RSA_SELECTOR, domain, Algorithm::Rsa)?;
    let ed = keygen(&keys, ED25519_SELECTOR, domain, Algorithm::Ed25519)?;
    println!(
        "created {} and {} (DKIM keys, mode 0600)",
        rsa.path.display(),
        ed.path.display()
    );
    let secret = dir.join(SECRET_FILE);
    private_dir(secret.parent().expect("the secret is in a folder"))?;
    let mut bytes = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    private_file(&secret, format!("{hex}\n").as_bytes())?;
    println!("created {} (the unsubscribe secret, mode 0600)", secret.display());
    ignore_secrets(dir)?;
    print_next(dir, domain, &[rsa, ed]);
    Ok(())
}

/// The example settings with `[dkim]` (both keys) and one-click `[unsubscribe]` written in.
pub(crate) fn compliant(template: &str, domain: &str) -> Result<String> {
    if !template.contains(UNSUBSCRIBE_TEMPLATE) || !template.contains(DKIM_TEMPLATE) {
        bail!("internal: the example bulletin.toml no longer has the lines init replaces");
    }
    let unsubscribe = format!(
        "url = \"https://news.{domain}/unsubscribe/{{{{ token }}}}\"  # one-click link; `bulletin serve` answers it\n\
         secret_command = \"cat {SECRET_FILE}\"    # HMAC secret, kept out of this file (mode 0600, git-ignored)\n"
    );
    let mut out = String::new();
    let mut in_dkim = false;
    for line in template.split_inclusive('\n') {
        if line == UNSUBSCRIBE_TEMPLATE {
            out.push_str(&unsubscribe);
        } else if line == DKIM_TEMPLATE {
            in_dkim = true;
            let lines = [
                ("[dkim]".to_owned(), "every message carries both signatures".to_owned()),
                (
                    format!("domain = \"{domain}\""),
                    "d= domain of the signatures".to_owned(),
                ),
                (
                    format!("selector = \"{RSA_SELECTOR}\""),
                    format!("RSA-2048: {RSA_SELECTOR}._domainkey.{domain}"),
                ),
                (
                    format!("private_key = \"keys/{RSA_SELECTOR}.{domain}.pem\""),
                    "git-ignored, mode 0600".to_owned(),
                ),
                (String::new(), String::new()),
                ("[[dkim.also]]".to_owned(), "Ed25519 (RFC 8463) beside RSA".to_owned()),
                (
                    format!("selector = \"{ED25519_SELECTOR}\""),
                    format!("{ED25519_SELECTOR}._domainkey.{domain}"),
                ),
                (
                    format!("private_key = \"keys/{ED25519_SELECTOR}.{domain}.pem\""),
                    "git-ignored, mode 0600".to_owned(),
                ),
            ];
            for (setting, comment) in lines {
                if comment.is_empty() {
                    out.push_str(&format!("{setting}\n"));
                } else {
                    out.push_str(&format!("{setting:<54} # {comment}\n"));
                }
            }
        } else if in_dkim && line.starts_with('#') {
            // the rest of the commented-out example
        } else {
            in_dkim = false;
            out.push_str(line);
        }
    }
    Ok(out)
}

/// `.gitignore` entries for the secret and the private keys (added to an existing file).
fn ignore_secrets(dir: &Path) -> Result<()> {
    let path = dir.join(".gitignore");
    let existing = std::fs::read_to_string(&path).unwrap_or_default();
    let mut text = existing.clone();
    for entry in ["/.bulletin/", "/keys/"] {
        if !existing.lines().any(|l| l.trim() == entry) {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(entry);
            text.push('\n');
        }
    }
    if text != existing {
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        println!("created {} (keeps the secret and the keys out of git)", path.display());
    }
    Ok(())
}

fn print_next(dir: &Path, domain: &str, keys: &[Generated]) {
    println!("\nPublish these DNS records for {domain} (your DNS host's TXT records):");
    for k in keys {
        println!("  {} TXT \"{}\"", k.record_name, k.record_value);
    }
    println!(
        "  {domain} TXT \"v=spf1 include:<your relay's SPF domain> ~all\"   (one SPF record; your relay names the include)"
    );
    println!("  _dmarc.{domain} TXT \"v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}\"");
    let d = dir.display();
    eprintln!(
        "\nnext:\n  cd {d}\n  bulletin doctor          # checks those records and the relay for real\n  \
         bulletin check newsletters/2026-12-first-hundred-days.md --list lists/members.csv\n  \
         bulletin preview newsletters/2026-12-first-hundred-days.md --list lists/members.csv --row 5 --open"
    );
}
