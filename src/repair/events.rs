//! Repair of ceramic-one nodes (issue 15): copy the events a node lacks from a node that holds
//! them, and (only with `--add-interest`) register the interests a node lacks.
//!
//! - `missing_event` → `copy_events`: the plan walks the model on the source and on the target
//!   (`GET /ceramic/experimental/events/model/<m>`), keeps the stream's events the target lacks,
//!   and orders them init event first, then along `prev` (the node refuses a data event whose
//!   init event or `prev` it lacks, reference `ceramic-one.md` §2). Applying posts each CAR
//!   (`POST /ceramic/events`); verification re-reads every event on the target (`GET
//!   /ceramic/events/{cid}`). What the node refuses (400) is `unrepairable` with its message.
//! - `not_interested` → `add_interest` with `--add-interest` (never without: an interest changes
//!   what a node downloads and stores from then on): `POST /ceramic/interests` on the node that
//!   lacks it. The other side of each conversation already holds it (that is what the row says),
//!   so both sides then do. The plan states what Recon will then move: the events of the model
//!   the node lacks and those only it holds. Verified by reading the node's interests back.
//!
//! The journal, rate, time boxes and circuit breaker are the ones of [`super::apply`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

use cid::Cid;
use serde_json::Value as Json;

use std::sync::Mutex;

use tokio_util::sync::CancellationToken;

use super::journal::Journal;
use super::plan::{Action, Strategy, Targets};
use super::{
    after, skip, skipped, Done, Fetched, Outcome, RepairOptions, Status, Stepper, VERIFY_POLL,
};
use crate::api::{ApiError, ApiOptions, CommitRecord, NodeApi};
use crate::config::ClusterConfig;
use crate::ids::{EventId, StreamId};
use crate::report::{Divergence, Kind};
use crate::source::ceramic_one::http::{decode_car, encode_car, walk_model, Walked, PAGE_LIMIT};
use crate::source::ceramic_one::interest::{model_prefix, model_range};

/// How a skip caused by a node that could not be read starts (see `Action::read_error`).
const READ_ERROR: &str = "cannot list the model's events";

/// Model walks already read in this plan, per (node, model).
type Walks = HashMap<(String, String), Result<Arc<Vec<Walked>>, String>>;

/// The `not_interested` rows as actions: `add_interest` when asked for, else left alone with
/// the reason. `select` does not see them (they are node-level rows).
pub(super) fn interest_actions(
    divergences: &[Divergence],
    targets: &Targets,
    add_interest: bool,
) -> Vec<Action> {
    divergences
        .iter()
        .filter(|d| d.kind == Kind::NotInterested)
        .map(|d| {
            let mut a = Action {
                model: d.model.clone(),
                stream_id: String::new(),
                target: d.node.clone(),
                kind: d.kind,
                strategy: None,
                source: None,
                winning_tip: None,
                commits: Vec::new(),
                skip: None,
                read_error: false,
                effect: None,
            };
            if !add_interest {
                a.skip = Some(
                    "not_interested: registering an interest changes what the node downloads and \
                     stores; left alone without --add-interest"
                        .into(),
                );
            } else if !targets.allows(&d.node) {
                a.skip = Some("the node is not a repair target (--nodes)".into());
            } else {
                a.strategy = Some(Strategy::AddInterest);
                // The nodes it will sync the model with (already interested).
                a.source = Some(d.agreeing_nodes.join(","));
                a.winning_tip = Some(format!("interest:{}", d.model));
            }
            a
        })
        .collect()
}

async fn walk(
    apis: &BTreeMap<String, NodeApi>,
    walks: &mut Walks,
    node: &str,
    model: &str,
) -> Result<Arc<Vec<Walked>>, String> {
    let key = (node.to_string(), model.to_string());
    if let Some(done) = walks.get(&key) {
        return done.clone();
    }
    let result = match apis.get(node) {
        None => Err(format!("the node {node} has no ceramic_one_api")),
        Some(api) => walk_model(api, model, PAGE_LIMIT)
            .await
            .map(|w| Arc::new(w.events))
            .map_err(|e| format!("{READ_ERROR}: {e}")),
    };
    walks.insert(key, result.clone());
    result
}

