//! ceramic-one event stores (issue 15): the recorded fixture `fixtures/ceramic-one-3` (real
//! events from @ceramic-sdk 0.12, filed the way ceramic-one 0.58 does), fingerprints against
//! plain SQL and an independent Sha256a, EventIds rebuilt from the SDK's CARs, and a store read
//! beside a live writer in WAL mode.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ceramic_audit::ids::{parse_cid, Network};
use ceramic_audit::recon::{
    run_descent, Alphabet, Bounds, DescentParams, Entry, Key, Outcome, Range, RangeStore, Summary,
};
use ceramic_audit::report::Kind;
use ceramic_audit::source::ceramic_one::compare::{event_store_params, rebuild_event_id};
use ceramic_audit::source::ceramic_one::event::{event_id, parse_event, Car};
use ceramic_audit::source::ceramic_one::{compare, EventStore, StoreNode, META_MODEL};
use proptest::prelude::*;
use rusqlite::Connection;
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/ceramic-one-3")
}

fn events_json() -> Json {
    serde_json::from_str(&std::fs::read_to_string(fixture().join("events.json")).unwrap()).unwrap()
}

/// name -> (stream, cid) of every event in events.json, and the models by name.
fn names() -> (BTreeMap<String, (String, String)>, BTreeMap<String, String>) {
    let doc = events_json();
    let events = doc["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap().to_string();
            (s("name"), (s("stream"), s("cid")))
        })
        .collect();
    let models = doc["models"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    (events, models)
}

fn open(path: &Path, name: &str) -> StoreNode {
    StoreNode {
        name: name.to_string(),
        store: EventStore::open(path).unwrap(),
    }
}

fn fixture_nodes() -> Vec<StoreNode> {
    ["a", "b", "c"]
        .iter()
        .map(|n| open(&fixture().join(n).join("db.sqlite3"), n))
        .collect()
}

#[test]
fn the_fixture_gives_exactly_the_expected_rows() {
    let (ev, models) = names();
    let stream = |n: &str| ev[&format!("{n}:init")].0.clone();
    let model_stream = |m: &str| ev[&format!("model:{m}")].0.clone();
    let (note, comment) = (models["Note"].clone(), models["Comment"].clone());
    let row =
        |k: Kind, node: &str, model: &str, s: String| (k, node.to_string(), model.to_string(), s);
    let mut expected = BTreeSet::from([
        // a created both models but is not interested in the meta-model (reference §9).
        row(Kind::NotInterested, "a", META_MODEL, String::new()),
        // c never registered Comment.
        row(Kind::NotInterested, "c", &comment, String::new()),
        row(Kind::MissingEvent, "b", &note, stream("note4")),
        row(Kind::MissingEvent, "c", &note, stream("note2")),
        row(Kind::MissingEvent, "c", &note, stream("note3")),
        row(Kind::MissingEvent, "b", META_MODEL, model_stream("Note")),
        row(Kind::MissingEvent, "b", META_MODEL, model_stream("Comment")),
        row(Kind::MissingEvent, "c", META_MODEL, model_stream("Note")),
        row(Kind::MissingEvent, "c", META_MODEL, model_stream("Comment")),
        row(Kind::UndeliveredEvent, "b", &note, stream("note4")),
    ]);
    // Instances everywhere, the model definitions only on a: no state on b and c.
    for n in ["note1", "note2", "note3", "note4", "note5"] {
        expected.insert(row(Kind::StateMissing, "b", &note, stream(n)));
        if n != "note3" {
            expected.insert(row(Kind::StateMissing, "c", &note, stream(n)));
        }
    }
    for n in ["comment1", "comment2"] {
        expected.insert(row(Kind::StateMissing, "b", &comment, stream(n)));
    }

    let found = compare(&fixture_nodes(), &DescentParams::default()).unwrap();
    let got: BTreeSet<_> = found
        .divergences
        .iter()
        .map(|d| (d.kind, d.node.clone(), d.model.clone(), d.stream_id.clone()))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(
        found.divergences.len(),
        expected.len(),
        "one row per (kind, node, stream)"
    );

    let get = |k: Kind, node: &str, s: &str| {
        found
            .divergences
            .iter()
            .find(|d| d.kind == k && d.node == node && d.stream_id == s)
            .unwrap()
    };
    let note3 = get(Kind::MissingEvent, "c", &stream("note3"));
    assert_eq!(note3.log.missing_commits, Some(2));
    assert_eq!(note3.agreeing_nodes, ["a", "b"]);
    assert!(
        note3.detail.contains("the init event among them"),
        "{}",
        note3.detail
    );
    let note2 = get(Kind::MissingEvent, "c", &stream("note2"));
    assert_eq!(note2.log.missing_commits, Some(1));
    assert!(!note2.detail.contains("init"), "{}", note2.detail);
    let def = get(Kind::MissingEvent, "b", &model_stream("Note"));
    assert_eq!(def.agreeing_nodes, ["a"]);
    assert!(
        def.detail.contains("none of which is interested"),
        "{}",
        def.detail
    );
    let undelivered = get(Kind::UndeliveredEvent, "b", &stream("note4"));
    assert_eq!(
        undelivered.tip.as_deref(),
        Some(ev["note4:data2"].1.as_str())
    );
    let waits = format!("waits for prev {}", ev["note4:data1"].1);
    assert!(
        undelivered.detail.contains(&waits),
        "{}",
        undelivered.detail
    );
    assert!(
        undelivered.detail.contains("which this node lacks"),
        "{}",
        undelivered.detail
    );
    let meta = get(Kind::NotInterested, "a", "");
    assert_eq!(meta.agreeing_nodes, ["b", "c"]);
    assert!(
        meta.detail.contains("holds 2 event(s) no other node has"),
        "{}",
        meta.detail
    );
    // Every model with a difference was compared on all three nodes.
    assert_eq!(found.models.len(), 3);
    assert!(found
        .models
        .iter()
        .all(|m| m.nodes_compared == ["a", "b", "c"]));
}

