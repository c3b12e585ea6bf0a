//! Issue 2 from the outside: the real `bulletin` binary run in temporary projects, its output
//! re-parsed by independent parsers (mail-parser, Python's `email` package).

use crate::support::project::{DEFAULT_CONFIG, Preview, Project};
use mail_parser::{MessagePart, MimeHeaders, PartType};

const NL: &str = "newsletters/n.md";
const LIST: &str = "lists/m.csv";

/// A YAML-fronted newsletter with `subject` and `body`.
fn newsletter(subject: &str, body: &str) -> String {
    format!("---\nsubject: {}\n---\n{body}", yaml_str(subject))
}

fn yaml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A project with one newsletter and one list.
fn project(subject: &str, body: &str, csv: &str) -> Project {
    Project::new().file(NL, newsletter(subject, body)).file(LIST, csv)
}

fn check(p: &Project) -> crate::support::project::Run {
    p.run(&["check", NL, "--list", LIST])
}

/// The `n`th data row's preview (1 = first).
fn preview_row(p: &Project, row: u32) -> Preview {
    p.preview(NL, &[LIST], &["--row", &row.to_string()])
}

fn part_type(part: &MessagePart<'_>) -> String {
    let ct = part.content_type().expect("every part has a Content-Type");
    format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default()).to_ascii_lowercase()
}

/// Headers named `name` in the top-level header block, as mail-parser sees them.
fn header_count(msg: &mail_parser::Message<'_>, name: &str) -> usize {
    msg.headers()
        .iter()
        .filter(|h| h.name().eq_ignore_ascii_case(name))
        .count()
}

