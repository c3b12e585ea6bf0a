//! Audiences end to end: segments (`--where`, `--exclude`, front matter `audience:`), lists
//! as other tools export them, `bulletin lists`, and one newsletter in several languages —
//! the real binary, the in-process SMTP test server, and mail-parser as the oracle.

use std::collections::BTreeMap;

use mail_parser::MimeHeaders;

use crate::support::project::{Project, report, sending};
use crate::support::smtp_server::TestSmtp;

const MEMBERS: &str = "email,first_name,city,tags\n\
ana@example.org,Ana,Salinas,\"volunteer, donor\"\n\
ben@example.org,Ben,Oakland,\"\"\"volunteer\"\",\"\"board\"\"\"\n\
cruz@example.org,Cruz,Salinas,\n\
dee@example.org,Dee,Fresno,donor\n";

const NEWSLETTER: &str = "---\nsubject: \"News for {{ first_name }}\"\nid: seg-1\n---\n\
Dear {{ first_name }},\n\n{% if \"volunteer\" in tags %}Thank you for volunteering.{% endif %}\n";

/// Who the server got a message for, with its subject, parsed independently.
fn received(smtp: &TestSmtp) -> BTreeMap<String, String> {
    smtp.messages()
        .iter()
        .map(|m| {
            let parsed = mail_parser::MessageParser::default().parse(&m.data).expect("parses");
            (m.rcpt_to[0].clone(), parsed.subject().unwrap_or("").to_owned())
        })
        .collect()
}

#[test]
fn where_and_exclude_pick_who_gets_it_and_a_resume_keeps_the_audience() {
    let smtp = TestSmtp::start();
    let p = sending(&smtp.url(), NEWSLETTER, MEMBERS.into(), "").file("staff.csv", "email\nCRUZ@example.org\n");
    let args = [
        "send",
        "n.md",
        "--list",
        "m.csv",
        "--where",
        "city == \"Salinas\" or \"volunteer\" in tags",
        "--exclude",
        "staff.csv",
        "--yes",
    ];
    p.run(&args).success().stdout_has("2 sent, 0 failed");
    let got = received(&smtp);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        ["ana@example.org", "ben@example.org"],
        "Cruz is excluded, Dee is outside the segment"
    );
    assert_eq!(got["ben@example.org"], "News for Ben");
    // The same audience again: nothing more to send.
    p.run(&args).success().stdout_has("nothing to send");
    // A different audience for the campaign under way is refused, like a changed newsletter.
    p.run(&["send", "n.md", "--list", "m.csv", "--yes"])
        .code(1)
        .stderr_has("the audience")
        .stderr_has("--allow-changed");
    assert_eq!(smtp.messages().len(), 2);
    p.run(&["send", "n.md", "--list", "m.csv", "--yes", "--allow-changed"])
        .success()
        .stdout_has("2 sent");
    assert_eq!(report(&p)["sent"].as_u64(), Some(4));
}

#[test]
fn the_front_matter_holds_the_audience_and_flags_override_it() {
    let front = "---\nsubject: \"Hi {{ first_name }}\"\naudience:\n  lists: [m.csv]\n  where: 'city == \"Salinas\"'\n---\nHello\n";
    let p = Project::new().file("n.md", front).file("m.csv", MEMBERS);
    p.run(&["check", "n.md"])
        .success()
        .stdout_has("2 recipients, 2 outside the audience");
    p.run(&["check", "n.md", "--where", "\"board\" in tags"])
        .success()
        .stdout_has("1 recipient, 3 outside the audience");
    p.run(&["preview", "n.md", "--to", "dee@example.org"])
        .code(1)
        .stderr_has("outside the segment");
    p.run(&["preview", "n.md", "--to", "cruz@example.org"]).success();
}

