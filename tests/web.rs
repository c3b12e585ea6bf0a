//! `bulletin serve` and `bulletin archive` over plain HTTP: the one-click POST (RFC 8058), the
//! confirmation and undo pages, every bad input refused with nothing recorded, 500 concurrent
//! one-click POSTs each recorded once, the archive from the journal, served without traversal.

use crate::support::serve::{Server, client, get, one_click, post, raw, token, web_project};
use crate::support::smtp_server::TestSmtp;

/// The addresses of the suppression file's `unsubscribe` rows.
fn unsubscribed(p: &crate::support::project::Project) -> Vec<String> {
    let path = p.join("lists/unsubscribed.csv");
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .skip(1)
        .filter(|l| l.split(',').nth(1) == Some("unsubscribe"))
        .map(|l| l.split(',').next().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn a_one_click_post_is_recorded_once_and_answered_200_without_redirect() {
    let p = web_project();
    let server = Server::start(&p, &[]);
    let agent = client();
    let url = server.url(&format!("/unsubscribe/{}", token("Ana@Example.org")));
    for _ in 0..2 {
        let a = one_click(&agent, &url);
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.header("location"), "");
        assert!(a.body.contains("You are unsubscribed"));
    }
    assert_eq!(unsubscribed(&p), ["ana@example.org"]);
    // The log has one line per request and names nobody.
    let log = server.log_of(2);
    assert_eq!(
        log.iter().filter(|l| l.contains("POST /unsubscribe/TOKEN 200")).count(),
        2,
        "{log:?}"
    );
    assert!(
        log.iter()
            .all(|l| !l.contains('@') && !l.to_lowercase().contains("ana")),
        "{log:?}"
    );
}

#[test]
fn the_confirmation_page_masks_the_address_and_posts_the_one_click_body() {
    let p = web_project();
    let server = Server::start(&p, &[]);
    let a = get(
        &client(),
        &server.url(&format!("/unsubscribe/{}", token("ana@example.org"))),
    );
    assert_eq!(a.status, 200);
    assert!(a.body.contains("<html lang=\"en\">"), "{}", a.body);
    assert!(a.body.contains("Example Network"));
    assert!(a.body.contains("a***@e***.org"));
    assert!(!a.body.contains("ana@example.org"));
    assert!(a.body.contains("<form method=\"post\">"));
    assert!(a.body.contains("name=\"List-Unsubscribe\" value=\"One-Click\""));
    assert!(!a.body.contains("<script"));
    assert!(a.header("content-security-policy").contains("frame-ancestors 'none'"));
    assert!(a.header("content-security-policy").contains("default-src 'none'"));
    assert_eq!(a.header("x-frame-options"), "DENY");
    assert_eq!(a.header("referrer-policy"), "no-referrer");
    // Looking records nothing.
    assert!(unsubscribed(&p).is_empty());
}

#[test]
fn an_undo_removes_only_the_unsubscribe_that_token_made() {
    let p = web_project().file(
        "lists/unsubscribed.csv",
        "email,reason,date,campaign\nbob@example.org,unsubscribe,2026-01-01T00:00:00Z,\n",
    );
    let server = Server::start(&p, &[]);
    let agent = client();
    let ana = server.url(&format!("/unsubscribe/{}", token("ana@example.org")));
    let done = one_click(&agent, &ana);
    let field = |name: &str| {
        let at = done.body.find(&format!("name=\"{name}\" value=\"")).expect(name) + name.len() + 15;
        done.body[at..].split('"').next().unwrap().to_owned()
    };
    let (date, sig) = (field("undo"), field("sig"));
    assert_eq!(unsubscribed(&p), ["bob@example.org", "ana@example.org"]);
    // Bob's token with Ana's undo values, or a changed date, undo nothing.
    let bob = server.url(&format!("/unsubscribe/{}", token("bob@example.org")));
    let form = |d: &str| format!("undo={}&sig={sig}", d.replace(':', "%3A"));
    assert_eq!(post(&agent, &bob, &form(&date)).status, 400);
    assert_eq!(post(&agent, &ana, &form("2026-01-01T00:00:00Z")).status, 400);
    // Bob was unsubscribed before (by mail, say): his done page offers no undo.
    let bob_done = one_click(&agent, &bob);
    assert!(!bob_done.body.contains("name=\"undo\""));
    let undone = post(&agent, &ana, &form(&date));
    assert_eq!(undone.status, 200);
    assert!(undone.body.contains("You are subscribed again"));
    assert_eq!(unsubscribed(&p), ["bob@example.org"]);
    assert!(post(&agent, &ana, &form(&date)).body.contains("Nothing to undo"));
}

#[test]
fn every_bad_input_gets_a_4xx_page_and_records_nothing() {
    let p = web_project().file("public/index.html", "<h1>Archive</h1>");
    std::fs::write(p.join("secret.txt"), "not public").unwrap();
    let server = Server::start(&p, &["--archive", "public"]);
    let agent = client();
    let good = token("ana@example.org");
    let mut tampered = good.clone();
    tampered.replace_range(5..6, if &good[5..6] == "A" { "B" } else { "A" });
    let foreign = {
        let u = bulletin::unsubscribe::Unsubscribe::new(
            None,
            None,
            Some(bulletin::secret::Secret::new("another secret".into())),
            crate::support::serve::LIST_ID.into(),
        );
        u.token(&bulletin::email::Email::parse("ana@example.org").unwrap())
            .unwrap()
    };
    let url = |t: &str| server.url(&format!("/unsubscribe/{t}"));
    let cases: Vec<(&str, u16, crate::support::serve::Answer)> = vec![
        ("tampered token, GET", 404, get(&client(), &url(&tampered))),
        ("tampered token, POST", 404, one_click(&client(), &url(&tampered))),
        ("other secret's token", 404, one_click(&client(), &url(&foreign))),
        (
            "an address as token",
            404,
            one_click(&client(), &url("ana@example.org")),
        ),
        ("huge token", 404, one_click(&client(), &url(&"A".repeat(4000)))),
        ("no token", 404, one_click(&client(), &server.url("/unsubscribe"))),
        ("unknown path", 404, get(&client(), &server.url("/admin"))),
        ("POST elsewhere", 405, one_click(&client(), &server.url("/admin"))),
        ("wrong body", 400, post(&client(), &url(&good), "List-Unsubscribe=Yes")),
        ("empty body", 400, post(&client(), &url(&good), "")),
        (
            "forged undo",
            400,
            post(&client(), &url(&good), "undo=2026-01-01T00%3A00%3A00Z&sig=AAAA"),
        ),
        (
            "oversized body",
            413,
            post(
                &client(),
                &url(&good),
                &format!("List-Unsubscribe=One-Click&x={}", "y".repeat(10_000)),
            ),
        ),
        (
            "PUT",
            405,
            crate::support::serve::Answer::from(client().put(&url(&good)).send("List-Unsubscribe=One-Click")),
        ),
        (
            "DELETE",
            405,
            crate::support::serve::Answer::from(client().delete(&url(&good)).call()),
        ),
    ];
    for (what, status, a) in &cases {
        assert_eq!(a.status, *status, "{what}: {}", a.body);
        assert!(
            a.body.contains("<html lang=\"en\">"),
            "{what}: a page, not a bare error"
        );
        assert!(!a.body.contains("ana@"), "{what}");
        assert_eq!(a.header("x-frame-options"), "DENY", "{what}");
    }
    // Path traversal, sent raw so no client tidies the path first.
    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/.%2e/bulletin.toml",
    ] {
        let status = raw(
            &server.addr(),
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert!((400..500).contains(&status), "{path}: {status}");
    }
    // A body announced larger than the limit is refused before it is read.
    let status = raw(
        &server.addr(),
        format!(
            "POST /unsubscribe/{good} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(status, 413);
    assert!(unsubscribed(&p).is_empty(), "nothing recorded");
    // The archive is served, the folder's parent is not.
    assert!(get(&agent, &server.url("/")).body.contains("Archive"));
    assert_eq!(get(&agent, &server.url("/secret.txt")).status, 404);
}

#[test]
fn five_hundred_concurrent_one_click_posts_are_each_recorded_exactly_once() {
    let p = web_project();
    let server = Server::start(&p, &["--per-client", "0"]);
    let urls: Vec<String> = (0..500)
        .map(|i| server.url(&format!("/unsubscribe/{}", token(&format!("m{i}@example.org")))))
        .collect();
    let start = std::sync::Barrier::new(urls.len());
    std::thread::scope(|s| {
        for url in &urls {
            let start = &start;
            s.spawn(move || {
                let agent = client();
                start.wait();
                let a = one_click(&agent, url);
                assert_eq!(a.status, 200, "{}", a.body);
            });
        }
    });
    let mut got = unsubscribed(&p);
    got.sort();
    let mut want: Vec<String> = (0..500).map(|i| format!("m{i}@example.org")).collect();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn each_client_is_limited_and_behind_a_proxy_the_forwarded_address_counts() {
    let p = web_project();
    let agent = client();
    let page = format!("/unsubscribe/{}", token("ana@example.org"));
    {
        let server = Server::start(&p, &["--per-client", "3"]);
        let statuses: Vec<u16> = (0..5).map(|_| get(&agent, &server.url(&page)).status).collect();
        assert_eq!(statuses, [200, 200, 200, 429, 429]);
    }
    let server = Server::start(&p, &["--per-client", "1", "--trust-proxy"]);
    let via = |ip: &str| {
        crate::support::serve::Answer::from(
            agent
                .get(&server.url(&page))
                .header("X-Forwarded-For", format!("203.0.113.9, {ip}"))
                .header("X-Forwarded-Proto", "https")
                .call(),
        )
    };
    let first = via("198.51.100.1");
    assert_eq!(first.status, 200);
    assert!(first.header("strict-transport-security").contains("max-age"));
    assert_eq!(via("198.51.100.2").status, 200);
    assert_eq!(via("198.51.100.1").status, 429);
}

#[test]
fn a_slow_client_is_cut_off_after_the_read_timeout() {
    use std::io::{Read, Write};
    let p = web_project();
    let server = Server::start(&p, &["--read-timeout", "1"]);
    let started = std::time::Instant::now();
    // Headers never finished: the connection is closed without an answer.
    let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    s.write_all(b"GET /x HTTP/1.1\r\nHost: x\r\n").unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert!(out.is_empty() || String::from_utf8_lossy(&out).starts_with("HTTP/1.1 408"));
    // A body that stops coming: 408, nothing recorded.
    let request = format!(
        "POST /unsubscribe/{} HTTP/1.1\r\nHost: x\r\nContent-Length: 26\r\nConnection: close\r\n\r\nList-Unsub",
        token("ana@example.org")
    );
    let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");
    assert!(started.elapsed() < std::time::Duration::from_secs(8));
    assert!(unsubscribed(&p).is_empty());
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let p = web_project();
    let mut server = Server::start(&p, &[]);
    assert_eq!(get(&client(), &server.url("/x")).status, 404);
    assert!(server.stop().success());
}

/// The bytes waiting unread on the server's end (port `local`) of a loopback TCP connection
/// from port `remote`, from /proc/net/tcp.
fn unread(local: u16, remote: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let port = |addr: &str| addr.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (port(f.get(1)?)? == local && port(f.get(2)?)? == remote)
            .then(|| u64::from_str_radix(f.get(4)?.split(':').nth(1)?, 16).ok())
            .flatten()
    })
}

#[test]
fn sigterm_lets_a_request_under_way_finish_and_record() {
    use std::io::{Read, Write};
    let p = web_project();
    let mut server = Server::start(&p, &[]);
    // Half a one-click POST is on the wire when SIGTERM comes.
    let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    let head = format!(
        "POST /unsubscribe/{} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: 26\r\nConnection: close\r\n\r\nList-Unsub",
        token("ana@example.org")
    );
    s.write_all(head.as_bytes()).unwrap();
    // Once the server's end of the connection has nothing left unread, it has accepted it and
    // parsed the headers: the request is under way.
    let (server_port, client_port) = (s.peer_addr().unwrap().port(), s.local_addr().unwrap().port());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while unread(server_port, client_port) != Some(0) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(
        unread(server_port, client_port),
        Some(0),
        "the server did not read the request"
    );
    server.terminate();
    let log = server.log_of(1);
    assert!(log.iter().any(|l| l.contains("stopping")), "{log:?}");
    // New connections are refused now; the one under way is answered and recorded.
    assert!(std::net::TcpStream::connect(server.addr()).is_err());
    s.write_all(b"scribe=One-Click").unwrap();
    let mut out = String::new();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert_eq!(unsubscribed(&p), ["ana@example.org"]);
    assert!(server.stop().success());
}

const ISSUE: &str = "---\nsubject: \"The December issue\"\npreheader: \"Our plans for {{ city | default('every city') }}\"\n\
id: 2026-12\n---\nDear {{ first_name | default(\"Members and Friends\") }},\n\n\
Read it [on the web]({{ web_url }}).\n";

#[test]
fn archive_writes_sent_campaigns_for_a_generic_reader_with_an_index_and_a_feed() {
    let smtp = TestSmtp::start();
    let config = format!(
        "{}\n[archive]\nbase_url = \"https://news.example.org\"\n[smtp]\nurl = \"{}\"\n",
        crate::support::project::DEFAULT_CONFIG,
        smtp.url()
    );
    let p = crate::support::project::Project::new()
        .file("bulletin.toml", config)
        .file("n.md", ISSUE)
        .file(
            "m.csv",
            "email,first_name,city\nm1@example.org,Member1,\nm2@example.org,Member2,\n",
        )
        .file("t.csv", "email,first_name,city\nstaff@example.org,Staff,Oakland\n");
    // Nothing sent yet: an empty archive.
    p.run(&["archive"]).success().stdout_has("wrote 0 issues");
    p.run(&["send", "n.md", "--list", "t.csv", "--test", "--yes"]).success();
    p.run(&["archive"]).success().stdout_has("wrote 0 issues");
    p.run(&["send", "n.md", "--list", "m.csv", "--yes"]).success();
    // The message links its page, as `View in your browser` and as `{{ web_url }}`.
    let sent = String::from_utf8_lossy(&smtp.messages()[1].data).replace("=\r\n", "");
    assert!(sent.contains("View in your browser"), "{sent}");
    assert!(sent.contains("https://news.example.org/2026-12/"), "{sent}");

    p.run(&["archive", "--out", "site"])
        .success()
        .stdout_has("wrote 1 issue to site");
    let page = p.read("site/2026-12/index.html");
    assert!(page.contains("Dear Members and Friends,"), "{page}");
    assert!(page.contains("href=\"https://news.example.org/2026-12/\""));
    assert!(page.contains("href=\"../index.html\""));
    assert!(page.contains("<meta property=\"og:title\" content=\"The December issue\">"));
    assert!(page.contains("<meta property=\"og:description\" content=\"Our plans for every city\">"));
    for member_data in ["m1@example.org", "Member1", "unsubscribe", "View in your browser"] {
        assert!(!page.contains(member_data), "{member_data} in the archive page");
    }
    let index = p.read("site/index.html");
    assert!(index.contains("href=\"2026-12/index.html\""), "{index}");
    assert!(index.contains("The December issue"));
    assert!(!index.contains("+test-"));
    let feed: atom_syndication::Feed = p.read("site/feed.xml").parse().expect("feed.xml is Atom");
    assert_eq!(feed.entries().len(), 1);
    let entry = &feed.entries()[0];
    assert_eq!(entry.title().as_str(), "The December issue");
    assert_eq!(entry.links()[0].href(), "https://news.example.org/2026-12/");
    assert_eq!(
        entry.summary().map(atom_syndication::Text::as_str),
        Some("Our plans for every city")
    );

    // The newsletter file changes, then goes: the archive still shows what was sent.
    std::fs::write(p.join("n.md"), ISSUE.replace("Dear ", "Hello again, ")).unwrap();
    let run = p.run(&["archive", "--out", "site"]);
    run.success().stdout_has("wrote 1 issue");
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
    assert!(p.read("site/2026-12/index.html").contains("Dear Members and Friends,"));
    std::fs::remove_file(p.join("n.md")).unwrap();
    p.run(&["archive", "--out", "site"])
        .success()
        .stdout_has("wrote 1 issue");
    assert!(p.read("site/2026-12/index.html").contains("Dear Members and Friends,"));

    // A journal from before bulletin kept what it sent: the file as it is now, with a warning.
    std::fs::write(p.join("n.md"), ISSUE.replace("Dear ", "Hello again, ")).unwrap();
    let db = rusqlite::Connection::open(p.join(".bulletin/journal.db")).unwrap();
    db.execute("DELETE FROM campaign_source", []).unwrap();
    drop(db);
    let run = p.run(&["archive", "--out", "site"]);
    run.success().stdout_has("wrote 1 issue");
    assert!(
        run.stderr.contains("warning: 2026-12: n.md changed since it was sent"),
        "{}",
        run.stderr
    );
    assert!(
        p.read("site/2026-12/index.html")
            .contains("Hello again, Members and Friends,")
    );
}

/// The rows of a suppression file after its header, as `(email, reason, date, campaign)`.
fn rows(p: &crate::support::project::Project) -> Vec<(String, String, String, String)> {
    let text = std::fs::read_to_string(p.join("lists/unsubscribed.csv")).unwrap_or_default();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.splitn(4, ',').collect();
            let at = |i: usize| f.get(i).copied().unwrap_or("").to_owned();
            (at(0), at(1), at(2), at(3))
        })
        .collect()
}

