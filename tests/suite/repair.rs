//! `repair` against scripted js-ceramic nodes on 127.0.0.1 whose SQLite indexes follow their
//! state, as a real node's do: what each strategy sends and in which order, the fall-through to
//! the whole log, a rejection kept as `unrepairable` with the node's words, the circuit breaker,
//! and the journal making a second run a no-op. Real nodes: `interop/repair-test.sh`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ceramic_audit::config::ClusterConfig;
use ceramic_audit::repair::journal::Journal;
use ceramic_audit::repair::plan::{Strategy, Targets};
use ceramic_audit::repair::{self, RepairOptions, Status};
use ceramic_audit::report::{Divergence, Kind, LogFinding};
use serde_json::{json, Value as Json};

use crate::common::composedb::{model_id, sqlite_model, stream_id, tip, Row};
use crate::common::http::{FakeNode, Reply, Seen};

/// What the scripted target does with a write.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Behaviour {
    Accept,
    /// 500 with an anchor-validation error, as 6.11 answers for another node's anchor.
    RejectAnchor,
    /// The first commit posted fails as a missing `prev` does (after its IPFS retries).
    TimeoutOnce,
    /// Every write answers 503.
    Down,
    /// The node is on another branch: a commit post is refused as js-ceramic 6.11 refuses it
    /// ("builds on stale state"); a sync=1 load makes it adopt the source's log.
    ForkAdopts,
    /// Like `ForkAdopts`, but a sync=1 load settles on a third branch.
    ForkElsewhere,
    /// Like `ForkAdopts`, but a sync=1 load changes nothing (no peer serves the other tip).
    ForkStays,
    /// A sync=1 load updates the row's tip but leaves its other columns as they are.
    TipOnlyReindex,
}

pub(crate) struct Target {
    pub(crate) logs: BTreeMap<String, Vec<String>>,
    pub(crate) behaviour: BTreeMap<String, Behaviour>,
    pub(crate) timeouts_left: u32,
    pub(crate) index: std::path::PathBuf,
    pub(crate) model: String,
    pub(crate) posted: Vec<(String, String)>,
}

fn state(id: &str, log: &[String]) -> String {
    let entries: Vec<Json> = log
        .iter()
        .enumerate()
        .map(|(i, c)| json!({"cid": c, "type": i.min(1)}))
        .collect();
    json!({"streamId": id, "state": {"type": 3, "content": {}, "metadata": {"controllers": ["did:key:x"]}, "log": entries}})
        .to_string()
}

