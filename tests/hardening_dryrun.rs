//! Issue 12, dry runs at a million: `send --dry-run --mbox FILE` writes one mboxrd file that an
//! independent reader (Python's `mailbox`) reads back message for message; the `.eml` folder,
//! written by several threads, keeps its names in list order; and a dry run in which any
//! member fails leaves nothing behind, with the preflight's own diagnostics.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::support::project::Project;

/// A body with lines a mbox reader could take for the start of a new message.
const NEWSLETTER: &str = "---\nsubject: \"News for {{ first_name | default('you') }}\"\nid: news-1\n---\n\
Dear {{ first_name | default(\"friend\") }},\n\n\
From the organisers: the news.\n\n\
From here on, more news.\n";

fn addr(i: usize) -> String {
    format!("m{i}@example.org")
}

/// `n` members, `m1@…` to `mN@…`, with an invalid and a duplicate row after the first.
fn project(newsletter: &str, n: usize, first_name: impl Fn(usize) -> String) -> Project {
    let mut csv = String::from("email,first_name\n");
    for i in 1..=n {
        csv.push_str(&format!("{},{}\n", addr(i), first_name(i)));
        if i == 1 {
            csv.push_str("not an address,X\nM1@EXAMPLE.ORG,Again\n");
        }
    }
    Project::new().file("n.md", newsletter).file("m.csv", csv)
}

