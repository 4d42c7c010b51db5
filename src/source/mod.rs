//! Index sources: one node's ComposeDB index, read-only, behind one interface ([`Backend`])
//! that the audit, watch and repair reach through [`Node`]. One module per kind of node:
//!
//! - Postgres ([`postgres`]): fingerprints pushed down into SQL (default), or every row's
//!   stream id and row hash downloaded into a compact store ([`postgres::hashed`]) and
//!   fingerprinted locally (`--mode download`, and per model when most of it differs).
//! - SQLite ([`sqlite`]): js-ceramic's default index; rows are read and fingerprinted locally.
//! - Snapshot files ([`snapshot`]): a node's index state written by `crawl`, for offline audits.
//!
//! A new kind of node is a new module implementing [`Backend`] plus one line in
//! [`Node::open`]. Whatever the source, a row becomes the same [`crate::recon::Entry`] (see
//! [`rows`]), so sources of different kinds compare with each other.

pub mod ceramic_one;
pub mod postgres;
pub mod rows;
pub mod snapshot;
pub mod sqlite;
pub mod whole;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::{IndexLocation, NodeConfig};
use crate::recon::{Answer, Entry, MemoryStore, PgHash64, Query};

/// The hash every index source fingerprints with: Postgres computes it in SQL (push-down), the
/// other sources here, so any mix of sources compares like with like.
pub type IndexHash = PgHash64;
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

/// How a node's index is read: what an audit's flags say about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reading {
    pub mode: Mode,
    /// Per connection attempt and per SQL statement.
    pub timeout: Duration,
    pub compare: Compare,
    /// Postgres: cut every statement that would read a whole table into pieces of about this
    /// many rows (`--statement-rows`; `None`: one statement).
    pub statement_rows: Option<u64>,
}

impl Reading {
    /// Push-down or download, with the defaults for the rest.
    pub fn new(mode: Mode, timeout: Duration, compare: Compare) -> Self {
        Self {
            mode,
            timeout,
            compare,
            statement_rows: None,
        }
    }
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

/// One kind of node's index, as the audit, watch and repair read it (through [`Node`], which
/// checks the model is readable and applies an incremental cycle's restriction first).
#[async_trait]
pub trait Backend: Send {
    /// `postgres`, `sqlite` or `snapshot`: the report's `source`.
    fn kind(&self) -> &'static str;

    /// How fingerprints are computed: sources read whole always "download".
    fn mode(&self) -> Mode {
        Mode::Download
    }

    /// What reading the node has cost so far.
    fn stats(&self) -> NodeStats;

    /// How the connection to the node's database is protected, as observed (`None`: no
    /// connection, a file).
    fn tls(&self) -> Option<&str> {
        None
    }

    /// Whether a second look can differ from the first (a file written once cannot).
    fn is_live(&self) -> bool {
        true
    }

    /// Whether the node's database computes `model`'s fingerprints itself.
    fn pushes_down(&self, _model: &str) -> bool {
        false
    }

    /// From now on, download `model` whole instead of pushing its fingerprints down.
    fn download_model(&mut self, _model: &str) {}

    /// All rows of a model as entries (`crawl`).
    async fn entries(&mut self, model: &str, table: &TableInfo) -> Result<Vec<Entry>, SourceError>;

    /// Answers one round of the descent for `model`.
    async fn answer(
        &mut self,
        model: &str,
        table: &TableInfo,
        batch: &[Query],
    ) -> Result<Vec<Answer<IndexHash>>, SourceError>;

    /// The model's invalid rows (exactly, for sources read whole; by a pattern scan otherwise).
    async fn invalid_rows(
        &mut self,
        model: &str,
        check: RowCheck,
    ) -> Result<Vec<InvalidRow>, SourceError>;

    /// Rows that failed the last [`Backend::invalid_rows`] check of `model` but were not listed
    /// (a source that lists at most so many); 0 for sources that list every one.
    fn invalid_rows_not_listed(&self, _model: &str) -> u64 {
        0
    }

    /// Starts the settle re-check: later [`Backend::recheck`] calls read the node as it is now.
    async fn begin_recheck(&mut self) -> Result<(), SourceError> {
        Ok(())
    }

