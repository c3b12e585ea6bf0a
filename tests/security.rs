//! Injection and privacy, end to end: what a hostile CSV row or newsletter field can do to the
//! messages (add a header? a recipient? a script?), whether secrets leak into output, files or
//! the journal, how private the files are, and whether TLS and login policy hold.
//!
//! Every message is judged from the outside: what the SMTP test server received, re-parsed
//! with mail-parser, and the raw header block read line by line.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crate::support::html;
use crate::support::project::{DEFAULT_CONFIG, Project, Run};
use crate::support::smtp_server::{Options, Stage, TestSmtp};
use crate::support::{MESSAGE_HEADERS, require_remote_looking_loopback_name};
use bulletin::secret::Secret;
use bulletin::send::smtp::{Relay, Security};

/// The characters that end a header line somewhere: CR, LF, CRLF, NUL, and the Unicode line
/// and paragraph separators and NEL.
const BREAKS: [&str; 7] = ["\r", "\n", "\r\n", "\0", "\u{2028}", "\u{2029}", "\u{85}"];

/// Settings that send to `smtp`; `extra` holds top-level keys.
fn config(smtp: &TestSmtp, extra: &str) -> String {
    format!(
        "{extra}{DEFAULT_CONFIG}\n[smtp]\nurl = \"{}\"\nretry_delay = 0.01\ntimeout = 5\n",
        smtp.url()
    )
}

/// Checks one raw message: every header line is one of ours and well formed, exactly one `To`
/// naming `rcpt`, no `Cc` or `Bcc`.
fn assert_one_clean_recipient(raw: &[u8], rcpt: &str) {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    for line in head.split("\r\n") {
        assert!(!line.contains(['\r', '\n', '\0']), "bare CR, LF or NUL in {line:?}");
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let name = line.split(':').next().unwrap_or_default().to_ascii_lowercase();
        assert!(
            MESSAGE_HEADERS.contains(&name.as_str()),
            "injected header line {line:?} in:\n{head}"
        );
    }
    let m = mail_parser::MessageParser::default()
        .parse(raw)
        .expect("mail-parser parses it");
    let tos: Vec<&str> = m.to().unwrap().iter().filter_map(|a| a.address()).collect();
    assert_eq!(tos, vec![rcpt], "exactly one To, the member:\n{head}");
    assert_eq!(m.header_values("To").count(), 1);
    assert!(m.cc().is_none() && m.bcc().is_none(), "Cc or Bcc in:\n{head}");
    let froms: Vec<&str> = m.from().unwrap().iter().filter_map(|a| a.address()).collect();
    assert_eq!(froms, vec!["news@example.org"]);
}

/// Every message the server accepted has one recipient, one RCPT was all the server saw per
/// message, and each recipient's message is clean. Returns recipient → copies.
fn assert_all_clean(smtp: &TestSmtp) -> HashMap<String, usize> {
    let msgs = smtp.messages();
    assert_eq!(smtp.attempts(Stage::Rcpt), msgs.len(), "one RCPT per message, no more");
    let mut got = HashMap::new();
    for m in &msgs {
        assert_eq!(m.rcpt_to.len(), 1);
        assert!(!m.rcpt_to[0].contains("attacker"), "mail to {}", m.rcpt_to[0]);
        assert_one_clean_recipient(&m.data, &m.rcpt_to[0]);
        *got.entry(m.rcpt_to[0].clone()).or_insert(0) += 1;
    }
    got
}

fn csv(rows: &[Vec<String>]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.write_record(r).unwrap();
    }
    String::from_utf8(w.into_inner().unwrap()).unwrap()
}

const EVERY_FIELD: &str = "+++\nsubject = \"Hi {{ first_name | default('x') }} {{ last_name | default('') }} \
{{ city | default('') }} {{ note | default('') }}\"\npreheader = \"{{ name | default('p') }} {{ note | default('') }}\"\n\
id = \"inject\"\n+++\nDear {{ first_name | default('friend') }} {{ last_name | default('') }} ({{ name | default('') }}),\n\n\
News from {{ city | default('town') }}: {{ note | default('-') }}.\n\n\
[Map](https://example.org/map?c={{ city | default('') }}&n={{ note | default('') }})\n";

