//! The archive's HTML: each issue is the message's own HTML with a head that names it for the
//! web (description, Open Graph, canonical address, the feed) and a line back to the index; the
//! index lists the issues newest first.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::{Issue, long_date, rfc3339};
use crate::config::Config;

fn site_name(config: &Config) -> &str {
    config.organisation.name.as_deref().unwrap_or("Newsletter")
}

/// The tags every page's head gets.
fn head_tags(
    config: &Config,
    title: &str,
    description: Option<&str>,
    url: Option<&str>,
    kind: &str,
    feed: &str,
) -> Markup {
    html! {
        @if let Some(d) = description { meta name="description" content=(d); }
        meta property="og:type" content=(kind);
        meta property="og:title" content=(title);
        meta property="og:site_name" content=(site_name(config));
        @if let Some(d) = description { meta property="og:description" content=(d); }
        @if let Some(u) = url {
            meta property="og:url" content=(u);
            link rel="canonical" href=(u);
        }
        @if let Some(logo) = &config.theme.logo { meta property="og:image" content=(logo); }
        link rel="alternate" type="application/atom+xml" title=(site_name(config)) href=(feed);
    }
}

/// An issue's page: the message's HTML, with web tags in its head and a link to the index at
/// the top of its body.
pub(super) fn issue(config: &Config, i: &Issue) -> String {
    let mut html = i.html.clone();
    let head = html! {
        (head_tags(config, &i.subject, i.preheader.as_deref(), i.url.as_deref(), "article", "../feed.xml"))
        meta property="article:published_time" content=(rfc3339(i.started));
    }
    .into_string();
    if let Some(at) = html.find("</head>") {
        html.insert_str(at, &head);
    }
    let nav = html! {
        nav style="max-width:600px;margin:0 auto;padding:12px 20px;font-family:Helvetica,Arial,sans-serif;font-size:14px;" {
            a href="../index.html" style="color:inherit;" { "← All issues" }
            " · "
            time datetime=(rfc3339(i.started)) { (long_date(i.started)) }
        }
    }
    .into_string();
    if let Some(body) = html.find("<body")
        && let Some(end) = html[body..].find('>')
    {
        html.insert_str(body + end + 1, &nav);
    }
    html
}

const INDEX_CSS: &str = "body{margin:0;font:1.0625rem/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;\
color:#1a1a1a;background:#fff}main{max-width:40rem;margin:0 auto;padding:1.5rem 1.25rem}\
h1{font-size:1.5rem;margin:0 0 .25rem;overflow-wrap:anywhere}.feed{font-size:.9rem;margin:0 0 1.5rem}\
ol{list-style:none;margin:0;padding:0}li{padding:1rem 0;border-top:1px solid #ddd}\
li a{font-size:1.15rem;font-weight:600;overflow-wrap:anywhere}time{display:block;font-size:.9rem;color:#555}\
li p{margin:.25rem 0 0;color:#333;overflow-wrap:anywhere}a{color:var(--brand)}";

/// The index: every issue, newest first.
pub(super) fn index(config: &Config, issues: &[Issue]) -> String {
    let name = site_name(config);
    let url = config
        .archive
        .base_url
        .as_deref()
        .map(|b| format!("{}/", b.trim_end_matches('/')));
    let description = format!("Past issues of {name}'s newsletter");
    html! {
        (DOCTYPE)
        html lang=(config.lang()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (name) " — past issues" }
                (head_tags(config, &format!("{name} — past issues"), Some(&description), url.as_deref(), "website", "feed.xml"))
                style { (PreEscaped(format!(":root{{--brand:{}}}{INDEX_CSS}", config.brand_color()))) }
            }
            body {
                main {
                    h1 { (name) }
                    p.feed { "Past issues, newest first · " a href="feed.xml" { "Atom feed" } }
                    @if issues.is_empty() {
                        p { "No issue has been sent yet." }
                    }
                    ol {
                        @for i in issues {
                            li {
                                a href=(format!("{}/index.html", i.slug)) { (i.subject) }
                                time datetime=(rfc3339(i.started)) { (long_date(i.started)) }
                                @if let Some(p) = &i.preheader { p { (p) } }
                            }
                        }
                    }
                    @if let Some(site) = &config.organisation.website {
                        p.feed { a href=(site) { (site) } }
                    }
                }
            }
        }
    }
    .into_string()
}
