//! Bringing `serve`'s unsubscribes to the computer that sends: `bulletin serve` answers
//! `GET /suppressions` (bearer token [`Unsubscribe::pull_token`]) with its main suppression
//! file's rows and its undo log, and `bulletin suppress --pull URL` merges them into the local
//! main suppression file.
//!
//! The merge only adds and undoes, never drops: undos first (a row the server removed through
//! its Undo button and that is still gone there removes the local row with the same address,
//! reason `unsubscribe` and date — a row only an earlier pull can have written), then every
//! server row whose address is not suppressed here yet, with its reason, date and campaign. So
//! a second pull changes nothing, and a member who unsubscribes, undoes and unsubscribes again
//! ends up suppressed. A row deleted by hand on the server is not a removal here.
//!
//! [`Unsubscribe::pull_token`]: crate::unsubscribe::Unsubscribe::pull_token

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::email::Email;
use crate::list::{Reason, Row, Suppression, Undone, append_dated, read_rows, read_undone, remove_unsubscribe};

/// Where `serve` answers.
pub(crate) const PATH: &str = "/suppressions";
/// The wire format's version.
const FORMAT: u32 = 1;
/// Largest answer taken (some hundred thousand rows).
const ANSWER_LIMIT: u64 = 256 * 1024 * 1024;

/// What `serve` hands out.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Export {
    pub format: u32,
    pub rows: Vec<Row>,
    pub undone: Vec<Undone>,
}

/// The server's side: the main suppression file (the first of `files`) and its undo log.
pub(crate) fn export(files: &[PathBuf]) -> Result<Export> {
    let Some(main) = files.first() else {
        bail!("no suppression file");
    };
    // Rows first: an undo is logged before its row goes, so every removal the rows show is in
    // the log read after them.
    let rows = read_rows(main)?;
    let undone = read_undone(main)?;
    Ok(Export {
        format: FORMAT,
        rows,
        undone,
    })
}

/// What [`merge`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Merged {
    pub added: usize,
    pub removed: usize,
    pub file: PathBuf,
}

/// The sending side: applies `export` to the main suppression file (the first of `files`).
/// Every write is flushed to disk before this returns (see [`append_dated`] and
/// [`remove_unsubscribe`]).
pub(crate) fn merge(files: &[PathBuf], export: &Export) -> Result<Merged> {
    let Some(main) = files.first() else {
        bail!("no suppression file to merge into: add `suppress = [\"lists/unsubscribed.csv\"]` to bulletin.toml");
    };
    let unsubscribe = Reason::Unsubscribe.as_str();
    let on_server: HashSet<(&str, &str)> = export
        .rows
        .iter()
        .map(|r| (r.email.as_str(), r.date.as_str()))
        .collect();
    let here: HashSet<(String, String)> = read_rows(main)?
        .into_iter()
        .filter(|r| r.reason == unsubscribe)
        .map(|r| (r.email, r.date))
        .collect();
    let mut merged = Merged {
        file: main.clone(),
        ..Merged::default()
    };
    let mut seen = HashSet::new();
    for u in &export.undone {
        let key = (u.email.clone(), u.date.clone());
        if u.date.is_empty() || on_server.contains(&(u.email.as_str(), u.date.as_str())) || !seen.insert(key.clone()) {
            continue;
        }
        if here.contains(&key)
            && let Ok(email) = Email::parse(&u.email)
            && remove_unsubscribe(files, &email, &u.date)?
        {
            merged.removed += 1;
        }
    }
    let mut entries = Vec::with_capacity(export.rows.len());
    for r in &export.rows {
        let Ok(email) = Email::parse(&r.email) else { continue };
        let entry = Suppression {
            email,
            reason: Reason::parse(&r.reason).unwrap_or(Reason::Manual),
            campaign: (!r.campaign.is_empty()).then(|| r.campaign.clone()),
        };
        entries.push((entry, r.date.clone()));
    }
    if !entries.is_empty() {
        let done = append_dated(files, &entries)?;
        merged.added = done.added.iter().filter(|&&a| a).count();
    }
    Ok(merged)
}

