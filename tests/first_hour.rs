//! The first hour of a new user (issue 18): the messages a volunteer meets when something is
//! not set up yet or written the way another tool wants it, and the small things that cost
//! trust. Each message is asserted in the words the user reads.

use crate::support::project::{DEFAULT_CONFIG, Project, members, sending};
use crate::support::smtp_server::TestSmtp;

const NEWSLETTER: &str = "---\nsubject: \"News for {{ first_name | default('you') }}\"\nid: news-1\n---\n\
Dear {{ first_name | default(\"friend\") }},\n\nThe news.\n";

#[test]
fn no_settings_file_here_or_above_says_so_and_how_to_make_one() {
    let p = Project::empty().file("n.md", NEWSLETTER).file("m.csv", members(1));
    for cmd in ["check", "preview", "send"] {
        p.run(&[cmd, "n.md", "--list", "m.csv"])
            .code(1)
            .stderr_has("no bulletin.toml in")
            .stderr_has("`bulletin init`")
            .stderr_lacks("no sender");
    }
}

#[test]
fn the_settings_file_is_found_in_a_folder_above() {
    let p = Project::new()
        .file("newsletters/n.md", NEWSLETTER)
        .file("lists/m.csv", members(1));
    p.run_in("newsletters", &["check", "n.md", "--list", "../lists/m.csv"])
        .success()
        .stdout_has("1 recipient, 0 rows skipped; 0 errors");
}

#[test]
fn a_new_text_under_the_id_of_a_campaign_sent_to_the_end_is_refused_by_send_and_warned_by_check() {
    let smtp = TestSmtp::start();
    let p = sending(&smtp.url(), NEWSLETTER, members(2), "");
    p.run(&["send", "n.md", "--list", "m.csv", "--yes"]).success();
    let p = p.file("n.md", NEWSLETTER.replace("The news.", "Other news."));
    p.run(&["check", "n.md", "--list", "m.csv"])
        .success()
        .stdout_has("warning")
        .stdout_has("was already sent (2 sent, 0 failed)")
        .stdout_has("change `id:` in the front matter or the file name to start a new campaign");
    p.run(&["send", "n.md", "--list", "m.csv", "--yes"])
        .code(1)
        .stderr_has("change `id:` in the front matter or the file name to start a new campaign");
    assert_eq!(smtp.messages().len(), 2, "nothing more sent");
    // A new id is a new campaign.
    let p = p.file("n.md", NEWSLETTER.replace("id: news-1", "id: news-2"));
    p.run(&["send", "n.md", "--list", "m.csv", "--yes"])
        .success()
        .stdout_has("2 sent");
}

#[test]
fn check_matches_the_members_one_by_one_before_saying_already_sent() {
    let smtp = TestSmtp::start();
    let p = sending(&smtp.url(), NEWSLETTER, members(2), "");
    p.run(&["send", "n.md", "--list", "m.csv", "--yes"]).success();
    // Another text, and a list as long as the one sent to but with a new member in it: not
    // "already sent" (send would reach the new member as a resume), whatever the counts say.
    let other = members(3)
        .lines()
        .filter(|l| !l.contains("Member2"))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    let p = p
        .file("n.md", NEWSLETTER.replace("The news.", "Other news."))
        .file("m.csv", other);
    p.run(&["check", "n.md", "--list", "m.csv"])
        .success()
        .stdout_lacks("already sent");
    // The same members as sent to: it is.
    let p = p.file("m.csv", members(2));
    p.run(&["check", "n.md", "--list", "m.csv"])
        .success()
        .stdout_has("was already sent (2 sent, 0 failed)");
}

#[test]
fn a_campaign_stopped_halfway_and_edited_is_still_a_resume() {
    let smtp = TestSmtp::start();
    let p = sending(&smtp.url(), NEWSLETTER, members(3), "");
    p.run(&["send", "n.md", "--list", "m.csv", "--yes", "--limit", "1"])
        .success();
    let p = p.file("n.md", NEWSLETTER.replace("The news.", "Corrected news."));
    p.run(&["check", "n.md", "--list", "m.csv"])
        .success()
        .stdout_lacks("already sent");
    p.run(&["send", "n.md", "--list", "m.csv", "--yes"])
        .code(1)
        .stderr_has("--allow-changed");
    p.run(&["send", "n.md", "--list", "m.csv", "--yes", "--allow-changed"])
        .success()
        .stdout_has("2 sent");
}

