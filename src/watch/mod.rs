//! `watch`: the auditor as a long-running service (issue 6). Cycles run on a schedule with
//! jitter, never two at a time; between full audits (`--full-every`) a cycle compares only the
//! rows changed since the previous cycle (per node and model `updated_at` watermarks, minus a
//! safety margin) plus every key still divergent last cycle. Each cycle's report goes to its
//! own directory, written whole or not at all; divergences age across cycles (`first_seen`,
//! `cycles`, `healed`); metrics are exposed for Prometheus; lagging streams that persist can be
//! repaired automatically, a bounded number per cycle.
//!
//! What an incremental cycle cannot see: a row deleted from an index since the last cycle
//! (nothing marks a deletion) and a row written with an `updated_at` older than the watermark
//! by more than the margin (a database clock far behind, a transaction open for longer than the
//! margin). Full cycles see both; `--full-every` bounds how long they can go unseen.

pub mod ageing;
pub mod gate;
pub mod http;
pub mod metrics;
pub mod schedule;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::audit::{self, AuditOptions, Scope};
use crate::config::ClusterConfig;
use crate::repair::journal::Journal;
use crate::repair::plan::Targets;
use crate::repair::{self, RepairOptions};
use crate::report::{self, Format, Kind, Report};
use crate::source::{ModelState, Node};
use ageing::{Healed, Key, Seen};
use metrics::{Exposition, Totals};
use schedule::Schedule;

/// Opt-in repair of divergences that persisted.
#[derive(Clone, Debug)]
pub struct AutoRepair {
    pub options: RepairOptions,
    /// At most this many actions per cycle.
    pub max: usize,
    /// Only divergences seen in at least this many consecutive cycles.
    pub after: u32,
}

#[derive(Clone, Debug)]
pub struct WatchOptions {
    pub schedule: Schedule,
    /// Cycle reports, `latest`, the state file and the repair journal live here.
    pub dir: PathBuf,
    /// Cycle report directories kept (oldest removed first).
    pub keep: usize,
    pub full_every: Duration,
    /// Subtracted from each watermark: rows committed late or stamped by a clock behind ours
    /// by up to this much are still seen. Too small misses such rows until the next full
    /// cycle; too large re-reads more rows each cycle (cheap: ids only).
    pub margin: Duration,
    pub alert_after: u32,
    pub audit: AuditOptions,
    pub metrics_textfile: Option<PathBuf>,
    pub repair: Option<AutoRepair>,
}

/// Kept in `<dir>/state.json` between cycles and runs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct State {
    pub schema_version: u32,
    pub cycles: u64,
    pub last_full_unix_ms: Option<i64>,
    pub last_success_unix_ms: Option<i64>,
    /// Whether the previous cycle read everything (else the next one is full).
    pub previous_complete: bool,
    /// Per node, per model: the newest `updated_at` (unix ms) seen.
    pub watermarks: BTreeMap<String, BTreeMap<String, i64>>,
    /// Divergences of the previous cycle, by [`ageing::key_text`].
    pub divergent: BTreeMap<String, (Key, Seen)>,
}

const STATE_VERSION: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CycleKind {
    Full,
    Incremental,
}

impl CycleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CycleKind::Full => "full",
            CycleKind::Incremental => "incremental",
        }
    }
}

/// `cycle.json`, beside the cycle's `report.json`.
#[derive(Clone, Debug, Serialize)]
pub struct CycleInfo {
    pub schema_version: u32,
    pub cycle: u64,
    #[serde(rename = "type")]
    pub kind: CycleKind,
    /// Streams compared by an incremental cycle (per model), none for a full one.
    pub scope_streams: Option<u64>,
    pub alert_after: u32,
    /// Divergence rows seen in at least `alert_after` consecutive cycles.
    pub alerting: u64,
    /// Divergences reported last cycle and gone now.
    pub healed: Vec<Healed>,
    pub repairs: Vec<repair::Outcome>,
    /// Set when auto-repair had something to do and could not start (its journal could not
    /// be opened): why. The cycle's report is then incomplete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repair_error: Option<String>,
}

pub struct CycleOutcome {
    pub report: Report,
    pub info: CycleInfo,
    /// Where the cycle's reports were written.
    pub dir: PathBuf,
}

