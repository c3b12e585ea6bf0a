//! `feed.xml`: the issues as an Atom feed (RFC 4287), through atom_syndication. Entries link
//! to their pages (absolute with `[archive] base_url`, else relative to the feed) and carry
//! the page's HTML as content.

use anyhow::Result;
use atom_syndication::{Content, Entry, Feed, FixedDateTime, Link, Person, Text};

use super::{Issue, rfc3339};
use crate::config::Config;

pub(super) fn atom(config: &Config, issues: &[Issue]) -> Result<String> {
    let name = config.organisation.name.as_deref().unwrap_or("Newsletter");
    let base = config
        .archive
        .base_url
        .as_deref()
        .map(|b| format!("{}/", b.trim_end_matches('/')));
    let date = |ms: i64| FixedDateTime::parse_from_rfc3339(&rfc3339(ms)).expect("rfc3339 writes RFC 3339");
    let mut feed = Feed::default();
    feed.set_title(Text::plain(name));
    feed.set_id(base.clone().unwrap_or_else(|| format!("urn:bulletin:{}", urn(name))));
    feed.set_updated(date(issues.first().map_or(0, |i| i.started)));
    feed.set_lang(Some(config.lang().to_owned()));
    let mut author = Person::default();
    author.set_name(name);
    author.set_uri(config.organisation.website.clone());
    feed.set_authors(vec![author]);
    let mut links = Vec::new();
    if let Some(b) = &base {
        links.push(link(b, "alternate", "text/html"));
        links.push(link(&format!("{b}feed.xml"), "self", "application/atom+xml"));
    }
    feed.set_links(links);
    let entries = issues
        .iter()
        .map(|i| {
            let href = i.url.clone().unwrap_or_else(|| format!("{}/index.html", i.slug));
            let mut e = Entry::default();
            e.set_title(Text::plain(i.subject.clone()));
            e.set_id(
                i.url
                    .clone()
                    .unwrap_or_else(|| format!("urn:bulletin:{}:{}", urn(name), urn(&i.campaign))),
            );
            e.set_updated(date(i.started));
            e.set_published(Some(date(i.started)));
            e.set_links(vec![link(&href, "alternate", "text/html")]);
            e.set_summary(i.preheader.clone().map(Text::plain));
            let mut content = Content::default();
            content.set_content_type(Some("html".to_owned()));
            content.set_value(Some(i.html.clone()));
            e.set_content(Some(content));
            e
        })
        .collect::<Vec<_>>();
    feed.set_entries(entries);
    Ok(feed.to_string())
}

fn link(href: &str, rel: &str, kind: &str) -> Link {
    let mut l = Link::default();
    l.set_href(href);
    l.set_rel(rel);
    l.set_mime_type(Some(kind.to_owned()));
    l
}

/// `s` as a URN part: letters, digits and `-` only.
fn urn(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}
