//! Attachments: the newsletter's own (`attachments:` in the front matter), read once and shared
//! by every message, and each member's (the list column `attachment`), read when that member's
//! message is built and dropped with it, so memory does not grow with the list.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use lettre::message::header::ContentType;
use lettre::message::{Attachment, SinglePart};

use crate::list::Recipient;
use crate::newsletter::Newsletter;

/// Over this, `check` warns: many servers refuse mail much above it.
pub const WARN_BYTES: u64 = 10 * 1024 * 1024;
/// Over this, `check` refuses: Gmail's limit for attachments in one message.
pub const MAX_BYTES: u64 = 25 * 1024 * 1024;

/// A file every message carries.
#[derive(Debug, Clone)]
pub struct Shared {
    pub name: String,
    pub content_type: ContentType,
    pub bytes: Arc<[u8]>,
}

impl Shared {
    /// Reads the front matter's `attachments`, relative to the newsletter's folder.
    pub fn load(n: &Newsletter) -> Result<Vec<Shared>> {
        let dir = n.path.parent().unwrap_or(Path::new(""));
        let at = format!("{}:{}", n.path.display(), n.line_of_key("attachments"));
        n.front
            .attachments
            .iter()
            .map(|p| {
                let path = dir.join(p);
                let bytes = std::fs::read(&path)
                    .with_context(|| format!("{at}: attachment {}: cannot read {}", p.display(), path.display()))?;
                Ok(Shared {
                    name: file_name(&path),
                    content_type: content_type(&path),
                    bytes: bytes.into(),
                })
            })
            .collect()
    }

    pub fn part(&self) -> SinglePart {
        Attachment::new(self.name.clone()).body(self.bytes.to_vec(), self.content_type.clone())
    }
}

/// The files in a member's `attachment` column: one or more paths separated by `;`, `,` or
/// line breaks, relative to the list file's folder and confined to it.
pub fn member_files(r: &Recipient) -> Result<Vec<PathBuf>> {
    let Some(value) = r.field("attachment") else {
        return Ok(Vec::new());
    };
    let dir = r.columns.path.parent().unwrap_or(Path::new(""));
    value
        .split([';', ',', '\n'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| confined(dir, p))
        .collect()
}

/// `dir/rel`, refusing what could leave `dir`: absolute paths, `..`, and symbolic links that
/// point outside it.
fn confined(dir: &Path, rel: &str) -> Result<PathBuf> {
    let p = Path::new(rel);
    if p.is_absolute() || rel.starts_with(['/', '\\']) || rel.contains(":\\") {
        bail!("attachment {rel:?} is an absolute path: give it relative to the list's folder");
    }
    if p.components().any(|c| matches!(c, Component::ParentDir)) || rel.split(['/', '\\']).any(|c| c == "..") {
        bail!("attachment {rel:?} leaves the list's folder (`..`): keep attachments beside the list");
    }
    let path = dir.join(p);
    if let (Ok(real), Ok(base)) = (
        path.canonicalize(),
        dir.canonicalize().or_else(|_| Path::new(".").canonicalize()),
    ) && !real.starts_with(&base)
    {
        bail!("attachment {rel:?} is a link to a file outside the list's folder");
    }
    Ok(path)
}

/// Size of a member's files, checking each can be opened.
pub fn member_bytes(files: &[PathBuf]) -> Result<u64> {
    let mut total = 0;
    for f in files {
        let file = std::fs::File::open(f).with_context(|| format!("attachment {}: cannot read it", f.display()))?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            bail!("attachment {} is not a file", f.display());
        }
        total += meta.len();
    }
    Ok(total)
}

/// One member file as a MIME part, read now.
pub fn member_part(path: &Path) -> Result<SinglePart> {
    let bytes = std::fs::read(path).with_context(|| format!("attachment {}: cannot read it", path.display()))?;
    Ok(Attachment::new(file_name(path)).body(bytes, content_type(path)))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| "attachment".into(), |n| n.to_string_lossy().into_owned())
}

fn content_type(path: &Path) -> ContentType {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    ContentType::parse(mime.essence_str()).unwrap_or(ContentType::parse("application/octet-stream").expect("valid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_paths_are_confined_to_the_list_folder() {
        let dir = Path::new("lists");
        assert_eq!(
            confined(dir, "certs/ana.pdf").unwrap(),
            Path::new("lists/certs/ana.pdf")
        );
        for bad in ["../secret.pdf", "certs/../../x", "/etc/passwd", "C:\\x.pdf", "..\\x"] {
            assert!(confined(dir, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn types_come_from_the_extension() {
        assert_eq!(
            content_type(Path::new("a.pdf")),
            ContentType::parse("application/pdf").unwrap()
        );
        assert_eq!(
            content_type(Path::new("a.unknownext")),
            ContentType::parse("application/octet-stream").unwrap()
        );
    }
}