#[test]
fn identical_stores_give_no_rows() {
    let a = fixture().join("a/db.sqlite3");
    let found = compare(&[open(&a, "a1"), open(&a, "a2")], &DescentParams::default()).unwrap();
    assert!(found.divergences.is_empty(), "{:?}", found.divergences);
}

#[test]
fn event_ids_rebuilt_from_the_sdk_cars_equal_the_stored_order_keys() {
    let doc = events_json();
    let network = Network::Local(42);
    let events = doc["events"].as_array().unwrap();
    let cars: BTreeMap<String, Car> = events
        .iter()
        .map(|e| {
            let (_, bytes) = multibase::decode(e["car"].as_str().unwrap()).unwrap();
            (
                e["cid"].as_str().unwrap().to_string(),
                Car::parse(&bytes).unwrap(),
            )
        })
        .collect();
    let a = Connection::open(fixture().join("a/db.sqlite3")).unwrap();
    for e in events {
        let cid = parse_cid(e["cid"].as_str().unwrap()).unwrap();
        let car = &cars[e["cid"].as_str().unwrap()];
        assert_eq!(car.roots, [cid]);
        let info = parse_event(&cid, &|c| car.block(c)).unwrap();
        let init_car = &cars[e["init_cid"].as_str().unwrap()];
        let init = parse_event(&info.init, &|c| init_car.block(c)).unwrap();
        let rebuilt = event_id(network, init.header.as_ref().unwrap(), &info).to_bytes();
        // Against the EventId computed in JavaScript by make-events.mjs …
        assert_eq!(
            hex::encode(&rebuilt),
            e["event_id"].as_str().unwrap(),
            "{}",
            e["name"]
        );
        // … and against the order_key the store files the event under.
        let stored: Vec<u8> = a
            .query_row(
                "SELECT order_key FROM ceramic_one_event WHERE cid = ?1",
                [cid.to_bytes()],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(rebuilt, stored, "{}", e["name"]);
    }
    // Every row of every store, rebuilt from the blocks the store itself holds.
    for node in fixture_nodes() {
        let rows = node.store.events(&[], &[0xff; 80]).unwrap();
        assert!(!rows.is_empty());
        for (key, cid, _) in rows {
            assert_eq!(
                rebuild_event_id(&node.store, network, &cid).unwrap(),
                key,
                "{} {cid}",
                node.name
            );
        }
    }
}

const SCHEMA: &str = "
CREATE TABLE ceramic_one_block (multihash BLOB PRIMARY KEY, bytes BLOB NOT NULL);
CREATE TABLE ceramic_one_interest (order_key BLOB PRIMARY KEY, ahash_0 INTEGER, ahash_1 INTEGER,
  ahash_2 INTEGER, ahash_3 INTEGER, ahash_4 INTEGER, ahash_5 INTEGER, ahash_6 INTEGER, ahash_7 INTEGER);
CREATE TABLE ceramic_one_event (order_key BLOB NOT NULL UNIQUE, ahash_0 INTEGER NOT NULL,
  ahash_1 INTEGER NOT NULL, ahash_2 INTEGER NOT NULL, ahash_3 INTEGER NOT NULL,
  ahash_4 INTEGER NOT NULL, ahash_5 INTEGER NOT NULL, ahash_6 INTEGER NOT NULL,
  ahash_7 INTEGER NOT NULL, cid BLOB NOT NULL PRIMARY KEY, delivered INTEGER UNIQUE);
CREATE TABLE ceramic_one_event_block (event_cid BLOB, block_multihash BLOB, codec INTEGER,
  idx INTEGER, root BOOL, PRIMARY KEY(event_cid, block_multihash));";

/// sha256(key) as 8 little-endian u32 lanes, written here without the crate's Sha256a.
fn lanes(key: &[u8]) -> [u32; 8] {
    let d = Sha256::digest(key);
    std::array::from_fn(|i| {
        u32::from_le_bytes([d[4 * i], d[4 * i + 1], d[4 * i + 2], d[4 * i + 3]])
    })
}

fn write_store(path: &Path, keys: &BTreeSet<Vec<u8>>) {
    let rows = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.clone(), format!("cid{i}").into_bytes()));
    write_rows(path, rows);
}

