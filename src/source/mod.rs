//! Index sources: one node's ComposeDB index, read-only, behind one type the audit uses.
//!
//! - Postgres ([`postgres`]): fingerprints pushed down into SQL (default), or every row's
//!   stream id and row hash downloaded into a compact store ([`hashed`]) and fingerprinted
//!   locally (`--mode download`, and per model when most of it differs).
//! - SQLite ([`sqlite`]): js-ceramic's default index; rows are read and fingerprinted locally.
//! - Snapshot files ([`snapshot`]): a node's index state written by `crawl`, for offline audits.
//!
//! Whatever the source, a row becomes the same [`crate::recon::Entry`] (see [`rows`]), so
//! sources of different kinds compare with each other.

pub mod ceramic_one;
pub mod hashed;
pub mod postgres;
pub mod rows;
pub mod snapshot;
pub mod sqlite;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::{IndexLocation, NodeConfig};
use crate::recon::{Answer, Entry, MemoryStore, PgHash64, Query, RangeStore};

/// The hash every index source fingerprints with: Postgres computes it in SQL (push-down), the
/// other sources here, so any mix of sources compares like with like.
pub type IndexHash = PgHash64;
use postgres::PgSource;
use rows::row_problem;

/// Columns every model table must have to be audited (`tip` and `stream_content` arrived in cli
/// 2.6.1; older tables cannot be compared by tip).
pub const REQUIRED_COLUMNS: [&str; 6] = [
    "stream_id",
    "controller_did",
    "stream_content",
    "tip",
    "last_anchored_at",
    "first_anchored_at",
];

#[derive(Debug, Clone, Error)]
pub enum SourceError {
    #[error("node {node}: {message}")]
    Node { node: String, message: String },
}

/// A model table as the audit needs it: which `custom_*` columns take part in the digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableInfo {
    pub custom: Vec<String>,
}

/// What a node says about one model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ModelState {
    Ready(TableInfo),
    /// In `ceramic_models` with `is_indexed = false`.
    NotIndexed,
    /// Not in `ceramic_models`, or its table does not exist.
    Missing,
    /// The table lacks required columns (an index older than cli 2.6.1).
    BadSchema {
        detail: String,
    },
}

impl TableInfo {
    /// Classifies a table from its column names.
    pub fn from_columns(columns: &[String]) -> ModelState {
        let missing: Vec<&str> = REQUIRED_COLUMNS
            .iter()
            .copied()
            .filter(|c| !columns.iter().any(|have| have == c))
            .collect();
        if !missing.is_empty() {
            return ModelState::BadSchema {
                detail: format!(
                    "model table lacks column(s) {} (index written by js-ceramic older than \
                     cli 2.6.1?); its rows cannot be compared by tip",
                    missing.join(", ")
                ),
            };
        }
        let mut custom: Vec<String> = columns
            .iter()
            .filter(|c| c.starts_with("custom_"))
            .cloned()
            .collect();
        custom.sort();
        ModelState::Ready(TableInfo { custom })
    }
}

/// How fingerprints are computed for a Postgres node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Range fingerprints computed by the node's Postgres.
    Pushdown,
    /// Every row downloaded and fingerprinted here.
    Download,
}

/// Which columns the comparison covers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Compare {
    /// Stream id, tip, controller, content, anchor times and custom columns.
    #[default]
    All,
    /// Stream id and tip only: what a missed update changes, at a fraction of the cost
    /// (Postgres renders no jsonb). Content mismatches under an equal tip go unseen.
    Tips,
}

impl Compare {
    /// `entries` as this comparison sees them: with `Tips`, column digests are zero everywhere.
    pub fn apply(self, mut entries: Vec<Entry>) -> Vec<Entry> {
        if self == Compare::Tips {
            for e in &mut entries {
                e.value.digest = 0;
            }
        }
        entries
    }
}

/// How a Postgres node in push-down mode looks for invalid rows that every node holds alike
/// (rows that differ are parsed exactly whatever this says; sources read whole are always
/// checked in full).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum RowCheck {
    /// NULL or short tips and stream ids, ids outside `k…`: cheap tests folded into the scan
    /// that reads the table's bounds (~0.1 µs a row).
    #[default]
    Quick,
    /// Every stream id and tip matched against the StreamID and CID alphabets (~1.2 µs a row
    /// with Postgres' regex engine, as much as hashing the row).
    Full,
}

/// A row that cannot be trusted as data, with the reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidRow {
    pub stream_id: String,
    pub tip: Option<String>,
    pub problem: String,
}