/// Clients for the nodes' ceramic-one APIs (`ceramic_one_api`), paced to `--rate`, one retry
/// (posting an event twice is harmless, but a timed-out post is better re-planned), one
/// request in flight per concurrent action (at least two, for the plan's model walks).
fn c1_apis(config: &ClusterConfig, options: &RepairOptions) -> BTreeMap<String, NodeApi> {
    let api_options = ApiOptions {
        timeout: options.timeout,
        retries: 1,
        concurrency: options.concurrency.max(2),
        max_rate: Some(options.rate),
    };
    config
        .nodes
        .iter()
        .filter_map(|n| {
            let url = n.ceramic_one_api.as_ref()?;
            match NodeApi::with_ca(&n.name, url, n.api_ca_file.as_deref(), api_options.clone()) {
                Ok(api) => Some((n.name.clone(), api)),
                Err(e) => {
                    tracing::warn!("{e}");
                    None
                }
            }
        })
        .collect()
}

/// Whether [`apply`] (not the js-ceramic loop) carries out this action.
pub(super) fn handles(a: &Action) -> bool {
    matches!(
        a.strategy,
        Some(Strategy::CopyEvents | Strategy::AddInterest)
    )
}

/// Fills the `copy_events` and `add_interest` actions from the nodes' ceramic-one APIs (reads
/// only).
pub(super) async fn prepare(
    config: &ClusterConfig,
    options: &RepairOptions,
    actions: &mut [Action],
    fetched: &mut Fetched,
) {
    let apis = &c1_apis(config, options);
    let mut walks = Walks::new();
    for a in actions.iter_mut() {
        let planned = match a.strategy {
            Some(Strategy::CopyEvents) => plan_copy(apis, a, &mut walks, fetched).await,
            Some(Strategy::AddInterest) => plan_interest(apis, a, &mut walks).await,
            _ => continue,
        };
        if let Err(why) = planned {
            // A node that could not be read is not a policy: the repair's verdict says so.
            a.read_error = why.starts_with(READ_ERROR);
            skip(a, why);
        }
    }
}

/// The model's StreamID from a report's model label (an unknown model is an EventId prefix).
fn model_of(label: &str) -> Result<StreamId, String> {
    StreamId::parse(label).map_err(|_| {
        format!("model {label} is not known by its StreamID (no node holds its definition)")
    })
}

async fn plan_copy(
    apis: &BTreeMap<String, NodeApi>,
    a: &mut Action,
    walks: &mut Walks,
    fetched: &mut Fetched,
) -> Result<(), String> {
    let stream = StreamId::parse(&a.stream_id).map_err(|e| format!("bad stream id: {e}"))?;
    model_of(&a.model)?;
    let source = a.source.clone().ok_or("no source node")?;
    if !apis.contains_key(&a.target) {
        return Err("the node has no ceramic_one_api".into());
    }
    let held = walk(apis, walks, &source, &a.model).await?;
    let have = walk(apis, walks, &a.target, &a.model).await?;
    let held: Vec<&Walked> = held
        .iter()
        .filter(|w| w.info.init == stream.genesis)
        .collect();
    if held.is_empty() {
        return Err(format!("{source} no longer holds events of this stream"));
    }
    let have: BTreeSet<Cid> = have
        .iter()
        .filter(|w| w.info.init == stream.genesis)
        .map(|w| w.cid)
        .collect();
    let order = copy_order(&held, &have);
    a.winning_tip = order.last().map(Cid::to_string);
    a.commits = order.iter().map(Cid::to_string).collect();
    let records = held
        .iter()
        .map(|w| CommitRecord {
            cid: w.cid.to_string(),
            value: Json::String(encode_car(&w.car)),
        })
        .collect();
    fetched.insert((a.stream_id.clone(), source), records);
    Ok(())
}

