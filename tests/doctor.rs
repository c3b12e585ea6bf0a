//! `bulletin doctor` against a real DNS server: Debian's `dnsmasq` on a free 127.0.0.1 port,
//! serving a test zone (`example.test`) written by each test — a good zone, and each broken
//! variant that must turn exactly one line into ✗ (and the fix that turns it back). The relay
//! is the in-process test SMTP server (AUTH, no STARTTLS) on 127.0.0.1, whose address the SPF
//! record authorises.
//!
//! The bulk-sender rule tests and the silent name server need nothing; the others need
//! `dnsmasq` (`.ci/run` installs `dnsmasq-base`), so plain `cargo test` skips those;
//! `cargo test -- --ignored` runs them, and then a missing dnsmasq is a failure. dnsmasq is
//! started by the test, by path, and killed by its PID: no system service is involved. The
//! one-click probe goes to a `bulletin serve` the test starts on 127.0.0.1.

use std::net::{TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::project::{Project, Run};
use crate::support::smtp_server::{Options, TestSmtp};

const PASSWORD: &str = "doctor-secret";

/// One dnsmasq answering for `example.test` (and `other.test`) only, killed when dropped.
struct Dns {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Dns {
    /// Serves `lines` (dnsmasq `txt-record=`, `mx-host=`, `host-record=` …).
    fn start(lines: &[String]) -> Dns {
        let program = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("dnsmasq is not installed: apt-get install dnsmasq-base");
        for _ in 0..20 {
            let port = free_port();
            let dir = tempfile::tempdir().unwrap();
            let conf = dir.path().join("zone.conf");
            // Authoritative for all of .test: a name not written here is NXDOMAIN, as on the
            // Internet (DMARC's tree walk asks for _dmarc.test too).
            let mut text = String::from("local=/test/\n");
            // A domain whose only server never answers: dnsmasq gives SERVFAIL/REFUSED.
            text.push_str("server=/broken.test/127.0.0.1#1\n");
            for l in lines {
                text.push_str(l);
                text.push('\n');
            }
            std::fs::write(&conf, text).unwrap();
            let child = Command::new(program)
                .args([
                    "--no-daemon",
                    "--port",
                    &port.to_string(),
                    "--listen-address=127.0.0.1",
                    "--bind-interfaces",
                    "--no-resolv",
                    "--no-hosts",
                    "--user=root",
                    "--pid-file",
                    "--log-facility=-",
                ])
                // `--conf-file`'s argument is optional, so it must be attached with `=`.
                .arg(format!("--conf-file={}", conf.display()))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start dnsmasq");
            let mut dns = Dns { child, port, _dir: dir };
            if dns.wait_ready() {
                return dns;
            }
        }
        panic!("could not start dnsmasq on a free port");
    }

    /// Waits until dnsmasq listens on TCP (it binds UDP and TCP together).
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// `txt-record=NAME,"…"` with the value cut into strings of at most 255 bytes (an RSA key's
/// record is longer than one string may be).
fn txt(name: &str, value: &str) -> String {
    let parts: Vec<String> = value
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", std::str::from_utf8(c).unwrap()))
        .collect();
    format!("txt-record={name},{}", parts.join(","))
}

/// A project with an Ed25519 key for `example.test` (selector `news`), a relay on
/// 127.0.0.1 with AUTH, and one-click unsubscribe; returns it with the DKIM record value.
struct Setup {
    project: Project,
    smtp: TestSmtp,
    dkim_record: String,
}

fn setup(algorithm: &str, dkim_domain: &str) -> Setup {
    let smtp = TestSmtp::start_with(Options {
        auth: Some(("news".into(), PASSWORD.into())),
        ..Options::default()
    });
    let config = format!(
        r#"from = "Example <news@example.test>"
reply_to = "info@example.test"
list_id = "Members <members.example.test>"

[organisation]
name = "Example"
postal_address = "PO Box 1, Oakland, CA 94601"

[smtp]
url = "smtp://news@127.0.0.1:{port}"

[unsubscribe]
url = "https://example.test/unsubscribe?token={{{{ token }}}}"

[dkim]
domain = "{dkim_domain}"
selector = "news"
private_key = "keys/news.{dkim_domain}.pem"
"#,
        port = smtp.addr().port()
    );
    let project = Project::new()
        .file("bulletin.toml", config)
        .env("BULLETIN_SMTP_PASSWORD", PASSWORD)
        .env("BULLETIN_UNSUBSCRIBE_SECRET", "0123456789abcdef0123456789abcdef");
    let out = project.run(&[
        "dkim",
        "keygen",
        "--selector",
        "news",
        "--domain",
        dkim_domain,
        "--algorithm",
        algorithm,
    ]);
    out.success();
    let dkim_record = out
        .lines("  value: ")
        .first()
        .expect("keygen prints the record")
        .trim_start_matches("  value: ")
        .to_owned();
    Setup {
        project,
        smtp,
        dkim_record,
    }
}

/// The good zone for `setup`'s project.
fn good_zone(s: &Setup) -> Vec<String> {
    vec![
        txt("example.test", "v=spf1 ip4:127.0.0.1 -all"),
        txt("news._domainkey.example.test", &s.dkim_record),
        txt(
            "_dmarc.example.test",
            "v=DMARC1; p=quarantine; rua=mailto:dmarc@example.test",
        ),
        "mx-host=example.test,mail.example.test,10".to_owned(),
        "host-record=mail.example.test,127.0.0.1".to_owned(),
    ]
}

fn doctor(s: &Setup, dns: &Dns, extra: &[&str]) -> Run {
    let mut args = vec!["doctor", "--dns"];
    let addr = dns.addr();
    args.push(&addr);
    args.extend_from_slice(extra);
    s.project.run(&args)
}

/// The line of check `check` with mark `mark` (✓ ✗ !), if there is one.
fn line<'a>(out: &'a Run, mark: char, check: &str) -> Option<&'a str> {
    out.stdout.lines().find(|l| {
        let mut w = l.split_whitespace();
        w.next() == Some(&mark.to_string()) && w.next() == Some(check)
    })
}

/// Some line of check `check` with mark `mark` contains `needle`.
fn assert_line(out: &Run, mark: char, check: &str, needle: &str) {
    let found = out.stdout.lines().any(|l| {
        let mut w = l.split_whitespace();
        w.next() == Some(&mark.to_string()) && w.next() == Some(check) && l.contains(needle)
    });
    assert!(found, "no {mark} {check} line with {needle:?} in:\n{}", out.stdout);
}

fn no_fail(out: &Run, check: &str) {
    assert!(line(out, '✗', check).is_none(), "unexpected ✗ {check}:\n{}", out.stdout);
}

#[test]
#[ignore = "needs dnsmasq"]
fn a_good_zone_passes_every_check() {
    let s = setup("ed25519", "example.test");
    let dns = Dns::start(&good_zone(&s));
    let out = doctor(&s, &dns, &[]);
    out.success();
    for check in [
        "dkim",
        "spf",
        "dmarc",
        "mx",
        "relay",
        "unsubscribe",
        "list-id",
        "postal-address",
    ] {
        assert!(line(&out, '✓', check).is_some(), "no ✓ {check}:\n{}", out.stdout);
    }
    assert_line(&out, '✓', "dkim", "ed25519");
    assert_line(&out, '✓', "dmarc", "aligned by DKIM and SPF");
    assert_line(&out, '✓', "relay", "logged in");
    // The zone has no address for example.test: the endpoint is not deployed yet, a warning.
    assert_line(&out, '!', "one-click", "example.test has no address record");
    assert!(s.smtp.messages().is_empty(), "doctor sends no message");
    // --json says the same.
    let json = doctor(&s, &dns, &["--json"]);
    json.success();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert!(
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["check"] == "spf" && c["status"] == "pass")
    );
}