/// What reading a node cost, for the report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NodeStats {
    /// Rows read or aggregated by the source.
    pub rows: u64,
    /// Bytes of result data received from the source.
    pub bytes_received: u64,
    /// SQL statements run (0 for files).
    pub statements: u64,
    /// Time spent waiting on the source.
    pub millis: u64,
}

/// One node's index, opened for an audit.
pub struct Node {
    pub name: String,
    /// `postgres`, `sqlite` or `snapshot`.
    pub kind: &'static str,
    pub mode: Mode,
    pub compare: Compare,
    pub models: BTreeMap<String, ModelState>,
    pg: Option<PgSource>,
    /// Stream ids and row hashes of a Postgres node in download mode.
    hashed: HashMap<String, hashed::HashedKeys>,
    /// Models this Postgres node downloads although its mode is push-down (switched by the
    /// audit when most of a model's ranges differ).
    download_models: std::collections::HashSet<String>,
    /// Models held in memory (files, SQLite).
    memory: HashMap<String, MemoryStore<IndexHash>>,
    /// Invalid rows per model, for sources read whole.
    invalid: HashMap<String, Vec<InvalidRow>>,
    loaded_stats: NodeStats,
    /// The SQLite file, re-read for the settle re-check.
    sqlite_path: Option<std::path::PathBuf>,
}

/// Sorts and hashes a model's entries on all cores (1M rows: hashing each is ~0.1 s on one).
pub fn memory_store(entries: Vec<Entry>) -> MemoryStore<IndexHash> {
    let hashed: Vec<(Entry, IndexHash)> = entries
        .into_par_iter()
        .map(|e| {
            let h = e.hash::<IndexHash>();
            (e, h)
        })
        .collect();
    MemoryStore::with_hashes(hashed)
}

/// Checks every row of a loaded model and lists the invalid ones.
pub fn invalid_rows(entries: &[(String, Option<String>)]) -> Vec<InvalidRow> {
    entries
        .iter()
        .filter_map(|(s, tip)| {
            row_problem(s, tip.as_deref()).map(|problem| InvalidRow {
                stream_id: s.clone(),
                tip: tip.clone(),
                problem,
            })
        })
        .collect()
}

impl Node {
    /// Opens a node's index (reads files whole; for Postgres, connects and lists models).
    pub async fn open(
        config: &NodeConfig,
        mode: Mode,
        timeout: Duration,
        compare: Compare,
    ) -> Result<Self, SourceError> {
        let started = Instant::now();
        match &config.index {
            IndexLocation::Postgres { dsn } => {
                let password =
                    config
                        .password
                        .read(&config.name)
                        .map_err(|message| SourceError::Node {
                            node: config.name.clone(),
                            message,
                        })?;
                let mut pg = PgSource::connect(config, dsn, password, timeout, compare).await?;
                let models = pg.models().await?;
                Ok(Self {
                    name: config.name.clone(),
                    kind: "postgres",
                    mode,
                    compare,
                    models,
                    pg: Some(pg),
                    memory: HashMap::new(),
                    hashed: HashMap::new(),
                    download_models: Default::default(),
                    invalid: HashMap::new(),
                    loaded_stats: NodeStats::default(),
                    sqlite_path: None,
                })
            }
            IndexLocation::Sqlite { path } => {
                let loaded = load_blocking(config, path, "SQLite", sqlite::load).await?;
                let mut node = Self::from_loaded(config, "sqlite", loaded, started, compare);
                node.sqlite_path = Some(path.clone());
                Ok(node)
            }
            IndexLocation::Snapshot { path } => {
                let loaded = load_blocking(config, path, "snapshot", snapshot::load).await?;
                Ok(Self::from_loaded(
                    config, "snapshot", loaded, started, compare,
                ))
            }
        }
    }

    fn from_loaded(
        config: &NodeConfig,
        kind: &'static str,
        loaded: Loaded,
        started: Instant,
        compare: Compare,
    ) -> Self {
        let mut memory = HashMap::new();
        let mut invalid = HashMap::new();
        let mut rows = 0u64;
        for (model, entries) in loaded.rows {
            rows += entries.len() as u64;
            let pairs: Vec<(String, Option<String>)> = entries
                .iter()
                .map(|e| {
                    (
                        e.key.stream(),
                        Some(e.value.tip.clone()).filter(|t| !t.is_empty()),
                    )
                })
                .collect();
            invalid.insert(model.clone(), invalid_rows(&pairs));
            memory.insert(model, memory_store(compare.apply(entries)));
        }
        Self {
            name: config.name.clone(),
            kind,
            mode: Mode::Download,
            compare,
            models: loaded.models,
            pg: None,
            memory,
            hashed: HashMap::new(),
            download_models: Default::default(),
            invalid,
            sqlite_path: None,
            loaded_stats: NodeStats {
                rows,
                bytes_received: loaded.bytes,
                statements: 0,
                millis: started.elapsed().as_millis() as u64,
            },
        }
    }

