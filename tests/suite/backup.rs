//! `backup`, `backup verify` and `restore` on real indexes (temporary PostgreSQL servers, SQLite
//! files), a real LevelDB state store (written by rusty-leveldb in LevelDB's on-disk format)
//! and a scripted IPFS RPC API serving real dag-cbor / dag-jose blocks. Real js-ceramic nodes:
//! interop/backup-test.sh.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use assert_cmd::Command;
use ceramic_audit::backup::take::{self, BackupOptions};
use ceramic_audit::config::ClusterConfig;
use cid::Cid;
use ipld_core::ipld::Ipld;
use multihash::Multihash;
use sha2::{Digest, Sha256};

use crate::common::composedb::{model_id, stream_id};
use crate::common::http::{FakeNode, Reply};
use crate::common::pg::TempPg;

struct Block {
    cid: Cid,
    data: Vec<u8>,
}

fn block(codec: u64, value: Ipld) -> Block {
    let data = serde_ipld_dagcbor::to_vec(&value).expect("encode");
    let mh = Multihash::<64>::wrap(0x12, &Sha256::digest(&data)).expect("digest");
    Block {
        cid: Cid::new_v1(codec, mh),
        data,
    }
}

fn map(entries: Vec<(&str, Ipld)>) -> Ipld {
    Ipld::Map(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

/// A stream of two commits: an unsigned dag-cbor genesis, then a signed (dag-jose) update whose
/// payload is a separate block and whose header names a CACAO capability block.
struct TestStream {
    id: String,
    log: Vec<Cid>,
    blocks: Vec<Block>,
}

fn test_stream(seed: &str) -> TestStream {
    let genesis = block(
        0x71,
        map(vec![
            (
                "header",
                map(vec![(
                    "controllers",
                    Ipld::List(vec![Ipld::String(format!("did:pkh:{seed}"))]),
                )]),
            ),
            ("data", map(vec![("title", Ipld::String(seed.into()))])),
        ]),
    );
    let cap = block(
        0x71,
        map(vec![(
            "p",
            map(vec![("iss", Ipld::String(format!("did:pkh:{seed}")))]),
        )]),
    );
    let payload = block(
        0x71,
        map(vec![
            ("id", Ipld::Link(genesis.cid)),
            ("prev", Ipld::Link(genesis.cid)),
            ("data", Ipld::List(vec![])),
        ]),
    );
    let protected = format!(
        r#"{{"alg":"EdDSA","cap":"ipfs://{}","kid":"did:key:z#z"}}"#,
        cap.cid
    );
    let signed = block(
        0x85,
        map(vec![
            ("payload", Ipld::Bytes(payload.cid.to_bytes())),
            (
                "signatures",
                Ipld::List(vec![map(vec![
                    ("protected", Ipld::Bytes(protected.into_bytes())),
                    ("signature", Ipld::Bytes(vec![7; 64])),
                ])]),
            ),
        ]),
    );
    let mut log = vec![genesis.cid, signed.cid];
    let mut blocks = vec![genesis, cap, payload, signed];
    if seed == "s0" {
        // An anchor commit: proof → Merkle root → node → (the anchored commit), path "0/1";
        // the proof's txHash names a transaction no IPFS node holds and must never be asked for.
        let other = block(0x71, map(vec![("other", Ipld::String(seed.into()))]));
        let node = block(
            0x71,
            Ipld::List(vec![Ipld::Link(other.cid), Ipld::Link(log[1])]),
        );
        let root = block(
            0x71,
            Ipld::List(vec![Ipld::Link(node.cid), Ipld::Link(other.cid)]),
        );
        let proof = block(
            0x71,
            map(vec![
                ("root", Ipld::Link(root.cid)),
                ("txHash", Ipld::Link(tx_hash())),
                ("chainId", Ipld::String("inmemory:12345".into())),
            ]),
        );
        let anchor = block(
            0x71,
            map(vec![
                ("id", Ipld::Link(log[0])),
                ("prev", Ipld::Link(log[1])),
                ("proof", Ipld::Link(proof.cid)),
                ("path", Ipld::String("0/1".into())),
            ]),
        );
        log.push(anchor.cid);
        blocks.extend([proof, root, node, anchor]);
    }
    TestStream {
        id: stream_id(seed),
        log,
        blocks,
    }
}

/// An Ethereum transaction CID (eth-tx codec): never a block any IPFS node here holds.
fn tx_hash() -> Cid {
    Cid::new_v1(0x93, Multihash::<64>::wrap(0x1b, &[9; 32]).expect("digest"))
}

/// A node on disk: state store (two LevelDB dirs), SQLite or Postgres index, scripted IPFS.
struct Node {
    root: tempfile::TempDir,
    streams: Vec<TestStream>,
    model: String,
}

impl Node {
    fn new(n: usize) -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        let streams: Vec<TestStream> = (0..n).map(|i| test_stream(&format!("s{i}"))).collect();
        let node = Self {
            root,
            streams,
            model: model_id("backup"),
        };
        let store = node.state_store();
        for dir in ["inmemory", "inmemory-recon"] {
            let mut db =
                rusty_leveldb::DB::open(store.join(dir), rusty_leveldb::Options::default())
                    .expect("leveldb");
            if dir == "inmemory" {
                for s in &node.streams {
                    let log: Vec<_> = s
                        .log
                        .iter()
                        .enumerate()
                        .map(|(i, c)| serde_json::json!({"cid": c.to_string(), "type": i.min(1)}))
                        .collect();
                    let state = serde_json::json!({"type": 3, "content": {}, "log": log});
                    db.put(s.id.as_bytes(), state.to_string().as_bytes())
                        .expect("put");
                }
            }
            db.flush().expect("flush");
        }
        node
    }

    fn state_store(&self) -> PathBuf {
        self.root.path().join("statestore")
    }

    fn sqlite(&self) -> PathBuf {
        self.root.path().join("index.sqlite")
    }

    /// Index rows: each stream at its tip, plus `(stream, tip)` extras.
    fn rows(&self, extra: &[(String, String)]) -> Vec<(String, String)> {
        let mut rows: Vec<(String, String)> = self
            .streams
            .iter()
            .map(|s| (s.id.clone(), s.log.last().expect("tip").to_string()))
            .collect();
        rows.extend(extra.iter().cloned());
        rows
    }

    fn write_sqlite(&self, extra: &[(String, String)]) {
        let mut conn = rusqlite::Connection::open(self.sqlite()).expect("sqlite");
        let conn = conn.transaction().expect("transaction");
        conn.execute_batch(&format!(
            "CREATE TABLE \"{}\" (stream_id VARCHAR(255) PRIMARY KEY, controller_did VARCHAR(1024), stream_content TEXT, tip VARCHAR(255));",
            self.model
        ))
        .expect("create");
        for (id, tip) in self.rows(extra) {
            conn.execute(
                &format!(
                    "INSERT INTO \"{}\" VALUES (?1, 'did:key:z', '{{}}', ?2)",
                    self.model
                ),
                [id, tip],
            )
            .expect("insert");
        }
        conn.commit().expect("commit");
    }

    async fn write_pg(&self, pg: &TempPg, extra: &[(String, String)]) {
        let mut sql = format!(
            "CREATE TABLE \"{}\" (stream_id varchar(255) PRIMARY KEY, controller_did varchar(1024), stream_content jsonb, tip varchar(255));",
            self.model
        );
        for (id, tip) in self.rows(extra) {
            sql.push_str(&format!(
                "INSERT INTO \"{}\" VALUES ('{id}', 'did:key:z', '{{}}', '{tip}');",
                self.model
            ));
        }
        pg.execute(&sql).await;
    }

    /// The scripted IPFS: `refs/local` lists every block but `withhold`; `block/get` serves them.
    async fn ipfs(&self, withhold: &[Cid]) -> FakeNode {
        self.ipfs_with(withhold, Duration::ZERO).await
    }

    /// As [`Self::ipfs`], each `block/get` answered after `delay`.
    async fn ipfs_with(&self, withhold: &[Cid], delay: Duration) -> FakeNode {
        let blocks: Arc<BTreeMap<Vec<u8>, Vec<u8>>> = Arc::new(
            self.streams
                .iter()
                .flat_map(|s| &s.blocks)
                .filter(|b| !withhold.contains(&b.cid))
                .map(|b| (b.cid.hash().to_bytes(), b.data.clone()))
                .collect(),
        );
        FakeNode::start(move |seen, _| {
            let call = seen.target.split('?').next().unwrap_or("");
            match call {
                "/api/v0/version" => Reply::Full(200, r#"{"Version":"0.18.1"}"#.into()),
                "/api/v0/refs/local" => Reply::Full(
                    200,
                    blocks
                        .keys()
                        .map(|mh| {
                            let raw =
                                Cid::new_v1(0x55, Multihash::<64>::from_bytes(mh).expect("mh"));
                            format!("{{\"Ref\":\"{raw}\",\"Err\":\"\"}}\n")
                        })
                        .collect(),
                ),
                "/api/v0/block/get" => {
                    let arg = seen.target.split("arg=").nth(1).unwrap_or("");
                    let cid = Cid::try_from(arg).expect("cid arg");
                    match blocks.get(&cid.hash().to_bytes()) {
                        Some(d) if delay.is_zero() => Reply::Bytes(200, d.clone()),
                        Some(d) => Reply::After(delay, Box::new(Reply::Bytes(200, d.clone()))),
                        // A real js-ipfs would hang here, fetching from the network.
                        None => Reply::After(
                            Duration::from_secs(30),
                            Box::new(Reply::Full(500, "{}".into())),
                        ),
                    }
                }
                "/api/v0/dag/import" => Reply::Full(200, String::new()),
                _ => Reply::Full(404, "{}".into()),
            }
        })
        .await
    }

    /// A cluster file with this node as `b` (index `index`) and a bystander `a`.
    fn config(&self, index: &str, ipfs: &str, state_store: &Path) -> ClusterConfig {
        let text = format!(
            "cluster = \"t\"\n[[nodes]]\nname = \"a\"\nindex = \"sqlite:///nonexistent\"\n\
             [[nodes]]\nname = \"b\"\nindex = \"{index}\"\nstate_store = \"{}\"\nipfs_api = \"{ipfs}\"\n",
            state_store.display()
        );
        let path = self.root.path().join("cluster.toml");
        std::fs::write(&path, &text).expect("write config");
        ClusterConfig::parse(&text, &path).expect("config")
    }
}

fn opts(out: &Path) -> BackupOptions {
    BackupOptions {
        out: out.to_path_buf(),
        stopped: false,
        max_passes: 5,
        timeout: Duration::from_secs(5),
        block_requests: take::DEFAULT_BLOCK_REQUESTS,
        progress: ceramic_audit::progress::Progress::hidden(),
        stop: tokio_util::sync::CancellationToken::new(),
    }
}

async fn backup_of(cfg: &ClusterConfig, out: &Path) -> ceramic_audit::backup::manifest::Manifest {
    // reqwest is built without a TLS provider of its own; the binary installs ring at start.
    ceramic_audit::tls::install_default_provider();
    let b = cfg.nodes.iter().find(|n| n.name == "b").expect("b");
    take::backup(cfg, b, &opts(out)).await.expect("backup")
}

fn verify(dir: &Path) -> (i32, String) {
    let out = Command::cargo_bin("ceramic-audit")
        .expect("binary")
        .args(["backup", "verify"])
        .arg(dir)
        .output()
        .expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_backup_verifies_and_counts_every_layer() {
    let node = Node::new(3);
    node.write_sqlite(&[]);
    let ipfs = node.ipfs(&[]).await;
    let cfg = node.config(
        &format!("sqlite://{}", node.sqlite().display()),
        &ipfs.url,
        &node.state_store(),
    );
    let out = node.root.path().join("bk");
    let m = backup_of(&cfg, &out).await;
    assert_eq!(m.index.as_ref().unwrap().kind, "sqlite");
    assert_eq!(m.index.as_ref().unwrap().rows.get(&node.model), Some(&3));
    let s = m.state_store.as_ref().unwrap();
    assert_eq!(
        (s.streams, s.dirs.clone()),
        (
            3,
            vec!["inmemory".to_string(), "inmemory-recon".to_string()]
        )
    );
    // 4 blocks per stream: genesis, signed commit, its payload, its capability; and s0's
    // anchor commit, proof, Merkle root and the path node under it.
    assert_eq!(m.blocks.as_ref().unwrap().blocks, 16);
    assert!(m.blocks.as_ref().unwrap().missing.is_empty());
    // Reads only: the node's IPFS saw nothing but reads.
    assert!(ipfs
        .requests()
        .iter()
        .all(|r| !r.target.contains("put") && !r.target.contains("import")));
    let (code, text) = verify(&out);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("3 streams, 3 index rows, 16 blocks: verified"),
        "{text}"
    );
    // The anchor proof's transaction CID is not a block: never asked for.
    assert!(!ipfs
        .requests()
        .iter()
        .any(|r| r.target.contains(&tx_hash().to_string())));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_block_the_node_lacks_is_reported_not_fetched() {
    let node = Node::new(2);
    node.write_sqlite(&[]);
    let tip = node.streams[1].log[1];
    let ipfs = node.ipfs(&[tip]).await;
    let cfg = node.config(
        &format!("sqlite://{}", node.sqlite().display()),
        &ipfs.url,
        &node.state_store(),
    );
    let out = node.root.path().join("bk");
    let m = backup_of(&cfg, &out).await;
    let missing = &m.blocks.as_ref().unwrap().missing;
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert_eq!(
        (missing[0].cid.clone(), missing[0].role.as_str()),
        (tip.to_string(), "commit")
    );
    assert!(
        !ipfs
            .requests()
            .iter()
            .any(|r| r.target.contains(&tip.to_string())),
        "the missing block was asked for"
    );
    // The state store's tip is not in the CAR: verify says so, exit 1.
    let (code, text) = verify(&out);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(&format!(
            "block_missing [blocks] stream {} cid {tip}",
            node.streams[1].id
        )),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn damaged_backups_are_each_a_clear_finding() {
    let node = Node::new(2);
    let stray = (
        stream_id("not-in-state"),
        node.streams[0].log[1].to_string(),
    );
    node.write_sqlite(std::slice::from_ref(&stray));
    let ipfs = node.ipfs(&[]).await;
    let cfg = node.config(
        &format!("sqlite://{}", node.sqlite().display()),
        &ipfs.url,
        &node.state_store(),
    );
    let base = node.root.path().join("bk");
    backup_of(&cfg, &base).await;

    // An index row whose stream is not in the state store.
    let (code, text) = verify(&base);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(&format!(
            "index_row_without_state [index] stream {}",
            stray.0
        )),
        "{text}"
    );
    assert_eq!(text.lines().count(), 2, "exactly one finding: {text}");

    // A truncated CAR.
    let cut = node.root.path().join("cut");
    ceramic_audit::backup::ceramic_one::copy_tree(&base, &cut).unwrap();
    let car = cut.join(take::CAR);
    let len = std::fs::metadata(&car).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&car)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    let (code, text) = verify(&cut);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("car_damaged [blocks]") && text.contains("truncated"),
        "{text}"
    );
    assert!(text.contains("checksum_mismatch [blocks]"), "{text}");

    // The manifest's checksum of a file does not match it.
    let bad = node.root.path().join("bad");
    ceramic_audit::backup::ceramic_one::copy_tree(&base, &bad).unwrap();
    let mpath = bad.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    m["state_store"]["files"][0]["sha256"] = serde_json::json!("00".repeat(32));
    std::fs::write(&mpath, serde_json::to_vec(&m).unwrap()).unwrap();
    let (code, text) = verify(&bad);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("checksum_mismatch [state_store]") && text.contains("the manifest says"),
        "{text}"
    );

    // No manifest at all (an interrupted backup).
    std::fs::remove_file(&mpath).unwrap();
    let (code, text) = verify(&bad);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("manifest_unreadable"), "{text}");

    // Nothing is restored from a backup that fails verification.
    let target = node.root.path().join("target-store");
    let cfg2 = node.config(
        &format!(
            "sqlite://{}",
            node.root.path().join("restored.sqlite").display()
        ),
        &ipfs.url,
        &target,
    );
    let out = Command::cargo_bin("ceramic-audit")
        .unwrap()
        .args(["restore"])
        .arg(&cut)
        .arg("--config")
        .arg(&cfg2.path)
        .args(["--node", "b"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("fails verification") && err.contains("car_damaged"),
        "{err}"
    );
    assert!(!target.exists() && !node.root.path().join("restored.sqlite").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_backup_restores_into_an_empty_or_new_database_only() {
    let pg = TempPg::start();
    let node = Node::new(3);
    node.write_pg(&pg, &[]).await;
    let ipfs = node.ipfs(&[]).await;
    let cfg = node.config(&pg.dsn(), &ipfs.url, &node.state_store());
    let out = node.root.path().join("bk");
    let m = backup_of(&cfg, &out).await;
    assert_eq!(m.index.as_ref().unwrap().kind, "postgres");
    assert!(m.index.as_ref().unwrap().tool.starts_with("pg_dump"));
    let (code, text) = verify(&out);
    assert_eq!(code, 0, "{text}");

    // Into the same, non-empty database: refused without --force.
    let target = node.root.path().join("restored-store");
    let restore = |cfg: &ClusterConfig, force: bool| {
        let mut cmd = Command::cargo_bin("ceramic-audit").unwrap();
        cmd.arg("restore")
            .arg(&out)
            .arg("--config")
            .arg(&cfg.path)
            .args(["--node", "b"]);
        if force {
            cmd.arg("--force");
        }
        cmd.output().unwrap()
    };
    let refused = restore(&node.config(&pg.dsn(), &ipfs.url, &target), false);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("refuses to overwrite"));
    assert!(!target.exists());

    // Into a database that does not exist yet (the disaster case): restore creates it through
    // the maintenance database; every row back, state store in place, blocks imported.
    let dsn = format!("{}/restored", pg.dsn().rsplit_once('/').unwrap().0);
    let done = restore(&node.config(&dsn, &ipfs.url, &target), false);
    assert_eq!(
        done.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(
        String::from_utf8_lossy(&done.stdout).contains("index: created the database \"restored\""),
        "{}",
        String::from_utf8_lossy(&done.stdout)
    );
    let client = {
        let (c, conn) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        c
    };
    let rows = client
        .query(
            &format!(
                "SELECT stream_id, tip FROM \"{}\" ORDER BY stream_id",
                node.model
            ),
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let mut want = node.rows(&[]);
    want.sort();
    assert_eq!(got, want);
    let read = ceramic_audit::backup::statestore::read_streams(&target.join("inmemory")).unwrap();
    assert_eq!(read.streams.len(), 3);
    // One multipart part with a content type: js-ipfs refuses a part without one.
    assert!(ipfs
        .requests()
        .iter()
        .any(|r| r.target.starts_with("/api/v0/dag/import")
            && r.body
                .to_ascii_lowercase()
                .contains("content-type: application/vnd.ipld.car")));
}

#[test]
fn a_live_copy_of_a_store_being_written_opens_with_a_prefix_of_the_writes() {
    let root = tempfile::tempdir().unwrap();
    let src = root.path().join("store");
    std::fs::create_dir_all(&src).unwrap();
    let writer_dir = src.join("inmemory");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    // Small write buffer: memtable flushes (a new .log, a new table, a MANIFEST append) and
    // compactions happen during the copies, at a pace a busy node writes (~20k keys/s).
    let writer = std::thread::spawn(move || {
        let opts = rusty_leveldb::Options {
            write_buffer_size: 64 * 1024,
            ..rusty_leveldb::Options::default()
        };
        let mut db = rusty_leveldb::DB::open(&writer_dir, opts).unwrap();
        let mut i = 0u64;
        while !flag.load(std::sync::atomic::Ordering::SeqCst) || i < 2000 {
            let v = format!(r#"{{"log":[{{"cid":"c{i}","type":0}}]}}"#);
            db.put(format!("k{i:08}").as_bytes(), v.as_bytes()).unwrap();
            i += 1;
            if i % 20 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        db.flush().unwrap();
        i
    });
    std::thread::sleep(Duration::from_millis(50));
    let mut seen = Vec::new();
    for n in 0..5 {
        let dst = root.path().join(format!("copy{n}"));
        let outcome = ceramic_audit::backup::statestore::copy_store(&src, &dst, false, 50)
            .expect("a stable pass");
        let read = ceramic_audit::backup::statestore::read_streams(&dst.join("inmemory"))
            .expect("the copy opens");
        assert!(read.unreadable.is_empty());
        // Keys are written in order: a consistent copy holds exactly k0 … k(n-1).
        let n = read.streams.len();
        assert!(
            read.streams
                .keys()
                .enumerate()
                .all(|(i, k)| *k == format!("k{i:08}")),
            "a copy with a hole ({n} keys, {} passes)",
            outcome.passes
        );
        seen.push(n);
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let total = writer.join().unwrap();
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]) && *seen.last().unwrap() as u64 <= total,
        "{seen:?}"
    );
}

/// Ctrl-C or SIGTERM stops a backup promptly with exit 130, and what it leaves behind has no
/// manifest, so `backup verify` never calls it complete.
#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_backup_exits_130_and_is_never_taken_for_complete() {
    let node = Node::new(200);
    node.write_sqlite(&[]);
    // 800 blocks at 8 in flight and 200 ms each: 20 s unless interrupted.
    let ipfs = node.ipfs_with(&[], Duration::from_millis(200)).await;
    let cfg = node.config(
        &format!("sqlite://{}", node.sqlite().display()),
        &ipfs.url,
        &node.state_store(),
    );
    let out = node.root.path().join("bk");
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("ceramic-audit"))
        .args(["backup", "--config"])
        .arg(&cfg.path)
        .args(["--node", "b", "--out"])
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupted in the blocks layer, once the node has been asked for blocks.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !ipfs
        .requests()
        .iter()
        .any(|r| r.target.starts_with("/api/v0/block/get"))
    {
        assert!(std::time::Instant::now() < deadline, "no block request");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent = std::time::Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stopped_in = sent.elapsed();
    assert_eq!(
        status.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(
        stopped_in < Duration::from_secs(5),
        "stopped in {stopped_in:?}"
    );
    assert!(String::from_utf8_lossy(&status.stderr).contains("unfinished backup"));
    assert!(out.join("index").exists(), "the backup had started");
    assert!(!out.join("manifest.json").exists());
    let (code, text) = verify(&out);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("manifest_unreadable"), "{text}");
}

/// The issue's size: a backup of 10^5 streams (4·10^5 blocks through the IPFS API, one request
/// each) finishes in minutes. Slow (several minutes in a debug build), so run on demand:
/// `cargo test --release --test tests backup_of_100k -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "several minutes; the README quotes its measurement"]
async fn backup_of_100k_streams_finishes_in_minutes() {
    let started = std::time::Instant::now();
    let node = Node::new(100_000);
    node.write_sqlite(&[]);
    let ipfs = node.ipfs(&[]).await;
    let cfg = node.config(
        &format!("sqlite://{}", node.sqlite().display()),
        &ipfs.url,
        &node.state_store(),
    );
    let out = node.root.path().join("bk");
    let setup = started.elapsed();
    let t = std::time::Instant::now();
    let m = backup_of(&cfg, &out).await;
    let took = t.elapsed();
    let t = std::time::Instant::now();
    let (code, text) = verify(&out);
    let verified = t.elapsed();
    println!(
        "setup {setup:?}; backup of {} streams, {} blocks: {took:?}; verify: {verified:?}",
        m.state_store.as_ref().unwrap().streams,
        m.blocks.as_ref().unwrap().blocks
    );
    assert_eq!(code, 0, "{text}");
    assert_eq!(m.blocks.as_ref().unwrap().blocks, 400_004);
    // Measured: 588 s in a debug build on a shared 2-core machine (README "Backups").
    assert!(took < Duration::from_secs(900), "backup took {took:?}");
}

/// On a terminal a backup draws its layer and the blocks fetched so far, and clears the line
/// before its summary; with `-q` nothing of it is drawn.
#[tokio::test(flavor = "multi_thread")]
async fn a_backup_draws_its_progress_on_a_terminal_only() {
    let node = Node::new(50);
    node.write_sqlite(&[]);
    // ~200 blocks at 8 in flight and 100 ms each: ~2.5 s in the blocks layer, ten ticks.
    let ipfs = node.ipfs_with(&[], Duration::from_millis(100)).await;
    let cfg = node.config(
        &format!("sqlite://{}", node.sqlite().display()),
        &ipfs.url,
        &node.state_store(),
    );
    let config = cfg.path.to_str().unwrap().to_string();
    let run = |out: &str, quiet: bool| {
        let (config, out) = (config.clone(), node.root.path().join(out));
        tokio::task::spawn_blocking(move || {
            let out = out.to_str().unwrap();
            let mut args = vec!["backup", "--config", &config, "--node", "b", "--out", out];
            if quiet {
                args.push("-q");
            }
            crate::common::terminal::under_a_terminal(&args)
        })
    };
    let shown = run("bk", false).await.unwrap();
    assert!(
        shown.contains("backup: blocks"),
        "no layer drawn: {shown:?}"
    );
    assert!(
        shown.contains("fetched of") && shown.contains("known so far"),
        "no block count drawn: {shown:?}"
    );
    assert!(shown.contains("\r\u{1b}[2K"), "not cleared: {shown:?}");
    assert!(
        shown.contains("backup of node b") && shown.contains(", 0 missing"),
        "no summary: {shown:?}"
    );

    let quiet = run("bk-quiet", true).await.unwrap();
    assert!(!quiet.contains("backup: "), "drawn despite -q: {quiet:?}");
    assert!(!quiet.contains('\u{1b}'), "escapes despite -q: {quiet:?}");
    assert!(
        quiet.contains("backup of node b") && quiet.contains(", 0 missing"),
        "no summary with -q: {quiet:?}"
    );
}
