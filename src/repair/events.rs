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
use std::sync::Arc;
use std::time::Instant;

use cid::Cid;
use serde_json::Value as Json;

use super::plan::{Action, Strategy, Targets};
use super::{skip, Done, Fetched, RepairOptions, Status, Stepper, VERIFY_POLL};
use crate::api::{ApiError, CommitRecord, NodeApi};
use crate::ids::{EventId, StreamId};
use crate::report::{Divergence, Kind};
use crate::source::ceramic_one::http::{decode_car, encode_car, walk_model, Walked, PAGE_LIMIT};
use crate::source::ceramic_one::interest::{model_prefix, model_range};

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
        None => Err(format!("the node {node} has no api_url")),
        Some(api) => walk_model(api, model, PAGE_LIMIT)
            .await
            .map(Arc::new)
            .map_err(|e| format!("cannot list the model's events: {e}")),
    };
    walks.insert(key, result.clone());
    result
}

/// Fills the `copy_events` and `add_interest` actions from the nodes' HTTP APIs (reads only).
pub(super) async fn prepare(
    apis: &BTreeMap<String, NodeApi>,
    actions: &mut [Action],
    fetched: &mut Fetched,
) {
    let mut walks = Walks::new();
    for a in actions.iter_mut() {
        let planned = match a.strategy {
            Some(Strategy::CopyEvents) => plan_copy(apis, a, &mut walks, fetched).await,
            Some(Strategy::AddInterest) => plan_interest(apis, a, &mut walks).await,
            _ => continue,
        };
        if let Err(why) = planned {
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
        return Err("the node has no api_url".into());
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
        return Err("the node has no api_url".into());
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

/// Applies one `copy_events` or `add_interest` action on `api` (the target).
pub(super) async fn execute(
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