#[test]
fn a_send_takes_its_audience_from_the_front_matter_and_so_does_its_resume() {
    let smtp = TestSmtp::start();
    let front = "---\nsubject: \"Hi {{ first_name }}\"\nid: fm-1\naudience:\n  lists: [m.csv]\n  \
        where: 'city == \"Salinas\" or \"board\" in tags'\n  exclude: [staff.csv]\n---\nHello\n";
    let p = sending(&smtp.url(), front, MEMBERS.into(), "").file("staff.csv", "email\ncruz@example.org\n");
    p.run(&["send", "n.md", "--yes", "--limit", "1"])
        .success()
        .stdout_has("1 sent");
    p.run(&["send", "n.md", "--yes"]).success().stdout_has("1 sent");
    p.run(&["send", "n.md", "--yes"])
        .success()
        .stdout_has("nothing to send");
    assert_eq!(
        received(&smtp).keys().collect::<Vec<_>>(),
        ["ana@example.org", "ben@example.org"],
        "Cruz is excluded, Dee is outside the segment"
    );
    // A flag changes the campaign's audience: refused like a changed newsletter.
    p.run(&["send", "n.md", "--yes", "--where", "city == \"Fresno\""])
        .code(1)
        .stderr_has("the audience")
        .stderr_has("--allow-changed");
    assert_eq!(smtp.messages().len(), 2);
}

#[test]
fn an_unknown_field_or_a_broken_expression_is_a_preflight_error() {
    let p = Project::new()
        .file("n.md", "---\nsubject: Hi\n---\nHello\n")
        .file("m.csv", MEMBERS);
    p.run(&["check", "n.md", "--list", "m.csv", "--where", "town == \"Salinas\""])
        .code(1)
        .stdout_has("--where `town == \"Salinas\"`: no list has a field `town`");
    p.run(&["send", "n.md", "--list", "m.csv", "--where", "city ==", "--dry-run"])
        .code(1)
        .stderr_has("--where `city ==` is not an expression");
}

#[test]
fn tags_are_a_list_in_templates() {
    let body = "---\nsubject: Hi\n---\nYour tags: {{ tags | join(\" + \") }} ({{ tags | length }}).\n";
    let p = Project::new().file("n.md", body).file("m.csv", MEMBERS);
    let preview = p.preview("n.md", &["m.csv"], &["--to", "ben@example.org"]);
    assert!(
        preview.text.contains("Your tags: volunteer + board (2)."),
        "{}",
        preview.text
    );
}

/// An example list from `lists/examples/`.
fn example(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("lists/examples")
            .join(name),
    )
    .unwrap()
}

#[test]
fn exports_are_read_as_they_are_and_unsubscribed_members_are_never_mailed() {
    let n = "---\nsubject: Hi\n---\nHello {{ first_name | default(\"friend\") }}.\n";
    let p = Project::new()
        .file("n.md", n)
        .file("c.md", "---\nsubject: Hi\n---\nHello {{ name }} in {{ city }}.\n")
        .file("mc.zip", example("mailchimp-audience.zip"))
        .file("unsub.csv", example("mailchimp-unsubscribed.csv"))
        .file("lm.csv", example("listmonk-subscribers.csv"))
        .file("google.csv", example("google-contacts.csv"))
        .file("outlook.csv", example("outlook-contacts.csv"));
    // The ZIP: the file each row came from gives its status.
    p.run(&["check", "n.md", "--list", "mc.zip"])
        .success()
        .stdout_has("3 recipients, 2 rows skipped")
        .stdout_has("mc.zip/unsubscribed_members_export_5f3a.csv:2: status is `unsubscribed`")
        .stdout_has("mc.zip/cleaned_members_export_5f3a.csv:2: status is `cleaned`");
    let preview = p.preview("n.md", &["mc.zip"], &["--to", "ines.okafor@example.com"]);
    assert!(preview.text.contains("Hello Inés."), "{}", preview.text);
    // Mailchimp's unsubscribed export on its own, whatever its name: nobody is mailed.
    p.run(&["check", "n.md", "--list", "unsub.csv"])
        .success()
        .stdout_has("0 recipients, 1 row skipped");
    // listmonk: only `enabled` members; the attributes' keys are fields.
    p.run(&["check", "c.md", "--list", "lm.csv"])
        .success()
        .stdout_has("2 recipients, 2 rows skipped");
    let preview = p.preview("c.md", &["lm.csv"], &["--row", "1"]);
    assert!(
        preview.text.contains("Hello Lupe Arroyo in Salinas."),
        "{}",
        preview.text
    );
    p.run(&["check", "c.md", "--list", "lm.csv", "--where", "\"volunteer\" in tags"])
        .success()
        .stdout_has("1 recipient, 1 outside the audience");
    // Google and Outlook contacts: their address columns, their names.
    p.run(&["check", "n.md", "--list", "google.csv", "--list", "outlook.csv"])
        .success()
        .stdout_has("4 recipients, 0 rows skipped");
    let preview = p.preview("n.md", &["google.csv"], &["--row", "2"]);
    assert!(preview.text.contains("Hello Owen."), "{}", preview.text);
    // A dry run of everything: exactly the subscribed, enabled members and the contacts.
    p.run(&[
        "send",
        "n.md",
        "--list",
        "mc.zip",
        "--list",
        "unsub.csv",
        "--list",
        "lm.csv",
        "--list",
        "google.csv",
        "--list",
        "outlook.csv",
        "--dry-run",
        "--out",
        "out",
    ])
    .success()
    .stdout_has("wrote 9 messages");
}