pub struct Watcher {
    config: ClusterConfig,
    options: WatchOptions,
    state: State,
    totals: Totals,
    metrics: Arc<RwLock<String>>,
    /// What the readiness gate knows (`None` until the first cycle ends).
    gate: Arc<RwLock<Option<gate::Snapshot>>>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

impl Watcher {
    /// Loads `<dir>/state.json` if an earlier run left one.
    pub fn new(config: ClusterConfig, options: WatchOptions) -> Result<Self, String> {
        std::fs::create_dir_all(&options.dir)
            .map_err(|e| format!("--dir {}: {e}", options.dir.display()))?;
        let path = options.dir.join("state.json");
        let state = match std::fs::read(&path) {
            Ok(bytes) => {
                let state: State = serde_json::from_slice(&bytes).map_err(|e| {
                    format!(
                        "{}: not a watch state file ({e}); move it away to start afresh",
                        path.display()
                    )
                })?;
                if state.schema_version != STATE_VERSION {
                    return Err(format!(
                        "{}: state version {} (this build reads {STATE_VERSION}); move it away",
                        path.display(),
                        state.schema_version
                    ));
                }
                state
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State {
                schema_version: STATE_VERSION,
                ..State::default()
            },
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let starting =
            metrics::render_starting(state.last_success_unix_ms.map(|t| t as f64 / 1000.0));
        Ok(Self {
            config,
            options,
            state,
            totals: Totals::default(),
            metrics: Arc::new(RwLock::new(starting)),
            gate: Arc::new(RwLock::new(None)),
        })
    }

    /// The latest exposition text, shared with the metrics server.
    pub fn metrics(&self) -> Arc<RwLock<String>> {
        self.metrics.clone()
    }

    /// What the readiness gate reads, shared with the HTTP endpoints.
    pub fn gate(&self) -> Arc<RwLock<Option<gate::Snapshot>>> {
        self.gate.clone()
    }

    /// Each node's API healthcheck (`GET /node/healthcheck`), for the gate: a node whose index
    /// reads fine but whose daemon is down must not take traffic either. Nodes without an
    /// `api_url` are not checked.
    async fn health(&self) -> BTreeMap<String, Result<(), String>> {
        let apis = crate::api::clients(
            &self.config,
            &crate::api::ApiOptions {
                timeout: self.options.audit.timeout,
                retries: 1,
                ..crate::api::ApiOptions::default()
            },
        );
        let checks = futures::future::join_all(apis.iter().map(|(name, api)| async move {
            (
                name.clone(),
                api.healthcheck().await.map_err(|e| e.to_string()),
            )
        }))
        .await;
        checks.into_iter().collect()
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    fn next_kind(&self, now: i64) -> CycleKind {
        let full_due = self
            .state
            .last_full_unix_ms
            .is_none_or(|t| now - t >= self.options.full_every.as_millis() as i64);
        if self.state.cycles == 0 || full_due || !self.state.previous_complete {
            CycleKind::Full
        } else {
            CycleKind::Incremental
        }
    }

    /// Reads every node's changed rows: the streams changed since each watermark (minus the
    /// margin) and the new watermarks. `None` when a node could not be read (then the cycle is
    /// full: an incremental one would miss that node's changes).
    async fn changes(&self, now: i64) -> Option<(Scope, BTreeMap<String, BTreeMap<String, i64>>)> {
        let margin = self.options.margin.as_millis() as i64;
        let mut scope: Scope = BTreeMap::new();
        let mut marks: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
        let mut ok = true;
        for n in &self.config.nodes {
            let mut node = match Node::open(n, &self.options.audit.reading()).await {
                Ok(node) => node,
                Err(e) => {
                    tracing::warn!("watch: {e}; this cycle is full");
                    ok = false;
                    continue;
                }
            };
            let models: Vec<String> = node
                .models
                .iter()
                .filter(|(_, s)| matches!(s, ModelState::Ready(_)))
                .map(|(m, _)| m.clone())
                .collect();
            for model in models {
                // A model not seen before (or a first cycle) is compared whole; it only needs a
                // watermark for next time: the rows of the last margin, or our clock less it.
                let since = self
                    .state
                    .watermarks
                    .get(&n.name)
                    .and_then(|m| m.get(&model))
                    .map(|w| w - margin)
                    .unwrap_or(now - margin);
                match node.changed_since(&model, Some(since)).await {
                    Ok((streams, newest)) => {
                        scope.entry(model.clone()).or_default().extend(streams);
                        marks
                            .entry(n.name.clone())
                            .or_default()
                            .insert(model, newest.unwrap_or(since).max(since));
                    }
                    Err(e) => {
                        tracing::warn!("watch: {e}; this cycle is full");
                        ok = false;
                    }
                }
            }
            node.close().await;
        }
        ok.then_some((scope, marks))
    }

    /// Runs one cycle and writes its reports.
    pub async fn cycle(&mut self) -> Result<CycleOutcome, String> {
        let started = std::time::Instant::now();
        let now = now_ms();
        let mut kind = self.next_kind(now);
        let changes = self.changes(now).await;
        let (mut scope, marks) = match changes {
            Some((scope, marks)) => (Some(scope), Some(marks)),
            None => {
                kind = CycleKind::Full;
                (None, None)
            }
        };
        if kind == CycleKind::Incremental {
            if let Some(scope) = scope.as_mut() {
                // Everything divergent last cycle is compared again (healed or not).
                for ((model, stream, _, _), _) in self.state.divergent.values() {
                    if !stream.is_empty() {
                        scope
                            .entry(model.clone())
                            .or_default()
                            .insert(stream.clone());
                    }
                }
                // A model that a node indexes now but had no watermark for (new to it, or a node
                // new to the cluster) is compared whole: it is left out of the scope, which
                // restricts only the models it names.
                let old = &self.state.watermarks;
                if let Some(now_marks) = &marks {
                    scope.retain(|model, _| {
                        now_marks.iter().all(|(node, models)| {
                            !models.contains_key(model)
                                || old.get(node).is_some_and(|m| m.contains_key(model))
                        })
                    });
                }
            }
        } else {
            scope = None;
        }
        let scope_streams = scope
            .as_ref()
            .map(|s| s.values().map(|v| v.len() as u64).sum());
        let options = AuditOptions {
            scope: scope.clone(),
            ..self.options.audit.clone()
        };
        let mut report = audit::run(&self.config, &options).await;
        let stamp = audit::now_rfc3339();
        // Healed only what this cycle looked at: the model compared to the end on every node
        // the divergence concerns, and (incremental) the stream in scope.
        let scope_looked = (kind == CycleKind::Incremental)
            .then_some(options.scope.as_ref())
            .flatten();
        let models = &report.models;
        let compared = |model: &str, stream: &str, nodes: &[String]| {
            let Some(m) = models.iter().find(|m| m.model == model) else {
                return false;
            };
            m.stopped.is_none()
                && nodes.iter().all(|n| m.nodes_compared.contains(n))
                && scope_looked.is_none_or(|scope| {
                    scope
                        .get(model)
                        .is_none_or(|s| stream.is_empty() || s.contains(stream))
                })
        };
        let healed = ageing::age(
            &mut self.state.divergent,
            &mut report.divergences,
            &stamp,
            compared,
        );
        let alerting = report
            .divergences
            .iter()
            .filter(|d| d.cycles.unwrap_or(0) >= self.options.alert_after)
            .count() as u64;

        let (repairs, repair_error) = match &self.options.repair {
            Some(auto) => match self.auto_repair(auto, &report).await {
                Ok(outcomes) => (outcomes, None),
                Err(e) => {
                    tracing::error!("auto-repair did not run: {e}");
                    // What was asked of this cycle was not done: not a complete cycle.
                    report.complete = false;
                    (Vec::new(), Some(e))
                }
            },
            None => (Vec::new(), None),
        };

        let cycle = self.state.cycles + 1;
        let info = CycleInfo {
            schema_version: 1,
            cycle,
            kind,
            scope_streams,
            alert_after: self.options.alert_after,
            alerting,
            healed,
            repairs,
            repair_error,
        };
        let dir = self.write_cycle(&report, &info)?;

        // State: only now that the reports are on disk.
        self.state.cycles = cycle;
        if kind == CycleKind::Full {
            self.state.last_full_unix_ms = Some(now);
        }
        if report.complete {
            self.state.last_success_unix_ms = Some(now_ms());
        }
        self.state.previous_complete = report.complete;
        if let Some(marks) = marks {
            for (node, models) in marks {
                self.state
                    .watermarks
                    .entry(node)
                    .or_default()
                    .extend(models);
            }
        }
        let state_bytes = serde_json::to_vec_pretty(&self.state).map_err(|e| e.to_string())?;
        crate::atomic::write(&self.options.dir.join("state.json"), &state_bytes)
            .map_err(|e| format!("cannot write the watch state: {e}"))?;

        self.publish_metrics(kind, &report, &info, options.scope.as_ref(), started);
        let health = self.health().await;
        let snapshot = gate::Snapshot::from_report(&report, &health, now_ms());
        if let Ok(mut g) = self.gate.write() {
            *g = Some(snapshot);
        }
        Ok(CycleOutcome { report, info, dir })
    }

    /// Counters, the exposition served at `/metrics`, and the textfile, after a cycle.
    fn publish_metrics(
        &mut self,
        kind: CycleKind,
        report: &Report,
        info: &CycleInfo,
        scope: Option<&Scope>,
        started: std::time::Instant,
    ) {
        *self.totals.cycles.entry(kind.as_str().into()).or_default() += 1;
        if !report.complete {
            self.totals.incomplete_cycles += 1;
        }
        for n in &report.nodes {
            *self
                .totals
                .bytes_received
                .entry(n.name.clone())
                .or_default() += n.bytes_received;
        }
        self.totals.healed += info.healed.len() as u64;
        for m in &report.models {
            let whole = scope.is_none_or(|s| !s.contains_key(&m.model));
            if let (true, Some(cost)) = (whole, &m.cost) {
                for (node, rows) in m.nodes_compared.iter().zip(&cost.rows_per_store) {
                    self.totals
                        .rows
                        .insert((m.model.clone(), node.clone()), *rows);
                }
            }
        }
        for r in &info.repairs {
            *self
                .totals
                .repairs
                .entry(r.status.as_str().into())
                .or_default() += 1;
        }
        let text = metrics::render(&Exposition {
            report,
            alert_after: self.options.alert_after,
            last_run_unix: now_ms() as f64 / 1000.0,
            last_success_unix: self.state.last_success_unix_ms.map(|t| t as f64 / 1000.0),
            duration_seconds: started.elapsed().as_secs_f64(),
            totals: &self.totals,
        });
        if let Some(path) = &self.options.metrics_textfile {
            if let Err(e) = crate::atomic::write(path, text.as_bytes()) {
                tracing::warn!("--metrics-textfile {}: {e}", path.display());
            }
        }
        if let Ok(mut m) = self.metrics.write() {
            *m = text;
        }
    }

    /// Repairs divergences that persisted `after` cycles, at most `max` this cycle. Fails only
    /// when it cannot start (the journal cannot be opened).
    async fn auto_repair(
        &self,
        auto: &AutoRepair,
        report: &Report,
    ) -> Result<Vec<repair::Outcome>, String> {
        let chosen = select_for_repair(
            &report.divergences,
            &auto.options.targets,
            auto.after,
            auto.max,
        );
        if chosen.is_empty() {
            return Ok(Vec::new());
        }
        let journal = Journal::open(&self.options.dir.join("repair-journal.jsonl"))
            .map(Mutex::new)
            .map_err(|e| {
                format!(
                    "{} divergence(s) due for repair, not repaired: {e}",
                    chosen.len()
                )
            })?;
        let options = RepairOptions {
            observed_at: Some(report.started_at.clone()),
            ..auto.options.clone()
        };
        // Never cancelled: on shutdown the whole cycle, this included, is dropped.
        let stop = tokio_util::sync::CancellationToken::new();
        let (_, outcomes) =
            repair::plan_and_apply(&self.config, &chosen, &options, Some(&journal), &stop).await;
        Ok(outcomes)
    }

    /// Writes `report.json`, `divergences.csv` and `cycle.json` into a fresh directory, whole
    /// or not at all (a temporary directory renamed into place), points `latest` at it and
    /// removes the oldest beyond `keep`.
    fn write_cycle(&self, report: &Report, info: &CycleInfo) -> Result<PathBuf, String> {
        let stamp = time::OffsetDateTime::now_utc()
            .format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]-[minute]-[second].[subsecond digits:3]Z"
            ))
            .unwrap_or_else(|_| "unknown".into());
        let name = format!("cycle-{stamp}-{:06}", info.cycle);
        let final_dir = self.options.dir.join(&name);
        let tmp = self.options.dir.join(format!(".tmp-{name}"));
        let fail = |e: std::io::Error| {
            format!("cannot write the cycle report {}: {e}", final_dir.display())
        };
        report::write_dir(&tmp, report, &[Format::Csv, Format::Json]).map_err(fail)?;
        let info_bytes = serde_json::to_vec_pretty(info).map_err(|e| e.to_string())?;
        crate::atomic::write(&tmp.join("cycle.json"), &info_bytes).map_err(fail)?;
        std::fs::rename(&tmp, &final_dir).map_err(fail)?;
        crate::atomic::sync_dir(&self.options.dir).map_err(fail)?;
        point_latest(&self.options.dir, &name).map_err(fail)?;
        prune(&self.options.dir, self.options.keep).map_err(fail)?;
        Ok(final_dir)
    }
}

/// `latest` → the newest cycle directory, replaced atomically (a symlink renamed over the old).
fn point_latest(dir: &Path, name: &str) -> std::io::Result<()> {
    let tmp = dir.join(".latest.tmp");
    let _ = std::fs::remove_file(&tmp);
    #[cfg(unix)]
    std::os::unix::fs::symlink(name, &tmp)?;
    #[cfg(not(unix))]
    std::fs::write(&tmp, name)?;
    std::fs::rename(&tmp, dir.join("latest"))?;
    crate::atomic::sync_dir(dir)
}

/// Removes the oldest `cycle-*` directories beyond `keep`, and temporaries of cycles that were
/// abandoned.
fn prune(dir: &Path, keep: usize) -> std::io::Result<()> {
    let mut cycles: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().to_string();
        if name.starts_with("cycle-") {
            cycles.push(name);
        } else if name.starts_with(".tmp-cycle-") {
            // Left by a process killed while writing (the current cycle is renamed already).
            std::fs::remove_dir_all(dir.join(&name))?;
        }
    }
    cycles.sort();
    let excess = cycles.len().saturating_sub(keep.max(1));
    for name in &cycles[..excess] {
        std::fs::remove_dir_all(dir.join(name))?;
    }
    Ok(())
}