/// Event rows (EventId, CID column) as the node files them, each delivered in order.
fn write_rows(path: &Path, rows: impl Iterator<Item = (Vec<u8>, Vec<u8>)>) {
    let mut db = Connection::open(path).unwrap();
    db.execute_batch(SCHEMA).unwrap();
    let tx = db.transaction().unwrap();
    for (i, (k, cid)) in rows.enumerate() {
        let l = lanes(&k);
        tx.execute(
            "INSERT INTO ceramic_one_event VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)",
            rusqlite::params![k, l[0], l[1], l[2], l[3], l[4], l[5], l[6], l[7], cid, i as i64],
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// The source's range fingerprint = plain SQL `SUM(ahash_i) % 2^32` = the lane-wise
    /// wrapping sum of sha256 over the keys in the range, computed independently.
    #[test]
    fn fingerprint_equals_sql_sum_and_independent_sha256a(
        keys in proptest::collection::btree_set(proptest::collection::vec(any::<u8>(), 1..12), 0..60),
        lo in proptest::collection::vec(any::<u8>(), 0..3),
        hi in proptest::collection::vec(any::<u8>(), 0..3),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        write_store(&path, &keys);
        let store = EventStore::open(&path).unwrap();
        let mut view = store.view(Vec::new(), vec![0xff; 16]);
        let end = (!hi.is_empty()).then(|| Key::from_bytes(hi.clone()));
        let range = Range::new(Key::from_bytes(lo.clone()), end.clone());
        let got = view.summary(&range, true).unwrap();

        let inside: Vec<&Vec<u8>> = keys.iter().filter(|k| **k >= lo && (hi.is_empty() || **k < hi)).collect();
        let mut independent = [0u32; 8];
        for k in &inside {
            for (acc, l) in independent.iter_mut().zip(lanes(k)) {
                *acc = acc.wrapping_add(l);
            }
        }
        prop_assert_eq!(got.fingerprint.hash.0, independent);
        prop_assert_eq!(got.fingerprint.count, inside.len() as u64);

        let db = Connection::open(&path).unwrap();
        let hi_sql = if hi.is_empty() { vec![0xff; 16] } else { hi.clone() };
        let sql: [i64; 8] = db.query_row(
            "SELECT SUM(ahash_0) % 4294967296, SUM(ahash_1) % 4294967296, SUM(ahash_2) % 4294967296, \
             SUM(ahash_3) % 4294967296, SUM(ahash_4) % 4294967296, SUM(ahash_5) % 4294967296, \
             SUM(ahash_6) % 4294967296, SUM(ahash_7) % 4294967296 \
             FROM ceramic_one_event WHERE order_key >= ?1 AND order_key < ?2",
            rusqlite::params![lo, hi_sql],
            |r| Ok(std::array::from_fn(|i| r.get::<_, Option<i64>>(i).unwrap().unwrap_or(0))),
        ).unwrap();
        prop_assert_eq!(got.fingerprint.hash.0.map(i64::from), sql);
        let first_last = inside.first().map(|f| (f.to_vec(), inside.last().unwrap().to_vec()));
        prop_assert_eq!(got.bounds.map(|(f, l)| (f.as_bytes().to_vec(), l.as_bytes().to_vec())), first_last);
    }
}

/// Beside a live node the data may sit entirely in the WAL: the source must see it through
/// SQLite, keep one snapshot while the node writes, and write nothing itself.
#[test]
fn a_live_wal_store_is_read_through_sqlite_without_writing_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite3");
    std::fs::copy(fixture().join("a/db.sqlite3"), &path).unwrap();
    let writer = Connection::open(&path).unwrap();
    writer
        .execute_batch("PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;")
        .unwrap();
    // The "node" forgets note events in its WAL only: the main file still holds all 18.
    writer
        .execute_batch(
            "DELETE FROM ceramic_one_event_block; DELETE FROM ceramic_one_event WHERE delivered > 10;",
        )
        .unwrap();
    let main_file = std::fs::read(&path).unwrap();
    let store = EventStore::open(&path).unwrap();
    let seen = store.events(&[], &[0xff; 80]).unwrap();
    assert_eq!(
        seen.len(),
        10,
        "the rows in the WAL, not the 18 of the main file"
    );
    // The node keeps writing while the audit reads: the audit's snapshot does not move.
    writer
        .execute("DELETE FROM ceramic_one_event WHERE delivered > 5", [])
        .unwrap();
    assert_eq!(store.events(&[], &[0xff; 80]).unwrap().len(), 10);
    drop(store);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        main_file,
        "the audit wrote to the store"
    );
}