#[test]
fn line_breaks_and_nul_in_any_csv_field_add_no_header_and_no_recipient() {
    let columns = ["first_name", "last_name", "name", "city", "note"];
    let mut rows = vec![
        ["email", "first_name", "last_name", "name", "city", "note"]
            .map(str::to_owned)
            .to_vec(),
    ];
    let mut valid = Vec::new();
    for (k, b) in BREAKS.iter().enumerate() {
        let payload = format!("Ana{b}Bcc: evil{k}@attacker.example{b}X-Injected: yes{b}{b}body");
        for (c, column) in columns.iter().enumerate() {
            let email = format!("m{k}-{column}@example.org");
            let mut row = vec![
                email.clone(),
                "Ana".into(),
                "Lopez".into(),
                String::new(),
                "Oakland".into(),
                String::new(),
            ];
            row[c + 1] = payload.clone();
            rows.push(row);
            valid.push(email);
        }
        // In the address column: a header after the address is no address at all.
        rows.push(vec![
            format!("m{k}-email@example.org{b}Bcc: evil{k}@attacker.example"),
            "Ana".into(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ]);
        rows.push(vec![
            format!("m{k}-trail@example.org{b}"),
            "Ana".into(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ]);
        if b.trim().is_empty() {
            valid.push(format!("m{k}-trail@example.org")); // surrounding whitespace is trimmed
        }
    }
    // Address syntax in a display name stays inside the name.
    for (i, name) in [
        "Evil <evil@attacker.example>, Ana",
        "\"Ana\" <evil@attacker.example>, \"",
        "Ana; evil@attacker.example",
        "=?utf-8?q?Ana_=3Cevil@attacker.example=3E,?=",
    ]
    .iter()
    .enumerate()
    {
        let email = format!("n{i}@example.org");
        rows.push(vec![
            email.clone(),
            String::new(),
            String::new(),
            (*name).to_owned(),
            String::new(),
            String::new(),
        ]);
        valid.push(email);
    }
    let smtp = TestSmtp::start();
    let p = Project::new()
        .file("bulletin.toml", config(&smtp, ""))
        .file("n.md", EVERY_FIELD)
        .file("m.csv", csv(&rows));
    let run = p.run(&["send", "n.md", "--list", "m.csv", "--yes"]);
    run.success().stderr_has("rows skipped");
    let got = assert_all_clean(&smtp);
    let mut want = valid.clone();
    want.sort();
    let mut have: Vec<String> = got.keys().cloned().collect();
    have.sort();
    assert_eq!(have, want, "exactly the valid rows, once each");
    assert!(got.values().all(|&n| n == 1));
    // Line breaks in a value became spaces in the subject; the text is still there.
    for m in smtp.messages() {
        let parsed = mail_parser::MessageParser::default().parse(&m.data).unwrap();
        let subject = parsed.subject().unwrap();
        assert!(
            !subject.contains(['\r', '\n', '\0', '\u{2028}', '\u{2029}', '\u{85}']),
            "{subject:?}"
        );
    }
    // The invalid addresses are reported with their lines, not sent.
    let check = p.run(&["check", "n.md", "--list", "m.csv"]);
    assert!(
        check.stdout.matches("is not an email address").count() >= BREAKS.len(),
        "{}",
        check.stdout
    );
}

/// A TOML string literal for any text.
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

#[test]
fn line_breaks_and_nul_in_any_front_matter_field_add_no_header_and_no_recipient() {
    let smtp = TestSmtp::start();
    let mut refused = Vec::new();
    let mut sent = 0;
    for b in BREAKS {
        let fields = [
            ("subject", format!("Hello{b}Bcc: evil@attacker.example")),
            ("preheader", format!("Hello{b}Bcc: evil@attacker.example")),
            ("from", format!("News{b}Bcc: evil@attacker.example <news@example.org>")),
            ("from", format!("news@example.org{b}Bcc: evil@attacker.example")),
            ("from", format!("News{b}Team <news@example.org>")),
            (
                "reply_to",
                format!("Info{b}Bcc: evil@attacker.example <info@example.org>"),
            ),
            ("reply_to", format!("info@example.org{b}Bcc: evil@attacker.example")),
            ("reply_to", format!("Info{b}Desk <info@example.org>")),
            ("id", format!("c1{b}Bcc: evil@attacker.example")),
        ];
        for (key, value) in fields {
            let mut front: String = [("subject", "\"News\""), ("id", "\"fm\"")]
                .iter()
                .filter(|(k, _)| *k != key)
                .map(|(k, v)| format!("{k} = {v}\n"))
                .collect();
            front.push_str(&format!("{key} = {}\n", toml_str(&value)));
            let newsletter = format!("+++\n{front}+++\nHello.\n");
            let p = Project::new()
                .file("bulletin.toml", config(&smtp, "feedback_id = \"newsletter:example\"\n"))
                .file("n.md", &newsletter)
                .file("m.csv", "email,first_name\nmember@example.org,Ana\n");
            let before = smtp.messages().len();
            let run = p.run(&["send", "n.md", "--list", "m.csv", "--yes"]);
            match run.code {
                Some(0) => {
                    sent += 1;
                    assert_eq!(smtp.messages().len(), before + 1, "{key} = {value:?}");
                }
                Some(1) => {
                    assert_eq!(smtp.messages().len(), before, "refused, yet sent: {key} = {value:?}");
                    assert!(run.stderr.contains("error:"), "{}", run.stderr);
                    refused.push(format!("{key} = {value:?}"));
                }
                other => panic!("{key} = {value:?}: exit {other:?}\n{}", run.stderr),
            }
        }
    }
    assert_all_clean(&smtp);
    // A line break can never sit in an address or a campaign id, and is refused there; in a
    // subject or preheader it is a space, and separators in a display name are encoded.
    for r in &refused {
        assert!(!r.starts_with("subject") && !r.starts_with("preheader"), "refused {r}");
    }
    assert!(
        refused.iter().filter(|r| r.starts_with("id")).count() == BREAKS.len(),
        "{refused:#?}"
    );
    assert!(sent >= 2 * BREAKS.len(), "subjects and preheaders are sent: {sent}");
    println!(
        "front matter: {sent} sent clean, {} refused:\n{}",
        refused.len(),
        refused.join("\n")
    );
}

const HOSTILE_BODY: &str = "---\nsubject: \"For {{ first_name }}\"\npreheader: \"{{ last_name }}\"\nid: hostile\n---\n\
Dear {{ first_name }} {{ last_name }},\n\n\
[Your site]({{ website }}) and [the map](https://example.org/map?c={{ city }}).\n\n\
![{{ city }}](https://example.org/i.png \"100x100\")\n\n\
[Join, {{ first_name }}](https://example.org/join?n={{ first_name }} \"button\")\n\n\
<script>alert('author')</script> <a href=\"javascript:alert(2)\" onclick=\"x()\">raw</a> <img src=x onerror=alert(3)>\n";

const HOSTILE_ROW: [&str; 5] = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "javascript:alert(1)",
    "\"><svg onload=alert(1)>",
    "m1@example.org",
];

fn hostile_project(allow_raw_html: bool) -> Project {
    let [first, last, site, city, email] = HOSTILE_ROW;
    let rows = vec![
        vec![
            "email".to_owned(),
            "first_name".into(),
            "last_name".into(),
            "website".into(),
            "city".into(),
        ],
        vec![email.into(), first.into(), last.into(), site.into(), city.into()],
        vec![
            "m2@example.org".into(),
            first.into(),
            last.into(),
            " JaVa\tScript:alert(1)".into(),
            city.into(),
        ],
    ];
    let settings = if allow_raw_html {
        format!("allow_raw_html = true\n{DEFAULT_CONFIG}")
    } else {
        DEFAULT_CONFIG.to_owned()
    };
    Project::new()
        .file("bulletin.toml", settings)
        .file("n.md", HOSTILE_BODY)
        .file("m.csv", csv(&rows))
}

/// `(html, text)` of every `.eml` in `dir`.
fn parts(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let raw = std::fs::read(entry.unwrap().path()).unwrap();
        let m = mail_parser::MessageParser::default().parse(&raw).unwrap();
        out.push((
            m.body_html(0).unwrap().into_owned(),
            m.body_text(0).unwrap().into_owned(),
        ));
    }
    out
}

