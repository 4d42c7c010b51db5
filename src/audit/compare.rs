//! Phase 2, compare per model: which nodes take part, the incremental scope, the row check,
//! and the N-way descent — switched to download when most of the model differs, and run again
//! without a node that fails in the middle.

use std::collections::BTreeMap;
use std::time::Instant;

use futures::future::join_all;
use tracing::info;

use super::settle::Found;
use super::{AuditOptions, Nodes, DOWNLOAD_SWITCH_SHARE};
use crate::recon::{Cost, Descent, DescentParams, Difference, Query};
use crate::report::{Divergence, Kind, ModelReport};
use crate::source::{IndexHash, ModelState, SourceError};

/// The outcome of one model's descent among `nodes`.
enum ModelRun {
    /// A node answered something that does not fit the question (`node`: the slot of the one
    /// the error names; `None`: it names none). The model is not compared on that node; the
    /// node stays in the audit for other models.
    Inconsistent {
        node: Option<usize>,
        message: String,
    },
    Done {
        differences: Vec<Difference>,
        cost: Cost,
        /// Why it stopped before the end (a cap), if it did.
        stopped: Option<String>,
    },
    /// Most first-level ranges differ: compare again with Postgres nodes downloading.
    SwitchToDownload(f64),
    /// These nodes failed; compare again without them.
    Failed(Vec<(usize, String)>),
}

/// Limits a descent runs under.
struct Limits {
    max_diffs: Option<u64>,
    deadline: Option<Instant>,
    /// May switch to download when most first-level ranges differ (a push-down Postgres node
    /// takes part and the model was not switched already).
    may_switch: bool,
}

/// Compares `model` among the nodes that index it; returns its report line and, when rows
/// differ, what differs (classified after the settle pause).
pub(super) async fn compare_model(
    nodes: &mut Nodes,
    model: &String,
    options: &AuditOptions,
    started: Instant,
) -> (ModelReport, Option<Found>) {
    let mut participants = participants(nodes, model);
    if let Some(in_scope) = options.scope.as_ref().and_then(|s| s.get(model)) {
        restrict(nodes, &mut participants, model, in_scope).await;
    }
    let invalid_rows_not_listed = check_rows(nodes, &participants, model, options).await;
    let mut cost = None;
    let mut differing = 0u64;
    let mut stopped: Option<String> = None;
    let mut switched: Option<f64> = None;
    let mut found = None;
    loop {
        participants.retain(|&i| nodes.slots[i].node.is_some());
        if participants.len() < 2 {
            info!(model = %model, "Fewer than 2 nodes can be compared for this model.");
            break;
        }
        // Where a node's Postgres computes the fingerprints, start with a cheap bounds-only
        // look so the rows are hashed once, not twice (see DescentParams::root_bounds_only).
        let pushing_down = participants.iter().any(|&i| {
            nodes.slots[i]
                .node
                .as_ref()
                .is_some_and(|n| n.pushes_down(model))
        });
        // ... and cut the second level on a prefix grid, so rows are reached in 3 rounds and the
        // nodes answer the grid from one grouped scan (see DescentParams::grid).
        let params = DescentParams {
            root_bounds_only: pushing_down,
            grid: pushing_down,
            ..options.params.clone()
        };
        let limits = Limits {
            max_diffs: options.max_diffs,
            deadline: options.max_duration.map(|d| started + d),
            may_switch: pushing_down && switched.is_none(),
        };
        match descend(nodes, &participants, model, &params, &limits, options).await {
            ModelRun::SwitchToDownload(share) => {
                info!(
                    model = %model,
                    share,
                    "Most first-level ranges differ: Postgres nodes download this model instead."
                );
                for (_, n) in nodes.participating(&participants) {
                    n.download_model(model);
                }
                switched = Some(share);
            }
            ModelRun::Done {
                differences,
                cost: c,
                stopped: why,
            } => {
                if let Some(why) = &why {
                    info!(model = %model, "{why}");
                    nodes.complete = false;
                }
                stopped = why;
                differing = differences.len() as u64;
                if !differences.is_empty() {
                    found = Some(Found {
                        model: model.clone(),
                        participants: participants.clone(),
                        differences,
                    });
                }
                cost = Some(c);
                break;
            }
            ModelRun::Inconsistent {
                node: Some(i),
                message,
            } => {
                tracing::warn!(node = %nodes.names[i], model = %model, "{message}");
                nodes.complete = false;
                let row =
                    Divergence::node_level(model, &nodes.names[i], Kind::Unreachable, message);
                nodes.divergences.push(row);
                participants.retain(|p| *p != i);
            }
            ModelRun::Inconsistent {
                node: None,
                message,
            } => {
                tracing::warn!(model = %model, "{message}");
                nodes.complete = false;
                stopped = Some(format!("{message}; this model was not compared"));
                break;
            }
            ModelRun::Failed(failures) => {
                for (i, message) in failures {
                    nodes.fail(i, message);
                }
            }
        }
    }
    let bytes_over_bound = cost.as_ref().and_then(|c: &Cost| {
        (differing > 0).then(|| (c.bytes_sent + c.bytes_received) as f64 / (differing as f64 * 8.0))
    });
    let report = ModelReport {
        model: model.clone(),
        nodes_compared: participants
            .iter()
            .map(|&i| nodes.names[i].clone())
            .collect(),
        differing_streams: differing,
        counts: BTreeMap::new(),
        cost,
        bytes_over_bound,
        stopped,
        switched_to_download: switched,
        invalid_rows_not_listed,
    };
    (report, found)
}

