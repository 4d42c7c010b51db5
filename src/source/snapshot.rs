//! Snapshot files: one node's index state, written by `ceramic-audit crawl` and audited later
//! like a live node (offline audits, incident archives, the README's first command).
//!
//! Format (JSON, `schema_version` 2; documented in `reports/README.md`):
//!
//! ```json
//! {"schema_version": 2, "kind": "ceramic-audit-snapshot", "node": "a", "cluster": "demo",
//!  "crawled_at": "2026-11-24T17:00:00Z", "source": "postgres",
//!  "models": {"kjzl6hvfrbw6c…": {"state": "ready", "custom": ["custom_author"],
//!                                "rows": [["kjzl6kcym7w8y…", "bagcqcera…", "<16 hex>"]]},
//!             "kjzl6hvfrbw6d…": {"state": "not_indexed"}}}
//! ```
//!
//! A row is `[stream_id, tip or null, column digest]` — everything the comparison uses, nothing
//! node-local. The digest is `hashtextextended(canonical columns text, 0)` as 16 hex digits of
//! its unsigned 64-bit value. Version 1 files held md5 digests, which no longer compare with
//! live nodes: they are refused with a request to crawl again.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Instant;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::rows::RowContent;
use super::whole::WholeIndex;
use super::{
    Backend, Compare, IndexHash, InvalidRow, Loaded, ModelState, NodeStats, RowCheck, SourceError,
    TableInfo,
};
use crate::config::NodeConfig;
use crate::recon::{Answer, Entry, Key, Query, Value};

pub const SNAPSHOT_KIND: &str = "ceramic-audit-snapshot";
pub const SNAPSHOT_SCHEMA_VERSION: u32 = 2;

#[derive(Debug, Serialize, Deserialize)]
pub struct SnapshotFile {
    pub schema_version: u32,
    pub kind: String,
    pub node: String,
    pub cluster: String,
    pub crawled_at: String,
    pub source: String,
    pub models: BTreeMap<String, SnapshotModel>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SnapshotModel {
    #[serde(flatten)]
    pub state: ModelState,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rows: Vec<(String, Option<String>, String)>,
}

impl SnapshotModel {
    pub fn new(state: ModelState, entries: &[Entry]) -> Self {
        Self {
            state,
            rows: entries
                .iter()
                .map(|e| {
                    let tip = Some(e.value.tip.clone()).filter(|t| !t.is_empty());
                    (e.key.stream(), tip, format!("{:016x}", e.value.digest))
                })
                .collect(),
        }
    }
}

/// Writes `file` to `path` atomically (creating its directory).
pub fn write(path: &Path, file: &SnapshotFile) -> Result<(), String> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    crate::atomic::write_with(path, |out| {
        serde_json::to_writer(&mut *out, file)?;
        out.write_all(b"\n")
    })
    .map_err(|e| format!("cannot write snapshot {}: {e}", path.display()))
}