#[test]
#[ignore = "needs dnsmasq"]
fn an_rsa_key_split_over_several_strings_verifies() {
    let s = setup("rsa", "example.test");
    let dns = Dns::start(&good_zone(&s));
    let out = doctor(&s, &dns, &[]);
    out.success();
    assert_line(&out, '✓', "dkim", "rsa-2048");
}

#[test]
#[ignore = "needs dnsmasq"]
fn dkim_missing_record_and_wrong_key_fail_with_the_record_to_publish() {
    let s = setup("ed25519", "example.test");
    let zone: Vec<String> = good_zone(&s)
        .into_iter()
        .filter(|l| !l.contains("_domainkey"))
        .collect();
    let dns = Dns::start(&zone);
    let out = doctor(&s, &dns, &[]);
    out.code(1);
    assert_line(&out, '✗', "dkim", "no DKIM record at news._domainkey.example.test");
    assert!(
        out.stdout.contains(&s.dkim_record),
        "the fix is the record:\n{}",
        out.stdout
    );
    drop(dns);

    let other = setup("ed25519", "example.test");
    let mut zone: Vec<String> = good_zone(&s)
        .into_iter()
        .filter(|l| !l.contains("_domainkey"))
        .collect();
    zone.push(txt("news._domainkey.example.test", &other.dkim_record));
    let dns = Dns::start(&zone);
    let out = doctor(&s, &dns, &[]);
    out.code(1);
    assert_line(&out, '✗', "dkim", "publishes another key");
    assert!(out.stdout.contains(&s.dkim_record));

    let mut zone: Vec<String> = good_zone(&s)
        .into_iter()
        .filter(|l| !l.contains("_domainkey"))
        .collect();
    zone.push(txt("news._domainkey.example.test", "v=DKIM1; k=ed25519; p=!!!"));
    let dns = Dns::start(&zone);
    let out = doctor(&s, &dns, &[]);
    out.code(1);
    assert_line(&out, '✗', "dkim", "is not a usable DKIM key");
    drop(dns);

    // Publishing the record shown makes each of them disappear.
    let dns = Dns::start(&good_zone(&s));
    let out = doctor(&s, &dns, &[]);
    out.success();
    assert_line(&out, '✓', "dkim", "a signed message verifies");
}

#[test]
#[ignore = "needs dnsmasq"]
fn no_dkim_configured_fails_and_a_key_fixes_it() {
    let s = setup("ed25519", "example.test");
    let toml = s.project.read("bulletin.toml");
    let without = toml[..toml.find("[dkim]").unwrap()].to_owned();
    std::fs::write(s.project.join("bulletin.toml"), without).unwrap();
    let dns = Dns::start(&good_zone(&s));
    let out = doctor(&s, &dns, &[]);
    out.code(1);
    assert_line(&out, '✗', "dkim", "no DKIM");
    assert!(out.stdout.contains("bulletin dkim keygen"));
    std::fs::write(s.project.join("bulletin.toml"), toml).unwrap();
    let out = doctor(&s, &dns, &[]);
    out.success();
    no_fail(&out, "dkim");
}

