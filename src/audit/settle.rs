//! Phase 3, settle: wait, read every differing row again on every node that compared it, and
//! classify — a row that changed on some node between the two looks is `in_flight` (one row
//! per node whose value changed); the others are divergences, classified from the first look.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use tracing::info;

use super::{classify, Nodes};
use crate::recon::{Difference, Value};
use crate::report::{Divergence, Kind};
use crate::source::{Node, SourceError};

/// Differing keys of one model, as first seen.
pub(super) struct Found {
    pub(super) model: String,
    pub(super) participants: Vec<usize>,
    pub(super) differences: Vec<Difference>,
}

/// The second look: `[(found index, node)]` = stream → value now; no entry: not re-read.
type SecondLook = HashMap<(usize, usize), HashMap<String, Value>>;

pub(super) async fn settle_and_classify(nodes: &mut Nodes, found: Vec<Found>, settle: Duration) {
    let live = found.iter().any(|f| {
        f.participants
            .iter()
            .any(|&i| nodes.slots[i].node.as_ref().is_some_and(Node::is_live))
    });
    if !settle.is_zero() && !live && !found.is_empty() {
        info!(
            "No settle pause: every differing row is on a source that cannot change (a \
             snapshot, or an SQLite file nobody wrote in the last minute)."
        );
    }
    let second = if !settle.is_zero() && live {
        info!(
            seconds = settle.as_secs_f64(),
            "Settling before re-checking differing rows."
        );
        tokio::time::sleep(settle).await;
        reread(nodes, &found).await
    } else {
        SecondLook::new()
    };
    classify_found(nodes, &found, &second);
}

/// Reads every differing row again, from a fresh snapshot of each node involved.
async fn reread(nodes: &mut Nodes, found: &[Found]) -> SecondLook {
    let mut second = SecondLook::new();
    let involved: BTreeSet<usize> = found
        .iter()
        .flat_map(|f| f.participants.iter().copied())
        .collect();
    for &i in &involved {
        let Some(node) = nodes.slots[i].node.as_mut() else {
            continue;
        };
        if let Err(SourceError::Node { message, .. }) = node.begin_recheck().await {
            nodes.fail(i, message);
        }
    }
    for (m, f) in found.iter().enumerate() {
        let streams: Vec<String> = f.differences.iter().map(|d| d.key.stream()).collect();
        for &i in &f.participants {
            let Some(node) = nodes.slots[i].node.as_mut() else {
                continue;
            };
            match node.recheck(&f.model, &streams).await {
                Ok(entries) => {
                    let now = entries
                        .into_iter()
                        .map(|e| (e.key.stream(), e.value))
                        .collect();
                    second.insert((m, i), now);
                }
                Err(SourceError::Node { message, .. }) => nodes.fail(i, message),
            }
        }
    }
    nodes.end_snapshots().await;
    second
}

fn classify_found(nodes: &mut Nodes, found: &[Found], second: &SecondLook) {
    // Invalid rows the row check listed already, so a differing one is not listed twice.
    let mut invalid_listed: HashSet<(String, String, String)> = nodes
        .divergences
        .iter()
        .filter(|x| x.kind == Kind::InvalidRow)
        .map(|x| (x.model.clone(), x.stream_id.clone(), x.node.clone()))
        .collect();
    let divergences = &mut nodes.divergences;
    for (m, f) in found.iter().enumerate() {
        let compared: Vec<String> = f
            .participants
            .iter()
            .map(|&i| nodes.names[i].clone())
            .collect();
        for d in &f.differences {
            let stream = d.key.stream();
            // Differing rows are parsed exactly, whatever the row check could see in SQL.
            for (pos, value) in d.values.iter().enumerate() {
                let Some(v) = value else { continue };
                let tip = Some(v.tip.as_str()).filter(|t| !t.is_empty());
                let Some(problem) = crate::source::rows::row_problem(&stream, tip) else {
                    continue;
                };
                let first =
                    invalid_listed.insert((f.model.clone(), stream.clone(), compared[pos].clone()));
                if first {
                    divergences.push(Divergence::stream(
                        &f.model,
                        &stream,
                        &compared[pos],
                        Kind::InvalidRow,
                        tip.map(str::to_string),
                        problem,
                    ));
                }
            }
            // A malformed stream id is a bad row on the nodes that hold it (`invalid_row`,
            // above) and nothing else: the others are not "missing" a stream that cannot exist.
            if crate::ids::StreamId::parse(&stream).is_err() {
                continue;
            }
            let changed: Vec<(usize, Option<Value>)> = f
                .participants
                .iter()
                .enumerate()
                .filter_map(|(pos, &i)| {
                    let now = second.get(&(m, i))?.get(&stream).cloned();
                    (now != d.values[pos]).then_some((pos, now))
                })
                .collect();
            if changed.is_empty() {
                divergences.extend(classify::classify(&f.model, d, &compared));
                continue;
            }
            for (pos, now) in changed {
                divergences.push(Divergence::stream(
                    &f.model,
                    &stream,
                    &compared[pos],
                    Kind::InFlight,
                    now.as_ref().map(|v| v.tip.clone()).filter(|t| !t.is_empty()),
                    format!(
                        "changed during the audit: {} then {}; re-audit to see whether it converged",
                        describe(&d.values[pos]),
                        describe(&now)
                    ),
                ));
            }
        }
    }
}

fn describe(v: &Option<Value>) -> String {
    match v {
        None => "(absent)".into(),
        Some(v) if v.tip.is_empty() => {
            format!("(no tip, columns {:08x})", v.digest >> 32)
        }
        Some(v) => format!("{} (columns {:08x})", v.tip, v.digest >> 32),
    }
}