pub fn load(node: &str, path: &Path) -> Result<Loaded, SourceError> {
    let fail = |message: String| SourceError::Node {
        node: node.to_string(),
        message: format!("snapshot {}: {message}", path.display()),
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let file: SnapshotFile =
        serde_json::from_str(&text).map_err(|e| fail(format!("not a snapshot file: {e}")))?;
    if file.kind != SNAPSHOT_KIND {
        return Err(fail(format!(
            "kind is {:?}, expected {SNAPSHOT_KIND:?}",
            file.kind
        )));
    }
    if file.schema_version == 1 {
        return Err(fail(
            "schema_version 1 holds md5 column digests, which this version no longer computes; \
             crawl the node again (`ceramic-audit crawl`)"
                .into(),
        ));
    }
    if file.schema_version != SNAPSHOT_SCHEMA_VERSION {
        return Err(fail(format!(
            "schema_version {} is not supported (this version reads {SNAPSHOT_SCHEMA_VERSION})",
            file.schema_version
        )));
    }
    let mut loaded = Loaded {
        models: BTreeMap::new(),
        rows: HashMap::new(),
        bytes: text.len() as u64,
    };
    for (model, m) in file.models {
        // A hand-edited or damaged file must not be compared as if it were a crawl.
        match crate::ids::StreamId::parse(&model) {
            Ok(id)
                if id.stream_type == crate::ids::StreamType::Model && id.to_string() == model => {}
            _ => {
                return Err(fail(format!(
                    "model key {:?} is not a model StreamID in canonical form",
                    clip(&model)
                )))
            }
        }
        let mut seen = std::collections::HashSet::with_capacity(m.rows.len());
        let mut entries = Vec::with_capacity(m.rows.len());
        for (stream, tip, digest) in m.rows {
            if !seen.insert(stream.clone()) {
                return Err(fail(format!(
                    "model {model}: stream {} is listed twice",
                    clip(&stream)
                )));
            }
            let digest = Some(&digest)
                .filter(|d| d.len() == 16)
                .and_then(|d| u64::from_str_radix(d, 16).ok())
                .ok_or_else(|| {
                    fail(format!(
                        "model {model}, stream {stream}: digest {digest:?} is not 16 hex digits"
                    ))
                })?;
            entries.push(Entry::new(
                Key::new(&model, &stream),
                Value::new(tip.unwrap_or_default(), digest),
            ));
        }
        if matches!(m.state, ModelState::Ready(_)) {
            loaded.rows.insert(model.clone(), entries);
        }
        loaded.models.insert(model, m.state);
    }
    Ok(loaded)
}

/// Reads every model of one node whole into a snapshot file (`crawl`).
pub async fn crawl(
    config: &NodeConfig,
    cluster: &str,
    timeout: std::time::Duration,
) -> Result<SnapshotFile, SourceError> {
    let source = match config.index {
        crate::config::IndexLocation::Postgres { .. } => "postgres",
        crate::config::IndexLocation::Sqlite { .. } => "sqlite",
        crate::config::IndexLocation::Snapshot { .. } => "snapshot",
        crate::config::IndexLocation::None => "none",
    };
    let crawled_at = crate::audit::now_rfc3339();
    let mut node = super::Node::open(
        config,
        &super::Reading::new(super::Mode::Download, timeout, Compare::All),
    )
    .await?;
    let mut models = BTreeMap::new();
    let states: Vec<(String, ModelState)> = node.models.clone().into_iter().collect();
    for (model, state) in states {
        let entries = if matches!(state, ModelState::Ready(_)) {
            node.entries(&model).await?
        } else {
            Vec::new()
        };
        models.insert(model, SnapshotModel::new(state, &entries));
    }
    node.close().await;
    Ok(SnapshotFile {
        schema_version: SNAPSHOT_SCHEMA_VERSION,
        kind: SNAPSHOT_KIND.into(),
        node: config.name.clone(),
        cluster: cluster.to_string(),
        crawled_at,
        source: source.into(),
        models,
    })
}

/// A snapshot file as an audit source: read whole at open; it never changes, so a second look
/// is the first and nothing has changed since any watermark.
pub struct SnapshotIndex {
    node: String,
    whole: WholeIndex,
}

impl SnapshotIndex {
    pub async fn open(
        config: &NodeConfig,
        path: &Path,
        compare: Compare,
    ) -> Result<(Self, BTreeMap<String, ModelState>), SourceError> {
        let started = Instant::now();
        let loaded = super::load_blocking(config, path, "snapshot", load).await?;
        let (whole, models) = WholeIndex::new(loaded, started, compare);
        let node = config.name.clone();
        Ok((Self { node, whole }, models))
    }
}

#[async_trait]
impl Backend for SnapshotIndex {
    fn kind(&self) -> &'static str {
        "snapshot"
    }

    fn stats(&self) -> NodeStats {
        self.whole.stats()
    }

    fn is_live(&self) -> bool {
        false
    }

    async fn entries(&mut self, model: &str, _: &TableInfo) -> Result<Vec<Entry>, SourceError> {
        Ok(self.whole.entries(model))
    }

    async fn answer(
        &mut self,
        model: &str,
        _: &TableInfo,
        batch: &[Query],
    ) -> Result<Vec<Answer<IndexHash>>, SourceError> {
        Ok(self.whole.answer(model, batch))
    }

    async fn invalid_rows(
        &mut self,
        model: &str,
        _: RowCheck,
    ) -> Result<Vec<InvalidRow>, SourceError> {
        Ok(self.whole.invalid_rows(model))
    }

    async fn recheck(
        &mut self,
        model: &str,
        _: &TableInfo,
        streams: &[String],
    ) -> Result<Vec<Entry>, SourceError> {
        Ok(self.whole.rows_of(model, streams))
    }

    async fn contents(&mut self, _: &str, _: &[String]) -> Result<Vec<RowContent>, SourceError> {
        Err(SourceError::Node {
            node: self.node.clone(),
            message: "a snapshot holds row digests, not content".into(),
        })
    }

    async fn index_tips(
        &mut self,
        model: &str,
        sample: Option<u64>,
    ) -> Result<Vec<(String, String)>, SourceError> {
        Ok(self.whole.tips(model, sample))
    }

    async fn changed_since(
        &mut self,
        _: &str,
        since_ms: Option<i64>,
    ) -> Result<(Vec<String>, Option<i64>), SourceError> {
        Ok((Vec::new(), since_ms))
    }
}

/// The first 100 characters, for messages about untrusted text.
fn clip(text: &str) -> String {
    match text.char_indices().nth(100) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}