/// The events of `held` that are not in `have`, init event first, then each after its `prev`.
/// Events whose `prev` neither side holds come last, in key order: the node will refuse them,
/// and says so.
pub fn copy_order(held: &[&Walked], have: &BTreeSet<Cid>) -> Vec<Cid> {
    let mut placed = have.clone();
    let mut out = Vec::new();
    let mut left: Vec<&Walked> = held
        .iter()
        .copied()
        .filter(|w| !have.contains(&w.cid))
        .collect();
    loop {
        let before = left.len();
        left.retain(|w| {
            let ready = w.info.prev.is_none_or(|p| placed.contains(&p));
            if ready {
                placed.insert(w.cid);
                out.push(w.cid);
            }
            !ready
        });
        if left.is_empty() || left.len() == before {
            break;
        }
    }
    out.extend(left.iter().map(|w| w.cid));
    out
}

async fn plan_interest(
    apis: &BTreeMap<String, NodeApi>,
    a: &mut Action,
    walks: &mut Walks,
) -> Result<(), String> {
    model_of(&a.model)?;
    if !apis.contains_key(&a.target) {
        return Err("the node has no ceramic_one_api".into());
    }
    let peers: Vec<String> = a
        .source
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    let own: BTreeSet<Cid> = walk(apis, walks, &a.target, &a.model)
        .await?
        .iter()
        .map(|w| w.cid)
        .collect();
    let mut theirs = BTreeSet::new();
    let mut unread = Vec::new();
    for p in &peers {
        match walk(apis, walks, p, &a.model).await {
            Ok(events) => theirs.extend(events.iter().map(|w| w.cid)),
            Err(e) => unread.push(format!("{p}: {e}")),
        }
    }
    let download = theirs.difference(&own).count();
    let upload = own.difference(&theirs).count();
    a.effect = Some(format!(
        "registers interest in model {} on {}; Recon then syncs it with {} (already interested): \
         {} will download {download} event(s) it lacks (and every later one), and {upload} \
         event(s) only it holds will reach them{}",
        a.model,
        a.target,
        peers.join(", "),
        a.target,
        if unread.is_empty() {
            String::new()
        } else {
            format!(" (not counted: {})", unread.join("; "))
        }
    ));
    Ok(())
}

fn failed(a: &Action, status: Status, detail: String) -> Done {
    Done {
        status,
        winning_tip: a.winning_tip.clone(),
        state_tip: None,
        index_tip: None,
        detail,
    }
}

/// A refusal of the node's own (4xx) is not changed by a retry; anything else may be.
fn status_of(e: &ApiError) -> (Status, String) {
    match e {
        ApiError::Status { status, body, .. } if *status < 500 => {
            (Status::Unrepairable, format!("HTTP {status}: {body}"))
        }
        other => (Status::Failed, other.to_string()),
    }
}

