//! `watch`: the schedule under tokio's paused clock (interval, jitter, no overlap, shutdown);
//! incremental cycles against full audits of the same state on real temporary Postgres
//! servers; divergence ageing and healing across cycles; `/metrics` scraped over HTTP and
//! parsed as Prometheus exposition, checked against the report; auto-repair selection bounds.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ceramic_audit::audit::{self, AuditOptions};
use ceramic_audit::config::ClusterConfig;
use ceramic_audit::repair::plan::Targets;
use ceramic_audit::report::{Divergence, Kind, LogFinding, Report};
use ceramic_audit::watch::schedule::Schedule;
use ceramic_audit::watch::{self, CycleKind, WatchOptions, Watcher};
use tokio::time::Instant;

use crate::common::composedb::{model_id, pg_model, pg_upsert, Row};
use crate::common::pg::TempPg;

#[tokio::test(start_paused = true)]
async fn cycles_start_on_the_interval_never_overlap_and_stop_on_shutdown() {
    let t0 = Instant::now();
    // Cycle 2 takes 12 s of a 10 s interval: cycle 3 starts at once when it ends, not earlier.
    let durations = [2u64, 12, 1, 1];
    let running = Arc::new(Mutex::new(0u32));
    let max_running = Arc::new(Mutex::new(0u32));
    let (r, m) = (running.clone(), max_running.clone());
    let schedule = Schedule {
        every: Duration::from_secs(10),
        jitter: 0.0,
    };
    let summary = watch::run_loop(
        schedule,
        Some(4),
        move |n| {
            let (r, m) = (r.clone(), m.clone());
            async move {
                {
                    let mut now = r.lock().expect("lock");
                    *now += 1;
                    let mut max = m.lock().expect("lock");
                    *max = (*max).max(*now);
                }
                tokio::time::sleep(Duration::from_secs(durations[n as usize - 1])).await;
                *r.lock().expect("lock") -= 1;
            }
        },
        std::future::pending::<()>(),
        || 0.0,
    )
    .await;
    let starts: Vec<u64> = summary
        .starts
        .iter()
        .map(|s| s.duration_since(t0).as_secs())
        .collect();
    assert_eq!(starts, vec![0, 10, 22, 32]);
    assert_eq!(summary.overruns, vec![Duration::from_secs(2)]);
    assert_eq!(*max_running.lock().expect("lock"), 1, "cycles overlapped");
    assert!(!summary.abandoned);

    // Jitter: each wait is stretched by up to the share asked, never shortened.
    let t1 = Instant::now();
    let jittered = Schedule {
        every: Duration::from_secs(10),
        jitter: 0.5,
    };
    let mut units = vec![0.9, 0.2].into_iter();
    let summary = watch::run_loop(
        jittered,
        Some(3),
        |_| async {},
        std::future::pending::<()>(),
        move || units.next().unwrap_or(0.0),
    )
    .await;
    let starts: Vec<u64> = summary
        .starts
        .iter()
        .map(|s| s.duration_since(t1).as_secs())
        .collect();
    assert_eq!(starts, vec![0, 14, 25]);

    // Shutdown while waiting: returns at once, nothing abandoned.
    let t2 = Instant::now();
    let summary = watch::run_loop(
        schedule,
        None,
        |_| async {},
        tokio::time::sleep(Duration::from_secs(25)),
        || 0.0,
    )
    .await;
    assert_eq!(summary.starts.len(), 3);
    assert!(!summary.abandoned);
    assert_eq!(t2.elapsed().as_secs(), 25);

    // Shutdown during a cycle: the cycle is dropped (abandoned), the loop ends.
    let finished = Arc::new(Mutex::new(false));
    let f = finished.clone();
    let summary = watch::run_loop(
        schedule,
        None,
        move |_| {
            let f = f.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(60)).await;
                *f.lock().expect("lock") = true;
            }
        },
        tokio::time::sleep(Duration::from_secs(5)),
        || 0.0,
    )
    .await;
    assert!(summary.abandoned);
    assert!(!*finished.lock().expect("lock"));
}

fn triples(report: &Report) -> BTreeSet<(String, String, Kind)> {
    report
        .divergences
        .iter()
        .map(|d| (d.stream_id.clone(), d.node.clone(), d.kind))
        .collect()
}

fn options(dir: &std::path::Path) -> WatchOptions {
    WatchOptions {
        schedule: Schedule {
            every: Duration::from_secs(60),
            jitter: 0.0,
        },
        dir: dir.to_path_buf(),
        keep: 2,
        full_every: Duration::from_secs(3600),
        margin: Duration::from_millis(100),
        alert_after: 2,
        audit: AuditOptions {
            settle: Duration::ZERO,
            ..AuditOptions::default()
        },
        metrics_textfile: Some(dir.join("metrics.prom")),
        repair: None,
    }
}

