//! One render of the live preview, built from the files as they are now.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::diagnostic::Diagnostics;
use crate::list::Item;
use crate::preflight::Preflight;
use crate::project::{Project, pick};
use crate::render::GMAIL_CLIP_BYTES;

/// What the preview is of.
#[derive(Debug, Clone)]
pub(crate) struct Inputs {
    pub config: Option<PathBuf>,
    pub newsletter: PathBuf,
    pub lists: Vec<PathBuf>,
}

/// Members offered in the picker.
const PICKER_MEMBERS: usize = 500;
/// Raw MIME shown in the page, at most.
const RAW_SHOWN: usize = 256 * 1024;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Member {
    pub row: u64,
    pub email: String,
}

/// Everything the page shows for one member.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct View {
    pub member: String,
    pub row: u64,
    /// The language of the version shown, and every language there is a version in (the
    /// page's language picker appears when there are two or more).
    pub lang: String,
    pub languages: Vec<String>,
    /// Whether `lang` was picked rather than the member's own.
    pub lang_picked: bool,
    pub members: Vec<Member>,
    pub from: String,
    pub subject: String,
    pub preheader: String,
    pub html: String,
    /// The HTML with its dark-mode rules always on: what a client in dark mode that honours
    /// `prefers-color-scheme` shows (see [`crate::render::force_dark`]).
    pub dark_html: String,
    pub text: String,
    pub headers: String,
    pub raw: String,
    pub html_bytes: usize,
    pub message_bytes: usize,
    pub clip_bytes: usize,
    /// `check`'s findings for the newsletter and this member, with file:line.
    pub diagnostics: Vec<String>,
    pub errors: usize,
    /// The files this render was made from besides the newsletter's folder (settings, lists,
    /// images, attachments), for the watcher.
    #[serde(skip)]
    pub files: Vec<PathBuf>,
    /// Embedded images by Content-ID, served to the page at `/cid/…`.
    #[serde(skip)]
    pub images: HashMap<String, (&'static str, Arc<[u8]>)>,
}

/// Loads, compiles and renders for the member `row` or `to` (default: the first), in the
/// language variant `lang` (default: the member's own). An error is the text to show in the
/// page.
pub(crate) fn build(inputs: &Inputs, row: Option<u64>, to: Option<&str>, lang: Option<&str>) -> Result<View, String> {
    let flags = crate::audience::Flags {
        lists: &inputs.lists,
        segment: None,
        exclude: &[],
        format: None,
    };
    let p = Project::load(inputs.config.as_deref(), &inputs.newsletter, flags).map_err(|e| format!("{e:#}"))?;
    let (Some(compiled), Some(letterhead)) = (&p.compiled, &p.letterhead) else {
        return Err(p.diags.to_string());
    };
    // No --list: the lists of the newsletter's audience, or one invented member.
    let recipient = if p.audience.lists.is_empty() {
        crate::project::invented_member()
    } else {
        p.member(pick(row, to).map_err(|e| format!("{e:#}"))?)
            .map_err(|e| format!("{e:#}"))?
    };
    let version = match lang {
        None => compiled.variant_for(&recipient),
        Some(tag) => compiled.variant(tag).ok_or_else(|| {
            format!(
                "no variant in {tag:?} (have: {}); write it as {}",
                compiled.langs().join(", "),
                inputs.newsletter.with_extension(format!("{tag}.md")).display()
            )
        })?,
    };
    let rendered = version
        .personalise_this(&recipient)
        .map_err(|e| format!("{}: {}", recipient.location(), e.message))?;
    let message = letterhead
        .build(&recipient, &rendered, letterhead.message_id())
        .map_err(|e| format!("{e:#}"))?;
    let raw = String::from_utf8_lossy(&message.formatted()).into_owned();

    let mut diags = Diagnostics::default();
    diags.items.extend(p.diags.items.iter().cloned());
    let mut pre = Preflight::default();
    pre.check(compiled, letterhead, &recipient);
    pre.report(compiled, &mut diags);

    let mut members = Vec::new();
    for item in p.sources.stream() {
        if members.len() >= PICKER_MEMBERS {
            break;
        }
        if let Ok(Item::Member(r)) = item {
            members.push(Member {
                row: r.row,
                email: r.email.as_str().to_owned(),
            });
        }
    }

    let newsletter_dir = inputs.newsletter.parent().unwrap_or(std::path::Path::new(""));
    let mut files: Vec<PathBuf> = p.config.source.iter().cloned().collect();
    files.extend(p.audience.lists.iter().cloned());
    files.extend(compiled.all_inline().into_iter().map(|i| i.path));
    files.extend(p.newsletter.front.attachments.iter().map(|a| newsletter_dir.join(a)));
    files.extend(crate::message::attachments::member_files(&recipient).unwrap_or_default());

    let mut html = rendered.html.clone();
    let mut images = HashMap::new();
    for image in &version.inline {
        html = html.replace(&format!("cid:{}", image.cid), &format!("/cid/{}", image.cid));
        images.insert(image.cid.clone(), (image.content_type, Arc::clone(&image.bytes)));
    }
    let dark_html = crate::render::force_dark(&html);
    let headers = raw.split("\r\n\r\n").next().unwrap_or("").replace("\r\n", "\n");
    let shown = raw.len().min(RAW_SHOWN);
    let mut shown_raw = raw[..raw.floor_char_boundary(shown)].replace("\r\n", "\n");
    if shown < raw.len() {
        shown_raw.push_str(&format!("\n… ({} more bytes)", raw.len() - shown));
    }
    Ok(View {
        member: recipient.email.as_str().to_owned(),
        row: recipient.row,
        lang: version.lang.clone(),
        languages: compiled.langs().into_iter().map(str::to_owned).collect(),
        lang_picked: lang.is_some(),
        members,
        from: letterhead.from_of(rendered.version).to_string(),
        subject: rendered.subject.clone(),
        preheader: preheader(&rendered.html),
        html_bytes: rendered.html.len(),
        message_bytes: raw.len(),
        clip_bytes: GMAIL_CLIP_BYTES,
        errors: diags.errors(),
        diagnostics: diags.items.iter().map(ToString::to_string).collect(),
        html,
        dark_html,
        text: rendered.text,
        headers,
        raw: shown_raw,
        files,
        images,
    })
}

/// The preheader's text as the inbox shows it: the hidden div's text before its filler.
fn preheader(html: &str) -> String {
    let Some(start) = html.find("class=\"preheader\"") else {
        return String::new();
    };
    let rest = &html[start..];
    let Some(open) = rest.find('>') else {
        return String::new();
    };
    let text = &rest[open + 1..];
    let end = text.find(['\u{34f}', '<']).unwrap_or(text.len());
    text[..end]
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preheader_stops_at_the_filler() {
        let html = "<div class=\"preheader\" style=\"display:none\" aria-hidden=\"true\">Dates &amp; times\u{34f}\u{200c}&nbsp;</div>";
        assert_eq!(preheader(html), "Dates & times");
        assert_eq!(preheader("<p>none</p>"), "");
    }
}