#[test]
fn broken_exports_are_clear_errors_naming_file_and_line() {
    let n = "---\nsubject: Hi\n---\nHello.\n";
    let bad_json = "uuid,email,name,attributes,status\n\
        u1,a@example.org,A,{},enabled\n\
        u2,b@example.org,B,\"{\"\"city\"\": \",enabled\n";
    let mut damaged = example("mailchimp-audience.zip");
    let middle = damaged.len() / 2;
    damaged[40..middle].fill(0x5a);
    let p = Project::new()
        .file("n.md", n)
        .file("bad.csv", bad_json)
        .file("notzip.zip", b"PK\x03\x04 this is not really a zip")
        .file("damaged.zip", damaged)
        .file("plain.csv", "email,first_name\na@example.org,A\n");
    p.run(&["check", "n.md", "--list", "bad.csv"])
        .code(1)
        .stderr_has("bad.csv:3: the `attributes` column is not valid JSON");
    p.run(&["check", "n.md", "--list", "notzip.zip"])
        .code(1)
        .stderr_has("notzip.zip: not a readable ZIP archive");
    p.run(&["check", "n.md", "--list", "damaged.zip"])
        .code(1)
        .stderr_has("damaged.zip");
    // A CSV that would unpack to 1,000 times its packed size: a zip bomb, not an export.
    let mut bomb = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    bomb.start_file(
        "subscribed_members_export_1.csv",
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    std::io::Write::write_all(&mut bomb, b"Email Address,First Name,MEMBER_RATING\n").unwrap();
    std::io::Write::write_all(&mut bomb, &vec![b' '; 4 << 20]).unwrap();
    std::fs::write(p.path().join("bomb.zip"), bomb.finish().unwrap().into_inner()).unwrap();
    p.run(&["lists", "--list", "bomb.zip"])
        .code(1)
        .stderr_has("bomb.zip: subscribed_members_export_1.csv would unpack to 4194343 bytes from ")
        .stderr_has("too large for a list");
    p.run(&["check", "n.md", "--list", "plain.csv", "--format", "google"])
        .code(1)
        .stderr_has("plain.csv:1: --format google needs a `e_mail_1_value` column");
}

#[test]
fn lists_surveys_files_fields_and_providers_after_the_segment() {
    let csv = "email,first_name,city,status\n\
        a@gmail.com,Ann,Salinas,\n\
        b@yahoo.com,,Salinas,\n\
        bad-address,,,\n\
        A@GMAIL.com,,,\n\
        c@hotmail.com,Cy,Salinas,unsubscribed\n\
        d@outlook.com,Di,Oakland,\n\
        e@example.org,Ed,Salinas,\n";
    let p = Project::new()
        .file(
            "bulletin.toml",
            format!(
                "suppress = [\"lists/unsubscribed.csv\"]\n{}",
                crate::support::project::DEFAULT_CONFIG
            ),
        )
        .file("lists/members.csv", csv)
        .file("lists/unsubscribed.csv", "email\ne@example.org\n");
    let run = p.run(&["lists", "--where", "city == \"Salinas\"", "--json"]);
    run.success();
    let s: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    let f = &s["files"][0];
    assert_eq!(f["path"], "lists/members.csv");
    let counts: Vec<u64> = ["rows", "valid", "invalid", "duplicate", "suppressed", "unsubscribed"]
        .iter()
        .map(|k| f[k].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [7, 3, 1, 1, 1, 1]);
    assert_eq!(
        (s["audience"].as_u64(), s["outside_segment"].as_u64()),
        (Some(2), Some(1))
    );
    let first = s["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["field"] == "first_name")
        .unwrap();
    assert_eq!(first["percent"].as_f64(), Some(50.0));
    assert_eq!(s["providers"]["gmail"].as_f64(), Some(50.0));
    assert_eq!(s["providers"]["yahoo_aol"].as_f64(), Some(50.0));
    assert_eq!(s["providers"]["microsoft"].as_f64(), Some(0.0));
    p.run(&["lists"])
        .success()
        .stdout_has("lists/members.csv (csv): 7 rows — 3 valid, 1 invalid, 1 duplicate, 1 suppressed, 1 unsubscribed")
        .stdout_has("Gmail 33.3%, Yahoo/AOL 33.3%, Microsoft 33.3%");
}

#[test]
fn a_two_language_segmented_campaign_reaches_each_member_in_their_language() {
    let smtp = TestSmtp::start();
    let en = "---\nsubject: \"News for {{ first_name }}\"\nid: bilingual-1\n---\n\
        Dear {{ first_name }}, see you on {{ \"2027-03-05\" | date }}.\n";
    let es = "---\nsubject: \"Noticias para {{ first_name }}\"\n---\n\
        Hola {{ first_name }}, nos vemos el {{ \"2027-03-05\" | date }}.\n";
    let csv = "email,first_name,city,lang\n\
        ana@example.org,Ana,Salinas,es-MX\n\
        ben@example.org,Ben,Salinas,EN\n\
        cruz@example.org,Cruz,Salinas,fr\n\
        dee@example.org,Dee,Fresno,es\n\
        eva@example.org,Eva,Salinas,ES\n";
    let p = sending(&smtp.url(), en, csv.into(), "").file("n.es.md", es);
    p.run(&["check", "n.md", "--list", "m.csv", "--where", "city == \"Salinas\""])
        .success()
        .stdout_has(
            "languages: en 2, es 2; 1 member asked for a language with no variant (fr 1) and gets the default (en)",
        );
    // `lists` counts the same, given the newsletter; without it, what the members ask for.
    let segment = ["--list", "m.csv", "--where", "city == \"Salinas\""];
    let run = p.run(&[&["lists", "n.md", "--json"][..], &segment].concat());
    run.success();
    let s: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(
        s["languages"],
        serde_json::json!({
            "asked": { "en": 1, "es": 1, "es-mx": 1, "fr": 1 },
            "none": 0,
            "default": "en",
            "versions": { "en": 2, "es": 2 },
            "no_variant": { "fr": 1 },
        })
    );
    p.run(&[&["lists", "n.md"][..], &segment].concat())
        .success()
        .stdout_has("versions of the newsletter: en 2, es 2; 1 member asked for a language with no variant (fr 1) and gets the default (en)");
    p.run(&[&["lists"][..], &segment].concat())
        .success()
        .stdout_has("languages asked for (`lang` or `language`): en 1, es 1, es-mx 1, fr 1; 0 members without one");
    let args = [
        "send",
        "n.md",
        "--list",
        "m.csv",
        "--where",
        "city == \"Salinas\"",
        "--yes",
        "--limit",
        "2",
    ];
    p.run(&args).success().stdout_has("2 sent");
    // One journal, one resume for both languages.
    p.run(&args[..args.len() - 2]).success().stdout_has("2 sent");
    let mut got: BTreeMap<String, (String, String, String)> = BTreeMap::new();
    for m in smtp.messages() {
        let parsed = mail_parser::MessageParser::default().parse(&m.data).expect("parses");
        let html = parsed.body_html(0).expect("an HTML part").into_owned();
        let lang = html
            .split("<html lang=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("")
            .to_owned();
        let text = parsed.body_text(0).expect("a text part").into_owned();
        let to = m.rcpt_to[0].clone();
        assert!(
            got.insert(to, (parsed.subject().unwrap_or("").to_owned(), lang, text))
                .is_none(),
            "sent twice"
        );
    }
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        [
            "ana@example.org",
            "ben@example.org",
            "cruz@example.org",
            "eva@example.org"
        ],
        "Dee is outside the segment"
    );
    let (subject, lang, text) = &got["ana@example.org"];
    assert_eq!((subject.as_str(), lang.as_str()), ("Noticias para Ana", "es"));
    assert!(text.contains("nos vemos el 5 de marzo de 2027"), "{text}");
    assert!(text.contains("Cancelar la suscripción"), "{text}");
    assert_eq!(got["eva@example.org"].1, "es");
    for who in ["ben@example.org", "cruz@example.org"] {
        let (subject, lang, text) = &got[who];
        assert!(subject.starts_with("News for "), "{subject}");
        assert_eq!(lang, "en");
        assert!(
            text.contains("see you on March 5, 2027") && text.contains("Unsubscribe:"),
            "{text}"
        );
    }
    let r = report(&p);
    assert_eq!(r["sent"].as_u64(), Some(4));
    assert_eq!(r["sent_by_language"], serde_json::json!({ "en": 2, "es": 2 }));
    p.run(&["report", "n.md"])
        .success()
        .stdout_has("sent per language: en 2, es 2");
    // The Spanish preview of an English-speaking member.
    let preview = p.preview("n.md", &["m.csv"], &["--to", "ben@example.org", "--lang", "es"]);
    assert!(preview.text.contains("Hola Ben"), "{}", preview.text);
    assert!(preview.html.contains("<html lang=\"es\""));
}

/// What one received message says about its version: sender name, reply address, the
/// attachments' names, the image the HTML shows (its bytes) and the HTML.
struct Version {
    from_name: String,
    from_address: String,
    reply_to: String,
    files: Vec<String>,
    image: Vec<u8>,
    html: String,
    text: String,
}

fn version_of(data: &[u8]) -> Version {
    let m = mail_parser::MessageParser::default().parse(data).expect("parses");
    let from = m.from().and_then(|f| f.first()).expect("a From");
    let html = m.body_html(0).expect("an HTML part").into_owned();
    let cid = html
        .split("src=\"cid:")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("an embedded image");
    let image = m
        .attachments()
        .find(|a| a.content_id() == Some(cid))
        .expect("the image part the HTML refers to")
        .contents()
        .to_vec();
    Version {
        from_name: from.name().unwrap_or("").to_owned(),
        from_address: from.address().unwrap_or("").to_owned(),
        reply_to: m
            .reply_to()
            .and_then(|r| r.first())
            .and_then(|a| a.address())
            .unwrap_or("")
            .to_owned(),
        files: m
            .attachments()
            .filter_map(|a| a.attachment_name().map(str::to_owned))
            .filter(|n| n.ends_with(".txt"))
            .collect(),
        image,
        text: m.body_text(0).expect("a text part").into_owned(),
        html,
    }
}

#[test]
fn a_variant_sets_its_own_sender_name_reply_address_preheader_footer_images_and_attachments() {
    let smtp = TestSmtp::start();
    let en = "---\nsubject: \"News for {{ first_name }}\"\nid: bilingual-2\n\
        preheader: \"The assembly in March\"\nattachments: [agenda.txt]\n\
        theme:\n  brand_color: \"#aa0000\"\n---\n\
        ![The march](march.png)\n\nDear {{ first_name }}.\n";
    let es = "---\nsubject: \"Noticias para {{ first_name }}\"\nlang: es-MX\n\
        from: \"Red de Ejemplo <news@example.org>\"\nreply_to: \"info.es@example.org\"\n\
        preheader: \"La asamblea de marzo\"\nfooter: \"Recibe esto por ser miembro de la Red.\"\n\
        attachments: [orden-del-dia.txt]\n---\n\
        ![La marcha](marcha.png)\n\nHola {{ first_name }}.\n";
    let march =
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/compose/march.png"))
            .unwrap();
    let mut marcha = march.clone();
    marcha.extend_from_slice(b"es");
    let csv = "email,first_name,lang\nana@example.org,Ana,es-MX\nben@example.org,Ben,en\n";
    let p = sending(&smtp.url(), en, csv.into(), "")
        .file("n.es.md", es)
        .file("march.png", &march)
        .file("marcha.png", &marcha)
        .file("agenda.txt", "1. Welcome\n")
        .file("orden-del-dia.txt", "1. Bienvenida\n");
    p.run(&["check", "n.md", "--list", "m.csv"])
        .success()
        .stdout_has("languages: en 1, es-mx 1");
    p.run(&["send", "n.md", "--list", "m.csv", "--yes"])
        .success()
        .stdout_has("2 sent");
    let got: BTreeMap<String, Version> = smtp
        .messages()
        .iter()
        .map(|m| (m.rcpt_to[0].clone(), version_of(&m.data)))
        .collect();
    let (es, en) = (&got["ana@example.org"], &got["ben@example.org"]);
    assert_eq!(
        (es.from_name.as_str(), es.from_address.as_str(), es.reply_to.as_str()),
        ("Red de Ejemplo", "news@example.org", "info.es@example.org")
    );
    assert_eq!(
        (en.from_name.as_str(), en.from_address.as_str(), en.reply_to.as_str()),
        ("Example Network", "news@example.org", "info@example.org")
    );
    assert_eq!(es.files, ["orden-del-dia.txt"]);
    assert_eq!(en.files, ["agenda.txt"]);
    assert!(
        es.image == marcha && en.image == march,
        "each version carries its own image"
    );
    assert!(es.html.contains("La asamblea de marzo") && !es.html.contains("The assembly"));
    assert!(en.html.contains("The assembly in March"));
    assert!(
        es.text.contains("Recibe esto por ser miembro de la Red."),
        "{}",
        es.text
    );
    assert!(!en.text.contains("Recibe esto"), "{}", en.text);
    // The default's theme, which the variant does not set, is the campaign's.
    assert!(es.html.contains("#aa0000") && en.html.contains("#aa0000"));
    // The Spanish preview shows the Spanish image and sender.
    let preview = p.preview("n.md", &["m.csv"], &["--to", "ben@example.org", "--lang", "es"]);
    assert!(preview.html.contains("marcha.png"), "{}", preview.html);
    assert_eq!(version_of(&preview.eml).from_name, "Red de Ejemplo");
}

#[test]
fn a_variant_cannot_change_what_belongs_to_the_campaign() {
    let en = "---\nsubject: Hi\nid: camp-1\naudience:\n  lists: [m.csv]\n---\nHello\n";
    let p = Project::new()
        .file("n.md", en)
        .file("m.csv", "email,lang\nana@example.org,es\n");
    let check = |es: &str| {
        std::fs::write(p.path().join("n.es.md"), es).unwrap();
        p.run(&["check", "n.md"])
    };
    check("---\nsubject: Hola\nid: camp-1\naudience:\n  lists: [m.csv]\n---\nHola\n")
        .success()
        .stdout_has("languages: en 0, es 1");
    check("---\nsubject: Hola\nid: camp-2\n---\nHola\n")
        .code(1)
        .stderr_has("n.es.md:3: id \"camp-2\" is not the campaign's (\"camp-1\"");
    check("---\nsubject: Hola\naudience:\n  lists: [m.csv]\n  where: 'lang == \"es\"'\n---\nHola\n")
        .code(1)
        .stderr_has("n.es.md:3: audience differs from")
        .stderr_has("remove `audience:` here");
    check("---\nsubject: Hola\nlang: fr\n---\nHola\n")
        .code(1)
        .stderr_has("n.es.md:3: lang \"fr\" is not the language of the file name (`es`)");
    check("---\nsubject: Hola\nfrom: \"Red <otra@example.org>\"\n---\nHola\n")
        .code(1)
        .stdout_has("n.es.md:3: from Red <otra@example.org>: a language variant may give the sender another name, not another address")
        .stdout_has("write `from: \"Red <news@example.org>\"`");
    std::fs::remove_file(p.path().join("n.es.md")).unwrap();
    std::fs::write(p.path().join("n.en.md"), "---\nsubject: Hi again\n---\nHi\n").unwrap();
    p.run(&["check", "n.md"])
        .code(1)
        .stderr_has("n.en.md:1: n.md is already in `en` (the default language), so this variant would never be sent");
}
