//! Issue 12, point 3: when one node answers the descent inconsistently, that node is blamed —
//! for that model only — not the first participant. A real Postgres node whose model table has
//! lost its primary key and holds one stream twice (a damaged or hand-edited index) answers a
//! leaf range with the same key twice.

use ceramic_audit::audit::{self, AuditOptions};
use ceramic_audit::config::ClusterConfig;
use ceramic_audit::report::Kind;
use ceramic_audit::source::Mode;

use crate::common::composedb::{model_id, pg_model, tip, Row};
use crate::common::pg::TempPg;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_that_answers_inconsistently_is_blamed_not_the_first() {
    let broken = model_id("blame-broken");
    let sound = model_id("blame-sound");
    let rows: Vec<Row> = (0..300).map(|i| Row::new(i, 1)).collect();
    let pgs = [TempPg::start(), TempPg::start(), TempPg::start()];
    for pg in &pgs {
        pg_model(pg, &broken, &[], &rows).await;
        pg_model(pg, &sound, &[], &rows).await;
    }
    // Node b (the second): its model table lost its primary key and holds stream 42 twice,
    // at two tips the other nodes do not have.
    let dup = &rows[42];
    pgs[1]
        .execute(&format!(
            "DO $$ DECLARE c text; BEGIN
               FOR c IN SELECT conname FROM pg_constraint WHERE conrelid = '\"{broken}\"'::regclass
               LOOP EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', '{broken}', c); END LOOP;
             END $$;
             UPDATE \"{broken}\" SET tip = '{x}' WHERE stream_id = '{s}';
             INSERT INTO \"{broken}\" (stream_id, controller_did, stream_content, tip)
             SELECT stream_id, controller_did, stream_content, '{y}'
             FROM \"{broken}\" WHERE stream_id = '{s}'",
            x = tip("dup-x"),
            y = tip("dup-y"),
            s = dup.stream_id
        ))
        .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cluster.toml");
    let mut text = String::from("cluster = \"blame\"\n");
    for (name, pg) in ["a", "b", "c"].iter().zip(&pgs) {
        text.push_str(&format!(
            "\n[[nodes]]\nname = \"{name}\"\nindex = \"{}\"\n",
            pg.dsn()
        ));
    }
    std::fs::write(&path, text).expect("config");
    let cfg = ClusterConfig::load(&path).expect("config");
    let report = audit::run(
        &cfg,
        &AuditOptions {
            mode: Mode::Pushdown,
            settle: std::time::Duration::ZERO,
            ..AuditOptions::default()
        },
    )
    .await;
    let blamed: Vec<(&str, &str)> = report
        .divergences
        .iter()
        .filter(|d| d.kind == Kind::Unreachable)
        .map(|d| (d.node.as_str(), d.model.as_str()))
        .collect();
    assert_eq!(
        blamed,
        [("b", broken.as_str())],
        "{:#?}",
        report.divergences
    );
    let row = report
        .divergences
        .iter()
        .find(|d| d.kind == Kind::Unreachable)
        .expect("blamed row");
    assert!(row.detail.contains("twice"), "{}", row.detail);
    assert!(!report.complete);
    // The broken model is still compared between a and c; the sound one among all three.
    let compared = |m: &str| {
        report
            .models
            .iter()
            .find(|r| r.model == m)
            .map(|r| r.nodes_compared.clone())
            .unwrap_or_default()
    };
    assert_eq!(compared(&broken), ["a", "c"]);
    assert_eq!(compared(&sound), ["a", "b", "c"]);
    assert!(
        report.nodes.iter().all(|n| n.reachable),
        "{:#?}",
        report.nodes
    );
}
