//! Explaining `content_mismatch` rows (issue 13): a node's row has the majority's tip but other
//! column content. Its index row's content and controller are compared with the node's own
//! stream state (`GET /streams/:id?sync=2`), and that state with the other holders' states:
//!
//! - the row differs from the node's own state: the index was damaged or edited
//!   (`index_differs_from_state`, hint `reindex`: a sync=1 load rewrites the row from the
//!   state, observed on 6.11);
//! - the row matches the node's state, but the state differs from another node's at the same
//!   tip (`state_differs_from_other_nodes`): reported, no repair guessed;
//! - both match: the difference is in columns the state does not give here (anchor times,
//!   custom columns): `other_columns`.
//!
//! Only nodes whose index holds the stream are asked (every node compared here has a row for
//! it), so the audit still heals nothing it measures. A cause that cannot be read (no
//! `api_url`, a snapshot node, an API error) is left empty and `detail` says why.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::stream::{self, StreamExt};

use super::Slot;
use crate::api::{ApiOptions, NodeApi, StreamState};
use crate::config::ClusterConfig;
use crate::report::{ContentCause, Divergence, Kind};
use crate::source::rows::{jsonb_value_text, RowContent};

/// State reads in flight at once (over all nodes). Too many queues behind the per-node cap;
/// too few serializes round trips. Content mismatches are rare, so this matters little.
const READS_IN_FLIGHT: usize = 8;

/// What differs between an index row and a stream state: `None` when content and controller
/// agree, else the names of the columns that differ.
pub fn row_vs_state(row: &RowContent, state: &StreamState) -> Option<String> {
    let mut differs = Vec::new();
    if row.content.as_deref() != Some(jsonb_value_text(&state.content).as_str()) {
        differs.push("content");
    }
    if row.controller.as_deref() != state.metadata.controllers.first().map(String::as_str) {
        differs.push("controller");
    }
    (!differs.is_empty()).then(|| differs.join(" and "))
}

/// Whether two states hold the same content and controller.
fn same_state(x: &StreamState, y: &StreamState) -> bool {
    jsonb_value_text(&x.content) == jsonb_value_text(&y.content)
        && x.metadata.controllers.first() == y.metadata.controllers.first()
}

pub(super) async fn explain(
    config: &ClusterConfig,
    slots: &mut [Slot],
    names: &[String],
    timeout: Duration,
    divergences: &mut [Divergence],
) {
    // Per (model, stream): the nodes whose row is in question and the nodes to compare with.
    let mut cases: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for d in divergences
        .iter()
        .filter(|d| d.kind == Kind::ContentMismatch)
    {
        let holders = cases
            .entry((d.model.clone(), d.stream_id.clone()))
            .or_default();
        holders.insert(d.node.clone());
        holders.extend(d.agreeing_nodes.iter().cloned());
    }
    if cases.is_empty() {
        return;
    }
    // The index rows of the nodes in question, read per node and model.
    let mut rows: BTreeMap<(String, String, String), Result<RowContent, String>> = BTreeMap::new();
    let mut wanted: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for d in divergences
        .iter()
        .filter(|d| d.kind == Kind::ContentMismatch)
    {
        wanted
            .entry((d.node.clone(), d.model.clone()))
            .or_default()
            .push(d.stream_id.clone());
    }
    for ((node, model), streams) in wanted {
        let Some(slot) = names
            .iter()
            .position(|n| *n == node)
            .and_then(|i| slots[i].node.as_mut())
        else {
            continue;
        };
        let read = match slot.begin_recheck().await {
            Ok(()) => slot.contents(&model, &streams).await,
            Err(e) => Err(e),
        };
        for s in &streams {
            let row = match &read {
                Ok(found) => found
                    .iter()
                    .find(|r| &r.stream_id == s)
                    .cloned()
                    .ok_or_else(|| "the row is gone from the index".to_string()),
                Err(e) => Err(e.to_string()),
            };
            rows.insert((node.clone(), model.clone(), s.clone()), row);
        }
    }
    // Every holder's state of each stream (they all index it: reading it heals nothing).
    let apis = crate::api::clients(
        config,
        &ApiOptions {
            timeout,
            ..ApiOptions::default()
        },
    );
    let apis = &apis;
    let reads: Vec<(String, String, Result<StreamState, String>)> =
        stream::iter(cases.iter().flat_map(|((_, stream), holders)| {
            holders.iter().map(move |n| (n.clone(), stream.clone()))
        }))
        .map(|(node, stream)| async move {
            let state = read_state(apis.get(&node), &stream).await;
            (node, stream, state)
        })
        .buffer_unordered(READS_IN_FLIGHT)
        .collect()
        .await;
    let states: BTreeMap<(String, String), Result<StreamState, String>> =
        reads.into_iter().map(|(n, s, st)| ((n, s), st)).collect();
    for d in divergences
        .iter_mut()
        .filter(|d| d.kind == Kind::ContentMismatch)
    {
        let holders = &cases[&(d.model.clone(), d.stream_id.clone())];
        let row = rows.get(&(d.node.clone(), d.model.clone(), d.stream_id.clone()));
        judge(d, row, holders, &states);
    }
}

async fn read_state(api: Option<&NodeApi>, stream: &str) -> Result<StreamState, String> {
    match api {
        None => Err("no api_url for this node".into()),
        Some(api) => api.stream(stream).await.map_err(|e| e.to_string()),
    }
}

