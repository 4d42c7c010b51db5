//! The audit: open every node's index, compare each model N-way with the range-fingerprint
//! descent, classify what differs, and assemble the report.
//!
//! One node failing never stops the audit: a node that cannot be opened, or fails in the middle
//! of a model, is reported `unreachable` (with the reason) and the model is compared again among
//! the others; the report is then marked incomplete (exit code 2).

pub mod classify;
pub mod content;
pub mod logs;
pub mod presence;
pub mod refine;
pub mod verify;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::future::join_all;
use tracing::{info, warn};

use crate::config::ClusterConfig;
use crate::recon::{AssociativeHash, Cost, Descent, DescentParams, Difference, Value};
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
        }
    }
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "unknown".into())
}

/// A node slot: open, or failed with the reason.
struct Slot {
    node: Option<Node>,
    error: Option<String>,
    source: String,
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
    let checks = join_all(
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

/// The store a descent error names (its index in the answers), if it names one.
fn blamed_store(e: &crate::recon::DescentError) -> Option<usize> {
    use crate::recon::DescentError as E;
    match e {
        E::AnswerCount { store, .. }
        | E::AnswerKind { store, .. }
        | E::OutOfRange { store, .. }
        | E::DuplicateKey { store, .. } => Some(*store),
        E::StoreCount(_) | E::Params(_) | E::AnswerSets { .. } | E::Finished => None,
    }
}

/// The outcome of one model's descent among `nodes`.
enum ModelRun {
    /// A node answered something that does not fit the question (`node`: the slot of the one
    /// the error names; `None`: it names none). The model is not compared on that node; the
    /// node stays in the audit for other models.
    Inconsistent {
        node: Option<usize>,
        message: String,
    },
    Done {
        differences: Vec<Difference>,
        cost: Cost,
        /// Why it stopped before the end (a cap), if it did.
        stopped: Option<String>,
    },
    /// Most first-level ranges differ: compare again with Postgres nodes downloading.
    SwitchToDownload(f64),
    /// These nodes failed; compare again without them.
    Failed(Vec<(usize, String)>),
}

/// Limits a descent runs under.
struct Limits {
    max_diffs: Option<u64>,
    deadline: Option<Instant>,
    /// May switch to download when most first-level ranges differ (a push-down Postgres node
    /// takes part and the model was not switched already).
    may_switch: bool,
}

async fn descend(
    slots: &mut [Slot],
    participants: &[usize],
    model: &str,
    params: &DescentParams,
    limits: &Limits,
) -> ModelRun {
    let mut descent = match Descent::<IndexHash>::new(participants.len(), params.clone()) {
        Ok(d) => d,
        Err(e) => {
            return ModelRun::Inconsistent {
                node: None,
                message: format!("descent refused: {e}"),
            }
        }
    };
    while let Some(batch) = descent.queries() {
        // Every participant answers the same batch concurrently.
        let mut nodes: Vec<(usize, &mut Node)> = slots
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| participants.contains(i))
            .filter_map(|(i, s)| s.node.as_mut().map(|n| (i, n)))
            .collect();
        let results = join_all(nodes.iter_mut().map(|(_, n)| n.answer(model, &batch))).await;
        let mut answers = Vec::with_capacity(results.len());
        let mut failed = Vec::new();
        for ((i, _), r) in nodes.iter().zip(results) {
            match r {
                Ok(a) => answers.push(a),
                Err(SourceError::Node { message, .. }) => failed.push((*i, message)),
            }
        }
        if !failed.is_empty() {
            return ModelRun::Failed(failed);
        }
        let compared_before = descent.cost().ranges_compared;
        let differing_before = descent.cost().ranges_differing;
        if let Err(e) = descent.feed(answers) {
            // A source answered something that does not fit the question: the store the error
            // names (answers are in `nodes` order), or none when the error names no store.
            return ModelRun::Inconsistent {
                node: blamed_store(&e).and_then(|k| nodes.get(k)).map(|(i, _)| *i),
                message: format!("inconsistent answers for model {model}: {e}"),
            };
        }
        // The first round that compared several ranges is the first level of the split.
        let compared = descent.cost().ranges_compared - compared_before;
        let differing = descent.cost().ranges_differing - differing_before;
        if limits.may_switch && compared_before <= 1 && compared > 1 {
            let share = differing as f64 / compared as f64;
            if share > DOWNLOAD_SWITCH_SHARE {
                return ModelRun::SwitchToDownload(share);
            }
        }
        let stop = if let Some(max) = limits
            .max_diffs
            .filter(|&m| descent.differences_found() as u64 >= m)
        {
            Some(format!(
                "stopped at --max-diffs {max}: the first {max} (in key order) of {} differing \
                 streams found so far are listed; more may exist",
                descent.differences_found()
            ))
        } else if limits.deadline.is_some_and(|d| Instant::now() >= d) && !descent.is_finished() {
            Some(format!(
                "stopped at --max-seconds after {} rounds: {} differing streams found so far, \
                 more may exist",
                descent.rounds(),
                descent.differences_found()
            ))
        } else {
            None
        };
        if stop.is_some() && !descent.is_finished() {
            let mut outcome = descent.finish();
            if let Some(max) = limits.max_diffs {
                outcome.differences.truncate(max as usize);
            }
            return ModelRun::Done {
                differences: outcome.differences,
                cost: outcome.cost,
                stopped: stop,
            };
        }
    }
    let outcome = descent.finish();
    ModelRun::Done {
        differences: outcome.differences,
        cost: outcome.cost,
        stopped: None,
    }
}

/// Runs the audit described by `config` and returns the report (never fails as a whole: what
/// could not be read is in the report).
pub async fn run(config: &ClusterConfig, options: &AuditOptions) -> Report {
    let started_at = now_rfc3339();
    let started = Instant::now();
    let opened = join_all(config.nodes.iter().map(|n| async move {
        let source = match &n.index {
            crate::config::IndexLocation::Postgres { .. } => "postgres",
            crate::config::IndexLocation::Sqlite { .. } => "sqlite",
            crate::config::IndexLocation::Snapshot { .. } => "snapshot",
        };
        (
            source,
            Node::open(n, options.mode, options.timeout, options.compare).await,
        )
    }))
    .await;
    let mut slots: Vec<Slot> = opened
        .into_iter()
        .map(|(source, r)| match r {
            Ok(node) => Slot {
                node: Some(node),
                error: None,
                source: source.into(),
            },
            Err(SourceError::Node { message, node }) => {
                warn!(node = %node, "Index unreachable: {message}");
                Slot {
                    node: None,
                    error: Some(message),
                    source: source.into(),
                }
            }
        })
        .collect();
    let names: Vec<String> = config.nodes.iter().map(|n| n.name.clone()).collect();
    let mut divergences: Vec<Divergence> = Vec::new();
    let mut complete = true;
    for (i, slot) in slots.iter().enumerate() {
        if let Some(e) = &slot.error {
            complete = false;
            divergences.push(node_row(&names[i], "", Kind::Unreachable, e.clone()));
        }
    }

    // Models: the configured list, or every model indexed on any reachable node.
    let models: Vec<String> = match &config.models {
        Some(list) => list.clone(),
        None => {
            let mut set = BTreeSet::new();
            for s in &slots {
                if let Some(n) = &s.node {
                    set.extend(
                        n.models
                            .iter()
                            .filter(|(_, st)| **st != ModelState::NotIndexed)
                            .map(|(m, _)| m.clone()),
                    );
                }
            }
            set.into_iter().collect()
        }
    };

    let mut model_reports: Vec<ModelReport> = Vec::new();
    let mut found: Vec<Found> = Vec::new();
    for model in &models {
        let mut participants: Vec<usize> = Vec::new();
        for (i, slot) in slots.iter().enumerate() {
            let Some(node) = &slot.node else { continue };
            match node.models.get(model) {
                Some(ModelState::Ready(_)) => participants.push(i),
                Some(ModelState::BadSchema { detail }) => {
                    complete = false;
                    divergences.push(node_row(
                        &names[i],
                        model,
                        Kind::Unreachable,
                        detail.clone(),
                    ));
                }
                Some(ModelState::NotIndexed) => divergences.push(node_row(
                    &names[i],
                    model,
                    Kind::ModelNotIndexed,
                    "ceramic_models has is_indexed = false for this model".into(),
                )),
                Some(ModelState::Missing) | None => divergences.push(node_row(
                    &names[i],
                    model,
                    Kind::ModelNotIndexed,
                    "the model is not in this node's index (no ceramic_models row or no table)"
                        .into(),
                )),
            }
        }
        // An incremental cycle: each participant holds just the streams in scope (a model the
        // scope does not name is compared whole).
        if let Some(in_scope) = options.scope.as_ref().and_then(|s| s.get(model)) {
            let streams: Vec<String> = in_scope.iter().cloned().collect();
            let restricted = join_all(
                slots
                    .iter_mut()
                    .enumerate()
                    .filter(|(i, _)| participants.contains(i))
                    .filter_map(|(i, s)| s.node.as_mut().map(|n| (i, n)))
                    .map(|(i, node)| {
                        let streams = &streams;
                        async move { (i, node.restrict(model, streams).await) }
                    }),
            )
            .await;
            for (i, r) in restricted {
                if let Err(SourceError::Node { message, .. }) = r {
                    complete = false;
                    divergences.push(node_row(&names[i], model, Kind::Unreachable, message));
                    participants.retain(|p| *p != i);
                }
            }
        }
        let mut cost = None;
        let mut differing = 0u64;
        let mut stopped: Option<String> = None;
        let mut switched: Option<f64> = None;
        // Invalid rows, every participant at once (a full scan on each Postgres node).
        let checks =
            join_all(
                slots
                    .iter_mut()
                    .enumerate()
                    .filter(|(i, _)| participants.contains(i))
                    .filter_map(|(i, s)| s.node.as_mut().map(|n| (i, n)))
                    .map(|(i, node)| async move {
                        (i, node.invalid_rows(model, options.row_check).await)
                    }),
            )
            .await;
        for (i, result) in checks {
            match result {
                Ok(rows) => {
                    for r in rows {
                        divergences.push(Divergence::stream(
                            model,
                            &r.stream_id,
                            &names[i],
                            Kind::InvalidRow,
                            r.tip,
                            r.problem,
                        ));
                    }
                }
                Err(SourceError::Node { message, .. }) => fail_node(
                    &mut slots[i],
                    &names[i],
                    message,
                    &mut divergences,
                    &mut complete,
                ),
            }
        }
        loop {
            participants.retain(|&i| slots[i].node.is_some());
            if participants.len() < 2 {
                info!(model = %model, "Fewer than 2 nodes can be compared for this model.");
                break;
            }
            // Where a node's Postgres computes the fingerprints, start with a cheap bounds-only
            // look so the rows are hashed once, not twice (see DescentParams::root_bounds_only).
            let pushing_down = participants
                .iter()
                .any(|&i| slots[i].node.as_ref().is_some_and(|n| n.pushes_down(model)));
            let params = DescentParams {
                root_bounds_only: pushing_down,
                ..options.params.clone()
            };
            let limits = Limits {
                max_diffs: options.max_diffs,
                deadline: options.max_duration.map(|d| started + d),
                may_switch: pushing_down && switched.is_none(),
            };
            match descend(&mut slots, &participants, model, &params, &limits).await {
                ModelRun::SwitchToDownload(share) => {
                    info!(
                        model = %model,
                        share,
                        "Most first-level ranges differ: Postgres nodes download this model instead."
                    );
                    for &i in &participants {
                        if let Some(n) = slots[i].node.as_mut() {
                            n.download_model(model);
                        }
                    }
                    switched = Some(share);
                }
                ModelRun::Done {
                    differences,
                    cost: c,
                    stopped: why,
                } => {
                    if let Some(why) = &why {
                        info!(model = %model, "{why}");
                        complete = false;
                    }
                    stopped = why;
                    differing = differences.len() as u64;
                    if !differences.is_empty() {
                        found.push(Found {
                            model: model.clone(),
                            participants: participants.clone(),
                            differences,
                        });
                    }
                    cost = Some(c);
                    break;
                }
                ModelRun::Inconsistent {
                    node: Some(i),
                    message,
                } => {
                    warn!(node = %names[i], model = %model, "{message}");
                    complete = false;
                    divergences.push(node_row(&names[i], model, Kind::Unreachable, message));
                    participants.retain(|p| *p != i);
                    if participants.len() < 2 {
                        break;
                    }
                }
                ModelRun::Inconsistent {
                    node: None,
                    message,
                } => {
                    warn!(model = %model, "{message}");
                    complete = false;
                    stopped = Some(format!("{message}; this model was not compared"));
                    break;
                }
                ModelRun::Failed(failures) => {
                    for (i, message) in failures {
                        fail_node(
                            &mut slots[i],
                            &names[i],
                            message,
                            &mut divergences,
                            &mut complete,
                        );
                    }
                }
            }
        }
        let bytes_over_bound = cost.as_ref().and_then(|c: &Cost| {
            (differing > 0)
                .then(|| (c.bytes_sent + c.bytes_received) as f64 / (differing as f64 * 8.0))
        });
        model_reports.push(ModelReport {
            model: model.clone(),
            nodes_compared: participants.iter().map(|&i| names[i].clone()).collect(),
            differing_streams: differing,
            counts: BTreeMap::new(),
            cost,
            bytes_over_bound,
            stopped,
            switched_to_download: switched,
        });
    }

    settle_and_classify(
        &mut slots,
        &names,
        found,
        options.settle,
        &mut divergences,
        &mut complete,
    )
    .await;
    // The nodes' APIs were (or will be) asked about divergences: one whose API cannot be
    // reached is named in the report and on stderr, not only in some row's `detail`.
    let api_errors = if options.read_logs && !divergences.is_empty() {
        api_reachability(config, options.timeout).await
    } else {
        BTreeMap::new()
    };
    if options.read_logs {
        presence::check(config, options.timeout, &mut divergences).await;
        refine::refine(config, options.timeout, &mut divergences).await;
        content::explain(
            config,
            &mut slots,
            &names,
            options.timeout,
            &mut divergences,
        )
        .await;
    }
    verify::verify(
        config,
        &mut slots,
        &names,
        &models,
        options.verify_state,
        options.timeout,
        &mut divergences,
    )
    .await;
    for m in &mut model_reports {
        for d in divergences.iter().filter(|d| d.model == m.model) {
            *m.counts.entry(d.kind).or_default() += 1;
        }
    }

    let nodes: Vec<NodeReport> = slots
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let stats = s.node.as_ref().map(Node::stats).unwrap_or_default();
            NodeReport {
                name: names[i].clone(),
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
                api_error: api_errors.get(&names[i]).cloned(),
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
        nodes,
        models: model_reports,
        counts,
        divergences,
    }
}

/// Differing keys of one model, as first seen.
struct Found {
    model: String,
    participants: Vec<usize>,
    differences: Vec<Difference>,
}

fn describe(v: &Option<Value>) -> String {
    match v {
        None => "(absent)".into(),
        Some(v) if v.tip.is_empty() => {
            format!("(no tip, columns {:08x})", v.digest >> 32)
        }
        Some(v) => format!("{} (columns {:08x})", v.tip, v.digest >> 32),
    }
}

/// Waits `settle`, reads every differing row again on every node that compared it, and
/// classifies: a row that changed on some node between the two looks is `in_flight` (one row
/// per node whose value changed); the others are divergences, classified from the first look.
async fn settle_and_classify(
    slots: &mut [Slot],
    names: &[String],
    found: Vec<Found>,
    settle: Duration,
    divergences: &mut Vec<Divergence>,
    complete: &mut bool,
) {
    let live = found.iter().any(|f| {
        f.participants
            .iter()
            .any(|&i| slots[i].node.as_ref().is_some_and(Node::is_live))
    });
    // second[(found index, node)] = stream -> value now; no entry: could not re-read.
    let mut second: HashMap<(usize, usize), HashMap<String, Value>> = HashMap::new();
    if !settle.is_zero() && !live && !found.is_empty() {
        info!(
            "No settle pause: every differing row is on a source that cannot change (a \
             snapshot, or an SQLite file nobody wrote in the last minute)."
        );
    }
    if !settle.is_zero() && live {
        info!(
            seconds = settle.as_secs_f64(),
            "Settling before re-checking differing rows."
        );
        tokio::time::sleep(settle).await;
        let involved: BTreeSet<usize> = found
            .iter()
            .flat_map(|f| f.participants.iter().copied())
            .collect();
        for &i in &involved {
            let Some(node) = slots[i].node.as_mut() else {
                continue;
            };
            if let Err(SourceError::Node { message, .. }) = node.begin_recheck().await {
                fail_node(&mut slots[i], &names[i], message, divergences, complete);
            }
        }
        for (m, f) in found.iter().enumerate() {
            let streams: Vec<String> = f.differences.iter().map(|d| d.key.stream()).collect();
            for &i in &f.participants {
                let Some(node) = slots[i].node.as_mut() else {
                    continue;
                };
                match node.recheck(&f.model, &streams).await {
                    Ok(entries) => {
                        second.insert(
                            (m, i),
                            entries
                                .into_iter()
                                .map(|e| (e.key.stream(), e.value))
                                .collect(),
                        );
                    }
                    Err(SourceError::Node { message, .. }) => {
                        fail_node(&mut slots[i], &names[i], message, divergences, complete)
                    }
                }
            }
        }
    }
    // Invalid rows the row check listed already, so a differing one is not listed twice.
    let mut invalid_listed: HashSet<(String, String, String)> = divergences
        .iter()
        .filter(|x| x.kind == Kind::InvalidRow)
        .map(|x| (x.model.clone(), x.stream_id.clone(), x.node.clone()))
        .collect();
    for (m, f) in found.iter().enumerate() {
        let compared: Vec<String> = f.participants.iter().map(|&i| names[i].clone()).collect();
        for d in &f.differences {
            let stream = d.key.stream();
            // Differing rows are parsed exactly, whatever the row check could see in SQL.
            for (pos, value) in d.values.iter().enumerate() {
                let Some(v) = value else { continue };
                let tip = Some(v.tip.as_str()).filter(|t| !t.is_empty());
                let Some(problem) = crate::source::rows::row_problem(&stream, tip) else {
                    continue;
                };
                let first =
                    invalid_listed.insert((f.model.clone(), stream.clone(), compared[pos].clone()));
                if first {
                    divergences.push(Divergence::stream(
                        &f.model,
                        &stream,
                        &compared[pos],
                        Kind::InvalidRow,
                        tip.map(str::to_string),
                        problem,
                    ));
                }
            }
            // A malformed stream id is a bad row on the nodes that hold it (`invalid_row`,
            // above) and nothing else: the others are not "missing" a stream that cannot exist.
            if crate::ids::StreamId::parse(&stream).is_err() {
                continue;
            }
            let changed: Vec<(usize, Option<Value>)> = f
                .participants
                .iter()
                .enumerate()
                .filter_map(|(pos, &i)| {
                    let now = second.get(&(m, i))?.get(&stream).cloned();
                    (now != d.values[pos]).then_some((pos, now))
                })
                .collect();
            if changed.is_empty() {
                divergences.extend(classify::classify(&f.model, d, &compared));
                continue;
            }
            for (pos, now) in changed {
                divergences.push(Divergence::stream(
                    &f.model,
                    &stream,
                    &compared[pos],
                    Kind::InFlight,
                    now.as_ref().map(|v| v.tip.clone()).filter(|t| !t.is_empty()),
                    format!(
                        "changed during the audit: {} then {}; re-audit to see whether it converged",
                        describe(&d.values[pos]),
                        describe(&now)
                    ),
                ));
            }
        }
    }
}

fn node_row(node: &str, model: &str, kind: Kind, detail: String) -> Divergence {
    Divergence::node_level(model, node, kind, detail)
}

/// A node failed during the audit: close it out, report it once, go on without it.
fn fail_node(
    slot: &mut Slot,
    name: &str,
    message: String,
    out: &mut Vec<Divergence>,
    complete: &mut bool,
) {
    warn!(node = %name, "Index failed during the audit: {message}");
    slot.node = None;
    slot.error = Some(message.clone());
    *complete = false;
    out.push(node_row(name, "", Kind::Unreachable, message));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recon::DescentError;

    /// The store an inconsistent answer came from is the one blamed (the second here), not the
    /// first participant; an error naming no store blames none.
    #[test]
    fn the_store_an_error_names_is_blamed() {
        let dup = DescentError::DuplicateKey {
            store: 1,
            key: "k".into(),
        };
        assert_eq!(blamed_store(&dup), Some(1));
        let out = DescentError::OutOfRange {
            store: 2,
            key: "k".into(),
            range: "[a, b)".into(),
        };
        assert_eq!(blamed_store(&out), Some(2));
        assert_eq!(
            blamed_store(&DescentError::AnswerSets {
                expected: 3,
                got: 2
            }),
            None
        );
    }
}
