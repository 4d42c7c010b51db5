//! Benchmark of the in-memory N-way descent, with negentropy 0.5 as the anchor measured in the
//! same run. Not a test: run with `cargo bench --bench recon` (writes `reports/bench/recon.json`
//! and prints a Markdown table). `CERAMIC_AUDIT_BENCH_QUICK=1` stops at n = 10^5 and writes
//! `recon-quick.json` instead.
//!
//! Sets: n MID-like stream keys under one model (fixed prefix + 46 random base36 characters, as
//! real StreamIDs), d differences at distinct random keys, spread evenly over three kinds: a key
//! missing on store b, another tip on store c, an extra key on store a. The 3-store descent finds
//! all d; the pair (a, b) differs in the missing and extra keys, and both our descent and
//! negentropy reconcile that pair, so bytes per difference compare like with like.

#[path = "common/command.rs"]
mod command;

use std::time::Instant;

use ceramic_audit::recon::{run_descent, DescentParams, Entry, Key, MemoryStore, PgHash64, Value};
use negentropy::{Id, Negentropy, NegentropyStorageVector};
use rand::{seq::index::sample, Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};

const SEED: u64 = 0x5eed_2026;
const MODEL: &str = "kjzl6hvfrbw6c5ajfmes842lu09vjxu5956e3xq0xk1gez5u7z6lm4kb7mq7n4a";

fn random_stream(rng: &mut ChaCha8Rng) -> String {
    const B36: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let tail: String = (0..46).map(|_| B36[rng.gen_range(0..36)] as char).collect();
    format!("kjzl6kcym7w8y{tail}")
}

fn random_tip(rng: &mut ChaCha8Rng) -> String {
    const B32: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let tail: String = (0..52).map(|_| B32[rng.gen_range(0..32)] as char).collect();
    format!("bagcqcera{tail}")
}

struct Case {
    a: Vec<Entry>,
    b: Vec<Entry>,
    c: Vec<Entry>,
    /// Differences between a and b only (missing on b + extra on a).
    d_pair: usize,
}

fn build(n: usize, d: usize, rng: &mut ChaCha8Rng) -> Case {
    let base: Vec<Entry> = (0..n)
        .map(|_| {
            Entry::new(
                Key::new(MODEL, &random_stream(rng)),
                Value::new(random_tip(rng), 0),
            )
        })
        .collect();
    let (mut a, mut b, mut c) = (base.clone(), base.clone(), base);
    let mut missing = Vec::new();
    let mut d_pair = 0;
    for (j, idx) in sample(rng, n, d.min(n)).into_iter().enumerate() {
        match j % 3 {
            0 => {
                missing.push(idx);
                d_pair += 1;
            }
            1 => c[idx].value.tip = random_tip(rng),
            _ => {
                a.push(Entry::new(
                    Key::new(MODEL, &random_stream(rng)),
                    Value::new(random_tip(rng), 0),
                ));
                d_pair += 1;
            }
        }
    }
    missing.sort_unstable();
    for idx in missing.into_iter().rev() {
        b.swap_remove(idx);
    }
    Case { a, b, c, d_pair }
}

/// The first level sized for the stores from their sizes and `expected_diffs` (the estimate a
/// caller would take from its previous audit; here the true count, or a tenth / ten times it).
fn sized(expected_diffs: usize) -> DescentParams {
    DescentParams {
        sized_first_level: true,
        expected_diffs: expected_diffs as u64,
        ..DescentParams::default()
    }
}

fn descent_json(
    stores: &mut [MemoryStore<PgHash64>],
    expected: usize,
    params: DescentParams,
) -> Json {
    let started = Instant::now();
    let out = run_descent(stores, params).expect("memory stores cannot fail");
    let wall = started.elapsed();
    assert_eq!(
        out.differences.len(),
        expected,
        "the descent found every difference"
    );
    let c = &out.cost;
    let total = c.bytes_sent + c.bytes_received;
    json!({
        "wall_ms": wall.as_secs_f64() * 1e3,
        "rounds": c.rounds,
        "ranges_compared": c.ranges_compared,
        "fingerprints": c.fingerprints,
        "digests": c.digests,
        "entries": c.entries,
        "bytes_sent": c.bytes_sent,
        "bytes_received": c.bytes_received,
        "bytes_total": total,
        "bytes_received_max_store": c.bytes_received_per_store.iter().max(),
        "bytes_per_difference": (expected > 0).then(|| total as f64 / expected as f64),
        "entry_bytes_received": c.entry_bytes_received,
        "identify_bytes_per_difference": (expected > 0)
            .then(|| (total - c.entry_bytes_received) as f64 / expected as f64),
    })
}

fn neg_id(e: &Entry) -> Id {
    Id::from_byte_array(Sha256::digest(e.hash_input()).into())
}