/// Python's `email` package (policy.default) re-parses the message: print every defect of
/// every part and header; empty output means none.
fn python_defects(path: &std::path::Path) -> String {
    const SCRIPT: &str = r"
import email, email.policy, sys
m = email.message_from_bytes(open(sys.argv[1], 'rb').read(), policy=email.policy.default)
for part in m.walk():
    for d in part.defects:
        print(part.get_content_type(), type(d).__name__, d)
    for k, v in part.items():
        for d in getattr(v, 'defects', ()):
            print(k, type(d).__name__, d)
    if not part.is_multipart():
        part.get_content()
";
    let out = std::process::Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(path)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Every line at most 76 columns, unless it is a lone URL (a `[n] ` reference marker allowed).
fn assert_wrapped(text: &str) {
    for line in text.lines() {
        if line.chars().count() <= 76 {
            continue;
        }
        let t = line.trim();
        let t = match t.strip_prefix('[').and_then(|r| r.split_once("] ")) {
            Some((n, rest)) if n.bytes().all(|b| b.is_ascii_digit()) => rest,
            _ => t,
        };
        let lone_url = !t.contains(char::is_whitespace)
            && (t.starts_with("https://") || t.starts_with("http://") || t.starts_with("mailto:"));
        assert!(lone_url, "line over 76 columns: {line:?}\n--- text part:\n{text}");
    }
}

// ---------------------------------------------------------------------------------------------
// Front matter

#[test]
fn yaml_front_matter_sets_subject_and_sender() {
    let p = Project::new()
        .file(
            NL,
            "---\nsubject: \"News: spring\"\nfrom: \"Spring Team <spring@lists.example.net>\"\nreply_to: \"reply@example.net\"\n---\nHello.\n",
        )
        .file(LIST, "email\nana@example.org\n");
    check(&p).success().stdout_has("1 recipient,").stdout_has("0 errors");
    let pv = preview_row(&p, 1);
    let msg = pv.message();
    assert_eq!(msg.subject(), Some("News: spring"));
    let from = msg.from().and_then(|a| a.first()).expect("From");
    assert_eq!(from.address(), Some("spring@lists.example.net"));
    assert_eq!(from.name(), Some("Spring Team"));
    assert_eq!(
        msg.reply_to().and_then(|a| a.first()).and_then(|a| a.address()),
        Some("reply@example.net")
    );
    assert!(
        msg.message_id().unwrap().ends_with("@lists.example.net"),
        "{:?}",
        msg.message_id()
    );
    assert!(pv.text.starts_with("Hello.\n"), "{}", pv.text);
}

#[test]
fn toml_front_matter_with_crlf_line_endings() {
    let p = Project::new()
        .file(NL, "+++\r\nsubject = \"Hello {{ first_name }}\"\r\npreheader = \"Read on\"\r\n+++\r\n\r\nFirst paragraph\r\nstill first.\r\n\r\nSecond.\r\n")
        .file(LIST, "email,first_name\r\nana@example.org,Ana\r\n");
    check(&p).success();
    let pv = preview_row(&p, 1);
    assert_eq!(pv.message().subject(), Some("Hello Ana"));
    assert!(
        pv.text.starts_with("First paragraph still first.\n\nSecond.\n"),
        "{}",
        pv.text
    );
    assert!(!pv.text.contains('\r'), "{:?}", pv.text);
    assert!(pv.html.contains("Read on"));
}

#[test]
fn unclosed_front_matter_names_file_and_line() {
    let p = Project::new()
        .file(
            NL,
            "---\nsubject: Hello\nfrom: \"A <a@example.org>\"\n\nDear reader,\n\nthe rest.\n",
        )
        .file("newsletters/t.md", "+++\nsubject = \"Hello\"\n# a comment\n\nBody\n")
        .file(LIST, "email\na@example.org\n");
    check(&p)
        .code(1)
        .stderr_has("error: newsletters/n.md:1: front matter opened with `---` is never closed")
        .stderr_has("add `---` on its own line after line 3");
    p.run(&["check", "newsletters/t.md", "--list", LIST])
        .code(1)
        .stderr_has("newsletters/t.md:1:")
        .stderr_has("add `+++` on its own line after line 3");
    p.run(&["preview", NL, "--list", LIST])
        .code(1)
        .stderr_has("never closed");
}

#[test]
fn unknown_front_matter_key_is_an_error_naming_it() {
    let p = Project::new()
        .file(NL, "---\nsubject: Hello\nsubjet: Helo\n---\nBody\n")
        .file(
            "newsletters/t.md",
            "+++\nsubject = \"Hello\"\n\npreheadr = \"x\"\n+++\nBody\n",
        )
        .file(LIST, "email\na@example.org\n");
    check(&p).code(1).stderr_has("newsletters/n.md:3:").stderr_has("subjet");
    p.run(&["check", "newsletters/t.md", "--list", LIST])
        .code(1)
        .stderr_has("newsletters/t.md:4:")
        .stderr_has("preheadr");
}

#[test]
fn missing_subject_is_an_error() {
    let p = Project::new()
        .file(NL, "---\npreheader: p\n---\nBody\n")
        .file(LIST, "email\na@example.org\n");
    check(&p)
        .code(1)
        .stdout_has("error: newsletters/n.md:1: the newsletter has no subject");
}

// ---------------------------------------------------------------------------------------------
// Subscriber CSV

#[test]
fn bom_and_header_normalisation() {
    let p = project(
        "Hi",
        "Dear {{ first_name }} from {{ home_city }}.\n",
        "\u{feff}  E-Mail ,First Name,Home  City\nana@example.org,Ana,Oakland\n",
    );
    check(&p).success().stdout_has("1 recipient,");
    let pv = preview_row(&p, 1);
    assert!(pv.text.starts_with("Dear Ana from Oakland.\n"), "{}", pv.text);
    assert_eq!(
        pv.message().to().and_then(|a| a.first()).and_then(|a| a.name()),
        Some("Ana")
    );
}

#[test]
fn semicolon_and_tab_delimiters_are_detected() {
    let body = "{{ first_name }} in {{ city }}.\n";
    let p = project("Hi", body, "email;first_name;city\nana@example.org;Ana;Oakland, CA\n").file(
        "lists/tab.csv",
        "email\tfirst_name\tcity\nbo@example.org\tBo\tSalinas; Monterey County\n",
    );
    check(&p).success();
    assert!(preview_row(&p, 1).text.starts_with("Ana in Oakland, CA.\n"));
    let pv = p.preview(NL, &["lists/tab.csv"], &[]);
    assert!(pv.text.starts_with("Bo in Salinas; Monterey County.\n"), "{}", pv.text);
}

#[test]
fn crlf_lists_keep_values_clean_and_lines_right() {
    let p = project(
        "Hi",
        "Dear {{ first_name }}.\n",
        "email,first_name\r\nana@example.org,Ana\r\nnot-an-address,Bo\r\ncy@example.org,Cy\r\n",
    );
    check(&p)
        .success()
        .stdout_has("warning: lists/m.csv:3: \"not-an-address\" is not an email address")
        .stdout_has("2 recipients");
    let pv = preview_row(&p, 3);
    assert!(pv.text.starts_with("Dear Cy.\n"), "{:?}", pv.text);
    assert_eq!(pv.message().to().unwrap().first().unwrap().name(), Some("Cy"));
}

#[test]
fn quoted_fields_with_commas_and_newlines_keep_physical_line_numbers() {
    let csv = "email,first_name,address\n\
               ana@example.org,\"Ana, María\",\"12 Main St\nOakland, CA\"\n\
               jane@@example.org,Jane,x\n\
               bo@example.org,Bo,\"a \"\"quoted\"\" word\"\n";
    let p = project("Hi", "Dear {{ first_name }} at {{ address }}.\n", csv);
    // Header = line 1, Ana spans lines 2–3, so Jane is on line 4 and Bo on line 5.
    let run = check(&p);
    run.success()
        .stdout_has("warning: lists/m.csv:4: \"jane@@example.org\" is not an email address")
        .stdout_has("2 recipients, 1 row skipped");
    let pv = preview_row(&p, 1);
    assert!(
        pv.text.starts_with("Dear Ana, María at 12 Main St\nOakland, CA.\n"),
        "{}",
        pv.text
    );
    let pv = preview_row(&p, 3);
    assert!(pv.text.starts_with("Dear Bo at a \"quoted\" word.\n"), "{}", pv.text);
    p.run(&["preview", NL, "--list", LIST, "--row", "3", "--out", "o"])
        .success()
        .stderr_has("preview for bo@example.org (lists/m.csv:5)");
}

#[test]
fn invalid_addresses_are_reported_with_lines_and_skipped() {
    let csv = "email,first_name\nana@example.org,Ana\njane@@example.org,Jane\n,Nobody\nbob@,Bob\ncarla@example,Carla\ndee@example.org,Dee\n";
    let p = project("Hi", "Hello {{ first_name }}.\n", csv);
    let run = check(&p);
    run.success().stdout_has("2 recipients, 4 rows skipped");
    for (line, value) in [(3, "jane@@example.org"), (4, ""), (5, "bob@"), (6, "carla@example")] {
        run.stdout_has(&format!(
            "warning: lists/m.csv:{line}: {value:?} is not an email address"
        ));
    }
    p.run(&["preview", NL, "--list", LIST, "--row", "2"])
        .code(1)
        .stderr_has("row 2 will not receive this newsletter")
        .stderr_has("lists/m.csv:3");
}

#[test]
fn duplicates_across_lists_first_row_wins_and_overlap_is_reported() {
    let p = project(
        "Hi",
        "Hello {{ first_name }}.\n",
        "email,first_name\nAna.Lopez@Example.org,Ana\nbo@example.org,Bo\n",
    )
    .file(
        "lists/b.csv",
        "email,first_name\ncy@example.org,Cy\nana.lopez@example.ORG,Anita\nBO@example.org,Bobby\n",
    );
    let run = p.run(&["check", NL, "--list", LIST, "--list", "lists/b.csv"]);
    run.success()
        .stdout_has("warning: lists/b.csv:3: duplicate of the address at lists/m.csv:2")
        .stdout_has("warning: lists/b.csv:4: duplicate of the address at lists/m.csv:3")
        .stdout_has("3 recipients, 2 rows skipped");
    let pv = p.preview(NL, &[LIST, "lists/b.csv"], &["--to", "ANA.LOPEZ@example.org"]);
    assert!(pv.text.starts_with("Hello Ana.\n"), "{}", pv.text);
    let to = pv
        .message()
        .to()
        .unwrap()
        .first()
        .unwrap()
        .address()
        .unwrap()
        .to_owned();
    assert_eq!(to, "Ana.Lopez@Example.org");
}

#[test]
fn unsubscribed_and_bounced_rows_are_skipped() {
    let csv = "email,first_name,Status\n\
               ana@example.org,Ana,subscribed\n\
               bo@example.org,Bo,Unsubscribed\n\
               cy@example.org,Cy,bounced\n\
               di@example.org,Di,cleaned\n\
               ed@example.org,Ed,\n";
    let p = project("Hi", "Hello {{ first_name }}.\n", csv);
    check(&p)
        .success()
        .stdout_has("note: lists/m.csv:3: status is `unsubscribed`; row skipped")
        .stdout_has("note: lists/m.csv:4: status is `bounced`; row skipped")
        .stdout_has("note: lists/m.csv:5: status is `cleaned`; row skipped")
        .stdout_has("2 recipients, 3 rows skipped");
    p.run(&["preview", NL, "--list", LIST, "--to", "bo@example.org"])
        .code(1)
        .stderr_has("bo@example.org will not receive this newsletter")
        .stderr_has("unsubscribed");
}

#[test]
fn suppression_files_from_settings_are_always_excluded() {
    // `suppress` is a top-level key, so it goes before the first table.
    let config = format!(
        "suppress = [\"lists/unsubscribed.csv\", \"lists/bounces.txt\"]\n{}",
        DEFAULT_CONFIG
    );
    let p = project(
        "Hi",
        "Hello.\n",
        "email\nana@example.org\nBO@example.org\ncy@example.org\ndi@example.org\n",
    )
    .file("bulletin.toml", &config)
    .file(
        "lists/unsubscribed.csv",
        "\u{feff}Email Address;Reason\nbo@example.org;asked\n",
    )
    .file("lists/bounces.txt", "DI@Example.org\n");
    check(&p)
        .success()
        .stdout_has("note: lists/m.csv:3: address is in lists/unsubscribed.csv; row skipped")
        .stdout_has("note: lists/m.csv:5: address is in lists/bounces.txt; row skipped")
        .stdout_has("2 recipients, 2 rows skipped");
    p.run(&["preview", NL, "--list", LIST, "--to", "di@example.org"])
        .code(1)
        .stderr_has("will not receive");
}

#[test]
fn non_utf8_list_is_an_error_naming_file_and_line() {
    let p = Project::new()
        .file(NL, newsletter("Hi", "Hello {{ first_name }}.\n"))
        .file(
            LIST,
            b"email,first_name\nana@example.org,Ana\n\"bo@example.org\",\"B\nob\"\njose@example.org,Jos\xe9\n"
                .as_slice(),
        );
    check(&p).code(1).stderr_has("lists/m.csv:5:").stderr_has("not UTF-8");
    let p = p.file(LIST, b"email,Pr\xe9nom\nana@example.org,Ana\n".as_slice());
    check(&p).code(1).stderr_has("lists/m.csv:1:").stderr_has("not UTF-8");
}

#[test]
fn list_without_an_address_column_is_an_error() {
    let p = project("Hi", "Hello.\n", "name,city\nAna,Oakland\n");
    check(&p)
        .code(1)
        .stderr_has("lists/m.csv:1: no address column (found: name, city)");
    for header in ["Email Address", "E-mail", "mail"] {
        let p = project("Hi", "Hello.\n", &format!("{header},name\nana@example.org,Ana\n"));
        check(&p).success().stdout_has("1 recipient,");
    }
}

// ---------------------------------------------------------------------------------------------
// Strictness

#[test]
fn unknown_merge_field_names_file_and_line() {
    let p = project(
        "Hi",
        "Hello.\n\nDear {{ nickname }},\n",
        "email,first_name\nana@example.org,Ana\n",
    );
    // Front matter is lines 1–3, so the body starts on line 4 and the tag is on line 6.
    check(&p)
        .code(1)
        .stdout_has("error: newsletters/n.md:6: unknown merge field `nickname`")
        .stdout_has("first_name");
    p.run(&["preview", NL, "--list", LIST])
        .code(1)
        .stderr_has("unknown merge field `nickname`");
    let p = Project::new()
        .file(
            NL,
            "---\npreheader: x\nsubject: \"Hi {{ nick | default('x') }}\"\n---\nHello.\n",
        )
        .file(LIST, "email\na@example.org\n");
    check(&p)
        .code(1)
        .stdout_has("error: newsletters/n.md:3: unknown merge field `nick`");
}

#[test]
fn bare_field_empty_for_some_rows_is_an_error_listing_them() {
    let csv = "email,first_name\nana@example.org,Ana\nbo@example.org,\ncy@example.org,Cy\ndi@example.org,   \n";
    let p = project("Hi", "Dear {{ first_name }},\n", csv);
    let run = check(&p);
    run.code(1);
    let errors = run.lines("error: ");
    assert_eq!(errors.len(), 1, "{}", run.stdout);
    let e = errors[0];
    assert!(e.contains("`first_name` is empty"), "{e}");
    assert!(e.contains("for 2 members: lists/m.csv:3, lists/m.csv:5"), "{e}");
    assert!(e.contains("default("), "the error suggests a fallback: {e}");
    // preview refuses that member, and serves a member who has a name.
    p.run(&["preview", NL, "--list", LIST, "--row", "2"])
        .code(1)
        .stderr_has("`first_name` is empty");
}

#[test]
fn a_field_one_list_lacks_counts_as_empty_for_its_rows() {
    let p = project(
        "Hi",
        "Dear {{ first_name }},\n",
        "email,first_name\nana@example.org,Ana\n",
    )
    .file("lists/other.csv", "email\nbo@example.org\ncy@example.org\n");
    p.run(&["check", NL, "--list", LIST, "--list", "lists/other.csv"])
        .code(1)
        .stdout_has("for 2 members: lists/other.csv:2, lists/other.csv:3");
    // With a fallback, both lists are fine.
    let p = p.file(NL, newsletter("Hi", "Dear {{ first_name | default('friend') }},\n"));
    p.run(&["check", NL, "--list", LIST, "--list", "lists/other.csv"])
        .success();
    let pv = p.preview(NL, &[LIST, "lists/other.csv"], &["--row", "3"]);
    assert!(pv.text.starts_with("Dear friend,\n"), "{}", pv.text);
}

#[test]
fn default_applies_to_empty_values() {
    let csv = "email,first_name\nana@example.org,Ana\nbo@example.org,\ncy@example.org,\"  \"\n";
    let p = project(
        "Hello {{ first_name | default('friend') }}",
        "Dear {{ first_name | default(\"Members and Friends\") }}:\n",
        csv,
    );
    check(&p).success().stdout_has("0 errors");
    for (row, name, subject) in [
        (1, "Ana", "Hello Ana"),
        (2, "Members and Friends", "Hello friend"),
        (3, "Members and Friends", "Hello friend"),
    ] {
        let pv = preview_row(&p, row);
        assert!(
            pv.text.starts_with(&format!("Dear {name}:\n")),
            "row {row}: {}",
            pv.text
        );
        assert!(pv.html.contains(&format!("Dear {name}:")), "row {row}");
        assert_eq!(pv.message().subject(), Some(subject));
    }
}

#[test]
fn if_is_false_for_empty_values() {
    let csv = "email,city\nana@example.org,Oakland\nbo@example.org,\n";
    let p = project(
        "Hi",
        "Hello{% if city %} from {{ city }}{% endif %}!\n\n{% if city %}\nCity paragraph for {{ city }}.\n{% endif %}\n\nThe end.\n",
        csv,
    );
    check(&p).success();
    let ana = preview_row(&p, 1);
    assert!(ana.text.contains("Hello from Oakland!"), "{}", ana.text);
    assert!(ana.text.contains("City paragraph for Oakland."), "{}", ana.text);
    let bo = preview_row(&p, 2);
    assert!(bo.text.starts_with("Hello!\n\nThe end.\n"), "{:?}", bo.text);
    assert!(!bo.html.contains("City paragraph"));
    assert!(bo.html.contains("Hello!"));
    // A false condition leaves no empty paragraph behind.
    assert!(!bo.html.contains("\"></p>"), "{}", bo.html);
    assert!(ana.html.contains(">City paragraph for Oakland.</p>"), "{}", ana.html);
}

// ---------------------------------------------------------------------------------------------
// Escaping and header safety

#[test]
fn script_in_a_name_is_escaped_in_the_html_part() {
    let p = project(
        "Hi {{ first_name }}",
        "Dear {{ first_name }},\n\n[Your page](https://example.org/u/{{ first_name }})\n",
        "email,first_name\nmallory@example.org,<script>alert(1)</script>\n",
    );
    check(&p).success();
    let pv = preview_row(&p, 1);
    // minijinja also escapes `/`, as `&#x2f;`.
    assert!(
        pv.html.contains("Dear &lt;script&gt;alert(1)&lt;&#x2f;script&gt;,"),
        "{}",
        pv.html
    );
    let msg = pv.message();
    let html_part = msg.body_html(0).expect("an HTML part");
    for html in [pv.html.as_str(), &*html_part] {
        assert!(
            !html.to_ascii_lowercase().contains("<script"),
            "a <script> tag reached the HTML part"
        );
    }
    // In the URL it is percent-encoded, not just escaped.
    assert!(
        pv.html
            .contains("https://example.org/u/%3Cscript%3Ealert%281%29%3C%2Fscript%3E"),
        "{}",
        pv.html
    );
    // The text part is plain text: the name is shown as written.
    assert!(pv.text.starts_with("Dear <script>alert(1)</script>,\n"), "{}", pv.text);
    assert_eq!(msg.subject(), Some("Hi <script>alert(1)</script>"));
    assert_eq!(python_defects(&p.join("preview/email.eml")), "");
}

#[test]
fn cr_lf_in_a_name_never_reaches_a_header() {
    let csv =
        "email,first_name,last_name\neve@example.org,\"Eve\r\nBcc: x@evil.example\",\"Smith\nCc: y@evil.example\"\n";
    let p = project("Hi {{ first_name }}\u{2028}!", "Dear {{ first_name }}.\n", csv);
    check(&p).success();
    let pv = preview_row(&p, 1);
    let msg = pv.message();
    assert_eq!(header_count(&msg, "To"), 1);
    for banned in ["Bcc", "Cc"] {
        assert_eq!(
            header_count(&msg, banned),
            0,
            "{banned} header injected:\n{}",
            pv.headers()
        );
    }
    assert!(msg.bcc().is_none() && msg.cc().is_none());
    let to: Vec<_> = msg.to().unwrap().iter().collect();
    assert_eq!(to.len(), 1);
    assert_eq!(to[0].address(), Some("eve@example.org"));
    let name = to[0].name().unwrap_or_default();
    assert!(!name.contains(['\r', '\n']), "{name:?}");
    let subject = msg.subject().unwrap();
    assert!(!subject.contains(['\r', '\n', '\u{2028}']), "{subject:?}");
    assert!(subject.starts_with("Hi Eve"), "{subject:?}");
    for line in pv.headers().split("\r\n") {
        let l = line.to_ascii_lowercase();
        assert!(!l.starts_with("bcc") && !l.starts_with("cc"), "header line {line:?}");
    }
    assert_eq!(python_defects(&p.join("preview/email.eml")), "");

    // Address syntax in a name stays inside the display name.
    let p = p.file(
        LIST,
        "email,first_name,last_name\nzed@example.org,\"Zed <y@evil.example>, z@evil.example\",\"\"\"q\"\"\"\n",
    );
    let pv = preview_row(&p, 1);
    let msg = pv.message();
    let to: Vec<_> = msg.to().unwrap().iter().collect();
    assert_eq!(to.len(), 1, "{}", pv.headers());
    assert_eq!(to[0].address(), Some("zed@example.org"));
    assert_eq!(to[0].name(), Some("Zed <y@evil.example>, z@evil.example \"q\""));
    assert_eq!(python_defects(&p.join("preview/email.eml")), "");
}

#[test]
fn merge_values_inside_urls_are_percent_encoded() {
    let body = "[x](https://example.org/?n={{ first_name }}&src=mail)\n\n\
                ![Map of {{ first_name }}](https://example.org/map/{{ first_name }}.png \"300x200\")\n\n\
                [Give, {{ first_name }}](https://example.org/give?who={{ first_name }} \"button\")\n";
    let p = project("Hi", body, "email,first_name\nab@example.org,A&B C\n");
    check(&p).success();
    let pv = preview_row(&p, 1);
    assert!(
        pv.html
            .contains("href=\"https://example.org/?n=A%26B%20C&amp;src=mail\""),
        "{}",
        pv.html
    );
    assert!(
        pv.html.contains("src=\"https://example.org/map/A%26B%20C.png\""),
        "{}",
        pv.html
    );
    assert!(
        pv.html.contains("href=\"https://example.org/give?who=A%26B%20C\""),
        "{}",
        pv.html
    );
    assert!(pv.html.contains("Give, A&amp;B C"), "{}", pv.html);
    assert!(
        pv.text.contains("[1] https://example.org/?n=A%26B%20C&src=mail"),
        "{}",
        pv.text
    );
    assert!(
        pv.text.contains("Give, A&B C:\nhttps://example.org/give?who=A%26B%20C"),
        "{}",
        pv.text
    );
    assert!(pv.text.contains("[Map of A&B C]"), "{}", pv.text);
}

#[test]
fn raw_html_in_markdown_is_escaped_by_default() {
    let body = "Hello <b onclick=\"x()\">bold</b>.\n\n<script>alert('x')</script>\n\n<form action=\"https://evil.example\"><input name=p></form>\n\n<link rel=\"stylesheet\" href=\"https://evil.example/s.css\">\n";
    let p = project("Hi", body, "email\nana@example.org\n");
    check(&p).success();
    let pv = preview_row(&p, 1);
    let html = pv.html.to_ascii_lowercase();
    for tag in ["<script", "<form", "<input", "<b ", "<link"] {
        assert!(!html.contains(tag), "{tag} reached the HTML part:\n{}", pv.html);
    }
    // Shown as the text the author typed.
    assert!(
        pv.html.contains("Hello &lt;b onclick=\"x()\"&gt;bold&lt;/b&gt;."),
        "{}",
        pv.html
    );
    assert!(
        pv.html.contains("&lt;script&gt;alert('x')&lt;/script&gt;"),
        "{}",
        pv.html
    );

    // Allowed raw HTML is sanitised: formatting stays, scripts, forms, handlers never arrive.
    let config = DEFAULT_CONFIG.replacen("from = ", "allow_raw_html = true\nfrom = ", 1);
    let p = p.file("bulletin.toml", config);
    check(&p).success();
    let pv = preview_row(&p, 1);
    let html = pv.html.to_ascii_lowercase();
    for tag in ["<script", "<form", "<input", "<link", "onclick=", "evil.example"] {
        assert!(!html.contains(tag), "{tag} reached the HTML part:\n{}", pv.html);
    }
    assert!(pv.html.contains("<b>bold</b>"), "{}", pv.html);
}

// ---------------------------------------------------------------------------------------------
// Non-ASCII

#[test]
fn non_ascii_names_round_trip_through_to_and_subject() {
    let csv = "email,first_name,last_name\n\
               jose@example.org,José Ñúñez,\n\
               wang@example.com,王芳,\n\
               pat@example.org,Pat,\"O'Brien, \"\"Jr.\"\"\"\n";
    let p = project(
        "Hola {{ first_name }} — ¿qué tal? {{ first_name }} {{ first_name }}",
        "Hola {{ first_name }}.\n",
        csv,
    );
    check(&p).success();
    for (row, first, display) in [
        (1, "José Ñúñez", "José Ñúñez"),
        (2, "王芳", "王芳"),
        (3, "Pat", "Pat O'Brien, \"Jr.\""),
    ] {
        let pv = preview_row(&p, row);
        let msg = pv.message();
        assert_eq!(
            msg.subject(),
            Some(format!("Hola {first} — ¿qué tal? {first} {first}").as_str()),
            "row {row}"
        );
        let to = msg.to().unwrap().first().unwrap();
        assert_eq!(to.name(), Some(display), "row {row}:\n{}", pv.headers());
        assert!(pv.headers().is_ascii(), "raw 8-bit header:\n{}", pv.headers());
        assert_eq!(python_defects(&p.join("preview/email.eml")), "", "row {row}");
    }
}

// ---------------------------------------------------------------------------------------------
// Preview and MIME structure

#[test]
fn preview_writes_three_files_and_a_well_formed_message() {
    let p = Project::new().fixture("small");
    let nl = "newsletters/2027-01-welcome.md";
    let run = p.run(&["preview", nl, "--list", "lists/members.csv", "--out", "out/pv"]);
    run.success()
        .stderr_has("preview for ana.lopez@example.org (lists/members.csv:2)");
    let printed: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(printed, ["out/pv/email.html", "out/pv/email.txt", "out/pv/email.eml"]);
    let pv = Preview {
        html: p.read("out/pv/email.html"),
        text: p.read("out/pv/email.txt"),
        eml: p.read_bytes("out/pv/email.eml"),
    };
    let msg = pv.message();

    let root = msg.root_part();
    assert_eq!(part_type(root), "multipart/alternative");
    let PartType::Multipart(ids) = &root.body else {
        panic!("root is not multipart")
    };
    assert_eq!(ids.len(), 2);
    let first = &msg.parts[ids[0] as usize];
    let last = &msg.parts[*ids.last().unwrap() as usize];
    assert_eq!(part_type(first), "text/plain");
    assert_eq!(part_type(last), "text/html");
    for part in [first, last] {
        let charset = part
            .content_type()
            .and_then(|c| c.attribute("charset"))
            .unwrap_or_default();
        assert!(charset.eq_ignore_ascii_case("utf-8"), "{charset}");
    }
    // The files are exactly the parts of the message.
    assert_eq!(first.text_contents().unwrap().replace("\r\n", "\n"), pv.text);
    assert_eq!(
        last.text_contents().unwrap().replace("\r\n", "\n"),
        pv.html.replace("\r\n", "\n")
    );

    assert_eq!(header_count(&msg, "To"), 1);
    assert_eq!(header_count(&msg, "Cc") + header_count(&msg, "Bcc"), 0);
    let to: Vec<_> = msg.to().unwrap().iter().collect();
    assert_eq!(to.len(), 1);
    assert_eq!(to[0].address(), Some("ana.lopez@example.org"));
    assert_eq!(to[0].name(), Some("Ana López"));
    let id = msg.message_id().expect("a Message-ID");
    assert!(
        id.ends_with("@example.org") && id.len() > "@example.org".len() + 8,
        "{id}"
    );
    assert!(msg.date().is_some(), "a Date header");
    assert_eq!(msg.subject(), Some("Welcome, Ana — January news"));
    assert_eq!(header_count(&msg, "List-Id"), 1);
    assert_eq!(header_count(&msg, "List-Unsubscribe"), 1);
    assert_eq!(python_defects(&p.join("out/pv/email.eml")), "");

    // A second preview gets a different Message-ID.
    let again = p.preview(nl, &["lists/members.csv"], &[]);
    assert_ne!(again.message().message_id(), Some(id));
}

#[test]
fn preview_picks_the_member_by_row_or_address() {
    let csv = "email,first_name\nana@example.org,Ana\nbad,Bad\ncy@example.org,Cy\n";
    let p = project("Hi", "Dear {{ first_name }}.\n", csv);
    assert!(preview_row(&p, 1).text.starts_with("Dear Ana."));
    assert!(preview_row(&p, 3).text.starts_with("Dear Cy."));
    assert!(
        p.preview(NL, &[LIST], &["--to", "CY@example.org"])
            .text
            .starts_with("Dear Cy.")
    );
    p.run(&["preview", NL, "--list", LIST, "--row", "9"])
        .code(1)
        .stderr_has("the lists have 3 data rows");
    p.run(&["preview", NL, "--list", LIST, "--to", "zed@example.org"])
        .code(1)
        .stderr_has("zed@example.org is in none of the lists");
    // Without --list, an invented member (issue 18), not a failure.
    p.run(&["preview", NL]).success().stderr_has("invented member");
}

// ---------------------------------------------------------------------------------------------
// Text part

#[test]
fn text_part_wraps_and_lists_links_at_the_end() {
    let long = "This sentence is long enough to need wrapping once it is repeated a few times over. ";
    let body = format!(
        "# A heading that is itself rather long, because some editors write whole sentences as headings\n\n\
         {long}{long}{long}\n\n\
         Dear {{{{ first_name }}}}, {long}{long}\n\n\
         Our work{{% if city %}} in {{{{ city }}}}{{% endif %}} goes on. {long}{long}\n\n\
         - {long}{long}\n- short item with [a link](https://example.org/a)\n  1. {long}\n\n\
         > {long}{long}\n\n\
         See [the report](https://example.org/reports/2027/a-very-long-path-that-goes-on-and-on-and-on-and-on.pdf) and \
         [the site](https://example.org/a) again.\n\n\
         Details, as always, are at <https://example.org/some-long-path/with-many-hyphens/and-slashes/page.html> online.\n\n\
         ![A photo of the march, taken from the roof of the library by one of our volunteers at noon](https://example.org/m.jpg \"600x400\")\n\n\
         [Donate to the legal defence fund](https://example.org/donate \"button\")\n"
    );
    let name = "Maximiliana Anastasia Wolfeschlegelsteinhausenberger-Montgomery";
    let city = "the Greater Harbor Valley and Monterey Bay Metropolitan Region";
    let p = project(
        "Hi",
        &body,
        &format!("email,first_name,city\nmax@example.org,{name},{city}\n"),
    );
    check(&p).success();
    let pv = preview_row(&p, 1);
    let text = &pv.text;
    assert_wrapped(text);
    let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(words.contains(name) && words.contains(city), "{text}");
    // A URL in the text is never cut in two (at a `/` or a `-`).
    assert!(
        text.contains("\nhttps://example.org/some-long-path/with-many-hyphens/and-slashes/page.html"),
        "{text}"
    );
    // Headings wrap too, underlined as long as their longest line.
    let heading = format!(
        "A heading that is itself rather long, because some editors write whole\nsentences as headings\n{}\n\n",
        "=".repeat(70)
    );
    assert!(text.starts_with(&heading), "{text}");
    // Links are numbered references, each URL listed once at the end.
    assert!(text.contains("a link [1]"), "{text}");
    assert!(text.contains("the report [2]"), "{text}");
    assert!(text.contains("the site [1]"), "{text}");
    let links = text.split_once("\nLinks:\n").expect("a Links: section").1;
    assert!(
        links.starts_with(
            "[1] https://example.org/a\n[2] https://example.org/reports/2027/a-very-long-path-that-goes-on-and-on-and-on-and-on.pdf\n"
        ),
        "{links}"
    );
    // The button is its text and its URL; the image is its alt text; lists keep their markers.
    assert!(
        text.contains("Donate to the legal defence fund:\nhttps://example.org/donate\n"),
        "{text}"
    );
    assert!(text.contains("[A photo of the march"), "{text}");
    assert!(!text.contains("m.jpg"), "{text}");
    assert!(text.contains("\n- This sentence"), "{text}");
    assert!(text.contains("\n  1. This sentence"), "{text}");
    assert!(text.contains("\n> This sentence"), "{text}");
    // The footer carries the postal address and the unsubscribe link.
    assert!(text.contains("PO Box 1, Oakland, CA 94601"), "{text}");
    assert!(text.contains("Unsubscribe: mailto:unsubscribe@example.org"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// Check

#[test]
fn html_over_102_kb_is_warned_about_but_not_an_error() {
    let para = "Every member of the network deserves to know what happened this month, in detail, with the names of the places and the people who made it happen.\n\n";
    let p = project("Hi", &para.repeat(800), "email\nana@example.org\n");
    check(&p)
        .success()
        .stdout_has("over Gmail's 102 KB limit")
        .stdout_has("warning: lists/m.csv:2: the HTML part is");
    let p = project("Hi", &para.repeat(20), "email\nana@example.org\n");
    check(&p).success().stdout_lacks("102 KB");
}

#[test]
fn check_reports_missing_footer_settings_and_images_without_alt() {
    let p = project(
        "Hi",
        "![](https://example.org/a.png \"10x10\")\n",
        "email\nana@example.org\n",
    )
    .file("bulletin.toml", "from = \"A <a@example.org>\"\n");
    check(&p)
        .success()
        .stdout_has("warning: newsletters/n.md:4: image https://example.org/a.png has no alt text")
        .stdout_has("no postal address")
        .stdout_has("no unsubscribe: set [unsubscribe]");
}

// ---------------------------------------------------------------------------------------------
// init

#[test]
fn init_scaffolds_a_project_that_passes_check_and_preview_unchanged() {
    let p = Project::empty();
    p.run(&["init", "news"])
        .success()
        .stdout_has("created news/bulletin.toml");
    let nl = "newsletters/2026-12-first-hundred-days.md";
    p.run_in("news", &["check", nl, "--list", "lists/members.csv"])
        .success()
        .stdout_has("0 errors");
    p.run_in("news", &["check", nl, "--list", "lists/test.csv"])
        .success()
        .stdout_has("0 errors");
    let out = p.run_in(
        "news",
        &[
            "preview",
            nl,
            "--list",
            "lists/members.csv",
            "--row",
            "5",
            "--out",
            "pv",
        ],
    );
    out.success();
    let eml = p.join("news/pv/email.eml");
    assert_eq!(python_defects(&eml), "");
    assert_wrapped(&p.read("news/pv/email.txt"));

    // A second init refuses to overwrite anything.
    let before = p.read("news/bulletin.toml");
    p.run(&["init", "news"])
        .code(1)
        .stderr_has("already exist")
        .stderr_has("never overwrites");
    assert_eq!(p.read("news/bulletin.toml"), before);
}

// ---------------------------------------------------------------------------------------------
// Snapshots

/// The `.eml` with what changes between runs replaced by placeholders.
fn redact_eml(eml: &str) -> String {
    let mut out = Vec::new();
    let mut boundary = None::<String>;
    for line in eml.split("\r\n") {
        if let Some(rest) = line.strip_prefix("Message-ID: ") {
            let domain = rest.rsplit_once('@').map_or("", |(_, d)| d);
            out.push(format!("Message-ID: <[ID]@{domain}"));
        } else if line.starts_with("Date: ") {
            out.push("Date: [DATE]".to_owned());
        } else {
            out.push(line.to_owned());
        }
        if let Some(b) = line
            .trim()
            .strip_prefix("boundary=\"")
            .and_then(|b| b.strip_suffix('"'))
        {
            boundary = Some(b.to_owned());
        }
    }
    let joined = out.join("\n");
    match boundary {
        Some(b) => joined.replace(&b, "[BOUNDARY]"),
        None => joined,
    }
}

#[test]
fn snapshot_small_newsletter() {
    let p = Project::new().fixture("small");
    let nl = "newsletters/2027-01-welcome.md";
    p.run(&["check", nl, "--list", "lists/members.csv"])
        .success()
        .stdout_has("0 errors, 2 warnings");
    let ana = p.preview(nl, &["lists/members.csv"], &["--row", "1"]);
    insta::assert_snapshot!("small_text", ana.text);
    insta::assert_snapshot!("small_html", ana.html);
    insta::assert_snapshot!("small_eml", redact_eml(&String::from_utf8(ana.eml.clone()).unwrap()));
    // The member without a name or city gets the fallbacks, and nothing else changes.
    let sam = p.preview(nl, &["lists/members.csv"], &["--row", "2"]);
    insta::assert_snapshot!("small_text_no_name", sam.text);
}

// ---------------------------------------------------------------------------------------------
// HTML part

/// The opening tags `<name …>` in `html`.
fn tags_named<'a>(html: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("<{name}");
    html.match_indices(&open)
        .filter(|(at, _)| html[at + open.len()..].starts_with([' ', '>', '/']))
        .map(|(at, _)| &html[at..at + html[at..].find('>').unwrap() + 1])
        .collect()
}

#[test]
fn html_part_is_email_client_safe() {
    let p = Project::new().fixture("small");
    let pv = p.preview("newsletters/2027-01-welcome.md", &["lists/members.csv"], &[]);
    let html = &pv.html;
    assert!(
        html.starts_with("<!DOCTYPE html><html lang=\"en\" dir=\"ltr\""),
        "{html}"
    );
    // Outlook's namespaces, and `<meta charset>` first in `<head>`.
    assert!(html.contains("xmlns:v=\"urn:schemas-microsoft-com:vml\""));
    assert!(html.contains("xmlns:o=\"urn:schemas-microsoft-com:office:office\""));
    assert!(html.contains("<head>\n<meta charset=\"utf-8\">"), "{html}");
    assert!(html.contains("<o:PixelsPerInch>96</o:PixelsPerInch>"));
    assert!(html.contains("mso-table-lspace: 0pt; mso-table-rspace: 0pt;"));
    assert!(html.contains("mso-line-height-rule: exactly"));
    assert!(html.contains("<meta name=\"color-scheme\" content=\"light dark\">"));
    assert!(html.contains("<meta name=\"supported-color-schemes\" content=\"light dark\">"));
    assert!(html.contains("<meta name=\"format-detection\""));
    // Outlook.com's dark mode marks the body with data-ogsc / data-ogsb.
    assert!(html.contains("[data-ogsc] .content"), "{html}");
    assert!(html.contains("@media (prefers-color-scheme: dark)"));
    // Gmail drops <html>: the wrapper repeats language and direction, and the hidden preheader
    // comes first in it.
    let body = &html[html.find("<body").unwrap()..];
    let first = body[body.find('>').unwrap() + 1..].trim_start();
    let wrapper = &first[..first.find('>').unwrap() + 1];
    assert!(
        wrapper.starts_with("<div class=\"email\"")
            && wrapper.contains("lang=\"en\"")
            && wrapper.contains("dir=\"ltr\""),
        "{wrapper}"
    );
    let first = first[wrapper.len()..].trim_start();
    assert!(
        first.starts_with("<div class=\"preheader\" style=\"display:none;"),
        "{first}"
    );
    assert!(
        first[..first.find('>').unwrap()].contains("aria-hidden=\"true\""),
        "{first}"
    );
    // Filler after the preheader, so no body text follows it in the inbox line.
    assert!(first.contains("\u{34f}\u{200c}&nbsp;\u{34f}\u{200c}&nbsp;"), "{first}");
    assert!(first.contains("Three dates for your calendar"));
    for table in tags_named(html, "table") {
        assert!(table.contains("role=\"presentation\""), "{table}");
    }
    assert!(html.contains("<!--[if mso]>"), "Outlook's ghost table");
    assert!(html.contains("max-width: 600px"));
    let imgs = tags_named(html, "img");
    assert!(!imgs.is_empty());
    for img in imgs {
        for attr in [" alt=\"", " width=\"", " height=\""] {
            assert!(img.contains(attr), "{img} lacks{attr}");
        }
    }
    let image = tags_named(html, "img")
        .into_iter()
        .find(|i| i.contains("coats.jpg"))
        .unwrap();
    // 600x400 scaled into the 560 px column.
    assert!(image.contains("width=\"560\" height=\"373\""), "{image}");
    // The button is real text in a link inside a cell coloured with the brand colour, and the
    // content area's table-cell borders do not leak onto it.
    let cell = tags_named(html, "td")
        .into_iter()
        .find(|t| t.contains("button-cell"))
        .unwrap();
    assert!(cell.contains("bgcolor=\"#b5121b\""), "{cell}");
    // Outlook for Windows ignores padding on <a>: the cell pads the button there.
    assert!(cell.contains("mso-padding-alt: 14px 28px"), "{cell}");
    // The link keeps its own colour there (Word paints links blue) and pads itself elsewhere;
    // no `target`, which Gmail, Outlook for Mac and Yahoo ignore (they open a new tab anyway).
    let link = tags_named(html, "a")
        .into_iter()
        .find(|a| a.contains("button-link"))
        .unwrap();
    assert!(
        link.contains("color: #ffffff")
            && link.contains("padding: 14px 28px")
            && link.contains("text-decoration: none")
            && !link.contains("target="),
        "{link}"
    );
    assert!(
        !cell.contains("solid #dddddd"),
        "the button cell has a grey border: {cell}"
    );
    assert!(html.contains(">Support the coat drive</a>"));
    // Styles are inlined; only media queries stay in <style>; nothing loads from elsewhere.
    let style = &html[html.find("<style>").unwrap()..html.find("</style>").unwrap()];
    assert!(
        style.trim_start_matches("<style>").trim_start().starts_with("@media"),
        "{style}"
    );
    assert!(!html.contains("<link") && !html.to_ascii_lowercase().contains("<script"));
    assert!(html.contains("PO Box 1, Oakland, CA 94601"));
    assert!(html.contains("href=\"mailto:unsubscribe@example.org?subject=unsubscribe\""));
    // No line comes near SMTP's 998-octet limit.
    assert!(html.lines().all(|l| l.len() < 998));
}

#[test]
fn merge_values_are_never_templates_or_markdown() {
    let csv = "email,first_name\nana@example.org,\"{{ email }} {% if 1 %}yes{% endif %} **bold** [x](https://evil.example) <b>\"\n";
    let p = Project::new()
        .file(
            NL,
            "---\nsubject: \"Hi {{ first_name }}\"\npreheader: \"For {{ first_name }}\"\n---\nDear {{ first_name }}.\n",
        )
        .file(LIST, csv);
    check(&p).success();
    let pv = preview_row(&p, 1);
    let literal = "{{ email }} {% if 1 %}yes{% endif %} **bold** [x](https://evil.example) <b>";
    let words = pv.text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(words.starts_with(&format!("Dear {literal}. -- ")), "{}", pv.text);
    // The URL in the value is not cut in two by wrapping.
    assert!(pv.text.contains("[x](https://evil.example)"), "{}", pv.text);
    assert_eq!(pv.message().subject(), Some(format!("Hi {literal}").as_str()));
    assert!(!pv.html.contains("href=\"https://evil.example"), "{}", pv.html);
    assert!(!pv.html.contains("<strong>bold"), "{}", pv.html);
    assert!(!pv.html.contains("<b>"), "{}", pv.html);
    assert!(
        pv.html
            .contains("{{ email }} {% if 1 %}yes{% endif %} **bold** [x](https:&#x2f;&#x2f;evil.example) &lt;b&gt;"),
        "{}",
        pv.html
    );
    assert!(pv.html.contains(">For {{ email }}"), "the preheader is escaped too");
}

#[test]
fn guarded_and_defaulted_fields_are_not_errors() {
    let csv = "email,first_name\nana@example.org,Ana\nbo@example.org,\n";
    let body = "{% if first_name %}Dear {{ first_name }},{% else %}Dear friend,{% endif %}\n\n\
                Thanks{{ ', ' ~ first_name if first_name }}!\n";
    let p = project("Hi", body, csv);
    check(&p).success().stdout_has("0 errors");
    assert!(preview_row(&p, 1).text.starts_with("Dear Ana,\n\nThanks, Ana!\n"));
    let bo = preview_row(&p, 2);
    assert!(bo.text.starts_with("Dear friend,\n\nThanks!\n"), "{}", bo.text);
}

#[test]
fn unsubscribe_url_at_the_start_of_a_link_is_a_whole_url() {
    let config = DEFAULT_CONFIG.replace(
        "mailto = \"unsubscribe@example.org\"",
        "mailto = \"unsubscribe@example.org\"\nurl = \"https://example.org/unsubscribe?token={{ token }}\"",
    );
    let p = project(
        "Hi",
        "[Leave the list]({{ unsubscribe_url }})\n",
        "email\nana@example.org\n",
    )
    .file("bulletin.toml", config)
    .env("BULLETIN_UNSUBSCRIBE_SECRET", "test secret, not a real one");
    check(&p).success();
    let pv = preview_row(&p, 1);
    let href = pv
        .html
        .split("<a href=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .replace("&#x2f;", "/")
        .replace("&amp;", "&");
    assert!(href.starts_with("https://example.org/unsubscribe?token="), "{href}");
    assert!(
        href.len() > "https://example.org/unsubscribe?token=".len() + 20,
        "{href}"
    );
    let msg = pv.message();
    assert_eq!(header_count(&msg, "List-Unsubscribe-Post"), 1);
    let list_unsub = msg.header_raw("List-Unsubscribe").unwrap();
    assert!(list_unsub.contains(&format!("<{href}>")), "{list_unsub}");
    assert!(pv.text.contains(&format!("[1] {href}\n")), "{}", pv.text);
    assert!(!pv.text.contains("test secret") && !pv.html.contains("test secret"));

    // Without the secret, check says what to do.
    let p = p.env("BULLETIN_UNSUBSCRIBE_SECRET", "");
    check(&p).code(1).stdout_has("BULLETIN_UNSUBSCRIBE_SECRET");
}

#[test]
fn rows_that_do_not_line_up_are_errors_naming_the_line() {
    let p = project(
        "Hi",
        "Hello.\n",
        "email,first_name\nana@example.org,\"Ana\nMaría\"\nbo@example.org,Bo,extra\n",
    );
    check(&p)
        .code(1)
        .stderr_has("lists/m.csv:4: this row has 3 fields but the header has 2");
}

#[test]
fn non_utf8_newsletter_is_an_error_naming_the_line() {
    let p = Project::new()
        .file(NL, b"---\nsubject: Hi\n---\nHello.\n\nCaf\xe9 au lait.\n".as_slice())
        .file(LIST, "email\nana@example.org\n");
    check(&p)
        .code(1)
        .stderr_has("newsletters/n.md:6: the file is not UTF-8");
}

#[test]
fn check_reports_the_delivery_settings_send_would_refuse_with_their_lines() {
    let config = format!("{DEFAULT_CONFIG}\n[smtp]\nurl = \"ftp://x\"\nrate = [\"14/fortnight\"]\nconcurrency = 500\n");
    let p = project("Hello", "Hi.", "email\na@example.org\n").file("bulletin.toml", &config);
    let line = |key: &str| config.lines().position(|l| l.starts_with(key)).unwrap() + 1;
    let run = check(&p);
    run.code(1)
        .stdout_has(&format!("bulletin.toml:{}:", line("url")))
        .stdout_has(&format!("bulletin.toml:{}:", line("rate")))
        .stdout_has(&format!("bulletin.toml:{}:", line("concurrency")))
        .stdout_has("3 errors");
    // send refuses the same file, with the same words, before anything else.
    p.run(&["send", NL, "--list", LIST, "--dry-run"])
        .code(1)
        .stderr_has("scheme `ftp`");
}

#[test]
fn bad_flag_values_are_usage_errors() {
    let p = project("Hello", "Hi.", "email\na@example.org\n");
    for (flag, value) in [
        ("--rate", "fast"),
        ("--concurrency", "0"),
        ("--concurrency", "500"),
        ("--shard", "3/2"),
    ] {
        p.run(&["send", NL, "--list", LIST, flag, value])
            .code(2)
            .stderr_has("invalid value");
    }
    p.run(&["check", NL, "--list", LIST, "--rate", "14/fortnight"]).code(2);
}