/// The open nodes whose index holds `model` ready to compare; the others get a row saying why.
fn participants(nodes: &mut Nodes, model: &str) -> Vec<usize> {
    let mut participants = Vec::new();
    for i in 0..nodes.slots.len() {
        let Some(node) = &nodes.slots[i].node else {
            continue;
        };
        let (kind, detail) = match node.models.get(model) {
            Some(ModelState::Ready(_)) => {
                participants.push(i);
                continue;
            }
            Some(ModelState::BadSchema { detail }) => {
                nodes.complete = false;
                (Kind::Unreachable, detail.clone())
            }
            Some(ModelState::NotIndexed) => (
                Kind::ModelNotIndexed,
                "ceramic_models has is_indexed = false for this model".into(),
            ),
            Some(ModelState::Missing) | None => (
                Kind::ModelNotIndexed,
                "the model is not in this node's index (no ceramic_models row or no table)".into(),
            ),
        };
        let row = Divergence::node_level(model, &nodes.names[i], kind, detail);
        nodes.divergences.push(row);
    }
    participants
}

/// An incremental cycle: each participant holds just the streams in scope (a model the scope
/// does not name is compared whole). A node that cannot be restricted leaves the comparison.
async fn restrict(
    nodes: &mut Nodes,
    participants: &mut Vec<usize>,
    model: &str,
    in_scope: &std::collections::BTreeSet<String>,
) {
    let streams: Vec<String> = in_scope.iter().cloned().collect();
    let streams = &streams;
    let restricted = join_all(
        nodes
            .participating(participants)
            .map(|(i, node)| async move { (i, node.restrict(model, streams).await) }),
    )
    .await;
    for (i, r) in restricted {
        if let Err(SourceError::Node { message, .. }) = r {
            nodes.complete = false;
            let row = Divergence::node_level(model, &nodes.names[i], Kind::Unreachable, message);
            nodes.divergences.push(row);
            participants.retain(|p| *p != i);
        }
    }
}

/// Invalid rows, every participant at once (a full scan on each Postgres node). Returns, per
/// node, how many more rows failed the check than it listed: the report is then incomplete.
async fn check_rows(
    nodes: &mut Nodes,
    participants: &[usize],
    model: &str,
    options: &AuditOptions,
) -> BTreeMap<String, u64> {
    let checks = join_all(
        nodes
            .participating(participants)
            .map(|(i, node)| async move {
                let rows = node.invalid_rows(model, options.row_check).await;
                (i, rows, node.invalid_rows_not_listed(model))
            }),
    )
    .await;
    let mut not_listed = BTreeMap::new();
    for (i, result, more) in checks {
        if more > 0 && result.is_ok() {
            let name = nodes.names[i].clone();
            tracing::warn!(
                node = %name,
                model = %model,
                "{more} more rows fail the invalid-row check than are listed in the report"
            );
            nodes.complete = false;
            not_listed.insert(name, more);
        }
        match result {
            Ok(rows) => {
                for r in rows {
                    nodes.divergences.push(Divergence::stream(
                        model,
                        &r.stream_id,
                        &nodes.names[i],
                        Kind::InvalidRow,
                        r.tip,
                        r.problem,
                    ));
                }
            }
            Err(SourceError::Node { message, .. }) => nodes.fail(i, message),
        }
    }
    not_listed
}