#[test]
fn bad_stores_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = EventStore::open(&dir.path().join("nope.sqlite3"))
        .err()
        .unwrap();
    assert!(missing.to_string().contains("no such file"), "{missing}");
    let other = dir.path().join("other.sqlite3");
    Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let err = EventStore::open(&other).err().unwrap().to_string();
    assert!(err.contains("ceramic_one_event is missing"), "{err}");
    let junk = dir.path().join("junk.sqlite3");
    std::fs::write(&junk, b"not a database at all, just text").unwrap();
    assert!(EventStore::open(&junk).is_err());
}

/// The "done when": `audit --config fixtures/ceramic-one-3/cluster.toml` prints the new
/// kinds and writes both reports; exit code 1 (divergences found), the report complete.
#[test]
fn audit_cli_on_the_recorded_fixture() {
    let out = tempfile::tempdir().unwrap();
    let run = assert_cmd::Command::cargo_bin("ceramic-audit")
        .unwrap()
        .args(["audit", "--config"])
        .arg(fixture().join("cluster.toml"))
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(
        run.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for line in [
        "missing_event      7",
        "undelivered_event  1",
        "not_interested     2",
        "state_missing      11",
    ] {
        assert!(stdout.contains(line), "{line:?} not in:\n{stdout}");
    }
    let report: Json =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["complete"], true);
    assert_eq!(report["hash"], "sha256a");
    assert_eq!(report["divergences"].as_array().unwrap().len(), 21);
    let csv = std::fs::read_to_string(out.path().join("divergences.csv")).unwrap();
    assert_eq!(csv.lines().count(), 22, "header + 21 rows");
    assert!(
        csv.lines().any(|l| l.contains(",c,not_interested,")),
        "{csv}"
    );
}