fn negentropy_json(a: &[Entry], b: &[Entry], expected: usize) -> Json {
    let mut client_store = NegentropyStorageVector::with_capacity(a.len());
    for e in a {
        client_store.insert(0, neg_id(e)).expect("insert");
    }
    client_store.seal().expect("seal");
    let mut server_store = NegentropyStorageVector::with_capacity(b.len());
    for e in b {
        server_store.insert(0, neg_id(e)).expect("insert");
    }
    server_store.seal().expect("seal");
    let started = Instant::now();
    let mut client = Negentropy::borrowed(&client_store, 0).expect("client");
    let mut server = Negentropy::borrowed(&server_store, 0).expect("server");
    let mut msg = client.initiate().expect("initiate");
    let (mut up, mut down, mut round_trips) = (0usize, 0usize, 0u64);
    let (mut have, mut need) = (Vec::new(), Vec::new());
    loop {
        up += msg.len();
        round_trips += 1;
        let reply = server.reconcile(&msg).expect("server reconcile");
        down += reply.len();
        match client
            .reconcile_with_ids(&reply, &mut have, &mut need)
            .expect("client reconcile")
        {
            Some(next) => msg = next,
            None => break,
        }
    }
    let wall = started.elapsed();
    assert_eq!(
        have.len() + need.len(),
        expected,
        "negentropy found every difference"
    );
    json!({
        "wall_ms": wall.as_secs_f64() * 1e3,
        "round_trips": round_trips,
        "bytes_up": up,
        "bytes_down": down,
        "bytes_total": up + down,
        "bytes_per_difference": (expected > 0).then(|| (up + down) as f64 / expected as f64),
    })
}

/// `k` stores of `n` keys with `d` differing keys: difference j is on store j % k, alternately
/// a missing key, another tip and an extra key.
fn build_many(n: usize, d: usize, k: usize, rng: &mut ChaCha8Rng) -> Vec<Vec<Entry>> {
    let base: Vec<Entry> = (0..n)
        .map(|_| {
            Entry::new(
                Key::new(MODEL, &random_stream(rng)),
                Value::new(random_tip(rng), 0),
            )
        })
        .collect();
    let mut stores = vec![base.clone(); k];
    let mut missing: Vec<Vec<usize>> = vec![Vec::new(); k];
    for (j, idx) in sample(rng, n, d.min(n)).into_iter().enumerate() {
        let s = j % k;
        match (j / k) % 3 {
            0 => missing[s].push(idx),
            1 => stores[s][idx].value.tip = random_tip(rng),
            _ => stores[s].push(Entry::new(
                Key::new(MODEL, &random_stream(rng)),
                Value::new(random_tip(rng), 0),
            )),
        }
    }
    for (s, mut gone) in missing.into_iter().enumerate() {
        gone.sort_unstable();
        for idx in gone.into_iter().rev() {
            stores[s].swap_remove(idx);
        }
    }
    stores
}

fn memory(sets: &[&Vec<Entry>]) -> Vec<MemoryStore<PgHash64>> {
    sets.iter()
        .map(|s| MemoryStore::new(s.iter().cloned()))
        .collect()
}

fn fmt(v: &Json) -> String {
    match v.as_f64() {
        Some(x) if x.fract() != 0.0 => format!("{x:.1}"),
        Some(x) => format!("{x}"),
        None => "–".into(),
    }
}

fn ratio(ours: &Json, neg: &Json) -> Option<f64> {
    match (ours["bytes_total"].as_f64(), neg["bytes_total"].as_f64()) {
        (Some(o), Some(g)) if g > 0.0 => Some(o / g),
        _ => None,
    }
}

fn show_ratio(r: Option<f64>) -> String {
    r.map_or("–".into(), |r| format!("{r:.2}"))
}

