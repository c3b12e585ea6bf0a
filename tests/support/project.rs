//! A throw-away `bulletin` project: a temporary directory with a `bulletin.toml`, files
//! written into it, and the real binary run inside it with a clean environment.
//!
//! ```ignore
//! let out = Project::new()
//!     .file("newsletters/n.md", "---\nsubject: Hi\n---\nHello\n")
//!     .file("lists/m.csv", "email\na@example.org\n")
//!     .run(&["check", "newsletters/n.md", "--list", "lists/m.csv"]);
//! out.success().stdout_has("1 recipient,");
//! ```
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Settings most tests want: a sender, a footer with a postal address, a mailto unsubscribe.
pub const DEFAULT_CONFIG: &str = r##"from = "Example Network <news@example.org>"
reply_to = "info@example.org"
list_id = "Members <members.example.org>"

[organisation]
name = "Example Network"
postal_address = "PO Box 1, Oakland, CA 94601"
website = "https://example.org"

[unsubscribe]
mailto = "unsubscribe@example.org"

[theme]
brand_color = "#b5121b"
"##;

/// A temporary project directory, removed when dropped.
pub struct Project {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Project {
    /// A project with [`DEFAULT_CONFIG`] as its `bulletin.toml`.
    pub fn new() -> Project {
        Project::empty().file("bulletin.toml", DEFAULT_CONFIG)
    }

    /// An empty directory: no settings at all.
    pub fn empty() -> Project {
        Project {
            dir: tempfile::Builder::new()
                .prefix("bulletin-test")
                .tempdir()
                .expect("tempdir"),
            env: Vec::new(),
        }
    }

    /// Writes `contents` to `path` (relative to the project), creating parent directories.
    pub fn file(self, path: &str, contents: impl AsRef<[u8]>) -> Project {
        let full = self.dir.path().join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).expect("create parent directory");
        }
        std::fs::write(&full, contents).unwrap_or_else(|e| panic!("write {}: {e}", full.display()));
        self
    }

    /// Copies every file of `tests/fixtures/<name>/` into the project, keeping relative paths.
    pub fn fixture(mut self, name: &str) -> Project {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
                let path = entry.expect("directory entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let rel = path
                        .strip_prefix(&root)
                        .expect("under fixture root")
                        .to_string_lossy()
                        .into_owned();
                    self = self.file(&rel, std::fs::read(&path).expect("read fixture"));
                }
            }
        }
        self
    }

    /// Sets an environment variable for every later `run`.
    pub fn env(mut self, key: &str, value: &str) -> Project {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn read(&self, rel: &str) -> String {
        let path = self.join(rel);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    pub fn read_bytes(&self, rel: &str) -> Vec<u8> {
        let path = self.join(rel);
        std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    /// Runs `bulletin ARGS` in the project directory.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_in(".", args)
    }

    /// Runs `bulletin ARGS` in `rel`, a directory inside the project.
    pub fn run_in(&self, rel: &str, args: &[&str]) -> Run {
        let output = self.command_in(rel, args).output().expect("run bulletin");
        Run {
            args: args.join(" "),
            code: output.status.code(),
            stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
        }
    }

    /// `bulletin ARGS` set up as [`Project::run`] runs it (project directory, clean
    /// environment), for tests that start, signal or wait for the process themselves.
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_in(".", args)
    }

    /// [`Project::command`] in `rel`, a directory inside the project.
    pub fn command_in(&self, rel: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bulletin"));
        cmd.current_dir(self.dir.path().join(rel)).env_clear();
        for key in ["PATH", "HOME"] {
            if let Some(v) = std::env::var_os(key) {
                cmd.env(key, v);
            }
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.args(args);
        cmd
    }

    /// Starts `bulletin ARGS` in the background: stdin closed, stdout and stderr piped.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn bulletin")
    }

    /// `preview NEWSLETTER --list LIST [EXTRA…] --out preview`, asserting success; returns the
    /// parsed output directory.
    pub fn preview(&self, newsletter: &str, lists: &[&str], extra: &[&str]) -> Preview {
        let mut args = vec!["preview", newsletter];
        for l in lists {
            args.extend(["--list", l]);
        }
        args.extend_from_slice(extra);
        args.extend(["--out", "preview"]);
        self.run(&args).success();
        Preview {
            html: self.read("preview/email.html"),
            text: self.read("preview/email.txt"),
            eml: self.read_bytes("preview/email.eml"),
        }
    }
}

