//! A js-ceramic node's HTTP API (`/api/v0`), the read side the audit needs: the healthcheck,
//! a stream's state and log (`GET /streams/:id?sync=2`), its commits (`GET /commits/:id`) and
//! batched loads (`POST /multiqueries`). Shapes as served by `@ceramicnetwork/cli` 6.11
//! (`../shared/reference/real-ceramic.md`, "HTTP API shapes").
//!
//! Reads are not passive on js-ceramic: even with `sync=2` (never sync) a node that lacks a
//! stream fetches it from its peers and indexes it. Callers must therefore decide presence from
//! the index first and ask a node only about streams it already holds. This client never sends
//! `pin`.
//!
//! Every request has a timeout; transient failures (connection errors, timeouts, a body cut
//! short, 429 and 502–504) are retried with exponential backoff; requests to one node are
//! bounded in concurrency and paced to a maximum rate. Any other status or an unexpected body
//! is an error naming the node, the endpoint and the stream.

pub mod admin;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value as Json;
use tokio::sync::{Mutex, Semaphore};

/// How a client treats one node.
#[derive(Clone, Debug)]
pub struct ApiOptions {
    /// Per request, connection included.
    pub timeout: Duration,
    /// Extra attempts after a transient failure.
    pub retries: u32,
    /// Requests in flight at once to this node.
    pub concurrency: usize,
    /// Requests started per second at most (`None`: unpaced).
    pub max_rate: Option<f64>,
}

impl Default for ApiOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            retries: 3,
            concurrency: 4,
            max_rate: Some(50.0),
        }
    }
}

/// First pause before a retry; it doubles with each attempt, up to [`MAX_BACKOFF`]. Too short
/// hammers a node that is restarting (a js-ceramic daemon takes 4–7 s); too long slows audits
/// over flaky links.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("node {node}: {endpoint}{}: {message}", stream_part(.stream))]
    Unreachable {
        node: String,
        endpoint: String,
        stream: Option<String>,
        message: String,
    },
    #[error("node {node}: {endpoint}{}: HTTP {status}: {body}", stream_part(.stream))]
    Status {
        node: String,
        endpoint: String,
        stream: Option<String>,
        status: u16,
        /// The node's own error text (`{"error": …}`) when it sent one, else the body's start.
        body: String,
    },
    #[error("node {node}: {endpoint}{}: unexpected response: {message}", stream_part(.stream))]
    Malformed {
        node: String,
        endpoint: String,
        stream: Option<String>,
        message: String,
    },
    #[error("node {node}: bad API URL {url:?}: {message}")]
    BadUrl {
        node: String,
        url: String,
        message: String,
    },
}

fn stream_part(stream: &Option<String>) -> String {
    stream
        .as_ref()
        .map(|s| format!(" (stream {s})"))
        .unwrap_or_default()
}

/// One entry of a stream's log.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct LogEntry {
    pub cid: String,
    /// 0 genesis, 1 signed data, 2 anchor.
    #[serde(rename = "type")]
    pub kind: u8,
    /// For an anchor commit: the anchor's block timestamp (unix seconds), when the node has it.
    #[serde(default)]
    pub timestamp: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub controllers: Vec<String>,
    #[serde(default)]
    pub model: Option<String>,
}

/// A stream's state as a node serializes it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamState {
    #[serde(rename = "type")]
    pub stream_type: u64,
    #[serde(default)]
    pub content: Json,
    pub metadata: Metadata,
    #[serde(default)]
    pub anchor_status: Option<String>,
    pub log: Vec<LogEntry>,
}

impl StreamState {
    /// The tip: the last log entry's CID.
    pub fn tip(&self) -> Option<&str> {
        self.log.last().map(|e| e.cid.as_str())
    }
}

