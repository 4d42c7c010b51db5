//! Issue 12, point 8: a long audit holds nothing open on a node while it waits. A real
//! Postgres whose `idle_in_transaction_session_timeout` (1 s) is shorter than the settle pause
//! (2.5 s), and `--verify-state` against a node API that takes 1.5 s per answer: the audit
//! completes with exactly the divergence there is. Before, the session sat `idle in
//! transaction` through the pause, the server ended it, and the re-check failed (the node
//! reported unreachable, the report incomplete).

use std::collections::HashMap;
use std::time::Duration;

use ceramic_audit::audit::{self, verify::VerifyState, AuditOptions};
use ceramic_audit::config::ClusterConfig;
use ceramic_audit::report::Kind;
use serde_json::{json, Value as Json};

use crate::common::composedb::{model_id, pg_model, pg_upsert, Row};
use crate::common::http::{FakeNode, Reply};
use crate::common::pg::TempPg;

/// The node API: `/api/v0/multiqueries` answers, slowly, each stream asked with the tip
/// `tips` gives (as a real node whose index agrees with its state).
async fn slow_node(tips: HashMap<String, String>) -> FakeNode {
    FakeNode::start(move |seen, _| {
        if !seen.target.contains("multiqueries") {
            return Reply::Full(404, r#"{"error":"not scripted"}"#.into());
        }
        let body: Json = serde_json::from_str(&seen.body).unwrap_or(Json::Null);
        let mut out = serde_json::Map::new();
        for q in body["queries"].as_array().into_iter().flatten() {
            let id = q["streamId"].as_str().unwrap_or_default().to_string();
            if let Some(tip) = tips.get(&id) {
                let state = json!({"type": 3, "content": {}, "metadata": {"controllers": []},
                                   "log": [{"cid": tip, "type": 0}]});
                out.insert(id, state);
            }
        }
        let answer = Reply::Full(200, Json::Object(out).to_string());
        Reply::After(Duration::from_millis(1500), Box::new(answer))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_idle_in_transaction_timeout_does_not_break_settle_or_verify_state() {
    let model = model_id("idle-timeout");
    let rows: Vec<Row> = (0..40).map(|i| Row::new(i, 1)).collect();
    let pgs = [TempPg::start(), TempPg::start()];
    for pg in &pgs {
        pg_model(pg, &model, &[], &rows).await;
        pg.execute("ALTER SYSTEM SET idle_in_transaction_session_timeout = '1s'")
            .await;
        pg.execute("SELECT pg_reload_conf()").await;
    }
    // b still has stream 5's first version: one divergence, so the settle pause happens.
    pg_upsert(&pgs[1], &model, &[Row::new(5, 0)]).await;
    let api = slow_node(
        rows.iter()
            .map(|r| (r.stream_id.clone(), r.tip.clone().expect("tip")))
            .collect(),
    )
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cluster.toml");
    let text = format!(
        "cluster = \"test\"\n\n[[nodes]]\nname = \"a\"\nindex = \"{}\"\napi_url = \"{}\"\n\n\
         [[nodes]]\nname = \"b\"\nindex = \"{}\"\n",
        pgs[0].dsn(),
        api.url,
        pgs[1].dsn()
    );
    std::fs::write(&path, text).expect("write cluster.toml");
    let cfg = ClusterConfig::load(&path).expect("valid cluster.toml");
    let options = AuditOptions {
        settle: Duration::from_millis(2500),
        read_logs: false,
        verify_state: VerifyState::All,
        ..AuditOptions::default()
    };
    let report = audit::run(&cfg, &options).await;
    assert!(report.complete, "{:#?}", report.divergences);
    let found: Vec<(&str, &str, Kind)> = report
        .divergences
        .iter()
        .map(|d| (d.stream_id.as_str(), d.node.as_str(), d.kind))
        .collect();
    // Two nodes, no majority: both rows of stream 5 are tip_mismatch, nothing else.
    let five = rows[5].stream_id.as_str();
    assert_eq!(
        found,
        [
            (five, "a", Kind::TipMismatch),
            (five, "b", Kind::TipMismatch)
        ]
    );
    // The slow API was really asked, for every row of a but the one reported already.
    let asked: usize = api
        .requests()
        .iter()
        .filter(|r| r.target.contains("multiqueries"))
        .map(|r| r.body.matches("streamId").count())
        .sum();
    assert_eq!(asked, 39);
    // The snapshot is ended once, re-opened for the re-check and closed once: never a COMMIT
    // or ROLLBACK outside a transaction, which the server logs as a warning and sends to the
    // client as a notice (it reached the container's JSON log after the shutdown summary).
    for pg in &pgs {
        let log = pg.server_log();
        assert!(
            !log.contains("there is no transaction in progress"),
            "{log}"
        );
    }
}