pub(crate) fn route(t: &Mutex<Target>, req: &Seen) -> Reply {
    let Ok(mut t) = t.lock() else {
        return Reply::Full(500, "{}".into());
    };
    if let Some(rest) = req.target.strip_prefix("/api/v0/streams/") {
        let id = rest.split('?').next().unwrap_or_default().to_string();
        let Some(log) = t.logs.get(&id).cloned() else {
            return Reply::Full(500, r#"{"error":"not loaded"}"#.into());
        };
        // sync=1 re-indexes the node's own state (observed on 6.11); sync=2 does not. On a
        // forked node it runs conflict resolution first.
        let mut log = log;
        if rest.ends_with("?sync=1") {
            let branch = match t.behaviour.get(&id) {
                Some(Behaviour::ForkAdopts) => Some(source_log(seed_of(&id))),
                Some(Behaviour::ForkElsewhere) => Some(vec![log[0].clone(), tip("elsewhere")]),
                _ => None,
            };
            if let Some(branch) = branch {
                t.logs.insert(id.clone(), branch.clone());
                log = branch;
            }
            let whole = t.behaviour.get(&id) != Some(&Behaviour::TipOnlyReindex);
            write_index_row(
                &t,
                &id,
                log.last().map(String::as_str).unwrap_or_default(),
                whole,
            );
        }
        return Reply::Full(200, state(&id, &log));
    }
    let body: Json = serde_json::from_str(&req.body).unwrap_or_default();
    assert_eq!(
        body["opts"]["anchor"], false,
        "a repair must never request an anchor"
    );
    let (id, cid) = match req.target.as_str() {
        "/api/v0/commits" => (
            body["streamId"].as_str().unwrap_or_default().to_string(),
            body["commit"]["fake"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        ),
        "/api/v0/streams" => {
            let cid = body["genesis"]["fake"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            // The stream id is derived from the genesis: the test's ids are indexed by seed.
            let id = (1..=STREAMS)
                .map(|i| stream_id(&i.to_string()))
                .find(|s| cid == tip(&format!("{}:0", seed_of(s))))
                .unwrap_or_default();
            (id, cid)
        }
        _ => return Reply::Full(404, "{}".into()),
    };
    let behaviour = t.behaviour.get(&id).copied().unwrap_or(Behaviour::Accept);
    match behaviour {
        Behaviour::Down => return Reply::Full(503, "busy".into()),
        Behaviour::RejectAnchor => return Reply::Full(
            500,
            r#"{"error":"Txn bafyreiaw was not recently anchored by the InMemoryAnchorService"}"#
                .into(),
        ),
        Behaviour::TimeoutOnce if t.timeouts_left > 0 => {
            t.timeouts_left -= 1;
            return Reply::Full(
                500,
                r#"{"error":"Timeout error while loading CID bagcq from IPFS: TimeoutError: Failed to get block: request timed out"}"#.into(),
            );
        }
        Behaviour::ForkAdopts | Behaviour::ForkElsewhere | Behaviour::ForkStays => {
            let now = t
                .logs
                .get(&id)
                .and_then(|l| l.last().cloned())
                .unwrap_or_default();
            return Reply::Full(
                500,
                json!({"error": format!(
                    "Commit to stream {id} rejected because it builds on stale state. Calling \
                     'sync()' on the stream handle will synchronize the stream state in this \
                     node with the latest available on the network. Current tip: {now}"
                )})
                .to_string(),
            );
        }
        _ => {}
    }
    t.posted.push((id.clone(), cid.clone()));
    let log = t.logs.entry(id.clone()).or_default();
    if !log.contains(&cid) {
        log.push(cid);
    }
    let (log, tipnow) = (log.clone(), log.last().cloned().unwrap_or_default());
    // The index follows the state, as js-ceramic's does.
    write_index(&t, &id, &tipnow);
    Reply::Full(200, state(&id, &log))
}

fn write_index(t: &Target, id: &str, tip: &str) {
    write_index_row(t, id, tip, true)
}

/// Writes the row from the node's state (content `{}`, controller `did:key:x`), as js-ceramic
/// does; `whole: false` updates the tip only.
fn write_index_row(t: &Target, id: &str, tip: &str, whole: bool) {
    let conn = rusqlite::Connection::open(&t.index).expect("index");
    let update = if whole {
        "tip = ?2, stream_content = '{}', controller_did = 'did:key:x'"
    } else {
        "tip = ?2"
    };
    conn.execute(
        &format!(
            "INSERT INTO \"{}\" (stream_id, controller_did, stream_content, tip, created_at, updated_at) \
             VALUES (?1, 'did:key:x', '{{}}', ?2, 1, 2) ON CONFLICT (stream_id) DO UPDATE SET {update}",
            t.model
        ),
        [id, tip],
    )
    .expect("index write");
}

/// Streams the scripted nodes know, by seed (1 to this).
pub(crate) const STREAMS: usize = 40;

pub(crate) fn seed_of(stream: &str) -> usize {
    (1..=STREAMS)
        .find(|i| stream_id(&i.to_string()) == stream)
        .unwrap_or(0)
}

/// Every stream's log on the source: genesis and two updates.
pub(crate) fn source_log(i: usize) -> Vec<String> {
    (0..3).map(|v| tip(&format!("{i}:{v}"))).collect()
}

/// Node b, scripted by `target` (kept for the test to inspect).
async fn start_target(target: Target) -> (Arc<Mutex<Target>>, FakeNode) {
    let target = Arc::new(Mutex::new(target));
    let t = target.clone();
    let node = FakeNode::start(move |req, _| route(&t, req)).await;
    (target, node)
}

/// Node a: serves every stream's commits (genesis and two updates).
pub(crate) async fn source_node() -> FakeNode {
    FakeNode::start(|req, _| {
        let Some(id) = req.target.strip_prefix("/api/v0/commits/") else {
            return Reply::Full(404, "{}".into());
        };
        let commits: Vec<Json> = source_log(seed_of(id))
            .into_iter()
            .map(|c| json!({"cid": c, "value": {"fake": c}}))
            .collect();
        Reply::Full(200, json!({"streamId": id, "commits": commits}).to_string())
    })
    .await
}

/// A cluster file for nodes a and b: their APIs and SQLite indexes.
pub(crate) fn two_nodes(
    dir: &std::path::Path,
    (a, index_a): (&FakeNode, &std::path::Path),
    (b, index_b): (&FakeNode, &std::path::Path),
) -> ClusterConfig {
    let text = format!(
        "cluster = \"repair\"\n\n[[nodes]]\nname = \"a\"\napi_url = \"{}\"\nindex = \"sqlite://{}\"\n\n\
         [[nodes]]\nname = \"b\"\napi_url = \"{}\"\nindex = \"sqlite://{}\"\n",
        a.url,
        index_a.display(),
        b.url,
        index_b.display()
    );
    let path = dir.join("cluster.toml");
    std::fs::write(&path, text).expect("config");
    ClusterConfig::load(&path).expect("config")
}

pub(crate) fn divergence(i: usize, node: &str, kind: Kind, tip_now: Option<String>) -> Divergence {
    Divergence {
        model: model_id("repair"),
        stream_id: stream_id(&i.to_string()),
        node: node.into(),
        kind,
        tip: tip_now,
        majority_tip: source_log(i).last().cloned(),
        agreeing_nodes: vec!["a".into()],
        detail: String::new(),
        log: LogFinding {
            ahead_node: Some("a".into()),
            ..LogFinding::default()
        },
        first_seen: None,
        cycles: None,
    }
}

#[tokio::test]
async fn repairs_each_kind_keeps_rejections_and_a_second_run_is_a_no_op() {
    let dir = tempfile::tempdir().expect("dir");
    let model = model_id("repair");
    let index_b = dir.path().join("b.sqlite");
    let index_a = dir.path().join("a.sqlite");
    // b holds streams 1–3 at their genesis and stream 5 at the latest tip (stale index: genesis).
    sqlite_model(
        &index_b,
        &model,
        &[],
        &[
            Row::new(1, 0),
            Row::new(2, 0),
            Row::new(3, 0),
            Row::new(5, 0),
        ],
    );
    sqlite_model(&index_a, &model, &[], &[Row::new(1, 2)]);
    let mut logs = BTreeMap::new();
    for i in [1, 2, 3] {
        logs.insert(stream_id(&i.to_string()), source_log(i)[..1].to_vec());
    }
    logs.insert(stream_id("5"), source_log(5));
    let (target, b) = start_target(Target {
        logs,
        behaviour: [
            (stream_id("2"), Behaviour::RejectAnchor),
            (stream_id("3"), Behaviour::TimeoutOnce),
        ]
        .into(),
        timeouts_left: 1,
        index: index_b.clone(),
        model: model.clone(),
        posted: Vec::new(),
    })
    .await;
    let a = source_node().await;
    let config = two_nodes(dir.path(), (&a, &index_a), (&b, &index_b));
    let divergences = vec![
        divergence(1, "b", Kind::Lagging, Some(tip("1:0"))),
        divergence(2, "b", Kind::Lagging, Some(tip("2:0"))),
        divergence(3, "b", Kind::Lagging, Some(tip("3:0"))),
        divergence(4, "b", Kind::MissingStream, None),
        divergence(5, "b", Kind::IndexStale, Some(tip("5:0"))),
        divergence(6, "a", Kind::Lagging, Some(tip("6:0"))),
    ];
    let options = RepairOptions {
        targets: Targets::Named(vec!["b".into()]),
        timeout: Duration::from_secs(5),
        verify_timeout: Duration::from_secs(3),
        ..RepairOptions::default()
    };

    // The plan: strategies, sources and the commits to send, oldest first; a is not a target.
    let (actions, fetched) = repair::prepare(&config, &divergences, &options).await;
    let planned: Vec<(usize, Option<Strategy>, usize)> = actions
        .iter()
        .map(|a| (seed_of(&a.stream_id), a.strategy, a.commits.len()))
        .collect();
    assert_eq!(
        planned,
        vec![
            (1, Some(Strategy::Republish), 2),
            (2, Some(Strategy::Republish), 2),
            (3, Some(Strategy::Republish), 2),
            (4, Some(Strategy::Create), 3),
            (5, Some(Strategy::Reindex), 0),
            (6, None, 0),
        ]
    );
    assert_eq!(actions[0].commits, source_log(1)[1..].to_vec());
    assert!(
        target.lock().expect("target").posted.is_empty(),
        "planning must not write"
    );

    let journal_path = dir.path().join("journal.jsonl");
    let journal = Mutex::new(Journal::open(&journal_path).expect("journal"));
    let stop = tokio_util::sync::CancellationToken::new();
    let mut outcomes = repair::apply(&config, &actions, &fetched, &journal, &options, &stop).await;
    outcomes.sort_by_key(|o| seed_of(&o.stream_id));
    let got: Vec<(usize, Status)> = outcomes
        .iter()
        .map(|o| (seed_of(&o.stream_id), o.status))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, Status::Repaired),
            (2, Status::Unrepairable),
            (3, Status::Repaired),
            (4, Status::Repaired),
            (5, Status::Repaired),
            (6, Status::Skipped),
        ],
        "{outcomes:#?}"
    );
    assert!(
        outcomes[1].detail.contains("not recently anchored"),
        "{}",
        outcomes[1].detail
    );
    // Stream 3: the missing commits timed out, so the whole log went from the genesis, in order.
    let posted = target.lock().expect("target").posted.clone();
    let for_stream = |i: usize| -> Vec<String> {
        posted
            .iter()
            .filter(|(s, _)| *s == stream_id(&i.to_string()))
            .map(|(_, c)| c.clone())
            .collect()
    };
    assert_eq!(for_stream(1), source_log(1)[1..].to_vec());
    assert_eq!(for_stream(3), source_log(3));
    assert_eq!(for_stream(4), source_log(4));
    assert_eq!(outcomes[0].index_tip, source_log(1).last().cloned());

    // A second run with the same journal sends nothing.
    let before = posted.len();
    let journal = Mutex::new(Journal::open(&journal_path).expect("journal"));
    let (actions, fetched) = repair::prepare(&config, &divergences, &options).await;
    let again = repair::apply(&config, &actions, &fetched, &journal, &options, &stop).await;
    assert!(
        again.iter().all(|o| o.status == Status::Skipped),
        "{again:#?}"
    );
    assert_eq!(target.lock().expect("target").posted.len(), before);

    // Divergences observed after those repairs (a newer audit) are checked again — the target
    // already holds the log, so nothing is sent and the stream is verified — while an
    // unrepairable verdict stands.
    let later = RepairOptions {
        observed_at: Some(ceramic_audit::audit::now_rfc3339()),
        ..options.clone()
    };
    let journal = Mutex::new(Journal::open(&journal_path).expect("journal"));
    let (actions, fetched) = repair::prepare(&config, &divergences, &later).await;
    let mut rechecked = repair::apply(&config, &actions, &fetched, &journal, &later, &stop).await;
    rechecked.sort_by_key(|o| seed_of(&o.stream_id));
    assert_eq!(
        (rechecked[0].status, rechecked[0].commits_sent),
        (Status::Repaired, 0)
    );
    assert_eq!(rechecked[1].status, Status::Skipped);
    // Only `create` (which does not read a target said to lack the stream) sends again: the
    // node already has those commits, and re-applying them leaves it as it was.
    let resent: Vec<(String, String)> = target.lock().expect("target").posted[before..].to_vec();
    assert!(
        resent.iter().all(|(s, _)| *s == stream_id("4")),
        "{resent:?}"
    );
    assert_eq!(rechecked[3].status, Status::Repaired);
    assert_eq!(
        target.lock().expect("target").logs.get(&stream_id("4")),
        Some(&source_log(4))
    );
}

