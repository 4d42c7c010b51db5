//! What an operator would use instead of the audit, each run on the same tables and checked to
//! find the same streams: a hand-optimised COPY baseline (in this process), the naive
//! `psql \copy | sort | comm` script, and reladiff's hashdiff (pairs a–b and a–c).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use futures::{pin_mut, StreamExt};
use serde_json::{json, Value as Json};

/// Columns after `stream_id` each method compares: the tip, or every column the audit compares
/// with `--compare all` (jsonb content as text, anchor times, the custom column).
pub fn columns(all: bool, custom: &str) -> String {
    if all {
        format!(
            "tip, controller_did, stream_content::text, last_anchored_at, first_anchored_at, \"{custom}\""
        )
    } else {
        "tip".into()
    }
}

/// The COPY baseline: every node's rows copied out at once, each parsed on its own thread and
/// joined in hash maps that borrow the copied bytes.
pub async fn copy_baseline(dsns: &[String], model: &str, cols: &str, expected: u64) -> Json {
    let started = Instant::now();
    let copies = dsns.iter().map(|dsn| {
        let dsn = dsn.clone();
        let sql = format!("COPY (SELECT stream_id, {cols} FROM \"{model}\") TO STDOUT");
        tokio::spawn(async move {
            let (client, conn) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(conn);
            let stream = client.copy_out(sql.as_str()).await.expect("COPY out");
            pin_mut!(stream);
            let mut buf: Vec<u8> = Vec::new();
            while let Some(chunk) = stream.next().await {
                buf.extend_from_slice(&chunk.expect("COPY data"));
            }
            buf
        })
    });
    let buffers: Vec<Vec<u8>> = futures::future::join_all(copies)
        .await
        .into_iter()
        .map(|r| r.expect("copy task"))
        .collect();
    let maps: Vec<HashMap<&[u8], &[u8]>> = std::thread::scope(|s| {
        let handles: Vec<_> = buffers
            .iter()
            .map(|buf| {
                s.spawn(move || {
                    let mut map = HashMap::with_capacity(buf.len() / 120);
                    for line in buf.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                        if let Some(tab) = line.iter().position(|&b| b == b'\t') {
                            map.insert(&line[..tab], &line[tab + 1..]);
                        }
                    }
                    map
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("parse"))
            .collect()
    });
    let mut differing = 0u64;
    for (i, map) in maps.iter().enumerate() {
        for (k, v) in map {
            // Count each differing key once: at the first node that holds it.
            if maps[..i].iter().any(|m| m.contains_key(k)) {
                continue;
            }
            if maps.iter().any(|m| m.get(k) != Some(v)) {
                differing += 1;
            }
        }
    }
    assert_eq!(
        differing, expected,
        "the COPY baseline found every divergence"
    );
    json!({
        "wall_s": started.elapsed().as_secs_f64(),
        "rounds": 1,
        "bytes_per_node": buffers.iter().map(Vec::len).max().unwrap_or(0),
        "differing_streams": differing,
    })
}

/// The naive script (benches/naive_audit.sh), as a child process.
pub fn naive(dsns: &[String], model: &str, cols: &str, expected: u64) -> Json {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/naive_audit.sh");
    let started = Instant::now();
    let out = Command::new("sh")
        .arg(script)
        .arg(model)
        .arg(cols)
        .args(dsns)
        .output()
        .expect("run naive_audit.sh");
    let wall = started.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "naive_audit.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |name: &str| -> u64 {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::MAX)
    };
    let differing = field("differing=");
    assert_eq!(
        differing, expected,
        "the naive script found every divergence"
    );
    json!({
        "wall_s": wall,
        "rounds": 1,
        "bytes_per_node": field("bytes="),
        "differing_streams": differing,
    })
}

/// reladiff's hashdiff of node a against each other node, key `stream_id`, one pair after the
/// other (as an operator would run it); the differing stream ids of all pairs, counted once.
pub fn reladiff(
    exe: &str,
    dsns: &[String],
    model: &str,
    all: bool,
    custom: &str,
    expected: u64,
) -> Json {
    let cols: Vec<&str> = if all {
        vec![
            "tip",
            "controller_did",
            "stream_content",
            "last_anchored_at",
            "first_anchored_at",
            custom,
        ]
    } else {
        vec!["tip"]
    };
    let started = Instant::now();
    let mut streams: HashSet<String> = HashSet::new();
    let mut pairs = Vec::new();
    for other in &dsns[1..] {
        let t = Instant::now();
        // reladiff knows the `postgresql://` scheme only (and exits 0 on `postgres://`).
        let url = |dsn: &str| dsn.replacen("postgres://", "postgresql://", 1);
        let mut cmd = Command::new(exe);
        cmd.arg(url(&dsns[0])).arg(model).arg(url(other)).arg(model);
        cmd.args(["-k", "stream_id", "--case-sensitive", "--json"]);
        // reladiff prints through rich, which wraps at the terminal width (80 without one).
        cmd.env("COLUMNS", "1000000");
        for c in &cols {
            cmd.args(["-c", c]);
        }
        let out = cmd.output().expect("run reladiff");
        assert!(
            out.status.success(),
            "reladiff failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // JSONL `["+"|"-", [key, columns…]]`, one line per differing row and side.
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Ok(v) = serde_json::from_str::<Json>(line) else {
                continue;
            };
            if let Some(id) = v[1][0].as_str() {
                streams.insert(id.to_string());
            }
        }
        pairs.push(t.elapsed().as_secs_f64());
    }
    assert_eq!(
        streams.len() as u64,
        expected,
        "reladiff found every divergence"
    );
    json!({
        "wall_s": started.elapsed().as_secs_f64(),
        "pair_wall_s": pairs,
        "differing_streams": streams.len(),
    })
}
