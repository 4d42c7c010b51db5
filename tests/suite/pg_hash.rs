//! The push-down hash: our port of Postgres' `hash_bytes_extended` must give exactly what
//! `hashtextextended` gives on a real server, or every mixed cluster (Postgres next to SQLite,
//! snapshots or download mode) would report every row as divergent.

use ceramic_audit::recon::pg_hash_bytes_extended;
use proptest::prelude::*;
use proptest::strategy::ValueTree;

use crate::common::pg::TempPg;

/// Every tail length (0–11 bytes after the 12-byte blocks) and three seeds, as printed by
/// PostgreSQL 15.18 (`fixtures/hash/pg15-hashtextextended.csv`).
#[test]
fn port_matches_recorded_postgres_values() {
    let text = include_str!("../../fixtures/hash/pg15-hashtextextended.csv");
    let alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
    let seeds = [0u64, 1, 0xfedc_ba98_7654_3210];
    let mut checked = 0;
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields.len(), 4, "fixture line {line:?}");
        let n: usize = fields[0].parse().expect("length");
        for (seed, want) in seeds.iter().zip(&fields[1..]) {
            let want: i64 = want.parse().expect("value");
            assert_eq!(
                pg_hash_bytes_extended(&alphabet.as_bytes()[..n], *seed) as i64,
                want,
                "hashtextextended(left(alphabet, {n}), {seed})"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 37 * 3, "the fixture covers lengths 0..=36");
}

/// Random text of every length up to 300 bytes (multi-byte UTF-8 included) hashed by a live
/// server and by the port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_matches_live_postgres_on_random_text() {
    let pg = TempPg::start();
    let client = pg.client().await;
    let mut runner = crate::common::runner("pg_hash_live", 1);
    let strategy = prop::collection::vec("[a-zA-Z0-9\\n:/ é✓{}\"]{0,300}", 400);
    let texts = strategy.new_tree(&mut runner).expect("strategy").current();
    let seeds: Vec<i64> = vec![0, 1, -1, 0x0123_4567_89ab_cdef];
    let rows = client
        .query(
            "SELECT t, s, hashtextextended(t, s) FROM unnest($1::text[]) t, unnest($2::int8[]) s",
            &[&texts, &seeds],
        )
        .await
        .expect("hash on the server");
    assert_eq!(rows.len(), texts.len() * seeds.len());
    for row in rows {
        let t: String = row.get(0);
        let s: i64 = row.get(1);
        let want: i64 = row.get(2);
        assert_eq!(
            pg_hash_bytes_extended(t.as_bytes(), s as u64) as i64,
            want,
            "hashtextextended({t:?}, {s})"
        );
    }
}
