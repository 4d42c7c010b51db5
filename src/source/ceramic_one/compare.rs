//! The N-way comparison of ceramic-one event stores, model by model, and what it finds.
//!
//! Key space: the EventIds (`order_key`) of each model, i.e. every range a node's interests name
//! or its events fall in (reference §3.4). Each model is compared across all nodes with the same
//! range descent as the index audit, fingerprinting with Recon's Sha256a (the lanes the nodes
//! store). Then, per node:
//! - `not_interested`: no interest covers a model another node syncs. Recon intersects interests
//!   per conversation, so a model reaches or leaves a node only if both sides hold the interest;
//!   this row is the cause of whatever else differs there (the node's missing events of that
//!   model are not listed again). The meta-model included: without it a node's model
//!   definitions never leave it.
//! - `missing_event`: events other nodes hold that this interested node lacks, one row per
//!   stream: how many, whether the init event is among them, who holds them.
//! - `undelivered_event`: stored with `delivered` NULL (never handed to the feed, so invisible to
//!   js-ceramic and the pipeline), with the `prev` it waits for and whether the node has it.
//! - `state_missing`: the node holds a stream's events but not its model's definition, so
//!   ceramic-one can build no state for it (pending, reference §9). Derived from the event set;
//!   the node's Flight SQL state is not read by this source.
//!
//! Node-local counters (`delivered` values, resume tokens) are never compared across nodes.

use std::collections::{BTreeMap, BTreeSet};

use cid::Cid;

use super::interest::{model_prefix, model_range, prefix_of, Interest};
use super::store::{EventStore, StoreError};
use crate::ids::{EventId, StreamId, StreamType};
use crate::recon::{run_descent, Alphabet, DescentParams, Outcome, RunError};
use crate::report::{Divergence, Kind, ModelReport};

/// The meta-model every Model stream's init header names.
pub const META_MODEL: &str = "kh4q0ozorrgaq2mezktnrmdwleo1d";

/// Most distinct model prefixes one store is scanned for. Each costs one index seek; a store
/// with more models than this has its extra models reported as not compared (raise it if a
/// cluster really syncs that many models).
const MAX_MODELS: usize = 100_000;

/// One node's store, by name.
pub struct StoreNode {
    pub name: String,
    pub store: EventStore,
}

/// Everything the comparison found.
#[derive(Debug, Default)]
pub struct Findings {
    pub models: Vec<ModelReport>,
    pub divergences: Vec<Divergence>,
}

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("node {node}: {source}")]
    Store {
        node: String,
        // Boxed: a rusqlite error is large and this error travels through every `?`.
        #[source]
        source: Box<StoreError>,
    },
    #[error("model {model}: {message}")]
    Descent { model: String, message: String },
}

fn at(node: &StoreNode) -> impl Fn(StoreError) -> CompareError + '_ {
    move |source| CompareError::Store {
        node: node.name.clone(),
        source: Box::new(source),
    }
}

/// Model prefixes (network + separator hash) a store's events fall in, by skip-scan: one index
/// seek per model, whatever the number of events.
fn event_prefixes(node: &StoreNode) -> Result<BTreeSet<Vec<u8>>, CompareError> {
    let mut out = BTreeSet::new();
    let mut from: Vec<u8> = Vec::new();
    while out.len() < MAX_MODELS {
        let Some(key) = node.store.first_key_from(&from).map_err(at(node))? else {
            break;
        };
        match prefix_of(&key) {
            Some(prefix) => {
                from = model_range(&prefix).1;
                out.insert(prefix);
            }
            // Not an EventId: step past it (it is still compared, inside no model).
            None => {
                from = key;
                from.push(0);
            }
        }
    }
    Ok(out)
}

/// What the model of a key space is called in the report: its StreamID when an init event in
/// it names one, the meta-model's id for its range, else the prefix in hex.
fn model_label(
    nodes: &[StoreNode],
    prefix: &[u8],
    meta_prefix: &[u8],
) -> (String, Option<StreamId>) {
    if prefix == meta_prefix {
        return (META_MODEL.to_string(), StreamId::parse(META_MODEL).ok());
    }
    let (start, end) = model_range(prefix);
    for node in nodes {
        let Ok(events) = node.store.events(&start, &end) else {
            continue;
        };
        for (key, cid, _) in events {
            let is_init =
                EventId::from_bytes(&key).is_ok_and(|id| cid.to_bytes().ends_with(&id.init_tail));
            if !is_init {
                continue;
            }
            if let Ok(info) = node.store.event(&cid) {
                if let Some(model) = info
                    .header
                    .and_then(|h| StreamId::from_bytes(&h.model).ok())
                {
                    return (model.to_string(), Some(model));
                }
            }
        }
    }
    (format!("eventid-prefix:{}", hex::encode(prefix)), None)
}

