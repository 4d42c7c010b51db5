//! Benchmark of the in-memory N-way descent, with negentropy 0.5 as the anchor measured in the
//! same run. Not a test: run with `cargo bench --bench recon` (writes `reports/bench/recon.json`
//! and prints a Markdown table). `CERAMIC_AUDIT_BENCH_QUICK=1` stops at n = 10^5.
//!
//! Sets: n MID-like stream keys under one model (fixed prefix + 46 random base36 characters, as
//! real StreamIDs), d differences at distinct random keys, spread evenly over three kinds: a key
//! missing on store b, another tip on store c, an extra key on store a. The 3-store descent finds
//! all d; the pair (a, b) differs in the missing and extra keys, and both our descent and
//! negentropy reconcile that pair, so bytes per difference compare like with like.

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

fn descent_json(stores: &mut [MemoryStore<PgHash64>], expected: usize) -> Json {
    let started = Instant::now();
    let out = run_descent(stores, DescentParams::default()).expect("memory stores cannot fail");
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

fn main() {
    // `cargo bench` passes `--bench`; this harness takes no other arguments.
    let quick = std::env::var("CERAMIC_AUDIT_BENCH_QUICK").is_ok_and(|v| v == "1");
    let sizes: &[usize] = if quick {
        &[10_000, 100_000]
    } else {
        &[10_000, 100_000, 1_000_000]
    };
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let mut rows = Vec::new();
    println!("| n | d | stores | rounds | ranges compared | bytes (all stores) | max bytes recv. by one store | wall ms | pair d | ours 2-store bytes/diff (to identify) | negentropy bytes/diff | negentropy round trips | ours ÷ negentropy bytes |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &n in sizes {
        for d in [0usize, 10, 1000] {
            let case = build(n, d, &mut rng);
            let mut three: Vec<MemoryStore<PgHash64>> = [&case.a, &case.b, &case.c]
                .into_iter()
                .map(|s| MemoryStore::new(s.iter().cloned()))
                .collect();
            let ours3 = descent_json(&mut three, d);
            let mut pair: Vec<MemoryStore<PgHash64>> = three.drain(..2).collect();
            let ours2 = descent_json(&mut pair, case.d_pair);
            let neg = negentropy_json(&case.a, &case.b, case.d_pair);
            let ratio = match (ours2["bytes_total"].as_f64(), neg["bytes_total"].as_f64()) {
                (Some(o), Some(g)) if g > 0.0 => Some(o / g),
                _ => None,
            };
            let fmt = |v: &Json| match v.as_f64() {
                Some(x) if x.fract() != 0.0 => format!("{x:.1}"),
                Some(x) => format!("{x}"),
                None => "–".into(),
            };
            println!(
                "| {n} | {d} | 3 | {} | {} | {} | {} | {:.1} | {} | {} ({}) | {} | {} | {} |",
                ours3["rounds"],
                ours3["ranges_compared"],
                ours3["bytes_total"],
                ours3["bytes_received_max_store"],
                ours3["wall_ms"].as_f64().unwrap_or(0.0),
                case.d_pair,
                fmt(&ours2["bytes_per_difference"]),
                fmt(&ours2["identify_bytes_per_difference"]),
                fmt(&neg["bytes_per_difference"]),
                neg["round_trips"],
                ratio.map_or("–".into(), |r| format!("{r:.2}")),
            );
            rows.push(json!({
                "n": n,
                "d": d,
                "three_stores": ours3,
                "pair": {
                    "d": case.d_pair,
                    "ours": ours2,
                    "negentropy": neg,
                    "ours_over_negentropy_bytes": ratio,
                },
            }));
        }
    }
    let report = json!({
        "schema_version": 1,
        "benchmark": "recon",
        "generated_at_unix": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        "command": "cargo bench --bench recon",
        "seed": SEED,
        "hash": "md5-lanes",
        "params": DescentParams::default(),
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "cost_model": "fingerprint = 16 B hash + 8 B count; range bound = key bytes + 1; digest = 8 B; entry = key + tip + 16 B digest + 2; negentropy = its exact message bytes",
        "rows": rows,
    });
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/bench");
    std::fs::create_dir_all(&dir).expect("create reports/bench");
    let path = dir.join("recon.json");
    let tmp = dir.join(".recon.json.tmp");
    let text = serde_json::to_string_pretty(&report).expect("serialize");
    std::fs::write(&tmp, text + "\n").expect("write report");
    std::fs::rename(&tmp, &path).expect("rename report");
    eprintln!("wrote {}", path.display());
}