    /// Ends the consistent snapshot the reads so far shared (the comparison, or the settle
    /// re-check, is over): nothing is held open on the node while the audit waits or asks the
    /// nodes' APIs. Later reads each see the node as it is then.
    async fn end_snapshot(&mut self) -> Result<(), SourceError> {
        Ok(())
    }

    /// The current entries of `streams` in `model` (absent streams are left out).
    async fn recheck(
        &mut self,
        model: &str,
        table: &TableInfo,
        streams: &[String],
    ) -> Result<Vec<Entry>, SourceError>;

    /// The content and controller of `streams`' rows in `model`, read now (absent streams are
    /// left out). A source that holds digests only says so.
    async fn contents(
        &mut self,
        model: &str,
        streams: &[String],
    ) -> Result<Vec<rows::RowContent>, SourceError>;

    /// `(stream_id, tip)` of `model`'s rows: all of them, or `sample` drawn at random.
    async fn index_tips(
        &mut self,
        model: &str,
        sample: Option<u64>,
    ) -> Result<Vec<(String, String)>, SourceError>;

    /// Streams of `model` whose rows changed at or after `since_ms` (unix ms; every row when
    /// `None`), and the newest `updated_at` seen (the next watermark).
    async fn changed_since(
        &mut self,
        model: &str,
        since_ms: Option<i64>,
    ) -> Result<(Vec<String>, Option<i64>), SourceError>;

    /// Drops what was cached about `model` (it is restricted to a few streams from now on).
    fn forget(&mut self, _model: &str) {}

    /// Ends the node's session, if it has one.
    async fn close(self: Box<Self>) {}
}

/// One node's index, opened for an audit.
pub struct Node {
    pub name: String,
    /// `postgres`, `sqlite` or `snapshot`.
    pub kind: &'static str,
    pub mode: Mode,
    pub compare: Compare,
    pub models: BTreeMap<String, ModelState>,
    backend: Box<dyn Backend>,
    /// Models restricted to a few streams for an incremental cycle (see [`Node::restrict`]):
    /// their rows as read when restricted, answering instead of the backend.
    restricted: HashMap<String, MemoryStore<IndexHash>>,
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

/// An SQLite index file (and its write-ahead log) untouched this long has no write in flight:
/// a node taking part in a propagating write writes its file within pubsub's second or two, so
/// the settle pause would only wait on files that cannot change. Too short, and a slow node's
/// write could land after the skipped pause (a divergence instead of `in_flight`); too long,
/// and freshly copied files still cost the pause.
pub const QUIET_FILE: Duration = Duration::from_secs(60);

pub(crate) fn recently_written(path: &std::path::Path) -> bool {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    [path.to_path_buf(), std::path::PathBuf::from(wal)]
        .iter()
        .filter_map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        // A modification time in the future (clock skew) counts as recent.
        .any(|t| t.elapsed().map_or(true, |age| age < QUIET_FILE))
}

impl Node {
    /// Opens a node's index (reads files whole; for Postgres, connects and lists models). The
    /// one place kinds of node are chosen.
    pub async fn open(config: &NodeConfig, reading: &Reading) -> Result<Self, SourceError> {
        let compare = reading.compare;
        let (backend, models): (Box<dyn Backend>, _) = match &config.index {
            IndexLocation::Postgres { dsn } => {
                boxed(postgres::PgIndex::open(config, dsn, reading).await?)
            }
            IndexLocation::Sqlite { path } => {
                boxed(sqlite::SqliteIndex::open(config, path, compare).await?)
            }
            IndexLocation::None => {
                return Err(SourceError::Node {
                    node: config.name.clone(),
                    message: "no ComposeDB index (`index`) is configured: a ceramic-one node \
                              alone (its event store is compared separately)"
                        .into(),
                })
            }
            IndexLocation::Snapshot { path } => {
                boxed(snapshot::SnapshotIndex::open(config, path, compare).await?)
            }
        };
        Ok(Self {
            name: config.name.clone(),
            kind: backend.kind(),
            mode: backend.mode(),
            compare,
            models,
            backend,
            restricted: HashMap::new(),
        })
    }

    pub fn stats(&self) -> NodeStats {
        self.backend.stats()
    }