/// One commit as `GET /commits/:id` returns it: its CID and its serialized value (a signed
/// commit's `{jws, linkedBlock}` or an anchor commit's `{id, path, prev, proof}`), kept as JSON
/// to be posted back unchanged by a repair.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct CommitRecord {
    pub cid: String,
    pub value: Json,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StreamResponse {
    stream_id: String,
    state: StreamState,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CommitsResponse {
    stream_id: String,
    commits: Vec<CommitRecord>,
}

/// The `opts` of a write: never request an anchor (another node's anchor service would not be
/// trusted anyway); publishing the commit over pubsub is the caller's choice.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteOptions {
    pub publish: bool,
}

impl WriteOptions {
    fn json(self) -> Json {
        serde_json::json!({"anchor": false, "publish": self.publish})
    }
}

/// A client for every node of the cluster that has an `api_url`, by node name. A URL the client
/// refuses (checked when the config is read, so rare) is logged and the node left out: callers
/// treat it as a node without an API.
pub fn clients(
    config: &crate::config::ClusterConfig,
    options: &ApiOptions,
) -> BTreeMap<String, NodeApi> {
    config
        .nodes
        .iter()
        .filter_map(|n| {
            match NodeApi::with_ca(
                &n.name,
                n.api_url.as_ref()?,
                n.api_ca_file.as_deref(),
                options.clone(),
            ) {
                Ok(api) => Some((n.name.clone(), api)),
                Err(e) => {
                    tracing::warn!("{e}");
                    None
                }
            }
        })
        .collect()
}

/// A client for one node.
pub struct NodeApi {
    node: String,
    base: reqwest::Url,
    http: reqwest::Client,
    options: ApiOptions,
    in_flight: Arc<Semaphore>,
    /// When the next request may start (pacing to `max_rate`).
    next_start: Mutex<Instant>,
}

impl NodeApi {
    /// `base_url` is the node's API root, e.g. `http://127.0.0.1:7007` (`/api/v0` is added).
    /// `https://` URLs are checked against the system's CA store.
    pub fn new(node: &str, base_url: &str, options: ApiOptions) -> Result<Self, ApiError> {
        Self::with_ca(node, base_url, None, options)
    }

    /// As [`NodeApi::new`], with `https://` checked against the CA certificates (PEM) in
    /// `ca_file` instead of the system's store. `user:pass@` in the URL is sent as HTTP basic
    /// authentication and never printed.
    pub fn with_ca(
        node: &str,
        base_url: &str,
        ca_file: Option<&std::path::Path>,
        options: ApiOptions,
    ) -> Result<Self, ApiError> {
        let bad = |message: String| ApiError::BadUrl {
            node: node.to_string(),
            url: crate::config::redact_dsn(base_url),
            message,
        };
        let mut base = reqwest::Url::parse(base_url).map_err(|e| bad(e.to_string()))?;
        let tls = match base.scheme() {
            "https" => crate::tls::root_store(ca_file)
                .and_then(|roots| crate::tls::client_config(Some((roots, true)))),
            // No certificate is trusted: a redirect to https cannot reach an unchecked server.
            "http" => crate::tls::client_config(Some((rustls::RootCertStore::empty(), true))),
            other => {
                return Err(bad(format!(
                    "scheme {other} is not supported (expected http or https)"
                )))
            }
        }
        .map_err(bad)?;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.timeout)
            .tls_backend_preconfigured(tls)
            .build()
            .map_err(|e| bad(crate::tls::error_chain(&e)))?;
        Ok(Self {
            node: node.to_string(),
            base,
            http,
            in_flight: Arc::new(Semaphore::new(options.concurrency.max(1))),
            options,
            next_start: Mutex::new(Instant::now()),
        })
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// `GET /api/v0/node/healthcheck?checkIpfs=false`: the node answers `Alive!`.
    pub async fn healthcheck(&self) -> Result<(), ApiError> {
        let endpoint = "GET /api/v0/node/healthcheck";
        let body = self
            .send(endpoint, None, |c, url| {
                c.get(url.join("api/v0/node/healthcheck?checkIpfs=false"))
            })
            .await?;
        let text = String::from_utf8_lossy(&body);
        if text.trim() == "Alive!" {
            Ok(())
        } else {
            Err(self.malformed(
                endpoint,
                None,
                format!("expected `Alive!`, got {:?}", clip(&text)),
            ))
        }
    }

