//! Images as people write them. A local file (`![Marchers](images/march.jpg)`) is measured and
//! travels inside every message as an inline part (`cid:`), unless `[theme] image_base_url`
//! says where it is hosted; a remote image without a size takes the column's width, with a
//! warning saying how to give its size.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use percent_encoding::percent_decode_str;
use sha2::{Digest, Sha256};

use super::html::CONTENT_WIDTH;
use super::markdown::Block;
use super::scan::{Scan, What};
use crate::diagnostic::Diagnostics;

/// An image that travels inside the message, read once for every member.
#[derive(Debug, Clone)]
pub struct Inline {
    /// Content-ID, without angle brackets: the HTML refers to it as `cid:…`.
    pub cid: String,
    /// File name offered to the reader.
    pub name: String,
    pub content_type: &'static str,
    pub bytes: Arc<[u8]>,
    /// The file, so a browser preview can show it.
    pub path: PathBuf,
}

/// Where an image comes from.
enum Source {
    /// `https://…`, `//host/…`, `data:` or a URL made of merge fields: not ours to read.
    Remote,
    Local(PathBuf),
}

fn source(url: &str, dir: &Path) -> Source {
    let has_token = Scan::tokens(url).any(|p| matches!(p.what, What::Token(_)));
    let scheme = url
        .split_once(':')
        .is_some_and(|(s, _)| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)));
    if has_token || scheme || url.starts_with("//") || url.is_empty() {
        return Source::Remote;
    }
    let decoded = percent_decode_str(url).decode_utf8_lossy();
    let path = decoded.split(['?', '#']).next().unwrap_or("");
    Source::Local(dir.join(path))
}

/// Measures local images, decides where each one is served from and gives every image a
/// width. `dir` is the newsletter's folder. Returns the images to embed.
pub fn place(
    blocks: &mut [Block<'_>],
    dir: &Path,
    file: &str,
    base_url: Option<&str>,
    diags: &mut Diagnostics,
) -> Vec<Inline> {
    let mut inline: Vec<Inline> = Vec::new();
    let mut seen: HashMap<PathBuf, Option<usize>> = HashMap::new();
    for block in blocks.iter_mut() {
        let Block::Image(img) = block else { continue };
        let at = Some((file, img.line));
        let path = match source(&img.url, dir) {
            Source::Local(p) => p,
            Source::Remote => {
                if img.width.is_none() {
                    diags.warning(
                        at,
                        format!(
                            "image {} has no size: it is shown {CONTENT_WIDTH} px wide and as tall as it turns out; \
                             give its size as the title, ![{}]({} \"600x400\"), so Outlook draws it at that size \
                             and the text does not jump while it loads",
                            img.url, img.alt, img.url
                        ),
                    );
                }
                continue;
            }
        };
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if base_url.is_some() => {
                // Hosted elsewhere: the copy here only gives the size.
                if img.width.is_none() {
                    diags.warning(
                        at,
                        format!(
                            "image {}: cannot read {} to measure it ({e}); give its size as the title, \"600x400\"",
                            img.url,
                            path.display()
                        ),
                    );
                }
                img.url = hosted(base_url.unwrap_or_default(), &img.url);
                continue;
            }
            Err(e) => {
                diags.error(
                    at,
                    format!(
                        "image {}: cannot read {}: {e} (paths are relative to the newsletter's folder)",
                        img.url,
                        path.display()
                    ),
                );
                continue;
            }
        };
        let (kind, size) = match (imagesize::image_type(&bytes), imagesize::blob_size(&bytes)) {
            (Ok(kind), Ok(size)) => (kind, size),
            _ => {
                diags.error(
                    at,
                    format!(
                        "image {}: {} is not a PNG, JPEG, GIF or WebP image, the formats mail clients show",
                        img.url,
                        path.display()
                    ),
                );
                continue;
            }
        };
        let content_type = match kind {
            imagesize::ImageType::Png => "image/png",
            imagesize::ImageType::Jpeg => "image/jpeg",
            imagesize::ImageType::Gif => "image/gif",
            _ => {
                diags.warning(
                    at,
                    format!(
                        "image {} is WebP, which Outlook for Windows does not show: save it as JPEG or PNG",
                        img.url
                    ),
                );
                "image/webp"
            }
        };
        if img.width.is_none() {
            img.width = u32::try_from(size.width).ok();
            img.height = u32::try_from(size.height).ok();
        }
        if let Some(base) = base_url {
            img.url = hosted(base, &img.url);
            continue;
        }
        let index = *seen.entry(path.clone()).or_insert_with(|| {
            let hash = Sha256::digest(&bytes);
            let short: String = hash.iter().take(6).map(|b| format!("{b:02x}")).collect();
            let name = path
                .file_name()
                .map_or_else(|| "image".into(), |n| n.to_string_lossy().into_owned());
            inline.push(Inline {
                cid: format!("img{}.{short}@bulletin", inline.len() + 1),
                name,
                content_type,
                bytes: bytes.into(),
                path: path.clone(),
            });
            Some(inline.len() - 1)
        });
        if let Some(i) = index {
            img.url = format!("cid:{}", inline[i].cid);
        }
    }
    inline
}

