//! `--verify-state all | sample:N`: compares index rows with their own node's stream state,
//! also where every node's index agrees (a crash between the state store save and the index
//! upsert on every node at once, or on a single-node cluster, leaves nothing to compare across
//! nodes). A row whose tip is not the node's state tip is `index_stale`; a row whose stream the
//! node cannot load is `index_stale` too, saying so.
//!
//! Each node is asked only about streams its own index holds (a node that lacks a stream loads
//! and indexes it when asked), in `POST /api/v0/multiqueries` batches with `sync: 2`. Rows
//! already reported for that node are not asked again.

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use super::Slot;
use crate::api::ApiOptions;
use crate::config::ClusterConfig;
use crate::report::{Divergence, Kind};
use crate::source::ModelState;

/// Streams per multiquery. Too many makes one slow load (the node's own timeout) fail a whole
/// batch and holds a large answer in memory; too few spends a round trip per handful of rows.
const BATCH: usize = 50;

/// Which index rows to compare with their node's state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VerifyState {
    #[default]
    Off,
    All,
    /// This many rows per node and model, drawn at random.
    Sample(u64),
}

impl FromStr for VerifyState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(Self::Off),
            "all" => Ok(Self::All),
            _ => match s.strip_prefix("sample:").map(str::parse::<u64>) {
                Some(Ok(n)) if n > 0 => Ok(Self::Sample(n)),
                _ => Err(format!(
                    "expected off, all or sample:N (N a positive number), got {s:?}"
                )),
            },
        }
    }
}

/// What one node was asked and what it answered.
struct Asked {
    node: String,
    model: String,
    rows: Vec<(String, String)>,
}

/// Returns false when something asked for could not be read (an index or a node's API): the
/// report is then incomplete, with a row naming the node (and the model) that was not verified.
pub(super) async fn verify(
    config: &ClusterConfig,
    slots: &mut [Slot],
    names: &[String],
    models: &[String],
    how: VerifyState,
    timeout: Duration,
    divergences: &mut Vec<Divergence>,
) -> bool {
    let sample = match how {
        VerifyState::Off => return true,
        VerifyState::All => None,
        VerifyState::Sample(n) => Some(n),
    };
    let reported: HashSet<(String, String, String)> = divergences
        .iter()
        .map(|d| (d.model.clone(), d.stream_id.clone(), d.node.clone()))
        .collect();
    let mut asked: Vec<Asked> = Vec::new();
    let mut complete = true;
    for (i, slot) in slots.iter_mut().enumerate() {
        let Some(node) = slot.node.as_mut() else {
            continue;
        };
        if config.nodes[i].api_url.is_none() {
            continue;
        }
        for model in models {
            if !matches!(node.models.get(model), Some(ModelState::Ready(_))) {
                continue;
            }
            match node.index_tips(model, sample).await {
                Ok(rows) => asked.push(Asked {
                    node: names[i].clone(),
                    model: model.clone(),
                    rows: rows
                        .into_iter()
                        .filter(|(s, _)| {
                            !reported.contains(&(model.clone(), s.clone(), names[i].clone()))
                        })
                        .collect(),
                }),
                Err(e) => {
                    tracing::warn!(node = %names[i], model = %model, "--verify-state: {e}");
                    complete = false;
                    divergences.push(Divergence::node_level(
                        model,
                        &names[i],
                        Kind::Unreachable,
                        format!("--verify-state could not read the index rows: {e}"),
                    ));
                }
            }
        }
    }
    let apis = crate::api::clients(
        config,
        &ApiOptions {
            timeout,
            ..ApiOptions::default()
        },
    );
    let apis = &apis;
    let found = futures::future::join_all(asked.iter().map(|a| async move {
        let Some(api) = apis.get(&a.node) else {
            return vec![unverified(a, "no HTTP client for its api_url")];
        };
        let mut out = Vec::new();
        for (k, chunk) in a.rows.chunks(BATCH).enumerate() {
            let ids: Vec<String> = chunk.iter().map(|(s, _)| s.clone()).collect();
            let states = match api.multiquery(&ids).await {
                Ok(states) => states,
                Err(e) => {
                    tracing::warn!(node = %a.node, model = %a.model, "--verify-state: {e}");
                    let unasked = a.rows.len() - k * BATCH;
                    out.push(unverified(
                        a,
                        &format!(
                            "{e} (streams {}…: {unasked} of {} rows not verified)",
                            ids.first().map(String::as_str).unwrap_or_default(),
                            a.rows.len()
                        ),
                    ));
                    break;
                }
            };
            for (stream, index_tip) in chunk {
                if states.get(stream).and_then(|s| s.tip()) == Some(index_tip.as_str()) {
                    continue;
                }
                let (detail, log) = match states.get(stream) {
                    Some(state) => {
                        let cids: Vec<&str> = state.log.iter().map(|e| e.cid.as_str()).collect();
                        let (detail, finding) = super::refine::stale_index(index_tip, &cids);
                        (format!("{detail} (--verify-state)"), finding)
                    }
                    None => {
                        let (_, finding) = super::refine::stale_index(index_tip, &[]);
                        (
                            "the index has a row but the node could not load the stream \
                             (--verify-state)"
                                .to_string(),
                            finding,
                        )
                    }
                };
                out.push(
                    Divergence::stream(
                        &a.model,
                        stream,
                        &a.node,
                        Kind::IndexStale,
                        Some(index_tip.clone()),
                        detail,
                    )
                    .with_log(log),
                );
            }
        }
        out
    }))
    .await;
    for rows in found {
        // Only a verification that stopped adds an `unreachable` row.
        complete &= !rows.iter().any(|d| d.kind == Kind::Unreachable);
        divergences.extend(rows);
    }
    complete
}

/// A model-level row saying that the verification stopped on this node.
fn unverified(a: &Asked, why: &str) -> Divergence {
    Divergence::node_level(
        &a.model,
        &a.node,
        Kind::Unreachable,
        format!("--verify-state stopped: {why}"),
    )
}
