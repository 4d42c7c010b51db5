//! ceramic-one over HTTP (issue 15): the scripted node (tests/common/ceramic_one.rs) over copies
//! of the `fixtures/ceramic-one-3` stores; the event repair (`copy_events`, `add_interest`)
//! planned, applied, journalled and checked by auditing the stores again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use ceramic_audit::api::{ApiOptions, NodeApi};
use ceramic_audit::audit::event_store;
use ceramic_audit::config::ClusterConfig;
use ceramic_audit::ids::StreamId;
use ceramic_audit::recon::DescentParams;
use ceramic_audit::repair::journal::Journal;
use ceramic_audit::repair::plan::{Strategy, Targets};
use ceramic_audit::repair::{self, RepairOptions, Status};
use ceramic_audit::report::{Divergence, Kind};
use ceramic_audit::source::ceramic_one::http::{event_of_car, walk_model};
use ceramic_audit::source::ceramic_one::{EventStore, META_MODEL};
use serde_json::Value as Json;
use tokio_util::sync::CancellationToken;

use crate::common::ceramic_one::{network_of, Fault, ScriptedNode};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/ceramic-one-3")
}

/// name -> (stream, cid) of every event in events.json, and the models by name.
fn names() -> (BTreeMap<String, (String, String)>, BTreeMap<String, String>) {
    let doc: Json =
        serde_json::from_str(&std::fs::read_to_string(fixture().join("events.json")).unwrap())
            .unwrap();
    let events = doc["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap().to_string();
            (s("name"), (s("stream"), s("cid")))
        })
        .collect();
    let models = doc["models"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    (events, models)
}

/// Three scripted nodes over copies of the fixture stores, and the cluster file naming them
/// (each node with its store and its api_url).
struct Bed {
    root: PathBuf,
    _dir: tempfile::TempDir,
    nodes: BTreeMap<String, ScriptedNode>,
    config: ClusterConfig,
    journal: PathBuf,
}

async fn bed() -> Bed {
    let dir = tempfile::tempdir().unwrap();
    let mut toml = String::from("cluster = \"ceramic-one-3\"\n");
    let mut nodes = BTreeMap::new();
    for n in ["a", "b", "c"] {
        std::fs::create_dir(dir.path().join(n)).unwrap();
        let db = dir.path().join(n).join("db.sqlite3");
        std::fs::copy(fixture().join(n).join("db.sqlite3"), &db).unwrap();
        let node = ScriptedNode::start(&db, network_of(&db)).await;
        toml.push_str(&format!(
            "[[nodes]]\nname = \"{n}\"\nceramic_one_store = \"{n}\"\nceramic_one_api = \"{}\"\n",
            node.url
        ));
        nodes.insert(n.to_string(), node);
    }
    let path = dir.path().join("cluster.toml");
    std::fs::write(&path, toml).unwrap();
    let config = ClusterConfig::load(&path).unwrap();
    let journal = dir.path().join("journal.jsonl");
    Bed {
        root: dir.path().to_path_buf(),
        _dir: dir,
        nodes,
        config,
        journal,
    }
}

fn audit(config: &ClusterConfig) -> Vec<Divergence> {
    let audit = event_store::run(config, &DescentParams::default());
    assert!(audit.complete, "{:?}", audit.findings.divergences);
    audit.findings.divergences
}

fn options(add_interest: bool) -> RepairOptions {
    RepairOptions {
        targets: Targets::All,
        timeout: Duration::from_secs(5),
        verify_timeout: Duration::from_secs(3),
        add_interest,
        ..RepairOptions::default()
    }
}

