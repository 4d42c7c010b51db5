//! `watch`'s HTTP endpoints (`--metrics-listen`): the routes in [`router`], served by
//! [`serve`] until the shutdown token is cancelled. Routing and HTTP/1 are axum's and hyper's;
//! what is ours is the accept loop, because a scrape endpoint must survive a full file-descriptor
//! table (back-off instead of a busy loop) and a flood of idle connections (a cap).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Connections served at once. Prometheus holds one per scrape target; 64 leaves room for
/// curl and a second Prometheus. Too low: scrapes queue behind idle clients; too high: a
/// client opening sockets in a loop can take that many file descriptors from the audit.
pub const MAX_CONNECTIONS: usize = 64;
/// Time allowed for a request head. Too short: slow links fail scrapes; too long: idle
/// connections hold a slot of [`MAX_CONNECTIONS`] that long.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// First pause after a failed accept (EMFILE and the like), doubled up to [`MAX_BACKOFF`].
/// Without it a full descriptor table turns the loop into a busy spin.
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// What the endpoints read: shared with the watcher, which replaces it after each cycle.
#[derive(Clone)]
pub struct Endpoints {
    /// The latest Prometheus exposition text.
    pub metrics: Arc<RwLock<String>>,
}

/// The routes. A new endpoint is one `.route(…)` line here and a handler below.
pub fn router(endpoints: Endpoints) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(endpoints)
}

async fn metrics(State(e): State<Endpoints>) -> impl IntoResponse {
    let text = e.metrics.read().map(|t| t.clone()).unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

async fn not_found() -> impl IntoResponse {
    (StatusCode::NOT_FOUND, "not found: try /metrics\n")
}

/// Serves `router` on `listener` until `shutdown` is cancelled (connections in progress then
/// finish on their own tasks).
pub async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut backoff = FIRST_BACKOFF;
    loop {
        let slot = tokio::select! {
            _ = shutdown.cancelled() => return,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => return, // the semaphore is never closed
            },
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let socket = match accepted {
            Ok((socket, _)) => {
                backoff = FIRST_BACKOFF;
                socket
            }
            Err(e) => {
                tracing::warn!("metrics endpoint: accept failed: {e}; retrying in {backoff:?}");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(socket), service)
                .await;
            if let Err(e) = served {
                tracing::debug!("metrics endpoint: connection ended: {e}");
            }
            drop(slot);
        });
    }
}