fn event_cid_of(key: &[u8]) -> Option<Cid> {
    EventId::from_bytes(key).ok()?.event
}

/// The price of a round in the sized plan for event stores (bytes per store). A round over a
/// local SQLite file sends nothing over a network; it is one more query per differing range,
/// each re-reading that range's rows, so fewer and wider levels pay. At this price the plan
/// keeps one level at 10^6 events and d = 100 (3 rounds: first-level sums, leaf digests, rows;
/// event-store benchmark); at the network default (2 KiB) it goes 4 levels deep with fanouts
/// of 4 (6 rounds); far higher buys nothing more once one level is reached.
const LOCAL_ROUND_BYTES: u64 = 1 << 20;

/// The descent parameters an event-store comparison runs with, from the audit's: the audit's
/// `--root-fanout`, `--fanout` and `--leaf-threshold` hold only where the plan declines to
/// size the first level (stores of equal counts and no `expected_diffs`, or tiny ones).
pub fn event_store_params(params: &DescentParams) -> DescentParams {
    DescentParams {
        // EventIds are binary: interpolate splits over all byte values.
        alphabet: Alphabet::Bytes,
        // The stores are local files that tell their sizes and key quantiles up front
        // (`ModelView::size`, `quantiles`): plan the first level for them and cut it at the
        // largest store's quantiles, instead of the fixed split made for SQL push-down.
        sized_first_level: true,
        round_bytes: LOCAL_ROUND_BYTES,
        ..params.clone()
    }
}

/// Compares every model the stores hold or are interested in.
pub fn compare(nodes: &[StoreNode], params: &DescentParams) -> Result<Findings, CompareError> {
    let interests: Vec<Vec<Interest>> = nodes
        .iter()
        .map(|n| n.store.interests().map_err(at(n)))
        .collect::<Result<_, _>>()?;
    let mut prefixes = BTreeSet::new();
    for (node, list) in nodes.iter().zip(&interests) {
        prefixes.extend(event_prefixes(node)?);
        prefixes.extend(
            list.iter()
                .filter_map(|i| i.range.as_ref())
                .filter_map(|(s, _)| prefix_of(s)),
        );
    }
    let params = event_store_params(params);
    let mut findings = Findings::default();
    for prefix in prefixes {
        let network = EventId::from_bytes(&model_range(&prefix).0).map(|id| id.network);
        let meta_prefix = match (&network, StreamId::parse(META_MODEL)) {
            (Ok(n), Ok(meta)) => model_prefix(*n, "model", &meta.to_bytes()),
            _ => Vec::new(),
        };
        compare_model(
            nodes,
            &interests,
            &prefix,
            &meta_prefix,
            &params,
            &mut findings,
        )?;
    }
    Ok(findings)
}

/// The models (StreamIDs) whose events or definitions the stores hold: what an HTTP-only node
/// is walked for, beside the meta-model and the configured models.
pub fn store_models(nodes: &[StoreNode]) -> Result<BTreeSet<String>, CompareError> {
    let mut out = BTreeSet::new();
    for node in nodes {
        for prefix in event_prefixes(node)? {
            let network = EventId::from_bytes(&model_range(&prefix).0).map(|id| id.network);
            let meta_prefix = match (&network, StreamId::parse(META_MODEL)) {
                (Ok(n), Ok(meta)) => model_prefix(*n, "model", &meta.to_bytes()),
                _ => Vec::new(),
            };
            if let (_, Some(model)) = model_label(nodes, &prefix, &meta_prefix) {
                out.insert(model.to_string());
            }
        }
    }
    Ok(out)
}

/// What the per-kind row builders of one model share.
struct ModelCtx<'a> {
    nodes: &'a [StoreNode],
    names: &'a [String],
    label: &'a str,
    /// Per node: does one of its interests cover this model's range?
    interested: &'a [bool],
    /// The nodes that are interested (the ones Recon syncs this model between).
    syncing: &'a [String],
    stream_type: StreamType,
    is_meta: bool,
}

