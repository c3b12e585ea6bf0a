//! The routes: `/unsubscribe/{token}` (GET: the question; POST: one-click or the page's
//! button, or an undo), the same with `?token=` for links made before tokens went into the path,
//! and everything else from the archive or a 404 page.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};

use super::guard;
use super::{App, BODY_LIMIT, files, pages};

pub(super) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/unsubscribe/{token}", get(confirm_path).post(post_path))
        .route("/unsubscribe", get(confirm_query).post(post_query))
        .route(crate::pull::PATH, get(suppressions))
        .method_not_allowed_fallback(wrong_method)
        .fallback(any(files::serve))
        .layer(axum::middleware::from_fn_with_state(app.clone(), guard::guard))
        .with_state(app)
}

#[derive(serde::Deserialize)]
struct TokenQuery {
    token: String,
}

/// A page with `status`.
pub(super) fn refuse(app: &App, status: u16, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    html(code, pages::error(&app.brand, status, message))
}

fn html(code: StatusCode, body: String) -> Response {
    let mut r = (code, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

fn unknown_token(app: &App) -> Response {
    refuse(
        app,
        404,
        "This unsubscribe link is not valid. Please use the link from one of our newsletters exactly as it is.",
    )
}

async fn wrong_method(State(app): State<Arc<App>>) -> Response {
    let mut r = refuse(&app, 405, "This address takes GET and POST only.");
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
    r
}

async fn confirm_path(State(app): State<Arc<App>>, Path(token): Path<String>) -> Response {
    confirm(&app, &token)
}

async fn confirm_query(State(app): State<Arc<App>>, query: Result<Query<TokenQuery>, QueryRejection>) -> Response {
    match query {
        Ok(Query(q)) => confirm(&app, &q.token),
        Err(_) => unknown_token(&app),
    }
}

fn confirm(app: &App, token: &str) -> Response {
    match app.unsubscribe.open(token) {
        Some(member) => html(StatusCode::OK, pages::confirm(&app.brand, &pages::mask(member.key()))),
        None => unknown_token(app),
    }
}

async fn post_path(State(app): State<Arc<App>>, Path(token): Path<String>, req: Request) -> Response {
    post(&app, &token, req).await
}

async fn post_query(
    State(app): State<Arc<App>>,
    query: Result<Query<TokenQuery>, QueryRejection>,
    req: Request,
) -> Response {
    match query {
        Ok(Query(q)) => post(&app, &q.token, req).await,
        Err(_) => unknown_token(&app),
    }
}

/// What a POST asks.
#[derive(Debug, PartialEq)]
enum Ask {
    /// `List-Unsubscribe=One-Click`, from a mail client or the page's button.
    Unsubscribe,
    /// `undo=DATE&sig=SIG`, from the done page.
    Undo { date: String, sig: String },
}

async fn post(app: &App, token: &str, req: Request) -> Response {
    // The body is read (within its limits) whatever the token, so the connection stays usable
    // for the client's next request.
    let headers = req.headers().clone();
    let body = match read_body(req.into_body(), &headers, app.read_timeout).await {
        Ok(b) => b,
        Err((status, message)) => return refuse(app, status, message),
    };
    if app.unsubscribe.is_probe(token) {
        return probe(app, &headers, &body);
    }
    let Some((member, campaign)) = app.unsubscribe.open_with_campaign(token) else {
        return unknown_token(app);
    };
    let Some(ask) = parse(&headers, &body) else {
        return refuse(app, 400, "This request does not say what to do.");
    };
    let masked = pages::mask(member.key());
    match ask {
        Ask::Unsubscribe => match app.writer.add(member.clone(), campaign).await {
            Ok(added) => {
                let sig = added.new.then(|| app.unsubscribe.sign(&[token, &added.date])).flatten();
                let undo = sig.as_deref().map(|s| (added.date.as_str(), s));
                html(StatusCode::OK, pages::done(&app.brand, &masked, undo))
            }
            Err(e) => failed(app, &e),
        },
        Ask::Undo { date, sig } => {
            if !app.unsubscribe.check_signature(&[token, &date], &sig) {
                return refuse(app, 400, "This undo button is not valid.");
            }
            match app.writer.undo(member, date).await {
                Ok(undone) => html(StatusCode::OK, pages::resubscribed(&app.brand, &masked, undone)),
                Err(e) => failed(app, &e),
            }
        }
    }
}

/// `bulletin doctor`'s probe: a one-click POST is answered as a member's would be (200), and
/// nothing is recorded.
fn probe(app: &App, headers: &HeaderMap, body: &[u8]) -> Response {
    match parse(headers, body) {
        Some(Ask::Unsubscribe) => (
            StatusCode::OK,
            "One-click unsubscribe works here (a probe from bulletin doctor: nothing was recorded).\n",
        )
            .into_response(),
        _ => refuse(app, 400, "This request does not say what to do."),
    }
}

/// `GET /suppressions` with the pull token: the main suppression file's rows and its undo log
/// as JSON, for `bulletin suppress --pull`.
async fn suppressions(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !given.is_some_and(|t| app.unsubscribe.check_pull_token(t)) {
        let mut r = refuse(
            &app,
            401,
            "This address needs the pull token that `bulletin suppress --pull` sends.",
        );
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    let files = app.suppress.clone();
    let export = tokio::task::spawn_blocking(move || crate::pull::export(&files)).await;
    match export
        .map_err(|e| e.to_string())
        .and_then(|e| e.map_err(|e| format!("{e:#}")))
    {
        Ok(export) => match serde_json::to_vec(&export) {
            Ok(body) => {
                let mut r = (StatusCode::OK, body).into_response();
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                r
            }
            Err(e) => export_failed(&app, &e.to_string()),
        },
        Err(e) => export_failed(&app, &e),
    }
}

fn export_failed(app: &App, why: &str) -> Response {
    eprintln!("serve: error: cannot read the suppression file: {why}");
    refuse(
        app,
        500,
        "The suppression list cannot be read now. Please try again later.",
    )
}

/// Nothing was recorded: say so, and log why (the error names the file, not the member).
fn failed(app: &App, why: &str) -> Response {
    eprintln!("serve: error: cannot record: {why}");
    refuse(app, 500, "We could not record your request. Please try again later.")
}

/// The body, up to [`BODY_LIMIT`], within `timeout`.
async fn read_body(body: Body, headers: &HeaderMap, timeout: Duration) -> Result<Vec<u8>, (u16, &'static str)> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return Err((413, "This request is too large."));
    }
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, BODY_LIMIT)).await {
        Err(_) => Err((408, "This request took too long to arrive.")),
        Ok(Err(_)) => Err((413, "This request is too large.")),
        Ok(Ok(b)) => Ok(b.to_vec()),
    }
}

