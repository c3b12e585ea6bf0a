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