#[test]
#[ignore = "needs dnsmasq"]
fn spf_missing_duplicated_failing_and_too_many_lookups() {
    let s = setup("ed25519", "example.test");
    let rest = || -> Vec<String> {
        good_zone(&s)
            .into_iter()
            .filter(|l| !l.starts_with("txt-record=example.test,"))
            .collect()
    };

    let dns = Dns::start(&rest());
    let out = doctor(&s, &dns, &[]);
    out.code(1);
    assert_line(&out, '✗', "spf", "example.test has no SPF record");
    assert!(
        out.stdout.contains("example.test TXT \"v=spf1 ip4:127.0.0.1 ~all\""),
        "{}",
        out.stdout
    );
    drop(dns);

    let mut zone = rest();
    zone.push(txt("example.test", "v=spf1 ip4:127.0.0.1 -all"));
    zone.push(txt("example.test", "v=spf1 include:_spf.other.test ~all"));
    let dns = Dns::start(&zone);
    let out = doctor(&s, &dns, &[]);
    out.code(1);
    assert_line(&out, '✗', "spf", "2 SPF records");
    drop(dns);

    let mut zone = rest();
    zone.push(txt("example.test", "v=spf1 ip4:192.0.2.1 -all"));
    let dns = Dns::start(&zone);
    let out = doctor(&s, &dns, &[]);
    out.code(1);
    assert_line(
        &out,
        '✗',
        "spf",
        "does not authorise the relay 127.0.0.1: 127.0.0.1 (Fail)",
    );
    assert!(out.stdout.contains("ip4:127.0.0.1"), "{}", out.stdout);
    drop(dns);

    let mut zone = rest();
    let includes: Vec<String> = (1..=11).map(|i| format!("include:s{i}.other.test")).collect();
    zone.push(txt(
        "example.test",
        &format!("v=spf1 {} ip4:127.0.0.1 -all", includes.join(" ")),
    ));
    for i in 1..=11 {
        zone.push(txt(&format!("s{i}.other.test"), "v=spf1 -all"));
    }
    let dns = Dns::start(&zone);
    let out = doctor(&s, &dns, &[]);
    out.code(1);
    assert_line(&out, '✗', "spf", "more than 10 DNS lookups");
    drop(dns);

    // Ten includes are within the limit: the same record with one include less passes.
    let mut zone = rest();
    let includes: Vec<String> = (1..=9).map(|i| format!("include:s{i}.other.test")).collect();
    zone.push(txt(
        "example.test",
        &format!("v=spf1 {} ip4:127.0.0.1 -all", includes.join(" ")),
    ));
    for i in 1..=9 {
        zone.push(txt(&format!("s{i}.other.test"), "v=spf1 -all"));
    }
    let dns = Dns::start(&zone);
    let out = doctor(&s, &dns, &[]);
    out.success();
    assert_line(&out, '✓', "spf", "pass");
}

#[test]
#[ignore = "needs dnsmasq"]
fn no_dmarc_fails_and_misaligned_domains_fail() {
    let s = setup("ed25519", "example.test");
    let zone: Vec<String> = good_zone(&s).into_iter().filter(|l| !l.contains("_dmarc")).collect();
    let dns = Dns::start(&zone);
    let out = doctor(&s, &dns, &[]);
    out.code(1);
    assert_line(&out, '✗', "dmarc", "no DMARC record at _dmarc.example.test");
    assert!(
        out.stdout.contains("_dmarc.example.test TXT \"v=DMARC1; p=none"),
        "{}",
        out.stdout
    );
    drop(dns);

    // DKIM signs for other.test and SPF does not pass: nothing aligns with example.test.
    let m = setup("ed25519", "other.test");
    let zone = vec![
        txt("example.test", "v=spf1 ip4:192.0.2.1 -all"),
        txt("news._domainkey.other.test", &m.dkim_record),
        txt("_dmarc.example.test", "v=DMARC1; p=reject"),
        "mx-host=example.test,mail.example.test,10".to_owned(),
    ];
    let dns = Dns::start(&zone);
    let out = doctor(&m, &dns, &[]);
    out.code(1);
    assert_line(&out, '✓', "dkim", "news._domainkey.other.test");
    assert_line(&out, '✗', "dmarc", "d=other.test");
    assert!(
        out.stdout.contains("[dkim] domain = \"example.test\""),
        "{}",
        out.stdout
    );
    drop(dns);

    // SPF passing aligns on its own.
    let mut zone = zone;
    zone[0] = txt("example.test", "v=spf1 ip4:127.0.0.1 -all");
    let dns = Dns::start(&zone);
    let out = doctor(&m, &dns, &[]);
    assert_line(&out, '✓', "dmarc", "aligned by SPF");
}

#[test]
#[ignore = "needs dnsmasq"]
fn a_domain_that_cannot_receive_mail_fails() {
    let s = setup("ed25519", "example.test");
    let zone: Vec<String> = good_zone(&s)
        .into_iter()
        .filter(|l| !l.starts_with("mx-host"))
        .collect();
    let dns = Dns::start(&zone);
    let out = doctor(&s, &dns, &[]);
    out.code(1);
    assert_line(&out, '✗', "mx", "example.test has neither MX nor A/AAAA");
    drop(dns);
    let mut zone = zone;
    zone.push("host-record=example.test,127.0.0.1".to_owned());
    let dns = Dns::start(&zone);
    let out = doctor(&s, &dns, &[]);
    out.success();
    assert_line(&out, '✓', "mx", "no MX but an address record");
}

#[test]
#[ignore = "needs dnsmasq"]
fn a_dns_server_that_fails_is_unknown_not_a_failure() {
    let s = setup("ed25519", "example.test");
    // The From domain lives where the DNS server answers SERVFAIL/REFUSED.
    let toml = s
        .project
        .read("bulletin.toml")
        .replace("news@example.test", "news@broken.test");
    std::fs::write(s.project.join("bulletin.toml"), toml).unwrap();
    let dns = Dns::start(&good_zone(&s));
    let out = doctor(&s, &dns, &[]);
    assert_line(&out, '!', "spf", "cannot look up");
    assert_line(&out, '!', "dmarc", "cannot look up");
    assert_line(&out, '!', "mx", "cannot look up");
    for check in ["spf", "dmarc", "mx"] {
        no_fail(&out, check);
    }
}

