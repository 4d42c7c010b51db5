//! A scripted ceramic-one node: a real HTTP/1.1 server on 127.0.0.1 (axum) serving the
//! documented `/ceramic` endpoints over a real event store (a SQLite file with ceramic-one's
//! schema, e.g. a copy of a `fixtures/ceramic-one-3` store). Writes go into that file the way the
//! node files events (reference `ceramic-one.md` §1.2, §1.3), so the store-based audit sees them.
//!
//! Built from the documented facts, not from a running node (none can be installed here):
//! - `GET /ceramic/events/{cid}` → `{"id","data":"m<base64 CAR>"}`, 404 when absent (§2);
//! - `POST /ceramic/events {"data"}` → 204; a data/time event whose init event the node lacks is
//!   refused with 400 `{"message"}` (`get_init_event_payload_from_store`), and so is one whose
//!   `prev` it lacks ("API writes without history are rejected", PR #344) (§2). The message
//!   texts are this server's own: the reference does not quote the node's;
//! - `GET /ceramic/experimental/events/model/<model>?offset&limit` → the model's Recon key range
//!   in EventId order, undelivered events included, `resumeOffset`, `isComplete = count < limit`
//!   (§2, §9);
//! - `GET /ceramic/streams/<id>` → a state only when the node holds the stream's init event and,
//!   for a document, its model's definition; else 404 (pending, §9). The state's `data` is the
//!   tip block, not an aggregated document (this server does not run the pipeline);
//! - `GET /ceramic/experimental/interests` (`z` base58btc interest bytes) and `POST
//!   /ceramic/interests {"sep":"model","sepValue"}` (the whole model range, the node's own peer
//!   id, never expiring: §3.5).
//!
//! - `GET /ceramic/config/network` → `{"name":"local-<id>"|…}`; `GET /ceramic/feed/events?
//!   resumeAt&limit` → delivered events only, in `delivered` order, `resumeToken` = the page's
//!   highest `delivered` + 1, or the input when the page is empty (§2).
//!
//! Recon itself does not run: nothing spreads between scripted nodes on its own.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use ceramic_audit::ids::{read_cid, EventId, Network, StreamId, StreamType};
use ceramic_audit::source::ceramic_one::event::{event_id, parse_event, Car, EventInfo};
use ceramic_audit::source::ceramic_one::http::{decode_car, encode_car};
use ceramic_audit::source::ceramic_one::interest::{
    model_interest, model_prefix, model_range, Interest,
};
use cid::Cid;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// A fault the next matching request gets instead of its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `experimental/events` at this offset answers HTTP 500 `{"message"}`.
    PageStatus500(u64),
    /// `experimental/events` at this offset answers 200 with the JSON cut in half.
    PageTruncated(u64),
    /// `GET /ceramic/streams/<this stream>` answers 404 though the node holds everything (its
    /// derived state lost, as in rust-ceramic#728).
    StateLost(String),
    /// Every `POST /ceramic/events` answers HTTP 500 `{"message"}` (a node failing writes).
    PostStatus500,
}

struct Node {
    conn: Mutex<Connection>,
    network: Network,
    peer_id: Vec<u8>,
    writes: AtomicUsize,
    fault: Mutex<Option<Fault>>,
    /// Milliseconds each `POST /ceramic/events` waits before it is handled (a slow node).
    post_delay_ms: AtomicU64,
    /// Posts being handled now, and the most seen at once.
    posts_in_flight: AtomicUsize,
    max_posts_in_flight: AtomicUsize,
}