/// Reads a form body: `application/x-www-form-urlencoded`, or `multipart/form-data` (RFC 8058
/// allows both) for the one-click field.
fn parse(headers: &HeaderMap, body: &[u8]) -> Option<Ask> {
    let kind = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if kind.starts_with("multipart/form-data") {
        let text = String::from_utf8_lossy(body);
        let one_click = text.contains("name=\"List-Unsubscribe\"")
            && text
                .split("name=\"List-Unsubscribe\"")
                .nth(1)
                .and_then(|rest| rest.split("\r\n\r\n").nth(1))
                .is_some_and(|value| value.starts_with("One-Click"));
        return one_click.then_some(Ask::Unsubscribe);
    }
    let mut undo = None;
    let mut sig = None;
    let mut one_click = false;
    for (k, v) in url::form_urlencoded::parse(body) {
        match (&*k, &*v) {
            ("List-Unsubscribe", "One-Click") => one_click = true,
            ("undo", d) => undo = Some(d.to_owned()),
            ("sig", s) => sig = Some(s.to_owned()),
            _ => {}
        }
    }
    match (one_click, undo, sig) {
        (true, None, None) => Some(Ask::Unsubscribe),
        (false, Some(date), Some(sig)) => Some(Ask::Undo { date, sig }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &str) -> Option<Ask> {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        parse(&h, body.as_bytes())
    }

    #[test]
    fn bodies_say_what_to_do_or_nothing() {
        assert_eq!(form("List-Unsubscribe=One-Click"), Some(Ask::Unsubscribe));
        assert_eq!(
            form("undo=2026-01-01T00%3A00%3A00Z&sig=abc"),
            Some(Ask::Undo {
                date: "2026-01-01T00:00:00Z".into(),
                sig: "abc".into()
            })
        );
        for bad in [
            "",
            "List-Unsubscribe=Two-Clicks",
            "undo=x",
            "List-Unsubscribe=One-Click&undo=x&sig=y",
        ] {
            assert_eq!(form(bad), None, "{bad}");
        }
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("multipart/form-data; boundary=X"),
        );
        let body = "--X\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--X--\r\n";
        assert_eq!(parse(&h, body.as_bytes()), Some(Ask::Unsubscribe));
    }
}