#[test]
#[ignore = "needs dnsmasq"]
fn the_relay_login_and_the_settings_fail_and_are_fixed() {
    let s = setup("ed25519", "example.test");
    let dns = Dns::start(&good_zone(&s));
    let wrong = s
        .project
        .command(&["doctor", "--dns", &dns.addr()])
        .env("BULLETIN_SMTP_PASSWORD", "wrong")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&wrong.stdout);
    assert_eq!(wrong.status.code(), Some(1), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("✗ relay") && l.contains("authentication failed")),
        "{stdout}"
    );
    doctor(&s, &dns, &[]).success();

    let toml = s.project.read("bulletin.toml");
    let broken = toml
        .replace("https://example.test/unsubscribe", "http://example.test/unsubscribe")
        .replace("postal_address = \"PO Box 1, Oakland, CA 94601\"\n", "")
        .replace("list_id = \"Members <members.example.test>\"\n", "");
    std::fs::write(s.project.join("bulletin.toml"), &broken).unwrap();
    let out = doctor(&s, &dns, &[]);
    out.code(1);
    assert_line(&out, '✗', "unsubscribe", "not https");
    assert_line(&out, '✗', "postal-address", "no postal address");
    assert_line(&out, '!', "list-id", "no list_id");
    let no_url = broken.replace("url = \"http://example.test/unsubscribe?token={{ token }}\"\n", "");
    std::fs::write(s.project.join("bulletin.toml"), no_url).unwrap();
    assert_line(&doctor(&s, &dns, &[]), '✗', "unsubscribe", "no one-click unsubscribe");
    std::fs::write(s.project.join("bulletin.toml"), toml).unwrap();
    let out = doctor(&s, &dns, &[]);
    out.success();
    for check in ["relay", "unsubscribe", "postal-address", "list-id"] {
        assert!(line(&out, '✓', check).is_some(), "no ✓ {check}:\n{}", out.stdout);
    }
}

#[test]
#[ignore = "needs dnsmasq"]
fn the_relay_size_limit_against_the_largest_message() {
    let s = setup("ed25519", "example.test");
    let small = TestSmtp::start_with(Options {
        auth: Some(("news".into(), PASSWORD.into())),
        max_message_bytes: Some(2000),
        ..Options::default()
    });
    let newsletter =
        "---\nsubject: Hello\n---\nHello {{ name | default(\"friend\") }}, a newsletter long enough to matter.\n";
    let p = &s.project;
    std::fs::write(p.join("n.md"), newsletter).unwrap();
    std::fs::write(p.join("m.csv"), "email,name\na@example.test,Ann\n").unwrap();
    let dns = Dns::start(&good_zone(&s));
    let url = format!("smtp://news@127.0.0.1:{}", small.addr().port());
    let out = doctor(&s, &dns, &["n.md", "--list", "m.csv", "--smtp", &url]);
    out.code(1);
    assert_line(&out, '✗', "relay-size", "takes at most 2000");
    let out = doctor(&s, &dns, &["n.md", "--list", "m.csv"]);
    out.success();
    assert_line(&out, '✓', "relay-size", "bytes");
}

/// A list with `gmail` members at gmail.com and a few elsewhere.
fn big_list(gmail: usize) -> String {
    let mut csv = String::from("email,name\n");
    for i in 0..gmail {
        csv.push_str(&format!("member{i}@gmail.com,M{i}\n"));
    }
    csv.push_str("someone@example.org,S\n");
    csv
}

const BULK_NEWSLETTER: &str = "---\nsubject: Hello\n---\nHello {{ name }}\n";

#[test]
fn bulk_sender_rules_are_errors_above_5000_at_gmail() {
    // DEFAULT_CONFIG: no DKIM, unsubscribe by mail only.
    let p = Project::new()
        .file("n.md", BULK_NEWSLETTER)
        .file("big.csv", big_list(5001))
        .file("small.csv", big_list(5000));
    let out = p.run(&["check", "n.md", "--list", "big.csv"]);
    out.code(1);
    let errors = out.lines("error: ");
    assert!(
        errors
            .iter()
            .any(|l| l.contains("bulk-sender rule") && l.contains("5001 recipients at Gmail") && l.contains("no DKIM")),
        "{}",
        out.stdout
    );
    assert!(
        errors.iter().any(|l| l.contains("no one-click unsubscribe")),
        "{}",
        out.stdout
    );
    // At the threshold: the warnings of before, no error.
    let out = p.run(&["check", "n.md", "--list", "small.csv"]);
    out.success().stdout_lacks("bulk-sender rule");
    // Overridden: warnings that say so.
    let out = p.run(&["check", "n.md", "--list", "big.csv", "--allow-noncompliant"]);
    out.success();
    assert!(
        out.lines("warning: ")
            .iter()
            .any(|l| l.contains("overridden by --allow-noncompliant"))
    );

    // send refuses before anything leaves (a dry run goes through the same preflight) …
    let out = p.run(&["send", "n.md", "--list", "big.csv", "--dry-run"]);
    out.code(1)
        .stderr_has("bulk-sender rule")
        .stderr_has("nothing was sent");
    // … and with the override, says so.
    let out = p.run(&["send", "n.md", "--list", "big.csv", "--dry-run", "--allow-noncompliant"]);
    out.success()
        .stderr_has("note: --allow-noncompliant: sending to 5001 recipients at Gmail without DKIM");

    // A real send (one member, --limit 1) refuses too, and with the override its plan says so.
    let smtp = TestSmtp::start();
    let smtp_url = smtp.url();
    let send = [
        "send", "n.md", "--list", "big.csv", "--yes", "--limit", "1", "--smtp", &smtp_url,
    ];
    p.run(&send)
        .code(1)
        .stderr_has("bulk-sender rule")
        .stderr_has("nothing was sent");
    assert!(smtp.messages().is_empty());
    let mut allowed = send.to_vec();
    allowed.push("--allow-noncompliant");
    p.run(&allowed).success().stderr_has(
        "override:   --allow-noncompliant: sending to 5001 recipients at Gmail without DKIM and one-click unsubscribe",
    );
    assert_eq!(smtp.messages().len(), 1);
}

