//! `watch`'s HTTP endpoints (`--metrics-listen`): the routes in [`router`], served by
//! [`serve`] until the shutdown token is cancelled. Routing and HTTP/1 are axum's and hyper's;
//! what is ours is the accept loop, because a scrape endpoint must survive a full file-descriptor
//! table (back-off instead of a busy loop) and a flood of idle connections (a cap).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{Path, State};
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
    /// What the readiness gate knows from the latest cycle (`None` before the first).
    pub gate: Arc<RwLock<Option<super::gate::Snapshot>>>,
    /// `--gate-on`, `--gate-after`.
    pub gate_rules: super::gate::Rules,
}

/// The routes. A new endpoint is one `.route(…)` line here and a handler below.
pub fn router(endpoints: Endpoints) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/ready/{node}", get(ready))
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

/// `GET /ready/<node>`: 200 or 503 with a one-line reason (see `gate.rs`); 404 for a node
/// not in the cluster.
async fn ready(State(e): State<Endpoints>, Path(node): Path<String>) -> impl IntoResponse {
    let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    let verdict = match e.gate.read() {
        Ok(snapshot) => super::gate::verdict(snapshot.as_ref(), &e.gate_rules, &node, now),
        Err(_) => super::gate::Verdict::NotReady("the gate's state is unreadable".into()),
    };
    let (status, reason) = match verdict {
        super::gate::Verdict::Ready(r) => (StatusCode::OK, format!("ready: {r}")),
        super::gate::Verdict::NotReady(r) => {
            (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {r}"))
        }
        super::gate::Verdict::Unknown(r) => (StatusCode::NOT_FOUND, r),
    };
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{reason}\n"),
    )
}

async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        "not found: try /metrics or /ready/<node>\n",
    )
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