fn compare_model(
    nodes: &[StoreNode],
    interests: &[Vec<Interest>],
    prefix: &[u8],
    meta_prefix: &[u8],
    params: &DescentParams,
    findings: &mut Findings,
) -> Result<(), CompareError> {
    let (start, end) = model_range(prefix);
    let (label, model_id) = model_label(nodes, prefix, meta_prefix);
    let interested: Vec<bool> = interests
        .iter()
        .map(|list| list.iter().any(|i| i.covers(&start, &end)))
        .collect();
    let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    let outcome = descend(nodes, &names, &label, &start, &end, params)?;
    let syncing: Vec<String> = names
        .iter()
        .zip(&interested)
        .filter(|(_, i)| **i)
        .map(|(n, _)| n.clone())
        .collect();
    let is_meta = prefix == meta_prefix;
    let ctx = ModelCtx {
        nodes,
        names: &names,
        label: &label,
        interested: &interested,
        syncing: &syncing,
        stream_type: if is_meta {
            StreamType::Model
        } else {
            StreamType::ModelInstanceDocument
        },
        is_meta,
    };
    let mut rows = not_interested_rows(&ctx, &outcome);
    rows.extend(missing_event_rows(&ctx, &outcome));
    // The model's definition (its init event), for state_missing: none for the meta-model.
    let definition = model_id.as_ref().filter(|_| !is_meta).map(|m| m.genesis);
    rows.extend(own_event_rows(&ctx, definition, &start, &end)?);

    let mut counts = BTreeMap::new();
    for r in &rows {
        *counts.entry(r.kind).or_insert(0u64) += 1;
    }
    findings.models.push(ModelReport {
        invalid_rows_not_listed: BTreeMap::new(),
        model: label.clone(),
        nodes_compared: names,
        differing_streams: outcome.differences.len() as u64,
        counts,
        cost: Some(outcome.cost),
        bytes_over_bound: None,
        stopped: None,
        switched_to_download: None,
    });
    findings.divergences.extend(rows);
    Ok(())
}

/// The range descent over one model's key space on every node.
fn descend(
    nodes: &[StoreNode],
    names: &[String],
    label: &str,
    start: &[u8],
    end: &[u8],
    params: &DescentParams,
) -> Result<Outcome, CompareError> {
    let mut views: Vec<_> = nodes
        .iter()
        .map(|n| n.store.view(start.to_vec(), end.to_vec()))
        .collect();
    let outcome: Outcome = run_descent(&mut views, params.clone()).map_err(|e| match e {
        RunError::Store { store, source } => CompareError::Store {
            node: names[store].clone(),
            source: Box::new(source),
        },
        RunError::Descent(d) => CompareError::Descent {
            model: label.to_string(),
            message: d.to_string(),
        },
    })?;
    Ok(outcome)
}

/// not_interested: one row per node lacking an interest that another node holds.
fn not_interested_rows(ctx: &ModelCtx, outcome: &Outcome) -> Vec<Divergence> {
    let (nodes, interested, syncing) = (ctx.nodes, ctx.interested, ctx.syncing);
    let mut rows = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        if interested[i] || syncing.is_empty() {
            continue;
        }
        let lacks = outcome
            .differences
            .iter()
            .filter(|d| d.values[i].is_none())
            .count();
        let only_here = outcome
            .differences
            .iter()
            .filter(|d| {
                d.values[i].is_some()
                    && d.values
                        .iter()
                        .enumerate()
                        .all(|(j, v)| j == i || v.is_none())
            })
            .count();
        let mut detail = format!(
            "no interest of {} covers this model, which {} sync; Recon exchanges a model only \
             when both sides are interested, so it never converges here",
            node.name,
            syncing.join(", ")
        );
        if lacks > 0 {
            detail.push_str(&format!("; lacks {lacks} event(s) other nodes hold"));
        }
        if only_here > 0 {
            detail.push_str(&format!(
                "; holds {only_here} event(s) no other node has, which never leave it"
            ));
        }
        if ctx.is_meta {
            detail.push_str("; this is the meta-model: model definitions created here stay here");
        }
        rows.push(
            Divergence::node_level(ctx.label, &node.name, Kind::NotInterested, detail)
                .with_majority(None, syncing.to_vec()),
        );
    }

    rows
}