    /// How the connection to the node's database is protected, as observed (`None` for files).
    pub fn tls(&self) -> Option<&str> {
        self.backend.tls()
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
        if let Some(store) = self.restricted.get(model) {
            return Ok(store.as_slice().to_vec());
        }
        let table = self.table(model)?;
        self.backend.entries(model, &table).await
    }

    /// Answers one round of the descent for `model`.
    pub async fn answer(
        &mut self,
        model: &str,
        batch: &[Query],
    ) -> Result<Vec<Answer<IndexHash>>, SourceError> {
        if let Some(store) = self.restricted.get_mut(model) {
            return Ok(whole::answer(store, batch));
        }
        let table = self.table(model)?;
        self.backend.answer(model, &table, batch).await
    }

    /// Whether this node's Postgres computes `model`'s fingerprints itself (still true of a
    /// restricted model: the audit then starts with a bounds-only look, which costs nothing in
    /// memory and keeps incremental cycles' costs comparable with full ones).
    pub fn pushes_down(&self, model: &str) -> bool {
        self.backend.pushes_down(model)
    }

    /// From now on, download `model` whole instead of pushing its fingerprints down.
    pub fn download_model(&mut self, model: &str) {
        self.backend.download_model(model);
    }

    /// The model's invalid rows (exactly, for sources read whole; by a pattern scan otherwise).
    pub async fn invalid_rows(
        &mut self,
        model: &str,
        check: RowCheck,
    ) -> Result<Vec<InvalidRow>, SourceError> {
        if let Some(store) = self.restricted.get(model) {
            return Ok(invalid_rows(&whole::tips_of(store.as_slice())));
        }
        self.backend.invalid_rows(model, check).await
    }

    /// Rows that failed the last [`Node::invalid_rows`] check of `model` and were not listed.
    pub fn invalid_rows_not_listed(&self, model: &str) -> u64 {
        if self.restricted.contains_key(model) {
            return 0;
        }
        self.backend.invalid_rows_not_listed(model)
    }

    /// Whether a second look can differ from the first: a snapshot file cannot change, nor can
    /// an SQLite index nobody has written for [`QUIET_FILE`] (a recorded or stopped node's).
    pub fn is_live(&self) -> bool {
        self.backend.is_live()
    }

    /// Starts the settle re-check: later [`Node::recheck`] calls read the node as it is now.
    pub async fn begin_recheck(&mut self) -> Result<(), SourceError> {
        self.backend.begin_recheck().await
    }

    /// See [`Backend::end_snapshot`].
    pub async fn end_snapshot(&mut self) -> Result<(), SourceError> {
        self.backend.end_snapshot().await
    }

    /// The current entries of `streams` in `model` (absent streams are left out).
    pub async fn recheck(
        &mut self,
        model: &str,
        streams: &[String],
    ) -> Result<Vec<Entry>, SourceError> {
        let table = self.table(model)?;
        self.backend.recheck(model, &table, streams).await
    }

    /// The content and controller of `streams`' rows in `model`, read now (absent streams are
    /// left out). A snapshot file holds digests only: an error saying so.
    pub async fn contents(
        &mut self,
        model: &str,
        streams: &[String],
    ) -> Result<Vec<rows::RowContent>, SourceError> {
        self.table(model)?;
        self.backend.contents(model, streams).await
    }

    /// `(stream_id, tip)` of `model`'s rows on this node: all of them, or `sample` drawn at
    /// random (for `--verify-state`).
    pub async fn index_tips(
        &mut self,
        model: &str,
        sample: Option<u64>,
    ) -> Result<Vec<(String, String)>, SourceError> {
        self.table(model)?;
        self.backend.index_tips(model, sample).await
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
        self.backend.changed_since(model, since_ms).await
    }

    /// From now on, `model` on this node is only the rows of `streams` (read now, from the
    /// same snapshot): an incremental cycle compares just those.
    pub async fn restrict(&mut self, model: &str, streams: &[String]) -> Result<(), SourceError> {
        let entries = self.recheck(model, streams).await?;
        self.restricted
            .insert(model.to_string(), memory_store(entries));
        self.backend.forget(model);
        Ok(())
    }

    pub async fn close(self) {
        self.backend.close().await;
    }
}

fn boxed<B: Backend + 'static, M>((backend, models): (B, M)) -> (Box<dyn Backend>, M) {
    (Box::new(backend), models)
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