#[test]
fn counts_read_as_a_person_writes_them() {
    let p = Project::new()
        .file("bulletin.toml", format!("suppress = [\"s.csv\"]\n{DEFAULT_CONFIG}"))
        .file("s.csv", "email\n")
        .file("n.md", NEWSLETTER)
        .file("m.csv", "email,first_name\na@example.org,A\nnot-an-address,B\n");
    p.run(&["check", "n.md", "--list", "m.csv"])
        .stdout_has("1 recipient, 1 row skipped;");
    p.run(&["send", "n.md", "--list", "m.csv", "--dry-run"])
        .success()
        .stdout_has("wrote 1 message to")
        .stdout_has("1 row skipped");
    p.run(&["suppress", "a@example.org"])
        .success()
        .stdout_has("added 1 address to");
    p.run(&["suppress", "a@example.org"])
        .success()
        .stdout_has("nothing added: the address was already in");
}

/// `check n.md --list m.csv` on a project with `newsletter` and a two-column list.
fn check_newsletter(newsletter: &str) -> crate::support::project::Run {
    Project::new()
        .file("n.md", newsletter)
        .file("m.csv", "email,First Name\na@example.org,Ann\n")
        .run(&["check", "n.md", "--list", "m.csv"])
}

#[test]
fn yaml_that_needs_quotes_says_to_quote_the_value() {
    check_newsletter("---\nsubject: Agenda: the first 100 days\n---\nHi\n")
        .code(1)
        .stderr_has("n.md:2: front matter:")
        .stderr_has("mapping values are not allowed")
        .stderr_has("hint: put the whole value in double quotes: subject: \"Agenda: the first 100 days\"");
}

#[test]
fn a_header_spelled_as_in_the_spreadsheet_suggests_the_field() {
    check_newsletter("---\nsubject: Hi\n---\nDear {{ First Name }},\n")
        .code(1)
        .stdout_has("n.md:4: `{{ First Name }}`: merge fields use the column name in lower case")
        .stdout_has("write `{{ first_name }}`")
        .stdout_lacks("unexpected identifier");
}

#[test]
fn an_unknown_field_suggests_the_nearest_column() {
    check_newsletter("---\nsubject: Hi\n---\nDear {{ frist_name }},\n")
        .code(1)
        .stdout_has("unknown merge field `frist_name`: did you mean `{{ first_name }}`?");
}

#[test]
fn placeholders_of_other_tools_are_errors_showing_the_bulletin_spelling() {
    check_newsletter("---\nsubject: \"News for *|FNAME|*\"\n---\nDear {first_name},\n\nBye *|EMAIL|*\n")
        .code(1)
        .stdout_has("n.md:2: `*|FNAME|*` is Mailchimp's spelling and would be sent as it is: write `{{ first_name }}`")
        .stdout_has("n.md:4: `{first_name}` would be sent as it is: merge fields take two braces, `{{ first_name }}`")
        .stdout_has("n.md:6: `*|EMAIL|*` is Mailchimp's spelling")
        .stdout_has("write `{{ email }}`");
}

#[test]
fn links_markdown_would_send_as_text_are_caught_and_a_capital_button_title_is_accepted() {
    check_newsletter(
        "---\nsubject: Hi\n---\nRead [the agenda] (https://example.org/a).\n\nAnd [this](https://example.org/b\n",
    )
    .code(1)
    .stdout_has("n.md:4: a link written `[text] (url)` is sent as text: remove the space")
    .stdout_has("n.md:6: a link's `](` is never closed on its line");
    let p = Project::new()
        .file(
            "n.md",
            "---\nsubject: Hi\n---\n[Give today](https://example.org/give \"Button\")\n",
        )
        .file("m.csv", "email\na@example.org\n");
    p.run(&["check", "n.md", "--list", "m.csv"]).success();
    let pv = p.preview("n.md", &["m.csv"], &[]);
    assert!(pv.html.contains("Give today"), "{}", pv.html);
    assert!(
        !pv.html.contains("title=\"Button\""),
        "rendered as a button, not a titled link: {}",
        pv.html
    );
    assert!(pv.html.contains("bgcolor"), "a bulletproof button cell: {}", pv.html);
}