/// A node down for one cycle: its divergences are not "healed" (nothing observed them gone),
/// and when it is back they go on with their first sighting and count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_down_for_a_cycle_heals_nothing_and_its_divergences_keep_their_age() {
    let model = model_id("down");
    let rows: Vec<Row> = (0..50).map(|i| Row::new(i, 1)).collect();
    let pgs = vec![TempPg::start(), TempPg::start(), TempPg::start()];
    for pg in &pgs {
        pg_model(pg, &model, &[], &rows).await;
    }
    // c lacks stream 9.
    let nine = Row::new(9, 0).stream_id;
    pgs[2]
        .execute(&format!(
            "DELETE FROM \"{model}\" WHERE stream_id = '{nine}'"
        ))
        .await;
    let dir = tempfile::tempdir().expect("dir");
    let mut text = String::from("cluster = \"down\"\n");
    for (name, pg) in ["a", "b", "c"].iter().zip(&pgs) {
        text.push_str(&format!(
            "\n[[nodes]]\nname = \"{name}\"\nindex = \"{}\"\n",
            pg.dsn()
        ));
    }
    let path = dir.path().join("cluster.toml");
    std::fs::write(&path, text).expect("config");
    let config = ClusterConfig::load(&path).expect("config");
    let mut watcher = Watcher::new(config, options(&dir.path().join("watch"))).expect("watcher");

    let c1 = watcher.cycle().await.expect("cycle 1");
    let first = c1
        .report
        .divergences
        .iter()
        .find(|d| d.stream_id == nine && d.node == "c")
        .and_then(|d| d.first_seen.clone())
        .expect("stream 9 missing on c");

    pgs[2].kill();
    let c2 = watcher.cycle().await.expect("cycle 2");
    assert!(!c2.report.complete, "c is down");
    assert!(
        c2.info.healed.is_empty(),
        "nothing was observed healed: {:?}",
        c2.info.healed
    );

    pgs[2].restart();
    let c3 = watcher.cycle().await.expect("cycle 3");
    assert!(c3.report.complete, "{:?}", c3.report.nodes);
    let d9 = c3
        .report
        .divergences
        .iter()
        .find(|d| d.stream_id == nine && d.node == "c")
        .expect("stream 9 still missing on c");
    assert_eq!(d9.first_seen.as_deref(), Some(first.as_str()));
    assert_eq!(d9.cycles, Some(2), "seen in cycles 1 and 3");
    assert!(c3.info.healed.is_empty(), "{:?}", c3.info.healed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_cycles_report_what_a_full_audit_reports_and_divergences_age_and_heal() {
    let model = model_id("watch");
    let rows: Vec<Row> = (0..400).map(|i| Row::new(i, 1)).collect();
    let pgs = vec![TempPg::start(), TempPg::start(), TempPg::start()];
    for pg in &pgs {
        pg_model(pg, &model, &[], &rows).await;
    }
    // Older than the first watermark by more than the margin: not re-read by later cycles.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Before the first cycle: b lags stream 7, c lacks stream 9.
    pg_upsert(&pgs[1], &model, &[Row::new(7, 0)]).await;
    pgs[2]
        .execute(&format!(
            "DELETE FROM \"{model}\" WHERE stream_id = '{}'",
            Row::new(9, 0).stream_id
        ))
        .await;
    let dir = tempfile::tempdir().expect("dir");
    let mut text = String::from("cluster = \"watch\"\n");
    for (name, pg) in ["a", "b", "c"].iter().zip(&pgs) {
        text.push_str(&format!(
            "\n[[nodes]]\nname = \"{name}\"\nindex = \"{}\"\n",
            pg.dsn()
        ));
    }
    let path = dir.path().join("cluster.toml");
    std::fs::write(&path, text).expect("config");
    let config = ClusterConfig::load(&path).expect("config");
    let out = dir.path().join("watch");
    let mut watcher = Watcher::new(config.clone(), options(&out)).expect("watcher");
    let full = |config: ClusterConfig| async move {
        audit::run(
            &config,
            &AuditOptions {
                settle: Duration::ZERO,
                ..AuditOptions::default()
            },
        )
        .await
    };

    let c1 = watcher.cycle().await.expect("cycle 1");
    assert_eq!(c1.info.kind, CycleKind::Full);
    assert_eq!(triples(&c1.report), triples(&full(config.clone()).await));
    assert_eq!(
        c1.report.divergences.len(),
        2,
        "{:#?}",
        c1.report.divergences
    );
    assert!(c1.report.divergences.iter().all(|d| d.cycles == Some(1)));

    // Between cycles: a new divergence (a lags stream 20, written now), b catches up on 7,
    // and a row changes alike on every node (no divergence).
    tokio::time::sleep(Duration::from_millis(300)).await;
    pg_upsert(&pgs[0], &model, &[Row::new(20, 0)]).await;
    pg_upsert(&pgs[1], &model, &[Row::new(7, 1)]).await;
    for pg in &pgs {
        pg_upsert(pg, &model, &[Row::new(30, 2)]).await;
    }
    let c2 = watcher.cycle().await.expect("cycle 2");
    assert_eq!(c2.info.kind, CycleKind::Incremental);
    let scope = c2.info.scope_streams.expect("an incremental scope");
    assert!(scope < 20, "the incremental cycle compared {scope} streams");
    let expected = triples(&full(config.clone()).await);
    assert_eq!(triples(&c2.report), expected);
    // Ageing: 9 persists (2 cycles, first seen at cycle 1), 20 is new, 7 healed.
    let nine = Row::new(9, 0).stream_id;
    let d9 = c2
        .report
        .divergences
        .iter()
        .find(|d| d.stream_id == nine)
        .expect("stream 9 still missing on c");
    assert_eq!(d9.cycles, Some(2));
    let first_9 = c1
        .report
        .divergences
        .iter()
        .find(|d| d.stream_id == nine)
        .and_then(|d| d.first_seen.clone());
    assert_eq!(d9.first_seen, first_9);
    let healed: Vec<&str> = c2
        .info
        .healed
        .iter()
        .map(|h| h.stream_id.as_str())
        .collect();
    assert_eq!(healed, vec![Row::new(7, 0).stream_id.as_str()]);
    assert_eq!(c2.info.alerting, 1, "stream 9 has been seen in 2 cycles");

    // A third cycle: nothing healed twice; the report directories are kept to 2; `latest`
    // points at the newest; the state survives a restart (a new watcher continues the count).
    let c3 = watcher.cycle().await.expect("cycle 3");
    assert!(c3.info.healed.is_empty());
    let cycles: Vec<String> = std::fs::read_dir(&out)
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("cycle-"))
        .collect();
    assert_eq!(cycles.len(), 2, "{cycles:?}");
    assert_eq!(
        std::fs::canonicalize(out.join("latest")).expect("latest"),
        std::fs::canonicalize(&c3.dir).expect("dir")
    );
    assert!(out.join("latest/report.json").exists() && out.join("latest/cycle.json").exists());
    let restarted = Watcher::new(config.clone(), options(&out)).expect("watcher");
    assert_eq!(restarted.state().cycles, 3);

    // Metrics: scraped over HTTP, parsed as Prometheus text, checked against the report.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(watch::http::serve(
        listener,
        watch::http::router(watch::http::Endpoints {
            metrics: watcher.metrics(),
            gate: watcher.gate(),
            gate_rules: watch::gate::Rules {
                after: Duration::ZERO,
                ..watch::gate::Rules::default()
            },
        }),
        tokio_util::sync::CancellationToken::new(),
    ));
    ceramic_audit::tls::install_default_provider();
    let body = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body");
    // The readiness gate on the same listener: c lacks stream 9, a holds an older tip of
    // stream 20, b agrees with the majority; a node not in the cluster is 404.
    let ready = |node: &'static str| async move {
        let r = reqwest::get(format!("http://{addr}/ready/{node}"))
            .await
            .expect("ready");
        (r.status().as_u16(), r.text().await.expect("body"))
    };
    let seen = triples(&c3.report);
    assert_eq!(
        ready("b").await,
        (200, "ready: no gated divergence\n".into()),
        "{seen:?}"
    );
    let (status, reason) = ready("c").await;
    assert_eq!(status, 503);
    assert!(
        reason.starts_with("not ready: missing_stream=1 for "),
        "{reason}"
    );
    assert!(ready("a")
        .await
        .1
        .starts_with("not ready: tip_mismatch=1 for "));
    assert_eq!(reason.lines().count(), 1);
    assert_eq!(ready("z").await.0, 404);
    server.abort();
    let lines = body.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text");
    let value = |name: &str, labels: &[(&str, &str)]| -> Option<f64> {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
    };
    for d in &c3.report.divergences {
        let n = c3
            .report
            .divergences
            .iter()
            .filter(|x| x.kind == d.kind && x.node == d.node && x.model == d.model)
            .count() as f64;
        assert_eq!(
            value(
                "ceramic_audit_divergences",
                &[
                    ("kind", d.kind.as_str()),
                    ("model", &model),
                    ("node", &d.node)
                ]
            ),
            Some(n)
        );
    }
    assert_eq!(
        value(
            "ceramic_audit_divergences",
            &[("kind", "lagging"), ("node", "b")]
        ),
        Some(0.0),
        "a kind with no rows is a zero sample"
    );
    for node in ["a", "b", "c"] {
        assert_eq!(value("ceramic_audit_node_up", &[("node", node)]), Some(1.0));
    }
    assert_eq!(
        value(
            "ceramic_audit_index_rows",
            &[("node", "a"), ("model", &model)]
        ),
        Some(400.0)
    );
    assert_eq!(
        value("ceramic_audit_cycles_total", &[("type", "full")]),
        Some(1.0)
    );
    assert_eq!(
        value("ceramic_audit_cycles_total", &[("type", "incremental")]),
        Some(2.0)
    );
    assert_eq!(
        value("ceramic_audit_healed_divergences_total", &[]),
        Some(1.0)
    );
    assert!(value("ceramic_audit_last_success_timestamp_seconds", &[]).unwrap_or(0.0) > 1.7e9);
    assert!(
        scrape
            .samples
            .iter()
            .all(|s| s.labels.get("stream_id").is_none()),
        "no stream ids in labels"
    );
    // The textfile holds the same exposition.
    let textfile = std::fs::read_to_string(out.join("metrics.prom")).expect("textfile");
    assert_eq!(textfile, body);
}

