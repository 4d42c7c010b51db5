//! The audit: open every node's index, compare each model N-way with the range-fingerprint
//! descent, classify what differs, and assemble the report. [`run`] reads as its phases:
//! open → compare per model ([`compare`]) → settle ([`settle`]) → refine ([`presence`],
//! [`refine`], [`content`]) → verify ([`verify`]) → assemble.
//!
//! One node failing never stops the audit: a node that cannot be opened, or fails in the middle
//! of a model, is reported `unreachable` (with the reason) and the model is compared again among
//! the others; the report is then marked incomplete (exit code 2).

pub mod classify;
mod compare;
pub mod content;
mod event_settle;
pub mod event_store;
pub mod index_behind;
pub mod logs;
pub mod presence;
pub mod refine;
mod settle;
pub mod state_sample;
pub mod verify;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::future::join_all;
use tracing::warn;

use crate::config::ClusterConfig;
use crate::recon::{AssociativeHash, DescentParams};
use crate::report::{Divergence, Kind, ModelReport, NodeReport, Report, REPORT_SCHEMA_VERSION};
use crate::source::IndexHash;
use crate::source::{Compare, Mode, ModelState, Node, RowCheck, SourceError};

/// Default settle pause. Pubsub carries an update to the other nodes within a second or two;
/// shorter risks reporting writes still in flight as divergences, longer only delays the report.
pub const DEFAULT_SETTLE_SECONDS: u64 = 3;

/// Behaviour of one audit run (from flags).
#[derive(Clone, Debug)]
pub struct AuditOptions {
    pub mode: Mode,
    pub params: DescentParams,
    /// Per connection attempt and per SQL statement.
    pub timeout: Duration,
    /// Pause before differing rows are read again; a row that changed meanwhile on any node is
    /// `in_flight`, not a divergence. Zero skips the re-check.
    pub settle: Duration,
    /// How Postgres nodes in push-down mode look for invalid rows held alike by every node.
    pub row_check: RowCheck,
    /// Which columns are compared.
    pub compare: Compare,
    /// Stop a model's comparison once this many differing streams are found.
    pub max_diffs: Option<u64>,
    /// Stop comparing (every model) once the audit has run this long.
    pub max_duration: Option<Duration>,
    /// Read the logs of streams whose tips differ from the nodes that hold them (nodes with
    /// `api_url`), to tell `lagging`, `forked` and `index_stale` apart.
    pub read_logs: bool,
    /// Compare index rows with their own node's state even where the nodes agree.
    pub verify_state: verify::VerifyState,
    /// Compare only these streams of the models named (an incremental cycle of `watch`); models
    /// not named, or `None`, are compared whole.
    pub scope: Option<Scope>,
    /// Where the phases show how far they are (hidden unless a command asked for it).
    pub progress: crate::progress::Progress,
    /// Postgres: rows a statement that would read a whole table reads at most, about
    /// (`--statement-rows`); `None`: one statement per table.
    pub statement_rows: Option<u64>,
}

/// Streams to compare, per model.
pub type Scope = BTreeMap<String, BTreeSet<String>>;

/// Share of a model's first-level ranges that must differ before Postgres nodes switch from
/// push-down to download for it. Past it nearly every range is split again, each level costs
/// another pass over the table, and streaming the rows once is cheaper: on the 3 × 10^6-row
/// benchmark push-down took 112 s at d = 10^5 against 25 s for download, and the first level
/// already shows > 99% of ranges differing from d ≈ 1,200 (256 ranges). Too low switches
/// audits that push-down would finish cheaply (d = 100 gives ~32%); too high keeps
/// descending through whole tables.
pub const DOWNLOAD_SWITCH_SHARE: f64 = 0.9;

impl Default for AuditOptions {
    fn default() -> Self {
        Self {
            mode: Mode::Pushdown,
            params: DescentParams::default(),
            timeout: Duration::from_secs(30),
            settle: Duration::from_secs(DEFAULT_SETTLE_SECONDS),
            row_check: RowCheck::default(),
            compare: Compare::default(),
            max_diffs: None,
            max_duration: None,
            read_logs: true,
            verify_state: verify::VerifyState::Off,
            scope: None,
            progress: crate::progress::Progress::hidden(),
            statement_rows: None,
        }
    }
}

