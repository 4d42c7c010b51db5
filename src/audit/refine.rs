//! Refining `tip_mismatch` rows from the nodes' own stream states, read over their HTTP API:
//! `lagging` (the node's log is a prefix of another's), `forked` (neither contains the other;
//! the predicted winner by js-ceramic's rules) and `index_stale` (the node's index row has
//! another tip than the node's own state).
//!
//! Only nodes whose index holds the stream are asked (reading a stream a node lacks makes it
//! fetch and index it, even with `sync=2`), and only after the index comparison, so the audit
//! never heals what it measures. A node without `api_url` or whose API fails keeps its
//! `tip_mismatch` row, with the reason in `detail`.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::stream::{self, StreamExt};

use super::logs::{from_api, pick, relate, Commit, Relation, Rule, Winner};
use crate::api::{ApiOptions, NodeApi};
use crate::config::ClusterConfig;
use crate::report::{Divergence, Kind, LogFinding};

/// Streams whose logs are read at once (each from every node holding it). Too high queues
/// requests behind the per-node concurrency cap anyway; too low serializes round trips.
const STREAMS_IN_FLIGHT: usize = 8;

/// A stream to look at: which nodes hold it, with the tip each one's index row has.
pub(crate) struct Case {
    pub model: String,
    pub stream: String,
    pub index_tips: BTreeMap<String, String>,
}

pub async fn refine(config: &ClusterConfig, timeout: Duration, divergences: &mut Vec<Divergence>) {
    let apis = crate::api::clients(
        config,
        &ApiOptions {
            timeout,
            ..ApiOptions::default()
        },
    );
    if apis.is_empty() {
        return;
    }
    let mut cases: BTreeMap<(String, String), (Case, Vec<Divergence>)> = BTreeMap::new();
    let mut kept = Vec::with_capacity(divergences.len());
    for d in divergences.drain(..) {
        if d.kind != Kind::TipMismatch {
            kept.push(d);
            continue;
        }
        let (case, originals) = cases
            .entry((d.model.clone(), d.stream_id.clone()))
            .or_insert_with(|| {
                (
                    Case {
                        model: d.model.clone(),
                        stream: d.stream_id.clone(),
                        index_tips: BTreeMap::new(),
                    },
                    Vec::new(),
                )
            });
        if let Some(tip) = &d.tip {
            case.index_tips.insert(d.node.clone(), tip.clone());
        }
        if let Some(majority) = &d.majority_tip {
            for n in &d.agreeing_nodes {
                case.index_tips.insert(n.clone(), majority.clone());
            }
        }
        originals.push(d);
    }
    let apis = &apis;
    let judged: Vec<Vec<Divergence>> = stream::iter(cases.into_values())
        .map(|(case, originals)| async move {
            let logs = read_logs(apis, &case).await;
            judge_case(&case, &logs, originals)
        })
        .buffer_unordered(STREAMS_IN_FLIGHT)
        .collect()
        .await;
    kept.extend(judged.into_iter().flatten());
    *divergences = kept;
}

/// Each holding node's log of one stream, or why it could not be read.
pub(crate) type Logs = BTreeMap<String, Result<Vec<Commit>, String>>;

async fn read_logs(apis: &BTreeMap<String, NodeApi>, case: &Case) -> Logs {
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
    reads.into_iter().collect()
}

/// What an `index_stale` row says: the index row's tip against the node's own state log (CIDs
/// in order), how many commits the state is ahead (when the index tip is in the log), the
/// usual cause and the repair.
pub(crate) fn stale_index(index_tip: &str, state_log: &[&str]) -> (String, LogFinding) {
    let state_tip = state_log.last().copied().unwrap_or_default();
    let behind = state_log
        .iter()
        .position(|c| *c == index_tip)
        .map(|i| (state_log.len() - 1 - i) as u64);
    let detail = format!(
        "index tip {index_tip}, the node's state tip {state_tip}{}",
        match behind {
            Some(n) => format!(" ({n} commits later)"),
            None => " (not in the node's log)".into(),
        }
    );
    let finding = LogFinding {
        missing_commits: behind,
        likely_cause: Some(
            "the index row was not updated to the node's own stream state (a crash between \
             saving the state and updating the index?)"
                .into(),
        ),
        repair_hint: Some(
            "reindex: load the stream on this node so it re-indexes its own state".into(),
        ),
        ..LogFinding::default()
    };
    (detail, finding)
}

