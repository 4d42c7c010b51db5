//! A ceramic-one node reached only over HTTP (`ceramic_one_api`, no store path) as an event
//! store: its events are listed model by model (`GET /ceramic/experimental/events/model/<m>`),
//! each EventId is rebuilt from the returned CARs (reference `ceramic-one.md` §3.4), and the
//! result is filed into a private SQLite file with the node's own schema (§1.2), so the
//! comparison runs the same range descent over it as over a real store.
//!
//! What HTTP can and cannot show:
//! - models are listed by StreamID, but interests hold only a hash of the model: the models
//!   walked are the meta-model, every model whose definition a node holds (found in the
//!   meta-model's events), and the configured `models`. An interest of the node in none of them
//!   is reported (its events cannot be listed), and the audit is then incomplete;
//! - `delivered` is read from the node's feed (`GET /ceramic/feed/events`, delivered events
//!   only): an event listed by the model walk but absent from the feed is undelivered. Only
//!   whether an event was delivered is kept, never the node-local counter;
//! - a data event whose init event the node does not hold cannot have its EventId rebuilt (the
//!   separator and controller come from the init header): the walk stops there and says so.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use cid::Cid;
use rusqlite::{params, Connection};
use sha2::{Digest, Sha256};

use super::event::{event_id, Car, EventInfo, InitHeader};
use super::http::{walk_model, Walk, WalkError, MAX_PAGES, PAGE_LIMIT};
use super::interest::{model_prefix, prefix_of};
use super::META_MODEL;
use crate::api::NodeApi;
use crate::ids::{Network, StreamId, StreamType};

/// The tables [`super::EventStore`] reads, as ceramic-one creates them (§1.2); the
/// event-store benchmark files its stores with it too.
pub const SCHEMA: &str = "
CREATE TABLE ceramic_one_block (multihash BLOB NOT NULL PRIMARY KEY, bytes BLOB NOT NULL);
CREATE TABLE ceramic_one_interest (order_key BLOB NOT NULL PRIMARY KEY,
    ahash_0 INTEGER NOT NULL, ahash_1 INTEGER NOT NULL, ahash_2 INTEGER NOT NULL,
    ahash_3 INTEGER NOT NULL, ahash_4 INTEGER NOT NULL, ahash_5 INTEGER NOT NULL,
    ahash_6 INTEGER NOT NULL, ahash_7 INTEGER NOT NULL);
CREATE TABLE ceramic_one_event (order_key BLOB NOT NULL UNIQUE,
    ahash_0 INTEGER NOT NULL, ahash_1 INTEGER NOT NULL, ahash_2 INTEGER NOT NULL,
    ahash_3 INTEGER NOT NULL, ahash_4 INTEGER NOT NULL, ahash_5 INTEGER NOT NULL,
    ahash_6 INTEGER NOT NULL, ahash_7 INTEGER NOT NULL,
    cid BLOB NOT NULL PRIMARY KEY, delivered INTEGER UNIQUE, init_cid BLOB NULL);
CREATE TABLE ceramic_one_event_block (event_cid BLOB NOT NULL, block_multihash BLOB NOT NULL,
    codec INTEGER NOT NULL, idx INTEGER NOT NULL, \"root\" BOOL NOT NULL,
    PRIMARY KEY(event_cid, block_multihash));
";

/// What mirroring one node read.
#[derive(Debug, Default)]
pub struct Mirrored {
    pub events: u64,
    pub bytes: u64,
    pub requests: u64,
    /// Models walked (StreamIDs), the meta-model included.
    pub models: BTreeSet<String>,
    /// EventId prefixes of the node's interests that match no walked model.
    pub unlisted_interests: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error(transparent)]
    Walk(#[from] WalkError),
    #[error("node {node}: {message}")]
    Node { node: String, message: String },
}

fn node_err(api: &NodeApi, message: impl std::fmt::Display) -> MirrorError {
    MirrorError::Node {
        node: api.node().to_string(),
        message: message.to_string(),
    }
}

/// Model StreamIDs whose definitions (Model init events) a meta-model walk holds.
pub fn models_defined(meta: &Walk) -> BTreeSet<String> {
    meta.events
        .iter()
        .filter(|w| w.info.is_init())
        .map(|w| StreamId::new(StreamType::Model, w.cid).to_string())
        .collect()
}

/// Walks the meta-model on the node (its model definitions tell which models exist).
pub async fn meta_walk(api: &NodeApi) -> Result<Walk, WalkError> {
    walk_model(api, META_MODEL, PAGE_LIMIT).await
}