/// Sets one row's cause, likely cause and repair hint from what was read.
fn judge(
    d: &mut Divergence,
    row: Option<&Result<RowContent, String>>,
    holders: &BTreeSet<String>,
    states: &BTreeMap<(String, String), Result<StreamState, String>>,
) {
    let own = states.get(&(d.node.clone(), d.stream_id.clone()));
    let (row, own) = match (row, own) {
        (Some(Ok(row)), Some(Ok(own))) => (row, own),
        (row, own) => {
            let why = [
                row.and_then(|r| r.as_ref().err()),
                own.and_then(|s| s.as_ref().err()),
            ]
            .into_iter()
            .flatten()
            .cloned()
            .collect::<Vec<_>>();
            d.detail.push_str(&format!(
                "; cause not determined: {}",
                if why.is_empty() {
                    "the row or the state was not read".to_string()
                } else {
                    why.join("; ")
                }
            ));
            return;
        }
    };
    if let Some(what) = row_vs_state(row, own) {
        d.log.content_cause = Some(ContentCause::IndexDiffersFromState);
        d.log.likely_cause = Some(format!(
            "the index row's {what} differs from the node's own stream state at the same tip \
             (the index was damaged or edited)"
        ));
        d.log.repair_hint = Some(
            "reindex: load the stream on this node so it rewrites the row from its own state"
                .into(),
        );
        return;
    }
    let others: Vec<&String> = holders
        .iter()
        .filter(|n| **n != d.node)
        .filter(|n| {
            matches!(states.get(&((*n).clone(), d.stream_id.clone())), Some(Ok(s)) if !same_state(s, own))
        })
        .collect();
    if !others.is_empty() {
        d.log.content_cause = Some(ContentCause::StateDiffersFromOtherNodes);
        d.log.likely_cause = Some(format!(
            "the index row matches the node's own state, but that state's content or controller \
             differs from the state of {} at the same tip",
            others
                .iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        d.log.repair_hint = Some(
            "none: a state that differs at the same tip is reported, not repaired (which one is \
             right cannot be told from here)"
                .into(),
        );
        return;
    }
    d.log.content_cause = Some(ContentCause::OtherColumns);
    d.log.likely_cause = Some(
        "content and controller match the node's own state and the other nodes' states: the \
         difference is in anchor times or custom columns"
            .into(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Metadata;
    use serde_json::json;

    fn state(content: serde_json::Value, controller: &str) -> StreamState {
        StreamState {
            stream_type: 3,
            content,
            metadata: Metadata {
                controllers: vec![controller.into()],
                model: None,
            },
            anchor_status: None,
            log: Vec::new(),
        }
    }

    fn row(content: &str, controller: &str) -> RowContent {
        RowContent {
            stream_id: "s".into(),
            controller: Some(controller.into()),
            content: Some(content.into()),
        }
    }

    fn mismatch(node: &str) -> Divergence {
        Divergence {
            model: "m".into(),
            stream_id: "s".into(),
            node: node.into(),
            kind: Kind::ContentMismatch,
            tip: Some("t".into()),
            majority_tip: Some("t".into()),
            agreeing_nodes: vec!["a".into()],
            detail: "same tip".into(),
            log: Default::default(),
            first_seen: None,
            cycles: None,
        }
    }

    fn states(
        list: &[(&str, StreamState)],
    ) -> BTreeMap<(String, String), Result<StreamState, String>> {
        list.iter()
            .map(|(n, s)| ((n.to_string(), "s".to_string()), Ok(s.clone())))
            .collect()
    }

    #[test]
    fn rows_compare_with_state_in_jsonb_form() {
        let s = state(json!({"title": "one", "count": 1}), "did:key:x");
        assert_eq!(
            row_vs_state(&row(r#"{"count": 1, "title": "one"}"#, "did:key:x"), &s),
            None
        );
        assert_eq!(
            row_vs_state(&row(r#"{"count": 1, "title": "edited"}"#, "did:key:y"), &s).as_deref(),
            Some("content and controller")
        );
    }

    #[test]
    fn each_cause_is_told_apart() {
        let holders: BTreeSet<String> = ["a".to_string(), "b".to_string()].into();
        let good = state(json!({"title": "one"}), "did:key:x");
        let other = state(json!({"title": "two"}), "did:key:x");

        let mut d = mismatch("b");
        let edited = Ok(row(r#"{"title": "edited"}"#, "did:key:x"));
        judge(
            &mut d,
            Some(&edited),
            &holders,
            &states(&[("a", good.clone()), ("b", good.clone())]),
        );
        assert_eq!(
            d.log.content_cause,
            Some(ContentCause::IndexDiffersFromState)
        );
        assert!(d
            .log
            .repair_hint
            .as_deref()
            .unwrap_or_default()
            .starts_with("reindex"));

        let mut d = mismatch("b");
        let matches = Ok(row(r#"{"title": "two"}"#, "did:key:x"));
        judge(
            &mut d,
            Some(&matches),
            &holders,
            &states(&[("a", good.clone()), ("b", other)]),
        );
        assert_eq!(
            d.log.content_cause,
            Some(ContentCause::StateDiffersFromOtherNodes)
        );
        assert!(d
            .log
            .likely_cause
            .as_deref()
            .unwrap_or_default()
            .contains("state of a"));

        let mut d = mismatch("b");
        let same = Ok(row(r#"{"title": "one"}"#, "did:key:x"));
        judge(
            &mut d,
            Some(&same),
            &holders,
            &states(&[("a", good.clone()), ("b", good.clone())]),
        );
        assert_eq!(d.log.content_cause, Some(ContentCause::OtherColumns));
        assert_eq!(d.log.repair_hint, None);

        let mut d = mismatch("b");
        judge(
            &mut d,
            Some(&Err("HTTP 500".into())),
            &holders,
            &states(&[("b", good)]),
        );
        assert_eq!(d.log.content_cause, None);
        assert!(
            d.detail.ends_with("cause not determined: HTTP 500"),
            "{}",
            d.detail
        );
    }
}
