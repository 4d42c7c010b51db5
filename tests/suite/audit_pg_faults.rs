//! `audit` against real temporary PostgreSQL servers (and SQLite files) when something is wrong
//! with a node rather than with its data: malformed rows, a server killed in the middle of the
//! audit, a server down from the start. The audit goes on with the rest and says what it could
//! not see.

use ceramic_audit::report::{Divergence, Kind};
use ceramic_audit::source::Mode;

use crate::audit_pg::{three_nodes, AUTHOR};
use crate::common::cluster::{audit_with, config, find, triples};
use crate::common::composedb::{model_id, pg_model, pg_upsert, sqlite_model, stream_id, tip, Row};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_rows_are_reported_and_the_audit_goes_on() {
    let (pgs, model, _dir, cfg) = three_nodes(200).await;
    // A row whose stream id is not a StreamID and one whose tip is not a CID, on node a only.
    pgs[0]
        .execute(&format!(
            "INSERT INTO \"{model}\" (stream_id, controller_did, stream_content, tip) VALUES \
             ('not-a-stream-id', 'did:key:x', '{{}}', '{}'), ('{}', 'did:key:x', '{{}}', 'Qm-broken')",
            tip("x"),
            stream_id("900000")
        ))
        .await;
    // And a stale tip on b, to show the comparison still works around them.
    pg_upsert(
        &pgs[1],
        &model,
        &[Row::new(7, 0).with_custom(AUTHOR, Some("did:key:author0"))],
    )
    .await;
    let report = audit_with(&cfg, Mode::Pushdown).await;
    assert!(report.complete);
    let invalid: Vec<&Divergence> = report
        .divergences
        .iter()
        .filter(|d| d.kind == Kind::InvalidRow)
        .collect();
    assert_eq!(invalid.len(), 2, "{:#?}", report.divergences);
    assert!(invalid.iter().all(|d| d.node == "a"));
    let bad_id = invalid
        .iter()
        .find(|d| d.stream_id == "not-a-stream-id")
        .expect("bad id listed");
    assert!(
        bad_id.detail.contains("not a StreamID"),
        "{}",
        bad_id.detail
    );
    let bad_tip = invalid
        .iter()
        .find(|d| d.stream_id == stream_id("900000"))
        .expect("bad tip listed");
    assert_eq!(bad_tip.tip.as_deref(), Some("Qm-broken"));
    assert!(
        bad_tip.detail.contains("tip is not a CID"),
        "{}",
        bad_tip.detail
    );
    // Both rows exist on a only: b and c miss the one with a valid stream id (bad tip), not
    // the one whose id is malformed (it is `invalid_row` on a and nothing else); the stale tip
    // is found too.
    assert_eq!(find(&report, &stream_id("7"), "b").kind, Kind::TipMismatch);
    let missing = report
        .divergences
        .iter()
        .filter(|d| d.kind == Kind::MissingStream)
        .count();
    assert_eq!(missing, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_postmaster_is_killed_mid_audit_is_unreachable() {
    let (pgs, model, _dir, cfg) = three_nodes(300).await;
    // A second model; reading it on c kills c's postmaster (kill -9 from inside the server,
    // so it dies exactly in the middle of the audit, after the first model was compared).
    // Models are compared in StreamID order: pick a second model that sorts after the first.
    let second = (0..)
        .map(|i| model_id(&format!("second-{i}")))
        .find(|m| *m > model)
        .expect("some id sorts after");
    let data: Vec<Row> = (0..100).map(|i| Row::new(i + 20_000, 1)).collect();
    pg_model(&pgs[0], &second, &[], &data).await;
    pg_model(&pgs[1], &second, &[], &data).await;
    pg_model(&pgs[2], &second, &[], &data).await;
    pg_upsert(&pgs[1], &second, &[Row::new(20_005, 0)]).await;
    pgs[2]
        .execute(&format!(
            r#"CREATE FUNCTION die() RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
               DECLARE pid text := split_part(pg_read_file('postmaster.pid'), E'\n', 1);
               BEGIN EXECUTE format('COPY (SELECT 1) TO PROGRAM %L', 'kill -9 ' || pid); RETURN true; END $$;
               ALTER TABLE "{second}" RENAME TO second_data;
               CREATE VIEW "{second}" AS SELECT * FROM second_data WHERE die();"#
        ))
        .await;
    let report = audit_with(&cfg, Mode::Pushdown).await;
    assert!(!report.complete, "a node failed: the report is incomplete");
    let c = report.nodes.iter().find(|n| n.name == "c").expect("node c");
    assert!(!c.reachable);
    let unreachable: Vec<&Divergence> = report
        .divergences
        .iter()
        .filter(|d| d.kind == Kind::Unreachable)
        .collect();
    assert_eq!(unreachable.len(), 1, "{:#?}", report.divergences);
    assert_eq!(unreachable[0].node, "c");
    // The second model was still compared between a and b, and b's stale row found.
    let m = report
        .models
        .iter()
        .find(|m| m.model == second)
        .expect("second model");
    assert_eq!(m.nodes_compared, ["a", "b"]);
    assert_eq!(
        find(&report, &stream_id("20005"), "b").kind,
        Kind::TipMismatch
    );
    // The first model was compared by all three, before c died.
    let first = report
        .models
        .iter()
        .find(|m| m.model == model)
        .expect("first model");
    assert_eq!(first.nodes_compared, ["a", "b", "c"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_node_at_start_does_not_stop_the_audit() {
    let (pgs, model, dir, _cfg) = three_nodes(100).await;
    pg_upsert(
        &pgs[1],
        &model,
        &[Row::new(3, 0).with_custom(AUTHOR, Some("did:key:author3"))],
    )
    .await;
    let dead = pgs[2].dsn();
    pgs[2].kill();
    let cfg = config(
        dir.path(),
        &[("a", pgs[0].dsn()), ("b", pgs[1].dsn()), ("c", dead)],
    );
    let report = audit_with(&cfg, Mode::Pushdown).await;
    assert!(!report.complete);
    let c = report.nodes.iter().find(|n| n.name == "c").expect("node c");
    let error = c.error.as_deref().expect("c's error is reported");
    assert!(error.contains("cannot connect"), "{error}");
    assert_eq!(find(&report, &stream_id("3"), "b").kind, Kind::TipMismatch);
    assert_eq!(find(&report, "", "c").kind, Kind::Unreachable);
}

/// A malformed stream id on one node is `invalid_row` there and nothing else: the other nodes
/// are not reported missing a stream that cannot exist (the README example used to show two
/// such `missing_stream` rows with a "create from genesis" hint).
#[tokio::test]
async fn a_malformed_stream_id_is_only_an_invalid_row_on_its_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = model_id("malformed");
    let rows: Vec<Row> = (0..30).map(|i| Row::new(i, 1)).collect();
    let mut with_bad = rows.clone();
    let mut bad = Row::new(99, 1);
    bad.stream_id = "kjzl6kcym7w8yNOT-A-STREAM-ID".into();
    with_bad.push(bad);
    let (a, b, c) = (
        dir.path().join("a.sqlite"),
        dir.path().join("b.sqlite"),
        dir.path().join("c.sqlite"),
    );
    sqlite_model(&a, &model, &[], &with_bad);
    sqlite_model(&b, &model, &[], &rows);
    sqlite_model(&c, &model, &[], &rows);
    let cfg = config(
        dir.path(),
        &[
            ("a", format!("sqlite://{}", a.display())),
            ("b", format!("sqlite://{}", b.display())),
            ("c", format!("sqlite://{}", c.display())),
        ],
    );
    let report = audit_with(&cfg, Mode::Download).await;
    assert_eq!(
        triples(&report),
        vec![(
            "kjzl6kcym7w8yNOT-A-STREAM-ID".to_string(),
            "a".to_string(),
            Kind::InvalidRow
        )],
        "{:#?}",
        report.divergences
    );
}
