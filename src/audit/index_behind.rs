//! `index_behind_events`: js-ceramic running on top of ceramic-one (a node with both an `index`
//! and a `ceramic_one_store`). js-ceramic learns of events from ceramic-one's feed and indexes
//! them; where that stalls (a feed cursor past the events after a restore, an event never
//! delivered, a crashed indexer) the node's index row of a stream stays at an older tip than the
//! newest event its own event store holds. Compared within one node only, so no node-local
//! counter is ever compared across nodes.
//!
//! Per index row: the stream's events in the node's store (its model's key space, each event's
//! `prev` read from its blocks); the events that descend from the row's tip are the ones the
//! index has not applied. A tip the store does not hold, or a stream it does not hold, is not
//! this kind (the event-store comparison reports what is missing). The node's js-ceramic state
//! (`GET /api/v0/streams`) is not read here: a state behind its own index would be
//! `index_stale`'s business.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cid::Cid;

use super::AuditOptions;
use crate::config::{ClusterConfig, IndexLocation};
use crate::ids::{EventId, StreamId};
use crate::report::{Divergence, Kind};
use crate::source::ceramic_one::interest::{model_prefix, model_range};
use crate::source::ceramic_one::{EventStore, StoreError};
use crate::source::{ModelState, Node};

/// Index rows of one node: model → (stream, tip).
type IndexTips = BTreeMap<String, Vec<(String, String)>>;

/// The rows of every node that has both an index and an event store. A node whose index or
/// store cannot be read gives no rows here (the index audit and the event-store comparison
/// already report it unreachable).
pub async fn index_behind(config: &ClusterConfig, options: &AuditOptions) -> Vec<Divergence> {
    let mut rows = Vec::new();
    for node in &config.nodes {
        let (Some(store), false) = (&node.ceramic_one_store, node.index == IndexLocation::None)
        else {
            continue;
        };
        let Ok(mut index) = Node::open(node, &options.reading()).await else {
            continue;
        };
        let mut tips = IndexTips::new();
        let models: Vec<String> = index
            .models
            .iter()
            .filter(|(_, state)| matches!(state, ModelState::Ready(_)))
            .map(|(m, _)| m.clone())
            .collect();
        for model in models {
            if let Ok(entries) = index.entries(&model).await {
                tips.insert(
                    model,
                    entries
                        .into_iter()
                        .map(|e| (stream_of(e.key.as_bytes()), e.value.tip))
                        .collect(),
                );
            }
        }
        index.close().await;
        let name = node.name.clone();
        let path = if store.is_dir() {
            store.join("db.sqlite3")
        } else {
            store.clone()
        };
        let found = tokio::task::spawn_blocking(move || behind(&name, &path, &tips)).await;
        match found {
            Ok(Ok(r)) => rows.extend(r),
            Ok(Err(e)) => tracing::warn!(node = %node.name, "index_behind_events not checked: {e}"),
            Err(e) => tracing::warn!(node = %node.name, "index_behind_events not checked: {e}"),
        }
    }
    rows
}

/// The stream of an index entry's key (`<model>\0<stream>`, or the stream alone).
fn stream_of(key: &[u8]) -> String {
    let text = String::from_utf8_lossy(key);
    match text.rsplit_once('\0') {
        Some((_, stream)) => stream.to_string(),
        None => text.into_owned(),
    }
}

/// One node: its index tips against its own store.
fn behind(node: &str, path: &Path, tips: &IndexTips) -> Result<Vec<Divergence>, StoreError> {
    let store = EventStore::open(&PathBuf::from(path))?;
    let Some(first) = store.first_key_from(&[])? else {
        return Ok(Vec::new());
    };
    let Ok(network) = EventId::from_bytes(&first).map(|id| id.network) else {
        return Ok(Vec::new());
    };
    let mut rows = Vec::new();
    for (model, streams) in tips {
        let Ok(model_id) = StreamId::parse(model) else {
            continue;
        };
        let (start, end) = model_range(&model_prefix(network, "model", &model_id.to_bytes()));
        // Per stream (init CID): its events' `prev` links, as children of each event.
        let mut children: BTreeMap<Cid, BTreeMap<Cid, Vec<Cid>>> = BTreeMap::new();
        for (_, cid, _) in store.events(&start, &end)? {
            let info = store.event(&cid)?;
            let family = children.entry(info.init).or_default();
            family.entry(cid).or_default();
            if let Some(prev) = info.prev {
                family.entry(prev).or_default().push(cid);
            }
        }
        for (stream, tip) in streams {
            let (Ok(id), Ok(tip_cid)) = (StreamId::parse(stream), tip.parse::<Cid>()) else {
                continue;
            };
            let Some(family) = children.get(&id.genesis) else {
                continue;
            };
            if !family.contains_key(&tip_cid) {
                continue;
            }
            let newer = descendants(family, tip_cid);
            if newer.is_empty() {
                continue;
            }
            let mut row = Divergence::stream(
                model,
                stream,
                node,
                Kind::IndexBehindEvents,
                Some(tip.clone()),
                format!(
                    "the index row's tip is {} event(s) older than the newest event this node's \
                     own event store holds for the stream: js-ceramic has not applied them (its \
                     feed stalled or its cursor is past them)",
                    newer.len()
                ),
            );
            row.log.missing_commits = Some(newer.len() as u64);
            rows.push(row);
        }
    }
    Ok(rows)
}

/// Events reachable from `tip` along `prev` links backwards (its descendants).
fn descendants(children: &BTreeMap<Cid, Vec<Cid>>, tip: Cid) -> BTreeSet<Cid> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![tip];
    while let Some(c) = todo.pop() {
        for child in children.get(&c).into_iter().flatten() {
            // Only events the store holds (a `prev` it lacks has no entry of its own).
            if seen.insert(*child) {
                todo.push(*child);
            }
        }
    }
    seen
}