pub struct ScriptedNode {
    pub url: String,
    node: Arc<Node>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ScriptedNode {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ScriptedNode {
    /// Serves the store at `db` (opened read-write, switched to WAL as ceramic-one runs it).
    pub async fn start(db: &Path, network: Network) -> Self {
        let conn = Connection::open(db).expect("open the scripted node's store");
        conn.pragma_update(None, "journal_mode", "WAL")
            .expect("WAL");
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .expect("busy timeout");
        let peer_id = conn
            .query_row(
                "SELECT order_key FROM ceramic_one_interest LIMIT 1",
                [],
                |r| r.get::<_, Vec<u8>>(0),
            )
            .optional()
            .expect("read interests")
            .and_then(|k| Interest::decode(&k).ok())
            .map(|i| i.peer_id)
            .unwrap_or_else(|| b"scripted peer".to_vec());
        let node = Arc::new(Node {
            conn: Mutex::new(conn),
            network,
            peer_id,
            writes: AtomicUsize::new(0),
            fault: Mutex::new(None),
            post_delay_ms: AtomicU64::new(0),
            posts_in_flight: AtomicUsize::new(0),
            max_posts_in_flight: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/ceramic/events", post(post_event))
            .route("/ceramic/events/{cid}", get(get_event))
            .route(
                "/ceramic/experimental/events/{sep}/{value}",
                get(model_events),
            )
            .route("/ceramic/streams/{id}", get(stream_state))
            .route("/ceramic/experimental/interests", get(interests))
            .route("/ceramic/interests", post(add_interest))
            .route("/ceramic/config/network", get(network_name))
            .route("/ceramic/feed/events", get(feed))
            .with_state(node.clone());
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind 127.0.0.1");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, node, task }
    }

    /// Writes accepted so far (events stored, interests added).
    pub fn writes(&self) -> usize {
        self.node.writes.load(Ordering::SeqCst)
    }

    pub fn inject(&self, fault: Fault) {
        *self.node.fault.lock().unwrap() = Some(fault);
    }

    /// Makes every event post take at least `ms` milliseconds.
    pub fn slow_posts(&self, ms: u64) {
        self.node.post_delay_ms.store(ms, Ordering::SeqCst);
    }

    /// The most event posts this node was handling at one time.
    pub fn max_posts_in_flight(&self) -> usize {
        self.node.max_posts_in_flight.load(Ordering::SeqCst)
    }
}

/// Counts a post in flight for as long as it lives.
struct InFlight<'a>(&'a Node);

impl<'a> InFlight<'a> {
    fn enter(node: &'a Node) -> Self {
        let now = node.posts_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        node.max_posts_in_flight.fetch_max(now, Ordering::SeqCst);
        Self(node)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.posts_in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

fn message(status: StatusCode, text: String) -> Response {
    json_reply(status, json!({ "message": text }))
}

/// A JSON answer (axum's `json` feature is not enabled in this crate).
fn json_reply(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn json_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Box<Response>> {
    serde_json::from_slice(bytes).map_err(|e| {
        Box::new(message(
            StatusCode::BAD_REQUEST,
            format!("invalid body: {e}"),
        ))
    })
}

/// `offset` and `limit` of a query string.
fn page_query(raw: Option<&str>) -> (u64, u64) {
    let mut out = (0, 10_000);
    for pair in raw.unwrap_or_default().split('&') {
        match pair.split_once('=') {
            Some(("offset", v)) => out.0 = v.parse().unwrap_or(0),
            Some(("limit", v)) => out.1 = v.parse().unwrap_or(10_000),
            _ => {}
        }
    }
    out
}

fn cid_of(bytes: &[u8]) -> Option<Cid> {
    read_cid(bytes, "cid").ok().map(|(c, _)| c)
}

/// The event's CAR, rebuilt from its blocks in `idx` order (§1.2 `ceramic_one_event_block`).
fn car_of(conn: &Connection, cid: &Cid) -> Option<Vec<u8>> {
    let mut stmt = conn
        .prepare(
            "SELECT eb.codec, eb.block_multihash, b.bytes FROM ceramic_one_event_block eb \
             JOIN ceramic_one_block b ON b.multihash = eb.block_multihash \
             WHERE eb.event_cid = ?1 ORDER BY eb.idx",
        )
        .ok()?;
    let blocks: Vec<(u64, Vec<u8>, Vec<u8>)> = stmt
        .query_map([cid.to_bytes()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .ok()?
        .collect::<Result<_, _>>()
        .ok()?;
    if blocks.is_empty() {
        return None;
    }
    let mut root = vec![0u8];
    root.extend(cid.to_bytes());
    let header = ciborium::Value::Map(vec![
        (
            "roots".into(),
            ciborium::Value::Array(vec![ciborium::Value::Tag(
                42,
                Box::new(ciborium::Value::Bytes(root)),
            )]),
        ),
        ("version".into(), 1.into()),
    ]);
    let mut head = Vec::new();
    ciborium::ser::into_writer(&header, &mut head).ok()?;
    let mut car = Vec::new();
    push_varint(&mut car, head.len());
    car.extend(head);
    for (codec, mh, bytes) in blocks {
        let hash = multihash::Multihash::<64>::from_bytes(&mh).ok()?;
        let block_cid = Cid::new_v1(codec, hash).to_bytes();
        push_varint(&mut car, block_cid.len() + bytes.len());
        car.extend(block_cid);
        car.extend(bytes);
    }
    Some(car)
}

fn push_varint(out: &mut Vec<u8>, n: usize) {
    let mut buf = unsigned_varint::encode::usize_buffer();
    out.extend_from_slice(unsigned_varint::encode::usize(n, &mut buf));
}

/// One stored event's fields, read from its stored blocks.
fn stored_event(conn: &Connection, cid: &Cid) -> Option<EventInfo> {
    let car = Car::parse(&car_of(conn, cid)?).ok()?;
    parse_event(cid, &|c| car.block(c)).ok()
}

fn has(conn: &Connection, cid: &Cid) -> bool {
    conn.query_row(
        "SELECT 1 FROM ceramic_one_event WHERE cid = ?1",
        [cid.to_bytes()],
        |_| Ok(()),
    )
    .optional()
    .ok()
    .flatten()
    .is_some()
}

fn delivered(conn: &Connection, cid: &Cid) -> bool {
    conn.query_row(
        "SELECT delivered IS NOT NULL FROM ceramic_one_event WHERE cid = ?1",
        [cid.to_bytes()],
        |r| r.get::<_, bool>(0),
    )
    .optional()
    .ok()
    .flatten()
    .unwrap_or(false)
}

fn next_delivered(conn: &Connection) -> i64 {
    conn.query_row(
        "SELECT COALESCE(MAX(delivered), 0) + 1 FROM ceramic_one_event",
        [],
        |r| r.get(0),
    )
    .unwrap_or(1)
}

async fn get_event(State(node): State<Arc<Node>>, UrlPath(cid): UrlPath<String>) -> Response {
    let Ok(parsed) = cid.parse::<Cid>() else {
        return message(StatusCode::BAD_REQUEST, format!("invalid event id {cid}"));
    };
    let conn = node.conn.lock().unwrap();
    if !has(&conn, &parsed) {
        return (StatusCode::NOT_FOUND, format!("Event not found: {cid}")).into_response();
    }
    match car_of(&conn, &parsed) {
        Some(car) => json_reply(
            StatusCode::OK,
            json!({ "id": cid, "data": encode_car(&car) }),
        ),
        None => message(StatusCode::INTERNAL_SERVER_ERROR, "blocks missing".into()),
    }
}

#[derive(Deserialize)]
struct PostBody {
    data: String,
}

async fn post_event(State(node): State<Arc<Node>>, body: Bytes) -> Response {
    let _in_flight = InFlight::enter(&node);
    let delay = node.post_delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    if *node.fault.lock().unwrap() == Some(Fault::PostStatus500) {
        return message(
            StatusCode::INTERNAL_SERVER_ERROR,
            "scripted: the store is not writable".into(),
        );
    }
    let body: PostBody = match json_body(&body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let bad = |t: String| message(StatusCode::BAD_REQUEST, t);
    let car = match decode_car(&body.data).and_then(|b| Car::parse(&b)) {
        Ok(c) => c,
        Err(e) => return bad(format!("invalid CAR: {e}")),
    };
    let Some(root) = car.roots.first().copied() else {
        return bad("the CAR has no root".into());
    };
    let info = match parse_event(&root, &|c| car.block(c)) {
        Ok(i) => i,
        Err(e) => return bad(format!("invalid event: {e}")),
    };
    let conn = node.conn.lock().unwrap();
    if has(&conn, &root) {
        return StatusCode::NO_CONTENT.into_response();
    }
    let header = match &info.header {
        Some(h) => h.clone(),
        None => {
            // Init first (§2): the EventId needs the init header, which must be stored.
            let Some(init) = stored_event(&conn, &info.init).and_then(|i| i.header) else {
                return bad(format!(
                    "event {root}: its init event {} is not in the store: post the init event first",
                    info.init
                ));
            };
            if let Some(prev) = info.prev.filter(|p| !has(&conn, p)) {
                return bad(format!(
                    "event {root}: its prev {prev} is not in the store (API writes need the history)"
                ));
            }
            init
        }
    };
    let key = event_id(node.network, &header, &info).to_bytes();
    let is_deliverable = info.prev.is_none_or(|p| delivered(&conn, &p));
    if let Err(e) = insert(&conn, &key, &root, &info, &car, is_deliverable) {
        return message(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    }
    deliver_waiting(&conn);
    node.writes.fetch_add(1, Ordering::SeqCst);
    StatusCode::NO_CONTENT.into_response()
}

fn lanes(key: &[u8]) -> [i64; 8] {
    let digest = Sha256::digest(key);
    let mut out = [0i64; 8];
    for (i, lane) in out.iter_mut().enumerate() {
        let b = &digest[i * 4..i * 4 + 4];
        *lane = i64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    }
    out
}

fn insert(
    conn: &Connection,
    key: &[u8],
    root: &Cid,
    info: &EventInfo,
    car: &Car,
    deliver: bool,
) -> rusqlite::Result<()> {
    let l = lanes(key);
    let d = deliver.then(|| next_delivered(conn));
    conn.execute(
        "INSERT INTO ceramic_one_event (order_key, ahash_0, ahash_1, ahash_2, ahash_3, ahash_4, \
         ahash_5, ahash_6, ahash_7, cid, delivered, init_cid, informant, is_time_event) \
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,'did:key:scripted',?13)",
        params![
            key,
            l[0],
            l[1],
            l[2],
            l[3],
            l[4],
            l[5],
            l[6],
            l[7],
            root.to_bytes(),
            d,
            info.init.to_bytes(),
            info.is_time_event
        ],
    )?;
    for (idx, (cid, bytes)) in car.blocks.iter().enumerate() {
        let mh = cid.hash().to_bytes();
        conn.execute(
            "INSERT OR IGNORE INTO ceramic_one_block VALUES (?1, ?2)",
            params![mh, bytes],
        )?;
        conn.execute(
            "INSERT OR IGNORE INTO ceramic_one_event_block VALUES (?1, ?2, ?3, ?4, ?5)",
            params![root.to_bytes(), mh, cid.codec(), idx as i64, cid == root],
        )?;
    }
    Ok(())
}

/// Delivers every stored event whose `prev` is now delivered (the node's ordering task).
fn deliver_waiting(conn: &Connection) {
    loop {
        let waiting: Vec<Vec<u8>> = conn
            .prepare("SELECT cid FROM ceramic_one_event WHERE delivered IS NULL")
            .and_then(|mut s| {
                s.query_map([], |r| r.get(0))
                    .and_then(|rows| rows.collect::<Result<_, _>>())
            })
            .unwrap_or_default();
        let ready = waiting.iter().filter_map(|b| cid_of(b)).find(|cid| {
            stored_event(conn, cid)
                .and_then(|i| i.prev)
                .is_some_and(|p| delivered(conn, &p))
        });
        let Some(cid) = ready else { return };
        let d = next_delivered(conn);
        let _ = conn.execute(
            "UPDATE ceramic_one_event SET delivered = ?1 WHERE cid = ?2",
            params![d, cid.to_bytes()],
        );
    }
}

async fn model_events(
    State(node): State<Arc<Node>>,
    UrlPath((sep, value)): UrlPath<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let (offset, limit) = page_query(query.as_deref());
    let fault = node.fault.lock().unwrap().clone();
    match fault {
        Some(Fault::PageStatus500(at)) if at == offset => {
            return message(StatusCode::INTERNAL_SERVER_ERROR, "scripted failure".into())
        }
        _ => {}
    }
    let Ok(model) = StreamId::parse(&value) else {
        return message(
            StatusCode::BAD_REQUEST,
            format!("invalid {sep} value {value}"),
        );
    };
    let (start, end) = model_range(&model_prefix(node.network, &sep, &model.to_bytes()));
    let conn = node.conn.lock().unwrap();
    let cids: Vec<Vec<u8>> = conn
        .prepare(
            "SELECT cid FROM ceramic_one_event WHERE order_key >= ?1 AND order_key < ?2 \
             ORDER BY order_key LIMIT ?3 OFFSET ?4",
        )
        .and_then(|mut s| {
            s.query_map(params![start, end, limit as i64, offset as i64], |r| {
                r.get(0)
            })
            .and_then(|rows| rows.collect::<Result<_, _>>())
        })
        .unwrap_or_default();
    let events: Vec<Value> = cids
        .iter()
        .filter_map(|b| cid_of(b))
        .map(|cid| json!({ "id": cid.to_string(), "data": car_of(&conn, &cid).map(|c| encode_car(&c)) }))
        .collect();
    let count = events.len() as u64;
    let body = json!({
        "events": events,
        "resumeOffset": offset + count,
        "isComplete": count < limit,
    });
    if fault == Some(Fault::PageTruncated(offset)) {
        let text = body.to_string();
        return (StatusCode::OK, text[..text.len() / 2].to_string()).into_response();
    }
    json_reply(StatusCode::OK, body)
}

async fn network_name(State(node): State<Arc<Node>>) -> Response {
    json_reply(StatusCode::OK, json!({ "name": node.network.name() }))
}

async fn feed(State(node): State<Arc<Node>>, RawQuery(query): RawQuery) -> Response {
    let (mut resume_at, mut limit) = (0i64, 100i64);
    for pair in query.as_deref().unwrap_or_default().split('&') {
        match pair.split_once('=') {
            Some(("resumeAt", v)) => resume_at = v.parse().unwrap_or(0),
            Some(("limit", v)) => limit = v.parse().unwrap_or(100),
            _ => {}
        }
    }
    let conn = node.conn.lock().unwrap();
    let rows: Vec<(Vec<u8>, i64)> = conn
        .prepare(
            "SELECT cid, delivered FROM ceramic_one_event WHERE delivered >= ?1 \
             ORDER BY delivered LIMIT ?2",
        )
        .and_then(|mut s| {
            s.query_map(params![resume_at, limit], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(|rows| rows.collect::<Result<_, _>>())
        })
        .unwrap_or_default();
    let token = rows.last().map_or(resume_at, |(_, d)| d + 1);
    let events: Vec<Value> = rows
        .iter()
        .filter_map(|(c, _)| cid_of(c))
        .map(|c| json!({ "id": c.to_string() }))
        .collect();
    json_reply(
        StatusCode::OK,
        json!({ "events": events, "resumeToken": token.to_string() }),
    )
}

async fn stream_state(State(node): State<Arc<Node>>, UrlPath(id): UrlPath<String>) -> Response {
    let Ok(stream) = StreamId::parse(&id) else {
        return message(StatusCode::BAD_REQUEST, format!("invalid stream id {id}"));
    };
    let not_found = || (StatusCode::NOT_FOUND, format!("Stream not found: {id}")).into_response();
    if *node.fault.lock().unwrap() == Some(Fault::StateLost(id.clone())) {
        return not_found();
    }
    let conn = node.conn.lock().unwrap();
    let Some(init) =
        stored_event(&conn, &stream.genesis).filter(|_| delivered(&conn, &stream.genesis))
    else {
        return not_found();
    };
    let Some(header) = init.header.clone() else {
        return not_found();
    };
    if stream.stream_type == StreamType::ModelInstanceDocument {
        let definition = StreamId::from_bytes(&header.model).map(|m| m.genesis);
        if !definition.is_ok_and(|d| has(&conn, &d)) {
            return not_found();
        }
    }
    let tip: Option<Vec<u8>> = conn
        .query_row(
            "SELECT cid FROM ceramic_one_event WHERE init_cid = ?1 AND delivered IS NOT NULL \
             ORDER BY delivered DESC LIMIT 1",
            [stream.genesis.to_bytes()],
            |r| r.get(0),
        )
        .optional()
        .ok()
        .flatten();
    let tip = tip.and_then(|b| cid_of(&b)).unwrap_or(stream.genesis);
    let data = car_of(&conn, &tip).unwrap_or_default();
    json_reply(
        StatusCode::OK,
        json!({
            "id": id,
            "event_cid": tip.to_string(),
            "controller": header.controller,
            "dimensions": {},
            "data": multibase::encode(multibase::Base::Base64Url, data),
        }),
    )
}

async fn interests(State(node): State<Arc<Node>>) -> Response {
    let conn = node.conn.lock().unwrap();
    let keys: Vec<Vec<u8>> = conn
        .prepare("SELECT order_key FROM ceramic_one_interest ORDER BY order_key")
        .and_then(|mut s| {
            s.query_map([], |r| r.get(0))
                .and_then(|rows| rows.collect::<Result<_, _>>())
        })
        .unwrap_or_default();
    let items: Vec<Value> = keys
        .iter()
        .map(|k| json!({ "data": multibase::encode(multibase::Base::Base58Btc, k) }))
        .collect();
    json_reply(StatusCode::OK, json!({ "interests": items }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InterestBody {
    sep: String,
    sep_value: String,
}

async fn add_interest(State(node): State<Arc<Node>>, body: Bytes) -> Response {
    let body: InterestBody = match json_body(&body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let Ok(model) = StreamId::parse(&body.sep_value) else {
        return message(
            StatusCode::BAD_REQUEST,
            format!("invalid sepValue {}", body.sep_value),
        );
    };
    if body.sep != "model" {
        return message(
            StatusCode::BAD_REQUEST,
            format!("unsupported sep {}", body.sep),
        );
    }
    let key = model_interest(node.network, &model.to_bytes(), &node.peer_id);
    let l = lanes(&key);
    let conn = node.conn.lock().unwrap();
    let result = conn.execute(
        "INSERT OR IGNORE INTO ceramic_one_interest VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)",
        params![key, l[0], l[1], l[2], l[3], l[4], l[5], l[6], l[7]],
    );
    match result {
        Ok(_) => {
            node.writes.fetch_add(1, Ordering::SeqCst);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => message(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The network of a store's events (read from its first EventId).
pub fn network_of(db: &Path) -> Network {
    let conn = Connection::open(db).expect("open");
    let key: Vec<u8> = conn
        .query_row("SELECT MIN(order_key) FROM ceramic_one_event", [], |r| {
            r.get(0)
        })
        .expect("a store with events");
    EventId::from_bytes(&key).expect("an EventId").network
}