#[test]
fn a_short_csv_row_is_a_missing_value_and_a_long_one_an_unquoted_delimiter() {
    let p = Project::new()
        .file("n.md", "---\nsubject: Hi\n---\nHi\n")
        .file("short.csv", "email,first_name,city\na@example.org,Ann\n")
        .file("long.csv", "email,first_name\na@example.org,Ann,Jr\n");
    p.run(&["check", "n.md", "--list", "short.csv"])
        .code(1)
        .stderr_has("short.csv:2: this row has 2 fields but the header has 3: it has no value for `city`")
        .stderr_lacks("double quotes");
    p.run(&["check", "n.md", "--list", "long.csv"]).code(1).stderr_has(
        "long.csv:2: this row has 3 fields but the header has 2: a value containing `,` must be in double quotes",
    );
}

#[test]
fn open_without_a_browser_writes_the_files_says_where_and_exits_0() {
    let p = Project::new().file("n.md", NEWSLETTER).file("m.csv", members(1));
    p.run(&["preview", "n.md", "--list", "m.csv", "--out", "pv", "--open"])
        .success()
        .stdout_has("pv/email.html")
        .stderr_has("no browser to open it here: open pv/email.html yourself");
    assert!(p.join("pv/email.html").is_file());
}

#[test]
fn preview_without_a_list_uses_one_invented_member() {
    let p = Project::new().file("n.md", NEWSLETTER);
    p.run(&["preview", "n.md", "--out", "pv"])
        .success()
        .stderr_has("preview for an invented member")
        .stderr_has("add --list lists/test.csv");
    assert!(
        p.read("pv/email.txt").contains("Dear Sam,"),
        "{}",
        p.read("pv/email.txt")
    );
}

#[test]
fn preview_without_a_list_takes_the_member_from_the_lists_of_the_audience() {
    let p = Project::new().file("n.md", with_audience()).file("m.csv", members(2));
    p.run(&["preview", "n.md", "--out", "pv"])
        .success()
        .stderr_has("preview for ")
        .stderr_lacks("invented member");
    assert!(
        p.read("pv/email.txt").contains("Dear Member1,"),
        "{}",
        p.read("pv/email.txt")
    );
    p.run(&["preview", "n.md", "--out", "pv", "--row", "2"]).success();
    assert!(p.read("pv/email.txt").contains("Dear Member2,"));
}

/// The newsletter with its audience in the front matter: the list `m.csv`.
fn with_audience() -> String {
    NEWSLETTER.replace("id: news-1\n", "id: news-1\naudience: { lists: [m.csv] }\n")
}

#[test]
fn live_preview_without_a_list_uses_the_audience_or_one_invented_member() {
    let p = Project::new().file("n.md", with_audience()).file("m.csv", members(2));
    let view = crate::live_preview::Server::spawn(&p, &["preview", "n.md", "--serve", "--port", "0"]).view("");
    assert_eq!(view["ok"], true, "{view}");
    assert!(
        view["view"]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("Dear Member1,"),
        "{view}"
    );
    assert_eq!(view["view"]["members"].as_array().map(Vec::len), Some(2));

    let p = Project::new().file("n.md", NEWSLETTER);
    let view = crate::live_preview::Server::spawn(&p, &["preview", "n.md", "--serve", "--port", "0"]).view("");
    assert_eq!(view["ok"], true, "{view}");
    assert!(
        view["view"]["text"].as_str().unwrap_or_default().contains("Dear Sam,"),
        "{view}"
    );
}

