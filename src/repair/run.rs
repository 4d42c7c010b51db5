//! Applying a plan: every target node works through its own queue, nodes concurrently. On one
//! node up to `concurrency` workers take the next stream from the queue (a stream's actions
//! together, in plan order, so two actions on one stream never run at once); every request is
//! still paced to `--rate` by the node's client. The circuit breaker counts consecutive failed
//! actions in the order they finish, whichever worker ran them; once it is open no worker
//! starts another action on that node, so at most `max_failures + concurrency - 1` actions fail
//! before it stops the node's queue. A stop request (Ctrl-C) lets the actions in flight finish
//! and skips the rest.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::index::IndexReader;
use super::journal::Journal;
use super::plan::Action;
use super::{apis, events, execute, Done, Fetched, Outcome, RepairOptions, Status, Stepper};
use crate::api::NodeApi;
use crate::config::ClusterConfig;

/// Applies the plan; see the module comment for what runs concurrently.
pub async fn apply(
    config: &ClusterConfig,
    actions: &[Action],
    fetched: &Fetched,
    journal: &Mutex<Journal>,
    options: &RepairOptions,
    stop: &CancellationToken,
) -> Vec<Outcome> {
    let apis = apis(config, options);
    let run = crate::audit::now_rfc3339();
    let mut by_target: BTreeMap<&str, Vec<&Action>> = BTreeMap::new();
    let mut outcomes = Vec::new();
    // ceramic-one actions run in their own loop (another API per node).
    for a in actions.iter().filter(|a| !events::handles(a)) {
        match a.strategy {
            Some(_) => by_target.entry(a.target.as_str()).or_default().push(a),
            None => outcomes.push(skipped(a, a.skip.clone().unwrap_or_default())),
        }
    }
    let per_node = futures::future::join_all(by_target.into_iter().map(|(target, queue)| {
        let shared = Shared {
            config,
            target,
            fetched,
            journal,
            options,
            stop,
            run: &run,
            failures: AtomicU32::new(0),
        };
        let api = apis.get(target);
        async move {
            match api {
                Some(api) => shared.node(api, queue).await,
                None => queue
                    .into_iter()
                    .map(|a| skipped(a, "the node has no api_url".into()))
                    .collect(),
            }
        }
    }))
    .await;
    outcomes.extend(per_node.into_iter().flatten());
    outcomes.extend(events::apply(config, actions, fetched, journal, options, stop).await);
    outcomes.sort_by(|x, y| {
        (&x.model, &x.stream_id, &x.target).cmp(&(&y.model, &y.stream_id, &y.target))
    });
    outcomes
}

/// One target node's run, shared by its workers.
struct Shared<'a> {
    config: &'a ClusterConfig,
    target: &'a str,
    fetched: &'a Fetched,
    journal: &'a Mutex<Journal>,
    options: &'a RepairOptions,
    stop: &'a CancellationToken,
    run: &'a str,
    /// Consecutive failed actions on this node, in the order they finished.
    failures: AtomicU32,
}

/// The node's actions grouped by stream, each group in plan order, groups in the order of
/// their first action.
pub(super) fn by_stream(queue: Vec<&Action>) -> VecDeque<Vec<&Action>> {
    let mut groups: Vec<Vec<&Action>> = Vec::new();
    let mut at: BTreeMap<&str, usize> = BTreeMap::new();
    for a in queue {
        match at.get(a.stream_id.as_str()) {
            Some(&i) => groups[i].push(a),
            None => {
                at.insert(a.stream_id.as_str(), groups.len());
                groups.push(vec![a]);
            }
        }
    }
    groups.into()
}

