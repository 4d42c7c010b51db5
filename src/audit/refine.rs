//! Refining `tip_mismatch` rows from the nodes' own stream states, read over their HTTP API:
//! `lagging` (the node's log is a prefix of another's), `forked` (neither contains the other;
//! the predicted winner by js-ceramic's rules) and `index_stale` (the node's index row has
//! another tip than the node's own state).
//!
//! Only nodes whose index holds the stream are asked (reading a stream a node lacks makes it
//! fetch and index it, even with `sync=2`), and only after the index comparison, so the audit
//! never heals what it measures. A node without `api_url` or whose API fails keeps its
//! `tip_mismatch` row, with the reason in `detail`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use futures::stream::{self, StreamExt};

use super::logs::{from_api, pick, relate, Commit, Relation, Rule, Winner};
use crate::api::{ApiOptions, NodeApi};
use crate::config::ClusterConfig;
use crate::report::{Divergence, Kind};

/// Streams whose logs are read at once (each from every node holding it). Too high queues
/// requests behind the per-node concurrency cap anyway; too low serializes round trips.
const STREAMS_IN_FLIGHT: usize = 8;

/// A stream to look at: which nodes hold it, with the tip each one's index row has.
struct Case {
    model: String,
    stream: String,
    index_tips: BTreeMap<String, String>,
}

pub async fn refine(config: &ClusterConfig, timeout: Duration, divergences: &mut [Divergence]) {
    let apis: HashMap<String, NodeApi> = config
        .nodes
        .iter()
        .filter_map(|n| {
            let url = n.api_url.as_ref()?;
            let options = ApiOptions {
                timeout,
                ..ApiOptions::default()
            };
            match NodeApi::new(&n.name, url, options) {
                Ok(api) => Some((n.name.clone(), api)),
                Err(e) => {
                    tracing::warn!("{e}");
                    None
                }
            }
        })
        .collect();
    if apis.is_empty() {
        return;
    }
    let mut cases: BTreeMap<(String, String), Case> = BTreeMap::new();
    for d in divergences.iter().filter(|d| d.kind == Kind::TipMismatch) {
        let case = cases
            .entry((d.model.clone(), d.stream_id.clone()))
            .or_insert_with(|| Case {
                model: d.model.clone(),
                stream: d.stream_id.clone(),
                index_tips: BTreeMap::new(),
            });
        if let Some(tip) = &d.tip {
            case.index_tips.insert(d.node.clone(), tip.clone());
        }
        if let Some(majority) = &d.majority_tip {
            for n in &d.agreeing_nodes {
                case.index_tips.insert(n.clone(), majority.clone());
            }
        }
    }
    let apis = &apis;
    let results: Vec<((String, String), Logs)> = stream::iter(cases.into_values())
        .map(|case| read_logs(apis, case))
        .buffer_unordered(STREAMS_IN_FLIGHT)
        .collect()
        .await;
    let results: HashMap<(String, String), Logs> = results.into_iter().collect();
    for d in divergences
        .iter_mut()
        .filter(|d| d.kind == Kind::TipMismatch)
    {
        let Some(logs) = results.get(&(d.model.clone(), d.stream_id.clone())) else {
            continue;
        };
        judge(d, logs);
    }
}

/// Each holding node's log of one stream, or why it could not be read.
type Logs = BTreeMap<String, Result<Vec<Commit>, String>>;

async fn read_logs(apis: &HashMap<String, NodeApi>, case: Case) -> ((String, String), Logs) {
    let stream_id = case.stream.as_str();
    let reads = futures::future::join_all(case.index_tips.keys().map(|node| async move {
        let log = match apis.get(node) {
            None => Err("no api_url for this node".to_string()),
            Some(api) => api
                .stream(stream_id)
                .await
                .map(|s| from_api(&s.log))
                .map_err(|e| e.to_string()),
        };
        (node.clone(), log)
    }))
    .await;
    ((case.model, case.stream), reads.into_iter().collect())
}

/// Turns one `tip_mismatch` row into what the logs show.
fn judge(d: &mut Divergence, logs: &Logs) {
    let own = match logs.get(&d.node) {
        Some(Ok(log)) => log,
        Some(Err(e)) => {
            d.detail.push_str(&format!("; logs not read: {e}"));
            return;
        }
        None => return,
    };
    let index_tip = d.tip.clone().unwrap_or_default();
    let state_tip = own.last().map(|c| c.cid.clone()).unwrap_or_default();
    if state_tip != index_tip {
        d.kind = Kind::IndexStale;
        let behind = own
            .iter()
            .position(|c| c.cid == index_tip)
            .map(|i| (own.len() - 1 - i) as u64);
        d.log.missing_commits = behind;
        d.log.likely_cause = Some(
            "the index row was not updated to the node's own stream state (a crash between \
             saving the state and updating the index?)"
                .into(),
        );
        d.detail = format!(
            "index tip {index_tip}, the node's state tip {state_tip}{}",
            match behind {
                Some(n) => format!(" ({n} commits later)"),
                None => " (not in the node's log)".into(),
            }
        );
        return;
    }
    let mut behind: Option<(u64, &String)> = None;
    let mut fork: Option<(usize, &String, &Vec<Commit>)> = None;
    let mut ahead_of: Vec<&String> = Vec::new();
    for (node, log) in logs {
        let Ok(log) = log else { continue };
        if *node == d.node {
            continue;
        }
        match relate(own, log) {
            Relation::Behind { missing } => {
                if behind.is_none_or(|(m, _)| (missing as u64) > m) {
                    behind = Some((missing as u64, node));
                }
            }
            Relation::Forked { common } => {
                if fork.is_none() {
                    fork = Some((common, node, log));
                }
            }
            Relation::Ahead { .. } => ahead_of.push(node),
            Relation::Same => {}
        }
    }
    if let Some((missing, node)) = behind {
        d.kind = Kind::Lagging;
        d.log.missing_commits = Some(missing);
        d.log.ahead_node = Some(node.clone());
        d.log.likely_cause = Some(
            "missed pubsub updates (the node was down or disconnected when they were published)"
                .into(),
        );
        d.detail = format!("misses the last {missing} commit(s) of {node}'s log");
    } else if let Some((common, node, other)) = fork {
        d.kind = Kind::Forked;
        d.log.fork_point = (common > 0).then(|| own[common - 1].cid.clone());
        let (winner, rule) = match pick(own, other) {
            Winner::First(rule) => (Some(d.node.clone()), Some(rule)),
            Winner::Second(rule) => (Some(node.clone()), Some(rule)),
            Winner::Unknown(why) => {
                d.detail = format!("forked from {node}; winner unknown: {why}");
                (None, None)
            }
        };
        if let (Some(w), Some(rule)) = (winner, rule) {
            let why = match rule {
                Rule::OnlyOneAnchored => "the only anchored branch",
                Rule::EarlierAnchor => "the earlier anchor",
                Rule::Longer => "the longer branch",
                Rule::LowerCid => "the lower last CID, as JavaScript compares them",
            };
            d.log.predicted_winner = Some(w.clone());
            d.detail = format!(
                "forked from {node} after {common} common commit(s); js-ceramic keeps {w}'s \
                 branch ({why})"
            );
        }
        d.log.likely_cause = Some(
            "conflicting updates accepted on both sides (written while the nodes could not \
             hear each other)"
                .into(),
        );
    } else if !ahead_of.is_empty() {
        d.detail.push_str(&format!(
            "; this node's log is ahead of {}: they lag",
            ahead_of
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
}