#[test]
fn a_node_needs_an_index_or_a_ceramic_one_store() {
    use ceramic_audit::config::{ClusterConfig, IndexLocation};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.toml");
    std::fs::write(&path, "cluster = \"x\"\n[[nodes]]\nname = \"a\"\nceramic_one_store = \"a\"\n[[nodes]]\nname = \"b\"\n").unwrap();
    let err = ClusterConfig::load(&path).unwrap_err().to_string();
    assert!(err.contains("node b: needs `index`"), "{err}");
    std::fs::write(
        &path,
        "cluster = \"x\"\n[[nodes]]\nname = \"a\"\nceramic_one_store = \"a\"\n[[nodes]]\nname = \"b\"\nindex = \"sqlite://b.sqlite\"\nceramic_one_store = \"b\"\n",
    )
    .unwrap();
    let config = ClusterConfig::load(&path).unwrap();
    assert_eq!(config.nodes[0].index, IndexLocation::None);
    assert_eq!(
        config.nodes[0].ceramic_one_store.as_deref(),
        Some(dir.path().join("a").as_path())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_behind_its_own_event_store_is_index_behind_events() {
    use crate::common::composedb::{sqlite_model, Row};
    let (ev, models) = names();
    let dir = tempfile::tempdir().unwrap();
    // b: js-ceramic on ceramic-one, with its SQLite index of Note. note1 indexed at its init
    // (b holds note1's update: 1 behind), note2 at its newest event (up to date), note4 at its
    // init (b lacks note4's first update: its second cannot be applied, so not behind).
    let index = dir.path().join("b-index.sqlite");
    let row = |n: &str, tip: &str| Row {
        stream_id: ev[&format!("{n}:init")].0.clone(),
        tip: Some(ev[tip].1.clone()),
        ..Row::new(0, 0)
    };
    sqlite_model(
        &index,
        &models["Note"],
        &[],
        &[
            row("note1", "note1:init"),
            row("note2", "note2:data2"),
            row("note4", "note4:init"),
        ],
    );
    let toml = format!(
        "cluster = \"c1-on-top\"\n[[nodes]]\nname = \"a\"\nceramic_one_store = \"{a}\"\n\
         [[nodes]]\nname = \"b\"\nindex = \"sqlite://{index}\"\nceramic_one_store = \"{b}\"\n",
        a = fixture().join("a").display(),
        b = fixture().join("b").display(),
        index = index.display()
    );
    let path = dir.path().join("cluster.toml");
    std::fs::write(&path, toml).unwrap();
    let config = ceramic_audit::config::ClusterConfig::load(&path).unwrap();
    let report = ceramic_audit::audit::run(&config, &Default::default()).await;
    let behind: Vec<_> = report
        .divergences
        .iter()
        .filter(|d| d.kind == Kind::IndexBehindEvents)
        .map(|d| {
            (
                d.node.clone(),
                d.stream_id.clone(),
                d.tip.clone(),
                d.log.missing_commits,
            )
        })
        .collect();
    assert_eq!(
        behind,
        vec![(
            "b".to_string(),
            ev["note1:init"].0.clone(),
            Some(ev["note1:init"].1.clone()),
            Some(1)
        )]
    );
    assert_eq!(report.counts.get(&Kind::IndexBehindEvents), Some(&1));
}

/// Three stores of one model's 20,000 events by `controllers` controllers, every 301st event
/// (so spread over the controllers) missing on b and c alternately (33 each); and the model's
/// key range.
fn model_stores(dir: &Path, controllers: u32) -> (Vec<StoreNode>, Vec<u8>, Vec<u8>) {
    use ceramic_audit::ids::{EventId, StreamId, StreamType};
    use ceramic_audit::source::ceramic_one::interest::{model_range, prefix_of};
    let cid_of = |bytes: &[u8]| {
        let mh = multihash::Multihash::<64>::wrap(0x12, &Sha256::digest(bytes)).unwrap();
        cid::Cid::new_v1(0x71, mh)
    };
    let model = StreamId::new(StreamType::Model, cid_of(b"a model")).to_bytes();
    let events: Vec<(Vec<u8>, Vec<u8>)> = (0..20_000u32)
        .map(|i| {
            let cid = cid_of(&i.to_le_bytes());
            let controller = format!("did:key:z6Mktest{}", i % controllers);
            let key = EventId::build(Network::Local(42), "model", &model, &controller, &cid, &cid);
            (key.to_bytes(), cid.to_bytes())
        })
        .collect();
    let lacks = |store: usize, i: usize| i % 301 == 150 && (i / 301) % 2 + 1 == store;
    let nodes = ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(s, name)| {
            let path = dir.join(format!("{name}.sqlite3"));
            let held = events
                .iter()
                .enumerate()
                .filter(|(i, _)| !lacks(s, *i))
                .map(|(_, e)| e.clone());
            write_rows(&path, held);
            open(&path, name)
        })
        .collect();
    let (start, end) = model_range(&prefix_of(&events[0].0).unwrap());
    (nodes, start, end)
}

fn descend(nodes: &[StoreNode], start: &[u8], end: &[u8], params: DescentParams) -> Outcome {
    let mut views: Vec<_> = nodes
        .iter()
        .map(|n| n.store.view(start.to_vec(), end.to_vec()))
        .collect();
    run_descent(&mut views, params).unwrap()
}

/// A model of 20,000 events by 1000 controllers on three stores, 33 missing on b and 33 others
/// on c: the audit sizes its first level from the stores' counts (`ModelView::size`), prices
/// rounds for a local file, cuts the first level at the largest store's key quantiles, and
/// reaches every missing event in 3 rounds (sums, leaf digests, rows), fewer than under the
/// fixed 256/16 split made for SQL push-down.
#[test]
fn a_large_model_is_compared_in_few_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let (nodes, start, end) = model_stores(dir.path(), 1000);
    let found = compare(&nodes, &DescentParams::default()).unwrap();
    // (No interests and no blocks are filed, so no rows: the descent's findings are counted.)
    let model_report = found
        .models
        .iter()
        .find(|m| m.differing_streams > 0)
        .expect("the model with the missing events");
    assert_eq!(model_report.differing_streams, 66);
    let rounds = model_report.cost.as_ref().unwrap().rounds;
    assert_eq!(rounds, 3);

    // The same stores under the fixed split (what the audit ran before).
    let fixed = DescentParams {
        alphabet: Alphabet::Bytes,
        ..DescentParams::default()
    };
    let outcome = descend(&nodes, &start, &end, fixed);
    assert_eq!(outcome.differences.len(), 66);
    assert!(
        outcome.cost.rounds > rounds,
        "fixed split: {} rounds, sized: {rounds}",
        outcome.cost.rounds
    );
}

