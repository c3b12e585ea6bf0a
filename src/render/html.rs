//! The HTML part: Markdown blocks → fragment, wrapped in an email-client-safe layout
//! (tables with `role="presentation"`, a 600 px container with Outlook's ghost table, a hidden
//! preheader, a bulletproof button), then CSS inlined. Runs once per newsletter.

use maud::{DOCTYPE, Markup, PreEscaped, html};
use pulldown_cmark::{CowStr, Event};

use super::markdown::{Block, Button, Image};
use super::tags::Tags;
use super::url;
use crate::config::Config;

/// Width of the text column inside the 600 px container (20 px padding each side).
const CONTENT_WIDTH: u32 = 560;

/// What the layout needs besides the body.
pub(super) struct Page<'a> {
    pub lang: &'a str,
    /// Subject and preheader with tokens, shown in `<title>` and the preview line.
    pub title: &'a str,
    pub preheader: Option<&'a str>,
    /// The unsubscribe URL token, when one is configured.
    pub unsubscribe: Option<&'a str>,
    pub config: &'a Config,
}

/// Renders the body blocks to an HTML fragment. Raw HTML is shown as text unless allowed.
pub(super) fn fragment(blocks: &[Block<'_>], allow_raw_html: bool, brand: &str) -> String {
    let mut events: Vec<Event<'_>> = Vec::with_capacity(blocks.len());
    // Our own markup (buttons, images) is kept aside while authored HTML is sanitised, so the
    // sanitiser never strips the attributes email clients need.
    let mut ours: Vec<String> = Vec::new();
    for block in blocks {
        let markup = match block {
            Block::Md(Event::Html(h) | Event::InlineHtml(h)) if !allow_raw_html => {
                events.push(Event::Text(h.clone()));
                continue;
            }
            Block::Md(e) => {
                events.push(e.clone());
                continue;
            }
            Block::Button(b) => button(b, brand).into_string(),
            Block::Image(img) => image(img).into_string(),
        };
        events.push(Event::InlineHtml(CowStr::from(format!("BLTNOURS{}X", ours.len()))));
        ours.push(markup);
    }
    let mut out = String::new();
    pulldown_cmark::html::push_html(&mut out, events.into_iter());
    if allow_raw_html {
        out = sanitise(&out);
    }
    let mut out = super::tags::lift_statements(&out);
    for (i, markup) in ours.iter().enumerate() {
        out = out.replacen(&format!("BLTNOURS{i}X"), markup, 1);
    }
    out
}

/// A bulletproof button: real text in a link inside a `bgcolor` cell, so it shows as a
/// button even where images and CSS backgrounds are off.
fn button(b: &Button, brand: &str) -> Markup {
    html! {
        table role="presentation" class="button" border="0" cellspacing="0" cellpadding="0" align="center" {
            tr { td class="button-cell" bgcolor=(brand) align="center" {
                a class="button-link" href=(b.url) target="_blank" { (b.text) }
            } }
        }
    }
}

fn image(img: &Image) -> Markup {
    let (w, h) = if img.width > CONTENT_WIDTH {
        (
            CONTENT_WIDTH,
            (u64::from(img.height) * u64::from(CONTENT_WIDTH) / u64::from(img.width)) as u32,
        )
    } else {
        (img.width, img.height)
    };
    html! {
        img src=(img.url) alt=(img.alt) width=(w) height=(h) class="image"
            style=(format!("display:block;width:100%;max-width:{w}px;height:auto;border:0;"));
    }
}

/// Keeps harmless formatting from authored HTML (ammonia's allow-list): scripts, forms,
/// styles and event handlers never reach the message, nor URLs with a scheme our URL policy
/// refuses. A merge field at the start of an `href` or `src` gets its value's scheme checked
/// per member, one later in it is percent-encoded, as in a Markdown link.
fn sanitise(html: &str) -> String {
    ammonia::Builder::default()
        .link_rel(None)
        .url_schemes(url::ALLOWED_SCHEMES.into_iter().collect())
        .attribute_filter(|_, attribute, value| match attribute {
            "href" | "src" => Some(Tags::mark_url(value).into()),
            _ => Some(value.into()),
        })
        .clean(html)
        .to_string()
}

/// The whole document, before CSS inlining.
pub(super) fn layout(page: &Page<'_>, body: &str) -> String {
    let c = page.config;
    let org = &c.organisation;
    let css = stylesheet(c.brand_color());
    let markup = html! {
        (DOCTYPE)
        html lang=(page.lang) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="x-apple-disable-message-reformatting";
                meta name="color-scheme" content="light dark";
                meta name="supported-color-schemes" content="light dark";
                title { (page.title) }
                style { (PreEscaped(css)) }
            }
            body class="body" {
                @if let Some(pre) = page.preheader {
                    // Hidden preview text, padded so the inbox does not show body text after it.
                    div class="preheader" style="display:none;font-size:1px;line-height:1px;max-height:0;max-width:0;opacity:0;overflow:hidden;mso-hide:all;" {
                        (pre) (PreEscaped("&#8199;&#65279;&#847; ".repeat(30)))
                    }
                }
                table role="presentation" class="wrapper" width="100%" border="0" cellspacing="0" cellpadding="0" {
                    tr { td align="center" class="wrapper-cell" {
                        (PreEscaped("<!--[if mso]><table role=\"presentation\" width=\"600\" align=\"center\" cellspacing=\"0\" cellpadding=\"0\" border=\"0\"><tr><td><![endif]-->"))
                        table role="presentation" class="container" width="100%" border="0" cellspacing="0" cellpadding="0" {
                            @if let Some(logo) = &c.theme.logo {
                                tr { td class="header" {
                                    @let alt = c.theme.logo_alt.as_deref().or(org.name.as_deref()).unwrap_or("");
                                    img src=(logo) alt=(alt) width=(c.theme.logo_width.unwrap_or(180)) height=(c.theme.logo_height.unwrap_or(48)) class="logo";
                                } }
                            }
                            tr { td class="content" { (PreEscaped(body)) } }
                            @if !c.social.is_empty() {
                                tr { td class="social" {
                                    @for (i, s) in c.social.iter().enumerate() {
                                        @if i > 0 { " · " }
                                        a href=(s.url) { (s.name) }
                                    }
                                } }
                            }
                            tr { td class="footer" {
                                @if let Some(name) = &org.name {
                                    p { strong { (name) } }
                                }
                                @if let Some(addr) = &org.postal_address { p { (addr) } }
                                @if let Some(reason) = &org.reason { p { (reason) } }
                                p {
                                    @if let Some(u) = page.unsubscribe {
                                        a href=(u) { "Unsubscribe" }
                                    }
                                    @if let (Some(_), Some(_)) = (page.unsubscribe, &org.website) { " · " }
                                    @if let Some(site) = &org.website { a href=(site) { (site.trim_start_matches("https://")) } }
                                }
                            } }
                        }
                        (PreEscaped("<!--[if mso]></td></tr></table><![endif]-->"))
                    } }
                }
            }
        }
    };
    markup.into_string()
}

