//! `repair`: bring lagging nodes to the winning tip by re-publishing the commits they miss
//! (issue 5). Dry run by default: the plan is computed (reading only nodes that hold the stream)
//! and written; `--apply` executes it.
//!
//! Per action: the target's missing commits are posted oldest first, each request time-boxed
//! and the whole action too; the journal records every step before the next; the result is
//! verified by reading the target's state and its index row back. What the node rejects with
//! an error of its own (an anchor proof its anchor service cannot validate, a bad signature)
//! is `unrepairable`, with the node's text, and is not retried; timeouts and connection errors
//! fall through to the next strategy, then count as `failed` (tried again by the next run).
//! A commit refused as "building on stale state" was offered the wrong way (the node forked):
//! the node is made to resolve the fork itself ([`fork`]), never marked `unrepairable`.
//! After `max_failures` consecutive failures on a node its remaining actions are skipped
//! (circuit breaker); a stop request (Ctrl-C) ends each node's queue after the actions in
//! flight. Up to `concurrency` actions run at once on one node, never two on one stream
//! ([`run`]).

pub mod events;
pub mod fork;
mod index;
pub mod journal;
mod pipeline;
pub mod plan;
mod run;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::api::{ApiError, ApiOptions, CommitRecord, NodeApi, WriteOptions};
use crate::config::ClusterConfig;
use crate::ids::StreamId;
use crate::report::{Divergence, Kind};
use index::IndexReader;
use journal::{Journal, Record};
pub use pipeline::{plan_and_apply, Verdict};
use plan::{Action, Strategy, Targets};
pub use run::apply;
use run::{after, skipped};

#[derive(Clone, Debug)]
pub struct RepairOptions {
    pub targets: Targets,
    pub resolve_forks: bool,
    /// Publish re-applied commits over pubsub (default off: the target alone is repaired).
    pub publish: bool,
    /// Per HTTP request.
    pub timeout: Duration,
    /// Per action, all its requests and its verification together.
    pub action_timeout: Duration,
    /// How long the target may take to show the winning tip in its state and index.
    pub verify_timeout: Duration,
    /// Consecutive failed actions on one node before its remaining actions are skipped.
    pub max_failures: u32,
    /// Requests per second to one node at most.
    pub rate: f64,
    /// Actions running at once on one node (`--concurrency`), each on another stream; all of
    /// them together stay within `rate`.
    pub concurrency: usize,
    /// `--add-interest`: register the interests `not_interested` rows name (ceramic-one).
    pub add_interest: bool,
    /// When the divergences were observed (the audit's start, RFC 3339): a `repaired` outcome
    /// in the journal counts only if recorded after it. `None`: any counts.
    pub observed_at: Option<String>,
    /// Where the plan and the actions show how far they are (hidden unless asked for).
    pub progress: crate::progress::Progress,
}

impl Default for RepairOptions {
    fn default() -> Self {
        Self {
            targets: Targets::Named(Vec::new()),
            resolve_forks: false,
            publish: false,
            timeout: Duration::from_secs(30),
            action_timeout: Duration::from_secs(180),
            verify_timeout: Duration::from_secs(20),
            max_failures: 5,
            rate: 10.0,
            concurrency: DEFAULT_CONCURRENCY,
            add_interest: false,
            observed_at: None,
            progress: crate::progress::Progress::hidden(),
        }
    }
}

/// Actions at once on one node by default. A js-ceramic node applies commits to different
/// streams independently, and 4 writers keep a node that answers in 100–400 ms per stream busy
/// without queueing behind one slow stream; higher loads the node's IPFS and index writes
/// harder (a production node serves its users meanwhile), lower leaves the repair bound by
/// the round trips of one stream at a time. `--rate` caps the requests either way.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// How often verification re-reads the target. Too short loads the node for nothing; too long
/// adds latency to every action (the index usually follows the state within milliseconds).
pub(crate) const VERIFY_POLL: Duration = Duration::from_millis(250);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Repaired,
    Failed,
    Unrepairable,
    /// A fork resolved by the node onto another branch than the predicted winner's: a finding
    /// about the prediction, not a repair.
    SettledElsewhere,
    Skipped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Repaired => "repaired",
            Status::Failed => "failed",
            Status::Unrepairable => "unrepairable",
            Status::SettledElsewhere => "settled_elsewhere",
            Status::Skipped => "skipped",
        }
    }
}