#[test]
fn bulk_sender_rules_are_met_with_dkim_and_one_click_unsubscribe() {
    let p = Project::new()
        .file("n.md", BULK_NEWSLETTER)
        .file("big.csv", big_list(5001))
        .env("BULLETIN_UNSUBSCRIBE_SECRET", "0123456789abcdef0123456789abcdef");
    p.run(&[
        "dkim",
        "keygen",
        "--selector",
        "news",
        "--domain",
        "example.org",
        "--algorithm",
        "ed25519",
    ])
    .success();
    let config = crate::support::project::DEFAULT_CONFIG.replace(
        "[unsubscribe]\n",
        "[unsubscribe]\nurl = \"https://example.org/unsubscribe?token={{ token }}\"\n",
    ) + "\n[dkim]\ndomain = \"example.org\"\nselector = \"news\"\nprivate_key = \"keys/news.example.org.pem\"\n";
    std::fs::write(p.join("bulletin.toml"), config).unwrap();
    let out = p.run(&["check", "n.md", "--list", "big.csv"]);
    out.success().stdout_lacks("bulk-sender rule");
}

/// `bulletin init news` in an empty directory; returns the project and the DKIM records it
/// printed (name, value).
fn init() -> (Project, Vec<(String, String)>) {
    let p = Project::empty();
    let out = p.run(&["init", "news"]);
    out.success().stdout_has("Publish these DNS records");
    let records = out
        .stdout
        .lines()
        .filter(|l| l.contains("._domainkey."))
        .map(|l| {
            let (name, value) = l.trim().split_once(" TXT ").unwrap();
            (name.to_owned(), value.trim_matches('"').to_owned())
        })
        .collect();
    (p, records)
}