#[tokio::test]
async fn a_node_that_keeps_failing_trips_the_circuit_breaker() {
    let dir = tempfile::tempdir().expect("dir");
    let model = model_id("repair");
    let index_b = dir.path().join("b.sqlite");
    sqlite_model(&index_b, &model, &[], &[]);
    let (_target, b) = start_target(Target {
        logs: BTreeMap::new(),
        behaviour: (1..=6)
            .map(|i| (stream_id(&i.to_string()), Behaviour::Down))
            .collect(),
        timeouts_left: 0,
        index: index_b.clone(),
        model: model.clone(),
        posted: Vec::new(),
    })
    .await;
    let a = source_node().await;
    let config = two_nodes(dir.path(), (&a, &index_b), (&b, &index_b));
    let divergences: Vec<Divergence> = (1..=6)
        .map(|i| divergence(i, "b", Kind::MissingStream, None))
        .collect();
    // One action at a time: the breaker then opens after exactly `max_failures` (with more
    // workers, see `repair_concurrency`).
    let options = RepairOptions {
        targets: Targets::All,
        timeout: Duration::from_secs(2),
        max_failures: 2,
        concurrency: 1,
        ..RepairOptions::default()
    };
    let (actions, fetched) = repair::prepare(&config, &divergences, &options).await;
    let journal = Mutex::new(Journal::open(&dir.path().join("j.jsonl")).expect("journal"));
    // One node's actions run in plan order; the plan follows the report's order.
    let outcomes = repair::apply(
        &config,
        &actions,
        &fetched,
        &journal,
        &options,
        &tokio_util::sync::CancellationToken::new(),
    )
    .await;
    // The first two actions fail (503 after a retry); the breaker skips the other four.
    let failed: Vec<_> = outcomes
        .iter()
        .filter(|o| o.status == Status::Failed)
        .collect();
    let open: Vec<_> = outcomes
        .iter()
        .filter(|o| o.status == Status::Skipped && o.detail.contains("circuit open"))
        .collect();
    assert_eq!((failed.len(), open.len()), (2, 4), "{outcomes:#?}");
    assert!(
        failed[0].detail.contains("HTTP 503"),
        "{}",
        failed[0].detail
    );
}