/// One line of `repair.csv`.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub model: String,
    pub stream_id: String,
    pub target: String,
    pub kind: Kind,
    pub strategy: Option<Strategy>,
    pub status: Status,
    pub winning_tip: Option<String>,
    /// The target's state tip and index tip when last read.
    pub state_tip: Option<String>,
    pub index_tip: Option<String>,
    pub commits_sent: u32,
    pub millis: u64,
    pub detail: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct RepairReport {
    pub schema_version: u32,
    pub cluster: String,
    pub started_at: String,
    pub finished_at: String,
    pub applied: bool,
    pub journal: Option<String>,
    pub interrupted: bool,
    /// False when the audit the plan was made from (its own, or `--from-report`'s) was
    /// incomplete: what it could not see is not in the plan (exit code 2).
    pub audit_complete: bool,
    pub counts: BTreeMap<Status, u64>,
    pub plan: Vec<Action>,
    pub outcomes: Vec<Outcome>,
}

/// Commits read from source nodes, per (stream, source).
pub type Fetched = HashMap<(String, String), Vec<CommitRecord>>;

/// Clients for writes: one retry only (a commit post that timed out is better re-planned than
/// replayed at once), one request in flight per concurrent action (at least two), paced to
/// `--rate`.
fn apis(config: &ClusterConfig, options: &RepairOptions) -> BTreeMap<String, NodeApi> {
    crate::api::clients(
        config,
        &ApiOptions {
            timeout: options.timeout,
            retries: 1,
            concurrency: options.concurrency.max(2),
            max_rate: Some(options.rate),
        },
    )
}

/// The plan: [`plan::select`], then the commits each action sends, read from the source (which
/// holds the stream) and the target's own log (only when it holds the stream: `republish` and
/// `resolve_fork`). Reads only; a `reindex` target is not read at all (a load can re-index).
/// Up to `concurrency` reads at once per node, each paced to `rate` by its node's client.
pub async fn prepare(
    config: &ClusterConfig,
    divergences: &[Divergence],
    options: &RepairOptions,
) -> (Vec<Action>, Fetched) {
    use futures::stream::{self, StreamExt};
    let mut actions = plan::select(divergences, &options.targets, options.resolve_forks);
    actions.extend(events::interest_actions(
        divergences,
        &options.targets,
        options.add_interest,
    ));
    let apis = apis(config, options);
    let mut fetched: Fetched = HashMap::new();
    // ceramic-one actions are planned from the nodes' /ceramic API.
    events::prepare(config, options, &mut actions, &mut fetched).await;
    // Every node's reads share its client's bound; this bounds the futures waiting on them.
    let width = options.concurrency.max(1) * apis.len().max(1);
    let mut wanted: Vec<(String, String)> = Vec::new();
    for a in actions.iter_mut() {
        let Some(strategy) = a.strategy else { continue };
        if matches!(strategy, Strategy::CopyEvents | Strategy::AddInterest) {
            continue;
        }
        // Neither reads commits: a reindex loads the target's own state, a fork resolution
        // has the target fetch the winner's tip itself (its `winning_tip` is the audit's).
        if matches!(strategy, Strategy::Reindex | Strategy::ResolveFork) {
            if !apis.contains_key(&a.target) {
                skip(a, "the node has no api_url".into());
            }
            continue;
        }
        let source = match (&a.source, apis.contains_key(&a.target)) {
            (Some(source), true) => source.clone(),
            _ => {
                skip(a, "the node has no api_url".into());
                continue;
            }
        };
        if !apis.contains_key(&source) {
            skip(a, format!("the source node {source} has no api_url"));
            continue;
        }
        let key = (a.stream_id.clone(), source);
        if !wanted.contains(&key) {
            wanted.push(key);
        }
    }
    let read: HashMap<(String, String), Result<Vec<CommitRecord>, String>> = stream::iter(wanted)
        .map(|key| {
            let api = &apis[&key.1];
            async move {
                let got = api.commits(&key.0).await.map_err(|e| e.to_string());
                (key, got)
            }
        })
        .buffer_unordered(width)
        .collect()
        .await;
    let logs: Vec<Option<Result<Vec<String>, String>>> = stream::iter(actions.iter())
        .map(|a| {
            let api = apis.get(&a.target);
            async move {
                let (Some(api), Some(Strategy::Republish)) = (api, a.strategy) else {
                    return None;
                };
                Some(
                    api.stream(&a.stream_id)
                        .await
                        .map(|s| s.log.into_iter().map(|c| c.cid).collect())
                        .map_err(|e| e.to_string()),
                )
            }
        })
        .buffered(width)
        .collect()
        .await;
    for (a, log) in actions.iter_mut().zip(logs) {
        plan_commits(a, &read, log);
    }
    // Every log read, also for actions left out here (a caller may revise the plan).
    fetched.extend(
        read.into_iter()
            .filter_map(|(key, got)| got.ok().filter(|c| !c.is_empty()).map(|c| (key, c))),
    );
    (actions, fetched)
}

