//! `bulletin serve`: the one-click unsubscribe endpoint (RFC 8058) and, optionally, the static
//! archive, as a small hardened HTTP/1 server (axum on a single-threaded tokio).
//!
//! ```text
//! accept (connection cap) ─▶ hyper http1 (header read timeout) ─▶ guard (rate limit, headers,
//!   one log line) ─▶ /unsubscribe/{token}: GET confirm page, POST record | undo ─▶ record.rs
//!                 ─▶ /suppressions (bearer token): the rows and undos, for `suppress --pull`
//!                 ─▶ anything else: the archive's files, or a 404 page
//! ```
//!
//! Members are named by their token alone (see [`crate::unsubscribe`]); every unsubscribe is
//! on disk (the main suppression file, fsync'd) before the 200 leaves.

mod files;
mod guard;
mod pages;
mod record;
mod routes;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

pub(crate) use pages::Brand;
pub(crate) use record::Writer;

use crate::unsubscribe::Unsubscribe;

/// Largest request body taken (a one-click POST is 26 bytes).
pub(crate) const BODY_LIMIT: usize = 4 * 1024;
/// Connections open at once; more wait in the kernel's backlog.
pub(crate) const MAX_CONNECTIONS: usize = 1024;
/// Time open requests get to finish after SIGTERM or Ctrl-C.
const DRAIN: Duration = Duration::from_secs(10);

/// Everything the server needs, resolved by the command.
pub(crate) struct Options {
    pub listen: SocketAddr,
    pub unsubscribe: Unsubscribe,
    /// Suppression files; unsubscribes go into the first.
    pub suppress: Vec<PathBuf>,
    pub brand: Brand,
    /// The static archive to serve at `/`.
    pub archive: Option<PathBuf>,
    /// Take the client's address and scheme from `X-Forwarded-For` / `X-Forwarded-Proto`.
    pub trust_proxy: bool,
    /// Requests per minute per client address (0: no limit).
    pub per_client: u32,
    /// Time a client has to send a request's headers, and then its body.
    pub read_timeout: Duration,
}

/// What handlers share.
pub(crate) struct App {
    unsubscribe: Unsubscribe,
    writer: Writer,
    /// The suppression files (the first is where unsubscribes go), for `/suppressions`.
    suppress: Vec<PathBuf>,
    brand: Brand,
    archive: Option<PathBuf>,
    guard: guard::Guard,
    read_timeout: Duration,
}

/// Serves until SIGTERM or Ctrl-C, then lets open requests finish.
pub(crate) fn run(options: Options) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the server runtime")?;
    runtime.block_on(serve(options))
}

async fn serve(options: Options) -> Result<()> {
    let listener = listen(options.listen).with_context(|| format!("cannot listen on {}", options.listen))?;
    let local = listener.local_addr()?;
    let app = Arc::new(App {
        guard: guard::Guard::new(&options.brand, options.per_client, options.trust_proxy),
        unsubscribe: options.unsubscribe,
        writer: Writer::start(options.suppress.clone()),
        suppress: options.suppress,
        brand: options.brand,
        archive: options.archive,
        read_timeout: options.read_timeout,
    });
    let router = routes::router(app.clone());
    let shutdown = shutdown_signal();
    eprintln!("serve: listening on http://{local}/ (unsubscribe links: /unsubscribe/TOKEN)");

    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(options.read_timeout)
        .max_buf_size(64 * 1024);
    tokio::pin!(shutdown);
    let forget = app.guard.forget_idle();
    tokio::pin!(forget);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    eprintln!("serve: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
            () = &mut forget => unreachable!("forget_idle never returns"),
        };
        let service =
            tower::ServiceExt::map_request(router.clone(), move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                req
            });
        let service = hyper_util::service::TowerToHyperService::new(service);
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _ = connection.await;
            drop(slot);
        });
    }
    // Closed before saying so: once the line is out, new connections are refused.
    drop(listener);
    eprintln!("serve: stopping; letting open requests finish");
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        eprintln!("serve: some connections did not finish within {}s", DRAIN.as_secs());
    }
    eprintln!("serve: stopped");
    Ok(())
}

/// Binds `addr` with a backlog deep enough for a burst of connections (a mail provider
/// relaying a wave of one-click POSTs) while the server is busy: the standard 128 would turn
/// the rest away.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Watches SIGTERM and SIGINT from the moment it is called (not from the future's first poll:
/// a signal in between would stop the process the default way, without draining), and
/// resolves when one comes.
fn shutdown_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            (term, int) => {
                if let Some(e) = term.as_ref().err().or(int.as_ref().err()) {
                    eprintln!("serve: cannot watch SIGTERM or SIGINT ({e}); stop with Ctrl-C");
                }
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}
