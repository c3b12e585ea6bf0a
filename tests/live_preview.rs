//! `bulletin preview --serve`: the live preview's server, spoken to over plain HTTP. The same
//! flow in a real browser is `browser::live_preview_in_chromium` (needs chromium).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Child;
use std::time::{Duration, Instant};

use crate::support::project::Project;

pub const LIST: &str = "lists/members.csv";
pub const NL: &str = "newsletters/n.md";

/// A running `preview --serve`, stopped when dropped.
pub struct Server {
    pub child: Child,
    pub addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub fn start(p: &Project) -> Server {
        let mut child = p.spawn(&["preview", NL, "--list", LIST, "--serve", "--port", "0"]);
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("live preview: http://")
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .trim_end_matches('/')
            .to_owned();
        Server { child, addr }
    }

    /// GET `path`: status and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, body.to_owned())
    }

    pub fn view(&self, query: &str) -> serde_json::Value {
        let (status, body) = self.get(&format!("/api/view{query}"));
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Subscribes to the server-sent events.
    pub fn events(&self) -> BufReader<TcpStream> {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        write!(s, "GET /events HTTP/1.1\r\nHost: {}\r\n\r\n", self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(line.contains(" 200 "), "{line}");
        r
    }
}

/// Reads events until a `reload`; how long it took.
fn next_reload(events: &mut BufReader<TcpStream>) -> Duration {
    let start = Instant::now();
    let mut line = String::new();
    loop {
        line.clear();
        assert!(events.read_line(&mut line).unwrap() > 0, "the event stream closed");
        if line.trim() == "event: reload" {
            return start.elapsed();
        }
    }
}

/// Saves `contents` as an editor would.
pub fn write(p: &Project, rel: &str, contents: &str) {
    std::fs::write(p.path().join(rel), contents).unwrap();
}

pub fn project() -> Project {
    Project::new()
        .file(
            NL,
            "---\nsubject: \"Hello {{ first_name }}\"\npreheader: Dates inside\n---\nFirst version.\n",
        )
        .file(LIST, "email,first_name\nana@example.org,Ana\nbo@example.org,Bo\n")
}

#[test]
fn the_page_rebuilds_on_save_and_survives_broken_edits() {
    let p = project();
    let server = Server::start(&p);
    let (status, page) = server.get("/");
    assert_eq!(status, 200);
    assert!(page.contains("new EventSource('/events')"));

    let v = server.view("");
    assert_eq!(v["ok"], true, "{v}");
    let view = &v["view"];
    assert_eq!(view["subject"], "Hello Ana");
    assert_eq!(view["preheader"], "Dates inside");
    assert!(view["html"].as_str().unwrap().contains("First version."));
    assert!(view["text"].as_str().unwrap().contains("First version."));
    assert!(view["headers"].as_str().unwrap().contains("To: Ana <ana@example.org>"));
    assert!(view["raw"].as_str().unwrap().contains("multipart/alternative"));
    assert!(view["dark_html"].as_str().unwrap().contains("@media all"));
    assert_eq!(view["members"].as_array().unwrap().len(), 2);
    assert!(view["html_bytes"].as_u64().unwrap() > 1000);
    assert_eq!(view["clip_bytes"], 102 * 1024);
    // The member picker, by row and by address.
    assert_eq!(server.view("?row=2")["view"]["subject"], "Hello Bo");
    assert_eq!(server.view("?to=bo@example.org")["view"]["member"], "bo@example.org");

    let mut events = server.events();
    write(
        &p,
        NL,
        "---\nsubject: \"Hello {{ first_name }}\"\n---\nSecond version.\n\n![Remote](https://example.org/r.jpg)\n",
    );
    let took = next_reload(&mut events);
    assert!(took < Duration::from_millis(500), "reload after {took:?}");
    let v = server.view("");
    assert!(v["view"]["html"].as_str().unwrap().contains("Second version."), "{v}");
    // check's findings, with file:line.
    let diags = v["view"]["diagnostics"].to_string();
    assert!(
        diags.contains("newsletters/n.md:6: image https://example.org/r.jpg has no size"),
        "{diags}"
    );

    // A broken edit: the error, over the last good render; the server lives on.
    write(&p, NL, "---\nsubject: Hi\nDear {{ first_name }\n");
    next_reload(&mut events);
    let v = server.view("");
    assert_eq!(v["ok"], false);
    assert!(v["error"].as_str().unwrap().contains("newsletters/n.md:1"), "{v}");
    assert!(v["view"]["html"].as_str().unwrap().contains("Second version."));
    write(
        &p,
        LIST,
        "email,first_name\nana@example.org,Ana\n\u{0}\u{1}bad,\"unclosed\n",
    );
    next_reload(&mut events);
    let _ = server.view("?row=9");
    let _ = server.view("?to=not-an-address");
    write(&p, NL, "---\nsubject: Hi\n---\nThird version.\n");
    write(&p, LIST, "email,first_name\nana@example.org,Ana\n");
    next_reload(&mut events);
    let v = server.view("");
    assert!(v["view"]["html"].as_str().unwrap().contains("Third version."), "{v}");
}

#[test]
fn a_taken_port_is_an_error_that_says_what_to_do() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    project()
        .run(&["preview", NL, "--list", LIST, "--serve", "--port", &port])
        .code(1)
        .stderr_has("--port");
}