#[test]
fn init_makes_a_project_that_check_passes_with_dkim_and_one_click_unsubscribe() {
    use std::os::unix::fs::PermissionsExt;
    let (p, records) = init();
    assert_eq!(records.len(), 2, "an RSA and an Ed25519 record");
    assert!(
        records[0].1.contains("k=rsa") && records[1].1.contains("k=ed25519"),
        "{records:?}"
    );
    let nl = "newsletters/2026-12-first-hundred-days.md";
    let out = p.run_in("news", &["check", nl, "--list", "lists/members.csv"]);
    out.success().stdout_has("0 errors");
    for w in out.lines("warning: ") {
        let w = w.to_lowercase();
        assert!(!w.contains("dkim") && !w.contains("unsubscribe"), "{w}");
    }
    let secret = p.join("news/.bulletin/unsubscribe.secret");
    assert_eq!(std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777, 0o600);
    let ignore = p.read("news/.gitignore");
    assert!(ignore.contains("/.bulletin/") && ignore.contains("/keys/"), "{ignore}");
    let toml = p.read("news/bulletin.toml");
    assert!(
        toml.contains("secret_command = \"cat .bulletin/unsubscribe.secret\""),
        "{toml}"
    );
    assert!(
        !toml.contains(&p.read("news/.bulletin/unsubscribe.secret").trim().to_owned()),
        "the secret is not in bulletin.toml"
    );

    // Every message carries both signatures.
    p.run_in("news", &["preview", nl, "--list", "lists/members.csv", "--out", "pv"])
        .success();
    let eml = p.read("news/pv/email.eml");
    assert_eq!(eml.matches("DKIM-Signature:").count(), 2, "{eml}");
    assert!(eml.contains("a=rsa-sha256") && eml.contains("a=ed25519-sha256"));
    assert!(eml.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
}

#[test]
#[ignore = "needs dnsmasq"]
fn init_then_publishing_its_records_makes_doctor_pass() {
    let (p, records) = init();
    let smtp = TestSmtp::start();
    let mut zone: Vec<String> = records.iter().map(|(n, v)| txt(n, v)).collect();
    zone.extend([
        txt("example.org", "v=spf1 ip4:127.0.0.1 -all"),
        txt(
            "_dmarc.example.org",
            "v=DMARC1; p=none; rua=mailto:dmarc-reports@example.org",
        ),
        "mx-host=example.org,mail.example.org,10".to_owned(),
        "local=/org/".to_owned(),
    ]);
    let dns = Dns::start(&zone);
    let out = p
        .command_in("news", &["doctor", "--dns", &dns.addr(), "--smtp", &smtp.url()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let dkim: Vec<&str> = stdout.lines().filter(|l| l.starts_with("✓ dkim")).collect();
    assert_eq!(dkim.len(), 2, "{stdout}");
    assert!(dkim[0].contains("rsa-2048") && dkim[1].contains("ed25519"), "{stdout}");
}

#[test]
#[ignore = "needs dkimpy (python3 -m pip install dkimpy pynacl, as .ci/run does)"]
fn both_signatures_of_an_init_project_verify_with_dkimpy() {
    let (p, records) = init();
    let nl = "newsletters/2026-12-first-hundred-days.md";
    p.run_in("news", &["preview", nl, "--list", "lists/members.csv", "--out", "pv"])
        .success();
    let script = "import sys, dkim\nrecs = dict(a.split('=', 1) for a in sys.argv[2:])\n\
                  msg = open(sys.argv[1], 'rb').read()\nd = dkim.DKIM(msg)\n\
                  dns = lambda name, timeout=5: recs.get(name.decode().rstrip('.'), '').encode()\n\
                  print(' '.join('pass' if d.verify(idx=i, dnsfunc=dns) else 'fail' for i in range(2)))\n";
    let mut cmd = Command::new("python3");
    cmd.args(["-c", script]).arg(p.join("news/pv/email.eml"));
    for (name, value) in &records {
        cmd.arg(format!("{name}={value}"));
    }
    let out = cmd.output().expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.trim(), "pass pass", "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
#[ignore = "needs dnsmasq"]
fn the_relay_without_a_password_or_without_tls_fails() {
    let s = setup("ed25519", "example.test");
    let dns = Dns::start(&good_zone(&s));
    let out = s
        .project
        .command(&["doctor", "--dns", &dns.addr()])
        .env_remove("BULLETIN_SMTP_PASSWORD")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("✗ relay") && l.contains("no password is set")),
        "{stdout}"
    );
    assert!(stdout.contains("export BULLETIN_SMTP_PASSWORD"), "{stdout}");
    doctor(&s, &dns, &[]).success();

    // smtp://user@HOST (not loopback-looking) requires STARTTLS, which the test server lacks.
    let Some(host) = crate::support::remote_looking_loopback_name() else {
        eprintln!("skipped the STARTTLS case: no host name that resolves only to loopback");
        return;
    };
    let url = format!("smtp://news@{host}:{}", s.smtp.addr().port());
    let out = doctor(&s, &dns, &["--smtp", &url]);
    out.code(1);
    assert_line(&out, '✗', "relay", "TLS failed");
    assert!(out.stdout.contains("smtps://HOST:465"), "{}", out.stdout);
}

#[test]
#[ignore = "needs dnsmasq and Postfix's smtp-sink"]
fn the_relay_check_against_postfix_smtp_sink() {
    let s = setup("ed25519", "example.test");
    let dns = Dns::start(&good_zone(&s));
    let sink = crate::smtp_sink::Sink::start(&[]);
    let out = doctor(&s, &dns, &["--smtp", &sink.url()]);
    out.success();
    assert_line(&out, '✓', "relay", "answers");
    // A user, and a sink that announces no AUTH (-a): refused, never sent unauthenticated.
    let no_auth = crate::smtp_sink::Sink::start(&["-a"]);
    let url = no_auth.url().replace("smtp://", "smtp://news@");
    let out = doctor(&s, &dns, &["--smtp", &url]);
    out.code(1);
    assert_line(&out, '✗', "relay", "offers no AUTH");
}

/// Replaces `old` by `new` in the project's bulletin.toml (which must hold `old`).
fn edit_config(s: &Setup, old: &str, new: &str) {
    let toml = s.project.read("bulletin.toml");
    assert!(toml.contains(old), "{old:?} not in\n{toml}");
    std::fs::write(s.project.join("bulletin.toml"), toml.replacen(old, new, 1)).unwrap();
}

#[test]
#[ignore = "needs dnsmasq"]
fn spf_judges_the_verp_bounce_domain_when_there_is_one() {
    let s = setup("ed25519", "example.test");
    let dns = Dns::start(&good_zone(&s));
    // Without [inbox] bounce_address: the From domain.
    let out = doctor(&s, &dns, &[]);
    out.success();
    assert_line(&out, '✓', "spf", "the From domain example.test authorises the relay");
    // With it: the bounce domain, whose record the good zone lacks …
    let toml = s.project.read("bulletin.toml");
    std::fs::write(
        s.project.join("bulletin.toml"),
        format!("{toml}\n[inbox]\nbounce_address = \"bounces@bounce.example.test\"\n"),
    )
    .unwrap();
    let out = doctor(&s, &dns, &[]);
    out.code(1);
    assert_line(
        &out,
        '✗',
        "spf",
        "the bounce domain bounce.example.test has no SPF record",
    );
    assert!(
        out.stdout
            .contains("bounce.example.test TXT \"v=spf1 ip4:127.0.0.1 ~all\""),
        "{}",
        out.stdout
    );
    drop(dns);
    // … and publishing it there fixes it (DMARC aligns it with example.test, relaxed).
    let mut zone = good_zone(&s);
    zone.push(txt("bounce.example.test", "v=spf1 ip4:127.0.0.1 -all"));
    let dns = Dns::start(&zone);
    let out = doctor(&s, &dns, &[]);
    out.success();
    assert_line(
        &out,
        '✓',
        "spf",
        "the bounce domain bounce.example.test authorises the relay",
    );
    assert_line(&out, '✓', "dmarc", "aligned by DKIM and SPF");
}

#[test]
#[ignore = "needs dnsmasq"]
fn dmarc_records_that_are_not_one_valid_policy_fail() {
    let s = setup("ed25519", "example.test");
    let without: Vec<String> = good_zone(&s).into_iter().filter(|l| !l.contains("_dmarc")).collect();
    let with = |records: &[&str]| {
        let mut zone = without.clone();
        zone.extend(records.iter().map(|r| txt("_dmarc.example.test", r)));
        Dns::start(&zone)
    };
    for (records, expected) in [
        (&["v=DMARC1; p=none", "v=DMARC1; p=reject"][..], "has 2 DMARC records"),
        (&["v=DMARC1; rua=mailto:dmarc@example.test"][..], "no policy (p=)"),
        (&["v=DMARC1; p=sometimes"][..], "not a valid DMARC policy"),
        (&["google-site-verification=abc"][..], "none v=DMARC1"),
    ] {
        let dns = with(records);
        let out = doctor(&s, &dns, &[]);
        out.code(1);
        assert_line(&out, '✗', "dmarc", expected);
        assert!(
            out.stdout.contains("fix:") && out.stdout.contains("v=DMARC1; p=none"),
            "{}",
            out.stdout
        );
    }
    // One valid record (beside an unrelated TXT record): the ✗ is gone.
    let dns = with(&["google-site-verification=abc", "v=DMARC1; p=none"]);
    let out = doctor(&s, &dns, &[]);
    out.success();
    assert_line(&out, '✓', "dmarc", "p=none; aligned");
}

/// Writes an RSA key of `bits` as `keys/news.example.test.pem` (the one `setup` configures).
fn write_rsa_key(s: &Setup, bits: usize) {
    use rsa::pkcs1::EncodeRsaPrivateKey as _;
    let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, bits).unwrap();
    let pem = key.to_pkcs1_pem(rsa::pkcs1::LineEnding::LF).unwrap();
    std::fs::write(s.project.join("keys/news.example.test.pem"), pem.as_bytes()).unwrap();
}

#[test]
#[ignore = "needs dnsmasq"]
fn an_unusable_or_too_small_dkim_key_fails_and_a_1024_bit_key_only_warns() {
    let s = setup("ed25519", "example.test");
    let good_key = s.project.read("keys/news.example.test.pem");
    let dns = Dns::start(&good_zone(&s));
    let fix = "bulletin dkim keygen --selector news2 --domain example.test";

    std::fs::write(s.project.join("keys/news.example.test.pem"), "not a key\n").unwrap();
    let out = doctor(&s, &dns, &[]);
    out.code(1);
    assert_line(&out, '✗', "dkim", "not a private key bulletin can use");
    assert!(out.stdout.contains(fix), "{}", out.stdout);

    write_rsa_key(&s, 1016);
    let out = doctor(&s, &dns, &[]);
    out.code(1);
    assert_line(&out, '✗', "dkim", "1016 bits; receivers ignore keys under 1024");
    assert!(out.stdout.contains(fix), "{}", out.stdout);
    drop(dns);

    // 1024 bits, its record published: it verifies, with a warning and exit 0.
    write_rsa_key(&s, 1024);
    let record = bulletin::dkim::Key::load(&s.project.join("keys/news.example.test.pem"), "example.test", "news")
        .unwrap()
        .dns_record();
    let mut zone: Vec<String> = good_zone(&s)
        .into_iter()
        .filter(|l| !l.contains("_domainkey"))
        .collect();
    zone.push(txt("news._domainkey.example.test", &record));
    let dns = Dns::start(&zone);
    let out = doctor(&s, &dns, &[]);
    out.success();
    no_fail(&out, "dkim");
    assert_line(&out, '!', "dkim", "rsa-1024 key verifies, but Gmail advises 2048 bits");
    // `check` warns the same, and a dry run signs with it.
    p_check_warns_of_1024(&s);
    drop(dns);

    // The good key back: ✓.
    std::fs::write(s.project.join("keys/news.example.test.pem"), good_key).unwrap();
    let dns = Dns::start(&good_zone(&s));
    let out = doctor(&s, &dns, &[]);
    out.success();
    assert_line(&out, '✓', "dkim", "ed25519 key published");
}

fn p_check_warns_of_1024(s: &Setup) {
    let p = &s.project;
    std::fs::write(p.join("n.md"), "---\nsubject: Hello\n---\nHello\n").unwrap();
    std::fs::write(p.join("m.csv"), "email\na@example.test\n").unwrap();
    let out = p.run(&["check", "n.md", "--list", "m.csv"]);
    out.success();
    assert!(
        out.lines("warning: ")
            .iter()
            .any(|w| w.contains("1024 bits") && w.contains("Gmail advises 2048")),
        "{}",
        out.stdout
    );
    p.run(&["send", "n.md", "--list", "m.csv", "--dry-run"]).success();
    let eml = std::fs::read_dir(p.join(".bulletin/dry-run"))
        .unwrap()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
        .find(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .expect("a dry run writes an .eml");
    assert!(eml.contains("a=rsa-sha256"), "{eml}");
}

#[test]
#[ignore = "needs dnsmasq"]
fn a_dkim_name_holding_something_else_fails() {
    let s = setup("ed25519", "example.test");
    let mut zone: Vec<String> = good_zone(&s)
        .into_iter()
        .filter(|l| !l.contains("_domainkey"))
        .collect();
    zone.push(txt("news._domainkey.example.test", "hello, world"));
    let dns = Dns::start(&zone);
    let out = doctor(&s, &dns, &[]);
    out.code(1);
    assert_line(
        &out,
        '✗',
        "dkim",
        "the record at news._domainkey.example.test is not a usable DKIM key",
    );
    assert!(
        out.stdout.contains(&s.dkim_record),
        "the fix is the record:\n{}",
        out.stdout
    );
}

#[test]
#[ignore = "needs dnsmasq"]
fn no_sender_fails_and_a_from_fixes_it() {
    let s = setup("ed25519", "example.test");
    let dns = Dns::start(&good_zone(&s));
    edit_config(&s, "from = \"Example <news@example.test>\"\n", "");
    let out = doctor(&s, &dns, &[]);
    out.code(1);
    assert_line(&out, '✗', "from", "no sender");
    assert!(
        out.stdout.contains("from = \"Name <news@example.org>\""),
        "{}",
        out.stdout
    );
    edit_config(&s, "reply_to", "from = \"Example <news@example.test>\"\nreply_to");
    let out = doctor(&s, &dns, &[]);
    out.success();
    no_fail(&out, "from");
}

#[test]
#[ignore = "needs dnsmasq"]
fn a_reply_to_domain_that_cannot_receive_mail_fails() {
    let s = setup("ed25519", "example.test");
    edit_config(&s, "reply_to = \"info@example.test\"", "reply_to = \"info@other.test\"");
    let dns = Dns::start(&good_zone(&s));
    let out = doctor(&s, &dns, &[]);
    out.code(1);
    assert_line(&out, '✗', "mx", "Reply-To domain other.test has neither MX nor A/AAAA");
    assert_line(&out, '✓', "mx", "From domain example.test receives mail");
    drop(dns);
    let mut zone = good_zone(&s);
    zone.push("mx-host=other.test,mail.example.test,10".to_owned());
    let dns = Dns::start(&zone);
    let out = doctor(&s, &dns, &[]);
    out.success();
    assert_line(&out, '✓', "mx", "Reply-To domain other.test receives mail");
}

#[test]
#[ignore = "needs dnsmasq"]
fn no_relay_a_closed_port_and_a_missing_unsubscribe_secret_fail() {
    let s = setup("ed25519", "example.test");
    let dns = Dns::start(&good_zone(&s));
    let relay_url = format!("smtp://news@127.0.0.1:{}", s.smtp.addr().port());
    edit_config(&s, &format!("url = \"{relay_url}\"\n"), "");
    let out = doctor(&s, &dns, &[]);
    out.code(1);
    assert_line(&out, '✗', "relay", "no SMTP relay");
    assert!(out.stdout.contains("[smtp] url = \"smtp://"), "{}", out.stdout);
    doctor(&s, &dns, &["--smtp", &relay_url]).success();

    // Nothing listens on the port.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = doctor(&s, &dns, &["--smtp", &format!("smtp://news@127.0.0.1:{closed}")]);
    out.code(1);
    assert_line(&out, '✗', "relay", "127.0.0.1:");
    assert!(
        out.stdout.contains("check [smtp] url's host and port"),
        "{}",
        out.stdout
    );

    // The unsubscribe URL carries {{ token }}, and no secret is set.
    let out = s
        .project
        .command(&["doctor", "--dns", &dns.addr(), "--smtp", &relay_url])
        .env_remove("BULLETIN_UNSUBSCRIBE_SECRET")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("✗ unsubscribe") && l.contains("no secret is set")),
        "{stdout}"
    );
    assert!(
        stdout.contains("secret_command = \"cat .bulletin/unsubscribe.secret\""),
        "{stdout}"
    );
    doctor(&s, &dns, &["--smtp", &relay_url]).success();
}