/// Applies the ceramic-one actions: up to `--concurrency` workers per target node (a stream's
/// actions together, in plan order), nodes concurrently, with the journal, time box and
/// circuit breaker of [`super::apply`].
pub(super) async fn apply(
    config: &ClusterConfig,
    actions: &[Action],
    fetched: &Fetched,
    journal: &Mutex<Journal>,
    options: &RepairOptions,
    stop: &CancellationToken,
) -> Vec<Outcome> {
    let apis = &c1_apis(config, options);
    let run = &crate::audit::now_rfc3339();
    let mut by_target: BTreeMap<&str, Vec<&Action>> = BTreeMap::new();
    for a in actions.iter().filter(|a| handles(a)) {
        by_target.entry(a.target.as_str()).or_default().push(a);
    }
    let per_node = by_target.into_iter().map(|(target, queue)| async move {
        // As in the js-ceramic loop (see `run`): up to `--concurrency` workers per node, each
        // taking the next stream's actions whole (a stream's events are posted by one worker,
        // in order; `add_interest` actions share the empty stream id, so they run one after
        // another), and one circuit breaker counting consecutive failures as they finish.
        let groups = Mutex::new(super::run::by_stream(queue));
        let failures = AtomicU32::new(0);
        let worker = || async {
            let mut out = Vec::new();
            loop {
                // The lock is held only to pop, never across an await.
                let next = groups.lock().ok().and_then(|mut g| g.pop_front());
                let Some(group) = next else { break };
                for a in group {
                    options.progress.inc(1);
                    let failed = failures.load(Ordering::SeqCst);
                    let why = if stop.is_cancelled() {
                        Some("interrupted before this action".to_string())
                    } else if failed >= options.max_failures {
                        Some(format!(
                            "circuit open: {failed} consecutive failures on {target}"
                        ))
                    } else if apis.get(target).is_none() {
                        Some("the node has no ceramic_one_api".to_string())
                    } else {
                        done_before(journal, a, options)
                    };
                    if let Some(why) = why {
                        out.push(skipped(a, why));
                        continue;
                    }
                    let Some(api) = apis.get(target) else {
                        continue;
                    };
                    let outcome = run_one(api, a, fetched, journal, run, options).await;
                    if outcome.status == Status::Failed {
                        failures.fetch_add(1, Ordering::SeqCst);
                    } else {
                        failures.store(0, Ordering::SeqCst);
                    }
                    out.push(outcome);
                }
            }
            out
        };
        let workers = options.concurrency.max(1);
        futures::future::join_all((0..workers).map(|_| worker()))
            .await
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
    });
    futures::future::join_all(per_node)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Why the journal says this action needs no doing, if it does.
fn done_before(journal: &Mutex<Journal>, a: &Action, options: &RepairOptions) -> Option<String> {
    let tip = a.winning_tip.clone().unwrap_or_default();
    let done = journal.lock().ok().and_then(|j| {
        j.outcome(&a.model, &a.stream_id, &a.target, &tip)
            .map(|(r, at)| (r.to_string(), at.to_string()))
    })?;
    let counts = done.0 == "unrepairable"
        || (done.0 == "repaired" && after(&done.1, options.observed_at.as_deref()));
    counts.then(|| format!("done by an earlier run: {} (journal)", done.0))
}

/// One action, time-boxed, its outcome journalled.
async fn run_one(
    api: &NodeApi,
    a: &Action,
    fetched: &Fetched,
    journal: &Mutex<Journal>,
    run: &str,
    options: &RepairOptions,
) -> Outcome {
    let started = Instant::now();
    let mut step = Stepper {
        journal,
        run,
        action: a,
        sent: 0,
    };
    let mut done = match tokio::time::timeout(
        options.action_timeout,
        execute(api, a, fetched, &mut step, options),
    )
    .await
    {
        Ok(d) => d,
        Err(_) => failed(
            a,
            Status::Failed,
            format!(
                "time box of {} s exceeded",
                options.action_timeout.as_secs()
            ),
        ),
    };
    if let Err(e) = step.record("outcome", None, done.status.as_str(), &done.detail, None) {
        done.detail.push_str(&format!("; {e}"));
    }
    Outcome {
        model: a.model.clone(),
        stream_id: a.stream_id.clone(),
        target: a.target.clone(),
        kind: a.kind,
        strategy: a.strategy,
        status: done.status,
        winning_tip: done.winning_tip,
        state_tip: done.state_tip,
        index_tip: done.index_tip,
        commits_sent: step.sent,
        millis: started.elapsed().as_millis() as u64,
        detail: done.detail,
    }
}

/// Applies one `copy_events` or `add_interest` action on `api` (the target).
async fn execute(
    api: &NodeApi,
    a: &Action,
    fetched: &Fetched,
    step: &mut Stepper<'_>,
    options: &RepairOptions,
) -> Done {
    if a.strategy == Some(Strategy::AddInterest) {
        return add_interest(api, a, step, options).await;
    }
    let Some(source) = a.source.as_ref() else {
        return failed(a, Status::Failed, "no source node".into());
    };
    let Some(records) = fetched.get(&(a.stream_id.clone(), source.clone())) else {
        return failed(
            a,
            Status::Failed,
            format!("the events of {source} were not read"),
        );
    };
    for cid in &a.commits {
        let car = records
            .iter()
            .find(|r| &r.cid == cid)
            .and_then(|r| r.value.as_str())
            .map(decode_car);
        let Some(Ok(car)) = car else {
            return failed(a, Status::Failed, format!("event {cid} was not read"));
        };
        if let Err(e) = api.c1_post_event(&car).await {
            let (status, text) = status_of(&e);
            let _ = step.record("post_event", Some(cid), "error", &text, None);
            return failed(a, status, format!("event {cid}: {text}"));
        }
        step.sent += 1;
        if let Err(e) = step.record("post_event", Some(cid), "ok", "", None) {
            return failed(a, Status::Failed, e);
        }
    }
    verify_events(api, a, options).await
}

/// Re-reads every event of the action on the target until all are there or the window ends.
async fn verify_events(api: &NodeApi, a: &Action, options: &RepairOptions) -> Done {
    let deadline = Instant::now() + options.verify_timeout;
    let mut pending: Vec<&String> = a.commits.iter().collect();
    let mut last_error = String::new();
    loop {
        let mut still = Vec::new();
        for cid in pending {
            let Ok(parsed) = cid.parse::<Cid>() else {
                return failed(a, Status::Failed, format!("bad event CID {cid}"));
            };
            match api.c1_event(&parsed).await {
                Ok(Some(_)) => {}
                Ok(None) => still.push(cid),
                Err(e) => {
                    last_error = e.to_string();
                    still.push(cid);
                }
            }
        }
        pending = still;
        if pending.is_empty() {
            return Done {
                status: Status::Repaired,
                winning_tip: a.winning_tip.clone(),
                state_tip: a.winning_tip.clone(),
                index_tip: None,
                detail: format!("{} event(s) copied and read back", a.commits.len()),
            };
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(VERIFY_POLL).await;
    }
    failed(
        a,
        Status::Failed,
        format!(
            "not verified after {} s: {} event(s) still absent on {} (first: {}){}",
            options.verify_timeout.as_secs(),
            pending.len(),
            a.target,
            pending[0],
            if last_error.is_empty() {
                String::new()
            } else {
                format!(" ({last_error})")
            }
        ),
    )
}

async fn add_interest(
    api: &NodeApi,
    a: &Action,
    step: &mut Stepper<'_>,
    options: &RepairOptions,
) -> Done {
    let model = match model_of(&a.model) {
        Ok(m) => m,
        Err(why) => return failed(a, Status::Unrepairable, why),
    };
    if let Err(e) = api.c1_add_interest(&a.model).await {
        let (status, text) = status_of(&e);
        let _ = step.record("add_interest", None, "error", &text, None);
        return failed(a, status, text);
    }
    step.sent += 1;
    if let Err(e) = step.record("add_interest", None, "ok", "", None) {
        return failed(a, Status::Failed, e);
    }
    let deadline = Instant::now() + options.verify_timeout;
    let mut last: String;
    loop {
        match api.c1_interests().await {
            Ok(list) => {
                let covered = list.iter().any(|i| {
                    let Some((start, _)) = &i.range else {
                        return false;
                    };
                    let Ok(id) = EventId::from_bytes(start) else {
                        return false;
                    };
                    let (s, e) = model_range(&model_prefix(id.network, "model", &model.to_bytes()));
                    i.covers(&s, &e)
                });
                if covered {
                    return Done {
                        status: Status::Repaired,
                        winning_tip: a.winning_tip.clone(),
                        state_tip: None,
                        index_tip: None,
                        detail: a.effect.clone().unwrap_or_default(),
                    };
                }
                last = "no interest of the node covers the model yet".into();
            }
            Err(e) => last = e.to_string(),
        }
        if Instant::now() >= deadline {
            return failed(
                a,
                Status::Failed,
                format!(
                    "interest not verified after {} s: {last}",
                    options.verify_timeout.as_secs()
                ),
            );
        }
        tokio::time::sleep(VERIFY_POLL).await;
    }
}