/// Descent vs negentropy on n keys, d differences: 3 stores, then the pair (a, b) with the
/// fixed 256/16 plan and with the sized first level (estimate exact, a tenth, ten times).
fn versus(sizes: &[usize], rng: &mut ChaCha8Rng) -> Vec<Json> {
    let mut rows = Vec::new();
    println!("| n | d | 3 stores: rounds | bytes (all stores) | max bytes recv. by one store | wall ms | sized: rounds | bytes | pair d | negentropy round trips | negentropy bytes/diff | fixed 256/16: rounds | bytes/diff (to identify) | ÷ negentropy | sized: rounds | bytes/diff (to identify) | ÷ negentropy | sized, estimate ÷10 / ×10: rounds, ÷ negentropy |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &n in sizes {
        for d in [0usize, 10, 100, 1000] {
            let case = build(n, d, rng);
            let sets = [&case.a, &case.b, &case.c];
            let ours3 = descent_json(&mut memory(&sets), d, DescentParams::default());
            let sized3 = descent_json(&mut memory(&sets), d, sized(d));
            let pd = case.d_pair;
            let pair = || memory(&sets[..2]);
            let fixed = descent_json(&mut pair(), pd, DescentParams::default());
            let exact = descent_json(&mut pair(), pd, sized(pd));
            let low = descent_json(&mut pair(), pd, sized(pd / 10));
            let high = descent_json(&mut pair(), pd, sized(pd * 10));
            let neg = negentropy_json(&case.a, &case.b, pd);
            println!(
                "| {n} | {d} | {} | {} | {} | {:.1} | {} | {} | {pd} | {} | {} | {} | {} ({}) | {} | {} | {} ({}) | {} | {}, {} / {}, {} |",
                ours3["rounds"],
                ours3["bytes_total"],
                ours3["bytes_received_max_store"],
                ours3["wall_ms"].as_f64().unwrap_or(0.0),
                sized3["rounds"],
                sized3["bytes_total"],
                neg["round_trips"],
                fmt(&neg["bytes_per_difference"]),
                fixed["rounds"],
                fmt(&fixed["bytes_per_difference"]),
                fmt(&fixed["identify_bytes_per_difference"]),
                show_ratio(ratio(&fixed, &neg)),
                exact["rounds"],
                fmt(&exact["bytes_per_difference"]),
                fmt(&exact["identify_bytes_per_difference"]),
                show_ratio(ratio(&exact, &neg)),
                low["rounds"],
                show_ratio(ratio(&low, &neg)),
                high["rounds"],
                show_ratio(ratio(&high, &neg)),
            );
            rows.push(json!({
                "n": n,
                "d": d,
                "three_stores": ours3,
                "three_stores_sized": sized3,
                "pair": {
                    "d": pd,
                    "ours": fixed,
                    "sized": exact,
                    "sized_estimate_tenth": low,
                    "sized_estimate_tenfold": high,
                    "negentropy": neg,
                    "ours_over_negentropy_bytes": ratio(&fixed, &neg),
                    "sized_over_negentropy_bytes": ratio(&exact, &neg),
                },
            }));
        }
    }
    rows
}

/// From 3 to 10 stores of 10^5 keys with d = 100: rounds and bytes per store.
fn more_stores(rng: &mut ChaCha8Rng) -> Vec<Json> {
    let (n, d) = (100_000usize, 100usize);
    let mut rows = Vec::new();
    println!();
    println!("| stores | n | d | plan | rounds | bytes per store (all ÷ stores) | max bytes recv. by one store | wall ms |");
    println!("|---:|---:|---:|---|---:|---:|---:|---:|");
    for k in [3usize, 5, 10] {
        let sets = build_many(n, d, k, rng);
        let refs: Vec<&Vec<Entry>> = sets.iter().collect();
        for (plan, params) in [
            ("fixed 256/16", DescentParams::default()),
            ("sized", sized(d)),
        ] {
            let out = descent_json(&mut memory(&refs), d, params);
            let per_store = out["bytes_total"].as_f64().unwrap_or(0.0) / k as f64;
            println!(
                "| {k} | {n} | {d} | {plan} | {} | {per_store:.0} | {} | {:.1} |",
                out["rounds"],
                out["bytes_received_max_store"],
                out["wall_ms"].as_f64().unwrap_or(0.0),
            );
            rows.push(json!({
                "stores": k, "n": n, "d": d, "plan": plan,
                "bytes_per_store": per_store, "descent": out,
            }));
        }
    }
    rows
}

fn main() {
    // `cargo bench` passes `--bench`; this harness takes no other arguments.
    let quick = std::env::var("CERAMIC_AUDIT_BENCH_QUICK").is_ok_and(|v| v == "1");
    let sizes: &[usize] = if quick {
        &[10_000, 100_000]
    } else {
        &[10_000, 100_000, 1_000_000]
    };
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let rows = versus(sizes, &mut rng);
    let many = more_stores(&mut rng);
    let report = json!({
        "schema_version": 2,
        "benchmark": "recon",
        "generated_at_unix": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        "command": command::command("recon"),
        "seed": SEED,
        "hash": "pg-hashtextextended (64-bit)",
        "params": DescentParams::default(),
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "cost_model": "fingerprint = 8 B hash + count varint; range bound = prefix-compressed key; digest = 8 B; entry = key + tip + 8 B digest; negentropy = its exact message bytes",
        "rows": rows,
        "more_stores": many,
    });
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/bench");
    std::fs::create_dir_all(&dir).expect("create reports/bench");
    // A quick run (no 10^6 row) must not replace the full report the README quotes.
    let name = if quick {
        "recon-quick.json"
    } else {
        "recon.json"
    };
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let text = serde_json::to_string_pretty(&report).expect("serialize");
    std::fs::write(&tmp, text + "\n").expect("write report");
    std::fs::rename(&tmp, &path).expect("rename report");
    eprintln!("wrote {}", path.display());
}