/// The one-click URL in the message `smtp` received for `address`, with the server's host.
fn link_sent_to(smtp: &TestSmtp, address: &str, server: &Server) -> String {
    let m = smtp
        .messages()
        .into_iter()
        .find(|m| m.rcpt_to[0] == address)
        .expect(address);
    let parsed = mail_parser::MessageParser::default().parse(&m.data).unwrap();
    let header = parsed
        .header_raw("List-Unsubscribe")
        .expect("List-Unsubscribe")
        .to_owned();
    let url = header
        .split(['<', '>'])
        .find(|p| p.starts_with("https://"))
        .expect("an https link")
        .replace(char::is_whitespace, "");
    let path = url.trim_start_matches("https://news.example.org");
    assert!(path.starts_with("/unsubscribe/"), "{url}");
    server.url(path)
}

#[test]
fn a_laptop_pulls_the_servers_unsubscribes_with_their_campaign_and_undos_and_skips_them() {
    let smtp = TestSmtp::start();
    let issue = |id: &str| format!("---\nsubject: \"Issue {id}\"\nid: {id}\n---\nHello {{{{ first_name }}}}.\n");
    let laptop = web_project();
    let config = format!("{}[smtp]\nurl = \"{}\"\n", laptop.read("bulletin.toml"), smtp.url());
    let laptop = laptop
        .file("bulletin.toml", config)
        .file("n1.md", issue("2026-12"))
        .file("n2.md", issue("2027-01"))
        .file(
            "m.csv",
            "email,first_name\nana@example.org,Ana\nbob@example.org,Bob\ncy@example.org,Cy\n",
        );
    let server_project = web_project();
    let server = Server::start(&server_project, &[]);
    laptop.run(&["send", "n1.md", "--list", "m.csv", "--yes"]).success();
    assert_eq!(smtp.messages().len(), 3);

    // Ana and Bob press one-click in the message they got: the server records the campaign
    // sealed in their links.
    let agent = client();
    assert_eq!(
        one_click(&agent, &link_sent_to(&smtp, "ana@example.org", &server)).status,
        200
    );
    let bob_link = link_sent_to(&smtp, "bob@example.org", &server);
    let bob_done = one_click(&agent, &bob_link);
    assert_eq!(bob_done.status, 200);
    let on_server = rows(&server_project);
    assert_eq!(on_server.len(), 2, "{on_server:?}");
    for (row, who) in on_server.iter().zip(["ana@example.org", "bob@example.org"]) {
        assert_eq!(
            (row.0.as_str(), row.1.as_str(), row.3.as_str()),
            (who, "unsubscribe", "2026-12")
        );
    }

    // The laptop pulls them, with the server's reason, date and campaign; again: no change.
    laptop
        .run(&["suppress", "--pull", &server.base])
        .success()
        .stdout_has("added 2 addresses");
    assert_eq!(rows(&laptop), on_server);
    let before = laptop.read("lists/unsubscribed.csv");
    laptop
        .run(&["suppress", "--pull", &server.base])
        .success()
        .stdout_has("nothing new");
    assert_eq!(laptop.read("lists/unsubscribed.csv"), before);

    // Another secret gets a 401 and a message that says what to fix; nothing changes.
    let stranger = web_project().env("BULLETIN_UNSUBSCRIBE_SECRET", "not the server's secret");
    let refused = stranger.run(&["suppress", "--pull", &server.base]);
    refused.code(1);
    assert!(
        refused.stderr.contains("refused this project's pull token (HTTP 401)"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("BULLETIN_UNSUBSCRIBE_SECRET"),
        "{}",
        refused.stderr
    );
    assert!(rows(&stranger).is_empty());
    let anonymous = agent.get(&server.url("/suppressions")).call().unwrap();
    assert_eq!(anonymous.status(), 401);

    // Bob undoes on the server: the next pull removes his row, and only his.
    let field = |name: &str| {
        let at = bob_done.body.find(&format!("name=\"{name}\" value=\"")).expect(name) + name.len() + 15;
        bob_done.body[at..].split('"').next().unwrap().to_owned()
    };
    let undo = format!("undo={}&sig={}", field("undo").replace(':', "%3A"), field("sig"));
    assert_eq!(post(&agent, &bob_link, &undo).status, 200);
    laptop
        .run(&["suppress", "--pull", &server.base])
        .success()
        .stdout_has("removed 1 address");
    assert_eq!(rows(&laptop), rows(&server_project));
    assert_eq!(rows(&laptop).len(), 1);
    laptop
        .run(&["suppress", "--pull", &server.base])
        .success()
        .stdout_has("nothing new");

    // The next issue skips Ana and reaches Bob again.
    laptop.run(&["send", "n2.md", "--list", "m.csv", "--yes"]).success();
    let mut second: Vec<String> = smtp.messages()[3..].iter().map(|m| m.rcpt_to[0].clone()).collect();
    second.sort();
    assert_eq!(second, ["bob@example.org", "cy@example.org"]);
}
