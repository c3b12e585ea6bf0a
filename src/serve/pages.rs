//! The few HTML pages `serve` answers with: small, branded with the organisation's name and
//! colour, readable without JavaScript or images, one form each. Nothing on them names the
//! member but a masked address, and the pages link nowhere but back to themselves.

use maud::{DOCTYPE, Markup, html};

/// What every page shows around its content.
#[derive(Debug, Clone)]
pub(crate) struct Brand {
    pub organisation: String,
    pub lang: String,
    pub website: Option<String>,
    /// The page's stylesheet: [`CSS`] with the brand colour.
    pub style: String,
}

impl Brand {
    pub(crate) fn new(organisation: String, lang: String, color: &str, website: Option<String>) -> Brand {
        Brand {
            organisation,
            lang,
            website,
            style: format!(":root{{--brand:{color}}}{CSS}"),
        }
    }

    /// The `style-src` source that allows exactly this stylesheet.
    pub(crate) fn style_hash(&self) -> String {
        use base64::Engine;
        let digest = ring::digest::digest(&ring::digest::SHA256, self.style.as_bytes());
        format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(digest))
    }
}

/// The stylesheet of every page; the Content-Security-Policy allows exactly it, by its hash.
pub(super) const CSS: &str = "body{margin:0;font:1.0625rem/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;\
color:#1a1a1a;background:#f4f4f4}main{max-width:32rem;margin:2rem auto;padding:1.5rem;background:#fff;\
border-top:4px solid var(--brand);border-radius:4px}h1{font-size:1.375rem;margin:0 0 1rem}\
p{margin:0 0 1rem}.org{font-weight:600;color:var(--brand);margin:0 0 .5rem}\
button{font:inherit;font-weight:600;color:#fff;background:var(--brand);border:0;border-radius:4px;\
padding:.75rem 1.25rem;cursor:pointer;min-height:44px}button.quiet{color:var(--brand);background:#fff;\
border:2px solid var(--brand)}button:focus-visible{outline:3px solid #1a1a1a;outline-offset:2px}\
.small{font-size:.9rem;color:#555}@media (max-width:30rem){main{margin:0;border-radius:0}}";

fn page(brand: &Brand, title: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang=(brand.lang) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="noindex";
                title { (title) " — " (brand.organisation) }
                style { (maud::PreEscaped(&brand.style)) }
            }
            body {
                main {
                    p.org { (brand.organisation) }
                    (body)
                }
            }
        }
    }
    .into_string()
}

/// The question: one button, which posts what a one-click client posts.
pub(super) fn confirm(brand: &Brand, masked: &str) -> String {
    page(
        brand,
        "Unsubscribe",
        html! {
            h1 { "Unsubscribe from our newsletter?" }
            p { "You will no longer receive it at " strong { (masked) } "." }
            form method="post" {
                input type="hidden" name="List-Unsubscribe" value="One-Click";
                button type="submit" { "Unsubscribe" }
            }
        },
    )
}

/// After the unsubscribe; `undo` holds the date and signature of the row this request wrote
/// (none when the address was already suppressed, so nothing of this request's can be undone).
pub(super) fn done(brand: &Brand, masked: &str, undo: Option<(&str, &str)>) -> String {
    page(
        brand,
        "Unsubscribed",
        html! {
            h1 { "You are unsubscribed" }
            p { "We will not send the newsletter to " strong { (masked) } " again." }
            @if let Some((date, sig)) = undo {
                form method="post" {
                    input type="hidden" name="undo" value=(date);
                    input type="hidden" name="sig" value=(sig);
                    p.small { "Clicked by mistake?" }
                    button.quiet type="submit" { "Undo: keep me subscribed" }
                }
            }
        },
    )
}

/// After an undo.
pub(super) fn resubscribed(brand: &Brand, masked: &str, undone: bool) -> String {
    page(
        brand,
        "Subscribed",
        html! {
            @if undone {
                h1 { "You are subscribed again" }
                p { "The newsletter will keep coming to " strong { (masked) } "." }
            } @else {
                h1 { "Nothing to undo" }
                p { "This unsubscribe was already undone, or was not made from this page." }
            }
        },
    )
}

/// A refusal: what went wrong in words a member understands, nothing else.
pub(super) fn error(brand: &Brand, status: u16, message: &str) -> String {
    page(
        brand,
        "Error",
        html! {
            h1 { (status_text(status)) }
            p { (message) }
            @if let Some(site) = &brand.website {
                p.small { "Our website: " (site) }
            }
        },
    )
}

fn status_text(status: u16) -> &'static str {
    match status {
        400 => "This request is not valid",
        404 => "Page not found",
        405 => "This page does not take that request",
        408 => "Too slow",
        413 => "Too large",
        415 => "Unsupported request",
        429 => "Too many requests",
        _ => "Something went wrong",
    }
}

/// `ana@example.org` as `a***@e***.org`: enough for the member to recognise, not enough for
/// anyone else to read.
pub(crate) fn mask(address: &str) -> String {
    let (local, domain) = address.rsplit_once('@').unwrap_or((address, ""));
    let first = |s: &str| s.chars().next().map(String::from).unwrap_or_default();
    let tld = domain.rsplit_once('.').map(|(_, t)| t).unwrap_or("");
    if tld.is_empty() {
        format!("{}***@{}***", first(local), first(domain))
    } else {
        format!("{}***@{}***.{tld}", first(local), first(domain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_first_letters_and_the_tld() {
        assert_eq!(mask("ana@example.org"), "a***@e***.org");
        assert_eq!(mask("x@localhost"), "x***@l***");
    }
}
