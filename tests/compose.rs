//! Composing a newsletter as people write it: per-issue overrides, captions, wide tables,
//! right-to-left languages, local images and attachments.

use mail_parser::MimeHeaders;

use crate::support::project::Project;

const LIST: &str = "lists/members.csv";
const NL: &str = "newsletters/n.md";

fn project(newsletter: &str) -> Project {
    Project::new()
        .file(NL, newsletter)
        .file(LIST, "email,first_name\nana@example.org,Ana\n")
}

#[test]
fn front_matter_overrides_theme_social_and_footer_for_one_issue() {
    let p = project(
        "---\nsubject: Hi\ntheme:\n  brand_color: \"#116611\"\n  logo: https://example.org/spring.png\n  logo_dark: https://example.org/spring-dark.png\n\
         social:\n  - name: Mastodon\n    url: https://social.example/@net\nfooter: You get this because you came to the March.\n---\n\
         [Join us](https://example.org/join \"button\")\n",
    );
    p.run(&["check", NL, "--list", LIST]).success();
    let pv = p.preview(NL, &[LIST], &[]);
    assert!(pv.html.contains("bgcolor=\"#116611\""), "{}", pv.html);
    assert!(!pv.html.contains("#b5121b"), "bulletin.toml's colour is replaced");
    assert!(pv.html.contains("src=\"https://example.org/spring.png\""));
    assert!(pv.html.contains("src=\"https://example.org/spring-dark.png\""));
    assert!(pv.html.contains(".logo-dark { display: block !important;"));
    assert!(pv.html.contains(">Mastodon</a>"));
    assert!(pv.html.contains("You get this because you came to the March."));
    assert!(pv.text.contains("Mastodon: https://social.example/@net"), "{}", pv.text);
    assert!(pv.text.contains("You get this because you came to the March."));
    // The legal parts of the footer stay.
    assert!(pv.html.contains("PO Box 1, Oakland, CA 94601"));
}

#[test]
fn an_unknown_theme_key_in_front_matter_is_an_error() {
    let p = project("---\nsubject: Hi\ntheme:\n  brand_colour: \"#116611\"\n---\nHello\n");
    p.run(&["check", NL, "--list", LIST]).code(1).stderr_has("brand_colour");
}

#[test]
fn an_emphasised_line_under_an_image_is_a_caption() {
    let p = project(
        "---\nsubject: Hi\n---\n![Marchers on Main Street](https://example.org/m.jpg \"1200x800\")\n*Photo: Ana López*\n\nText.\n",
    );
    let pv = p.preview(NL, &[LIST], &[]);
    assert!(
        pv.html.contains("<span class=\"caption\" style=\"") && pv.html.contains(">Photo: Ana López</span>"),
        "{}",
        pv.html
    );
    assert!(
        pv.text.starts_with("[Marchers on Main Street]\nPhoto: Ana López\n"),
        "{}",
        pv.text
    );
}

#[test]
fn a_wide_table_is_held_to_the_column() {
    let long = "x".repeat(200);
    let p = project(&format!(
        "---\nsubject: Hi\n---\n| when | what |\n|---|---|\n| 12 Jan | {long} |\n\n[Go](https://example.org \"button\")\n"
    ));
    let pv = p.preview(NL, &[LIST], &[]);
    let table = pv.html.split("<table class=\"md-table\"").nth(1).unwrap();
    let tag = &table[..table.find('>').unwrap()];
    assert!(
        tag.contains("table-layout: fixed") && tag.contains("width: 100%"),
        "{tag}"
    );
    assert!(table.contains("word-break: break-word"), "{table}");
    // The button's table is ours, not a Markdown table: not stretched to the column.
    let button = pv.html.split("<table class=\"button\"").nth(1).unwrap();
    assert!(!button[..button.find('>').unwrap()].contains("width: 100%"));
}

#[test]
fn a_right_to_left_language_sets_dir_on_the_wrapper() {
    let p = project("---\nsubject: Hi\nlang: ar\n---\nمرحبا\n");
    let pv = p.preview(NL, &[LIST], &[]);
    assert!(pv.html.contains("<html lang=\"ar\" dir=\"rtl\""));
    assert!(pv.html.contains("<div class=\"email\" dir=\"rtl\""), "{}", pv.html);
}