#[test]
fn html_and_script_in_fields_are_escaped_in_html_and_plain_in_text() {
    for allow_raw_html in [false, true] {
        let p = hostile_project(allow_raw_html);
        p.run(&["send", "n.md", "--list", "m.csv", "--dry-run", "--out", "out"])
            .success();
        let messages = parts(&p.join("out"));
        assert_eq!(messages.len(), 2);
        for (html, text) in messages {
            if let Some(problem) = html::unsafe_markup(&html) {
                panic!("allow_raw_html = {allow_raw_html}: {problem} in\n{html}");
            }
            let lower = html.to_ascii_lowercase();
            // (Escaped, `javascript:` may still appear as text; `unsafe_markup` checked links.)
            for needle in ["<script", "<svg", "<img src=x"] {
                assert!(
                    !lower.contains(needle),
                    "allow_raw_html = {allow_raw_html}: {needle} in\n{html}"
                );
            }
            // The member's name is shown, escaped, not dropped.
            assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"), "{html}");
            // In the text part it is only text.
            assert!(
                text.contains("Dear <script>alert(1)</script> <img src=x onerror=alert(1)>"),
                "{text}"
            );
            // A member's `javascript:` link target is dropped in both parts (the author's own
            // raw HTML is shown as text there, which is harmless).
            assert!(
                !text.contains("javascript:alert(1)") && !text.contains("Script:alert(1)"),
                "{text}"
            );
        }
    }
}