    /// How a Postgres connection is protected, as observed (`None` for files).
    pub fn tls(&self) -> Option<&str> {
        self.pg.as_ref().map(|p| p.tls.as_str())
    }

    pub fn stats(&self) -> NodeStats {
        let mut s = self.loaded_stats.clone();
        if let Some(pg) = &self.pg {
            s.rows += pg.rows_scanned;
            s.bytes_received += pg.bytes_received;
            s.statements += pg.statements;
            s.millis += pg.busy.as_millis() as u64;
        }
        s
    }

    fn table(&self, model: &str) -> Result<TableInfo, SourceError> {
        match self.models.get(model) {
            Some(ModelState::Ready(t)) => Ok(t.clone()),
            _ => Err(SourceError::Node {
                node: self.name.clone(),
                message: format!("model {model} is not readable on this node"),
            }),
        }
    }

    /// All rows of a model as entries (download mode, `crawl`).
    pub async fn entries(&mut self, model: &str) -> Result<Vec<Entry>, SourceError> {
        if let Some(store) = self.memory.get(model) {
            return Ok(store.as_slice().to_vec());
        }
        let table = self.table(model)?;
        match self.pg.as_mut() {
            Some(pg) => pg.download(model, &table).await,
            None => Ok(Vec::new()),
        }
    }

    /// Answers one round of the descent for `model`.
    pub async fn answer(
        &mut self,
        model: &str,
        batch: &[Query],
    ) -> Result<Vec<Answer<IndexHash>>, SourceError> {
        // A model held in memory (a file source, or restricted for an incremental cycle).
        if let Some(store) = self.memory.get_mut(model) {
            return store.answer(batch).map_err(|e| match e {});
        }
        if self.pg.is_some() && !self.pushes_down(model) {
            return self.answer_downloaded(model, batch).await;
        }
        let table = self.table(model)?;
        match self.pg.as_mut() {
            Some(pg) => pg.answer(model, &table, batch).await,
            // A file source with no rows for a ready model: an empty table.
            None => MemoryStore::<IndexHash>::new([])
                .answer(batch)
                .map_err(|e| match e {}),
        }
    }

    /// Whether this node's Postgres computes `model`'s fingerprints itself.
    pub fn pushes_down(&self, model: &str) -> bool {
        self.pg.is_some() && self.mode == Mode::Pushdown && !self.download_models.contains(model)
    }

    /// From now on, download `model` whole instead of pushing its fingerprints down.
    pub fn download_model(&mut self, model: &str) {
        if self.pg.is_some() {
            self.download_models.insert(model.to_string());
        }
    }

