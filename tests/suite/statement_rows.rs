//! `--statement-rows`: an audit of real Postgres nodes whose whole-table statements are cut into
//! pieces of the tables' heap finds exactly what one statement per table finds, in both modes
//! and both comparisons, and no statement it sends reads a model table whole.

use std::collections::BTreeMap;

use ceramic_audit::audit::{self, AuditOptions};
use ceramic_audit::config::ClusterConfig;
use ceramic_audit::recon::DescentParams;
use ceramic_audit::report::Report;
use ceramic_audit::source::{Compare, Mode};
use ceramic_audit::watch::schedule::Schedule;
use ceramic_audit::watch::{CycleKind, WatchOptions, Watcher};

use crate::common::cluster::pg_config;
use crate::common::composedb::{model_id, pg_model, pg_upsert, Row};
use crate::common::pg::TempPg;

/// Rows per node: enough for a few hundred heap blocks and every round kind.
const ROWS: usize = 12_000;
/// The bound asked for: a dozen pieces per whole-table statement.
const STATEMENT_ROWS: u64 = 1_000;

/// Mode, columns, and a leaf threshold other than the default.
type Run = (Mode, Compare, Option<u64>);

async fn audit(cfg: &ClusterConfig, run: Run, rows: Option<u64>) -> Report {
    let (mode, compare, leaf) = run;
    let mut params = DescentParams::default();
    if let Some(leaf) = leaf {
        params.leaf_threshold = leaf;
    }
    let options = AuditOptions {
        mode,
        compare,
        params,
        statement_rows: rows,
        settle: std::time::Duration::ZERO,
        ..AuditOptions::default()
    };
    audit::run(cfg, &options).await
}

/// Everything a report says about each divergence, and each node's row count.
fn findings(report: &Report) -> (Vec<String>, BTreeMap<String, u64>) {
    let rows = report
        .divergences
        .iter()
        .map(|d| {
            format!(
                "{} {} {:?} {:?}",
                d.stream_id,
                d.node,
                d.kind,
                serde_json::to_string(d).expect("json")
            )
        })
        .collect();
    let counts = report
        .nodes
        .iter()
        .map(|n| (n.name.clone(), n.rows))
        .collect();
    (rows, counts)
}

/// Every statement the server logged (`log_min_duration_statement = 0`), one per line.
fn statements(pg: &TempPg) -> Vec<String> {
    pg.server_log()
        .lines()
        .filter_map(|l| l.split_once("duration: ").map(|(_, rest)| rest))
        // The extended protocol logs parse, bind and execute; the statement ran once.
        .filter(|rest| rest.contains("  execute ") || rest.contains("  statement: "))
        .map(str::to_string)
        .collect()
}

