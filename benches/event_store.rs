//! Benchmark of the ceramic-one event-store comparison (issue 15): 3 stores × n events of one
//! model (default 10^6; `CERAMIC_AUDIT_BENCH_EVENTS` to change), d divergent events (default
//! 100; `CERAMIC_AUDIT_BENCH_DIFFS`): half missing on b, half on c, spread uniformly.
//!
//! The stores have ceramic-one's schema (reference `ceramic-one.md` §1.2) and are filled the way
//! the node files events: `order_key` = a real EventId (network local-42, one model, 997
//! controllers, each event its own stream's init event, CIDs from sha256), `ahash_0..7` = the
//! Sha256a lanes of the key, all delivered, in one bulk transaction of prepared inserts (no
//! blocks: the descent never reads them). Measured, reading the stores read-only as an audit
//! does:
//!
//! - `descent`: the range descent alone over the model's key space (rounds, bytes each store
//!   returned, wall) with the audit's parameters (`event_store_params`);
//! - `descent_fixed_256_16`: the same with the fixed 256/16 split the audit used before;
//! - `index_audit_same_n_d`: the index audit's push-down rounds and bytes at the same n and d,
//!   read from the last `reports/bench/index-audit.json`, for the side-by-side reading;
//! - `compare`: the whole comparison (`source::ceramic_one::compare`), which also scans each
//!   store's key space for model prefixes, the model's name and undelivered events.
//!
//! Writes `reports/bench/event-store.json` and prints a Markdown row. Not a test: `cargo bench
//! --bench event_store` (or with `--profile dev` to reuse a debug build: then say so, wall
//! times are unoptimised; rounds and bytes do not depend on the profile).

#[path = "common/command.rs"]
mod command;

use std::path::Path;
use std::time::Instant;

use ceramic_audit::ids::{EventId, Network, StreamId, StreamType};
use ceramic_audit::recon::{run_descent, Alphabet, DescentParams};
use ceramic_audit::source::ceramic_one::compare::event_store_params;
use ceramic_audit::source::ceramic_one::interest::{model_interest, model_prefix, model_range};
use ceramic_audit::source::ceramic_one::mirror::SCHEMA;
use ceramic_audit::source::ceramic_one::{compare, EventStore, StoreNode, META_MODEL};
use cid::Cid;
use rusqlite::{params, Connection};
use serde_json::json;
use sha2::{Digest, Sha256};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn cid_of(codec: u64, bytes: &[u8]) -> Cid {
    let digest = Sha256::digest(bytes);
    let mh = multihash::Multihash::<64>::wrap(0x12, &digest).expect("a 32-byte digest");
    Cid::new_v1(codec, mh)
}

/// Event `i`: an unsigned init event (its own stream) of `model` by one of 997 controllers (a
/// prime, so evenly spaced differences fall on different controllers), as
/// a dag-cbor block, and its CID.
fn event(i: u64, model: &[u8]) -> (Cid, Vec<u8>, String) {
    init_event(&format!("did:key:z6Mkbench{}", i % 997), model, i)
}

fn init_event(controller: &str, model: &[u8], i: u64) -> (Cid, Vec<u8>, String) {
    use ciborium::Value;
    let controller = controller.to_string();
    let block = Value::Map(vec![
        (
            "data".into(),
            Value::Map(vec![("n".into(), Value::Integer(i.into()))]),
        ),
        (
            "header".into(),
            Value::Map(vec![
                (
                    "controllers".into(),
                    Value::Array(vec![Value::Text(controller.clone())]),
                ),
                ("model".into(), Value::Bytes(model.to_vec())),
                ("sep".into(), Value::Text("model".into())),
            ]),
        ),
    ]);
    let mut bytes = Vec::new();
    ciborium::ser::into_writer(&block, &mut bytes).expect("CBOR into a Vec");
    (cid_of(0x71, &bytes), bytes, controller)
}

fn lanes(key: &[u8]) -> [i64; 8] {
    let d = Sha256::digest(key);
    std::array::from_fn(|i| {
        i64::from(u32::from_le_bytes([
            d[i * 4],
            d[i * 4 + 1],
            d[i * 4 + 2],
            d[i * 4 + 3],
        ]))
    })
}