/// The three files `preview` writes.
pub struct Preview {
    pub html: String,
    pub text: String,
    pub eml: Vec<u8>,
}

impl Preview {
    /// The `.eml` parsed by mail-parser, the independent MIME oracle.
    pub fn message(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(&self.eml)
            .expect("mail-parser parses the .eml")
    }

    /// The header block of the `.eml`, as text.
    pub fn headers(&self) -> String {
        let text = String::from_utf8_lossy(&self.eml);
        text.split("\r\n\r\n").next().unwrap_or_default().to_owned()
    }
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub args: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn fail(&self, why: &str) -> ! {
        panic!(
            "bulletin {}: {why}\n--- exit code: {:?}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.args, self.code, self.stdout, self.stderr
        );
    }

    /// Asserts exit code 0.
    pub fn success(&self) -> &Run {
        self.code(0)
    }

    /// Asserts the exit code.
    pub fn code(&self, code: i32) -> &Run {
        if self.code != Some(code) {
            self.fail(&format!("expected exit code {code}"));
        }
        self
    }

    pub fn stdout_has(&self, needle: &str) -> &Run {
        if !self.stdout.contains(needle) {
            self.fail(&format!("stdout lacks {needle:?}"));
        }
        self
    }

    pub fn stderr_has(&self, needle: &str) -> &Run {
        if !self.stderr.contains(needle) {
            self.fail(&format!("stderr lacks {needle:?}"));
        }
        self
    }

    pub fn stdout_lacks(&self, needle: &str) -> &Run {
        if self.stdout.contains(needle) {
            self.fail(&format!("stdout has {needle:?}"));
        }
        self
    }

    pub fn stderr_lacks(&self, needle: &str) -> &Run {
        if self.stderr.contains(needle) {
            self.fail(&format!("stderr has {needle:?}"));
        }
        self
    }

    /// The stdout lines starting with `prefix` (e.g. `"error: "`).
    pub fn lines(&self, prefix: &str) -> Vec<&str> {
        self.stdout.lines().filter(|l| l.starts_with(prefix)).collect()
    }
}

/// `bulletin send n.md --list m.csv --yes EXTRA…`: the send tests' convention.
pub fn send(p: &Project, extra: &[&str]) -> Run {
    let mut args = vec!["send", "n.md", "--list", "m.csv", "--yes"];
    args.extend_from_slice(extra);
    p.run(&args)
}

/// `bulletin report n.md --json`, which must succeed, parsed.
pub fn report(p: &Project) -> serde_json::Value {
    let run = p.run(&["report", "n.md", "--json"]);
    run.success();
    serde_json::from_str(&run.stdout).expect("report --json is JSON")
}

/// The addresses `report --json` lists as `uncertain_members`.
pub fn uncertain_addresses(r: &serde_json::Value) -> std::collections::HashSet<String> {
    r["uncertain_members"]
        .as_array()
        .unwrap_or_else(|| panic!("uncertain_members in {r}"))
        .iter()
        .map(|u| u["address"].as_str().expect("an uncertain member's address").to_owned())
        .collect()
}

/// `m{i}@example.org`, the `i`th member of [`members`] (from 1).
pub fn addr(i: usize) -> String {
    format!("m{i}@example.org")
}

/// A list of `n` members: `m1@example.org,Member1`, … with an `email,first_name` header.
pub fn members(n: usize) -> String {
    let mut csv = String::from("email,first_name\n");
    for i in 1..=n {
        csv.push_str(&format!("{},Member{i}\n", addr(i)));
    }
    csv
}

/// A project that sends `n.md` to `m.csv` through the relay at `url` with [`DEFAULT_CONFIG`]
/// and quick retries (`retry_delay = 0.01`, `timeout = 2`, `concurrency = 2`); lines of
/// `extra_smtp` replace the defaults with the same key and add the rest to `[smtp]`.
pub fn sending(url: &str, newsletter: &str, csv: String, extra_smtp: &str) -> Project {
    let url = format!("url = \"{url}\"");
    let mut lines: Vec<&str> = vec![&url, "retry_delay = 0.01", "timeout = 2", "concurrency = 2"];
    let key = |l: &str| l.split('=').next().unwrap_or("").trim().to_owned();
    lines.retain(|d| !extra_smtp.lines().any(|e| key(e) == key(d)));
    let config = format!("{DEFAULT_CONFIG}\n[smtp]\n{}\n{extra_smtp}", lines.join("\n"));
    Project::new()
        .file("bulletin.toml", config)
        .file("n.md", newsletter)
        .file("m.csv", csv)
}
