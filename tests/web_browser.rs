//! `bulletin serve` in a real browser (Debian's headless Chromium, driven by playwright-core
//! from `tests/browser/`): press the unsubscribe button and find the address in the
//! suppression file; the archive index and an issue page do not scroll sideways at 375 px.
//! The run saves the screenshots in `docs/`. Needs `chromium` and `npm ci` in tests/browser
//! (`.ci/run` installs both).

use std::path::Path;
use std::process::Command;

use crate::support::project::Project;
use crate::support::serve::{Server, token, web_project};
use crate::support::smtp_server::TestSmtp;

#[test]
#[ignore = "needs chromium and tests/browser/node_modules (.ci/run installs them)"]
fn a_member_unsubscribes_in_chromium_and_the_archive_fits_a_phone() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let browser = root.join("tests/browser");
    assert!(
        browser.join("node_modules/playwright-core").is_dir(),
        "run `npm ci` in tests/browser first"
    );
    // A real issue, sent, then archived.
    let smtp = TestSmtp::start();
    let p: Project = web_project()
        .file(
            "newsletters/issue.md",
            std::fs::read(root.join("newsletters/2026-12-first-hundred-days.md")).unwrap(),
        )
        .file(
            "lists/members.csv",
            std::fs::read(root.join("lists/members.csv")).unwrap(),
        );
    let config = p.read("bulletin.toml");
    let p = p.file(
        "bulletin.toml",
        format!(
            "{config}\n[archive]\nbase_url = \"https://news.example.org\"\n[smtp]\nurl = \"{}\"\nrate = [\"1000/s\"]\n",
            smtp.url()
        ),
    );
    p.run(&["send", "newsletters/issue.md", "--list", "lists/members.csv", "--yes"])
        .success();
    p.run(&["archive"]).success().stdout_has("wrote 1 issue");

    let server = Server::start(&p, &["--archive", "public"]);
    let docs = root.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    let out = Command::new("node")
        .arg(browser.join("run.mjs"))
        .arg(&server.base)
        .arg(format!("/unsubscribe/{}", token("lucia.ferreira@example.org")))
        .arg(&docs)
        .current_dir(&browser)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"index_overflow\":0"), "{stdout}");
    let file = p.read("lists/unsubscribed.csv");
    assert!(
        file.lines()
            .any(|l| l.starts_with("lucia.ferreira@example.org,unsubscribe,")),
        "{file}"
    );
    assert!(docs.join("unsubscribe-confirm.png").is_file());
    assert!(docs.join("archive-index.png").is_file());
}
