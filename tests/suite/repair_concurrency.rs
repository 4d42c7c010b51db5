//! `repair --concurrency` against the scripted nodes of `repair`: a target whose every answer
//! takes `DELAY`, so requests that overlap in time were in flight together. Each request is
//! taken to last from its arrival to arrival + `DELAY` (a lower bound of its real duration), so
//! the overlaps counted here never exceed the real ones.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ceramic_audit::repair::journal::Journal;
use ceramic_audit::repair::plan::{Action, Strategy, Targets};
use ceramic_audit::repair::{self, RepairOptions, Status};
use ceramic_audit::report::{Divergence, Kind};
use serde_json::Value as Json;
use tokio_util::sync::CancellationToken;

use crate::common::composedb::{model_id, sqlite_model, stream_id, tip, Row};
use crate::common::http::{FakeNode, Reply, Seen};
use crate::repair::{divergence, route, source_log, source_node, two_nodes, Behaviour, Target};

/// How long the target takes to answer anything.
const DELAY: Duration = Duration::from_millis(150);

/// Requests the target received: the stream each was about, and when it arrived.
type Arrivals = Arc<Mutex<Vec<(String, Instant)>>>;

fn stream_of(req: &Seen) -> String {
    if let Some(rest) = req.target.strip_prefix("/api/v0/streams/") {
        return rest.split('?').next().unwrap_or_default().to_string();
    }
    let body: Json = serde_json::from_str(&req.body).unwrap_or_default();
    body["streamId"].as_str().unwrap_or_default().to_string()
}

/// The most intervals [arrival, arrival + DELAY] that overlap at one instant.
fn max_overlap(times: &[Instant]) -> usize {
    let mut events: Vec<(Instant, i32)> = times
        .iter()
        .flat_map(|&t| [(t, 1), (t + DELAY, -1)])
        .collect();
    // An interval ending exactly when another starts does not overlap it.
    events.sort_by_key(|&(t, d)| (t, d));
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in events {
        now += d;
        most = most.max(now);
    }
    most as usize
}

struct Setup {
    _dir: tempfile::TempDir,
    _nodes: (FakeNode, FakeNode),
    config: ceramic_audit::config::ClusterConfig,
    journal: Mutex<Journal>,
    target: Arc<Mutex<Target>>,
    arrivals: Arrivals,
}

/// Node b holds streams 1..=n at their genesis (state and index) and answers after `DELAY`;
/// `on_write` runs at each write's arrival; node a serves every stream's three commits.
async fn setup(
    n: usize,
    behaviour: Behaviour,
    on_write: impl Fn() + Send + Sync + 'static,
) -> (Setup, Vec<Divergence>) {
    let dir = tempfile::tempdir().expect("dir");
    let model = model_id("repair");
    let index_b = dir.path().join("b.sqlite");
    let rows: Vec<Row> = (1..=n).map(|i| Row::new(i, 0)).collect();
    sqlite_model(&index_b, &model, &[], &rows);
    let logs: BTreeMap<String, Vec<String>> = (1..=n)
        .map(|i| (stream_id(&i.to_string()), source_log(i)[..1].to_vec()))
        .collect();
    let target = Arc::new(Mutex::new(Target {
        logs,
        behaviour: (1..=n)
            .map(|i| (stream_id(&i.to_string()), behaviour))
            .collect(),
        timeouts_left: 0,
        index: index_b.clone(),
        model,
        posted: Vec::new(),
    }));
    let arrivals: Arrivals = Arc::default();
    let (t, seen) = (target.clone(), arrivals.clone());
    let b = FakeNode::start(move |req, _| {
        seen.lock()
            .expect("arrivals")
            .push((stream_of(req), Instant::now()));
        if req.method == "POST" {
            on_write();
        }
        Reply::After(DELAY, Box::new(route(&t, req)))
    })
    .await;
    let a = source_node().await;
    let config = two_nodes(dir.path(), (&a, &index_b), (&b, &index_b));
    let journal = Mutex::new(Journal::open(&dir.path().join("j.jsonl")).expect("journal"));
    let divergences = (1..=n)
        .map(|i| divergence(i, "b", Kind::Lagging, Some(tip(&format!("{i}:0")))))
        .collect();
    let setup = Setup {
        _dir: dir,
        _nodes: (a, b),
        config,
        journal,
        target,
        arrivals,
    };
    (setup, divergences)
}

fn options(concurrency: usize) -> RepairOptions {
    RepairOptions {
        targets: Targets::All,
        timeout: Duration::from_secs(5),
        verify_timeout: Duration::from_secs(5),
        rate: 1000.0,
        concurrency,
        max_failures: 2,
        ..RepairOptions::default()
    }
}