/// Turns one stream's `tip_mismatch` rows into what the holding nodes' logs show. The index
/// comparison flags whichever nodes differ from the majority of index rows; the logs say who
/// is actually behind: when one node is ahead of two lagging ones, the rows go to the two.
///
/// The reference is the log every other log leads to: the longest when all are prefixes of
/// one another, else the fork js-ceramic keeps ([`pick`]). Each node whose state log is a strict
/// prefix of it is `lagging`; each on another branch is `forked`; each whose index row has
/// another tip than its own state is `index_stale` (also when it lags as well). A node whose log
/// could not be read keeps its `tip_mismatch` row, saying why.
pub(crate) fn judge_case(case: &Case, logs: &Logs, originals: Vec<Divergence>) -> Vec<Divergence> {
    let ok: BTreeMap<&String, &Vec<Commit>> = logs
        .iter()
        .filter_map(|(n, l)| l.as_ref().ok().map(|l| (n, l)))
        .filter(|(_, l)| !l.is_empty())
        .collect();
    let mut out = Vec::new();
    for mut d in originals {
        match logs.get(&d.node) {
            Some(Err(e)) => {
                d.detail.push_str(&format!("; logs not read: {e}"));
                out.push(d);
            }
            None => out.push(d),
            Some(Ok(_)) if !ok.contains_key(&d.node) => {
                d.detail.push_str("; the node's log is empty");
                out.push(d);
            }
            Some(Ok(_)) => {}
        }
    }
    // The reference log, folded over the nodes in name order.
    let mut best: Option<(&String, &Vec<Commit>)> = None;
    let mut undecided: Option<String> = None;
    for (&node, &log) in &ok {
        best = Some(match best {
            None => (node, log),
            Some((bn, bl)) => match relate(bl, log) {
                Relation::Behind { .. } => (node, log),
                Relation::Same | Relation::Ahead { .. } => (bn, bl),
                Relation::Forked { .. } => match pick(bl, log) {
                    Winner::First(_) => (bn, bl),
                    Winner::Second(_) => (node, log),
                    Winner::Unknown(why) => {
                        undecided = Some(why);
                        (bn, bl)
                    }
                },
            },
        });
    }
    let Some((best_node, best_log)) = best else {
        return out;
    };
    let best_tip = best_log.last().map(|c| c.cid.clone());
    let holding_best = |except: &str| -> Vec<String> {
        ok.iter()
            .filter(|(n, l)| n.as_str() != except && l.last().map(|c| &c.cid) == best_tip.as_ref())
            .map(|(n, _)| (*n).clone())
            .collect()
    };
    let row = |node: &str, kind: Kind, detail: String, log: LogFinding| {
        let tip = case.index_tips.get(node).cloned();
        Divergence::stream(&case.model, &case.stream, node, kind, tip, detail)
            .with_majority(best_tip.clone(), holding_best(node))
            .with_log(log)
    };
    for (&node, &own) in &ok {
        let index_tip = case.index_tips.get(node).cloned().unwrap_or_default();
        let state_tip = own.last().map(|c| c.cid.clone()).unwrap_or_default();
        if state_tip != index_tip {
            let cids: Vec<&str> = own.iter().map(|c| c.cid.as_str()).collect();
            let (detail, finding) = stale_index(&index_tip, &cids);
            out.push(row(node, Kind::IndexStale, detail, finding));
        }
        match relate(own, best_log) {
            Relation::Same | Relation::Ahead { .. } => {}
            Relation::Behind { missing } => {
                let lacking = &best_log[own.len()..];
                let anchors: Vec<&Commit> = lacking.iter().filter(|c| c.anchor.is_some()).collect();
                let (cause, hint) = match anchors.first() {
                    None => (
                        "missed pubsub updates (the node was down or disconnected when they were \
                         published)"
                            .to_string(),
                        format!("republish {missing} commit(s) from {best_node}, oldest first"),
                    ),
                    Some(first) => (
                        "the node did not take an anchor commit: a node rejects an anchor proof \
                         its own anchor service cannot validate (e.g. another node's in-memory \
                         anchor service), or it missed the update"
                            .to_string(),
                        format!(
                            "unrepairable if the node rejects anchor commit {} ({} of the {missing} \
                             missing commit(s) are anchors): re-publishing it fails the same way",
                            first.cid,
                            anchors.len()
                        ),
                    ),
                };
                out.push(row(
                    node,
                    Kind::Lagging,
                    format!("misses the last {missing} commit(s) of {best_node}'s log"),
                    LogFinding {
                        missing_commits: Some(missing as u64),
                        ahead_node: Some(best_node.clone()),
                        likely_cause: Some(cause),
                        repair_hint: Some(hint),
                        ..LogFinding::default()
                    },
                ));
            }
            Relation::Forked { common } => {
                let mut finding = LogFinding {
                    fork_point: (common > 0).then(|| own[common - 1].cid.clone()),
                    likely_cause: Some(
                        "conflicting updates accepted on both sides (written while the nodes \
                         could not hear each other)"
                            .into(),
                    ),
                    ..LogFinding::default()
                };
                let detail = match (&undecided, pick(own, best_log)) {
                    (None, Winner::Second(rule)) => {
                        finding.predicted_winner = Some(best_node.clone());
                        finding.repair_hint = Some(format!(
                            "resolve_fork: with --resolve-forks, a sync=1 load on this node \
                             lets js-ceramic's conflict resolution adopt {best_node}'s branch"
                        ));
                        format!(
                            "forked from {best_node} after {common} common commit(s); js-ceramic \
                             keeps {best_node}'s branch ({})",
                            match rule {
                                Rule::OnlyOneAnchored => "the only anchored branch",
                                Rule::EarlierAnchor => "the earlier anchor",
                                Rule::Longer => "the longer branch",
                                Rule::LowerCid => "the lower last CID, as JavaScript compares them",
                            }
                        )
                    }
                    (Some(why), _) => format!("forked from {best_node}; winner unknown: {why}"),
                    (None, Winner::Unknown(why)) => {
                        format!("forked from {best_node}; winner unknown: {why}")
                    }
                    (None, Winner::First(_)) => {
                        format!("forked from {best_node}; winner unknown: the rules disagree")
                    }
                };
                out.push(row(node, Kind::Forked, detail, finding));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(tips: &[(&str, &str)]) -> Case {
        Case {
            model: "m".into(),
            stream: "s".into(),
            index_tips: tips
                .iter()
                .map(|(n, t)| (n.to_string(), t.to_string()))
                .collect(),
        }
    }

    fn log(cids: &[&str]) -> Result<Vec<Commit>, String> {
        Ok(cids
            .iter()
            .map(|c| match c.strip_prefix("anchor:") {
                Some(c) => Commit::anchor(c, Some(1)),
                None => Commit::signed(c),
            })
            .collect())
    }

    fn original(node: &str, tip: &str) -> Divergence {
        Divergence::stream(
            "m",
            "s",
            node,
            Kind::TipMismatch,
            Some(tip.into()),
            "tips differ".into(),
        )
    }

    fn kinds(rows: &[Divergence]) -> Vec<(String, Kind)> {
        rows.iter().map(|d| (d.node.clone(), d.kind)).collect()
    }

    #[test]
    fn a_majority_that_lags_gets_the_rows_not_the_node_ahead() {
        // The index majority (b, c) holds v1; a holds v2. The index comparison flags a.
        let c = case(&[("a", "v2"), ("b", "v1"), ("c", "v1")]);
        let logs: Logs = [
            ("a".to_string(), log(&["g", "v1", "v2"])),
            ("b".to_string(), log(&["g", "v1"])),
            ("c".to_string(), log(&["g", "v1"])),
        ]
        .into();
        let rows = judge_case(&c, &logs, vec![original("a", "v2")]);
        assert_eq!(
            kinds(&rows),
            vec![("b".into(), Kind::Lagging), ("c".into(), Kind::Lagging)]
        );
        assert!(rows.iter().all(|d| d.log.ahead_node.as_deref() == Some("a")
            && d.log.missing_commits == Some(1)
            && d.majority_tip.as_deref() == Some("v2")
            && d.agreeing_nodes == vec!["a".to_string()]));
        assert_eq!(
            rows[0].log.repair_hint.as_deref(),
            Some("republish 1 commit(s) from a, oldest first")
        );
    }

    #[test]
    fn a_missing_anchor_commit_is_hinted_unrepairable() {
        let c = case(&[("a", "t"), ("b", "g")]);
        let logs: Logs = [
            ("a".to_string(), log(&["g", "anchor:t"])),
            ("b".to_string(), log(&["g"])),
        ]
        .into();
        let rows = judge_case(&c, &logs, vec![original("a", "t")]);
        assert_eq!(kinds(&rows), vec![("b".into(), Kind::Lagging)]);
        let hint = rows[0].log.repair_hint.as_deref().unwrap_or_default();
        assert!(
            hint.starts_with("unrepairable if the node rejects anchor commit t"),
            "{hint}"
        );
    }

    #[test]
    fn the_losing_branch_is_forked_and_a_stale_index_is_reported_beside_a_lag() {
        // a and b forked after g; a's branch is longer and wins. c lags a by one and its index
        // row still shows g although its state has x.
        let c = case(&[("a", "y"), ("b", "z"), ("c", "g")]);
        let logs: Logs = [
            ("a".to_string(), log(&["g", "x", "y"])),
            ("b".to_string(), log(&["g", "z"])),
            ("c".to_string(), log(&["g", "x"])),
        ]
        .into();
        let rows = judge_case(&c, &logs, vec![original("b", "z"), original("c", "g")]);
        assert_eq!(
            kinds(&rows),
            vec![
                ("b".into(), Kind::Forked),
                ("c".into(), Kind::IndexStale),
                ("c".into(), Kind::Lagging)
            ]
        );
        assert_eq!(rows[0].log.predicted_winner.as_deref(), Some("a"));
        assert_eq!(rows[0].log.fork_point.as_deref(), Some("g"));
        assert_eq!(rows[1].log.missing_commits, Some(1));
    }

    #[test]
    fn a_node_whose_log_cannot_be_read_keeps_its_row() {
        let c = case(&[("a", "v2"), ("b", "v1")]);
        let logs: Logs = [
            ("a".to_string(), log(&["g", "v1", "v2"])),
            ("b".to_string(), Err("HTTP 500".into())),
        ]
        .into();
        let rows = judge_case(&c, &logs, vec![original("b", "v1")]);
        assert_eq!(kinds(&rows), vec![("b".into(), Kind::TipMismatch)]);
        assert!(
            rows[0].detail.ends_with("logs not read: HTTP 500"),
            "{}",
            rows[0].detail
        );
    }
}
