//! Audit reports: the data (this module), and its renderings — CSV ([`csv`]), JSON ([`json`]) and
//! the terminal summary ([`summary`]). Writers are pure functions from a [`Report`] to bytes;
//! [`write_dir`] puts them on disk atomically. Every field is documented in `reports/README.md`.

pub mod csv;
pub mod json;
pub mod summary;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::recon::{Cost, DescentParams};

pub const REPORT_SCHEMA_VERSION: u32 = 1;

/// What kind of divergence a row reports.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
#[clap(rename_all = "snake_case")]
pub enum Kind {
    /// The node has no row for a stream other nodes index.
    MissingStream,
    /// The node's row has another tip than the majority (or there is no majority), and the
    /// nodes' logs could not be read to say more.
    TipMismatch,
    /// The node's log is a strict prefix of another node's: it misses `missing_commits`
    /// commits that `ahead_node` has (likely cause: missed pubsub updates).
    Lagging,
    /// Neither log contains the other: they part after `fork_point`; `predicted_winner` is the
    /// node whose branch js-ceramic would keep.
    Forked,
    /// The node's index row has another tip than the node's own stream state.
    IndexStale,
    /// The node's state store holds the stream (it is in the node's pin list) but its index
    /// has no row for it.
    IndexMissing,
    /// Same tip as the majority, other controller, content, anchor times or custom columns.
    ContentMismatch,
    /// The row's stream id or tip is not a valid identifier (or the tip is NULL).
    InvalidRow,
    /// Other nodes index the model; this one does not.
    ModelNotIndexed,
    /// The node, or this model on it, could not be read.
    Unreachable,
    /// The row changed on some node between the first look and the re-check after the settle
    /// pause: a write still propagating, not (yet) a divergence.
    InFlight,
    /// ceramic-one: events other nodes hold and this (interested) node lacks, per stream.
    MissingEvent,
    /// ceramic-one: the node stores the event but never delivered it (`delivered` is NULL).
    UndeliveredEvent,
    /// ceramic-one: no interest of the node covers a model other nodes sync (both sides of a
    /// Recon conversation must hold it).
    NotInterested,
    /// ceramic-one: the node holds a stream's events but can serve no state for it.
    StateMissing,
    /// js-ceramic on ceramic-one: the node's index row is older than the newest event its own
    /// event store holds for the stream (`missing_commits` = how many events newer).
    IndexBehindEvents,
}

impl Kind {
    pub const ALL: [Kind; 16] = [
        Kind::MissingStream,
        Kind::TipMismatch,
        Kind::Lagging,
        Kind::Forked,
        Kind::IndexStale,
        Kind::IndexMissing,
        Kind::ContentMismatch,
        Kind::InvalidRow,
        Kind::ModelNotIndexed,
        Kind::Unreachable,
        Kind::InFlight,
        Kind::MissingEvent,
        Kind::UndeliveredEvent,
        Kind::NotInterested,
        Kind::StateMissing,
        Kind::IndexBehindEvents,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::MissingStream => "missing_stream",
            Kind::TipMismatch => "tip_mismatch",
            Kind::Lagging => "lagging",
            Kind::Forked => "forked",
            Kind::IndexStale => "index_stale",
            Kind::IndexMissing => "index_missing",
            Kind::ContentMismatch => "content_mismatch",
            Kind::InvalidRow => "invalid_row",
            Kind::ModelNotIndexed => "model_not_indexed",
            Kind::Unreachable => "unreachable",
            Kind::InFlight => "in_flight",
            Kind::MissingEvent => "missing_event",
            Kind::UndeliveredEvent => "undelivered_event",
            Kind::NotInterested => "not_interested",
            Kind::StateMissing => "state_missing",
            Kind::IndexBehindEvents => "index_behind_events",
        }
    }
}

/// One row of `divergences.csv`: one model, stream and node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Divergence {
    pub model: String,
    /// Empty for node- or model-level rows (`unreachable`, `model_not_indexed`).
    pub stream_id: String,
    pub node: String,
    pub kind: Kind,
    /// The tip on this node (none when absent, NULL or not applicable).
    pub tip: Option<String>,
    /// The tip most nodes hold, when one tip is held by more nodes than any other.
    pub majority_tip: Option<String>,
    /// Nodes holding the majority value this node differs from.
    pub agreeing_nodes: Vec<String>,
    pub detail: String,
    /// What the nodes' logs say (only for rows refined from them).
    #[serde(flatten)]
    pub log: LogFinding,
    /// `watch`: when this divergence was first seen, and in how many consecutive cycles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cycles: Option<u32>,
}

impl Divergence {
    /// A row about `stream_id` on `node`: its tip there and what is wrong. Majority, log
    /// finding and ageing start empty; see [`Self::with_majority`] and [`Self::with_log`].
    pub fn stream(
        model: &str,
        stream_id: &str,
        node: &str,
        kind: Kind,
        tip: Option<String>,
        detail: String,
    ) -> Self {
        Divergence {
            model: model.to_string(),
            stream_id: stream_id.to_string(),
            node: node.to_string(),
            kind,
            tip,
            majority_tip: None,
            agreeing_nodes: Vec::new(),
            detail,
            log: LogFinding::default(),
            first_seen: None,
            cycles: None,
        }
    }

    /// A node- or model-level row (`unreachable`, `model_not_indexed`): no stream, no tip.
    pub fn node_level(model: &str, node: &str, kind: Kind, detail: String) -> Self {
        Self::stream(model, "", node, kind, None, detail)
    }