/// Reads the node's events of `models` (and the meta-model walk already made) into a new
/// SQLite file at `path`.
pub async fn mirror(
    api: &NodeApi,
    meta: Walk,
    models: &BTreeSet<String>,
    path: &Path,
) -> Result<Mirrored, MirrorError> {
    let network = api.c1_network().await.map_err(|e| node_err(api, e))?;
    let interests = api
        .c1_interest_bytes()
        .await
        .map_err(|e| node_err(api, e))?;
    let (delivered, feed_requests) = api
        .c1_delivered(PAGE_LIMIT, MAX_PAGES)
        .await
        .map_err(|e| node_err(api, e))?;
    let mut out = Mirrored {
        requests: 3 + meta.pages + feed_requests,
        bytes: meta.bytes,
        ..Mirrored::default()
    };
    let mut walks = vec![(META_MODEL.to_string(), meta)];
    for m in models.iter().filter(|m| m.as_str() != META_MODEL) {
        let walk = walk_model(api, m, PAGE_LIMIT).await?;
        out.requests += walk.pages;
        out.bytes += walk.bytes;
        walks.push((m.clone(), walk));
    }
    let conn = Connection::open(path).map_err(|e| node_err(api, format!("mirror file: {e}")))?;
    conn.execute_batch(SCHEMA)
        .and_then(|_| conn.execute_batch("BEGIN"))
        .map_err(|e| node_err(api, format!("mirror file: {e}")))?;
    let mut prefixes = BTreeSet::new();
    let mut counter = 0i64;
    for (model, walk) in &walks {
        let model_bytes = StreamId::parse(model)
            .map_err(|e| node_err(api, format!("model {model}: {e}")))?
            .to_bytes();
        prefixes.insert(model_prefix(network, "model", &model_bytes));
        let headers: BTreeMap<Cid, InitHeader> = walk
            .events
            .iter()
            .filter_map(|w| w.info.header.clone().map(|h| (w.cid, h)))
            .collect();
        for w in &walk.events {
            let header = match headers.get(&w.info.init) {
                Some(h) => h.clone(),
                None => init_header(api, &w.info).await?,
            };
            let key = event_id(network, &header, &w.info).to_bytes();
            let d = delivered.contains(&w.cid).then(|| {
                counter += 1;
                counter
            });
            file(&conn, &key, &w.info, &w.car, d)
                .map_err(|e| node_err(api, format!("mirror file: {e}")))?;
            out.events += 1;
        }
        out.models.insert(model.clone());
    }
    for key in &interests {
        let l = lanes(key);
        conn.execute(
            "INSERT OR IGNORE INTO ceramic_one_interest VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)",
            params![key, l[0], l[1], l[2], l[3], l[4], l[5], l[6], l[7]],
        )
        .map_err(|e| node_err(api, format!("mirror file: {e}")))?;
        let range = super::interest::Interest::decode(key)
            .ok()
            .and_then(|i| i.range)
            .and_then(|(s, _)| prefix_of(&s));
        if let Some(p) = range.filter(|p| !prefixes.contains(p)) {
            out.unlisted_interests.push(hex::encode(p));
        }
    }
    conn.execute_batch("COMMIT")
        .map_err(|e| node_err(api, format!("mirror file: {e}")))?;
    Ok(out)
}

/// The init header of a data event whose init event was not in the same walk: read from the
/// node itself (`GET /ceramic/events/{init}`).
async fn init_header(api: &NodeApi, info: &EventInfo) -> Result<InitHeader, MirrorError> {
    let car = api
        .c1_event(&info.init)
        .await
        .map_err(|e| node_err(api, e))?
        .ok_or_else(|| {
            node_err(
                api,
                format!(
                    "event {}: the node does not hold its init event {}, so its EventId cannot \
                     be rebuilt from CARs",
                    info.cid, info.init
                ),
            )
        })?;
    let (_, init) = super::http::event_of_car(&car, Some(&info.init))
        .map_err(|e| node_err(api, format!("init event {}: {e}", info.init)))?;
    init.header
        .ok_or_else(|| node_err(api, format!("{} is not an init event", info.init)))
}

fn lanes(key: &[u8]) -> [i64; 8] {
    let digest = Sha256::digest(key);
    std::array::from_fn(|i| {
        let b = &digest[i * 4..i * 4 + 4];
        i64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    })
}

/// Files one event the way the node does (§1.2, §1.3).
fn file(
    conn: &Connection,
    key: &[u8],
    info: &EventInfo,
    car: &[u8],
    delivered: Option<i64>,
) -> Result<(), String> {
    let parsed = Car::parse(car)?;
    let l = lanes(key);
    conn.execute(
        "INSERT OR IGNORE INTO ceramic_one_event (order_key, ahash_0, ahash_1, ahash_2, ahash_3, \
         ahash_4, ahash_5, ahash_6, ahash_7, cid, delivered, init_cid) \
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12)",
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
            info.cid.to_bytes(),
            delivered,
            info.init.to_bytes()
        ],
    )
    .map_err(|e| e.to_string())?;
    for (idx, (cid, bytes)) in parsed.blocks.iter().enumerate() {
        let mh = cid.hash().to_bytes();
        conn.execute(
            "INSERT OR IGNORE INTO ceramic_one_block VALUES (?1, ?2)",
            params![mh, bytes],
        )
        .and_then(|_| {
            conn.execute(
                "INSERT OR IGNORE INTO ceramic_one_event_block VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    info.cid.to_bytes(),
                    mh,
                    cid.codec(),
                    idx as i64,
                    *cid == info.cid
                ],
            )
        })
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Parses a `/config/network` name (`mainnet`, `testnet-clay`, `dev-unstable`, `inmemory`,
/// `local-<id>`).
pub fn network_named(name: &str) -> Option<Network> {
    match name {
        "mainnet" => Some(Network::Mainnet),
        "testnet-clay" => Some(Network::TestnetClay),
        "dev-unstable" => Some(Network::DevUnstable),
        "inmemory" => Some(Network::InMemory),
        other => other
            .strip_prefix("local-")
            .and_then(|id| id.parse().ok())
            .map(Network::Local),
    }
}