    /// A round for a Postgres node in download mode: fingerprints and digests from the
    /// downloaded row hashes, entries read back from the node (same snapshot) for the rows asked.
    async fn answer_downloaded(
        &mut self,
        model: &str,
        batch: &[Query],
    ) -> Result<Vec<Answer<IndexHash>>, SourceError> {
        let table = self.table(model)?;
        let Some(pg) = self.pg.as_mut() else {
            return Err(SourceError::Node {
                node: self.name.clone(),
                message: "internal: download mode without a database".into(),
            });
        };
        if !self.hashed.contains_key(model) {
            let rows = pg.download_hashes(model, &table).await?;
            let model_owned = model.to_string();
            let store =
                tokio::task::spawn_blocking(move || hashed::HashedKeys::new(&model_owned, rows))
                    .await
                    .map_err(|e| SourceError::Node {
                        node: self.name.clone(),
                        message: format!("sorting downloaded rows stopped: {e}"),
                    })?;
            self.hashed.insert(model.to_string(), store);
        }
        let Some(store) = self.hashed.get(model) else {
            return Ok(Vec::new());
        };
        // Every entry the round asks for (per entries query: the streams chosen by their row
        // hashes), read back in one statement.
        let chosen: Vec<std::collections::HashSet<String>> = batch
            .iter()
            .filter_map(|q| match q {
                Query::Entries { range, only } => Some(
                    store
                        .rows(range)
                        .into_iter()
                        .filter(|(_, h)| only.as_ref().is_none_or(|set| set.contains(h)))
                        .map(|(s, _)| s)
                        .collect(),
                ),
                _ => None,
            })
            .collect();
        let wanted: Vec<String> = chosen.iter().flatten().cloned().collect();
        let mut chosen = chosen.into_iter();
        let mut fetched: Vec<Entry> = if wanted.is_empty() {
            Vec::new()
        } else {
            pg.rows_of(model, &table, &wanted).await?
        };
        fetched.sort_by(|a, b| a.key.cmp(&b.key));
        let mut answers = Vec::with_capacity(batch.len());
        for q in batch {
            answers.push(match q {
                Query::Bounds { range } => {
                    let s = store.summary(range, true);
                    Answer::Bounds {
                        count: s.fingerprint.count,
                        bounds: s.bounds,
                    }
                }
                Query::Summary { range, bounds } => Answer::Summary(store.summary(range, *bounds)),
                Query::Digests { range } => Answer::Digests(store.digests(range)),
                Query::Entries { range, .. } => {
                    let streams = chosen.next().unwrap_or_default();
                    let lo = fetched.partition_point(|e| e.key < range.start);
                    let hi = range.end.as_ref().map_or(fetched.len(), |end| {
                        fetched.partition_point(|e| e.key < *end)
                    });
                    Answer::Entries(
                        fetched[lo..hi.max(lo)]
                            .iter()
                            .filter(|e| streams.contains(&e.key.stream()))
                            .cloned()
                            .collect(),
                    )
                }
            });
        }
        Ok(answers)
    }

    /// The model's invalid rows (exactly, for sources read whole; by a pattern scan otherwise).
    pub async fn invalid_rows(
        &mut self,
        model: &str,
        check: RowCheck,
    ) -> Result<Vec<InvalidRow>, SourceError> {
        if let Some(list) = self.invalid.get(model) {
            return Ok(list.clone());
        }
        if let Some(store) = self.memory.get(model) {
            let pairs: Vec<(String, Option<String>)> = store
                .as_slice()
                .iter()
                .map(|e| {
                    (
                        e.key.stream(),
                        Some(e.value.tip.clone()).filter(|t| !t.is_empty()),
                    )
                })
                .collect();
            let list = invalid_rows(&pairs);
            self.invalid.insert(model.to_string(), list.clone());
            return Ok(list);
        }
        let Some(pg) = self.pg.as_mut() else {
            return Ok(Vec::new());
        };
        let suspects = pg.suspicious_rows(model, check).await?;
        Ok(invalid_rows(&suspects))
    }

    /// Whether a second look can differ from the first (a snapshot file cannot change).
    pub fn is_live(&self) -> bool {
        self.kind != "snapshot"
    }

    /// Starts the settle re-check: later [`Node::recheck`] calls read the node as it is now.
    pub async fn begin_recheck(&mut self) -> Result<(), SourceError> {
        match self.pg.as_mut() {
            Some(pg) => pg.refresh_snapshot().await,
            None => Ok(()),
        }
    }

