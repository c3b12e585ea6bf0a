//! What every request passes through: the per-client rate limit, the security headers, and
//! the one log line (method, path with the token cut, status, time; never an address).

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::App;
use super::pages::Brand;

/// The client as the request shows it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Client {
    pub ip: Option<IpAddr>,
    pub https: bool,
}

pub(super) struct Guard {
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    trust_proxy: bool,
    /// For the pages of `serve` itself: only their own stylesheet, forms back to themselves.
    csp_pages: HeaderValue,
    /// For archive files: newsletters have inline style attributes and remote images.
    csp_archive: HeaderValue,
}

impl Guard {
    pub(super) fn new(brand: &Brand, per_client: u32, trust_proxy: bool) -> Guard {
        let limiter = NonZeroU32::new(per_client).map(|n| {
            // The whole minute's allowance may come at once (a mail provider relaying a wave
            // of one-click POSTs), then it refills steadily.
            RateLimiter::keyed(Quota::per_minute(n).allow_burst(n))
        });
        let pages = format!(
            "default-src 'none'; style-src {}; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
            brand.style_hash()
        );
        let archive = "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; \
                       form-action 'none'; frame-ancestors 'none'; base-uri 'none'";
        Guard {
            limiter,
            trust_proxy,
            csp_pages: HeaderValue::from_str(&pages).expect("a header-safe policy"),
            csp_archive: HeaderValue::from_static(archive),
        }
    }

    /// Forgets clients that have been quiet for a while, every minute, so the limiter's memory
    /// does not grow with every address that ever called.
    pub(super) async fn forget_idle(&self) {
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            if let Some(l) = &self.limiter {
                l.retain_recent();
                l.shrink_to_fit();
            }
        }
    }

    /// The client: the peer, or with `--trust-proxy` what the proxy says (the last address
    /// of `X-Forwarded-For` is the one the proxy itself added; earlier ones are the client's
    /// word and are ignored).
    pub(super) fn client(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Client {
        let mut client = Client {
            ip: peer.map(|p| p.ip()),
            https: false,
        };
        if self.trust_proxy {
            let last = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .next_back()
                .and_then(|ip| ip.trim().parse().ok());
            if let Some(ip) = last {
                client.ip = Some(ip);
            }
            client.https = headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
        }
        client
    }
}

/// Marks a response as an archive file, for its Content-Security-Policy.
#[derive(Debug, Clone, Copy)]
pub(super) struct ArchiveFile;

pub(super) async fn guard(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let client = app.guard.client(peer, req.headers());
    req.extensions_mut().insert(client);
    let method = req.method().clone();
    let path = loggable(req.uri().path());
    let limited = match (&app.guard.limiter, client.ip) {
        (Some(l), Some(ip)) => l.check_key(&ip).is_err(),
        _ => false,
    };
    let mut response = if limited {
        let mut r = super::routes::refuse(&app, 429, "Please wait a minute and try again.");
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        r
    } else {
        next.run(req).await
    };
    let archive = response.extensions().get::<ArchiveFile>().is_some();
    let h = response.headers_mut();
    let csp = if archive {
        &app.guard.csp_archive
    } else {
        &app.guard.csp_pages
    };
    h.insert(header::CONTENT_SECURITY_POLICY, csp.clone());
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if !archive {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if client.https {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    eprintln!(
        "serve: {method} {path} {} {:.1}ms",
        response.status().as_u16(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    response.into_response()
}

/// The path as logged: a token is cut (it names a member to whoever holds the secret), and
/// the rest is cut short and kept to printable ASCII.
fn loggable(path: &str) -> String {
    let path = match path.strip_prefix("/unsubscribe/") {
        Some(rest) if !rest.is_empty() => "/unsubscribe/TOKEN".to_owned(),
        _ => path.to_owned(),
    };
    path.chars()
        .take(100)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}