#[tokio::test]
async fn a_fork_is_resolved_by_the_node_and_judged_against_the_prediction() {
    let dir = tempfile::tempdir().expect("dir");
    let model = model_id("repair");
    let (index_a, index_b) = (dir.path().join("a.sqlite"), dir.path().join("b.sqlite"));
    // b holds streams 1–4 on its own branch after the genesis: [g, i:9].
    let own = |i: usize| vec![tip(&format!("{i}:0")), tip(&format!("{i}:9"))];
    sqlite_model(
        &index_b,
        &model,
        &[],
        &[
            Row::new(1, 9),
            Row::new(2, 9),
            Row::new(3, 9),
            Row::new(4, 9),
        ],
    );
    sqlite_model(&index_a, &model, &[], &[Row::new(1, 2)]);
    let (target, b) = start_target(Target {
        logs: (1..=4)
            .map(|i| (stream_id(&i.to_string()), own(i)))
            .collect(),
        behaviour: [
            (stream_id("1"), Behaviour::ForkAdopts),
            (stream_id("2"), Behaviour::ForkElsewhere),
            (stream_id("3"), Behaviour::ForkStays),
            // Planned as lagging (the audit saw a prefix), forked since: the post is refused.
            (stream_id("4"), Behaviour::ForkAdopts),
        ]
        .into(),
        timeouts_left: 0,
        index: index_b.clone(),
        model: model.clone(),
        posted: Vec::new(),
    })
    .await;
    let a = source_node().await;
    let config = two_nodes(dir.path(), (&a, &index_a), (&b, &index_b));
    let forked = |i: usize| Divergence {
        kind: Kind::Forked,
        log: LogFinding {
            predicted_winner: Some("a".into()),
            fork_point: Some(tip(&format!("{i}:0"))),
            ..LogFinding::default()
        },
        ..divergence(i, "b", Kind::Forked, Some(tip(&format!("{i}:9"))))
    };
    let mut divergences: Vec<Divergence> = (1..=3).map(forked).collect();
    divergences.push(divergence(4, "b", Kind::Lagging, Some(tip("4:9"))));
    let options = RepairOptions {
        targets: Targets::All,
        resolve_forks: true,
        timeout: Duration::from_secs(5),
        verify_timeout: Duration::from_secs(2),
        ..RepairOptions::default()
    };
    let (mut actions, fetched) = repair::prepare(&config, &divergences, &options).await;
    // Planning reads b's log, sees it is no longer a prefix of a's and leaves stream 4 alone;
    // a node that forks between the plan and the apply gets the plan's republish, which it
    // refuses as stale state.
    assert!(actions[3]
        .skip
        .as_deref()
        .unwrap_or_default()
        .contains("forked or moved"));
    actions[3].strategy = Some(Strategy::Republish);
    actions[3].skip = None;
    actions[3].commits = source_log(4)[1..].to_vec();
    assert_eq!(
        actions.iter().map(|a| a.strategy).collect::<Vec<_>>(),
        vec![Some(Strategy::ResolveFork); 3]
            .into_iter()
            .chain([Some(Strategy::Republish)])
            .collect::<Vec<_>>()
    );
    assert!(actions[..3].iter().all(|a| a.commits.is_empty()
        && a.winning_tip == source_log(seed_of(&a.stream_id)).last().cloned()));
    let journal = Mutex::new(Journal::open(&dir.path().join("j.jsonl")).expect("journal"));
    let mut outcomes = repair::apply(
        &config,
        &actions,
        &fetched,
        &journal,
        &options,
        &tokio_util::sync::CancellationToken::new(),
    )
    .await;
    outcomes.sort_by_key(|o| seed_of(&o.stream_id));
    let got: Vec<(usize, Status)> = outcomes
        .iter()
        .map(|o| (seed_of(&o.stream_id), o.status))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, Status::Repaired),
            (2, Status::SettledElsewhere),
            (3, Status::Failed),
            (4, Status::Repaired),
        ],
        "{outcomes:#?}"
    );
    // Repaired means the state and the index row both show the predicted winner's tip.
    assert_eq!(outcomes[0].state_tip, source_log(1).last().cloned());
    assert_eq!(outcomes[0].index_tip, source_log(1).last().cloned());
    assert!(
        outcomes[1].detail.contains("another branch than predicted"),
        "{}",
        outcomes[1].detail
    );
    assert_eq!(outcomes[1].state_tip, Some(tip("elsewhere")));
    assert!(
        outcomes[2].detail.contains("still on its own branch"),
        "{}",
        outcomes[2].detail
    );
    // A fork is never resolved by posting commits, and "stale state" is never unrepairable.
    let posted = target.lock().expect("target").posted.clone();
    assert!(posted.is_empty(), "{posted:?}");
    assert!(outcomes.iter().all(|o| o.status != Status::Unrepairable));
}