#[test]
fn a_test_send_is_marked_and_the_plan_report_and_campaigns_show_the_subject_a_member_sees() {
    let smtp = TestSmtp::start();
    let p = sending(&smtp.url(), NEWSLETTER, members(2), "");
    // Not a terminal, so the progress is a plain line; its last one names the subject too.
    p.run(&["send", "n.md", "--list", "m.csv", "--test", "--yes"])
        .success()
        .stderr_has("subject:    [Test] News for you")
        .stderr_has("progress: “[Test] News for you” 2/2 done, 0 failed");
    let subjects: Vec<String> = smtp
        .messages()
        .iter()
        .map(|m| {
            let parsed = mail_parser::MessageParser::default().parse(&m.data).expect("parses");
            parsed.subject().unwrap_or_default().to_owned()
        })
        .collect();
    assert!(
        subjects.iter().all(|s| s.starts_with("[Test] News for Member")),
        "{subjects:?}"
    );
    p.run(&["send", "n.md", "--list", "m.csv", "--yes"])
        .success()
        .stderr_has("subject:    News for you")
        .stderr_lacks("{{");
    assert_eq!(smtp.messages().len(), 4);
    assert!(
        smtp.messages()[2..]
            .iter()
            .all(|m| !String::from_utf8_lossy(&m.data).contains("[Test]")),
        "the real send has no prefix"
    );
    p.run(&["report", "news-1"])
        .success()
        .stdout_has("campaign news-1 — News for you")
        .stdout_lacks("{{");
    let out = p.run(&["campaigns"]);
    out.success().stdout_has("news-1").stdout_has("News for you");
    let json = p.run(&["campaigns", "--json"]);
    json.success();
    let rows: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    let real = rows
        .as_array()
        .expect("an array")
        .iter()
        .find(|r| r["id"] == "news-1")
        .expect("news-1 listed");
    assert_eq!(
        (real["sent"].as_u64(), real["failed"].as_u64(), real["pending"].as_u64()),
        (Some(2), Some(0), Some(0))
    );
    assert_eq!(real["subject"], "News for you");
    assert!(rows.as_array().unwrap().iter().any(|r| r["test"] == true));
}

#[test]
fn the_test_prefix_is_configurable() {
    let smtp = TestSmtp::start();
    let p = sending(&smtp.url(), NEWSLETTER, members(1), "");
    let config = format!("test_subject_prefix = \"TEST: \"\n{}", p.read("bulletin.toml"));
    let p = p.file("bulletin.toml", config);
    p.run(&["send", "n.md", "--list", "m.csv", "--test", "--yes"]).success();
    let m = &smtp.messages()[0];
    let parsed = mail_parser::MessageParser::default().parse(&m.data).expect("parses");
    assert_eq!(parsed.subject(), Some("TEST: News for Member1"));
}

#[test]
fn completions_for_every_shell_a_man_page_and_the_commit_in_the_version() {
    let p = Project::empty();
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = p.run(&["completions", shell]);
        out.success().stdout_has("campaigns").stdout_has("preview");
    }
    let bash = p.run(&["completions", "bash"]);
    let script = p.path().join("bulletin.bash");
    std::fs::write(&script, &bash.stdout).unwrap();
    let syntax = std::process::Command::new("bash").arg("-n").arg(&script).status();
    if let Ok(status) = syntax {
        assert!(status.success(), "bash -n on the completion script");
    }
    p.run(&["man"])
        .success()
        .stdout_has(".TH bulletin 1")
        .stdout_has("BULLETIN SEND")
        .stdout_has("dry\\-run");
    let version = p.run(&["--version"]);
    version
        .success()
        .stdout_has(concat!("bulletin ", env!("CARGO_PKG_VERSION")));
    // In a git checkout the short commit follows in parentheses.
    if std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".git").exists() {
        assert!(version.stdout.trim_end().ends_with(')'), "{}", version.stdout);
    }
}