/// Fills in the winning tip and the commits `a` sends from what was read.
fn plan_commits(
    a: &mut Action,
    read: &HashMap<(String, String), Result<Vec<CommitRecord>, String>>,
    target_log: Option<Result<Vec<String>, String>>,
) {
    let (Some(strategy), Some(source)) = (a.strategy, a.source.clone()) else {
        return;
    };
    if !matches!(strategy, Strategy::Create | Strategy::Republish) {
        return;
    }
    let key = (a.stream_id.clone(), source.clone());
    let commits = match read.get(&key) {
        Some(Ok(c)) if !c.is_empty() => c,
        Some(Ok(_)) => return skip(a, format!("{source} returned no commits")),
        Some(Err(e)) => {
            skip(a, format!("cannot read the commits from {source}: {e}"));
            a.read_error = true;
            return;
        }
        None => return skip(a, format!("the commits of {source} were not read")),
    };
    a.winning_tip = commits.last().map(|c| c.cid.clone());
    let from = match (strategy, target_log) {
        (Strategy::Create, _) => 0,
        (_, None) => return skip(a, "the target's log was not read".into()),
        (_, Some(Err(e))) => {
            skip(a, format!("cannot read the target's log: {e}"));
            a.read_error = true;
            return;
        }
        (_, Some(Ok(log))) => {
            let common = log
                .iter()
                .zip(commits.iter())
                .take_while(|(x, y)| **x == y.cid)
                .count();
            // A target that already has the whole log (an earlier run got this far) sends
            // nothing but is still verified: its index may not show it yet.
            if strategy == Strategy::Republish && common < log.len() {
                return skip(
                    a,
                    format!(
                        "the target's log is no longer a prefix of {source}'s (it forked or \
                         moved since the audit: audit again)"
                    ),
                );
            }
            common
        }
    };
    a.commits = commits[from..].iter().map(|c| c.cid.clone()).collect();
}

fn skip(a: &mut Action, why: String) {
    a.strategy = None;
    a.skip = Some(why);
}

/// What went wrong in one step.
enum StepError {
    /// The node answered with an error of its own that a retry will not change.
    Rejected(String),
    /// Timeout, connection failure, or the node timing out on a block it cannot fetch.
    Transient(String),
    /// The commit does not build on the node's tip (it forked since the plan): offered the
    /// wrong way, so never `unrepairable`; the node resolves it itself ([`fork::resolve`]).
    Stale(String),
}

fn classify(e: ApiError) -> StepError {
    match &e {
        ApiError::Status { body, .. } if fork::is_stale_state(body) => {
            StepError::Stale(body.clone())
        }
        ApiError::Status { status, body, .. } if *status < 500 || !looks_transient(body) => {
            StepError::Rejected(body.clone())
        }
        _ => StepError::Transient(e.to_string()),
    }
}

/// js-ceramic reports a commit whose `prev` it cannot fetch as a 500 with "Timeout error while
/// loading CID …" after ~90 s: that is not a verdict on the commit (posting the log from the
/// genesis fixes it), unlike e.g. "… was not recently anchored by the InMemoryAnchorService".
fn looks_transient(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("timeout") || t.contains("timed out")
}

/// Journals the steps of one action.
struct Stepper<'a> {
    journal: &'a Mutex<Journal>,
    run: &'a str,
    action: &'a Action,
    sent: u32,
}

impl Stepper<'_> {
    fn record(
        &self,
        step: &str,
        cid: Option<&str>,
        result: &str,
        detail: &str,
        tip: Option<&str>,
    ) -> Result<(), String> {
        let record = Record {
            at: crate::audit::now_rfc3339(),
            run: self.run.to_string(),
            model: self.action.model.clone(),
            stream_id: self.action.stream_id.clone(),
            target: self.action.target.clone(),
            winning_tip: tip
                .or(self.action.winning_tip.as_deref())
                .unwrap_or_default()
                .to_string(),
            step: step.to_string(),
            cid: cid.map(str::to_string),
            result: result.to_string(),
            detail: detail.to_string(),
        };
        let mut j = self
            .journal
            .lock()
            .map_err(|_| "the journal lock is poisoned".to_string())?;
        j.append(&record).map_err(|e| e.to_string())
    }
}