#[test]
fn merge_values_in_links_are_percent_encoded() {
    let city = "a b&c=d#e\"<>'/?%é\r\nX";
    let rows = vec![
        vec!["email".to_owned(), "city".into()],
        vec!["Ana+news@example.org".into(), city.into()],
    ];
    let p = Project::new()
        .file(
            "bulletin.toml",
            DEFAULT_CONFIG.replace(
                "[unsubscribe]\n",
                "[unsubscribe]\nurl = \"https://example.org/u?e={{ email }}\"\n",
            ),
        )
        .file(
            "n.md",
            "---\nsubject: s\nid: enc\n---\n[map](https://example.org/map?c={{ city }}&e={{ email }})\n\n[Go](https://example.org/go/{{ city }} \"button\")\n",
        )
        .file("m.csv", csv(&rows));
    p.run(&["send", "n.md", "--list", "m.csv", "--dry-run", "--out", "out"])
        .success();
    let (html, text) = parts(&p.join("out")).remove(0);
    let encoded = "a%20b%26c%3Dd%23e%22%3C%3E%27%2F%3F%25%C3%A9%0D%0AX";
    let map = format!("https://example.org/map?c={encoded}&e=Ana%2Bnews%40example.org");
    let go = format!("https://example.org/go/{encoded}");
    let hrefs = html::hrefs(&html);
    assert!(hrefs.contains(&map), "{hrefs:#?}");
    assert!(hrefs.contains(&go), "{hrefs:#?}");
    assert!(
        hrefs.contains(&"https://example.org/u?e=ana%2Bnews%40example.org".to_owned()),
        "{hrefs:#?}"
    );
    let unwrapped = text.replace("\r\n", "\n");
    assert!(unwrapped.contains(&map) && unwrapped.contains(&go), "{text}");
}

// ---------------------------------------------------------------------------------------------
// Secrets.

const SMTP_PW: &str = "pw-Secret-7Qx2";
const WRONG_PW: &str = "pw-Wrong-5Rt8";
const URL_PW: &str = "pw-InUrl-3Kd9";
const CMD_PW: &str = "pw-FromCommand-8Lw1";
const HMAC_SECRET: &str = "hmac-Secret-9Zk4";

fn assert_no_secret(what: &str, bytes: &[u8]) {
    for secret in [SMTP_PW, WRONG_PW, URL_PW, CMD_PW, HMAC_SECRET] {
        let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
        assert!(!found, "{secret} appears in {what}");
    }
}