/// A store that cannot list its key quantiles: the first level is then interpolated.
struct NoQuantiles<S>(S);

impl<S: RangeStore> RangeStore for NoQuantiles<S> {
    type Hash = S::Hash;
    type Error = S::Error;
    fn summary(&mut self, range: &Range, bounds: bool) -> Result<Summary<S::Hash>, S::Error> {
        self.0.summary(range, bounds)
    }
    fn digests(&mut self, range: &Range) -> Result<Vec<u64>, S::Error> {
        self.0.digests(range)
    }
    fn entries(
        &mut self,
        range: &Range,
        only: Option<&BTreeSet<u64>>,
    ) -> Result<Vec<Entry>, S::Error> {
        self.0.entries(range, only)
    }
    fn size(&mut self) -> Option<(u64, Bounds)> {
        self.0.size()
    }
}

/// 10 controllers of 2000 events each: the EventIds of one controller share 20+ leading bytes,
/// so a first level interpolated between the first and last key holds whole controllers in a
/// few ranges and nothing in the rest, and those ranges take more levels. Cut at the store's
/// key quantiles (`ModelView::quantiles`, as the audit does) it takes 3 rounds; both find
/// every difference.
#[test]
fn quantiles_cut_clustered_event_ids() {
    let dir = tempfile::tempdir().unwrap();
    let (nodes, start, end) = model_stores(dir.path(), 10);
    let audit = event_store_params(&DescentParams::default());
    let with = descend(&nodes, &start, &end, audit.clone());
    let mut views: Vec<_> = nodes
        .iter()
        .map(|n| NoQuantiles(n.store.view(start.clone(), end.clone())))
        .collect();
    let without = run_descent(&mut views, audit).unwrap();
    assert_eq!(with.differences.len(), 66);
    assert_eq!(without.differences.len(), 66);
    assert_eq!(with.cost.rounds, 3);
    assert!(
        without.cost.rounds > with.cost.rounds,
        "without quantiles: {} rounds",
        without.cost.rounds
    );
}