struct Done {
    status: Status,
    winning_tip: Option<String>,
    state_tip: Option<String>,
    index_tip: Option<String>,
    detail: String,
}

async fn execute(
    api: &NodeApi,
    a: &Action,
    fetched: &Fetched,
    step: &mut Stepper<'_>,
    index: &mut IndexReader,
    options: &RepairOptions,
) -> Done {
    let fail = |status: Status, detail: String| Done {
        status,
        winning_tip: a.winning_tip.clone(),
        state_tip: None,
        index_tip: None,
        detail,
    };
    let write = WriteOptions {
        publish: options.publish,
    };
    let strategy = a.strategy.unwrap_or(Strategy::Reindex);
    if strategy == Strategy::Reindex {
        let state = match api.load_synced(&a.stream_id).await {
            Ok(s) => s,
            Err(e) => {
                let _ = step.record("reindex", None, "error", &e.to_string(), None);
                return match classify(e) {
                    StepError::Rejected(t) => fail(Status::Unrepairable, t),
                    StepError::Transient(t) | StepError::Stale(t) => fail(Status::Failed, t),
                };
            }
        };
        let tip = state.tip().map(str::to_string);
        if let Err(e) = step.record("reindex", None, "ok", "", tip.as_deref()) {
            return fail(Status::Failed, e);
        }
        return verify(api, a, tip, index, options).await;
    }
    if strategy == Strategy::ResolveFork {
        return fork::resolve(api, a, step, index, options).await;
    }
    let Some(source) = a.source.as_ref() else {
        return fail(Status::Failed, "no source node".into());
    };
    let Some(all) = fetched.get(&(a.stream_id.clone(), source.clone())) else {
        return fail(
            Status::Failed,
            format!("the commits of {source} were not read"),
        );
    };
    let first = match send(api, a, all, &a.commits, step, write).await {
        Ok(()) => None,
        Err((StepError::Stale(text), _)) => {
            tracing::info!(stream = %a.stream_id, target = %a.target, "{text}; letting the node resolve the fork (sync=1)");
            return fork::resolve(api, a, step, index, options).await;
        }
        Err((StepError::Rejected(text), _)) => return fail(Status::Unrepairable, text),
        Err((StepError::Transient(text), at_anchor)) => Some((text, at_anchor)),
    };
    if let Some((why, at_anchor)) = first {
        // The whole log helps a node that lacks a `prev` block; an anchor commit's proof is
        // not in the log, so a node that cannot fetch it gains nothing from a second pass.
        if strategy != Strategy::Republish || at_anchor {
            return fail(
                Status::Failed,
                if at_anchor {
                    format!("{why} (an anchor commit: the node could not fetch its proof?)")
                } else {
                    why
                },
            );
        }
        // Fall through: the whole log from the genesis, in order.
        tracing::info!(stream = %a.stream_id, target = %a.target, "republish failed ({why}); posting the whole log");
        let whole: Vec<String> = all.iter().map(|c| c.cid.clone()).collect();
        match send(api, a, all, &whole, step, write).await {
            Ok(()) => {}
            Err((StepError::Stale(_), _)) => {
                return fork::resolve(api, a, step, index, options).await
            }
            Err((StepError::Rejected(text), _)) => return fail(Status::Unrepairable, text),
            Err((StepError::Transient(text), _)) => {
                return fail(
                    Status::Failed,
                    format!("{why}; then, from the genesis: {text}"),
                )
            }
        }
    }
    verify(api, a, a.winning_tip.clone(), index, options).await
}

