//! Tested as users see it: the live preview in headless Chromium (tests/browser/preview.mjs),
//! which also renders the screenshots in docs/ and checks the HTML with doiuse-email.
//! `.ci/run` installs chromium and the script's npm packages (tests/browser/package.json).

use std::path::Path;
use std::process::Command;

use crate::live_preview::{LIST, NL, Server};
use crate::support::project::Project;

#[test]
#[ignore = "needs chromium and tests/browser's npm packages; run by .ci/run"]
fn live_preview_in_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let browser = root.join("tests/browser");
    assert!(
        browser.join("node_modules/playwright-core").exists(),
        "run `npm ci --prefix tests/browser` (or `npm install`) first"
    );
    let newsletter = "---\nsubject: \"Hello {{ first_name }} — March news\"\npreheader: Three dates for your calendar\n---\n\
        # March at the Example Network\n\n\
        ![Marchers on Main Street at dusk](images/march.png)\n*Photo: Ana López*\n\n\
        Dear {{ first_name }}, First version of this issue. Here is what is coming up:\n\n\
        | Date | What | Where |\n|---|---|---|\n\
        | 12 March | Know-your-rights training, with interpretation into Spanish and Tagalog | Main library, community room B |\n\
        | 19 March | Coat drive | https://example.org/a/very/long/link/that/would/widen/a/table/on/a/phone |\n\n\
        Read [the agenda](https://example.org/agenda) before you come.\n\n\
        [Support the coat drive](https://example.org/donate \"button\")\n\nIn solidarity,\nThe Example Network team\n";
    let p = Project::new()
        .file(NL, newsletter)
        .file(
            "newsletters/images/march.png",
            std::fs::read(root.join("tests/fixtures/compose/march.png")).unwrap(),
        )
        .file(
            "newsletters/n.es.md",
            "---\nsubject: \"Hola {{ first_name }}\"\npreheader: Tres fechas\n---\n# Marzo\n\nVersión en español.\n",
        )
        .file(LIST, "email,first_name\nana@example.org,Ana\nbo@example.org,Bo\n");
    let server = Server::start(&p);
    let docs = root.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    let out = Command::new("node")
        .arg(browser.join("preview.mjs"))
        .arg(format!("http://{}/", server.addr))
        .arg(p.path().join(NL))
        .arg(p.path().join(LIST))
        .arg(&docs)
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(result["subject"], "Hello Ana — March news");
    assert_eq!(result["preheader"], "Three dates for your calendar");
    assert_eq!(result["editedText"], true);
    assert!(result["updateMs"].as_u64().unwrap() < 2000, "{result}");
    assert!(result["mobileScrollWidth"].as_u64().unwrap() <= 375);
    assert_eq!(result["screenshots"].as_array().unwrap().len(), 4);
    assert_eq!(result["listEdit"], "Hello Anabel — March news");
    assert_eq!(result["languages"], serde_json::json!(["", "en", "es"]));
    assert_eq!(result["spanishSubject"], "Hola Anabel");
    assert_eq!(result["spanishLang"], "es");
    assert_eq!(result["backToOwn"], true);
    assert_eq!(result["darkPane"], result["darkEmulated"]);
}