#[test]
fn a_dns_server_that_never_answers_is_unknown_not_a_failure() {
    // A name server that takes every query and answers none (UDP and TCP on one port).
    let (udp, tcp) = loop {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        if let Ok(udp) = UdpSocket::bind(tcp.local_addr().unwrap()) {
            break (udp, tcp);
        }
    };
    let addr = udp.local_addr().unwrap().to_string();
    let p = Project::new().file(
        "bulletin.toml",
        crate::support::project::DEFAULT_CONFIG.replace(
            "[unsubscribe]\nmailto = \"unsubscribe@example.org\"\n",
            "[unsubscribe]\nmailto = \"unsubscribe@example.org\"\n[dkim]\ndomain = \"example.org\"\nselector = \"news\"\nprivate_key = \"keys/news.example.org.pem\"\n",
        ),
    );
    p.run(&[
        "dkim",
        "keygen",
        "--selector",
        "news",
        "--domain",
        "example.org",
        "--algorithm",
        "ed25519",
    ])
    .success();
    let smtp = TestSmtp::start();
    let out = p.run(&["doctor", "--dns", &addr, "--smtp", &smtp.url()]);
    for check in ["dkim", "spf", "dmarc", "mx"] {
        assert_line(&out, '!', check, "cannot look up");
        no_fail(&out, check);
    }
    assert_line(&out, '✓', "relay", "answers");
    drop((udp, tcp));
}

