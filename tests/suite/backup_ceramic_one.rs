//! Backups of a ceramic-one store (`pipeline/` then `db.sqlite3`) taken by the real binary
//! while a writer keeps committing to the store in WAL mode: real signed events from the
//! recorded fixture (`fixtures/ceramic-one-3/a`), `backup verify` on the copy (integrity, counts,
//! checksums), `restore` into an empty store only, and the ceramic-one audit of the restored
//! store against the original showing exactly the events written after the backup's snapshot.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use assert_cmd::Command;
use rusqlite::Connection;
use serde_json::Value as Json;

/// Events the writer commits: 2 before the backup starts, 2 while it runs, the rest after.
const LATE: usize = 6;

fn fixture_store() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/ceramic-one-3/a/db.sqlite3")
}

fn run(args: &[&str], extra: &[&Path]) -> (i32, String) {
    let out = Command::cargo_bin("ceramic-audit")
        .unwrap()
        .args(args)
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A copy of fixture store `a` in WAL mode without its `LATE` last-delivered events (and their
/// blocks), which the writer then commits the way ceramic-one does: blocks, the event and its
/// block links in one transaction. Returns the events' CIDs in delivery order.
fn store_missing_late_events(store: &Path) -> Vec<Vec<u8>> {
    std::fs::create_dir_all(store.join("pipeline/rev3")).unwrap();
    std::fs::write(
        store.join("pipeline/rev3/event_states.parquet"),
        b"PAR1 state PAR1",
    )
    .unwrap();
    let db = store.join("db.sqlite3");
    std::fs::copy(fixture_store(), &db).unwrap();
    let c = Connection::open(&db).unwrap();
    c.execute_batch("PRAGMA journal_mode=WAL;").unwrap();
    let late: Vec<Vec<u8>> = c
        .prepare("SELECT cid FROM ceramic_one_event ORDER BY delivered DESC LIMIT ?1")
        .unwrap()
        .query_map([LATE as i64], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for cid in &late {
        c.execute(
            "DELETE FROM ceramic_one_event_block WHERE event_cid = ?1",
            [cid],
        )
        .unwrap();
        c.execute("DELETE FROM ceramic_one_event WHERE cid = ?1", [cid])
            .unwrap();
    }
    c.execute_batch(
        "DELETE FROM ceramic_one_block WHERE multihash NOT IN \
         (SELECT block_multihash FROM ceramic_one_event_block);",
    )
    .unwrap();
    late.into_iter().rev().collect()
}

fn commit_event(c: &Connection, cid: &[u8]) {
    c.execute_batch("BEGIN IMMEDIATE").unwrap();
    c.execute(
        "INSERT OR IGNORE INTO ceramic_one_block SELECT b.* FROM src.ceramic_one_block b \
         JOIN src.ceramic_one_event_block eb ON eb.block_multihash = b.multihash \
         WHERE eb.event_cid = ?1",
        [cid],
    )
    .unwrap();
    c.execute(
        "INSERT INTO ceramic_one_event SELECT * FROM src.ceramic_one_event WHERE cid = ?1",
        [cid],
    )
    .unwrap();
    c.execute(
        "INSERT INTO ceramic_one_event_block SELECT * FROM src.ceramic_one_event_block \
         WHERE event_cid = ?1",
        [cid],
    )
    .unwrap();
    c.execute_batch("COMMIT").unwrap();
}

#[test]
fn ceramic_one_store_backed_up_while_written_verifies_restores_and_audits() {
    let root = tempfile::tempdir().unwrap();
    let (orig, restored, bk) = (
        root.path().join("orig"),
        root.path().join("restored"),
        root.path().join("bk"),
    );
    let late = store_missing_late_events(&orig);
    let cfg = root.path().join("cluster.toml");
    std::fs::write(
        &cfg,
        "cluster = \"c1\"\n[[nodes]]\nname = \"orig\"\nceramic_one_store = \"orig\"\n\
         [[nodes]]\nname = \"restored\"\nceramic_one_store = \"restored\"\n",
    )
    .unwrap();

    // The writer: events 0..2 before the backup; then a steady churn of other writes that runs
    // until the backup is done, with events 2..4 committed in it once the backup has been
    // started; the rest once it is done. The backup starts only when the churn runs, so the
    // writer is writing while the backup copies, however the threads are scheduled (a fixed
    // sleep made the backup finish first on a loaded machine).
    let committed = Arc::new(AtomicUsize::new(0));
    let churned = Arc::new(AtomicUsize::new(0));
    let backup_started = Arc::new(AtomicBool::new(false));
    let backup_done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, late) = (orig.join("db.sqlite3"), late.clone());
        let (committed, churned) = (committed.clone(), churned.clone());
        let (backup_started, backup_done) = (backup_started.clone(), backup_done.clone());
        std::thread::spawn(move || {
            let c = Connection::open(&db).unwrap();
            c.busy_timeout(Duration::from_secs(10)).unwrap();
            c.execute("ATTACH ?1 AS src", [fixture_store().to_str().unwrap()])
                .unwrap();
            let commit = |i: usize| {
                commit_event(&c, &late[i]);
                committed.store(i + 1, Ordering::SeqCst);
            };
            commit(0);
            commit(1);
            // Bounded: the main thread sets `backup_done` once the backup command returns.
            while !backup_done.load(Ordering::SeqCst) {
                let n = churned.fetch_add(1, Ordering::SeqCst) + 1;
                c.execute(
                    "INSERT OR REPLACE INTO ceramic_one_version (id, version) VALUES (1000, ?1)",
                    [format!("churn {n}")],
                )
                .unwrap();
                let next = committed.load(Ordering::SeqCst);
                if next < 4 && backup_started.load(Ordering::SeqCst) {
                    commit(next);
                }
            }
            for i in committed.load(Ordering::SeqCst)..late.len() {
                commit(i);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    while churned.load(Ordering::SeqCst) == 0 {
        assert!(!writer.is_finished(), "the writer stopped early");
        std::thread::sleep(Duration::from_millis(1));
    }
    backup_started.store(true, Ordering::SeqCst);
    let churn_at_start = churned.load(Ordering::SeqCst);
    let (code, text) = run(
        &[
            "backup",
            "--config",
            cfg.to_str().unwrap(),
            "--node",
            "orig",
            "--out",
        ],
        &[&bk],
    );
    let at_backup_end = committed.load(Ordering::SeqCst);
    let churn_at_end = churned.load(Ordering::SeqCst);
    backup_done.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    assert_eq!(code, 0, "{text}");
    assert!(
        churn_at_end > churn_at_start,
        "the writer was not writing during the backup"
    );
    assert!(text.contains("ceramic-one: "), "{text}");

    // The copy is sound, and holds the pipeline copied first and a consistent database.
    let (code, text) = run(&["backup", "verify"], &[&bk]);
    assert_eq!(code, 0, "{text}");
    let m: Json =
        serde_json::from_slice(&std::fs::read(bk.join("manifest.json")).unwrap()).unwrap();
    let layer = &m["ceramic_one"];
    let events = layer["events"].as_u64().unwrap() as usize;
    let before = 18 - LATE;
    assert!(
        (before + 2..=before + at_backup_end).contains(&events),
        "{events} events in the copy; {before} + 2..={at_backup_end} expected"
    );
    assert!(m["index"].is_null() && m["state_store"].is_null() && m["blocks"].is_null());
    assert_eq!(
        std::fs::read(bk.join("ceramic-one/pipeline/rev3/event_states.parquet")).unwrap(),
        b"PAR1 state PAR1"
    );

    // Restore refuses a store that holds a database, then fills an empty one.
    let (code, text) = run(
        &[
            "restore",
            "--config",
            cfg.to_str().unwrap(),
            "--node",
            "orig",
        ],
        &[&bk],
    );
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("without --force"), "{text}");
    let (code, text) = run(
        &[
            "restore",
            "--config",
            cfg.to_str().unwrap(),
            "--node",
            "restored",
        ],
        &[&bk],
    );
    assert_eq!(code, 0, "{text}");
    assert!(restored
        .join("pipeline/rev3/event_states.parquet")
        .is_file());

    // The audit of the restored store against the original: only the writes after the snapshot.
    let out = root.path().join("report");
    let (code, text) = run(
        &["audit", "--config", cfg.to_str().unwrap(), "--out"],
        &[&out],
    );
    assert_eq!(code, 1, "{text}");
    let report: Json =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let rows = report["divergences"].as_array().unwrap();
    let lacking: u64 = rows
        .iter()
        .map(|r| r["missing_commits"].as_u64().unwrap())
        .sum();
    assert_eq!(lacking as usize, 18 - events, "{rows:#?}");
    for r in rows {
        assert_eq!(
            (r["node"].as_str(), r["kind"].as_str()),
            (Some("restored"), Some("missing_event")),
            "{r:#}"
        );
    }
}

/// Damage to the database copy is a finding of `backup verify`, and restore refuses it.
#[test]
fn a_damaged_ceramic_one_copy_fails_verification() {
    let root = tempfile::tempdir().unwrap();
    let store = root.path().join("orig");
    store_missing_late_events(&store);
    let cfg = root.path().join("cluster.toml");
    std::fs::write(
        &cfg,
        "cluster = \"c1\"\n[[nodes]]\nname = \"orig\"\nceramic_one_store = \"orig\"\n\
         [[nodes]]\nname = \"empty\"\nceramic_one_store = \"empty\"\n\
         [[nodes]]\nname = \"fresh\"\nceramic_one_store = \"fresh\"\n",
    )
    .unwrap();
    let bk = root.path().join("bk");
    let (code, text) = run(
        &[
            "backup",
            "--config",
            cfg.to_str().unwrap(),
            "--node",
            "orig",
            "--out",
        ],
        &[&bk],
    );
    assert_eq!(code, 0, "{text}");

    // A manifest that counts one event more than the copy holds.
    let miscounted = root.path().join("miscounted");
    ceramic_audit::backup::ceramic_one::copy_tree(&bk, &miscounted).unwrap();
    let mut m: Json =
        serde_json::from_slice(&std::fs::read(miscounted.join("manifest.json")).unwrap()).unwrap();
    m["ceramic_one"]["events"] = Json::from(m["ceramic_one"]["events"].as_u64().unwrap() + 1);
    std::fs::write(miscounted.join("manifest.json"), m.to_string()).unwrap();
    let (code, text) = run(&["backup", "verify"], &[&miscounted]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("count_mismatch [ceramic_one]"), "{text}");

    // A manifest from before the counts were recorded: nothing to compare against, so no
    // mismatch is claimed, and the report says the counts were not checked.
    let uncounted = root.path().join("uncounted");
    ceramic_audit::backup::ceramic_one::copy_tree(&bk, &uncounted).unwrap();
    let mut m: Json =
        serde_json::from_slice(&std::fs::read(uncounted.join("manifest.json")).unwrap()).unwrap();
    let layer = m["ceramic_one"].as_object_mut().unwrap();
    let events = layer.remove("events").unwrap();
    layer.remove("blocks").unwrap();
    std::fs::write(uncounted.join("manifest.json"), m.to_string()).unwrap();
    let (code, text) = run(&["backup", "verify"], &[&uncounted]);
    assert_eq!(code, 0, "{text}");
    assert!(!text.contains("count_mismatch"), "{text}");
    assert!(text.contains("verified (2 not checked)"), "{text}");
    for what in ["events", "blocks"] {
        assert!(
            text.contains(&format!(
                "not checked: ceramic-one {what}: the manifest records no count"
            )),
            "{text}"
        );
    }
    assert!(text.contains(&format!("the {events} events")), "{text}");
    let (code, json) = run(&["backup", "verify", "--json"], &[&uncounted]);
    assert_eq!(code, 0, "{json}");
    let r: Json = serde_json::from_str(&json).unwrap();
    assert_eq!(r["unchecked"].as_array().map(Vec::len), Some(2), "{r:#}");
    // Restoring it goes ahead (nothing is wrong) and says what was not checked.
    let (code, text) = run(
        &[
            "restore",
            "--config",
            cfg.to_str().unwrap(),
            "--node",
            "fresh",
        ],
        &[&uncounted],
    );
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("not checked before restoring: ceramic-one events"),
        "{text}"
    );
    // One count recorded and wrong, the other absent: the first is still a mismatch.
    let half = root.path().join("half");
    ceramic_audit::backup::ceramic_one::copy_tree(&bk, &half).unwrap();
    let mut m: Json =
        serde_json::from_slice(&std::fs::read(half.join("manifest.json")).unwrap()).unwrap();
    m["ceramic_one"]["events"] = Json::from(events.as_u64().unwrap() + 1);
    m["ceramic_one"].as_object_mut().unwrap().remove("blocks");
    std::fs::write(half.join("manifest.json"), m.to_string()).unwrap();
    let (code, text) = run(&["backup", "verify"], &[&half]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("count_mismatch [ceramic_one]")
            && text.contains("not checked: ceramic-one blocks")
            && !text.contains("not checked: ceramic-one events"),
        "{text}"
    );

    // Zeroed pages in the middle of the database file.
    let db = bk.join("ceramic-one/db.sqlite3");
    let mut bytes = std::fs::read(&db).unwrap();
    let page = 4096;
    for b in &mut bytes[2 * page..4 * page] {
        *b = 0;
    }
    std::fs::write(&db, bytes).unwrap();
    let (code, text) = run(&["backup", "verify"], &[&bk]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("checksum_mismatch [ceramic_one]"), "{text}");
    assert!(text.contains("sqlite_damaged [ceramic_one]"), "{text}");
    let (code, text) = run(
        &[
            "restore",
            "--config",
            cfg.to_str().unwrap(),
            "--node",
            "empty",
        ],
        &[&bk],
    );
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("fails verification"), "{text}");
    assert!(!root.path().join("empty/db.sqlite3").exists());
}

/// A backup holding a ceramic-one store and js-ceramic layers is restored whole or not at all:
/// a node configured without `ceramic_one_store` is refused before anything is written, even
/// with `--force` (putting back the js layers alone would leave an index and a state store
/// pointing at events the node does not have).
#[test]
fn restore_refuses_to_drop_the_ceramic_one_layer_silently() {
    let root = tempfile::tempdir().unwrap();
    let store = root.path().join("orig");
    store_missing_late_events(&store);
    let cfg = root.path().join("cluster.toml");
    std::fs::write(
        &cfg,
        "cluster = \"c1\"\n[[nodes]]\nname = \"orig\"\nceramic_one_store = \"orig\"\n\
         [[nodes]]\nname = \"js\"\nindex = \"sqlite://js/index.sqlite\"\n\
         state_store = \"js/statestore\"\nipfs_api = \"http://127.0.0.1:9\"\n",
    )
    .unwrap();
    let bk = root.path().join("bk");
    let (code, text) = run(
        &[
            "backup",
            "--config",
            cfg.to_str().unwrap(),
            "--node",
            "orig",
            "--out",
        ],
        &[&bk],
    );
    assert_eq!(code, 0, "{text}");
    // The same backup as if the node had run js-ceramic on top: an index layer beside the store.
    let mut m: Json =
        serde_json::from_slice(&std::fs::read(bk.join("manifest.json")).unwrap()).unwrap();
    m["index"] = serde_json::json!({
        "kind": "sqlite", "started_at": m["started_at"], "finished_at": m["started_at"],
        "tool": "SQLite 3", "rows": {}, "files": []
    });
    std::fs::write(bk.join("manifest.json"), m.to_string()).unwrap();

    let (code, text) = run(
        &[
            "restore",
            "--config",
            cfg.to_str().unwrap(),
            "--node",
            "js",
            "--force",
        ],
        &[&bk],
    );
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("node js: the backup holds a ceramic-one store")
            && text.contains("`ceramic_one_store` is not set"),
        "{text}"
    );
    assert!(!root.path().join("js").exists(), "something was written");
}
