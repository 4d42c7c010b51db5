//! One incremental `watch` cycle after 0.1 % of every node's rows changed (and 10 of them got
//! another tip on node a), against the full cycle before it: the real `ceramic-audit watch`,
//! two cycles, its own reports' durations.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value as Json};

use super::pg::TempPg;

fn read(path: &Path) -> Json {
    serde_json::from_slice(&std::fs::read(path).expect("watch output")).expect("JSON")
}

fn cycles(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("cycle-"))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Runs the two cycles with `d` divergences standing; returns the row for the report.
pub async fn incremental_cycle(
    pgs: &[TempPg],
    model: &str,
    config: &Path,
    work: &Path,
    n: i64,
    d: u64,
) -> Json {
    // A fresh watermark, so the rows written when the tables were built are out of scope.
    for pg in pgs {
        pg.execute(&format!(
            "UPDATE \"{model}\" SET updated_at = now() WHERE n = 1"
        ))
        .await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let dir = work.join("watch");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ceramic-audit"))
        .args([
            "watch", "--every", "40s", "--jitter", "0", "--cycles", "2", "--margin", "1s",
        ])
        .args([
            "--settle-seconds",
            "0",
            "--timeout-seconds",
            "600",
            "--config",
        ])
        .arg(config)
        .arg("--dir")
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start watch");
    while cycles(&dir).is_empty() {
        assert!(
            child.try_wait().expect("watch").is_none(),
            "watch stopped early"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // 0.1 % of the rows change on every node; 10 of them get another tip on a only.
    let churn = 1000;
    for pg in pgs {
        pg.execute(&format!(
            "UPDATE \"{model}\" SET updated_at = now() WHERE n % {churn} = 7"
        ))
        .await;
    }
    let new_step = (n / 10).max(1);
    pgs[0]
        .execute(&format!(
            "UPDATE \"{model}\" SET tip = tip || 'w' WHERE n % {new_step} = 7"
        ))
        .await;
    let new = (1..=n).filter(|i| i % new_step == 7).count() as u64;
    let status = child.wait().expect("watch");
    assert!(status.success(), "watch failed: {status}");
    pgs[0]
        .execute(&format!(
            "UPDATE \"{model}\" SET tip = left(tip, -1) WHERE n % {new_step} = 7"
        ))
        .await;
    let runs = cycles(&dir);
    assert_eq!(runs.len(), 2, "two cycles");
    let full = read(&runs[0].join("report.json"));
    let inc = read(&runs[1].join("report.json"));
    let info = read(&runs[1].join("cycle.json"));
    assert_eq!(info["type"], "incremental", "{info}");
    let found = inc["models"][0]["differing_streams"].as_u64().unwrap_or(0);
    assert_eq!(
        found,
        d + new,
        "the incremental cycle found the standing and the new divergences"
    );
    let (f, i) = (
        full["duration_ms"].as_f64().unwrap_or(f64::NAN),
        inc["duration_ms"].as_f64().unwrap_or(f64::NAN),
    );
    json!({
        "changed_rows_per_node": (1..=n).filter(|i| i % churn == 7).count(),
        "new_divergences": new,
        "standing_divergences": d,
        "scope_streams": info["scope_streams"],
        "full_cycle_ms": f,
        "incremental_cycle_ms": i,
        "incremental_share_of_full": i / f,
        "differing_streams_found": found,
    })
}