/// Inlines the stylesheet into `style` attributes; only `@media` rules stay in `<style>`.
pub(super) fn inline_css(document: &str) -> anyhow::Result<String> {
    let inliner = css_inline::CSSInliner::options()
        .keep_style_tags(false)
        .keep_at_rules(true)
        .keep_link_tags(false)
        .load_remote_stylesheets(false)
        .build();
    let out = inliner.inline(document)?;
    // One element per line keeps lines far below SMTP's 998-octet limit and diffs readable.
    Ok(out
        .replace("><table", ">\n<table")
        .replace("><tr", ">\n<tr")
        .replace("><p", ">\n<p")
        .replace("</p><", "</p>\n<"))
}

fn stylesheet(brand: &str) -> String {
    let light = lighten(brand);
    format!(
        r"
body, .body {{ margin: 0; padding: 0; width: 100%; background-color: #f2f2f2; }}
.wrapper {{ background-color: #f2f2f2; }}
.wrapper-cell {{ padding: 16px 8px; }}
.container {{ max-width: 600px; background-color: #ffffff; border-top: 4px solid {brand}; }}
.header {{ padding: 24px 20px 8px 20px; }}
.logo {{ display: block; border: 0; height: auto; font-family: Helvetica, Arial, sans-serif; font-size: 20px; font-weight: bold; color: {brand}; }}
.content {{ padding: 8px 20px 16px 20px; font-family: Georgia, 'Times New Roman', serif; font-size: 17px; line-height: 1.55; color: #222222; }}
.content p {{ margin: 0 0 16px 0; }}
.content h1 {{ font-family: Helvetica, Arial, sans-serif; font-size: 28px; line-height: 1.2; margin: 16px 0 16px 0; color: #111111; }}
.content h2 {{ font-family: Helvetica, Arial, sans-serif; font-size: 22px; line-height: 1.25; margin: 24px 0 12px 0; color: #111111; }}
.content h3 {{ font-family: Helvetica, Arial, sans-serif; font-size: 18px; margin: 20px 0 8px 0; color: #111111; }}
.content a {{ color: {brand}; text-decoration: underline; }}
.content ul, .content ol {{ margin: 0 0 16px 0; padding: 0 0 0 24px; }}
.content li {{ margin: 0 0 8px 0; }}
.content blockquote {{ margin: 0 0 16px 0; padding: 0 0 0 12px; border-left: 3px solid #cccccc; color: #555555; }}
.content em {{ font-style: italic; }}
.content table {{ border-collapse: collapse; }}
.content td, .content th {{ border: 1px solid #dddddd; padding: 4px 8px; }}
.image {{ display: block; border: 0; height: auto; margin: 0 0 8px 0; font-family: Helvetica, Arial, sans-serif; font-size: 14px; color: #555555; }}
.button {{ margin: 8px auto 24px auto; }}
.button-cell, .content .button-cell {{ border-radius: 4px; padding: 0; border: 0; }}
.content .button-link, .button-link {{ display: inline-block; padding: 14px 28px; font-family: Helvetica, Arial, sans-serif; font-size: 18px; font-weight: bold; color: #ffffff; text-decoration: none; border-radius: 4px; background-color: {brand}; border: 1px solid {brand}; }}
.social {{ padding: 8px 20px 8px 20px; font-family: Helvetica, Arial, sans-serif; font-size: 14px; text-align: center; border-top: 1px solid #eeeeee; }}
.social a {{ color: {brand}; }}
.footer {{ padding: 12px 20px 24px 20px; font-family: Helvetica, Arial, sans-serif; font-size: 13px; line-height: 1.5; color: #666666; text-align: center; }}
.footer p {{ margin: 0 0 6px 0; }}
.footer a {{ color: #666666; text-decoration: underline; }}
@media only screen and (max-width: 620px) {{
  .wrapper-cell {{ padding: 0 !important; }}
  .content {{ padding: 8px 16px 12px 16px !important; font-size: 16px !important; }}
  .content h1 {{ font-size: 24px !important; }}
  .header {{ padding-left: 16px !important; padding-right: 16px !important; }}
}}
@media (prefers-color-scheme: dark) {{
  .body, .wrapper {{ background-color: #111111 !important; }}
  .container {{ background-color: #1c1c1c !important; }}
  .content, .content h1, .content h2, .content h3 {{ color: #eeeeee !important; }}
  .footer, .footer a {{ color: #aaaaaa !important; }}
  .content p a, .content li a, .social a {{ color: {light} !important; }}
  .social {{ border-top-color: #333333 !important; }}
}}
"
    )
}

/// The brand colour mixed 55 % with white: link colour on the dark-mode background.
fn lighten(hex: &str) -> String {
    let h = hex.trim_start_matches('#');
    let full: String = if h.len() == 3 {
        h.chars().flat_map(|c| [c, c]).collect()
    } else {
        h.to_owned()
    };
    let channel = |i: usize| u8::from_str_radix(full.get(i..i + 2).unwrap_or("80"), 16).unwrap_or(0x80);
    let mix = |c: u8| (f64::from(c) + (255.0 - f64::from(c)) * 0.55).round() as u8;
    format!("#{:02x}{:02x}{:02x}", mix(channel(0)), mix(channel(2)), mix(channel(4)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dark_mode_links_are_lightened_brand() {
        assert_eq!(lighten("#1d6f5f"), "#99beb7");
        assert_eq!(lighten("#000"), "#8c8c8c");
    }

    #[test]
    fn sanitiser_drops_scripts_forms_and_handlers() {
        let out = sanitise(
            "<p onclick=\"x()\">Hi</p><script>alert(1)</script><form action=x><input></form><b>ok</b><link rel=stylesheet href=x>",
        );
        assert_eq!(out, "<p>Hi</p><b>ok</b>");
        assert_eq!(sanitise("<a href=\"javascript:alert(1)\">x</a>"), "<a>x</a>");
        assert_eq!(sanitise("<a href=\"ftp://e.org\">x</a>"), "<a>x</a>");
        assert_eq!(
            sanitise("<a href=\"BLTN0Z?n=BLTN1Z\">x</a>"),
            "<a href=\"BLTN0L?n=BLTN1U\">x</a>"
        );
    }
}
