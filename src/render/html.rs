//! The HTML part: Markdown blocks → fragment, wrapped in an email-client-safe layout
//! (tables with `role="presentation"`, a 600 px container with Outlook's ghost table, a hidden
//! preheader, a bulletproof button), then CSS inlined. Runs once per newsletter.

use maud::{DOCTYPE, Markup, PreEscaped, html};
use pulldown_cmark::{CowStr, Event};

use super::markdown::{Block, Button, Image};
use super::tags::Tags;
use super::url;
use crate::config::{Config, Social, Theme};

/// Width of the text column inside the 600 px container (20 px padding each side).
pub(super) const CONTENT_WIDTH: u32 = 560;

/// What the layout needs besides the body.
pub(super) struct Page<'a> {
    pub lang: &'a str,
    /// Subject and preheader with tokens, shown in `<title>` and the preview line.
    pub title: &'a str,
    pub preheader: Option<&'a str>,
    /// The unsubscribe URL token, when one is configured.
    pub unsubscribe: Option<&'a str>,
    /// The issue's page on the web, for a "View in your browser" link.
    pub web_url: Option<&'a str>,
    pub config: &'a Config,
    /// `[theme]` with this issue's overrides.
    pub theme: &'a Theme,
    /// Social links, this issue's or `bulletin.toml`'s.
    pub social: &'a [Social],
    /// The footer text, this issue's or `[organisation] reason`.
    pub footer: Option<&'a str>,
}

/// Writing direction of a BCP 47 language: `rtl` for the scripts written right to left.
pub(super) fn direction(lang: &str) -> &'static str {
    let primary = lang.split(['-', '_']).next().unwrap_or("").to_ascii_lowercase();
    match primary.as_str() {
        "ar" | "arc" | "ckb" | "dv" | "fa" | "he" | "iw" | "ku" | "ps" | "sd" | "ug" | "ur" | "yi" => "rtl",
        _ => "ltr",
    }
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
    // A wide table must not widen the layout on a 375 px phone: fixed layout at the column's
    // width, and cells that break long words (styles in `.md-table`).
    let out = out
        .replace(
            "<table>",
            "<div class=\"table-wrap\"><table class=\"md-table\" role=\"table\" width=\"100%\">",
        )
        .replace("</table>", "</table></div>");
    let mut out = super::tags::lift_statements(&out);
    for (i, markup) in ours.iter().enumerate() {
        out = out.replacen(&format!("BLTNOURS{i}X"), markup, 1);
    }
    out
}

/// A bulletproof button: real text in a link inside a `bgcolor` cell, so it shows as a
/// button even where images and CSS backgrounds are off. Outlook for Windows (Word's engine)
/// ignores padding on `<a>`, so the cell carries it there as `mso-padding-alt` while every
/// other client pads the link, keeping the whole button clickable.
fn button(b: &Button, brand: &str) -> Markup {
    html! {
        table role="presentation" class="button" border="0" cellspacing="0" cellpadding="0" align="center" {
            tr { td class="button-cell" bgcolor=(brand) align="center" style="mso-padding-alt:14px 28px;" {
                a class="button-link" href=(b.url) style="mso-padding-alt:0;" { (b.text) }
            } }
        }
    }
}

