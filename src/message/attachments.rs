//! Attachments: the newsletter's own (`attachments:` in the front matter), read and encoded
//! once and shared by every message, and each member's (the list column `attachment`), encoded
//! straight from the file in small chunks when that member's message is built and dropped with
//! it, so memory does not grow with the list nor hold a file twice (raw and encoded).

use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Attachment, Body, SinglePart};

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
    /// The file's size.
    pub size: u64,
    /// The file in base64 lines, encoded once for every message.
    encoded: Arc<[u8]>,
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
                let cannot = || format!("{at}: attachment {}: cannot read {}", p.display(), path.display());
                let file = std::fs::File::open(&path).with_context(cannot)?;
                let size = file.metadata().with_context(cannot)?.len();
                Ok(Shared {
                    name: file_name(&path),
                    content_type: content_type(&path),
                    size,
                    encoded: base64_lines(file, size).with_context(cannot)?.into(),
                })
            })
            .collect()
    }

    pub fn part(&self) -> SinglePart {
        Attachment::new(self.name.clone()).body(base64_body(self.encoded.to_vec()), self.content_type.clone())
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

/// One member file as a MIME part, encoded now from the file in chunks: the message holds
/// the file's base64 lines, never the raw file beside them.
pub fn member_part(path: &Path) -> Result<SinglePart> {
    let cannot = || format!("attachment {}: cannot read it", path.display());
    let file = std::fs::File::open(path).with_context(cannot)?;
    let size = file.metadata().with_context(cannot)?.len();
    let encoded = base64_lines(file, size).with_context(cannot)?;
    Ok(Attachment::new(file_name(path)).body(base64_body(encoded), content_type(path)))
}

/// Bytes per base64 line: 57 in, 76 out (RFC 2045's limit).
const LINE_IN: usize = 57;
/// Bytes read from a file at a time.
const CHUNK: usize = LINE_IN * 1024;

/// Base64 in 76-character lines joined by CRLF (the last without one), as lettre writes it,
/// read from `r` a chunk at a time. `size` is a hint for the output's length.
pub(crate) fn base64_lines(mut r: impl Read, size: u64) -> std::io::Result<Vec<u8>> {
    let lines = usize::try_from(size).unwrap_or(0).div_ceil(LINE_IN);
    let mut out = Vec::with_capacity(lines * 78);
    let mut chunk = vec![0u8; CHUNK];
    let mut line = [0u8; 76];
    loop {
        // Fill the chunk: a read may return less than asked before the end of the file.
        let mut n = 0;
        while n < CHUNK {
            match r.read(&mut chunk[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        for piece in chunk[..n].chunks(LINE_IN) {
            if !out.is_empty() {
                out.extend_from_slice(b"\r\n");
            }
            let len = base64::engine::general_purpose::STANDARD
                .encode_slice(piece, &mut line)
                .map_err(std::io::Error::other)?;
            out.extend_from_slice(&line[..len]);
        }
        if n < CHUNK {
            return Ok(out);
        }
    }
}

/// A part body already in base64 lines.
pub(crate) fn base64_body(encoded: Vec<u8>) -> Body {
    Body::dangerous_pre_encoded(encoded, ContentTransferEncoding::Base64)
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
    fn chunked_base64_is_lettres_own_encoding() {
        for len in [0, 1, 56, 57, 58, 114, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + i / 13) as u8).collect();
            // A reader that hands out at most 1000 bytes a call, as a pipe may.
            struct Trickle<'a>(&'a [u8]);
            impl Read for Trickle<'_> {
                fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                    let n = buf.len().min(self.0.len()).min(1000);
                    buf[..n].copy_from_slice(&self.0[..n]);
                    self.0 = &self.0[n..];
                    Ok(n)
                }
            }
            let ours = base64_lines(Trickle(&bytes), len as u64).unwrap();
            let lettre = Body::new_with_encoding(bytes.clone(), ContentTransferEncoding::Base64)
                .unwrap()
                .into_vec();
            assert_eq!(ours, lettre, "{len} bytes");
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