/// A PNG header of the given size: all imagesize reads.
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let mut b = vec![
        0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, b'I', b'H', b'D', b'R',
    ];
    b.extend(width.to_be_bytes());
    b.extend(height.to_be_bytes());
    b.extend([8, 2, 0, 0, 0, 0, 0, 0, 0]);
    b
}

#[test]
fn a_local_image_is_measured_and_travels_inside_the_message() {
    let p = project("---\nsubject: Hi\n---\n![The march](images/march.png)\n\nText.\n")
        .file("newsletters/images/march.png", png(1200, 800));
    p.run(&["check", NL, "--list", LIST]).success().stdout_has("0 errors");
    let pv = p.preview(NL, &[LIST], &[]);
    let m = pv.message();
    let html = m.body_html(0).unwrap();
    let img = html.split("<img").nth(1).unwrap();
    let img = &img[..img.find('>').unwrap()];
    assert!(img.contains("width=\"560\" height=\"373\""), "{img}");
    let cid = img.split("src=\"cid:").nth(1).unwrap().split('"').next().unwrap();
    let raw = String::from_utf8_lossy(&pv.eml);
    assert!(raw.contains("multipart/related"), "{raw}");
    let part = m
        .attachments()
        .find(|a| a.content_id() == Some(cid))
        .expect("the image part the HTML refers to");
    assert_eq!(part.contents(), png(1200, 800).as_slice());
    assert_eq!(part.content_type().map(|c| c.subtype()), Some(Some("png")));
    // The browser preview shows the file itself.
    assert!(pv.html.contains("src=\"file://"), "{}", pv.html);
}

#[test]
fn image_base_url_links_local_images_instead_of_embedding_them() {
    let config = format!(
        "{}logo_dark = \"https://example.org/dark.png\"\nimage_base_url = \"https://news.example.org/img/\"\n",
        crate::support::project::DEFAULT_CONFIG
    );
    let p = project("---\nsubject: Hi\n---\n![The march](images/march.png)\n")
        .file("bulletin.toml", config)
        .file("newsletters/images/march.png", png(300, 200));
    p.run(&["check", NL, "--list", LIST]).success();
    let pv = p.preview(NL, &[LIST], &[]);
    assert!(
        pv.html
            .contains("src=\"https://news.example.org/img/images/march.png\""),
        "{}",
        pv.html
    );
    assert!(pv.html.contains("width=\"300\" height=\"200\""));
    assert!(!String::from_utf8_lossy(&pv.eml).contains("multipart/related"));
}

#[test]
fn image_problems_are_warnings_in_preview() {
    let p = project(
        "---\nsubject: Hi\n---\n![Remote](https://example.org/r.jpg)\n\n![Missing](images/gone.png)\n\nStill here.\n",
    );
    p.run(&["check", NL, "--list", LIST])
        .code(1)
        .stdout_has("warning: newsletters/n.md:4: image https://example.org/r.jpg has no size")
        .stdout_has("\"600x400\"")
        .stdout_has("error: newsletters/n.md:6: image images/gone.png: cannot read");
    let run = p.run(&["preview", NL, "--list", LIST, "--out", "pv"]);
    run.success()
        .stderr_has("images/gone.png: cannot read")
        .stderr_has("rendered anyway");
    let html = std::fs::read_to_string(p.path().join("pv/email.html")).unwrap();
    assert!(html.contains("Still here."));
    let img = html.split("<img").find(|i| i.contains("r.jpg")).unwrap();
    let img = &img[..img.find('>').unwrap()];
    assert!(img.contains("width=\"560\"") && !img.contains("height=\""), "{img}");
}

