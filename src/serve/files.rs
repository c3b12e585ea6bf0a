//! The static archive (`--archive DIR`) at `/`: files under DIR only. Paths with `..`, a
//! backslash or a NUL are refused before the file system is asked, and what the file system
//! finds is checked to be under DIR once symbolic links are resolved.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::App;
use super::guard::ArchiveFile;
use super::routes::refuse;

/// Largest file served (an archive page is tens of KB).
const FILE_LIMIT: u64 = 16 * 1024 * 1024;

pub(super) async fn serve(State(app): State<Arc<App>>, req: Request) -> Response {
    let not_found = || refuse(&app, 404, "There is no page at this address.");
    let Some(root) = app.archive.clone() else {
        return not_found();
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = refuse(&app, 405, "This address takes GET only.");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let Some(relative) = relative_path(req.uri().path()) else {
        return not_found();
    };
    let head = req.method() == Method::HEAD;
    let found = tokio::task::spawn_blocking(move || read(&root, &relative)).await;
    let Ok(Some((bytes, kind))) = found else {
        return not_found();
    };
    let mut r = if head {
        let mut r = StatusCode::OK.into_response();
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        r
    } else {
        (StatusCode::OK, bytes).into_response()
    };
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    r.extensions_mut().insert(ArchiveFile);
    r
}

/// The request path as a relative path of normal components, or `None` for anything else.
fn relative_path(path: &str) -> Option<PathBuf> {
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8().ok()?;
    if decoded.contains(['\\', '\0']) {
        return None;
    }
    let mut out = PathBuf::new();
    for part in decoded.split('/').filter(|p| !p.is_empty()) {
        let mut parts = Path::new(part).components();
        match (parts.next(), parts.next()) {
            (Some(Component::Normal(p)), None) if !part.starts_with('.') => out.push(p),
            _ => return None,
        }
    }
    Some(out)
}

/// The file at `relative` under `root` (a folder's `index.html`), with its content type.
fn read(root: &Path, relative: &Path) -> Option<(Vec<u8>, &'static str)> {
    let root = root.canonicalize().ok()?;
    let mut path = root.join(relative).canonicalize().ok()?;
    if !path.starts_with(&root) {
        return None;
    }
    if path.is_dir() {
        path = path.join("index.html").canonicalize().ok()?;
        if !path.starts_with(&root) {
            return None;
        }
    }
    let meta = std::fs::metadata(&path).ok()?;
    if !meta.is_file() || meta.len() > FILE_LIMIT {
        return None;
    }
    Some((std::fs::read(&path).ok()?, content_type(&path)))
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" | "htm" => "text/html; charset=utf-8",
        "xml" => "application/atom+xml; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_pass() {
        assert_eq!(relative_path("/"), Some(PathBuf::new()));
        assert_eq!(relative_path("/a/b.html"), Some(PathBuf::from("a/b.html")));
        for bad in [
            "/../etc/passwd",
            "/a/%2e%2e/b",
            "/%2e%2e%2fetc",
            "/a\\b",
            "/.git/config",
            "/a/%00",
        ] {
            assert_eq!(relative_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn links_out_of_the_root_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("public");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(dir.path().join("secret.txt"), "no").unwrap();
        std::fs::write(root.join("index.html"), "yes").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("leak.txt")).unwrap();
        assert_eq!(read(&root, Path::new("")).unwrap().0, b"yes");
        assert!(read(&root, Path::new("leak.txt")).is_none());
        assert!(read(&root, Path::new("missing.html")).is_none());
    }
}