/// The image's URL under `[theme] image_base_url`.
fn hosted(base: &str, url: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), url.trim_start_matches("./"))
}

/// The total size of the images once base64-encoded in a message (76-character lines).
pub fn encoded_size(inline: &[Inline]) -> usize {
    inline.iter().map(|i| base64_len(i.bytes.len())).sum()
}

/// Length of `n` bytes in base64 with CRLF every 76 characters.
pub fn base64_len(n: usize) -> usize {
    let chars = n.div_ceil(3) * 4;
    chars + chars.div_ceil(76) * 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::markdown::Image;

    fn image(url: &str) -> Image {
        Image {
            url: url.into(),
            alt: "a".into(),
            width: None,
            height: None,
            line: 3,
            caption: None,
        }
    }

    #[test]
    fn remote_and_local_urls() {
        let dir = Path::new("news");
        for remote in [
            "https://e.org/a.png",
            "//e.org/a.png",
            "data:image/png;base64,xx",
            "cid:x",
        ] {
            assert!(matches!(source(remote, dir), Source::Remote), "{remote}");
        }
        assert!(
            matches!(source("images/my%20photo.jpg", dir), Source::Local(p) if p == Path::new("news/images/my photo.jpg"))
        );
    }

    #[test]
    fn a_remote_image_without_size_takes_the_column_with_a_warning() {
        let mut blocks = vec![Block::Image(image("https://e.org/a.png"))];
        let mut d = Diagnostics::default();
        assert!(place(&mut blocks, Path::new("."), "n.md", None, &mut d).is_empty());
        assert_eq!(d.errors(), 0);
        assert!(
            d.to_string().contains("n.md:3: image https://e.org/a.png has no size"),
            "{d}"
        );
    }

    #[test]
    fn a_local_image_is_measured_and_embedded_once() {
        let dir = tempfile::tempdir().unwrap();
        // A 1×1 PNG, as `convert` writes it.
        let png = [
            0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52, 0, 0, 0x02, 0x58, 0,
            0, 0x01, 0x90, 0x08, 0x02, 0, 0, 0,
        ];
        std::fs::write(dir.path().join("m.png"), png).unwrap();
        let mut blocks = vec![Block::Image(image("m.png")), Block::Image(image("./m.png"))];
        let mut d = Diagnostics::default();
        let inline = place(&mut blocks, dir.path(), "n.md", None, &mut d);
        assert_eq!(d.items.len(), 0, "{d}");
        assert_eq!(inline.len(), 1);
        let Block::Image(img) = &blocks[0] else { unreachable!() };
        assert_eq!((img.width, img.height), (Some(600), Some(400)));
        assert_eq!(img.url, format!("cid:{}", inline[0].cid));
        assert_eq!(inline[0].content_type, "image/png");

        let mut blocks = vec![Block::Image(image("m.png"))];
        let inline = place(
            &mut blocks,
            dir.path(),
            "n.md",
            Some("https://cdn.example/news/"),
            &mut d,
        );
        assert!(inline.is_empty());
        let Block::Image(img) = &blocks[0] else { unreachable!() };
        assert_eq!(img.url, "https://cdn.example/news/m.png");
        assert_eq!(img.width, Some(600));
    }

    #[test]
    fn a_missing_local_image_is_an_error_naming_the_line() {
        let mut blocks = vec![Block::Image(image("images/nope.jpg"))];
        let mut d = Diagnostics::default();
        place(&mut blocks, Path::new("."), "n.md", None, &mut d);
        assert_eq!(d.errors(), 1);
        assert!(
            d.to_string().contains("n.md:3: image images/nope.jpg: cannot read"),
            "{d}"
        );
    }
}