impl AuditOptions {
    /// How each node's index is read.
    pub fn reading(&self) -> crate::source::Reading {
        crate::source::Reading {
            mode: self.mode,
            timeout: self.timeout,
            compare: self.compare,
            statement_rows: self.statement_rows,
        }
    }
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "unknown".into())
}

/// A node slot: open, or failed with the reason.
pub(super) struct Slot {
    pub(super) node: Option<Node>,
    pub(super) error: Option<String>,
    source: String,
}

/// The nodes of one run and what the phases have found so far.
pub(super) struct Nodes {
    pub(super) slots: Vec<Slot>,
    /// Node names, by slot.
    pub(super) names: Vec<String>,
    pub(super) divergences: Vec<Divergence>,
    /// False once a node or model could not be read, or a comparison stopped early.
    pub(super) complete: bool,
    /// Nodes whose HTTP API was needed and could not be reached, with why (`api_error`).
    pub(super) api_errors: BTreeMap<String, String>,
}

impl Nodes {
    /// A node failed during the audit: close it out, report it once, go on without it.
    pub(super) fn fail(&mut self, i: usize, message: String) {
        let name = &self.names[i];
        warn!(node = %name, "Index failed during the audit: {message}");
        self.slots[i].node = None;
        self.slots[i].error = Some(message.clone());
        self.complete = false;
        self.divergences
            .push(Divergence::node_level("", name, Kind::Unreachable, message));
    }

    /// Ends the snapshot transaction of every open node (see [`Node::end_snapshot`]),
    /// concurrently; a node that fails to is reported like any node failing mid-audit.
    pub(super) async fn end_snapshots(&mut self) {
        let ended = join_all(
            self.slots
                .iter_mut()
                .enumerate()
                .filter_map(|(i, s)| s.node.as_mut().map(|n| (i, n)))
                .map(|(i, n)| async move { (i, n.end_snapshot().await) }),
        )
        .await;
        for (i, r) in ended {
            if let Err(SourceError::Node { message, .. }) = r {
                self.fail(i, message);
            }
        }
    }

    /// The open nodes among `participants`, with their slot: what every phase that asks
    /// several nodes at once iterates over.
    pub(super) fn participating<'a>(
        &'a mut self,
        participants: &'a [usize],
    ) -> impl Iterator<Item = (usize, &'a mut Node)> + 'a {
        self.slots
            .iter_mut()
            .enumerate()
            .filter(move |(i, _)| participants.contains(i))
            .filter_map(|(i, s)| s.node.as_mut().map(|n| (i, n)))
    }
}

/// Runs the audit described by `config` and returns the report (never fails as a whole: what
/// could not be read is in the report). Nodes with a ComposeDB `index` are compared by index
/// rows; nodes with a `ceramic_one_store` by their event stores ([`event_store`]); a node with
/// both takes part in both. The index audit's phases, in order:
/// open → compare (per model) → settle → refine → verify → assemble.
pub async fn run(config: &ClusterConfig, options: &AuditOptions) -> Report {
    let with_store = config
        .nodes
        .iter()
        .any(|n| n.ceramic_one_store.is_some() || n.ceramic_one_api.is_some());
    if !with_store {
        return run_index(config, options).await;
    }
    let indexed = ClusterConfig {
        nodes: config
            .nodes
            .iter()
            .filter(|n| n.index != crate::config::IndexLocation::None)
            .cloned()
            .collect(),
        ..config.clone()
    };
    let started = Instant::now();
    let only_stores = indexed.nodes.is_empty();
    let mut report = run_index(&indexed, options).await;
    if only_stores {
        // Event stores are fingerprinted with Recon's own hash, not the index hash.
        report.hash = crate::recon::Sha256a::NAME.into();
    }
    let mut audit = event_store::run_all(config, &options.params, options.settle).await;
    let behind = index_behind::index_behind(config, options).await;
    audit.findings.divergences.extend(behind);
    event_store::merge(&mut report, audit);
    report.duration_ms = started.elapsed().as_millis() as u64;
    report.finished_at = now_rfc3339();
    report
}