/// Lagging, missing and index-only divergences on allowed targets that persisted `after`
/// cycles, oldest first, at most `max`.
pub fn select_for_repair(
    divergences: &[report::Divergence],
    targets: &Targets,
    after: u32,
    max: usize,
) -> Vec<report::Divergence> {
    let mut chosen: Vec<&report::Divergence> = divergences
        .iter()
        .filter(|d| {
            matches!(
                d.kind,
                Kind::Lagging | Kind::MissingStream | Kind::IndexStale | Kind::IndexMissing
            ) && d.cycles.unwrap_or(0) >= after
                && targets.allows(&d.node)
                && !d
                    .log
                    .repair_hint
                    .as_deref()
                    .unwrap_or_default()
                    .starts_with("unrepairable")
        })
        .collect();
    chosen.sort_by(|a, b| {
        b.cycles
            .cmp(&a.cycles)
            .then_with(|| (&a.model, &a.stream_id, &a.node).cmp(&(&b.model, &b.stream_id, &b.node)))
    });
    chosen.into_iter().take(max).cloned().collect()
}

/// What a run of the loop did (for tests and the log).
#[derive(Debug, Default)]
pub struct LoopSummary {
    pub starts: Vec<tokio::time::Instant>,
    pub overruns: Vec<Duration>,
    /// A cycle was in flight when shutdown came, and was abandoned.
    pub abandoned: bool,
}