/// Every path under `dir`, relative to it.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A message with its line ends as LF, without the headers that differ between runs and with
/// its (random) MIME boundary as `BOUNDARY`.
fn comparable(message: &[u8]) -> String {
    let mut text = String::from_utf8_lossy(message).replace("\r\n", "\n");
    if let Some((_, rest)) = text.split_once("boundary=\"") {
        let boundary = rest.split('"').next().unwrap_or_default().to_owned();
        text = text.replace(&boundary, "BOUNDARY");
    }
    text.lines()
        .filter(|l| !l.starts_with("Message-ID:") && !l.starts_with("Date:"))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn dry_run_to_mbox_round_trips_through_python_mailbox() {
    let p = project(NEWSLETTER, 150, |i| format!("Member{i}"));
    p.run(&["send", "n.md", "--list", "m.csv", "--dry-run", "--mbox", "out.mbox"])
        .success()
        .stdout_has("wrote 150 messages to out.mbox");
    p.run(&["send", "n.md", "--list", "m.csv", "--dry-run", "--out", "eml"])
        .success();
    let mode = std::fs::metadata(p.join("out.mbox")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let mbox = std::fs::read(p.join("out.mbox")).unwrap();
    assert!(
        mbox.starts_with(b"From news@example.org "),
        "the envelope sender starts the entry"
    );
    assert!(!mbox.contains(&b'\r'), "an mbox has LF line ends");

    // Python's reader: the count, each message parsed without defects, the body lines that
    // start with "From " quoted once (mboxrd); each message, unquoted, is the .eml's.
    let script = r#"
import email, email.policy, mailbox, re, sys
box = mailbox.mbox(sys.argv[1], create=False)
keys = box.keys()
print(len(keys))
for k in keys:
    raw = box.get_bytes(k)
    assert b"\n>From the organisers" in raw
    # Python reads mboxo: undo mboxrd's quoting, one ">" off each ">…From " line.
    raw = re.sub(rb"(?m)^>(>*From )", rb"\1", raw)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert not msg.defects, msg.defects
    for part in msg.walk():
        assert not part.defects, part.defects
    text = msg.get_body(preferencelist=("plain",)).get_content()
    assert any(l.startswith("From the organisers") for l in text.splitlines()), text
    sys.stdout.buffer.write(b"\0" + raw)
"#;
    let out = Command::new("python3")
        .args(["-c", script, &p.join("out.mbox").display().to_string()])
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut parts = out.stdout.split(|&b| b == 0);
    assert_eq!(parts.next().unwrap(), b"150\n");
    let mut files: Vec<_> = std::fs::read_dir(p.join("eml"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 150);
    for (file, read_back) in files.iter().zip(parts) {
        assert_eq!(
            comparable(read_back),
            comparable(&std::fs::read(file).unwrap()),
            "{}",
            file.display()
        );
    }
}

#[test]
fn parallel_eml_files_keep_list_order_names() {
    // Enough members for several batches on several threads.
    let n = 500;
    let p = project(NEWSLETTER, n, |i| format!("Member{i}"));
    p.run(&["send", "n.md", "--list", "m.csv", "--dry-run"])
        .success()
        .stdout_has("wrote 500 messages to .bulletin/dry-run/news-1 (nothing sent; journal untouched; 2 rows skipped)");
    let dir = p.join(".bulletin/dry-run/news-1");
    let names = tree(&dir);
    let expected: Vec<String> = (1..=n).map(|i| format!("{i:06}-{}.eml", addr(i))).collect();
    assert_eq!(names, expected);
    for i in [1, 64, 65, 129, 500] {
        let eml = std::fs::read_to_string(dir.join(&expected[i - 1])).unwrap();
        assert!(
            eml.contains(&format!("To: Member{i} <{}>\r\n", addr(i))),
            "{}",
            expected[i - 1]
        );
        assert!(eml.contains(&format!("Dear Member{i},")));
    }
    assert!(tree(&p.join(".bulletin")).iter().all(|f| !f.contains(".tmp")));
}

#[test]
fn dry_run_with_an_error_leaves_nothing_behind() {
    // A bare field, empty for two members late in the list: the first batches are built and
    // written before the failure shows.
    let newsletter = NEWSLETTER.replace("| default(\"friend\") ", "");
    let p = project(&newsletter, 300, |i| {
        if i == 250 || i == 290 {
            String::new()
        } else {
            format!("Member{i}")
        }
    })
    .file("existing/keep.txt", "mine");
    let before = tree(p.path());

    let dry = p.run(&["send", "n.md", "--list", "m.csv", "--dry-run"]);
    dry.code(1)
        .stderr_has("for 2 members: m.csv:253, m.csv:293")
        .stderr_has("nothing was sent");
    let mbox = p.run(&["send", "n.md", "--list", "m.csv", "--dry-run", "--mbox", "all.mbox"]);
    mbox.code(1);
    p.run(&["send", "n.md", "--list", "m.csv", "--dry-run", "--out", "existing"])
        .code(1);
    p.run(&["send", "n.md", "--list", "m.csv", "--dry-run", "--out", "new/deep/dir"])
        .code(1);
    assert_eq!(tree(p.path()), before, "nothing written, nothing left");

    // The diagnostics are the preflight's, word for word as a real send prints them.
    let send = p.run(&[
        "send",
        "n.md",
        "--list",
        "m.csv",
        "--yes",
        "--smtp",
        "smtp://127.0.0.1:9",
    ]);
    send.code(1);
    assert_eq!(dry.stderr, send.stderr);
    assert_eq!(mbox.stderr, send.stderr);
}

#[test]
fn a_dry_run_into_an_existing_folder_replaces_its_own_names_and_keeps_the_rest() {
    let p = project(NEWSLETTER, 3, |i| format!("Member{i}"))
        .file("out/notes.txt", "mine")
        .file("out/000002-m2@example.org.eml", "stale");
    p.run(&["send", "n.md", "--list", "m.csv", "--dry-run", "--out", "out"])
        .success();
    let mut expected: Vec<String> = (1..=3).map(|i| format!("{i:06}-{}.eml", addr(i))).collect();
    expected.push("notes.txt".into());
    assert_eq!(tree(&p.join("out")), expected);
    assert!(p.read("out/000002-m2@example.org.eml").contains("Dear Member2,"));
}

#[test]
fn mbox_needs_a_dry_run_and_excludes_out() {
    let p = project(NEWSLETTER, 1, |_| "A".into());
    p.run(&["send", "n.md", "--list", "m.csv", "--mbox", "x.mbox"]).code(2);
    p.run(&[
        "send",
        "n.md",
        "--list",
        "m.csv",
        "--dry-run",
        "--mbox",
        "x.mbox",
        "--out",
        "d",
    ])
    .code(2);
    assert!(!p.join("x.mbox").exists());
}