fn image(img: &Image) -> Markup {
    // Shown at its own size up to the column's width, scaled down to fit beyond it. Without a
    // known size (a remote image nobody measured) it takes the column and its own height.
    let (w, h) = match (img.width, img.height) {
        (Some(w), Some(h)) if w > CONTENT_WIDTH => (
            CONTENT_WIDTH,
            Some((u64::from(h) * u64::from(CONTENT_WIDTH) / u64::from(w)) as u32),
        ),
        (Some(w), h) => (w, h),
        (None, _) => (CONTENT_WIDTH, None),
    };
    html! {
        img src=(img.url) alt=(img.alt) width=(w) height=[h] class="image"
            style=(format!("display:block;width:100%;max-width:{w}px;height:auto;border:0;"));
        @if let Some(caption) = &img.caption {
            // Inside the image's paragraph, so a block-level span rather than a `<p>`.
            span class="caption" style="display:block;" { (caption) }
        }
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

/// Outlook for Windows: render at 96 dpi (else images scale on high-DPI screens) and allow PNG.
const MSO_HEAD: &str = "<!--[if mso]><noscript><xml><o:OfficeDocumentSettings><o:AllowPNG/><o:PixelsPerInch>96</o:PixelsPerInch></o:OfficeDocumentSettings></xml></noscript><![endif]-->";

/// Outlook for Windows adds gaps beside every table unless told not to. Other clients ignore
/// `mso-` properties, so this needs no conditional comment (and a `<style>` inside one would
/// be markup hidden from every client but Outlook).
const MSO_CSS: &str = "table, td { mso-table-lspace: 0pt; mso-table-rspace: 0pt; }";

/// Where [`inline_css`] puts the style blocks that stay in `<head>`.
const HEAD_STYLES: &str = "<!--bulletin:head-styles-->";

/// The Outlook namespaces on `<html>`: VML and Office elements need them declared.
const HTML_NAMESPACES: &str = "xmlns=\"http://www.w3.org/1999/xhtml\" xmlns:v=\"urn:schemas-microsoft-com:vml\" xmlns:o=\"urn:schemas-microsoft-com:office:office\"";

/// The whole document, before CSS inlining.
pub(super) fn layout(page: &Page<'_>, body: &str) -> String {
    let c = page.config;
    let org = &c.organisation;
    let theme = page.theme;
    let brand = theme.brand_color();
    let dir = direction(page.lang);
    let css = stylesheet(brand);
    let markup = html! {
        head {
            // First, so nothing before it is read in another encoding.
            meta charset="utf-8";
            meta http-equiv="Content-Type" content="text/html; charset=utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta http-equiv="X-UA-Compatible" content="IE=edge";
            meta name="x-apple-disable-message-reformatting";
            // iOS and Gmail would turn dates, addresses and numbers into blue links.
            meta name="format-detection" content="telephone=no, date=no, address=no, email=no, url=no";
            meta name="color-scheme" content="light dark";
            meta name="supported-color-schemes" content="light dark";
            title { (page.title) }
            (PreEscaped(MSO_HEAD))
            style { (PreEscaped(css)) }
            (PreEscaped(HEAD_STYLES))
        }
        body class="body" {
            // Gmail drops `<html>` and its `lang`: the wrapper carries language and direction.
            div class="email" role="article" aria-roledescription="email" lang=(page.lang) dir=(dir) {
                @if let Some(pre) = page.preheader {
                    // Hidden preview text, then filler (a combining grapheme joiner, a zero-width
                    // non-joiner and a no-break space, repeated) so the inbox line shows no body
                    // text after it.
                    div class="preheader" aria-hidden="true" style="display:none;font-size:1px;line-height:1px;max-height:0;max-width:0;opacity:0;overflow:hidden;mso-hide:all;" {
                        (pre) (PreEscaped("&#847;&zwnj;&nbsp;".repeat(60)))
                    }
                }
                table role="presentation" class="wrapper" width="100%" border="0" cellspacing="0" cellpadding="0" {
                    tr { td align="center" class="wrapper-cell" {
                        (PreEscaped("<!--[if mso]><table role=\"presentation\" width=\"600\" align=\"center\" cellspacing=\"0\" cellpadding=\"0\" border=\"0\"><tr><td><![endif]-->"))
                        table role="presentation" class="container" width="100%" border="0" cellspacing="0" cellpadding="0" {
                            @if let Some(logo) = &theme.logo {
                                tr { td class="header" {
                                    @let alt = theme.logo_alt.as_deref().or(org.name.as_deref()).unwrap_or("");
                                    @let (w, h) = (theme.logo_width.unwrap_or(180), theme.logo_height.unwrap_or(48));
                                    img src=(logo) alt=(alt) width=(w) height=(h) class="logo logo-light";
                                    @if let Some(dark_logo) = &theme.logo_dark {
                                        // Hidden everywhere but in dark mode; Outlook never shows it.
                                        (PreEscaped("<!--[if !mso]><!-->"))
                                        div class="logo-dark" style="display:none;overflow:hidden;max-height:0;max-width:0;line-height:0;mso-hide:all;" {
                                            img src=(dark_logo) alt=(alt) width=(w) height=(h) class="logo";
                                        }
                                        (PreEscaped("<!--<![endif]-->"))
                                    }
                                } }
                            }
                            @if let Some(url) = page.web_url {
                                tr { td class="view-online" { a href=(url) { "View in your browser" } } }
                            }
                            tr { td class="content" { (PreEscaped(body)) } }
                            @if !page.social.is_empty() {
                                tr { td class="social" {
                                    @for (i, s) in page.social.iter().enumerate() {
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
                                @if let Some(text) = page.footer { p { (text) } }
                                p {
                                    @if let Some(u) = page.unsubscribe {
                                        a href=(u) { (super::words::words(page.lang).unsubscribe) }
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
    format!(
        "{}<html lang=\"{}\" dir=\"{dir}\" {HTML_NAMESPACES}>{}</html>",
        DOCTYPE.into_string(),
        html! { (page.lang) }.into_string(),
        markup.into_string()
    )
}

/// Inlines the stylesheet into `style` attributes, then puts back the rules no attribute can
/// hold (media queries, client-specific dark-mode selectors) in `<head>`, after `<meta charset>`
/// (css-inline would put them first).
pub(super) fn inline_css(document: &str, brand: &str) -> anyhow::Result<String> {
    let inliner = css_inline::CSSInliner::options()
        .keep_style_tags(false)
        .keep_at_rules(false)
        .keep_link_tags(false)
        .load_remote_stylesheets(false)
        .build();
    let out = inliner.inline(document)?;
    let out = out.replacen(
        HEAD_STYLES,
        &format!(
            "<style>{MOBILE_CSS}</style><style>{}</style><style>{MSO_CSS}</style>",
            dark_stylesheet(brand)
        ),
        1,
    );
    // One element per line keeps lines far below SMTP's 998-octet limit and diffs readable.
    Ok(out
        .replace("><meta", ">\n<meta")
        .replace("><div", ">\n<div")
        .replace("><table", ">\n<table")
        .replace("><tr", ">\n<tr")
        .replace("><p", ">\n<p")
        .replace("</p><", "</p>\n<"))
}

fn stylesheet(brand: &str) -> String {
    format!(
        r"
body, .body {{ margin: 0; padding: 0; width: 100%; background-color: #f2f2f2; -webkit-text-size-adjust: 100%; -ms-text-size-adjust: 100%; }}
.email {{ margin: 0; padding: 0; width: 100%; background-color: #f2f2f2; }}
.wrapper {{ background-color: #f2f2f2; }}
.wrapper-cell {{ padding: 16px 8px; }}
.container {{ max-width: 600px; background-color: #ffffff; border-top: 4px solid {brand}; }}
.header {{ padding: 24px 20px 8px 20px; }}
.view-online {{ padding: 8px 20px 0 20px; font-family: Helvetica, Arial, sans-serif; font-size: 12px; color: #666666; text-align: right; }}
.view-online a {{ color: #666666; text-decoration: underline; }}
.logo {{ display: block; border: 0; height: auto; font-family: Helvetica, Arial, sans-serif; font-size: 20px; font-weight: bold; color: {brand}; }}
.content {{ padding: 8px 20px 16px 20px; font-family: Georgia, 'Times New Roman', serif; font-size: 17px; line-height: 1.55; mso-line-height-rule: exactly; color: #222222; word-wrap: break-word; }}
.content p {{ margin: 0 0 16px 0; }}
.content h1 {{ font-family: Helvetica, Arial, sans-serif; font-size: 28px; line-height: 1.2; mso-line-height-rule: exactly; margin: 16px 0 16px 0; color: #111111; }}
.content h2 {{ font-family: Helvetica, Arial, sans-serif; font-size: 22px; line-height: 1.25; mso-line-height-rule: exactly; margin: 24px 0 12px 0; color: #111111; }}
.content h3 {{ font-family: Helvetica, Arial, sans-serif; font-size: 18px; margin: 20px 0 8px 0; color: #111111; }}
.content a {{ color: {brand}; text-decoration: underline; }}
.content ul, .content ol {{ margin: 0 0 16px 0; padding: 0 0 0 24px; }}
.content li {{ margin: 0 0 8px 0; }}
.content blockquote {{ margin: 0 0 16px 0; padding: 0 0 0 12px; border-left: 3px solid #cccccc; color: #555555; }}
.content em {{ font-style: italic; }}
.content pre {{ white-space: pre-wrap; word-wrap: break-word; font-size: 14px; }}
.table-wrap {{ width: 100%; margin: 0 0 16px 0; }}
.md-table {{ width: 100%; table-layout: fixed; border-collapse: collapse; }}
.md-table td, .md-table th {{ border: 1px solid #dddddd; padding: 4px 8px; font-size: 15px; word-wrap: break-word; word-break: break-word; }}
.image {{ display: block; border: 0; height: auto; margin: 0 0 8px 0; font-family: Helvetica, Arial, sans-serif; font-size: 14px; color: #555555; }}
.caption {{ display: block; margin: 0 0 8px 0; font-family: Helvetica, Arial, sans-serif; font-size: 13px; font-style: italic; line-height: 1.4; color: #666666; }}
.button {{ margin: 8px auto 24px auto; }}
.button-cell, .content .button-cell {{ border-radius: 4px; padding: 0; border: 0; }}
.content .button-link, .button-link {{ display: inline-block; padding: 14px 28px; font-family: Helvetica, Arial, sans-serif; font-size: 18px; line-height: 1.2; mso-line-height-rule: exactly; font-weight: bold; color: #ffffff; text-decoration: none; border-radius: 4px; background-color: {brand}; border: 1px solid {brand}; }}
.social {{ padding: 8px 20px 8px 20px; font-family: Helvetica, Arial, sans-serif; font-size: 14px; text-align: center; border-top: 1px solid #eeeeee; }}
.social a {{ color: {brand}; }}
.footer {{ padding: 12px 20px 24px 20px; font-family: Helvetica, Arial, sans-serif; font-size: 13px; line-height: 1.5; mso-line-height-rule: exactly; color: #666666; text-align: center; }}
.footer p {{ margin: 0 0 6px 0; }}
.footer a {{ color: #666666; text-decoration: underline; }}
"
    )
}

/// Phones: less padding, smaller type. Its own `<style>`, so a block Gmail rejects cannot take
/// it along.
const MOBILE_CSS: &str = "@media only screen and (max-width: 620px) {
  .wrapper-cell { padding: 0 !important; }
  .content { padding: 8px 16px 12px 16px !important; font-size: 16px !important; }
  .content h1 { font-size: 24px !important; }
  .header { padding-left: 16px !important; padding-right: 16px !important; }
}";

/// Dark mode, left in `<style>` as written: `prefers-color-scheme` for Apple Mail, iOS Mail,
/// Outlook for Mac and Thunderbird; the same rules under `[data-ogsc]` (text) and `[data-ogsb]`
/// (backgrounds), the attributes Outlook.com and the Outlook apps put on the body when they
/// darken a message. Kept apart from the other `<style>`: Gmail drops a whole style block it
/// cannot parse, and these selectors must not cost us the mobile rules.
fn dark_stylesheet(brand: &str) -> String {
    let light = lighten(brand);
    let text = format!(
        ".content, .content h1, .content h2, .content h3 {{ color: #eeeeee !important; }}\n\
         .footer, .footer a, .caption {{ color: #aaaaaa !important; }}\n\
         .content p a, .content li a, .social a {{ color: {light} !important; }}"
    );
    let backgrounds = ".body, .email, .wrapper {{ background-color: #111111 !important; }}\n\
         .container {{ background-color: #1c1c1c !important; }}\n\
         .social {{ border-top-color: #333333 !important; }}\n\
         .md-table td, .md-table th {{ border-color: #444444 !important; }}"
        .replace("{{", "{")
        .replace("}}", "}");
    let logos = ".logo-light { display: none !important; }\n\
         .logo-dark { display: block !important; max-height: none !important; max-width: none !important; overflow: visible !important; line-height: normal !important; }";
    let scoped = |prefix: &str, rules: &str| -> String {
        rules
            .lines()
            .map(|r| {
                let (selectors, decl) = r.split_once('{').unwrap_or((r, ""));
                let sel: Vec<String> = selectors.split(',').map(|s| format!("{prefix} {}", s.trim())).collect();
                format!("{} {{{decl}\n", sel.join(", "))
            })
            .collect()
    };
    format!(
        "{BOTH_SCHEMES}\n{DARK_MEDIA} {{\n{backgrounds}\n{text}\n{logos}\n}}\n{}{}{}",
        scoped("[data-ogsc]", &text),
        scoped("[data-ogsb]", &backgrounds),
        scoped("[data-ogsc]", logos),
    )
}

/// The media query the dark-mode rules are under, exactly as the HTML carries it.
const DARK_MEDIA: &str = "@media (prefers-color-scheme: dark)";
/// The message supports both schemes: a client in dark mode then uses its dark defaults (text
/// colour, for one) and the dark rules, rather than inverting colours itself.
const BOTH_SCHEMES: &str = ":root { color-scheme: light dark; supported-color-schemes: light dark; }";

/// The message as a client in dark mode that honours `prefers-color-scheme` shows it (Apple
/// Mail, iOS Mail, Outlook for Mac), whatever the viewer's own setting: the dark rules on, and
/// the dark scheme for what no rule colours. The same rules are what Outlook.com and the
/// Outlook apps apply through `[data-ogsc]` and `[data-ogsb]`; the Gmail app's own colour
/// inversion is not simulated.
pub(crate) fn force_dark(html: &str) -> String {
    html.replacen(
        BOTH_SCHEMES,
        ":root { color-scheme: dark; supported-color-schemes: dark; }",
        1,
    )
    .replacen(DARK_MEDIA, "@media all", 1)
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
    fn forcing_dark_turns_on_the_dark_rules_only() {
        let html = format!("<style>{}</style>", dark_stylesheet("#b5121b"));
        assert_eq!(html.matches(DARK_MEDIA).count(), 1);
        assert_eq!(html.matches(BOTH_SCHEMES).count(), 1);
        let dark = force_dark(&html);
        assert!(!dark.contains("prefers-color-scheme") && !dark.contains("light dark"));
        let back = dark.replace("@media all", DARK_MEDIA).replace(
            "color-scheme: dark; supported-color-schemes: dark;",
            "color-scheme: light dark; supported-color-schemes: light dark;",
        );
        assert_eq!(back, html);
    }

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
