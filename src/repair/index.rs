//! Reading a repair target's index row back, for verification: its tip, and for a
//! `content_mismatch` reindex whether its content now matches the node's state.

use std::time::Duration;

use crate::config::ClusterConfig;
use crate::source::{Compare, Mode, Node, Reading};

/// Reads one node's index rows afresh, for verification.
pub(super) struct IndexReader {
    node: Result<Node, String>,
}

impl IndexReader {
    pub(super) async fn open(config: &ClusterConfig, name: &str, timeout: Duration) -> Self {
        let node = match config.nodes.iter().find(|n| n.name == name) {
            None => Err(format!("node {name} is not in the config")),
            Some(n) => Node::open(n, &Reading::new(Mode::Pushdown, timeout, Compare::Tips))
                .await
                .map_err(|e| e.to_string()),
        };
        Self { node }
    }

    pub(super) async fn tip(
        &mut self,
        model: &str,
        stream: &str,
    ) -> Result<Option<String>, String> {
        let node = self.node.as_mut().map_err(|e| e.clone())?;
        node.begin_recheck().await.map_err(|e| e.to_string())?;
        let rows = node
            .recheck(model, &[stream.to_string()])
            .await
            .map_err(|e| e.to_string())?;
        Ok(rows
            .into_iter()
            .next()
            .map(|e| e.value.tip)
            .filter(|t| !t.is_empty()))
    }
}

impl IndexReader {
    /// For a `content_mismatch` reindex: why the index row still differs from `state` (its
    /// content or controller), `None` once it matches.
    pub(super) async fn content_differs(
        &mut self,
        model: &str,
        stream: &str,
        state: &crate::api::StreamState,
    ) -> Option<String> {
        let node = match self.node.as_mut() {
            Ok(n) => n,
            Err(e) => return Some(e.clone()),
        };
        if let Err(e) = node.begin_recheck().await {
            return Some(e.to_string());
        }
        match node.contents(model, &[stream.to_string()]).await {
            Err(e) => Some(e.to_string()),
            Ok(rows) => match rows.first() {
                None => Some("the index row is gone".into()),
                Some(row) => crate::audit::content::row_vs_state(row, state)
                    .map(|what| format!("the index row's {what} still differs from the state")),
            },
        }
    }
}
