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
        Server::spawn(p, &["preview", NL, "--list", LIST, "--serve", "--port", "0"])
    }

    /// `bulletin ARGS` (a `preview --serve`), at the address of its first line.
    pub fn spawn(p: &Project, args: &[&str]) -> Server {
        let mut child = p.spawn(args);
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
        let (status, body) = self.get_bytes(path);
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// GET `path`: status and body, as bytes.
    pub fn get_bytes(&self, path: &str) -> (u16, Vec<u8>) {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&raw[..end]);
        assert!(
            !head.to_ascii_lowercase().contains("transfer-encoding: chunked"),
            "{head}"
        );
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, raw[end + 4..].to_vec())
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

#[test]
fn a_list_an_image_an_attachment_or_the_settings_changing_rebuilds_the_page() {
    use crate::compose::png;
    // The image lives outside the newsletter's folder, the member's file in a subfolder of the
    // list's: both are watched.
    let p = Project::new()
        .file(
            NL,
            "---\nsubject: \"Hello {{ first_name }}\"\n---\n![March](../images/march.png)\n\n[Go](https://example.org \"button\")\n",
        )
        .file("images/march.png", png(100, 50))
        .file(LIST, "email,first_name,attachment\nana@example.org,Ana,certs/ana.txt\n")
        .file("lists/certs/ana.txt", "first receipt\n");
    let image = |v: &serde_json::Value| {
        let html = v["html"].as_str().unwrap();
        html.split("src=\"/cid/")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_owned()
    };
    let settings = p.read("bulletin.toml").replace("#b5121b", "#116611");
    type Check = Box<dyn Fn(&serde_json::Value) -> bool>;
    let steps: [(&str, &str, Vec<u8>, Check); 4] = [
        (
            "a list",
            LIST,
            b"email,first_name,attachment\nana@example.org,Anabel,certs/ana.txt\n".to_vec(),
            Box::new(|v| v["subject"] == "Hello Anabel"),
        ),
        (
            "an image outside the newsletter's folder",
            "images/march.png",
            png(200, 80),
            Box::new(|v| v["html"].as_str().unwrap().contains("width=\"200\" height=\"80\"")),
        ),
        (
            "a member's attachment in a subfolder of the list's",
            "lists/certs/ana.txt",
            b"second receipt\n".to_vec(),
            // "second receipt\n" in base64.
            Box::new(|v| v["raw"].as_str().unwrap().contains("c2Vjb25kIHJlY2VpcHQK")),
        ),
        (
            "the settings",
            "bulletin.toml",
            settings.into_bytes(),
            Box::new(|v| v["html"].as_str().unwrap().contains("bgcolor=\"#116611\"")),
        ),
    ];
    for (what, file, contents, check) in steps {
        // A server of its own for each change: the first reload it announces is this change's.
        let server = Server::start(&p);
        let v = server.view("");
        assert_eq!(v["ok"], true, "{v}");
        assert!(!check(&v["view"]), "{what}: changed before the change");
        let mut events = server.events();
        std::fs::write(p.path().join(file), contents).unwrap();
        next_reload(&mut events);
        let v = server.view("");
        assert!(check(&v["view"]), "{what}: not rebuilt: {v}");
    }
    // The image the page shows is the new file.
    let server = Server::start(&p);
    let v = server.view("");
    assert_eq!(server.get_bytes(&format!("/cid/{}", image(&v["view"]))).1, png(200, 80));
}

#[test]
fn the_language_picker_shows_each_variant() {
    let p = project()
        .file(
            "newsletters/n.es.md",
            "---\nsubject: \"Hola {{ first_name }}\"\n---\nPrimera versión.\n",
        )
        .file(
            LIST,
            "email,first_name,lang\nana@example.org,Ana,es\nbo@example.org,Bo,\n",
        );
    let server = Server::start(&p);
    // Each member's own language first.
    let v = server.view("");
    assert_eq!(v["view"]["subject"], "Hola Ana", "{v}");
    assert_eq!(v["view"]["lang"], "es");
    assert_eq!(v["view"]["languages"], serde_json::json!(["en", "es"]));
    assert_eq!(v["view"]["lang_picked"], false);
    assert!(v["view"]["html"].as_str().unwrap().contains("<html lang=\"es\""));
    assert_eq!(server.view("?row=2")["view"]["subject"], "Hello Bo");
    // A picked language, whoever the member.
    let v = server.view("?row=2&lang=es");
    assert_eq!(v["view"]["subject"], "Hola Bo");
    assert_eq!(v["view"]["lang_picked"], true);
    assert_eq!(server.view("?lang=en")["view"]["subject"], "Hello Ana");
    assert_eq!(server.view("?lang=es-MX")["view"]["lang"], "es");
    let v = server.view("?lang=fr");
    assert_eq!(v["ok"], false);
    let error = v["error"].as_str().unwrap();
    assert!(error.contains("have: en, es") && error.contains("n.fr.md"), "{error}");
}