async fn run_index(config: &ClusterConfig, options: &AuditOptions) -> Report {
    let started_at = now_rfc3339();
    let started = Instant::now();
    let progress = &options.progress;
    progress.stage("opening nodes", None);
    let mut nodes = open(config, options).await;
    let models = choose_models(config, &nodes);
    let mut model_reports = Vec::with_capacity(models.len());
    let mut found = Vec::new();
    progress.stage("models", Some(models.len() as u64));
    for model in &models {
        let (report, differing) = compare::compare_model(&mut nodes, model, options, started).await;
        model_reports.push(report);
        found.extend(differing);
        progress.inc(1);
    }
    // The comparison is over: no node's snapshot stays open through the settle pause and the
    // HTTP phases (the re-check takes a fresh one of its own and ends it too).
    nodes.end_snapshots().await;
    progress.stage("settle, re-reading differing rows", None);
    settle::settle_and_classify(&mut nodes, found, options.settle).await;
    if options.read_logs {
        progress.stage("refine (node APIs)", None);
        refine(config, options, &mut nodes).await;
    }
    if options.verify_state != verify::VerifyState::Off {
        progress.stage("verify-state", None);
    }
    let verified = verify::verify(
        config,
        &mut nodes.slots,
        &nodes.names,
        &models,
        options.verify_state,
        options.timeout,
        &mut nodes.divergences,
    )
    .await;
    nodes.complete &= verified;
    let report = assemble(config, options, nodes, model_reports, started_at, started).await;
    progress.stage("done", None);
    report
}

/// Phase 1: every node's index opened at once; a node that cannot be opened is reported
/// `unreachable` and the audit goes on without it.
async fn open(config: &ClusterConfig, options: &AuditOptions) -> Nodes {
    let opened = join_all(config.nodes.iter().map(|n| async move {
        let source = match &n.index {
            crate::config::IndexLocation::Postgres { .. } => "postgres",
            crate::config::IndexLocation::Sqlite { .. } => "sqlite",
            crate::config::IndexLocation::Snapshot { .. } => "snapshot",
            crate::config::IndexLocation::None => "none",
        };
        (source, Node::open(n, &options.reading()).await)
    }))
    .await;
    let mut nodes = Nodes {
        slots: Vec::with_capacity(opened.len()),
        names: config.nodes.iter().map(|n| n.name.clone()).collect(),
        divergences: Vec::new(),
        complete: true,
        api_errors: BTreeMap::new(),
    };
    for (i, (source, r)) in opened.into_iter().enumerate() {
        let (node, error) = match r {
            Ok(node) => (Some(node), None),
            Err(SourceError::Node { message, node }) => {
                warn!(node = %node, "Index unreachable: {message}");
                nodes.complete = false;
                nodes.divergences.push(Divergence::node_level(
                    "",
                    &nodes.names[i],
                    Kind::Unreachable,
                    message.clone(),
                ));
                (None, Some(message))
            }
        };
        nodes.slots.push(Slot {
            node,
            error,
            source: source.into(),
        });
    }
    nodes
}

/// The models compared: the configured list, or every model indexed on any reachable node.
fn choose_models(config: &ClusterConfig, nodes: &Nodes) -> Vec<String> {
    if let Some(list) = &config.models {
        return list.clone();
    }
    let mut set = BTreeSet::new();
    for node in nodes.slots.iter().filter_map(|s| s.node.as_ref()) {
        set.extend(
            node.models
                .iter()
                .filter(|(_, st)| **st != ModelState::NotIndexed)
                .map(|(m, _)| m.clone()),
        );
    }
    set.into_iter().collect()
}