    /// The current entries of `streams` in `model` (absent streams are left out).
    pub async fn recheck(
        &mut self,
        model: &str,
        streams: &[String],
    ) -> Result<Vec<Entry>, SourceError> {
        let table = self.table(model)?;
        if let Some(pg) = self.pg.as_mut() {
            return pg.rows_of(model, &table, streams).await;
        }
        if let Some(path) = self.sqlite_path.clone() {
            let (node, model, streams) = (self.name.clone(), model.to_string(), streams.to_vec());
            let compare = self.compare;
            return tokio::task::spawn_blocking(move || {
                sqlite::rows_of(&node, &path, &model, &table, &streams).map(|e| compare.apply(e))
            })
            .await
            .map_err(|e| SourceError::Node {
                node: self.name.clone(),
                message: format!("SQLite reader stopped: {e}"),
            })?;
        }
        // A snapshot: the second look is the first.
        let wanted: std::collections::HashSet<&String> = streams.iter().collect();
        Ok(self
            .memory
            .get(model)
            .map(|m| {
                m.as_slice()
                    .iter()
                    .filter(|e| wanted.contains(&e.key.stream()))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The content and controller of `streams`' rows in `model`, read now (absent streams are
    /// left out). A snapshot file holds digests only: an error saying so.
    pub async fn contents(
        &mut self,
        model: &str,
        streams: &[String],
    ) -> Result<Vec<rows::RowContent>, SourceError> {
        self.table(model)?;
        if let Some(pg) = self.pg.as_mut() {
            return pg.contents(model, streams).await;
        }
        let Some(path) = self.sqlite_path.clone() else {
            return Err(SourceError::Node {
                node: self.name.clone(),
                message: "a snapshot holds row digests, not content".into(),
            });
        };
        let (node, model, streams) = (self.name.clone(), model.to_string(), streams.to_vec());
        tokio::task::spawn_blocking(move || sqlite::contents(&node, &path, &model, &streams))
            .await
            .map_err(|e| SourceError::Node {
                node: self.name.clone(),
                message: format!("SQLite reader stopped: {e}"),
            })?
    }

    /// `(stream_id, tip)` of `model`'s rows on this node: all of them, or `sample` drawn at
    /// random (for `--verify-state`).
    pub async fn index_tips(
        &mut self,
        model: &str,
        sample: Option<u64>,
    ) -> Result<Vec<(String, String)>, SourceError> {
        self.table(model)?;
        if let Some(pg) = self.pg.as_mut() {
            return pg.tips(model, sample).await;
        }
        let mut rows: Vec<(String, String)> = self
            .memory
            .get(model)
            .map(|m| {
                m.as_slice()
                    .iter()
                    .filter(|e| !e.value.tip.is_empty())
                    .map(|e| (e.key.stream().to_string(), e.value.tip.clone()))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(n) = sample {
            // A fresh draw each run: order by a hash of the stream id salted with the clock.
            let salt = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
                .to_le_bytes();
            let rank = |s: &str| {
                let mut h = <sha2::Sha256 as sha2::Digest>::new();
                sha2::Digest::update(&mut h, salt);
                sha2::Digest::update(&mut h, s.as_bytes());
                sha2::Digest::finalize(h)
            };
            rows.sort_by_cached_key(|(s, _)| rank(s));
            rows.truncate(usize::try_from(n).unwrap_or(usize::MAX));
        }
        Ok(rows)
    }

    /// Streams of `model` whose rows changed at or after `since_ms` (unix ms; every row when
    /// `None`), and the newest `updated_at` seen (the watermark for the next incremental
    /// cycle). A snapshot file never changes: nothing.
    pub async fn changed_since(
        &mut self,
        model: &str,
        since_ms: Option<i64>,
    ) -> Result<(Vec<String>, Option<i64>), SourceError> {
        self.table(model)?;
        if let Some(pg) = self.pg.as_mut() {
            return pg.changed_since(model, since_ms).await;
        }
        if let Some(path) = self.sqlite_path.clone() {
            let (node, model) = (self.name.clone(), model.to_string());
            return tokio::task::spawn_blocking(move || {
                sqlite::changed_since(&node, &path, &model, since_ms)
            })
            .await
            .map_err(|e| SourceError::Node {
                node: self.name.clone(),
                message: format!("SQLite reader stopped: {e}"),
            })?;
        }
        Ok((Vec::new(), since_ms))
    }

    /// From now on, `model` on this node is only the rows of `streams` (read now, from the
    /// same snapshot): an incremental cycle compares just those.
    pub async fn restrict(&mut self, model: &str, streams: &[String]) -> Result<(), SourceError> {
        let entries = self.recheck(model, streams).await?;
        self.memory.insert(model.to_string(), memory_store(entries));
        self.invalid.remove(model);
        self.hashed.remove(model);
        Ok(())
    }

    pub async fn close(mut self) {
        if let Some(pg) = self.pg.take() {
            pg.close().await;
        }
    }
}

/// Reads a file source whole on the blocking pool (file I/O and parsing must not stall the
/// async workers that drive the other nodes).
async fn load_blocking(
    config: &NodeConfig,
    path: &std::path::Path,
    what: &str,
    load: fn(&str, &std::path::Path) -> Result<Loaded, SourceError>,
) -> Result<Loaded, SourceError> {
    let (name, file) = (config.name.clone(), path.to_path_buf());
    tokio::task::spawn_blocking(move || load(&name, &file))
        .await
        .map_err(|e| SourceError::Node {
            node: config.name.clone(),
            message: format!("{what} reader stopped: {e}"),
        })?
}

/// A node's index read whole (SQLite, snapshot files).
pub struct Loaded {
    pub models: BTreeMap<String, ModelState>,
    /// Rows per model; a NULL tip is an empty string (it hashes as empty, as in SQL).
    pub rows: HashMap<String, Vec<Entry>>,
    pub bytes: u64,
}