#[tokio::test]
async fn an_edited_index_row_is_reindexed_and_its_content_verified() {
    let dir = tempfile::tempdir().expect("dir");
    let model = model_id("repair");
    let (index_a, index_b) = (dir.path().join("a.sqlite"), dir.path().join("b.sqlite"));
    sqlite_model(&index_a, &model, &[], &[]);
    sqlite_model(&index_b, &model, &[], &[]);
    let (target, b) = start_target(Target {
        logs: (1..=2)
            .map(|i| (stream_id(&i.to_string()), source_log(i)))
            .collect(),
        behaviour: [(stream_id("2"), Behaviour::TipOnlyReindex)].into(),
        timeouts_left: 0,
        index: index_b.clone(),
        model: model.clone(),
        posted: Vec::new(),
    })
    .await;
    // b's rows: the right tip, but content edited by hand.
    for i in 1..=2 {
        let id = stream_id(&i.to_string());
        let last = source_log(i).last().cloned().unwrap_or_default();
        write_index(&target.lock().expect("target"), &id, &last);
        rusqlite::Connection::open(&index_b)
            .expect("index")
            .execute(
                &format!("UPDATE \"{model}\" SET stream_content = '{{\"title\":\"edited\"}}'"),
                [],
            )
            .expect("edit");
    }
    let a = source_node().await;
    let config = two_nodes(dir.path(), (&a, &index_a), (&b, &index_b));
    let edited = |i: usize| Divergence {
        log: LogFinding {
            content_cause: Some(ceramic_audit::report::ContentCause::IndexDiffersFromState),
            ..LogFinding::default()
        },
        ..divergence(i, "b", Kind::ContentMismatch, source_log(i).last().cloned())
    };
    let options = RepairOptions {
        targets: Targets::All,
        timeout: Duration::from_secs(5),
        verify_timeout: Duration::from_secs(1),
        ..RepairOptions::default()
    };
    let (actions, fetched) = repair::prepare(&config, &[edited(1), edited(2)], &options).await;
    assert!(
        actions
            .iter()
            .all(|a| a.strategy == Some(Strategy::Reindex)),
        "{actions:#?}"
    );
    let journal = Mutex::new(Journal::open(&dir.path().join("j.jsonl")).expect("journal"));
    let mut outcomes = repair::apply(
        &config,
        &actions,
        &fetched,
        &journal,
        &options,
        &tokio_util::sync::CancellationToken::new(),
    )
    .await;
    outcomes.sort_by_key(|o| seed_of(&o.stream_id));
    // Stream 1's row was rewritten from the state; stream 2's node moved only the tip, so the
    // tips agree but the content does not: not verified.
    assert_eq!(outcomes[0].status, Status::Repaired, "{outcomes:#?}");
    assert_eq!(outcomes[1].status, Status::Failed, "{outcomes:#?}");
    assert!(
        outcomes[1].detail.contains("content still differs"),
        "{}",
        outcomes[1].detail
    );
    let content: String = rusqlite::Connection::open(&index_b)
        .expect("index")
        .query_row(
            &format!("SELECT stream_content FROM \"{model}\" WHERE stream_id = ?1"),
            [stream_id("1")],
            |r| r.get(0),
        )
        .expect("row");
    assert_eq!(content, "{}");
}