fn assert_run_clean(run: &Run) {
    assert_no_secret(&format!("the output of `bulletin {}`", run.args), run.stdout.as_bytes());
    assert_no_secret(&format!("the errors of `bulletin {}`", run.args), run.stderr.as_bytes());
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

fn secret_project(url: &str) -> Project {
    let unsub = "[unsubscribe]\nurl = \"https://example.org/u?t={{ token }}\"\nmailto = \"unsubscribe@example.org\"\n";
    let base = DEFAULT_CONFIG.replace("[unsubscribe]\nmailto = \"unsubscribe@example.org\"\n", unsub);
    Project::new()
        .file(
            "bulletin.toml",
            format!("{base}\n[smtp]\nurl = \"{url}\"\nretry_delay = 0.01\ntimeout = 5\n"),
        )
        .file(
            "n.md",
            "---\nsubject: \"Hi {{ first_name }}\"\nid: secrets\n---\nDear {{ first_name }}, [leave]({{ unsubscribe_url }})\n",
        )
        .file("m.csv", "email,first_name\nm1@example.org,Ana\nm2@example.org,Ben\nm3@example.org,Cy\n")
        .file("pw.txt", CMD_PW)
        .env("BULLETIN_UNSUBSCRIBE_SECRET", HMAC_SECRET)
}

#[test]
fn secrets_never_reach_output_files_journal_or_messages() {
    let smtp = TestSmtp::start_with(Options {
        auth: Some(("news".into(), SMTP_PW.into())),
        fault: Some(Box::new(|e: &crate::support::smtp_server::Event| {
            match (e.stage, e.rcpt) {
                (Stage::Rcpt, Some("m3@example.org")) => {
                    crate::support::smtp_server::Action::Reply(550, "5.1.1 no such user".into())
                }
                _ => crate::support::smtp_server::Action::Continue,
            }
        })),
        ..Options::default()
    });
    let url = format!("smtp://news@127.0.0.1:{}", smtp.addr().port());
    let p = secret_project(&url).env("BULLETIN_SMTP_PASSWORD", SMTP_PW);
    let mut runs = vec![
        p.run(&["check", "n.md", "--list", "m.csv"]),
        p.run(&["preview", "n.md", "--list", "m.csv", "--out", "preview"]),
        p.run(&["send", "n.md", "--list", "m.csv", "--dry-run"]),
        p.run(&["send", "n.md", "--list", "m.csv", "--yes"]),
        p.run(&["report", "n.md"]),
        p.run(&["report", "n.md", "--json"]),
        p.run(&["report", "n.md", "--failed-csv", "failed.csv"]),
        p.run(&["unsubscribe-token", "make", "m1@example.org"]),
    ];
    assert_eq!(runs[3].code, Some(3), "{}", runs[3].stderr);
    assert_eq!(smtp.messages().len(), 2);
    // Error paths: a wrong password, a password in the URL (flag, environment, settings), a
    // URL that does not parse, a failing password command.
    // (`--test`: the campaign itself has nobody left to send to.)
    let port = smtp.addr().port();
    let mut p = p.env("BULLETIN_SMTP_PASSWORD", WRONG_PW);
    runs.push(p.run(&["send", "n.md", "--list", "m.csv", "--yes", "--test"]));
    p = p.env("BULLETIN_SMTP_PASSWORD", SMTP_PW);
    for bad in [
        format!("smtp://news:{URL_PW}@127.0.0.1:{port}"),
        format!("smtp://news:{URL_PW}@127.0.0.1:99999"),
        format!("smtps://news:{URL_PW}@exa mple.org"),
        format!("smtp://news:{URL_PW}@"),
    ] {
        runs.push(p.run(&["send", "n.md", "--list", "m.csv", "--yes", "--test", "--smtp", &bad]));
        p = p.env("BULLETIN_SMTP_URL", &bad);
        runs.push(p.run(&["send", "n.md", "--list", "m.csv", "--yes", "--test"]));
    }
    let settings = format!(
        "{}\npassword_command = \"cat pw.txt; exit 3\"\n",
        p.read("bulletin.toml")
    );
    let from_command = secret_project(&url).file("bulletin.toml", settings);
    runs.push(from_command.run(&["send", "n.md", "--list", "m.csv", "--yes"]));
    for run in &runs[8..] {
        assert_eq!(run.code, Some(1), "{}: {}", run.args, run.stderr);
    }
    for run in &runs {
        assert_run_clean(run);
    }
    let mut checked = 0;
    for f in files(p.path()) {
        if f.ends_with("bulletin.toml") || f.ends_with("pw.txt") {
            continue;
        }
        assert_no_secret(&f.display().to_string(), &std::fs::read(&f).unwrap());
        checked += 1;
    }
    assert!(p.join(".bulletin/journal.db").exists() && checked >= 5);
    for m in smtp.messages() {
        assert_no_secret("a sent message", &m.data);
    }
    assert_eq!(smtp.messages().len(), 2, "no error path sent anything");
}

// ---------------------------------------------------------------------------------------------
// File modes.

/// Runs the binary with umask 000, so only the modes it asks for protect its files.
fn run_umask_000(p: &Project, args: &[&str]) -> std::process::Output {
    run_umask_000_expecting(p, args, 0)
}

fn run_umask_000_expecting(p: &Project, args: &[&str], code: i32) -> std::process::Output {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("umask 000 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_bulletin"))
        .args(args)
        .current_dir(p.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .expect("run bulletin");
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn journal_dry_run_and_preview_files_are_private_even_with_umask_000() {
    let smtp = TestSmtp::start_with(Options {
        fault: Some(Box::new(|e: &crate::support::smtp_server::Event| {
            match (e.stage, e.rcpt) {
                (Stage::Rcpt, Some("m3@example.org")) => {
                    crate::support::smtp_server::Action::Reply(550, "5.1.1 no such user".into())
                }
                _ => crate::support::smtp_server::Action::Continue,
            }
        })),
        ..Options::default()
    });
    let p = Project::new()
        .file("bulletin.toml", config(&smtp, ""))
        .file("n.md", "---\nsubject: s\nid: modes\n---\nHello {{ first_name }}\n")
        .file(
            "m.csv",
            "email,first_name\nm1@example.org,Ana\nm2@example.org,Ben\nm3@example.org,Cy\n",
        );
    run_umask_000(&p, &["preview", "n.md", "--list", "m.csv"]);
    // A file left world-readable by something else is made private when it is rewritten.
    std::fs::create_dir_all(p.join("out")).unwrap();
    std::fs::write(p.join("out/000001-m1@example.org.eml"), "old").unwrap();
    std::fs::set_permissions(
        p.join("out/000001-m1@example.org.eml"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    run_umask_000(&p, &["send", "n.md", "--list", "m.csv", "--dry-run"]);
    run_umask_000(&p, &["send", "n.md", "--list", "m.csv", "--dry-run", "--out", "out"]);
    run_umask_000_expecting(&p, &["send", "n.md", "--list", "m.csv", "--yes"], 3);
    run_umask_000(&p, &["report", "n.md", "--failed-csv", "failed.csv"]);
    assert_eq!(smtp.messages().len(), 2);

    for dir in [
        ".bulletin",
        ".bulletin/dry-run",
        ".bulletin/dry-run/modes",
        ".bulletin/preview",
    ] {
        assert_eq!(mode(&p.join(dir)), 0o700, "{dir}");
    }
    let mut private = vec![p.join(".bulletin/journal.db")];
    for suffix in ["-wal", "-shm"] {
        let f = p.join(&format!(".bulletin/journal.db{suffix}"));
        if f.exists() {
            private.push(f);
        }
    }
    private.extend(files(&p.join(".bulletin/dry-run")));
    private.extend(files(&p.join(".bulletin/preview")));
    private.extend(files(&p.join("out")));
    private.push(p.join("failed.csv"));
    // The journal, three dry-run and three --out messages, three preview files, failed.csv.
    assert!(private.len() >= 11, "{private:?}");
    for f in private {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
}

// ---------------------------------------------------------------------------------------------
// TLS and login policy.

#[test]
fn a_login_is_never_sent_in_plain_text_to_a_remote_host() {
    let pw = || Some(Secret::new(SMTP_PW.into()));
    for url in [
        "smtp://news@relay.example.org:25?tls=none",
        "smtp://news@10.0.0.1:2525?tls=none",
        "smtp://news@[::ffff:127.0.0.1]:2525?tls=none",
        "smtp://news%40example.org@relay.example.org?tls=none",
    ] {
        let err = Relay::parse(url, pw(), Duration::from_secs(5)).expect_err(url);
        let msg = format!("{err:#}");
        assert!(
            msg.contains("refusing to send a password in plain text"),
            "{url}: {msg}"
        );
        assert!(!msg.contains(SMTP_PW));
    }
    // Remote without `tls=none`: TLS is required, never optional.
    for (url, security) in [
        ("smtp://news@relay.example.org", Security::StartTls),
        ("smtp://relay.example.org:25", Security::StartTls),
        ("smtps://news@relay.example.org", Security::Implicit),
    ] {
        assert_eq!(
            Relay::parse(url, pw(), Duration::from_secs(5)).unwrap().security,
            security,
            "{url}"
        );
    }
    // Loopback is the one place plain text is allowed.
    let local = Relay::parse("smtp://news@127.0.0.1:2525", pw(), Duration::from_secs(5)).unwrap();
    assert_eq!(local.security, Security::None);
}

/// End to end, with a name that looks remote but answers here: refused before connecting with
/// `tls=none`, and refused before AUTH when the server offers no STARTTLS.
#[test]
#[ignore = "needs a host name other than localhost that resolves to loopback; run by .ci/run"]
fn a_login_is_never_sent_in_plain_text_to_a_remote_looking_host_end_to_end() {
    let host = require_remote_looking_loopback_name();
    let smtp = TestSmtp::start_with(Options {
        auth: Some(("news".into(), SMTP_PW.into())),
        ..Options::default()
    });
    let port = smtp.addr().port();
    let p = Project::new()
        .file("bulletin.toml", config(&smtp, ""))
        .file("n.md", "---\nsubject: s\n---\nHello\n")
        .file("m.csv", "email\nm1@example.org\n")
        .env("BULLETIN_SMTP_PASSWORD", SMTP_PW);
    let plain = format!("smtp://news@{host}:{port}?tls=none");
    p.run(&["send", "n.md", "--list", "m.csv", "--yes", "--smtp", &plain])
        .code(1)
        .stderr_has("refusing to send a password in plain text");
    assert_eq!(smtp.sessions(), 0, "not even a connection");
    for url in [format!("smtp://news@{host}:{port}"), format!("smtp://{host}:{port}")] {
        p.run(&["send", "n.md", "--list", "m.csv", "--yes", "--smtp", &url])
            .code(1)
            .stderr_has("does not offer STARTTLS")
            .stderr_has("nothing was sent");
    }
    assert_eq!(smtp.attempts(Stage::Auth), 0, "AUTH never sent in plain text");
    assert_eq!(smtp.attempts(Stage::Mail), 0);
    assert!(smtp.messages().is_empty());
}

#[test]
fn a_tls_failure_aborts_with_nothing_sent_and_no_fallback_to_plain_text() {
    let smtp = TestSmtp::start_with(Options {
        auth: Some(("news".into(), SMTP_PW.into())),
        ..Options::default()
    });
    let port = smtp.addr().port();
    let p = Project::new()
        .file("bulletin.toml", config(&smtp, ""))
        .file("n.md", "---\nsubject: s\n---\nHello\n")
        .file("m.csv", "email\nm1@example.org\nm2@example.org\n")
        .env("BULLETIN_SMTP_PASSWORD", SMTP_PW);
    for url in [
        format!("smtps://127.0.0.1:{port}"),
        format!("smtps://news@127.0.0.1:{port}"),
    ] {
        let run = p.run(&["send", "n.md", "--list", "m.csv", "--yes", "--smtp", &url]);
        run.code(1).stderr_has("nothing was sent").stderr_has("(TLS)");
        assert_run_clean(&run);
    }
    assert!(smtp.sessions() <= 2, "one attempt per run, no plain-text retry");
    assert_eq!(smtp.attempts(Stage::Ehlo), 0, "the plain-text server never heard EHLO");
    assert_eq!(smtp.attempts(Stage::Auth), 0);
    assert!(smtp.messages().is_empty());
}
