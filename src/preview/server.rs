//! The live preview's HTTP server (axum on a single-threaded tokio runtime, bound to
//! 127.0.0.1), told of changes by its file watcher ([`super::watch`]).

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use futures_util::stream::Stream;
use serde::Deserialize;
use tokio::sync::broadcast;

use super::page::PAGE;
use super::view::{Inputs, View, build};
use super::watch::{Watching, folder};

/// How `serve` listens.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// 0: any free port.
    pub port: u16,
    /// Open the page in the default browser.
    pub open: bool,
    /// The member shown first.
    pub row: Option<u64>,
    pub to: Option<String>,
    /// The language variant shown first (default: each member's own).
    pub lang: Option<String>,
}

struct App {
    inputs: Inputs,
    options: Options,
    /// Bumped on every change of a watched file.
    version: AtomicU64,
    changed: broadcast::Sender<u64>,
    /// The last render that worked, shown under the error of a broken edit.
    last_good: Mutex<Option<View>>,
    /// Set once the watcher runs (it needs the `App` to announce changes to).
    watching: Mutex<Option<Watching>>,
}

/// Serves until the process is stopped (Ctrl-C).
pub(crate) fn serve(inputs: Inputs, options: Options) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the preview server")?;
    runtime.block_on(run(inputs, options))
}

async fn run(inputs: Inputs, options: Options) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port))
        .await
        .with_context(|| {
            format!(
                "cannot listen on 127.0.0.1:{}: choose another with --port",
                options.port
            )
        })?;
    let url = format!("http://{}/", listener.local_addr()?);
    let (changed, _) = broadcast::channel(16);
    let app = Arc::new(App {
        inputs,
        options,
        version: AtomicU64::new(0),
        changed,
        last_good: Mutex::new(None),
        watching: Mutex::new(None),
    });
    watch(&app)?;
    let router = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/api/view", get(view))
        .route("/events", get(events))
        .route("/cid/{cid}", get(image))
        .route("/email", get(email))
        .with_state(Arc::clone(&app));
    println!("live preview: {url}");
    eprintln!("watching the newsletter, its folder, the lists and the settings; Ctrl-C stops");
    if app.options.open {
        let opener = if cfg!(target_os = "macos") { "open" } else { "xdg-open" };
        if let Err(e) = std::process::Command::new(opener).arg(&url).spawn() {
            eprintln!("warning: cannot run {opener} to open {url}: {e}");
        }
    }
    axum::serve(listener, router)
        .await
        .context("the preview server stopped")
}

/// Watches what the preview is built from and announces each change: the newsletter's folder
/// and the lists' folders with their subfolders (images, variants, members' attachments), the
/// settings' folder; each render then adds the folders of the files it read elsewhere
/// ([`View::files`]: settings found above, images and attachments outside those folders).
fn watch(app: &Arc<App>) -> Result<()> {
    let notify_app = Arc::clone(app);
    let mut watching = Watching::start(move |_| {
        let v = notify_app.version.fetch_add(1, Ordering::SeqCst) + 1;
        // No page listening is no error.
        let _ = notify_app.changed.send(v);
    })?;
    let inputs = &app.inputs;
    let config_dir = inputs.config.as_deref().map_or_else(|| PathBuf::from("."), folder);
    watching.add(&folder(&inputs.newsletter), true)?;
    watching.add(&config_dir, false)?;
    let project = config_dir.canonicalize().ok();
    for list in &inputs.lists {
        // Subfolders only of a list folder inside the project: not of the project's own folder
        // (build output, version control) nor of one outside it (a home folder); the members'
        // files there are added as they are read.
        let dir = folder(list);
        let inside = match (dir.canonicalize().ok(), &project) {
            (Some(d), Some(p)) => d.starts_with(p) && d != *p,
            _ => false,
        };
        watching.add(&dir, inside)?;
    }
    *app.watching.lock().unwrap_or_else(PoisonError::into_inner) = Some(watching);
    Ok(())
}

/// Watches the folders of `files` too (see [`watch`]); a failure is a warning, not the end.
fn watch_more(app: &App, files: &[PathBuf]) {
    let mut watching = app.watching.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(w) = watching.as_mut() else { return };
    for f in files {
        if let Err(e) = w.add(&folder(f), false) {
            eprintln!("warning: {e:#}; changes there do not rebuild the preview");
        }
    }
}

#[derive(Debug, Deserialize)]
struct Pick {
    row: Option<u64>,
    to: Option<String>,
    /// A language tag; empty: the member's own.
    lang: Option<String>,
}

/// The render for the picked member as JSON: `{version, ok, error, view}`; when the render
/// fails, `view` is the last one that worked.
async fn view(State(app): State<Arc<App>>, Query(pick): Query<Pick>) -> Response {
    let version = app.version.load(Ordering::SeqCst);
    let (row, to) = match (pick.row, pick.to.filter(|t| !t.trim().is_empty())) {
        (None, None) => (app.options.row, app.options.to.clone()),
        (row, to) => (row, to),
    };
    let lang = match pick.lang {
        None => app.options.lang.clone(),
        Some(l) => Some(l).filter(|l| !l.trim().is_empty()),
    };
    let inputs = app.inputs.clone();
    // On the blocking pool: rendering reads files; a panic there is an error shown, not a crash.
    let result = tokio::task::spawn_blocking(move || build(&inputs, row, to.as_deref(), lang.as_deref()))
        .await
        .unwrap_or_else(|e| Err(format!("internal error while rendering: {e}")));
    let mut last_good = app.last_good.lock().unwrap_or_else(PoisonError::into_inner);
    let body = match result {
        Ok(v) => {
            watch_more(&app, &v.files);
            let json = serde_json::json!({ "version": version, "ok": true, "error": null, "view": &v });
            *last_good = Some(v);
            json
        }
        Err(error) => serde_json::json!({ "version": version, "ok": false, "error": error, "view": &*last_good }),
    };
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// Server-sent events: `reload` with the new version after every change.
async fn events(State(app): State<Arc<App>>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = app.changed.subscribe();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(v) => return Some((Ok(Event::default().event("reload").data(v.to_string())), rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// The last render's HTML alone, as a page of its own.
async fn email(State(app): State<Arc<App>>) -> Response {
    let html = app
        .last_good
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .map(|v| v.html.clone());
    match html {
        Some(html) => Html(html).into_response(),
        None => (StatusCode::NOT_FOUND, "nothing rendered yet").into_response(),
    }
}

/// An embedded image of the last render.
async fn image(State(app): State<Arc<App>>, UrlPath(cid): UrlPath<String>) -> Response {
    let found = app
        .last_good
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .and_then(|v| v.images.get(&cid).cloned());
    match found {
        Some((content_type, bytes)) => ([(header::CONTENT_TYPE, content_type)], bytes.to_vec()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
