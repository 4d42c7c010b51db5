//! `missing_stream` or `index_missing`: a node without an index row for a stream may still
//! hold it in its state store. The node's pin list (`GET /api/v0/admin/pins`, admin-DID JWS)
//! says which, without loading anything; loading the stream to find out would index it and
//! heal what is being measured (`../shared/reference/real-ceramic.md`, last section).
//!
//! Asked once per node, only of nodes with an `api_url` and an admin key in the config, and
//! only when that node has `missing_stream` rows. Without a key the rows stay `missing_stream`
//! and say that the state store was not checked.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::api::admin::AdminKey;
use crate::api::{ApiOptions, NodeApi};
use crate::config::{ClusterConfig, NodeConfig};
use crate::report::{Divergence, Kind};

pub async fn check(config: &ClusterConfig, timeout: Duration, divergences: &mut [Divergence]) {
    let mut by_node: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, d) in divergences.iter().enumerate() {
        if d.kind == Kind::MissingStream && !d.stream_id.is_empty() {
            by_node.entry(d.node.as_str()).or_default().push(i);
        }
    }
    let nodes: Vec<(&NodeConfig, Vec<usize>)> = by_node
        .into_iter()
        .filter_map(|(name, rows)| {
            let node = config.nodes.iter().find(|n| n.name == name)?;
            Some((node, rows))
        })
        .collect();
    let lists =
        futures::future::join_all(nodes.iter().map(|(node, _)| pin_list(node, timeout))).await;
    for ((_, rows), list) in nodes.iter().zip(lists) {
        for &i in rows {
            let d = &mut divergences[i];
            match &list {
                Err(Unchecked::NoApi) => d.log.repair_hint = Some(create_hint(d)),
                Err(Unchecked::Failed(why)) => {
                    d.detail
                        .push_str(&format!("; the node's state store was not checked: {why}"));
                    d.log.repair_hint = Some(create_hint(d));
                }
                Ok(pins) if pins.contains(&d.stream_id) => {
                    d.kind = Kind::IndexMissing;
                    d.detail = "the node's state store holds the stream (it is pinned) but its \
                                index has no row for it"
                        .into();
                    d.log.likely_cause = Some(
                        "the index write failed or was lost after the state was saved, or the \
                         model was indexed after the node had loaded the stream"
                            .into(),
                    );
                    d.log.repair_hint =
                        Some("reindex: load the stream on this node so it indexes it".into());
                }
                Ok(_) => {
                    d.detail.push_str("; not in the node's pin list either");
                    d.log.likely_cause = Some(
                        "missed the pubsub message of its creation (the node was down or \
                         disconnected)"
                            .into(),
                    );
                    d.log.repair_hint = Some(create_hint(d));
                }
            }
        }
    }
}

fn create_hint(d: &Divergence) -> String {
    match d.agreeing_nodes.first() {
        Some(from) => format!("create from genesis, then republish the log, from {from}"),
        None => "create from genesis, then republish the log".into(),
    }
}

/// Why a node's pin list was not read.
enum Unchecked {
    /// The node has no `api_url`: the audit reads its index only, and says nothing more.
    NoApi,
    Failed(String),
}

/// The node's pin list, or why it could not be read.
async fn pin_list(
    node: &NodeConfig,
    timeout: Duration,
) -> Result<std::collections::BTreeSet<String>, Unchecked> {
    let Some(url) = &node.api_url else {
        return Err(Unchecked::NoApi);
    };
    pin_list_of(node, url, timeout)
        .await
        .map_err(Unchecked::Failed)
}

async fn pin_list_of(
    node: &NodeConfig,
    url: &str,
    timeout: Duration,
) -> Result<std::collections::BTreeSet<String>, String> {
    let Some(source) = &node.admin_key else {
        return Err("no admin key for it in the config (admin_key_env / admin_key_file)".into());
    };
    let text = source
        .read_as(&node.name, "admin_key")?
        .ok_or_else(|| format!("node {}: no admin key", node.name))?;
    let key = AdminKey::from_hex(&text).map_err(|e| format!("node {}: {e}", node.name))?;
    let options = ApiOptions {
        timeout,
        ..ApiOptions::default()
    };
    let api = NodeApi::with_ca(&node.name, url, node.api_ca_file.as_deref(), options)
        .map_err(|e| e.to_string())?;
    api.pinned(&key).await.map_err(|e| e.to_string())
}
