//! Composing a newsletter as people write it: per-issue overrides, captions, wide tables,
//! right-to-left languages, local images and attachments.

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