#[test]
fn init_with_flags_and_no_terminal_asks_nothing_and_starts_a_project_that_checks() {
    let p = Project::empty();
    p.run(&[
        "init",
        "ours",
        "--org",
        "Riverside Tenants",
        "--from",
        "Riverside News <news@riverside.example>",
        "--address",
        "12 Mill Lane, Riverside",
        "--smtp",
        "google",
    ])
    .success()
    .stdout_has("created ours/bulletin.toml")
    .stdout_has("created ours/newsletters/first-issue.md")
    .stdout_has("created ours/lists/test.csv")
    .stderr_lacks("Organisation name");
    let toml = p.read("ours/bulletin.toml");
    for want in [
        "from = \"Riverside News <news@riverside.example>\"",
        "name = \"Riverside Tenants\"",
        "postal_address = \"12 Mill Lane, Riverside\"",
        "url = \"smtps://news%40riverside.example@smtp.gmail.com:465\"",
    ] {
        assert!(toml.contains(want), "{want} in\n{toml}");
    }
    assert!(!toml.contains("Harbor Valley"), "not the example's organisation");
    // Ready for the bulk-sender rules like the example: DKIM keys for the sender's domain and
    // a one-click unsubscribe secret.
    assert!(toml.contains("domain = \"riverside.example\""), "{toml}");
    assert!(p.join("ours/keys/news-rsa.riverside.example.pem").is_file());
    assert!(p.join("ours/.bulletin/unsubscribe.secret").is_file());
    assert_eq!(
        p.read("ours/lists/test.csv"),
        "email,first_name\nnews@riverside.example,\n"
    );
    p.run_in(
        "ours",
        &["check", "newsletters/first-issue.md", "--list", "lists/test.csv"],
    )
    .success()
    .stdout_has("0 errors");
    let pv = p.run_in(
        "ours",
        &[
            "preview",
            "newsletters/first-issue.md",
            "--list",
            "lists/test.csv",
            "--out",
            "pv",
        ],
    );
    pv.success();
    assert!(p.read("ours/pv/email.txt").contains("Dear friend,"));
    // Missing flags without a terminal: an error naming them, nothing written.
    p.run(&["init", "half", "--org", "X"])
        .code(1)
        .stderr_has("needs --from, --address");
    assert!(!p.join("half/bulletin.toml").exists());
}

#[test]
fn init_with_a_relay_whose_login_is_not_the_sender_leaves_it_for_the_user_to_write() {
    let p = Project::empty();
    for (relay, url) in [
        ("ses", "smtp://SMTP-USER@email-smtp.REGION.amazonaws.com:587"),
        ("mailgun", "smtp://SMTP-USER@smtp.mailgun.org:587"),
        ("postmark", "smtp://SMTP-USER@smtp.postmarkapp.com:587"),
        ("postfix", "smtp://SMTP-USER@HOST:587"),
    ] {
        let run = p.run(&[
            "init",
            relay,
            "--org",
            "Riverside Tenants",
            "--from",
            "Riverside News <news@riverside.example>",
            "--address",
            "12 Mill Lane, Riverside",
            "--smtp",
            relay,
        ]);
        run.success()
            .stderr_has("relay: complete the url in")
            .stderr_has(&format!("--smtp {url}"));
        let toml = p.read(&format!("{relay}/bulletin.toml"));
        assert!(toml.contains(&format!("# url = \"{url}\"")), "{toml}");
        assert!(
            !toml.contains("news%40riverside.example@"),
            "the sender is not the {relay} login:\n{toml}"
        );
        p.run_in(
            relay,
            &["check", "newsletters/first-issue.md", "--list", "lists/test.csv"],
        )
        .success()
        .stdout_has("0 errors");
    }
}

#[test]
fn init_on_a_terminal_asks_and_offers_the_common_relays() {
    if std::process::Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` to give bulletin a pseudo-terminal");
        return;
    }
    let p = Project::empty();
    let answers = "Riverside Tenants\nRiverside News <news@riverside.example>\n12 Mill Lane, Riverside\n3\neu-west-1\nAKIAEXAMPLE\n\n";
    let bin = env!("CARGO_BIN_EXE_bulletin");
    let mut child = std::process::Command::new("script")
        .args(["-qec", &format!("{bin} init ours"), "/dev/null"])
        .current_dir(p.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("script");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), answers.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    for relay in [
        "Google Workspace",
        "Microsoft 365",
        "Amazon SES",
        "Mailgun",
        "Postmark",
        "Postfix smarthost",
    ] {
        assert!(shown.contains(relay), "{relay} offered in\n{shown}");
    }
    let toml = p.read("ours/bulletin.toml");
    assert!(
        toml.contains("url = \"smtp://AKIAEXAMPLE@email-smtp.eu-west-1.amazonaws.com:587\""),
        "{toml}"
    );
    assert!(toml.contains("name = \"Riverside Tenants\""), "{toml}");
    assert_eq!(
        p.read("ours/lists/test.csv"),
        "email,first_name\nnews@riverside.example,\n"
    );
}