/// Starts `bulletin serve` for `s`'s project (its secret and list) with a suppression file,
/// and points `[unsubscribe] url` at it (plain http on 127.0.0.1: what doctor may probe).
fn serve_for(s: &Setup) -> crate::support::serve::Server {
    let p = &s.project;
    std::fs::create_dir_all(p.join("lists")).unwrap();
    std::fs::write(p.join("lists/unsubscribed.csv"), "email,reason,date,campaign\n").unwrap();
    let toml = p.read("bulletin.toml");
    std::fs::write(
        p.join("bulletin.toml"),
        format!("suppress = [\"lists/unsubscribed.csv\"]\n{toml}"),
    )
    .unwrap();
    let server = crate::support::serve::Server::start(p, &[]);
    edit_config(
        s,
        "https://example.test/unsubscribe?token={{ token }}",
        &format!("{}/unsubscribe/{{{{ token }}}}", server.base),
    );
    server
}

#[test]
#[ignore = "needs dnsmasq"]
fn the_one_click_endpoint_is_probed_and_the_probe_records_nothing() {
    let s = setup("ed25519", "example.test");
    let dns = Dns::start(&good_zone(&s));
    let server = serve_for(&s);
    let before = s.project.read_bytes("lists/unsubscribed.csv");
    let out = doctor(&s, &dns, &[]);
    assert_line(&out, '✓', "one-click", "with a probe token answers 200");
    // Plain http is still a failure of the setting itself (one-click needs https).
    assert_line(&out, '✗', "unsubscribe", "not https");
    assert_eq!(
        s.project.read_bytes("lists/unsubscribed.csv"),
        before,
        "the probe recorded nothing"
    );
    // The same server records a member's one-click POST: the file could have changed.
    let member = bulletin::unsubscribe::Unsubscribe::new(
        None,
        None,
        Some(bulletin::secret::Secret::new("0123456789abcdef0123456789abcdef".into())),
        "Members <members.example.test>".into(),
    )
    .token(&bulletin::email::Email::parse("ann@example.test").unwrap())
    .unwrap();
    let agent = crate::support::serve::client();
    let answer = crate::support::serve::one_click(&agent, &server.url(&format!("/unsubscribe/{member}")));
    assert_eq!(answer.status, 200);
    assert!(
        s.project
            .read("lists/unsubscribed.csv")
            .contains("ann@example.test,unsubscribe,")
    );

    // A `serve` with another secret answers the probe 404: ✗ with the fix.
    let other = Project::new()
        .file("bulletin.toml", s.project.read("bulletin.toml"))
        .file("lists/unsubscribed.csv", "email,reason,date,campaign\n")
        .env("BULLETIN_UNSUBSCRIBE_SECRET", "another-secret-another-secret-00");
    let wrong = crate::support::serve::Server::start(&other, &[]);
    edit_config(&s, &server.base, &wrong.base);
    let out = doctor(&s, &dns, &[]);
    assert_line(&out, '✗', "one-click", "answers 404");
    assert!(
        out.stdout.contains("this project's unsubscribe secret"),
        "{}",
        out.stdout
    );
    // Nothing listening there: not deployed yet, a warning, not a failure.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    edit_config(&s, &wrong.base, &format!("http://127.0.0.1:{closed}"));
    let out = doctor(&s, &dns, &[]);
    assert_line(&out, '!', "one-click", "cannot reach");
    no_fail(&out, "one-click");
    // Back at the right server: ✓ again.
    edit_config(&s, &format!("http://127.0.0.1:{closed}"), &server.base);
    assert_line(&doctor(&s, &dns, &[]), '✓', "one-click", "answers 200");
}
