//! The push-down plan's round count on real temporary Postgres servers: equal nodes settle in
//! one round with a few KiB per node, and a few differences are reached in at most three
//! (the first split, the prefix grid, the rows), finding exactly what download mode finds.

use ceramic_audit::recon::{
    Descent, DescentParams, Entry, Key, MemoryStore, PgHash64, RangeStore, Value,
};
use ceramic_audit::report::Kind;
use ceramic_audit::source::Mode;

use crate::common::cluster::{audit_with, pg_config, triples};
use crate::common::composedb::{model_id, pg_model, pg_upsert, stream_id, Row};
use crate::common::pg::TempPg;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushdown_reaches_the_differing_rows_in_three_rounds() {
    let model = model_id("orders");
    let n = 20_000;
    let data: Vec<Row> = (0..n).map(|i| Row::new(i, 1)).collect();
    let pgs = vec![TempPg::start(), TempPg::start(), TempPg::start()];
    for pg in &pgs {
        pg_model(pg, &model, &[], &data).await;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = pg_config(dir.path(), &pgs);

    // Equal nodes: one round (one hashing scan), a few KiB per node.
    let report = audit_with(&cfg, Mode::Pushdown).await;
    assert!(report.complete, "{:?}", report.nodes);
    assert!(report.divergences.is_empty(), "{:#?}", report.divergences);
    let cost = report.models[0].cost.as_ref().expect("compared");
    assert_eq!(cost.rounds, 1, "equal nodes settle in one round");
    for node in &report.nodes {
        assert!(node.bytes_received <= 8 * 1024, "{node:?}");
    }

    // 50 streams b never saw, 50 stale tips on c, spread over the key space: a third of the
    // first level differs, so the grid round is one filtered scan whose prefix groups are
    // assigned to the cells here (thousands of cells).
    let gone: Vec<usize> = (0..50).map(|k| 390 * k + 11).collect();
    let stale: Vec<usize> = (0..50).map(|k| 390 * k + 200).collect();
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
    let old: Vec<Row> = stale.iter().map(|&i| Row::new(i, 0)).collect();
    pg_upsert(&pgs[2], &model, &old).await;
    let mut expected: Vec<(String, String, Kind)> = gone
        .iter()
        .map(|i| (stream_id(&i.to_string()), "b".into(), Kind::MissingStream))
        .chain(
            stale
                .iter()
                .map(|i| (stream_id(&i.to_string()), "c".into(), Kind::TipMismatch)),
        )
        .collect();
    expected.sort();

    let push = audit_with(&cfg, Mode::Pushdown).await;
    let down = audit_with(&cfg, Mode::Download).await;
    assert!(push.complete && down.complete, "{:?}", push.nodes);
    assert_eq!(
        triples(&push),
        expected,
        "push-down finds exactly the differences"
    );
    assert_eq!(triples(&down), expected, "download finds the same");
    let cost = push.models[0].cost.as_ref().expect("compared");
    assert!(
        cost.rounds <= 3,
        "first split, grid cells, rows: {} rounds",
        cost.rounds
    );
    assert_eq!(push.models[0].differing_streams, 100);
}

/// The grid on memory stores: the same differences as the ordinary descent, in three rounds
/// after a local root (as a SQL store's row check provides it).
#[test]
fn the_grid_finds_what_the_ordinary_descent_finds_in_three_rounds() {
    let model = "kjzl6hvfrbw6cgrid";
    let mut stores: Vec<MemoryStore<PgHash64>> = (0..3)
        .map(|s| {
            let entries: Vec<Entry> = (0..30_000u64)
                .filter(|i| !(s == 1 && i % 997 == 5))
                .map(|i| {
                    let tip = if s == 2 && i % 1499 == 7 {
                        "old"
                    } else {
                        "new"
                    };
                    Entry::new(
                        Key::new(model, &stream_id(&i.to_string())),
                        Value::new(format!("bafy{tip}{i}"), 0),
                    )
                })
                .collect();
            MemoryStore::new(entries)
        })
        .collect();
    let mut run = |grid: bool| {
        let params = DescentParams {
            root_bounds_only: true,
            grid,
            ..DescentParams::default()
        };
        let mut d = Descent::<PgHash64>::new(3, params).expect("descent");
        let mut first = true;
        while let Some(batch) = d.queries() {
            let answers = stores
                .iter_mut()
                .map(|s| s.answer(&batch).expect("memory store"))
                .collect::<Vec<_>>();
            if first {
                d.feed_local(answers).expect("root");
                first = false;
            } else {
                d.feed(answers).expect("round");
            }
        }
        d.finish()
    };
    let (grid, plain) = (run(true), run(false));
    assert_eq!(grid.differences, plain.differences);
    let expected = (0..30_000u64)
        .filter(|i| i % 997 == 5 || i % 1499 == 7)
        .count();
    assert_eq!(grid.differences.len(), expected);
    assert_eq!(grid.cost.rounds, 3, "split, cells, rows");
    assert!(plain.cost.rounds > 3, "the ordinary descent needs more");
}