#[test]
fn auto_repair_takes_only_persistent_repairable_rows_on_allowed_nodes_up_to_the_cap() {
    let row = |i: usize, node: &str, kind: Kind, cycles: u32, hint: Option<&str>| Divergence {
        model: "m".into(),
        stream_id: format!("s{i:02}"),
        node: node.into(),
        kind,
        tip: None,
        majority_tip: None,
        agreeing_nodes: vec![],
        detail: String::new(),
        log: LogFinding {
            repair_hint: hint.map(str::to_string),
            ..LogFinding::default()
        },
        first_seen: None,
        cycles: Some(cycles),
    };
    let mut rows: Vec<Divergence> = (0..10)
        .map(|i| row(i, "b", Kind::Lagging, 1 + (i as u32 % 4), None))
        .collect();
    rows.push(row(50, "c", Kind::Lagging, 9, None));
    rows.push(row(51, "b", Kind::Forked, 9, None));
    rows.push(row(
        52,
        "b",
        Kind::Lagging,
        9,
        Some("unrepairable if the node rejects …"),
    ));
    let chosen = watch::select_for_repair(&rows, &Targets::Named(vec!["b".into()]), 2, 4);
    assert_eq!(chosen.len(), 4);
    assert!(chosen
        .iter()
        .all(|d| d.node == "b" && d.kind == Kind::Lagging));
    assert!(chosen.iter().all(|d| d.cycles.unwrap_or(0) >= 2));
    // The longest-standing first.
    assert!(chosen.windows(2).all(|w| w[0].cycles >= w[1].cycles));
    assert_eq!(chosen[0].cycles, Some(4));
}