/// Runs `cycle` on `schedule` until `max_cycles` or `shutdown`. A cycle in flight when
/// shutdown comes is dropped at its next await point: its report directory is only renamed
/// into place at the very end, so nothing half-written is left.
pub async fn run_loop<F, Fut>(
    schedule: Schedule,
    max_cycles: Option<u64>,
    mut cycle: F,
    shutdown: impl Future<Output = ()>,
    mut random: impl FnMut() -> f64,
) -> LoopSummary
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut summary = LoopSummary::default();
    tokio::pin!(shutdown);
    let mut n = 0u64;
    loop {
        if max_cycles.is_some_and(|m| n >= m) {
            return summary;
        }
        n += 1;
        let start = tokio::time::Instant::now();
        summary.starts.push(start);
        tokio::select! {
            _ = cycle(n) => {}
            _ = &mut shutdown => {
                summary.abandoned = true;
                return summary;
            }
        }
        if max_cycles.is_some_and(|m| n >= m) {
            return summary;
        }
        let next = schedule.next(start.elapsed(), random());
        if let Some(over) = next.overran_by {
            tracing::warn!(
                "cycle {n} took {:.1} s, {:.1} s longer than --every: the next starts now",
                start.elapsed().as_secs_f64(),
                over.as_secs_f64()
            );
            summary.overruns.push(over);
        }
        tokio::select! {
            _ = tokio::time::sleep(next.wait) => {}
            _ = &mut shutdown => return summary,
        }
    }
}