/// Block ranges `(start, end)` of the TID range pieces in a statement.
fn pieces_in(statement: &str) -> Vec<(u64, Option<u64>)> {
    let block = |s: &str, key: &str| -> Option<u64> {
        let at = s.find(key)? + key.len();
        s[at..].split(',').next()?.parse().ok()
    };
    statement
        .match_indices("ctid >= '(")
        .map(|(i, _)| {
            let tail = &statement[i..];
            let end = tail
                .find(")'::tid")
                .map(|j| &tail[j + 7..])
                .filter(|rest| rest.starts_with(" AND ctid < '("))
                .and_then(|rest| block(rest, "ctid < '("));
            (block(tail, "ctid >= '(").expect("a block number"), end)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_cut_into_pieces_find_what_one_statement_finds_and_read_no_table_whole() {
    let model = model_id("pieces");
    let data: Vec<Row> = (0..ROWS).map(|i| Row::new(i, 1)).collect();
    let pgs = vec![TempPg::start(), TempPg::start(), TempPg::start()];
    for pg in &pgs {
        pg_model(pg, &model, &[], &data).await;
    }
    // b misses 40 streams; c has another tip on 40 (20 of them with other content too); a has
    // 25 more; b has 3 invalid rows (tips no identifier can be).
    let gone: Vec<String> = (0..40)
        .map(|i| Row::new(i * 251 % ROWS, 1).stream_id)
        .collect();
    pgs[1]
        .execute(&format!(
            "DELETE FROM \"{model}\" WHERE stream_id IN ({})",
            gone.iter()
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(",")
        ))
        .await;
    let mut changed: Vec<Row> = (0..40).map(|i| Row::new(i * 293 % ROWS + 1, 2)).collect();
    for r in changed.iter_mut().take(20) {
        r.content = serde_json::json!({"title": "changed"});
    }
    pg_upsert(&pgs[2], &model, &changed).await;
    let extra: Vec<Row> = (ROWS..ROWS + 25).map(|i| Row::new(i, 1)).collect();
    pg_upsert(&pgs[0], &model, &extra).await;
    pgs[1]
        .execute(&format!(
            "UPDATE \"{model}\" SET tip = 'x' WHERE stream_id IN \
             (SELECT stream_id FROM \"{model}\" ORDER BY stream_id OFFSET 5000 LIMIT 3)"
        ))
        .await;
    for pg in &pgs {
        // Statistics as autovacuum keeps them on a production table (the first piece is sized
        // by them), and every statement logged from now on.
        pg.execute(&format!("ANALYZE \"{model}\"")).await;
        pg.execute("ALTER SYSTEM SET log_min_duration_statement = 0")
            .await;
        pg.execute("SELECT pg_reload_conf()").await;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = pg_config(dir.path(), &pgs);

    // Small leaves make the second round a prefix grid of over a thousand cells, which the
    // nodes answer by prefix groups (the other summary statement).
    let runs: [Run; 5] = [
        (Mode::Pushdown, Compare::All, None),
        (Mode::Pushdown, Compare::Tips, None),
        (Mode::Pushdown, Compare::All, Some(4)),
        (Mode::Download, Compare::All, None),
        (Mode::Download, Compare::Tips, None),
    ];
    let mut wanted = Vec::new();
    for run in runs {
        let whole = audit(&cfg, run, None).await;
        assert!(whole.complete, "{:?}", whole.nodes);
        let found = findings(&whole);
        // 40 missing on b, 40 other tips on c, 25 missing on b and c, 3 invalid on b.
        assert!(found.0.len() >= 40 + 40 + 25 + 3, "{run:?}: {found:#?}");
        wanted.push(found);
    }
    // From here on, only the audits in pieces talk to the servers.
    let logged: Vec<usize> = pgs.iter().map(|pg| statements(pg).len()).collect();
    for (run, want) in runs.into_iter().zip(wanted) {
        let cut = audit(&cfg, run, Some(STATEMENT_ROWS)).await;
        assert!(cut.complete, "{:?}", cut.nodes);
        assert_eq!(findings(&cut), want, "{run:?}");
    }

    // What the servers were sent: statements on the model table read pieces of it, ranges of
    // its key or given streams, never all of it; every piece holds about the rows asked for.
    let table = format!("FROM \"{model}\"");
    let sent: Vec<Vec<String>> = pgs
        .iter()
        .zip(&logged)
        .map(|(pg, &skip)| statements(pg).into_iter().skip(skip).collect())
        .collect();
    let mut pieced = 0u64;
    for (pg, sent) in pgs.iter().zip(&sent) {
        let client = pg.client().await;
        for s in sent {
            for (i, _) in s.match_indices(&table) {
                let (before, after) = (&s[..i], &s[i + table.len()..]);
                let keyed = after.starts_with(" WHERE ctid >= '(")
                    || after.starts_with(" WHERE stream_id >= r.lo")
                    || after.starts_with(" WHERE stream_id = ANY(")
                    || before.ends_with("min(stream_id) ")
                    || before.ends_with("max(stream_id) ");
                assert!(keyed, "a statement reads the table whole: {s}");
            }
            for (start, end) in pieces_in(s) {
                pieced += 1;
                let sql = match end {
                    Some(end) => format!(
                        "SELECT count(*) FROM \"{model}\" WHERE ctid >= '({start},0)'::tid \
                         AND ctid < '({end},0)'::tid"
                    ),
                    None => {
                        format!("SELECT count(*) FROM \"{model}\" WHERE ctid >= '({start},0)'::tid")
                    }
                };
                let n: i64 = client.query_one(&sql, &[]).await.expect(&sql).get(0);
                assert!(
                    n as u64 <= STATEMENT_ROWS * 3 / 2,
                    "a piece of {n} rows (asked {STATEMENT_ROWS}): {s}"
                );
            }
        }
    }
    // Each whole-table statement kind was sent in pieces: the row check, the first level's
    // prefix scan, the grid's prefix groups, a prefix-filtered round, the download.
    let all: Vec<&String> = sent
        .iter()
        .flatten()
        .filter(|s| s.contains("ctid >="))
        .collect();
    for (what, marker) in [
        ("row check", "FILTER (WHERE tip IS NULL"),
        ("prefix scan", "width_bucket(p,"),
        ("grid groups", "int2send(octet_length"),
        ("prefix filter", "COLLATE \"C\" = ANY($"),
        ("download", "SELECT stream_id, hashtextextended"),
    ] {
        assert!(
            all.iter().any(|s| s.contains(marker)),
            "no {what} statement in pieces"
        );
    }
    // The row check alone (push-down) and the download each read every node's table in
    // ROWS / STATEMENT_ROWS pieces or more.
    assert!(
        pieced >= runs.len() as u64 * 3 * (ROWS as u64 / STATEMENT_ROWS),
        "{pieced} pieces"
    );

    // `watch` in pieces: the full cycle, then an incremental one whose change scan (rows
    // updated since the last cycle) is cut too, each reporting what a whole audit reports.
    let dir = tempfile::tempdir().expect("temp dir");
    let options = WatchOptions {
        schedule: Schedule {
            every: std::time::Duration::from_secs(60),
            jitter: 0.0,
        },
        dir: dir.path().join("watch"),
        keep: 2,
        full_every: std::time::Duration::from_secs(3600),
        margin: std::time::Duration::from_millis(100),
        alert_after: 2,
        audit: AuditOptions {
            settle: std::time::Duration::ZERO,
            statement_rows: Some(STATEMENT_ROWS),
            ..AuditOptions::default()
        },
        metrics_textfile: None,
        repair: None,
    };
    let mut watcher = Watcher::new(cfg.clone(), options).expect("watcher");
    let whole = |report: &Report| -> Vec<(String, String, String)> {
        let mut t: Vec<_> = report
            .divergences
            .iter()
            .map(|d| (d.stream_id.clone(), d.node.clone(), format!("{:?}", d.kind)))
            .collect();
        t.sort();
        t
    };
    let full = (Mode::Pushdown, Compare::All, None);
    let c1 = watcher.cycle().await.expect("cycle 1");
    assert_eq!(c1.info.kind, CycleKind::Full);
    assert_eq!(whole(&c1.report), whole(&audit(&cfg, full, None).await));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let before: Vec<usize> = pgs.iter().map(|pg| statements(pg).len()).collect();
    pg_upsert(&pgs[0], &model, &[Row::new(7, 3)]).await;
    let c2 = watcher.cycle().await.expect("cycle 2");
    assert_eq!(c2.info.kind, CycleKind::Incremental);
    assert!(c2.report.complete, "{:?}", c2.report.nodes);
    let now = whole(&audit(&cfg, full, None).await);
    assert!(now.iter().any(|(s, _, _)| *s == Row::new(7, 3).stream_id));
    assert_eq!(whole(&c2.report), now);
    let change_scans: Vec<String> = pgs
        .iter()
        .zip(&before)
        .flat_map(|(pg, &skip)| statements(pg).into_iter().skip(skip))
        .filter(|s| s.contains("FROM updated_at"))
        .collect();
    assert!(
        !change_scans.is_empty() && change_scans.iter().all(|s| s.contains("ctid >= '(")),
        "change scans not in pieces: {change_scans:#?}"
    );
}