async fn descend(
    nodes: &mut Nodes,
    participants: &[usize],
    model: &str,
    params: &DescentParams,
    limits: &Limits,
    options: &AuditOptions,
) -> ModelRun {
    let mut descent = match Descent::<IndexHash>::new(participants.len(), params.clone()) {
        Ok(d) => d,
        Err(e) => {
            return ModelRun::Inconsistent {
                node: None,
                message: format!("descent refused: {e}"),
            }
        }
    };
    while let Some(batch) = descent.queries() {
        // Every participant answers the same batch concurrently.
        let mut asked: Vec<_> = nodes.participating(participants).collect();
        let before: Vec<_> = asked.iter().map(|(_, n)| n.stats()).collect();
        let results = join_all(asked.iter_mut().map(|(_, n)| n.answer(model, &batch))).await;
        // A round no node needed a statement or a byte for (the bounds-only root, answered
        // from the row check) was no round trip.
        let root = matches!(batch.as_slice(), [Query::Bounds { .. }]);
        let local = root
            && asked.iter().zip(&before).all(|((_, n), b)| {
                let now = n.stats();
                now.statements == b.statements && now.bytes_received == b.bytes_received
            });
        let mut answers = Vec::with_capacity(results.len());
        let mut failed = Vec::new();
        for ((i, _), r) in asked.iter().zip(results) {
            match r {
                Ok(a) => answers.push(a),
                Err(SourceError::Node { message, .. }) => failed.push((*i, message)),
            }
        }
        if !failed.is_empty() {
            return ModelRun::Failed(failed);
        }
        let compared_before = descent.cost().ranges_compared;
        let differing_before = descent.cost().ranges_differing;
        let fed = if local {
            descent.feed_local(answers)
        } else {
            descent.feed(answers)
        };
        if let Err(e) = fed {
            // A source answered something that does not fit the question: the store the error
            // names (answers are in `asked` order), or none when the error names no store.
            return ModelRun::Inconsistent {
                node: blamed_store(&e).and_then(|k| asked.get(k)).map(|(i, _)| *i),
                message: format!("inconsistent answers for model {model}: {e}"),
            };
        }
        show_round(nodes, participants, model, &descent, options);
        // The first round that compared several ranges is the first level of the split.
        let compared = descent.cost().ranges_compared - compared_before;
        let differing = descent.cost().ranges_differing - differing_before;
        if limits.may_switch && compared_before <= 1 && compared > 1 {
            let share = differing as f64 / compared as f64;
            if share > DOWNLOAD_SWITCH_SHARE {
                return ModelRun::SwitchToDownload(share);
            }
        }
        if let Some(stop) = stop_reason(&descent, limits) {
            let mut outcome = descent.finish();
            if let Some(max) = limits.max_diffs {
                outcome.differences.truncate(max as usize);
            }
            return ModelRun::Done {
                differences: outcome.differences,
                cost: outcome.cost,
                stopped: Some(stop),
            };
        }
    }
    let outcome = descent.finish();
    ModelRun::Done {
        differences: outcome.differences,
        cost: outcome.cost,
        stopped: None,
    }
}

/// The progress display's detail: the model, its round, rows the participants read so far.
fn show_round(
    nodes: &mut Nodes,
    participants: &[usize],
    model: &str,
    descent: &Descent<IndexHash>,
    options: &AuditOptions,
) {
    if !options.progress.is_drawn() {
        return;
    }
    let rows: u64 = nodes
        .participating(participants)
        .map(|(_, n)| n.stats().rows)
        .sum();
    // The tail of a model id tells models apart; the whole id would push the bar off the line.
    let short = model.get(model.len().saturating_sub(10)..).unwrap_or(model);
    options.progress.detail(format!(
        "…{short}: round {}, {rows} rows read, {} differing",
        descent.rounds(),
        descent.differences_found()
    ));
}

/// The store a descent error names (its index in the answers), if it names one.
fn blamed_store(e: &crate::recon::DescentError) -> Option<usize> {
    use crate::recon::DescentError as E;
    match e {
        E::AnswerCount { store, .. }
        | E::AnswerKind { store, .. }
        | E::OutOfRange { store, .. }
        | E::DuplicateKey { store, .. } => Some(*store),
        E::StoreCount(_) | E::Params(_) | E::AnswerSets { .. } | E::Finished => None,
    }
}

/// Why an unfinished descent stops now (a cap reached), if it does.
fn stop_reason(descent: &Descent<IndexHash>, limits: &Limits) -> Option<String> {
    if descent.is_finished() {
        return None;
    }
    if let Some(max) = limits
        .max_diffs
        .filter(|&m| descent.differences_found() as u64 >= m)
    {
        Some(format!(
            "stopped at --max-diffs {max}: the first {max} (in key order) of {} differing \
             streams found so far are listed; more may exist",
            descent.differences_found()
        ))
    } else if limits.deadline.is_some_and(|d| Instant::now() >= d) {
        Some(format!(
            "stopped at --max-seconds after {} rounds: {} differing streams found so far, \
             more may exist",
            descent.rounds(),
            descent.differences_found()
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recon::DescentError;

    /// The store an inconsistent answer came from is the one blamed (the second here), not the
    /// first participant; an error naming no store blames none.
    #[test]
    fn the_store_an_error_names_is_blamed() {
        let dup = DescentError::DuplicateKey {
            store: 1,
            key: "k".into(),
        };
        assert_eq!(blamed_store(&dup), Some(1));
        let out = DescentError::OutOfRange {
            store: 2,
            key: "k".into(),
            range: "[a, b)".into(),
        };
        assert_eq!(blamed_store(&out), Some(2));
        assert_eq!(
            blamed_store(&DescentError::AnswerSets {
                expected: 3,
                got: 2
            }),
            None
        );
    }
}