/// The address to ask: `URL` itself when it ends in `/suppressions`, else `URL/suppressions`.
/// https only, but for a loopback address.
pub(crate) fn endpoint(given: &str) -> Result<url::Url> {
    let mut u = url::Url::parse(given.trim()).map_err(|e| {
        anyhow::anyhow!(
            "--pull {given:?} is not a URL ({e}): give the server's address, such as https://news.example.org"
        )
    })?;
    let loopback = match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match u.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => bail!(
            "--pull {given}: plain http would send the token and the unsubscribed addresses unencrypted; \
             use https:// (http:// only to 127.0.0.1 or localhost)"
        ),
        other => bail!("--pull {given}: {other}:// is not a web address; use https://"),
    }
    if !u.path().ends_with(PATH) {
        let path = format!("{}{PATH}", u.path().trim_end_matches('/'));
        u.set_path(&path);
    }
    u.set_query(None);
    u.set_fragment(None);
    Ok(u)
}

/// Asks `url` (from [`endpoint`]) with `token`.
pub(crate) fn fetch(url: &url::Url, token: &str) -> Result<Export> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_connect(Some(Duration::from_secs(15)))
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into();
    let mut answer = agent
        .get(url.as_str())
        .header("Authorization", format!("Bearer {token}"))
        .header("Accept", "application/json")
        .call()
        .map_err(|e| anyhow::anyhow!("cannot reach {url}: {e}; nothing was changed"))?;
    let status = answer.status().as_u16();
    match status {
        200 => {}
        401 | 403 => bail!(
            "{url} refused this project's pull token (HTTP {status}): the unsubscribe secret \
             (BULLETIN_UNSUBSCRIBE_SECRET or [unsubscribe] secret_command) or the list_id here is not the \
             server's; they must be the same on both sides. Nothing was changed"
        ),
        404 | 405 => bail!(
            "{url} answered HTTP {status}: is this the address of `bulletin serve` (one that knows \
             {PATH})? Nothing was changed"
        ),
        429 => bail!("{url} answered HTTP 429 (too many requests): wait a minute and pull again. Nothing was changed"),
        _ => bail!("{url} answered HTTP {status}. Nothing was changed"),
    }
    let body = answer
        .body_mut()
        .with_config()
        .limit(ANSWER_LIMIT)
        .read_to_vec()
        .map_err(|e| anyhow::anyhow!("cannot read the answer of {url}: {e}; nothing was changed"))?;
    let export: Export = serde_json::from_slice(&body)
        .with_context(|| format!("{url} did not answer with bulletin's suppression list; nothing was changed"))?;
    if export.format != FORMAT {
        bail!(
            "{url} answered in format {} and this bulletin reads format {FORMAT}: use the same bulletin version on both sides. \
             Nothing was changed",
            export.format
        );
    }
    Ok(export)
}