/// `GET /api/v0/node/healthcheck` of every node with an `api_url`, concurrently: the nodes
/// whose API cannot be reached, with why.
async fn api_reachability(config: &ClusterConfig, timeout: Duration) -> BTreeMap<String, String> {
    let apis = crate::api::clients(
        config,
        &crate::api::ApiOptions {
            timeout,
            retries: 1,
            ..crate::api::ApiOptions::default()
        },
    );
    let checks = futures::future::join_all(
        apis.values()
            .map(|api| async move { (api.node().to_string(), api.healthcheck().await) }),
    )
    .await;
    checks
        .into_iter()
        .filter_map(|(node, r)| {
            let e = r.err()?;
            warn!(node = %node, "The node's HTTP API cannot be reached: {e}");
            Some((node, e.to_string()))
        })
        .collect()
}

/// Phase 4: what the nodes' APIs say about the differing streams — pin lists
/// (`index_missing`), logs (`lagging`, `forked`, `index_stale`), content causes.
async fn refine(config: &ClusterConfig, options: &AuditOptions, nodes: &mut Nodes) {
    // The nodes' APIs are about to be asked: one that cannot be reached is named in the report
    // and on stderr, not only in some row's `detail`.
    if !nodes.divergences.is_empty() {
        nodes.api_errors = api_reachability(config, options.timeout).await;
    }
    presence::check(config, options.timeout, &mut nodes.divergences).await;
    refine::refine(config, options.timeout, &mut nodes.divergences).await;
    content::explain(
        config,
        &mut nodes.slots,
        &nodes.names,
        options.timeout,
        &mut nodes.divergences,
    )
    .await;
}

/// Phase 6: counts, per-node costs, rows in a stable order; the nodes closed.
async fn assemble(
    config: &ClusterConfig,
    options: &AuditOptions,
    nodes: Nodes,
    mut model_reports: Vec<ModelReport>,
    started_at: String,
    started: Instant,
) -> Report {
    let Nodes {
        slots,
        names,
        mut divergences,
        complete,
        api_errors,
    } = nodes;
    for m in &mut model_reports {
        for d in divergences.iter().filter(|d| d.model == m.model) {
            *m.counts.entry(d.kind).or_default() += 1;
        }
    }
    let node_reports: Vec<NodeReport> = slots
        .iter()
        .zip(&names)
        .map(|(s, name)| {
            let stats = s.node.as_ref().map(Node::stats).unwrap_or_default();
            NodeReport {
                name: name.clone(),
                source: s.source.clone(),
                mode: s
                    .node
                    .as_ref()
                    .map_or("-".into(), |n| format!("{:?}", n.mode).to_lowercase()),
                reachable: s.error.is_none(),
                error: s.error.clone(),
                rows: stats.rows,
                bytes_received: stats.bytes_received,
                statements: stats.statements,
                millis: stats.millis,
                tls: s.node.as_ref().and_then(|n| n.tls().map(str::to_string)),
                api_error: api_errors.get(name).cloned(),
            }
        })
        .collect();
    for s in slots {
        if let Some(n) = s.node {
            n.close().await;
        }
    }
    divergences.sort_by(|a, b| {
        (
            a.model.as_str(),
            a.stream_id.as_str(),
            a.node.as_str(),
            a.kind,
        )
            .cmp(&(
                b.model.as_str(),
                b.stream_id.as_str(),
                b.node.as_str(),
                b.kind,
            ))
    });
    let mut counts = BTreeMap::new();
    for d in &divergences {
        *counts.entry(d.kind).or_default() += 1;
    }
    Report {
        schema_version: REPORT_SCHEMA_VERSION,
        cluster: config.cluster.clone(),
        started_at,
        finished_at: now_rfc3339(),
        duration_ms: started.elapsed().as_millis() as u64,
        complete,
        hash: IndexHash::NAME.into(),
        compared: match options.compare {
            Compare::All => "all",
            Compare::Tips => "tips",
        }
        .into(),
        row_check: match options.row_check {
            RowCheck::Quick => "quick",
            RowCheck::Full => "full",
        }
        .into(),
        params: options.params.clone(),
        nodes: node_reports,
        models: model_reports,
        counts,
        divergences,
    }
}
