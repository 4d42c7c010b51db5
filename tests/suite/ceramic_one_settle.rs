//! The ceramic-one settle re-check (issue 15: "a store being written while audited gives no false
//! divergence"): events that reach a node while the audit waits are `in_flight`, not
//! `missing_event`, and nothing else changes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::cargo::CommandCargoExt;
use rusqlite::Connection;
use serde_json::Value as Json;

fn fixture(node: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/ceramic-one-3")
        .join(node)
        .join("db.sqlite3")
}

/// Fresh copies of the three fixture stores (written now, so the audit treats them as live)
/// and a cluster file naming them.
fn copies(root: &Path) -> PathBuf {
    for node in ["a", "b", "c"] {
        std::fs::create_dir_all(root.join(node)).unwrap();
        std::fs::copy(fixture(node), root.join(node).join("db.sqlite3")).unwrap();
    }
    let cfg = root.join("cluster.toml");
    std::fs::write(
        &cfg,
        "cluster = \"settle\"\n\
         [[nodes]]\nname = \"a\"\nceramic_one_store = \"a\"\n\
         [[nodes]]\nname = \"b\"\nceramic_one_store = \"b\"\n\
         [[nodes]]\nname = \"c\"\nceramic_one_store = \"c\"\n",
    )
    .unwrap();
    cfg
}

/// What Recon would do for node `to`: every event `from` holds and `to` lacks, with its blocks
/// and links, in one transaction, delivered in order after `to`'s own events.
fn sync_events(from: &Path, to: &Path) {
    let c = Connection::open(to.join("db.sqlite3")).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c.execute(
        "ATTACH ?1 AS src",
        [from.join("db.sqlite3").to_str().unwrap()],
    )
    .unwrap();
    c.execute_batch(
        "BEGIN IMMEDIATE;
         INSERT INTO main.ceramic_one_block SELECT * FROM src.ceramic_one_block
           WHERE multihash NOT IN (SELECT multihash FROM main.ceramic_one_block);
         CREATE TEMP TABLE arriving AS SELECT * FROM src.ceramic_one_event
           WHERE cid NOT IN (SELECT cid FROM main.ceramic_one_event);
         UPDATE temp.arriving SET delivered = CASE WHEN delivered IS NULL THEN NULL
           ELSE (SELECT coalesce(max(delivered), 0) FROM main.ceramic_one_event) + rowid END;
         INSERT INTO main.ceramic_one_event SELECT * FROM temp.arriving;
         INSERT OR IGNORE INTO main.ceramic_one_event_block SELECT * FROM src.ceramic_one_event_block
           WHERE event_cid IN (SELECT cid FROM temp.arriving);
         COMMIT;",
    )
    .unwrap();
}

fn audit(cfg: &Path, out: &Path, settle: &str) -> std::process::Child {
    std::process::Command::cargo_bin("ceramic-audit")
        .unwrap()
        .args(["audit", "-q", "--settle-seconds", settle, "--config"])
        .arg(cfg)
        .arg("--out")
        .arg(out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

type Row = (String, String, String, String);

fn rows(out: &Path) -> Vec<Row> {
    let report: Json =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let field = |d: &Json, k: &str| d[k].as_str().unwrap_or_default().to_string();
    report["divergences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                field(d, "model"),
                field(d, "stream_id"),
                field(d, "node"),
                field(d, "kind"),
            )
        })
        .collect()
}

fn finished(child: std::process::Child) -> i32 {
    let out = child.wait_with_output().unwrap();
    let code = out.status.code().unwrap_or(-1);
    assert!(
        code == 0 || code == 1,
        "audit exited {code}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    code
}

#[test]
fn events_arriving_during_the_settle_pause_are_in_flight_not_missing() {
    let root = tempfile::tempdir().unwrap();
    let cfg = copies(root.path());

    // The first look alone: what the stores show before anything moves.
    let before = root.path().join("before");
    finished(audit(&cfg, &before, "0"));
    let first = rows(&before);
    let missing_on_c: Vec<&Row> = first
        .iter()
        .filter(|r| r.2 == "c" && r.3 == "missing_event")
        .collect();
    assert!(
        missing_on_c.len() >= 2,
        "the fixture lost the case: {first:?}"
    );

    // The audit under test: a's events reach c half way through its settle pause (the first
    // look takes well under a second on this fixture; the pause is 6 s).
    let during = root.path().join("during");
    let child = audit(&cfg, &during, "6");
    std::thread::sleep(Duration::from_secs(3));
    sync_events(&root.path().join("a"), &root.path().join("c"));
    finished(child);
    let got = rows(&during);

    // What the stores show once c caught up, looked at alone.
    let after = root.path().join("after");
    finished(audit(&cfg, &after, "0"));
    let still: BTreeSet<Row> = rows(&after).into_iter().collect();

    // Each first-look row either stands (the stores still show it, or its kind cannot settle)
    // or is `in_flight` on the same node and stream; nothing is added or lost.
    let settles = [
        "missing_event",
        "undelivered_event",
        "state_missing",
        "not_interested",
    ];
    let expected: BTreeSet<Row> = first
        .iter()
        .map(|r| {
            if settles.contains(&r.3.as_str()) && !still.contains(r) {
                (r.0.clone(), r.1.clone(), r.2.clone(), "in_flight".into())
            } else {
                r.clone()
            }
        })
        .collect();
    assert_eq!(got.len(), first.len(), "{got:?}");
    assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), expected);
    // What an operator checks: c's missing events that arrived are no longer "missing".
    for r in missing_on_c {
        assert!(
            expected.contains(&(r.0.clone(), r.1.clone(), "c".into(), "in_flight".into())),
            "{r:?} should have settled"
        );
    }
}