#[test]
fn the_watch_command_runs_cycles_serves_metrics_and_stops_cleanly_on_sigterm() {
    use std::io::Read;
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("watch");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let config =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cluster-3/cluster.toml");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("ceramic-audit"))
        .args(["watch", "--config"])
        .arg(&config)
        .arg("--dir")
        .arg(&out)
        .args(["--every", "1s", "--jitter", "0", "--metrics-listen"])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("watch starts");
    let cycles = || {
        std::fs::read_dir(&out)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().starts_with("cycle-"))
                    .count()
            })
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while cycles() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(cycles() >= 2, "two cycles within a minute");
    let mut metrics = String::new();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("metrics port");
    std::io::Write::write_all(&mut s, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
    s.read_to_string(&mut metrics).expect("read");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(
        metrics.contains("ceramic_audit_node_up{node=\"a\"} 1"),
        "{metrics}"
    );

    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let code = child.wait().expect("exit");
    assert_eq!(code.code(), Some(0), "a clean shutdown exits 0");
    let mut said = String::new();
    if let Some(mut o) = child.stdout.take() {
        o.read_to_string(&mut said).expect("stdout");
    }
    assert!(said.starts_with("watch: "), "{said}");
    // No half-written cycle is left behind; `latest` names a complete one.
    let leftovers: Vec<String> = std::fs::read_dir(&out)
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(out.join("latest/report.json").exists() && out.join("latest/cycle.json").exists());
}