#[tokio::test]
async fn at_most_concurrency_actions_run_on_a_node_and_never_two_on_one_stream() {
    let (s, divergences) = setup(12, Behaviour::Accept, || {}).await;
    // Observed after any run could have recorded anything: nothing in the journal counts, so
    // a stream's second action runs too.
    let o = RepairOptions {
        observed_at: Some("2999-01-01T00:00:00Z".into()),
        ..options(3)
    };
    let (planned, fetched) = repair::prepare(&s.config, &divergences, &o).await;
    // Streams 1–4 get a second action (a re-index) queued right behind the first: run as
    // separate actions by free workers, they would overlap.
    let mut actions = Vec::new();
    for a in planned {
        let again = (crate::repair::seed_of(&a.stream_id) <= 4).then(|| Action {
            strategy: Some(Strategy::Reindex),
            kind: Kind::IndexStale,
            commits: Vec::new(),
            ..a.clone()
        });
        actions.push(a);
        actions.extend(again);
    }
    s.arrivals.lock().expect("arrivals").clear();
    let outcomes = repair::apply(
        &s.config,
        &actions,
        &fetched,
        &s.journal,
        &o,
        &CancellationToken::new(),
    )
    .await;
    assert_eq!(outcomes.len(), 16, "{outcomes:#?}");
    assert!(
        outcomes.iter().all(|o| o.status == Status::Repaired),
        "{outcomes:#?}"
    );
    let arrivals = s.arrivals.lock().expect("arrivals").clone();
    let all: Vec<Instant> = arrivals.iter().map(|(_, t)| *t).collect();
    let most = max_overlap(&all);
    assert!(
        (2..=3).contains(&most),
        "requests in flight at once on b: {most}, expected 2 to 3 (--concurrency 3)"
    );
    let mut per_stream: BTreeMap<&str, Vec<Instant>> = BTreeMap::new();
    for (stream, t) in &arrivals {
        per_stream.entry(stream).or_default().push(*t);
    }
    for (stream, times) in per_stream {
        assert_eq!(
            max_overlap(&times),
            1,
            "two requests about {stream} were in flight at once"
        );
    }
    // Every stream got its two missing commits, once.
    let posted = s.target.lock().expect("target").posted.len();
    assert_eq!(posted, 24);
}

#[tokio::test]
async fn the_circuit_breaker_stops_a_node_with_workers_in_flight() {
    let (s, divergences) = setup(10, Behaviour::Down, || {}).await;
    let o = options(3);
    let (actions, fetched) = repair::prepare(&s.config, &divergences, &o).await;
    s.arrivals.lock().expect("arrivals").clear();
    let outcomes = repair::apply(
        &s.config,
        &actions,
        &fetched,
        &s.journal,
        &o,
        &CancellationToken::new(),
    )
    .await;
    let failed = outcomes
        .iter()
        .filter(|o| o.status == Status::Failed)
        .count();
    let open = outcomes
        .iter()
        .filter(|o| o.status == Status::Skipped && o.detail.contains("circuit open"))
        .count();
    // max_failures (2) + the other workers' actions already in flight (at most 2).
    assert!((2..=4).contains(&failed), "{outcomes:#?}");
    assert_eq!(failed + open, 10, "{outcomes:#?}");
    // Nothing was started after the breaker opened: only failed actions wrote. (A genesis
    // posted by the fall-through names no stream; it belongs to one of those actions.)
    let written: std::collections::BTreeSet<String> = s
        .arrivals
        .lock()
        .expect("arrivals")
        .iter()
        .map(|(stream, _)| stream.clone())
        .filter(|stream| !stream.is_empty())
        .collect();
    assert!(written.len() <= failed, "{written:?} vs {failed} failed");
}

#[tokio::test]
async fn a_stop_lets_the_actions_in_flight_finish_and_starts_no_other() {
    let stop = CancellationToken::new();
    let on_write = {
        let stop = stop.clone();
        move || stop.cancel()
    };
    let (s, divergences) = setup(9, Behaviour::Accept, on_write).await;
    let o = options(3);
    let (actions, fetched) = repair::prepare(&s.config, &divergences, &o).await;
    let outcomes = repair::apply(&s.config, &actions, &fetched, &s.journal, &o, &stop).await;
    let repaired: Vec<_> = outcomes
        .iter()
        .filter(|o| o.status == Status::Repaired)
        .collect();
    let interrupted = outcomes
        .iter()
        .filter(|o| o.status == Status::Skipped && o.detail.contains("interrupted"))
        .count();
    // The first write stops the run: the (up to 3) actions already started finish, whole.
    assert!((1..=3).contains(&repaired.len()), "{outcomes:#?}");
    assert_eq!(repaired.len() + interrupted, 9, "{outcomes:#?}");
    assert!(
        repaired.iter().all(|o| o.commits_sent == 2),
        "{repaired:#?}"
    );
    let posted = s.target.lock().expect("target").posted.len();
    assert_eq!(
        posted,
        2 * repaired.len(),
        "a stopped action was left half done"
    );
}
