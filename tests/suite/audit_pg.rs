//! `audit` against real temporary PostgreSQL servers, one per node (plus SQLite files and
//! snapshots): each scenario is an operator's story and checks exactly what the report says.

use ceramic_audit::audit::{self, AuditOptions};
use ceramic_audit::config::ClusterConfig;
use ceramic_audit::report::{Divergence, Kind, Report};
use ceramic_audit::source::{Compare, Mode};

use crate::common::cluster::{audit_with, config, find, triples};
use crate::common::composedb::{
    model_id, pg_model, pg_upsert, sqlite_model, stream_id, tip, upsert_sql, Row,
};
use crate::common::pg::TempPg;

pub(crate) const AUTHOR: &str = "custom_authorId";

fn rows(n: usize) -> Vec<Row> {
    (0..n)
        .map(|i| Row::new(i, 1).with_custom(AUTHOR, Some(&format!("did:key:author{}", i % 7))))
        .collect()
}

async fn audit_tips(cfg: &ClusterConfig, mode: Mode) -> Report {
    let options = AuditOptions {
        mode,
        compare: Compare::Tips,
        ..AuditOptions::default()
    };
    audit::run(cfg, &options).await
}

/// Three Postgres nodes with the same `n` rows of one model (with a custom column).
pub(crate) async fn three_nodes(
    n: usize,
) -> (Vec<TempPg>, String, tempfile::TempDir, ClusterConfig) {
    let model = model_id("orders");
    let data = rows(n);
    let pgs = vec![TempPg::start(), TempPg::start(), TempPg::start()];
    for pg in &pgs {
        pg_model(pg, &model, &[AUTHOR], &data).await;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = config(
        dir.path(),
        &[
            ("a", pgs[0].dsn()),
            ("b", pgs[1].dsn()),
            ("c", pgs[2].dsn()),
        ],
    );
    (pgs, model, dir, cfg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_nodes_are_consistent_in_both_modes() {
    let (_pgs, model, _dir, cfg) = three_nodes(300).await;
    for mode in [Mode::Pushdown, Mode::Download] {
        let report = audit_with(&cfg, mode).await;
        assert!(report.complete, "{:?}", report.nodes);
        assert!(
            report.divergences.is_empty(),
            "{mode:?}: {:#?}",
            report.divergences
        );
        assert_eq!(report.models.len(), 1);
        assert_eq!(report.models[0].model, model);
        assert_eq!(report.models[0].nodes_compared, ["a", "b", "c"]);
        let cost = report.models[0].cost.as_ref().expect("compared");
        // Push-down: one hashing scan (the bounds-only look comes from the row check, no round
        // trip); download: one memory round.
        let rounds = 1;
        assert_eq!(cost.rounds, rounds, "equal nodes settle at once ({mode:?})");
        for n in &report.nodes {
            assert!(n.reachable && n.rows >= 300, "{n:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_b_missed_streams_and_updates_and_c_has_other_content() {
    let (pgs, model, _dir, cfg) = three_nodes(2000).await;
    // b never saw streams 10 and 1500 (deleted here: the node missed their creation).
    let gone = [stream_id("10"), stream_id("1500")];
    pgs[1]
        .execute(&format!(
            "DELETE FROM \"{model}\" WHERE stream_id IN ('{}', '{}')",
            gone[0], gone[1]
        ))
        .await;
    // b missed an update of stream 20: it still has version 0.
    pg_upsert(
        &pgs[1],
        &model,
        &[Row::new(20, 0).with_custom(AUTHOR, Some("did:key:author6"))],
    )
    .await;
    // c has the right tip for stream 30 but another relation value (content mismatch).
    pg_upsert(
        &pgs[2],
        &model,
        &[Row::new(30, 1).with_custom(AUTHOR, Some("did:key:someone-else"))],
    )
    .await;

    for mode in [Mode::Pushdown, Mode::Download] {
        let report = audit_with(&cfg, mode).await;
        assert!(report.complete);
        let mut expected = vec![
            (gone[0].clone(), "b".to_string(), Kind::MissingStream),
            (gone[1].clone(), "b".to_string(), Kind::MissingStream),
            (stream_id("20"), "b".to_string(), Kind::TipMismatch),
            (stream_id("30"), "c".to_string(), Kind::ContentMismatch),
        ];
        expected.sort();
        let got = triples(&report);
        assert_eq!(got, expected, "{mode:?}");
        let stale = find(&report, &stream_id("20"), "b");
        assert_eq!(stale.tip.as_deref(), Some(tip("20:0").as_str()));
        assert_eq!(stale.majority_tip.as_deref(), Some(tip("20:1").as_str()));
        assert_eq!(stale.agreeing_nodes, ["a", "c"]);
        let missing = find(&report, &gone[0], "b");
        assert_eq!(missing.tip, None);
        assert_eq!(missing.majority_tip.as_deref(), Some(tip("10:1").as_str()));
        assert_eq!(report.counts.get(&Kind::MissingStream), Some(&2));
        let m = &report.models[0];
        assert_eq!(m.differing_streams, 4);
        let cost = m.cost.as_ref().expect("compared");
        assert!(cost.rounds >= 2);

        // Comparing tips only: the same findings but the content mismatch, which it cannot see.
        let report = audit_tips(&cfg, mode).await;
        assert_eq!(report.compared, "tips");
        let got = triples(&report);
        let without_content: Vec<_> = expected
            .iter()
            .filter(|(_, _, k)| *k != Kind::ContentMismatch)
            .cloned()
            .collect();
        assert_eq!(got, without_content, "tips, {mode:?}");
    }
}

/// Enough rows and differences that Postgres answers the first two levels with one sequential
/// scan each, the second filtered to the first level's differing ranges by key prefix; one id
/// with a capital letter (not base36, yet long enough to pass the quick row check) escapes that
/// filter on b, which must notice the shortfall and scan again unfiltered. Push-down and
/// download must agree on every finding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wide_rounds_use_filtered_scans_and_find_everything() {
    let (pgs, model, _dir, cfg) = three_nodes(12_000).await;
    // 40 streams b never saw, 40 stale tips on c: a fifth of the first level's ranges differ.
    let gone: Vec<usize> = (0..40).map(|k| 150 * k + 7).collect();
    let stale: Vec<usize> = (0..40).map(|k| 150 * k + 80).collect();
    let list = gone
        .iter()
        .map(|i| format!("'{}'", stream_id(&i.to_string())))
        .collect::<Vec<_>>()
        .join(", ");
    pgs[1]
        .execute(&format!(
            "DELETE FROM \"{model}\" WHERE stream_id IN ({list})"
        ))
        .await;
    let old: Vec<Row> = stale
        .iter()
        .map(|&i| Row::new(i, 0).with_custom(AUTHOR, Some(&format!("did:key:author{}", i % 7))))
        .collect();
    pg_upsert(&pgs[2], &model, &old).await;
    // On b only: an id that sorts among real ones but has a capital letter at position 14.
    let odd = format!("kjzl6kcym7w8yQ{}", &stream_id("odd")[14..]);
    pgs[1]
        .execute(&format!(
            "INSERT INTO \"{model}\" (stream_id, controller_did, stream_content, tip) \
             VALUES ('{odd}', 'did:key:x', '{{}}', '{}')",
            tip("odd")
        ))
        .await;

    let mut expected: Vec<(String, String, Kind)> = Vec::new();
    for &i in &gone {
        expected.push((stream_id(&i.to_string()), "b".into(), Kind::MissingStream));
    }
    for &i in &stale {
        expected.push((stream_id(&i.to_string()), "c".into(), Kind::TipMismatch));
    }
    // The malformed id is a bad row on b, and nothing on a and c (no "missing" stream).
    expected.push((odd.clone(), "b".into(), Kind::InvalidRow));
    expected.sort();
    for mode in [Mode::Pushdown, Mode::Download] {
        let report = audit_with(&cfg, mode).await;
        assert!(report.complete, "{mode:?}: {:?}", report.nodes);
        let got = triples(&report);
        assert_eq!(got, expected, "{mode:?}");
        let invalid = find(&report, &odd, "b");
        assert!(
            invalid.detail.contains("not a StreamID"),
            "{}",
            invalid.detail
        );
        assert_eq!(report.models[0].differing_streams, 81, "{mode:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_each_differing_on_different_streams() {
    let (pgs, model, _dir, cfg) = three_nodes(1000).await;
    for (k, pg) in pgs.iter().enumerate() {
        // Node k has stream 100+k at an older version; everyone else has the newer one.
        pg_upsert(
            pg,
            &model,
            &[Row::new(100 + k, 0)
                .with_custom(AUTHOR, Some(&format!("did:key:author{}", (100 + k) % 7)))],
        )
        .await;
    }
    // A stream only node c has (created there; the others missed it).
    pg_upsert(&pgs[2], &model, &[Row::new(5000, 0)]).await;
    let report = audit_with(&cfg, Mode::Pushdown).await;
    let got = triples(&report);
    let mut expected = vec![
        (stream_id("100"), "a".to_string(), Kind::TipMismatch),
        (stream_id("101"), "b".to_string(), Kind::TipMismatch),
        (stream_id("102"), "c".to_string(), Kind::TipMismatch),
        (stream_id("5000"), "a".to_string(), Kind::MissingStream),
        (stream_id("5000"), "b".to_string(), Kind::MissingStream),
    ];
    expected.sort();
    assert_eq!(got, expected);
    assert_eq!(find(&report, &stream_id("5000"), "a").agreeing_nodes, ["c"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_indexed_on_two_nodes_only() {
    let (pgs, _model, _dir, cfg) = three_nodes(50).await;
    let profiles = model_id("profiles");
    let data: Vec<Row> = (0..40).map(|i| Row::new(i + 10_000, 1)).collect();
    pg_model(&pgs[0], &profiles, &[], &data).await;
    pg_model(&pgs[1], &profiles, &[], &data).await;
    let report = audit_with(&cfg, Mode::Pushdown).await;
    assert!(report.complete);
    let not_indexed: Vec<&Divergence> = report
        .divergences
        .iter()
        .filter(|d| d.kind == Kind::ModelNotIndexed)
        .collect();
    assert_eq!(not_indexed.len(), 1, "{:#?}", report.divergences);
    assert_eq!(not_indexed[0].node, "c");
    assert_eq!(not_indexed[0].model, profiles);
    assert_eq!(report.divergences.len(), 1);
    let m = report
        .models
        .iter()
        .find(|m| m.model == profiles)
        .expect("profiles compared");
    assert_eq!(m.nodes_compared, ["a", "b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_node_compares_with_postgres_nodes() {
    let model = model_id("orders");
    let data = rows(400);
    let pgs = vec![TempPg::start(), TempPg::start()];
    for pg in &pgs {
        pg_model(pg, &model, &[AUTHOR], &data).await;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = dir.path().join("indexing.sqlite");
    let mut lite = data.clone();
    lite[42] = Row::new(42, 0).with_custom(AUTHOR, Some("did:key:author0"));
    lite.remove(300);
    sqlite_model(&sqlite, &model, &[AUTHOR], &lite);
    let cfg = config(
        dir.path(),
        &[
            ("a", pgs[0].dsn()),
            ("b", pgs[1].dsn()),
            ("lite", format!("sqlite://{}", sqlite.display())),
        ],
    );
    let report = audit_with(&cfg, Mode::Pushdown).await;
    assert!(report.complete, "{:?}", report.nodes);
    let got = triples(&report);
    // Content with nested objects, floats, escapes and non-ASCII digests the same from SQLite
    // JSON text as from Postgres jsonb: only the two real differences are reported.
    assert_eq!(
        got,
        vec![
            (stream_id("300"), "lite".to_string(), Kind::MissingStream),
            (stream_id("42"), "lite".to_string(), Kind::TipMismatch),
        ]
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
    );
    assert_eq!(report.nodes[2].source, "sqlite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_round_trip_and_audit_like_the_live_nodes() {
    let (pgs, model, dir, cfg) = three_nodes(500).await;
    pg_upsert(
        &pgs[0],
        &model,
        &[Row::new(11, 2).with_custom(AUTHOR, Some("did:key:author4"))],
    )
    .await;
    pgs[2]
        .execute(&format!(
            "DELETE FROM \"{model}\" WHERE stream_id = '{}'",
            stream_id("12")
        ))
        .await;
    let live = audit_with(&cfg, Mode::Pushdown).await;
    let mut snaps = Vec::new();
    for name in ["a", "b", "c"] {
        let out = dir.path().join(format!("{name}.snapshot.json"));
        let args = vec![
            "ceramic-audit".to_string(),
            "crawl".into(),
            "--config".into(),
            cfg.path.display().to_string(),
            "--node".into(),
            name.into(),
            "--out".into(),
            out.display().to_string(),
        ];
        // The CLI starts its own runtime: run it off this one's threads.
        let code = tokio::task::spawn_blocking(move || {
            let cli = <ceramic_audit::cli::Cli as clap::Parser>::parse_from(args);
            ceramic_audit::cli::run(cli, &mut Vec::new())
        })
        .await
        .expect("crawl thread")
        .unwrap_or_else(|f| panic!("crawl {name}: {}", f.message));
        assert_eq!(code, 0);
        snaps.push((name, format!("snapshot:{}", out.display())));
    }
    let snap_dir = tempfile::tempdir().expect("temp dir");
    let offline_cfg = config(
        snap_dir.path(),
        &snaps
            .iter()
            .map(|(n, s)| (*n, s.clone()))
            .collect::<Vec<_>>(),
    );
    let offline = audit_with(&offline_cfg, Mode::Pushdown).await;
    assert!(offline.complete);
    assert_eq!(offline.divergences, live.divergences);
    assert_eq!(triples(&live).len(), 2, "{:#?}", live.divergences);
    assert!(offline.nodes.iter().all(|n| n.source == "snapshot"));
}

/// Live nodes keep taking writes while they are audited, and a write reaches the other nodes a
/// little later. A writer updates streams on a, then b, then c (like pubsub propagation) during
/// the whole audit, at well over 50 updates/s: the audit must report no false divergence — only
/// the stale row that really stays behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_in_flight_during_the_audit_are_not_divergences() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;

    let (pgs, model, _dir, cfg) = three_nodes(3000).await;
    pg_upsert(
        &pgs[1],
        &model,
        &[Row::new(5, 0).with_custom(AUTHOR, Some("did:key:author5"))],
    )
    .await;
    let clients = vec![
        pgs[0].client().await,
        pgs[1].client().await,
        pgs[2].client().await,
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, writes, model) = (stop.clone(), writes.clone(), model.clone());
        tokio::spawn(async move {
            let mut version = 2;
            while !stop.load(Ordering::Relaxed) {
                let i = 100 + version % 40;
                let sql = upsert_sql(
                    &model,
                    &[Row::new(i, version).with_custom(AUTHOR, Some("did:key:writer"))],
                );
                for c in &clients {
                    c.batch_execute(&sql).await.expect("writer upsert");
                    writes.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
                }
                version += 1;
            }
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let options = AuditOptions {
        settle: std::time::Duration::from_millis(1500),
        ..AuditOptions::default()
    };
    let report = audit::run(&cfg, &options).await;
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    writer.await.expect("writer task");
    let rate = writes.load(Ordering::Relaxed) as f64 / (elapsed + 0.2);
    assert!(rate >= 50.0, "the writer managed only {rate:.0} updates/s");
    let divergent: Vec<(String, String, Kind)> = triples(&report)
        .into_iter()
        .filter(|(_, _, k)| *k != Kind::InFlight)
        .collect();
    assert_eq!(
        divergent,
        vec![(stream_id("5"), "b".to_string(), Kind::TipMismatch)],
        "only the real divergence; in flight: {:?}",
        report
            .divergences
            .iter()
            .filter(|d| d.kind == Kind::InFlight)
            .map(|d| &d.detail)
            .collect::<Vec<_>>()
    );
}

/// Many differences: the first level shows nearly every range differing, so the Postgres nodes
/// switch to download for the model (and find exactly what download mode finds); the caps stop
/// the comparison early with an incomplete report that says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_differences_switch_to_download_and_caps_stop_early() {
    let (pgs, model, _dir, cfg) = three_nodes(3000).await;
    let old: Vec<Row> = (0..3000)
        .step_by(4)
        .map(|i| Row::new(i, 0).with_custom(AUTHOR, Some(&format!("did:key:author{}", i % 7))))
        .collect();
    pg_upsert(&pgs[1], &model, &old).await;

    let report = audit_with(&cfg, Mode::Pushdown).await;
    assert!(report.complete);
    let m = &report.models[0];
    let share = m.switched_to_download.expect("switched to download");
    assert!(share > 0.9, "{share}");
    assert_eq!(m.differing_streams, 750);
    assert!(report
        .divergences
        .iter()
        .all(|d| d.kind == Kind::TipMismatch && d.node == "b"));
    let download = audit_with(&cfg, Mode::Download).await;
    assert_eq!(triples(&report), triples(&download));
    assert_eq!(download.models[0].switched_to_download, None);

    for mode in [Mode::Pushdown, Mode::Download] {
        let capped = audit::run(
            &cfg,
            &AuditOptions {
                mode,
                max_diffs: Some(40),
                ..AuditOptions::default()
            },
        )
        .await;
        assert!(!capped.complete, "{mode:?}: a capped audit is incomplete");
        let m = &capped.models[0];
        assert!(
            m.stopped
                .as_deref()
                .unwrap_or("")
                .contains("--max-diffs 40"),
            "{m:?}"
        );
        assert_eq!(m.differing_streams, 40, "{mode:?}");
        // The 40 listed are real: each is one of b's stale tips.
        assert_eq!(capped.divergences.len(), 40);
        let stale: std::collections::HashSet<String> = (0..3000)
            .step_by(4)
            .map(|i| stream_id(&i.to_string()))
            .collect();
        assert!(capped
            .divergences
            .iter()
            .all(|d| stale.contains(&d.stream_id)));

        let timed = audit::run(
            &cfg,
            &AuditOptions {
                mode,
                max_duration: Some(std::time::Duration::ZERO),
                ..AuditOptions::default()
            },
        )
        .await;
        assert!(!timed.complete);
        let why = timed.models[0].stopped.clone().unwrap_or_default();
        assert!(why.contains("--max-seconds"), "{mode:?}: {why}");
    }
}

/// With `api_url`s, tip differences are read from the nodes' own logs (over HTTP, from real
/// servers on 127.0.0.1 answering like js-ceramic): b lags on stream 5, c forked on stream 6,
/// c's index row of stream 7 is behind c's own state. A node is never asked about a stream its
/// index does not hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tip_differences_are_classified_from_the_nodes_logs() {
    use crate::common::http::{FakeNode, Reply};
    use ceramic_audit::audit::logs::{Commit, Rule, Winner};
    let (pgs, model, dir, _) = three_nodes(20).await;
    let custom = |i: usize| Some(format!("did:key:author{}", i % 7));
    pg_upsert(
        &pgs[1],
        &model,
        &[Row::new(5, 0).with_custom(AUTHOR, custom(5).as_deref())],
    )
    .await;
    let mut forked = Row::new(6, 9).with_custom(AUTHOR, custom(6).as_deref());
    forked.content = Row::new(6, 1).content; // same content, another commit
    pg_upsert(&pgs[2], &model, &[forked]).await;
    pg_upsert(
        &pgs[2],
        &model,
        &[Row::new(7, 0).with_custom(AUTHOR, custom(7).as_deref())],
    )
    .await;
    pgs[2]
        .execute(&format!(
            "DELETE FROM \"{model}\" WHERE stream_id = '{}'",
            stream_id("9")
        ))
        .await;

    // Each node's state logs: every stream at version 1 ([v0, v1]) unless said otherwise.
    let node = |name: &'static str| {
        FakeNode::start(move |req, _| {
            let Some(rest) = req.target.strip_prefix("/api/v0/streams/") else {
                return Reply::Full(404, "{}".into());
            };
            let id = rest.trim_end_matches("?sync=2");
            let i = (0..20).find(|i| stream_id(&i.to_string()) == id);
            let Some(i) = i else {
                return Reply::Full(500, r#"{"error":"unknown stream"}"#.into());
            };
            let versions: Vec<String> = match (name, i) {
                ("b", 5) => vec!["5:0".into()],
                ("c", 6) => vec!["6:0".into(), "6:9".into()],
                _ => vec![format!("{i}:0"), format!("{i}:1")],
            };
            let log: Vec<String> = versions
                .iter()
                .enumerate()
                .map(|(k, v)| format!(r#"{{"cid":"{}","type":{}}}"#, tip(v), k.min(1)))
                .collect();
            Reply::Full(
                200,
                format!(
                    r#"{{"streamId":"{id}","state":{{"type":3,"content":{{}},"metadata":{{"controllers":[]}},"log":[{}]}}}}"#,
                    log.join(",")
                ),
            )
        })
    };
    let (na, nb, nc) = (node("a").await, node("b").await, node("c").await);
    let mut text = String::from("cluster = \"logs\"\n");
    for (name, pg, api) in [
        ("a", &pgs[0], &na),
        ("b", &pgs[1], &nb),
        ("c", &pgs[2], &nc),
    ] {
        text.push_str(&format!(
            "\n[[nodes]]\nname = \"{name}\"\napi_url = \"{}\"\nindex = \"{}\"\n",
            api.url,
            pg.dsn()
        ));
    }
    let path = dir.path().join("logs.toml");
    std::fs::write(&path, text).expect("config");
    let cfg = ClusterConfig::load(&path).expect("config");
    let report = audit_with(&cfg, Mode::Pushdown).await;
    assert!(report.complete, "{:?}", report.nodes);
    let got = triples(&report);
    // Stream 6 forked between c and (a, b) with branches of equal length: the lower last CID
    // (as JavaScript compares them) wins, and the nodes on the other branch get the rows.
    let c_wins = audit::logs::pick(
        &[Commit::signed(&tip("6:0")), Commit::signed(&tip("6:9"))],
        &[Commit::signed(&tip("6:0")), Commit::signed(&tip("6:1"))],
    ) == Winner::First(Rule::LowerCid);
    let (losers, winner): (&[&str], &str) = if c_wins {
        (&["a", "b"], "c")
    } else {
        (&["c"], "a")
    };
    let mut want = vec![
        (stream_id("5"), "b".to_string(), Kind::Lagging),
        (stream_id("7"), "c".to_string(), Kind::IndexStale),
        (stream_id("9"), "c".to_string(), Kind::MissingStream),
    ];
    for l in losers {
        want.push((stream_id("6"), l.to_string(), Kind::Forked));
    }
    want.sort();
    assert_eq!(got, want);
    let lag = find(&report, &stream_id("5"), "b");
    assert_eq!(lag.log.missing_commits, Some(1));
    assert_eq!(lag.log.ahead_node.as_deref(), Some("a"));
    let fork = find(&report, &stream_id("6"), losers[0]);
    assert_eq!(fork.log.fork_point.as_deref(), Some(tip("6:0").as_str()));
    assert_eq!(fork.log.predicted_winner.as_deref(), Some(winner));
    assert!(fork.detail.contains("js-ceramic keeps"), "{}", fork.detail);
    let stale = find(&report, &stream_id("7"), "c");
    assert_eq!(stale.log.missing_commits, Some(1), "{}", stale.detail);
    // c's index has no row for stream 9: c was never asked about it (a read would load it).
    let nine = stream_id("9");
    assert!(nc.requests().iter().all(|r| !r.target.contains(&nine)));
    // With --no-logs the same differences stay tip mismatches.
    let plain = audit::run(
        &cfg,
        &AuditOptions {
            read_logs: false,
            ..AuditOptions::default()
        },
    )
    .await;
    assert_eq!(
        plain
            .divergences
            .iter()
            .filter(|d| d.kind == Kind::TipMismatch)
            .count(),
        3
    );
}