/// The metrics endpoint answers a scrape even when idle clients hold every connection slot:
/// they are dropped after the header timeout instead of blocking the scraper forever; other
/// paths are 404 with a hint.
#[tokio::test]
async fn metrics_endpoint_survives_idle_clients_holding_every_slot() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let text = std::sync::Arc::new(std::sync::RwLock::new("ceramic_audit_up 1\n".to_string()));
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(watch::http::serve(
        listener,
        watch::http::router(watch::http::Endpoints {
            metrics: text,
            gate: Default::default(),
            gate_rules: watch::gate::Rules::default(),
        }),
        stop.clone(),
    ));
    // Every slot taken by a client that connects and never sends a request.
    let mut idle = Vec::new();
    for _ in 0..watch::http::MAX_CONNECTIONS {
        idle.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
    }
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("client");
    let started = std::time::Instant::now();
    let body = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("the scrape is answered once idle clients time out")
        .text()
        .await
        .expect("body");
    assert_eq!(body, "ceramic_audit_up 1\n");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "the scrape should have waited for a slot: {:?}",
        started.elapsed()
    );
    let missing = client
        .get(format!("http://{addr}/nothing"))
        .send()
        .await
        .expect("404");
    assert_eq!(missing.status(), reqwest::StatusCode::NOT_FOUND);
    assert!(missing.text().await.expect("body").contains("/metrics"));
    // Cancelling the token ends the server.
    stop.cancel();
    tokio::time::timeout(std::time::Duration::from_secs(5), server)
        .await
        .expect("the server stops when cancelled")
        .expect("server task");
    drop(idle);
}

/// With JSON logs (stdout, as in the container image) SIGTERM still stops `watch`: a stdout lock
/// held for the whole run once blocked the signal task's log line on a worker thread, so the
/// token was never cancelled and the container was killed after its grace period (exit 137).
#[test]
fn the_watch_command_stops_on_sigterm_with_json_logs_on_stdout() {
    use std::io::Read;
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("watch");
    let config =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cluster-3/cluster.toml");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("ceramic-audit"))
        .args(["watch", "--config"])
        .arg(&config)
        .arg("--dir")
        .arg(&out)
        .args(["--every", "1h", "--jitter", "0"])
        .env("CERAMIC_AUDIT_LOG_FORMAT", "json")
        .env("CERAMIC_AUDIT_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("watch starts");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !out.join("latest/report.json").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        out.join("latest/report.json").exists(),
        "a first cycle within a minute"
    );
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    // Bounded: the bug this guards against is a process that never exits.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(code) = child.try_wait().expect("wait") {
            break code;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("watch did not stop within 20 s of SIGTERM with JSON logs on stdout");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(code.code(), Some(0), "a clean shutdown exits 0");
    let mut said = String::new();
    if let Some(mut o) = child.stdout.take() {
        o.read_to_string(&mut said).expect("stdout");
    }
    assert!(said.contains("stopping at the next safe point"), "{said}");
    assert!(said.trim_end().ends_with("cycle(s)"), "{said}");
}

/// Before the first cycle, `/metrics` answers what is known (the build, no cycle yet), not an
/// empty 200, and no latest-cycle series that would claim a finding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_before_the_first_cycle_say_what_is_known() {
    let dir = tempfile::tempdir().expect("dir");
    let config = ClusterConfig::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cluster-3/cluster.toml"),
    )
    .expect("config");
    let watcher = Watcher::new(config, options(&dir.path().join("watch"))).expect("watcher");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(watch::http::serve(
        listener,
        watch::http::router(watch::http::Endpoints {
            metrics: watcher.metrics(),
            gate: watcher.gate(),
            gate_rules: watch::gate::Rules::default(),
        }),
        stop.clone(),
    ));
    ceramic_audit::tls::install_default_provider();
    let r = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("scrape");
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let body = r.text().await.expect("body");
    let lines = body.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid exposition");
    let value = |name: &str, label: (&str, &str)| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get(label.0) == Some(label.1))
            .map(|s| s.value.clone())
    };
    assert_eq!(
        value(
            "ceramic_audit_build_info",
            ("version", env!("CARGO_PKG_VERSION"))
        ),
        Some(prometheus_parse::Value::Gauge(1.0)),
        "{body}"
    );
    assert_eq!(
        value("ceramic_audit_cycles_total", ("type", "full")),
        Some(prometheus_parse::Value::Counter(0.0)),
        "{body}"
    );
    assert!(
        !body.contains("ceramic_audit_divergences") && !body.contains("node_up"),
        "nothing observed yet: {body}"
    );
    stop.cancel();
}