/// Which store lacks event `i` (1 = b, 2 = c), for d events spread over n.
fn missing_on(i: u64, n: u64, d: u64) -> Option<usize> {
    let step = (n / d.max(1)).max(1);
    (i % step == step / 2 && i / step < d).then(|| if (i / step) % 2 == 0 { 1 } else { 2 })
}

/// The model's definition: a Model init event under the meta-model, held by every store (so
/// every node can build states: no `state_missing`).
fn definition() -> (Cid, Vec<u8>, String) {
    let meta = StreamId::parse(META_MODEL)
        .expect("the meta-model id")
        .to_bytes();
    init_event("did:key:z6Mkbenchauthor", &meta, u64::MAX)
}

fn build(path: &Path, store: usize, n: u64, d: u64, model: &[u8]) -> rusqlite::Result<()> {
    let mut conn = Connection::open(path)?;
    conn.execute_batch(SCHEMA)?;
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare(
            "INSERT INTO ceramic_one_event (order_key, ahash_0, ahash_1, ahash_2, ahash_3, \
             ahash_4, ahash_5, ahash_6, ahash_7, cid, delivered, init_cid) \
             VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?10)",
        )?;
        let mut block = tx.prepare("INSERT OR IGNORE INTO ceramic_one_block VALUES (?1, ?2)")?;
        let mut link =
            tx.prepare("INSERT INTO ceramic_one_event_block VALUES (?1, ?2, 113, 0, TRUE)")?;
        let (def, def_block, author) = definition();
        let meta = StreamId::parse(META_MODEL)
            .expect("the meta-model id")
            .to_bytes();
        let key =
            EventId::build(Network::Local(42), "model", &meta, &author, &def, &def).to_bytes();
        let l = lanes(&key);
        let mh = def.hash().to_bytes();
        insert.execute(params![
            key,
            l[0],
            l[1],
            l[2],
            l[3],
            l[4],
            l[5],
            l[6],
            l[7],
            def.to_bytes(),
            0
        ])?;
        block.execute(params![mh, def_block])?;
        link.execute(params![def.to_bytes(), mh])?;
        // Every node interested in the model and the meta-model (Recon syncs them all).
        for m in [model, meta.as_slice()] {
            let interest =
                model_interest(Network::Local(42), m, format!("peer {store}").as_bytes());
            let l = lanes(&interest);
            tx.execute(
                "INSERT INTO ceramic_one_interest VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)",
                params![interest, l[0], l[1], l[2], l[3], l[4], l[5], l[6], l[7]],
            )?;
        }
        for i in 0..n {
            let missing = missing_on(i, n, d);
            if missing == Some(store) {
                continue;
            }
            let (cid, bytes, controller) = event(i, model);
            // Blocks where the comparison reads them: the divergent events (their rows) and the
            // first (the model's name is looked for in the first events).
            if i < 10 || missing.is_some() {
                let mh = cid.hash().to_bytes();
                block.execute(params![mh, bytes])?;
                link.execute(params![cid.to_bytes(), mh])?;
            }
            let key = EventId::build(Network::Local(42), "model", model, &controller, &cid, &cid)
                .to_bytes();
            let l = lanes(&key);
            insert.execute(params![
                key,
                l[0],
                l[1],
                l[2],
                l[3],
                l[4],
                l[5],
                l[6],
                l[7],
                cid.to_bytes(),
                i as i64 + 1
            ])?;
        }
    }
    tx.commit()
}

/// The index audit's push-down figures at the same n and d from the last index-audit benchmark
/// (`reports/bench/index-audit.json`), so the two key spaces are read side by side; `null` when
/// that run has no such row.
fn index_audit_row(n: u64, d: u64) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/bench/index-audit.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return serde_json::Value::Null;
    };
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(&text) else {
        return serde_json::Value::Null;
    };
    if doc["rows_per_node"].as_u64() != Some(n) {
        return serde_json::Value::Null;
    }
    doc["rows"]
        .as_array()
        .and_then(|rows| {
            rows.iter()
                .find(|r| r["link"].as_str() == Some("loopback") && r["d"].as_u64() == Some(d))
        })
        .map(|r| {
            let m = &r["methods"];
            json!({
                "generated_at_unix": doc["generated_at_unix"],
                "pushdown_rounds": m["pushdown"]["rounds"],
                "pushdown_bytes_per_node": m["pushdown"]["bytes_per_node"],
                "pushdown_tips_rounds": m["pushdown --compare tips"]["rounds"],
                "pushdown_tips_bytes_per_node": m["pushdown --compare tips"]["bytes_per_node"],
            })
        })
        .unwrap_or(serde_json::Value::Null)
}