    /// `GET /api/v0/streams/:id?sync=2`: the stream's state as the node holds it, without
    /// querying the network for a newer tip. See the module note: the node loads a stream it
    /// lacks even so.
    pub async fn stream(&self, stream_id: &str) -> Result<StreamState, ApiError> {
        let r: StreamResponse = self
            .get_about(
                "streams",
                stream_id,
                Some("sync=2"),
                |r: &StreamResponse| &r.stream_id,
            )
            .await?;
        Ok(r.state)
    }

    /// `GET /api/v0/commits/:id`: the stream's commits in log order.
    pub async fn commits(&self, stream_id: &str) -> Result<Vec<CommitRecord>, ApiError> {
        let r: CommitsResponse = self
            .get_about("commits", stream_id, None, |r: &CommitsResponse| {
                &r.stream_id
            })
            .await?;
        Ok(r.commits)
    }

    /// `GET /api/v0/<resource>/<stream id>[?query]`, parsed, and checked to be about that
    /// stream. The id travels as one escaped path segment, whatever an index row held.
    async fn get_about<T: serde::de::DeserializeOwned>(
        &self,
        resource: &str,
        stream_id: &str,
        query: Option<&str>,
        answered: impl Fn(&T) -> &String,
    ) -> Result<T, ApiError> {
        let endpoint = format!("GET /api/v0/{resource}");
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty()
                .extend(["api", "v0", resource, stream_id]);
        }
        url.set_query(query);
        let body = self
            .send(&endpoint, Some(stream_id), |c, _| c.get(url.clone()))
            .await?;
        let r: T = self.parse(&endpoint, Some(stream_id), &body)?;
        if answered(&r) != stream_id {
            return Err(self.malformed(
                &endpoint,
                Some(stream_id),
                format!("answered for stream {}", answered(&r)),
            ));
        }
        Ok(r)
    }

    /// `POST /api/v0/multiqueries` with `sync: 2` for each id: the states the node could load,
    /// keyed by stream id. A missing key means that load failed (the node omits failures). The
    /// node is given three quarters of this client's timeout (its default is 30 s, as long as
    /// ours): a stream it lacks makes it search the network until then, and it must answer
    /// with what it has before the client gives up on the whole batch.
    pub async fn multiquery(
        &self,
        stream_ids: &[String],
    ) -> Result<BTreeMap<String, StreamState>, ApiError> {
        let endpoint = "POST /api/v0/multiqueries";
        let queries: Vec<Json> = stream_ids
            .iter()
            .map(|id| serde_json::json!({"streamId": id, "opts": {"sync": 2}}))
            .collect();
        let node_ms = (self.options.timeout.as_millis() * 3 / 4).max(1) as u64;
        let body = serde_json::json!({ "queries": queries, "timeout": node_ms });
        let raw = self
            .send(endpoint, None, |c, url| {
                c.post(url.join("api/v0/multiqueries")).json(&body)
            })
            .await?;
        let map: BTreeMap<String, StreamState> = self.parse(endpoint, None, &raw)?;
        if let Some(extra) = map.keys().find(|k| !stream_ids.contains(k)) {
            return Err(self.malformed(
                endpoint,
                None,
                format!("answered for stream {extra}, which was not asked for"),
            ));
        }
        Ok(map)
    }

    /// `GET /api/v0/streams/:id?sync=1`: the node queries the network for the stream's tip and
    /// re-indexes its state (observed on 6.11: a stale or deleted index row is rewritten). A
    /// write, for repairs only.
    pub async fn load_synced(&self, stream_id: &str) -> Result<StreamState, ApiError> {
        let r: StreamResponse = self
            .get_about(
                "streams",
                stream_id,
                Some("sync=1"),
                |r: &StreamResponse| &r.stream_id,
            )
            .await?;
        Ok(r.state)
    }

    /// `POST /api/v0/commits`: applies one commit (its value as `GET /commits` serves it) to
    /// the stream. Idempotent on the node: a commit it already has leaves the state as it is.
    pub async fn apply_commit(
        &self,
        stream_id: &str,
        commit: &Json,
        opts: WriteOptions,
    ) -> Result<StreamState, ApiError> {
        let endpoint = "POST /api/v0/commits";
        let body =
            serde_json::json!({"streamId": stream_id, "commit": commit, "opts": opts.json()});
        self.post_about(endpoint, "api/v0/commits", stream_id, &body)
            .await
    }

    /// `POST /api/v0/streams`: creates (or loads) the stream from its genesis commit. Posting
    /// a stream the node knows returns its current state.
    pub async fn create_stream(
        &self,
        stream_id: &str,
        stream_type: u64,
        genesis: &Json,
        opts: WriteOptions,
    ) -> Result<StreamState, ApiError> {
        let endpoint = "POST /api/v0/streams";
        let body =
            serde_json::json!({"type": stream_type, "genesis": genesis, "opts": opts.json()});
        self.post_about(endpoint, "api/v0/streams", stream_id, &body)
            .await
    }

    async fn post_about(
        &self,
        endpoint: &str,
        path: &str,
        stream_id: &str,
        body: &Json,
    ) -> Result<StreamState, ApiError> {
        let raw = self
            .send(endpoint, Some(stream_id), |c, url| {
                c.post(url.join(path)).json(body)
            })
            .await?;
        let r: StreamResponse = self.parse(endpoint, Some(stream_id), &raw)?;
        if r.stream_id != stream_id {
            return Err(self.malformed(
                endpoint,
                Some(stream_id),
                format!("answered for stream {}", r.stream_id),
            ));
        }
        Ok(r.state)
    }

    /// `GET /api/v0/admin/pins`: every stream the node's state store holds (pinned), read
    /// without loading any of them. Needs an admin DID's key; a fresh single-use code is fetched
    /// from `GET /api/v0/admin/getCode` for each call (codes expire after 60 s).
    pub async fn pinned(&self, key: &admin::AdminKey) -> Result<BTreeSet<String>, ApiError> {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 0;
        loop {
            match self.pinned_once(key).await {
                Err(ApiError::Unreachable { .. }) if attempt < self.options.retries => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    async fn pinned_once(&self, key: &admin::AdminKey) -> Result<BTreeSet<String>, ApiError> {
        #[derive(Deserialize)]
        struct Code {
            code: String,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Pins {
            pinned_stream_ids: Vec<String>,
        }
        let endpoint = "GET /api/v0/admin/getCode";
        let raw = self
            .send(endpoint, None, |c, url| {
                c.get(url.join("api/v0/admin/getCode"))
            })
            .await?;
        let code: Code = self.parse(endpoint, None, &raw)?;
        let endpoint = "GET /api/v0/admin/pins";
        let path = "/api/v0/admin/pins";
        let authorization = format!("Basic {}", key.jws(&code.code, path));
        // Sent once: the code is single-use (a retry starts over with a new code).
        let raw = self
            .send_once(endpoint, |c, url| {
                c.get(url.join("api/v0/admin/pins"))
                    .header("Authorization", authorization.as_str())
            })
            .await?;
        let pins: Pins = self.parse(endpoint, None, &raw)?;
        Ok(pins.pinned_stream_ids.into_iter().collect())
    }

    pub(crate) fn malformed(
        &self,
        endpoint: &str,
        stream: Option<&str>,
        message: String,
    ) -> ApiError {
        ApiError::Malformed {
            node: self.node.clone(),
            endpoint: endpoint.to_string(),
            stream: stream.map(str::to_string),
            message,
        }
    }

    pub(crate) fn parse<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &str,
        stream: Option<&str>,
        body: &[u8],
    ) -> Result<T, ApiError> {
        serde_json::from_slice(body).map_err(|e| {
            self.malformed(
                endpoint,
                stream,
                format!("{e} in {:?}", clip(&String::from_utf8_lossy(body))),
            )
        })
    }

    /// [`Self::send`] without retries, for requests that must not be replayed.
    pub(crate) async fn send_once(
        &self,
        endpoint: &str,
        build: impl Fn(&reqwest::Client, &UrlJoin) -> reqwest::RequestBuilder,
    ) -> Result<Vec<u8>, ApiError> {
        self.send_with(endpoint, None, 0, build).await
    }

    /// Waits for a slot and for the pace, then sends, retrying transient failures.
    pub(crate) async fn send(
        &self,
        endpoint: &str,
        stream: Option<&str>,
        build: impl Fn(&reqwest::Client, &UrlJoin) -> reqwest::RequestBuilder,
    ) -> Result<Vec<u8>, ApiError> {
        self.send_with(endpoint, stream, self.options.retries, build)
            .await
    }

    async fn send_with(
        &self,
        endpoint: &str,
        stream: Option<&str>,
        retries: u32,
        build: impl Fn(&reqwest::Client, &UrlJoin) -> reqwest::RequestBuilder,
    ) -> Result<Vec<u8>, ApiError> {
        let _slot = self
            .in_flight
            .acquire()
            .await
            .map_err(|e| ApiError::Unreachable {
                node: self.node.clone(),
                endpoint: endpoint.to_string(),
                stream: stream.map(str::to_string),
                message: e.to_string(),
            })?;
        let url = UrlJoin(self.base.clone());
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 0;
        loop {
            self.pace().await;
            let outcome = self.attempt(build(&self.http, &url)).await;
            match outcome {
                Ok(body) => return Ok(body),
                Err(Failure::Transient(message)) if attempt < retries => {
                    tracing::debug!(node = %self.node, endpoint, attempt, %message, "retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    attempt += 1;
                }
                Err(Failure::Transient(message)) => {
                    return Err(ApiError::Unreachable {
                        node: self.node.clone(),
                        endpoint: endpoint.to_string(),
                        stream: stream.map(str::to_string),
                        message: format!("{message} (after {} attempts)", attempt + 1),
                    })
                }
                Err(Failure::Status(status, body)) => {
                    return Err(ApiError::Status {
                        node: self.node.clone(),
                        endpoint: endpoint.to_string(),
                        stream: stream.map(str::to_string),
                        status,
                        body,
                    })
                }
            }
        }
    }

    async fn attempt(&self, request: reqwest::RequestBuilder) -> Result<Vec<u8>, Failure> {
        let response = request
            .send()
            .await
            .map_err(|e| Failure::Transient(describe(&e)))?;
        let status = response.status().as_u16();
        // A body cut short (the node died mid-answer) is an error here, hence transient.
        let body = response
            .bytes()
            .await
            .map_err(|e| Failure::Transient(format!("reading the body: {}", describe(&e))))?;
        match status {
            200..=299 => Ok(body.to_vec()),
            429 | 502..=504 => Err(Failure::Transient(format!("HTTP {status}"))),
            _ => {
                let text = String::from_utf8_lossy(&body);
                let said = serde_json::from_slice::<Json>(&body)
                    .ok()
                    .and_then(|j| j.get("error").and_then(Json::as_str).map(str::to_string))
                    .unwrap_or_else(|| clip(&text));
                Err(Failure::Status(status, said))
            }
        }
    }

    async fn pace(&self) {
        let Some(rate) = self.options.max_rate.filter(|r| *r > 0.0) else {
            return;
        };
        let gap = Duration::from_secs_f64(1.0 / rate);
        let wait = {
            let mut next = self.next_start.lock().await;
            let now = Instant::now();
            let start = (*next).max(now);
            *next = start + gap;
            start - now
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

enum Failure {
    Transient(String),
    Status(u16, String),
}

/// The base URL, with joins that cannot fail for the fixed relative paths used here.
pub(crate) struct UrlJoin(reqwest::Url);

impl UrlJoin {
    pub(crate) fn join(&self, path: &str) -> reqwest::Url {
        self.0.join(path).unwrap_or_else(|_| self.0.clone())
    }
}

fn describe(e: &reqwest::Error) -> String {
    crate::tls::error_chain(e)
}

/// The first 200 characters, for error messages.
fn clip(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}