/// missing_event, grouped per (node, stream).
fn missing_event_rows(ctx: &ModelCtx, outcome: &Outcome) -> Vec<Divergence> {
    let (nodes, names, interested, syncing) = (ctx.nodes, ctx.names, ctx.interested, ctx.syncing);
    let mut rows = Vec::new();
    let mut missing: BTreeMap<(usize, Cid), (u64, bool, BTreeSet<usize>)> = BTreeMap::new();
    for d in &outcome.differences {
        let holders: Vec<usize> = (0..nodes.len())
            .filter(|&j| d.values[j].is_some())
            .collect();
        let Some(event) = event_cid_of(d.key.as_bytes()) else {
            continue;
        };
        let init = holders
            .iter()
            .find_map(|&j| nodes[j].store.event(&event).ok())
            .map(|info| info.init);
        let Some(init) = init else {
            continue;
        };
        for (i, (value, wants)) in d.values.iter().zip(interested).enumerate() {
            if value.is_some() || !wants {
                continue;
            }
            let entry = missing
                .entry((i, init))
                .or_insert((0, false, BTreeSet::new()));
            entry.0 += 1;
            entry.1 |= event == init;
            entry.2.extend(holders.iter().copied());
        }
    }
    for ((i, init), (count, has_init, holders)) in missing {
        let stream = StreamId::new(ctx.stream_type, init).to_string();
        let holders: Vec<String> = holders.iter().map(|&j| names[j].clone()).collect();
        let holders_syncing = holders.iter().any(|h| syncing.contains(h));
        let detail = format!(
            "lacks {count} event(s) of this stream{}; held by {}{}",
            if has_init {
                " (the init event among them)"
            } else {
                ""
            },
            holders.join(", "),
            if holders_syncing {
                ""
            } else {
                ", none of which is interested in this model: Recon will not bring them \
                 (see not_interested)"
            }
        );
        let mut row = Divergence::stream(
            ctx.label,
            &stream,
            &names[i],
            Kind::MissingEvent,
            None,
            detail,
        )
        .with_majority(None, holders.clone());
        row.log.missing_commits = Some(count);
        row.log.ahead_node = holders.first().cloned();
        row.log.repair_hint = Some(format!(
            "copy {count} event(s) from {} (GET /ceramic/events/{{cid}}, POST /ceramic/events{})",
            holders[0],
            if has_init { ", init event first" } else { "" }
        ));
        rows.push(row);
    }

    rows
}

/// undelivered_event and state_missing: each node against its own events.
fn own_event_rows(
    ctx: &ModelCtx,
    definition: Option<Cid>,
    start: &[u8],
    end: &[u8],
) -> Result<Vec<Divergence>, CompareError> {
    let (nodes, names, label) = (ctx.nodes, ctx.names, ctx.label);
    let mut rows = Vec::new();
    let definition_holders: Vec<String> = match &definition {
        Some(def) => nodes
            .iter()
            .filter(|n| n.store.has_event(def).unwrap_or(false))
            .map(|n| n.name.clone())
            .collect(),
        None => Vec::new(),
    };
    for (i, node) in nodes.iter().enumerate() {
        let events = node.store.events(start, end).map_err(at(node))?;
        for (_, cid, _) in events.iter().filter(|e| !e.2) {
            let info = node.store.event(cid).map_err(at(node))?;
            let stream = StreamId::new(ctx.stream_type, info.init).to_string();
            let detail = match info.prev {
                Some(prev) => {
                    let here = node.store.has_event(&prev).map_err(at(node))?;
                    format!(
                        "stored but never delivered (delivered is NULL): invisible to the feed \
                         and to js-ceramic; waits for prev {prev}, which this node {}",
                        if here { "holds (delivery is stuck)" } else { "lacks" }
                    )
                }
                None => "stored but never delivered (delivered is NULL): invisible to the feed and to js-ceramic".to_string(),
            };
            rows.push(Divergence::stream(
                label,
                &stream,
                &names[i],
                Kind::UndeliveredEvent,
                Some(cid.to_string()),
                detail,
            ));
        }
        let Some(def) = definition else {
            continue;
        };
        if events.is_empty() || node.store.has_event(&def).map_err(at(node))? {
            continue;
        }
        let mut streams: BTreeMap<Cid, u64> = BTreeMap::new();
        for (_, cid, _) in &events {
            let init = node.store.event(cid).map_err(at(node))?.init;
            *streams.entry(init).or_default() += 1;
        }
        for (init, count) in streams {
            let stream = StreamId::new(ctx.stream_type, init).to_string();
            let detail = format!(
                "holds {count} event(s) of this stream but not the definition of model {label} \
                 ({}): ceramic-one cannot build its state (pending; GET /ceramic/streams answers \
                 404). Derived from the event store, not read from the node's Flight SQL",
                if definition_holders.is_empty() {
                    "no node holds it".to_string()
                } else {
                    format!("held by {}", definition_holders.join(", "))
                }
            );
            rows.push(
                Divergence::stream(label, &stream, &names[i], Kind::StateMissing, None, detail)
                    .with_majority(None, definition_holders.clone()),
            );
        }
    }

    Ok(rows)
}

/// Rebuilds the EventId of the event `cid` from the blocks a store holds (its own and its init
/// event's), as ceramic-one computes it: used to check a store's keys against its events.
pub fn rebuild_event_id(
    store: &EventStore,
    network: crate::ids::Network,
    cid: &Cid,
) -> Result<Vec<u8>, StoreError> {
    let info = store.event(cid)?;
    let init = if info.is_init() {
        info.clone()
    } else {
        store.event(&info.init)?
    };
    let header = init.header.ok_or_else(|| StoreError::Data {
        path: store.path().display().to_string(),
        message: format!("init event {} has no header", info.init),
    })?;
    Ok(super::event::event_id(network, &header, &info).to_bytes())
}