/// Posts `cids` in order (the genesis through `POST /streams`). On failure: what went wrong,
/// and whether the commit that failed is an anchor commit.
async fn send(
    api: &NodeApi,
    a: &Action,
    all: &[CommitRecord],
    cids: &[String],
    step: &mut Stepper<'_>,
    write: WriteOptions,
) -> Result<(), (StepError, bool)> {
    let genesis = all.first().map(|c| c.cid.as_str());
    for cid in cids {
        let Some(commit) = all.iter().find(|c| &c.cid == cid) else {
            return Err((
                StepError::Transient(format!("commit {cid} was not read")),
                false,
            ));
        };
        let is_anchor = commit.value.get("proof").is_some();
        let (name, result) = if Some(cid.as_str()) == genesis {
            let stream_type = StreamId::parse(&a.stream_id)
                .map(|s| s.stream_type.code())
                .map_err(|e| (StepError::Rejected(format!("bad stream id: {e}")), false))?;
            (
                "create",
                api.create_stream(&a.stream_id, stream_type, &commit.value, write)
                    .await,
            )
        } else {
            (
                "commit",
                api.apply_commit(&a.stream_id, &commit.value, write).await,
            )
        };
        match result {
            Ok(_) => {
                step.sent += 1;
                step.record(name, Some(cid), "ok", "", None)
                    .map_err(|e| (StepError::Transient(e), false))?;
            }
            Err(e) => {
                let _ = step.record(name, Some(cid), "error", &e.to_string(), None);
                return Err((classify(e), is_anchor));
            }
        }
    }
    Ok(())
}

/// Reads the target's state and index row until both show `tip` or the verify window ends.
async fn verify(
    api: &NodeApi,
    a: &Action,
    tip: Option<String>,
    index: &mut IndexReader,
    options: &RepairOptions,
) -> Done {
    let deadline = Instant::now() + options.verify_timeout;
    let mut last = (None, None, String::new());
    loop {
        let state = api.stream(&a.stream_id).await;
        let state_tip = match &state {
            Ok(s) => s.tip().map(str::to_string),
            Err(e) => {
                last.2 = e.to_string();
                None
            }
        };
        let index_tip = match index.tip(&a.model, &a.stream_id).await {
            Ok(t) => t,
            Err(e) => {
                last.2 = e;
                None
            }
        };
        let content = match (
            &state,
            tip.is_some() && state_tip == tip && index_tip == tip,
        ) {
            (Ok(state), true) if a.kind == Kind::ContentMismatch => {
                index.content_differs(&a.model, &a.stream_id, state).await
            }
            _ => None,
        };
        if let Some(why) = &content {
            last.2 = why.clone();
        }
        if content.is_none() && tip.is_some() && state_tip == tip && index_tip == tip {
            return Done {
                status: Status::Repaired,
                winning_tip: tip,
                state_tip,
                index_tip,
                detail: String::new(),
            };
        }
        last = (state_tip, index_tip, last.2);
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(VERIFY_POLL).await;
    }
    let (state_tip, index_tip, err) = last;
    let show = |t: &Option<String>| t.clone().unwrap_or_else(|| "(none)".into());
    Done {
        status: Status::Failed,
        detail: format!(
            "not verified after {} s: state tip {}, index tip {}, expected {}{}",
            options.verify_timeout.as_secs(),
            show(&state_tip),
            show(&index_tip),
            show(&tip),
            if err.is_empty() {
                String::new()
            } else {
                format!(" ({err})")
            }
        ),
        winning_tip: tip,
        state_tip,
        index_tip,
    }
}

/// One row of `repair.csv`.
#[derive(Default, Serialize)]
struct CsvRow<'a> {
    model: &'a str,
    stream_id: &'a str,
    target: &'a str,
    kind: &'a str,
    strategy: Option<&'a str>,
    status: &'a str,
    winning_tip: Option<&'a str>,
    state_tip: Option<&'a str>,
    index_tip: Option<&'a str>,
    commits_sent: u32,
    millis: u64,
    detail: &'a str,
}

/// `repair.csv`: one row per action.
pub fn render_csv(outcomes: &[Outcome]) -> std::io::Result<Vec<u8>> {
    crate::report::csv::rows(outcomes.iter().map(|o| CsvRow {
        model: &o.model,
        stream_id: &o.stream_id,
        target: &o.target,
        kind: o.kind.as_str(),
        strategy: o.strategy.map(Strategy::as_str),
        status: o.status.as_str(),
        winning_tip: o.winning_tip.as_deref(),
        state_tip: o.state_tip.as_deref(),
        index_tip: o.index_tip.as_deref(),
        commits_sent: o.commits_sent,
        millis: o.millis,
        detail: &o.detail,
    }))
}

/// Counts per status.
pub fn counts(outcomes: &[Outcome]) -> BTreeMap<Status, u64> {
    let mut c = BTreeMap::new();
    for o in outcomes {
        *c.entry(o.status).or_default() += 1;
    }
    c
}
