//! `state_missing` as the node itself answers it: for a node with a `ceramic_one_api`, a bounded
//! sample of the streams whose state it should serve (it holds the stream's init event,
//! delivered, and, for a document, its model's definition) is asked for with `GET
//! /ceramic/streams/<id>`; a 404 is a stream whose derived state the node lost (as in
//! rust-ceramic#728, where `event_states` fell from 915 to 596 streams after restarts). Streams
//! whose model definition the node lacks are already `state_missing` from the event set and are
//! not asked again. Flight SQL (`event_states`) would answer for every stream at once; no Flight
//! SQL client is used here (reference `ceramic-one.md` §1.6).

use crate::api::{ApiOptions, NodeApi};
use crate::config::ClusterConfig;
use crate::ids::{StreamId, StreamType};
use crate::report::{Divergence, Kind};
use crate::source::ceramic_one::{StoreNode, META_MODEL};

/// Streams asked for per node at most. Each costs one request; too many loads a node (and an
/// audit) for a check that a sample already makes; too few and a partial loss like #728 (a third
/// of the streams) is still found with near certainty at 100.
pub const STATE_SAMPLE: usize = 100;

/// A stream whose state a node should serve: (model label, stream id).
pub type Candidate = (String, String);

/// The first [`STATE_SAMPLE`] streams (in EventId order) whose state the node should serve.
pub fn candidates(node: &StoreNode) -> Vec<Candidate> {
    let Ok(events) = node.store.events(&[], &[0xff; 80]) else {
        return Vec::new();
    };
    let meta = StreamId::parse(META_MODEL).map(|m| m.to_bytes()).ok();
    let mut out = Vec::new();
    for (_, cid, delivered) in events {
        if out.len() >= STATE_SAMPLE {
            break;
        }
        let Ok(info) = node.store.event(&cid) else {
            continue;
        };
        let Some(header) = info.header.as_ref().filter(|_| delivered) else {
            continue;
        };
        if meta.as_deref() == Some(header.model.as_slice()) {
            out.push((
                META_MODEL.to_string(),
                StreamId::new(StreamType::Model, cid).to_string(),
            ));
            continue;
        }
        let Ok(model) = StreamId::from_bytes(&header.model) else {
            continue;
        };
        if node.store.has_event(&model.genesis).unwrap_or(false) {
            out.push((
                model.to_string(),
                StreamId::new(StreamType::ModelInstanceDocument, cid).to_string(),
            ));
        }
    }
    out
}

/// Asks each node for its sampled streams; one row per 404. A node whose API fails is named in
/// one `unreachable` row (the sample is then incomplete), and the second return is false.
pub async fn check(
    config: &ClusterConfig,
    samples: Vec<(String, Vec<Candidate>)>,
) -> (Vec<Divergence>, bool) {
    let mut rows = Vec::new();
    let mut complete = true;
    for (name, sample) in samples {
        let Some(node) = config.nodes.iter().find(|n| n.name == name) else {
            continue;
        };
        let Some(url) = &node.ceramic_one_api else {
            continue;
        };
        let api = match NodeApi::with_ca(
            &name,
            url,
            node.api_ca_file.as_deref(),
            ApiOptions::default(),
        ) {
            Ok(api) => api,
            Err(e) => {
                complete = false;
                rows.push(unreachable(&name, e.to_string()));
                continue;
            }
        };
        let asked = sample.len();
        for (model, stream) in sample {
            match api.c1_has_state(&stream).await {
                Ok(true) => {}
                Ok(false) => rows.push(Divergence::stream(
                    &model,
                    &stream,
                    &name,
                    Kind::StateMissing,
                    None,
                    format!(
                        "the node holds this stream's events and its model's definition, yet \
                         GET /ceramic/streams answers 404: its derived state was lost (as in \
                         rust-ceramic#728); found in a sample of {asked} stream(s)"
                    ),
                )),
                Err(e) => {
                    complete = false;
                    rows.push(unreachable(
                        &name,
                        format!("state sample stopped at stream {stream}: {e}"),
                    ));
                    break;
                }
            }
        }
    }
    (rows, complete)
}

fn unreachable(node: &str, detail: String) -> Divergence {
    Divergence::node_level("", node, Kind::Unreachable, detail)
}