/// `suppress --pull`'s one line: "from URL: added 2 to F, removed 1 undone on the server".
pub(crate) fn summary(url: &url::Url, merged: &Merged, file: &Path) -> String {
    let rows = |n: usize| {
        if n == 1 {
            "1 address".to_owned()
        } else {
            format!("{n} addresses")
        }
    };
    match (merged.added, merged.removed) {
        (0, 0) => format!("{url}: nothing new; {} is up to date", file.display()),
        (a, 0) => format!("{url}: added {} to {}", rows(a), file.display()),
        (0, r) => format!(
            "{url}: removed {} from {} (unsubscribes undone on the server)",
            rows(r),
            file.display()
        ),
        (a, r) => format!(
            "{url}: added {} to {}, removed {} (unsubscribes undone on the server)",
            rows(a),
            file.display(),
            rows(r)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(email: &str, reason: &str, date: &str, campaign: &str) -> Row {
        Row {
            email: email.into(),
            reason: reason.into(),
            date: date.into(),
            campaign: campaign.into(),
        }
    }

    fn undone(email: &str, date: &str) -> Undone {
        Undone {
            email: email.into(),
            date: date.into(),
            at: "2026-02-01T00:00:00Z".into(),
        }
    }

    const D1: &str = "2026-01-01T00:00:00Z";
    const D2: &str = "2026-01-02T00:00:00Z";

    #[test]
    fn a_merge_adds_with_reason_date_and_campaign_and_a_second_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.csv");
        std::fs::write(
            &file,
            format!("email,reason,date,campaign\nbob@example.org,manual,{D1},\n"),
        )
        .unwrap();
        let files = [file.clone()];
        let export = Export {
            format: FORMAT,
            rows: vec![
                row("ana@example.org", "unsubscribe", D1, "2026-12"),
                row("bob@example.org", "unsubscribe", D2, ""),
                row("cy@example.org", "", "", ""),
            ],
            undone: vec![],
        };
        let m = merge(&files, &export).unwrap();
        assert_eq!((m.added, m.removed), (2, 0));
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.contains(&format!("\nana@example.org,unsubscribe,{D1},2026-12\n")),
            "{text}"
        );
        assert!(text.contains("\ncy@example.org,manual,20"), "{text}");
        assert_eq!(
            merge(&files, &export).unwrap(),
            Merged {
                file: file.clone(),
                ..Merged::default()
            }
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    }

    #[test]
    fn an_undo_on_the_server_removes_only_the_row_a_pull_brought() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.csv");
        let files = [file.clone()];
        std::fs::write(
            &file,
            format!("email,reason,date,campaign\nbob@example.org,manual,{D1},\n"),
        )
        .unwrap();
        let first = Export {
            format: FORMAT,
            rows: vec![row("ana@example.org", "unsubscribe", D1, "")],
            undone: vec![],
        };
        assert_eq!(merge(&files, &first).unwrap().added, 1);
        // Ana undid on the server; Bob's manual row and an undo of a date never pulled stay.
        let second = Export {
            format: FORMAT,
            rows: vec![],
            undone: vec![
                undone("ana@example.org", D1),
                undone("bob@example.org", D1),
                undone("cy@example.org", D1),
            ],
        };
        let m = merge(&files, &second).unwrap();
        assert_eq!((m.added, m.removed), (0, 1));
        let keys = crate::list::read_suppression(&file).unwrap();
        assert_eq!(keys, ["bob@example.org"]);
        assert_eq!(merge(&files, &second).unwrap().removed, 0);
        // Ana unsubscribed again: the old undo does not hide the new row.
        let third = Export {
            format: FORMAT,
            rows: vec![row("ana@example.org", "unsubscribe", D2, "")],
            undone: second.undone.clone(),
        };
        assert_eq!(merge(&files, &third).unwrap().added, 1);
        assert_eq!(
            merge(&files, &third).unwrap(),
            Merged {
                file: file.clone(),
                ..Merged::default()
            }
        );
        // An undo logged while its row is still on the server (a crash between the two) waits.
        let torn = Export {
            format: FORMAT,
            rows: vec![row("ana@example.org", "unsubscribe", D2, "")],
            undone: vec![undone("ana@example.org", D2)],
        };
        assert_eq!(merge(&files, &torn).unwrap().removed, 0);
    }

    #[test]
    fn only_https_or_loopback_http_is_asked() {
        assert_eq!(
            endpoint("https://news.example.org").unwrap().as_str(),
            "https://news.example.org/suppressions"
        );
        assert_eq!(
            endpoint("https://example.org/news/suppressions").unwrap().as_str(),
            "https://example.org/news/suppressions"
        );
        assert_eq!(
            endpoint("http://127.0.0.1:8080/").unwrap().as_str(),
            "http://127.0.0.1:8080/suppressions"
        );
        assert!(endpoint("http://[::1]:8080").is_ok());
        for bad in ["http://news.example.org", "ftp://x.org", "news.example.org", ""] {
            assert!(endpoint(bad).is_err(), "{bad}");
        }
    }
}