impl Shared<'_> {
    async fn node(&self, api: &NodeApi, queue: Vec<&Action>) -> Vec<Outcome> {
        let groups = Mutex::new(by_stream(queue));
        let workers = self.options.concurrency.max(1);
        let done = futures::future::join_all((0..workers).map(|_| self.worker(api, &groups))).await;
        done.into_iter().flatten().collect()
    }

    /// Takes the next stream's actions until the queue is empty. Opens its own connection to
    /// the node's index on its first action (verification reads it; a connection is not shared
    /// between concurrent statements).
    async fn worker(&self, api: &NodeApi, groups: &Mutex<VecDeque<Vec<&Action>>>) -> Vec<Outcome> {
        let mut out = Vec::new();
        let mut index: Option<IndexReader> = None;
        loop {
            // The lock is held only to pop, never across an await.
            let next = groups.lock().ok().and_then(|mut g| g.pop_front());
            let Some(group) = next else { break };
            for a in group {
                out.push(self.one(api, a, &mut index).await);
            }
        }
        out
    }

    async fn one(&self, api: &NodeApi, a: &Action, index: &mut Option<IndexReader>) -> Outcome {
        let (target, options) = (self.target, self.options);
        options.progress.inc(1);
        if self.stop.is_cancelled() {
            return skipped(a, "interrupted before this action".into());
        }
        let failures = self.failures.load(Ordering::SeqCst);
        if failures >= options.max_failures {
            return skipped(
                a,
                format!("circuit open: {failures} consecutive failures on {target}"),
            );
        }
        let tip = a.winning_tip.clone().unwrap_or_default();
        let done = self.journal.lock().ok().and_then(|j| {
            j.outcome(&a.model, &a.stream_id, target, &tip)
                .map(|(r, at)| (r.to_string(), at.to_string()))
        });
        if let Some((done, _)) = done.filter(|(result, at)| {
            result == "unrepairable"
                || (result == "repaired" && after(at, options.observed_at.as_deref()))
        }) {
            return skipped(a, format!("done by an earlier run: {done} (journal)"));
        }
        if index.is_none() {
            *index = Some(IndexReader::open(self.config, target, options.timeout).await);
        }
        let Some(index) = index.as_mut() else {
            return skipped(a, "the node's index could not be opened".into());
        };
        let started = Instant::now();
        let mut step = Stepper {
            journal: self.journal,
            run: self.run,
            action: a,
            sent: 0,
        };
        let result = tokio::time::timeout(
            options.action_timeout,
            execute(api, a, self.fetched, &mut step, index, options),
        )
        .await;
        let sent = step.sent;
        let mut outcome = result.unwrap_or_else(|_| Done {
            status: Status::Failed,
            winning_tip: a.winning_tip.clone(),
            state_tip: None,
            index_tip: None,
            detail: format!(
                "time box of {} s exceeded",
                options.action_timeout.as_secs()
            ),
        });
        if outcome.status == Status::Failed {
            self.failures.fetch_add(1, Ordering::SeqCst);
        } else {
            self.failures.store(0, Ordering::SeqCst);
        }
        // Keyed by the planned winning tip, as the next run will look it up.
        if let Err(e) = step.record(
            "outcome",
            None,
            outcome.status.as_str(),
            &outcome.detail,
            None,
        ) {
            outcome.detail.push_str(&format!("; {e}"));
        }
        Outcome {
            model: a.model.clone(),
            stream_id: a.stream_id.clone(),
            target: a.target.clone(),
            kind: a.kind,
            strategy: a.strategy,
            status: outcome.status,
            winning_tip: outcome.winning_tip,
            state_tip: outcome.state_tip,
            index_tip: outcome.index_tip,
            commits_sent: sent,
            millis: started.elapsed().as_millis() as u64,
            detail: outcome.detail,
        }
    }
}

/// Whether `at` is not earlier than `observed` (both RFC 3339); an unreadable time is not.
pub(super) fn after(at: &str, observed: Option<&str>) -> bool {
    let Some(observed) = observed else {
        return true;
    };
    let parse = |t: &str| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
    };
    match (parse(at), parse(observed)) {
        (Some(a), Some(o)) => a >= o,
        _ => false,
    }
}

pub(super) fn skipped(a: &Action, why: String) -> Outcome {
    Outcome {
        model: a.model.clone(),
        stream_id: a.stream_id.clone(),
        target: a.target.clone(),
        kind: a.kind,
        strategy: a.strategy,
        status: Status::Skipped,
        winning_tip: a.winning_tip.clone(),
        state_tip: None,
        index_tip: None,
        commits_sent: 0,
        millis: 0,
        detail: why,
    }
}