#[test]
fn attachments_for_everyone_and_for_each_member() {
    let p = Project::new()
        .file(
            NL,
            "---\nsubject: Hi\nattachments: [files/Tagesordnung für März.pdf]\n---\nThe agenda is attached.\n",
        )
        .file("newsletters/files/Tagesordnung für März.pdf", b"%PDF-1.4 agenda")
        .file(
            LIST,
            "email,first_name,attachment\nana@example.org,Ana,certs/ana.pdf; certs/ana.txt\nbo@example.org,Bo,\n",
        )
        .file("lists/certs/ana.pdf", b"%PDF-1.4 ana")
        .file("lists/certs/ana.txt", "Receipt for Ana\n");
    p.run(&["check", NL, "--list", LIST]).success().stdout_has("0 errors");
    let ana = p.preview(NL, &[LIST], &[]);
    let raw = String::from_utf8_lossy(&ana.eml).into_owned();
    assert!(raw.contains("multipart/mixed"), "{raw}");
    // RFC 2231 for the non-ASCII file name.
    assert!(
        raw.contains("filename*0*=utf-8''Tagesordnung%20f%C3%BCr%20M%C3%A4rz.pdf"),
        "{raw}"
    );
    let m = ana.message();
    let names: Vec<(String, Vec<u8>, String)> = m
        .attachments()
        .map(|a| {
            let ct = a.content_type().unwrap();
            (
                a.attachment_name().unwrap_or("").to_owned(),
                a.contents().to_vec(),
                format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or("")),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            (
                "Tagesordnung für März.pdf".to_owned(),
                b"%PDF-1.4 agenda".to_vec(),
                "application/pdf".to_owned()
            ),
            (
                "ana.pdf".to_owned(),
                b"%PDF-1.4 ana".to_vec(),
                "application/pdf".to_owned()
            ),
            (
                "ana.txt".to_owned(),
                b"Receipt for Ana\n".to_vec(),
                "text/plain".to_owned()
            ),
        ]
    );
    assert!(m.body_html(0).unwrap().contains("The agenda is attached."));
    assert!(m.body_text(0).unwrap().contains("The agenda is attached."));
    let bo = p.preview(NL, &[LIST], &["--row", "2"]);
    assert_eq!(bo.message().attachments().count(), 1);

    // Dry runs carry them too.
    p.run(&["send", NL, "--list", LIST, "--dry-run", "--out", "out"])
        .success();
    let emls: Vec<_> = std::fs::read_dir(p.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(emls.len(), 2);
    let with_three = emls
        .iter()
        .filter(|e| {
            let raw = std::fs::read(e).unwrap();
            let m = mail_parser::MessageParser::default().parse(&raw).unwrap();
            m.attachments().count() == 3
        })
        .count();
    assert_eq!(with_three, 1);
}

#[test]
fn heavy_member_attachments_go_out_in_list_order_each_with_its_own_file() {
    // 3 MB each: a dry run's batches end early (a few members, not 64), and the mbox still
    // holds every member in list order with their own file.
    let mut list = String::from("email,attachment\n");
    let mut p = Project::new().file(NL, "---\nsubject: Hi\n---\nYour certificate.\n");
    for i in 0..7u8 {
        list.push_str(&format!("m{i}@example.org,certs/m{i}.bin\n"));
        let mut bytes = vec![i; 3 * 1024 * 1024];
        bytes[..8].copy_from_slice(b"member-0");
        bytes[7] = b'0' + i;
        p = p.file(&format!("lists/certs/m{i}.bin"), bytes);
    }
    let p = p.file(LIST, list);
    p.run(&["send", NL, "--list", LIST, "--dry-run", "--mbox", "out.mbox"])
        .success()
        .stdout_has("wrote 7 messages");
    let script = "import mailbox, sys\nfor m in mailbox.mbox(sys.argv[1]):\n    \
                  parts = [p for p in m.walk() if p.get_filename()]\n    \
                  data = parts[0].get_payload(decode=True)\n    \
                  print(m['To'], parts[0].get_filename(), data[:8].decode(), len(data))\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(p.path().join("out.mbox"))
        .output()
        .expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let want: String = (0..7)
        .map(|i| format!("m{i}@example.org m{i}.bin member-{i} {}\n", 3 * 1024 * 1024))
        .collect();
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
}

#[test]
fn a_member_attachment_must_stay_in_the_list_folder_and_exist() {
    for (cell, why) in [
        ("../secret.txt", "leaves the list's folder"),
        ("/etc/passwd", "is an absolute path"),
        ("certs/missing.pdf", "cannot read"),
    ] {
        let p = Project::new()
            .file(NL, "---\nsubject: Hi\n---\nHello\n")
            .file("secret.txt", "no")
            .file(LIST, format!("email,attachment\nana@example.org,{cell}\n"));
        p.run(&["check", NL, "--list", LIST])
            .code(1)
            .stdout_has(why)
            .stdout_has("lists/members.csv:2");
        p.run(&["send", NL, "--list", LIST, "--dry-run", "--out", "out"])
            .code(1);
    }
}

#[test]
fn attachment_sizes_warn_over_10_mb_and_fail_over_25_mb() {
    let p = Project::new().file(NL, "---\nsubject: Hi\n---\nHello\n").file(
        LIST,
        "email,attachment\nana@example.org,big.pdf\nbo@example.org,huge.pdf\n",
    );
    // Sparse files: check measures them without reading them.
    for (name, mb) in [("big.pdf", 11), ("huge.pdf", 26)] {
        let f = std::fs::File::create(p.path().join("lists").join(name)).unwrap();
        f.set_len(mb * 1024 * 1024).unwrap();
    }
    p.run(&["check", NL, "--list", LIST])
        .code(1)
        .stdout_has("more than 10 MB")
        .stdout_has("lists/members.csv:2")
        .stdout_has("over the 25 MB Gmail accepts")
        .stdout_has("lists/members.csv:3");
    // A dry run refuses the same member as send would, and leaves nothing behind.
    for args in [["--out", "out"], ["--mbox", "out.mbox"]] {
        p.run(&[&["send", NL, "--list", LIST, "--dry-run"][..], &args[..]].concat())
            .code(1)
            .stderr_has("over the 25 MB Gmail accepts")
            .stderr_has("lists/members.csv:3");
        assert!(!p.path().join(args[1]).exists(), "nothing written for {args:?}");
    }
}

/// Verifies the DKIM signature of `raw` with dkimpy, answering DNS with `record`.
fn dkim_verifies(raw: &[u8], record: &str) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.eml");
    std::fs::write(&path, raw).unwrap();
    let script = "import sys, dkim\nrec = sys.argv[2].encode()\nmsg = open(sys.argv[1], 'rb').read()\n\
                  print('pass' if dkim.verify(msg, dnsfunc=lambda name, timeout=5: rec) else 'fail')\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .arg(record)
        .output()
        .expect("python3");
    assert!(out.status.success(), "dkimpy: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim() == "pass"
}

#[test]
#[ignore = "needs Python's dkimpy; run by .ci/run"]
fn dkim_verifies_with_images_and_attachments() {
    let p = Project::new()
        .file(
            NL,
            "---\nsubject: Hi\nattachments: [agenda.pdf]\n---\n![March](m.png)\n",
        )
        .file("newsletters/agenda.pdf", vec![7u8; 100_000])
        .file("newsletters/m.png", png(10, 10))
        .file(LIST, "email,attachment\nana@example.org,ana.pdf\n")
        .file("lists/ana.pdf", b"%PDF ana");
    let keygen = p.run(&["dkim", "keygen", "--selector", "news", "--domain", "example.org"]);
    keygen.success();
    let record = keygen
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("value: "))
        .unwrap()
        .to_owned();
    let config = p.read("bulletin.toml")
        + "\n[dkim]\ndomain = \"example.org\"\nselector = \"news\"\nprivate_key = \"keys/news.example.org.pem\"\n";
    let p = p.file("bulletin.toml", config);
    let pv = p.preview(NL, &[LIST], &[]);
    assert_eq!(pv.message().attachments().count(), 3);
    assert!(dkim_verifies(&pv.eml, &record));
    // Ana's certificate, "%PDF ana", in base64; changed to "%PDF anb" it must fail.
    let raw = String::from_utf8_lossy(&pv.eml);
    assert!(raw.contains("\r\nJVBERiBhbmE=\r\n"), "{raw}");
    let tampered = raw.replacen("\r\nJVBERiBhbmE=\r\n", "\r\nJVBERiBhbmI=\r\n", 1);
    assert!(!dkim_verifies(tampered.as_bytes(), &record));
}