fn main() {
    let n = env_u64("CERAMIC_AUDIT_BENCH_EVENTS", 1_000_000);
    let d = env_u64("CERAMIC_AUDIT_BENCH_DIFFS", 100);
    let profile = if cfg!(debug_assertions) {
        "dev (unoptimised)"
    } else {
        "bench (optimised)"
    };
    let dir = tempfile::tempdir().expect("a scratch directory");
    let model = StreamId::new(StreamType::Model, definition().0).to_bytes();
    let started = Instant::now();
    let names = ["a", "b", "c"];
    for (s, name) in names.iter().enumerate() {
        build(&dir.path().join(format!("{name}.sqlite3")), s, n, d, &model).expect("build a store");
    }
    let build_s = started.elapsed().as_secs_f64();
    let open = || -> Vec<StoreNode> {
        names
            .iter()
            .map(|name| StoreNode {
                name: name.to_string(),
                store: EventStore::open(&dir.path().join(format!("{name}.sqlite3")))
                    .expect("open a store"),
            })
            .collect()
    };

    let (start, end) = model_range(&model_prefix(Network::Local(42), "model", &model));
    // What the audit runs (`event_store_params`: a first level sized from the stores' counts,
    // rounds priced for a local file, cut at the largest store's key quantiles), and the fixed 256/16
    // split it used before, side by side.
    let sized = event_store_params(&DescentParams::default());
    let fixed = DescentParams {
        alphabet: Alphabet::Bytes,
        ..DescentParams::default()
    };
    let descend = |params: &DescentParams| {
        let nodes = open();
        let mut views: Vec<_> = nodes
            .iter()
            .map(|n| n.store.view(start.clone(), end.clone()))
            .collect();
        let t = Instant::now();
        let outcome = run_descent(&mut views, params.clone()).expect("descent");
        (outcome, t.elapsed().as_secs_f64())
    };
    let (outcome, descent_s) = descend(&sized);
    let (fixed_outcome, fixed_s) = descend(&fixed);

    let nodes = open();
    let t = Instant::now();
    let found = compare(&nodes, &sized).expect("compare");
    let compare_s = t.elapsed().as_secs_f64();

    let cost = &outcome.cost;
    let per_store = &cost.bytes_received_per_store;
    let result = json!({
        "n_per_store": n,
        "d": d,
        "stores": 3,
        "profile": profile,
        "build_s": build_s,
        "descent": {
            "wall_s": descent_s,
            "rounds": cost.rounds,
            "differences": outcome.differences.len(),
            "bytes_received_per_store": per_store,
            "bytes_sent_per_store": cost.bytes_sent / 3,
            "fingerprints": cost.fingerprints,
            "entries": cost.entries,
        },
        "descent_fixed_256_16": {
            "wall_s": fixed_s,
            "rounds": fixed_outcome.cost.rounds,
            "differences": fixed_outcome.differences.len(),
            "bytes_received_per_store": &fixed_outcome.cost.bytes_received_per_store,
            "bytes_sent_per_store": fixed_outcome.cost.bytes_sent / 3,
        },
        "index_audit_same_n_d": index_audit_row(n, d),
        "compare": {
            "wall_s": compare_s,
            "rows": found.divergences.len(),
            // The descent of the model with the differences, as the audit's report has it.
            "model_cost": found.models.iter().find(|m| m.differing_streams > 0).and_then(|m| m.cost.as_ref()).map(|c| json!({
                "rounds": c.rounds,
                "bytes_received_per_store": c.bytes_received_per_store,
                "bytes_sent_per_store": c.bytes_sent / 3,
            })),
        },
        "command": command::command("event_store"),
    });
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/bench/event-store.json");
    if let Some(parent) = out.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let text = serde_json::to_string_pretty(&result).expect("json") + "\n";
    std::fs::write(&out, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
    println!("{}", serde_json::to_string_pretty(&result).expect("json"));
    println!(
        "| 3 × {n} events, d = {d} ({profile}) | {} | {} | {:.2} | {:.2} | {} |",
        cost.rounds,
        per_store.iter().max().copied().unwrap_or(0),
        descent_s,
        compare_s,
        outcome.differences.len()
    );
}
