//! Issue 12, inputs that still broke it: Markdown nested thousands deep, link schemes that
//! run code or go nowhere, and errors that named internal templates instead of the
//! newsletter's lines. The real (debug) binary, on every command that renders.
//!
//! (A file of its own while tests/ is being merged into one crate; it moves into
//! tests/main.rs with the rest.)

use crate::support::project::Project;

const MEMBERS: &str = "email,first_name\nana@example.org,Ana\nben@example.org,Ben\n";

fn project(newsletter: &str) -> Project {
    Project::new().file("n.md", newsletter).file("m.csv", MEMBERS)
}

/// check, preview and send --dry-run all finish, without a crash.
fn every_command_survives(p: &Project) {
    p.run(&["check", "n.md", "--list", "m.csv"])
        .success()
        .stdout_has("nested more than 32 levels deep");
    p.run(&["preview", "n.md", "--list", "m.csv", "--out", "pv"]).success();
    p.run(&["send", "n.md", "--list", "m.csv", "--dry-run", "--out", "dr"])
        .success();
}

#[test]
fn a_hundred_thousand_quote_levels_do_not_crash_check() {
    let p = project(&format!(
        "---\nsubject: Deep\n---\nHello\n\n{} bottom\n",
        ">".repeat(100_000)
    ));
    every_command_survives(&p);
    p.run(&["check", "n.md", "--list", "m.csv"])
        .stdout_has("warning: n.md:6: quotes, lists or emphasis nested more than 32 levels deep");
    let html = p.read("pv/email.html");
    assert_eq!(html.matches("<blockquote").count(), 32);
    assert!(html.contains("bottom") && p.read("pv/email.txt").contains("bottom"));
}

#[test]
fn five_thousand_nested_list_items_do_not_crash_any_command() {
    let items: String = (0..5000).map(|i| format!("{}- item{i}\n", "  ".repeat(i))).collect();
    every_command_survives(&project(&format!("---\nsubject: Deep\n---\n{items}")));
    every_command_survives(&project(&format!("---\nsubject: Deep\n---\n{}x\n", "- ".repeat(5000))));
}

#[test]
fn javascript_links_are_stripped_and_reported() {
    let p = project(
        "---\nsubject: s\n---\nHello\n\n[click](javascript:alert(1)) and [b]( JaVaScRiPt:x)\n\n\
         [c](&#106;avascript:x) [d](<java\tscript:x>)\n\n![pic](data:image/png;base64,AA \"1x1\")\n\n\
         [v](vbscript:x) [f](file:///etc/passwd)\n",
    );
    let run = p.run(&["check", "n.md", "--list", "m.csv"]);
    run.code(1);
    for (line, scheme) in [
        (6, "javascript"),
        (8, "javascript"),
        (10, "data"),
        (12, "vbscript"),
        (12, "file"),
    ] {
        assert!(
            run.lines("error: ")
                .iter()
                .any(|l| l.starts_with(&format!("error: n.md:{line}: ")) && l.contains(&format!("`{scheme}:` scheme"))),
            "{scheme} on line {line}: {:?}",
            run.lines("error: ")
        );
    }
    assert_eq!(run.lines("error: n.md:8:").len(), 2);
    // Nothing is rendered while there are errors: preview and send refuse too.
    p.run(&["preview", "n.md", "--list", "m.csv", "--out", "pv"]).code(1);
    p.run(&["send", "n.md", "--list", "m.csv", "--dry-run", "--out", "dr"])
        .code(1);
}

#[test]
fn a_link_without_a_scheme_is_an_error_with_the_fix() {
    let p = project(
        "---\nsubject: s\n---\n[site](example.org/x)\n[www](www.example.org)\n[mail](name@example.org)\n\n\
         [top](#section)\n",
    );
    p.run(&["check", "n.md", "--list", "m.csv"])
        .code(1)
        .stdout_has("error: n.md:4: link `example.org/x` has no scheme, so mail clients cannot open it: write https://example.org/x")
        .stdout_has("error: n.md:5: link `www.example.org` has no scheme, so mail clients cannot open it: write https://www.example.org")
        .stdout_has("error: n.md:6: link `name@example.org` has no scheme, so mail clients cannot open it: write mailto:name@example.org")
        .stdout_has("warning: n.md:8: link `#section` jumps within the message");
}

#[test]
fn web_links_and_merge_field_links_still_work() {
    let p = Project::new()
        .file(
            "n.md",
            "---\nsubject: s\n---\n[a](https://e.org) [b](mailto:x@example.org) [c](tel:+15551234) <x@example.org>\n\n\
             [profile]({{ link }})\n",
        )
        .file(
            "m.csv",
            "email,link\nana@example.org,javascript:alert(1)\nben@example.org,https://e.org/ben\n",
        );
    p.run(&["check", "n.md", "--list", "m.csv"])
        .success()
        .stdout_lacks("error:");
    p.run(&["preview", "n.md", "--list", "m.csv", "--out", "pv"]).success();
    let html = p.read("pv/email.html");
    assert!(
        html.contains("href=\"#\"") && !html.to_ascii_lowercase().contains("javascript"),
        "{html}"
    );
    p.run(&["preview", "n.md", "--list", "m.csv", "--out", "pv2", "--row", "2"])
        .success();
    assert!(p.read("pv2/email.html").contains("e.org&#x2f;ben"));
}

#[test]
fn a_bad_from_names_the_newsletter_line() {
    let p = project("---\nsubject: s\nfrom: \"Bad <not an address>\"\n---\nHi\n");
    p.run(&["check", "n.md", "--list", "m.csv"])
        .code(1)
        .stdout_has("error: n.md:3: sender \"Bad <not an address>\" is not `Name <address>`");
    let p = project("---\nsubject: s\nid: x\nreply_to: nope\n---\nHi\n");
    p.run(&["check", "n.md", "--list", "m.csv"])
        .code(1)
        .stdout_has("error: n.md:4: reply_to \"nope\" is not an address");
    let p = project("---\nsubject: s\nlang: \"en us\"\n---\nHi\n");
    p.run(&["check", "n.md", "--list", "m.csv"])
        .code(1)
        .stderr_has("n.md:3: lang \"en us\" is not a language tag");
}

#[test]
fn an_unknown_filter_in_the_body_names_the_newsletter_line() {
    let body = "Paragraph.\n\n".repeat(4);
    let p = project(&format!(
        "---\nsubject: s\n---\n{body}\n\nDear {{{{ first_name | shout }}}},\n"
    ));
    let run = p.run(&["check", "n.md", "--list", "m.csv"]);
    run.code(1).stdout_has("error: n.md:14: unknown filter");
    assert!(
        !run.stdout.contains("body.html") && !run.stdout.contains("body.txt"),
        "{}",
        run.stdout
    );
    p.run(&["preview", "n.md", "--list", "m.csv", "--out", "pv"])
        .code(1)
        .stderr_has("n.md:14: unknown filter")
        .stderr_lacks("body.html");
}

#[test]
fn a_syntax_error_in_the_subject_names_the_newsletter_line() {
    let p = project("---\nsubject: \"Hi {{ first_name | }}\"\n---\nHi\n");
    p.run(&["check", "n.md", "--list", "m.csv"])
        .code(1)
        .stdout_has("error: n.md:2: merge field syntax")
        .stdout_lacks("subject:1");
    let p = project("---\nid: a\nsubject: \"Hi {{ first_name | nosuch }}\"\n---\nHi\n");
    p.run(&["check", "n.md", "--list", "m.csv"])
        .code(1)
        .stdout_has("error: n.md:3: unknown filter")
        .stdout_lacks("subject:1");
}