    /// The tip most nodes hold and the nodes holding the value this row differs from.
    pub fn with_majority(
        mut self,
        majority_tip: Option<String>,
        agreeing_nodes: Vec<String>,
    ) -> Self {
        self.majority_tip = majority_tip;
        self.agreeing_nodes = agreeing_nodes;
        self
    }

    /// What the nodes' logs say about the stream.
    pub fn with_log(mut self, log: LogFinding) -> Self {
        self.log = log;
        self
    }
}

/// What the nodes' commit logs say about a differing stream (fields empty when not read).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogFinding {
    /// `lagging`: commits the node misses; `index_stale`: commits between the two tips.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_commits: Option<u64>,
    /// `lagging`: the node whose log is longest and contains this node's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ahead_node: Option<String>,
    /// `forked`: the last commit both branches share.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fork_point: Option<String>,
    /// `forked`: the node whose branch js-ceramic keeps, and the rule that decides.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicted_winner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub likely_cause: Option<String>,
    /// What a repair would do (`republish N commit(s) from X`, `reindex`, `create from
    /// genesis`), or why it would fail (`unrepairable if …`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repair_hint: Option<String>,
    /// `content_mismatch`: what the node's index row was found to differ from, comparing it
    /// with the node's own stream state and the other nodes' states (empty when not read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_cause: Option<ContentCause>,
}

/// Why a `content_mismatch` row differs (its `content_cause`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentCause {
    /// The index row's content or controller differs from the node's own state at the same
    /// tip: the index was damaged or edited; a reindex rewrites the row from the state.
    IndexDiffersFromState,
    /// The row matches the node's own state, but that state differs from another node's at
    /// the same tip. Reported; no repair is guessed.
    StateDiffersFromOtherNodes,
    /// The row's content and controller match the node's state and the other nodes' states:
    /// the difference is in columns not compared with the state (anchor times, custom
    /// columns).
    OtherColumns,
}

impl ContentCause {
    pub fn as_str(self) -> &'static str {
        match self {
            ContentCause::IndexDiffersFromState => "index_differs_from_state",
            ContentCause::StateDiffersFromOtherNodes => "state_differs_from_other_nodes",
            ContentCause::OtherColumns => "other_columns",
        }
    }
}

/// How one node was read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeReport {
    pub name: String,
    /// `postgres`, `sqlite` or `snapshot` (from the config).
    pub source: String,
    /// `pushdown` or `download`.
    pub mode: String,
    pub reachable: bool,
    pub error: Option<String>,
    pub rows: u64,
    pub bytes_received: u64,
    pub statements: u64,
    pub millis: u64,
    /// Postgres nodes: what protects the connection, as observed (`none: sslmode=prefer and
    /// the server offers no TLS…`, `encrypted, CA and host checked (verify-full)`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<String>,
    /// Set when the node has an `api_url` the audit needed (something diverged) and its
    /// healthcheck failed: why. Rows of this node then stay unrefined (`tip_mismatch`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_error: Option<String>,
}

/// One model's comparison.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelReport {
    pub model: String,
    /// Nodes whose rows were compared (at least 2 for a comparison to happen).
    pub nodes_compared: Vec<String>,
    /// Differing keys found by the descent.
    pub differing_streams: u64,
    pub counts: BTreeMap<Kind, u64>,
    /// The descent's cost (None when fewer than 2 nodes could be compared).
    pub cost: Option<Cost>,
    /// Bytes moved (both ways, all nodes) ÷ the information-theoretic bound of 8 bytes
    /// (64 bits) per differing stream; None when nothing differs.
    pub bytes_over_bound: Option<f64>,
    /// Set when the comparison stopped early (`--max-diffs`, `--max-seconds`): why. The
    /// differences listed are then only those found before it stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// Set when Postgres nodes were switched from push-down to download for this model
    /// because most of its first-level ranges differed (see README): the measured share.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switched_to_download: Option<f64>,
    /// Per node: rows that failed the invalid-row check beyond those listed as `invalid_row`
    /// (a Postgres node lists at most 1,000 per model). Any makes the report incomplete.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub invalid_rows_not_listed: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub cluster: String,
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: u64,
    /// False when some node or model could not be read (exit code 2).
    pub complete: bool,
    pub hash: String,
    /// Columns compared: `all` or `tips` (stream id and tip only).
    pub compared: String,
    /// How Postgres push-down nodes looked for malformed rows held alike: `quick` or `full`.
    pub row_check: String,
    pub params: DescentParams,
    pub nodes: Vec<NodeReport>,
    pub models: Vec<ModelReport>,
    pub counts: BTreeMap<Kind, u64>,
    pub divergences: Vec<Divergence>,
}

impl Report {
    /// Divergences whose kind is in `kinds`.
    pub fn count_of(&self, kinds: &[Kind]) -> u64 {
        self.divergences
            .iter()
            .filter(|d| kinds.contains(&d.kind))
            .count() as u64
    }
}

/// Output formats of `audit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Json,
}

/// Writes the requested formats into `dir` (created if needed); returns the files written.
pub fn write_dir(dir: &Path, report: &Report, formats: &[Format]) -> std::io::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for f in formats {
        let (name, bytes) = match f {
            Format::Csv => ("divergences.csv", csv::render(report)?),
            Format::Json => ("report.json", json::render(report)?),
        };
        let path = dir.join(name);
        crate::atomic::write(&path, &bytes)?;
        written.push(path.display().to_string());
    }
    Ok(written)
}