fn api(node: &ScriptedNode, name: &str) -> NodeApi {
    NodeApi::new(name, &node.url, ApiOptions::default()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scripted_node_serves_the_store_as_documented() {
    let bed = bed().await;
    let (ev, models) = names();
    let a = api(&bed.nodes["a"], "a");
    // The model walk, paged by 3, returns the store's events of the model in EventId order,
    // each CAR rebuilding the stored EventId.
    let walked = walk_model(&a, &models["Note"], 3).await.unwrap().events;
    let store = EventStore::open(
        &bed.config.nodes[0]
            .ceramic_one_store
            .clone()
            .unwrap()
            .join("db.sqlite3"),
    )
    .unwrap();
    let network = network_of(&fixture().join("a/db.sqlite3"));
    let note = StreamId::parse(&models["Note"]).unwrap().to_bytes();
    let prefix =
        ceramic_audit::source::ceramic_one::interest::model_prefix(network, "model", &note);
    let (start, end) = ceramic_audit::source::ceramic_one::interest::model_range(&prefix);
    let stored = store.events(&start, &end).unwrap();
    assert_eq!(
        walked.iter().map(|w| w.cid).collect::<Vec<_>>(),
        stored.iter().map(|e| e.1).collect::<Vec<_>>()
    );
    assert!(walked.len() > 3, "more than one page");
    // A data event whose init event the node lacks is refused; c lacks note3 entirely.
    let c = api(&bed.nodes["c"], "c");
    let data1: cid::Cid = ev["note3:data1"].1.parse().unwrap();
    let car = a.c1_event(&data1).await.unwrap().unwrap();
    assert_eq!(event_of_car(&car, Some(&data1)).unwrap().0, data1);
    let refused = c.c1_post_event(&car).await.unwrap_err().to_string();
    assert!(
        refused.contains("HTTP 400") && refused.contains("init event"),
        "{refused}"
    );
    assert_eq!(bed.nodes["c"].writes(), 0);
    assert_eq!(c.c1_event(&data1).await.unwrap(), None);
    // States: a holds the definitions, b and c do not (pending, 404).
    let note1 = &ev["note1:init"].0;
    assert!(a.c1_has_state(note1).await.unwrap());
    assert!(!api(&bed.nodes["b"], "b").c1_has_state(note1).await.unwrap());
    // Interests as the store holds them: c has Note and the meta-model.
    assert_eq!(c.c1_interests().await.unwrap().len(), 2);
    // Faults: a 500 and a cut page name the node, the model and the offset.
    bed.nodes["a"].inject(Fault::PageStatus500(3));
    let err = walk_model(&a, &models["Note"], 3)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("node a") && err.contains("offset 3") && err.contains("500"),
        "{err}"
    );
    bed.nodes["a"].inject(Fault::PageTruncated(0));
    let err = walk_model(&a, &models["Note"], 3)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("offset 0") && err.contains("unexpected response"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copying_events_moves_exactly_the_missing_ones_and_the_re_audit_is_clean() {
    let bed = bed().await;
    let (ev, models) = names();
    let stream = |n: &str| ev[&format!("{n}:init")].0.clone();
    let cid = |n: &str| ev[n].1.clone();
    let before = audit(&bed.config);
    let stop = CancellationToken::new();

    // Dry run: the plan copies exactly what is missing, init first, in prev order; no writes.
    let (plan, outcomes) =
        repair::plan_and_apply(&bed.config, &before, &options(false), None, &stop).await;
    assert!(outcomes.is_empty());
    let copies: BTreeSet<(String, String, Vec<String>)> = plan
        .iter()
        .filter(|a| a.strategy == Some(Strategy::CopyEvents))
        .map(|a| (a.target.clone(), a.stream_id.clone(), a.commits.clone()))
        .collect();
    let note3: Vec<String> = ev
        .keys()
        .filter(|k| k.starts_with("note3:"))
        .map(|k| cid(k))
        .collect();
    assert_eq!(note3.len(), 2, "note3: init and one update");
    let model_def = |m: &str| ev[&format!("model:{m}")].clone();
    let expected = BTreeSet::from([
        ("b".into(), stream("note4"), vec![cid("note4:data1")]),
        ("c".into(), stream("note2"), vec![cid("note2:data2")]),
        (
            "c".into(),
            stream("note3"),
            vec![cid("note3:init"), cid("note3:data1")],
        ),
        ("b".into(), model_def("Note").0, vec![model_def("Note").1]),
        (
            "b".into(),
            model_def("Comment").0,
            vec![model_def("Comment").1],
        ),
        ("c".into(), model_def("Note").0, vec![model_def("Note").1]),
        (
            "c".into(),
            model_def("Comment").0,
            vec![model_def("Comment").1],
        ),
    ]);
    assert_eq!(copies, expected);
    let interest_rows: Vec<_> = plan
        .iter()
        .filter(|a| a.kind == Kind::NotInterested)
        .collect();
    assert_eq!(interest_rows.len(), 2);
    assert!(interest_rows.iter().all(|a| a.strategy.is_none()
        && a.skip
            .as_deref()
            .unwrap_or_default()
            .contains("--add-interest")));
    assert!(
        bed.nodes.values().all(|n| n.writes() == 0),
        "a dry run writes nothing"
    );

    // Applied: every copy repaired and read back; the journal holds each post.
    let journal = Mutex::new(Journal::open(&bed.journal).unwrap());
    let (_, outcomes) =
        repair::plan_and_apply(&bed.config, &before, &options(false), Some(&journal), &stop).await;
    let copied: Vec<_> = outcomes
        .iter()
        .filter(|o| o.strategy == Some(Strategy::CopyEvents))
        .collect();
    assert_eq!(copied.len(), 7);
    assert!(
        copied.iter().all(|o| o.status == Status::Repaired),
        "{copied:#?}"
    );
    assert_eq!(copied.iter().map(|o| o.commits_sent).sum::<u32>(), 8);
    assert_eq!(bed.nodes["b"].writes() + bed.nodes["c"].writes(), 8);
    assert_eq!(bed.nodes["a"].writes(), 0, "the source is only read");
    let posts = std::fs::read_to_string(&bed.journal).unwrap();
    assert_eq!(posts.matches("\"post_event\"").count(), 8);

    // The re-audit: only what a copy cannot fix is left (nobody asked for interests).
    let after = audit(&bed.config);
    let left: BTreeSet<_> = after
        .iter()
        .map(|d| (d.kind, d.node.clone(), d.model.clone()))
        .collect();
    assert_eq!(
        left,
        BTreeSet::from([
            (Kind::NotInterested, "a".into(), META_MODEL.into()),
            (Kind::NotInterested, "c".into(), models["Comment"].clone()),
        ])
    );
    // A second run finds nothing to copy.
    let (again, _) =
        repair::plan_and_apply(&bed.config, &after, &options(false), None, &stop).await;
    assert!(again.iter().all(|a| a.strategy.is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_interest_registers_both_sides_and_says_what_will_be_downloaded() {
    let bed = bed().await;
    let (ev, models) = names();
    let stop = CancellationToken::new();
    let before = audit(&bed.config);
    let (plan, _) = repair::plan_and_apply(&bed.config, &before, &options(true), None, &stop).await;
    let adds: BTreeMap<String, (String, String)> = plan
        .iter()
        .filter(|a| a.strategy == Some(Strategy::AddInterest))
        .map(|a| {
            (
                a.target.clone(),
                (a.model.clone(), a.effect.clone().unwrap_or_default()),
            )
        })
        .collect();
    assert_eq!(adds.len(), 2, "{plan:#?}");
    let comment_events = ev.keys().filter(|k| k.starts_with("comment")).count();
    let (model, effect) = &adds["c"];
    assert_eq!(model, &models["Comment"]);
    assert!(
        effect.contains(&format!("c will download {comment_events} event(s)")),
        "{effect}"
    );
    let (model, effect) = &adds["a"];
    assert_eq!(model, META_MODEL);
    assert!(
        effect.contains("a will download 0 event(s)")
            && effect.contains("2 event(s) only it holds"),
        "{effect}"
    );

    let journal = Mutex::new(Journal::open(&bed.journal).unwrap());
    let (_, outcomes) =
        repair::plan_and_apply(&bed.config, &before, &options(true), Some(&journal), &stop).await;
    // Acted on: 7 copies and 2 interests; state_missing and undelivered_event rows are left to
    // the node (they heal once the copies land).
    let acted: Vec<_> = outcomes.iter().filter(|o| o.strategy.is_some()).collect();
    assert_eq!(acted.len(), 9);
    assert!(
        acted.iter().all(|o| o.status == Status::Repaired),
        "{acted:#?}"
    );
    assert!(outcomes
        .iter()
        .filter(|o| o.strategy.is_none())
        .all(|o| matches!(o.kind, Kind::StateMissing | Kind::UndeliveredEvent)));
    // Interests now held on both sides: no not_interested row is left. Recon does not run in
    // this bed, so c's Comment events are now plain missing events, which a second pass copies.
    let after = audit(&bed.config);
    assert!(
        after.iter().all(|d| d.kind == Kind::MissingEvent),
        "{after:#?}"
    );
    assert!(after
        .iter()
        .all(|d| d.node == "c" && d.model == models["Comment"]));
    let (_, outcomes) =
        repair::plan_and_apply(&bed.config, &after, &options(true), Some(&journal), &stop).await;
    assert!(
        outcomes.iter().all(|o| o.status == Status::Repaired),
        "{outcomes:#?}"
    );
    assert!(audit(&bed.config).is_empty(), "converged");
}

/// The same cluster with the named nodes reached only over HTTP (`ceramic_one_api`, no store).
fn over_http(bed: &Bed, http: &[&str]) -> ClusterConfig {
    let mut toml = String::from("cluster = \"ceramic-one-3\"\n");
    for (n, node) in &bed.nodes {
        toml.push_str(&format!("[[nodes]]\nname = \"{n}\"\n"));
        if http.contains(&n.as_str()) {
            toml.push_str(&format!("ceramic_one_api = \"{}\"\n", node.url));
        } else {
            toml.push_str(&format!("ceramic_one_store = \"{n}\"\n"));
        }
    }
    let path = bed.root.join(format!("http-{}.toml", http.join("")));
    std::fs::write(&path, toml).unwrap();
    ClusterConfig::load(&path).unwrap()
}

type RowKey = (Kind, String, String, String, Option<String>, String);

fn rows(divergences: &[Divergence]) -> BTreeSet<RowKey> {
    divergences
        .iter()
        .map(|d| {
            (
                d.kind,
                d.node.clone(),
                d.model.clone(),
                d.stream_id.clone(),
                d.tip.clone(),
                d.detail.clone(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_source_gives_the_same_rows_as_the_stores() {
    let bed = bed().await;
    let by_store = rows(&audit(&bed.config));
    assert_eq!(by_store.len(), 21, "the fixture's rows");
    for http in [&["b", "c"][..], &["a", "b", "c"][..]] {
        let config = over_http(&bed, http);
        let got = event_store::run_all(&config, &DescentParams::default(), Duration::ZERO).await;
        assert!(got.complete, "{http:?}: {:#?}", got.findings.divergences);
        assert_eq!(rows(&got.findings.divergences), by_store, "{http:?}");
        for n in got.nodes.iter().filter(|n| http.contains(&n.name.as_str())) {
            assert_eq!(n.source, "ceramic-one-http");
            assert!(
                n.reachable && n.bytes_received > 0 && n.statements > 0,
                "{n:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_cannot_be_read_makes_the_audit_incomplete_and_says_where() {
    let bed = bed().await;
    let (_, models) = names();
    let config = over_http(&bed, &["b", "c"]);
    for fault in [Fault::PageStatus500(0), Fault::PageTruncated(0)] {
        bed.nodes["c"].inject(fault.clone());
        let got = event_store::run_all(&config, &DescentParams::default(), Duration::ZERO).await;
        assert!(!got.complete, "{fault:?}");
        let c = got.nodes.iter().find(|n| n.name == "c").unwrap();
        assert!(!c.reachable);
        let row = got
            .findings
            .divergences
            .iter()
            .find(|d| d.kind == Kind::Unreachable && d.node == "c")
            .unwrap_or_else(|| panic!("{fault:?}: {:#?}", got.findings.divergences));
        // The first model walked is the meta-model; the row names node, model, offset, cause.
        assert!(
            row.detail.contains("node c")
                && row.detail.contains(META_MODEL)
                && row.detail.contains("offset 0"),
            "{}",
            row.detail
        );
        let cause = match fault {
            Fault::PageStatus500(_) => "HTTP 500",
            _ => "unexpected response",
        };
        assert!(row.detail.contains(cause), "{}", row.detail);
        // a and b are still compared with each other.
        assert!(got
            .findings
            .divergences
            .iter()
            .any(|d| d.kind == Kind::MissingEvent && d.node == "b" && d.model == models["Note"]));
        assert!(got
            .findings
            .divergences
            .iter()
            .all(|d| d.node != "c" || d.kind == Kind::Unreachable));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_the_node_lost_is_state_missing_from_its_own_answer() {
    let bed = bed().await;
    let (ev, models) = names();
    // Every node has its store and its API: the states of a sample are asked for.
    let before = event_store::run_all(&bed.config, &DescentParams::default(), Duration::ZERO).await;
    assert!(before.complete);
    assert_eq!(
        rows(&before.findings.divergences),
        rows(&audit(&bed.config))
    );
    // a holds note1 and the Note definition; its aggregator lost note1 (rust-ceramic#728).
    let note1 = ev["note1:init"].0.clone();
    bed.nodes["a"].inject(Fault::StateLost(note1.clone()));
    let after = event_store::run_all(&bed.config, &DescentParams::default(), Duration::ZERO).await;
    assert!(after.complete);
    let new: Vec<_> = after
        .findings
        .divergences
        .iter()
        .filter(|d| !before.findings.divergences.contains(d))
        .collect();
    assert_eq!(new.len(), 1, "{new:#?}");
    assert_eq!(
        (
            new[0].kind,
            new[0].node.as_str(),
            new[0].model.as_str(),
            new[0].stream_id.as_str()
        ),
        (
            Kind::StateMissing,
            "a",
            models["Note"].as_str(),
            note1.as_str()
        )
    );
    assert!(new[0].detail.contains("404"), "{}", new[0].detail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_cannot_be_read_skips_its_copies_as_read_errors() {
    let bed = bed().await;
    let before = audit(&bed.config);
    // a holds every event the others lack; its model listing now fails.
    bed.nodes["a"].inject(Fault::PageStatus500(0));
    let stop = CancellationToken::new();
    let (plan, _) =
        repair::plan_and_apply(&bed.config, &before, &options(false), None, &stop).await;
    let copies: Vec<_> = plan
        .iter()
        .filter(|a| a.kind == Kind::MissingEvent)
        .collect();
    assert_eq!(copies.len(), 7);
    assert!(
        copies.iter().all(|a| a.strategy.is_none()
            && a.read_error
            && a.skip.as_deref().unwrap_or_default().contains("HTTP 500")),
        "{copies:#?}"
    );
    // Left alone by policy, not for want of a reading: not read errors.
    assert!(plan
        .iter()
        .filter(|a| a.kind == Kind::NotInterested)
        .all(|a| !a.read_error));
}

/// `--concurrency` holds for ceramic-one copies as for js-ceramic commits: on a slow node,
/// up to that many streams' events are posted at once, and one at a time with 1; both ways
/// every copy is repaired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_on_a_node_run_up_to_the_concurrency_at_once() {
    for (concurrency, expected) in [(4, 2..=4), (1, 1..=1)] {
        let bed = bed().await;
        let before = audit(&bed.config);
        // c lacks events of four streams (two notes, two model definitions): 5 posts.
        bed.nodes["c"].slow_posts(300);
        let journal = Mutex::new(Journal::open(&bed.journal).unwrap());
        let options = RepairOptions {
            concurrency,
            rate: 1000.0,
            targets: Targets::Named(vec!["c".to_string()]),
            ..options(false)
        };
        let stop = CancellationToken::new();
        let (_, outcomes) =
            repair::plan_and_apply(&bed.config, &before, &options, Some(&journal), &stop).await;
        let copied: Vec<_> = outcomes
            .iter()
            .filter(|o| o.strategy == Some(Strategy::CopyEvents))
            .collect();
        assert_eq!(copied.len(), 4, "{outcomes:#?}");
        assert!(
            copied.iter().all(|o| o.status == Status::Repaired),
            "{copied:#?}"
        );
        let seen = bed.nodes["c"].max_posts_in_flight();
        assert!(
            expected.contains(&seen),
            "--concurrency {concurrency}: {seen} posts at once on c, expected {expected:?}"
        );
    }
}

/// The circuit breaker holds with workers in flight: a node that fails every post stops being
/// written to after `--max-failures` consecutive failures, give or take the actions already
/// running (at most `max_failures + concurrency - 1` fail); the rest are skipped, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_failing_every_post_opens_the_circuit() {
    let bed = bed().await;
    let before = audit(&bed.config);
    bed.nodes["c"].inject(Fault::PostStatus500);
    let journal = Mutex::new(Journal::open(&bed.journal).unwrap());
    let options = RepairOptions {
        concurrency: 2,
        max_failures: 2,
        rate: 1000.0,
        targets: Targets::Named(vec!["c".to_string()]),
        ..options(false)
    };
    let stop = CancellationToken::new();
    let (_, outcomes) =
        repair::plan_and_apply(&bed.config, &before, &options, Some(&journal), &stop).await;
    let copies: Vec<_> = outcomes
        .iter()
        .filter(|o| o.strategy == Some(Strategy::CopyEvents))
        .collect();
    assert_eq!(copies.len(), 4, "{outcomes:#?}");
    let failed = copies.iter().filter(|o| o.status == Status::Failed).count();
    let open = copies
        .iter()
        .filter(|o| o.status == Status::Skipped && o.detail.contains("circuit open"))
        .count();
    assert!((2..=3).contains(&failed), "{copies:#?}");
    assert_eq!(failed + open, 4, "{copies:#?}");
    assert!(
        copies
            .iter()
            .filter(|o| o.status == Status::Failed)
            .all(|o| o.detail.contains("500")),
        "{copies:#?}"
    );
    assert_eq!(bed.nodes["c"].writes(), 0);
}
