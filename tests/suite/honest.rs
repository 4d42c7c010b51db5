//! Issue 12, point 4, "nothing is swallowed": what the audit, `repair` and `watch` could not
//! see or do is in the report and the exit code, not only in a log line. Real Postgres servers
//! and the real binary.

use std::path::Path;

use ceramic_audit::audit::{self, AuditOptions};
use ceramic_audit::config::ClusterConfig;
use ceramic_audit::report::Kind;
use ceramic_audit::source::Mode;

use crate::common::composedb::{model_id, pg_model, Row};
use crate::common::pg::TempPg;

/// A cluster file for `nodes` (name, index location, extra TOML lines).
fn config(dir: &Path, nodes: &[(&str, String, &str)]) -> ClusterConfig {
    let mut text = String::from("cluster = \"test\"\n");
    for (name, index, extra) in nodes {
        text.push_str(&format!(
            "\n[[nodes]]\nname = \"{name}\"\nindex = \"{index}\"\n{extra}\n"
        ));
    }
    let path = dir.join("cluster.toml");
    std::fs::write(&path, &text).expect("write cluster.toml");
    ClusterConfig::load(&path).expect("valid cluster.toml")
}

/// More invalid rows than a Postgres node lists (1,000 per model), held alike by both nodes
/// (so only the row check can see them, not the comparison): the report lists 1,000 per node,
/// counts the rest per node, and is incomplete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_rows_beyond_those_listed_are_counted_and_make_the_report_incomplete() {
    let model = model_id("many-invalid");
    let rows: Vec<Row> = (0..20).map(|i| Row::new(i, 1)).collect();
    let pgs = [TempPg::start(), TempPg::start()];
    for pg in &pgs {
        pg_model(pg, &model, &[], &rows).await;
        // 1,234 rows whose stream id is no StreamID, the same on both nodes.
        pg.execute(&format!(
            "INSERT INTO \"{model}\" (stream_id, controller_did, stream_content, tip) \
             SELECT 'not-a-stream-id-' || g, 'did:key:x', '{{}}', 'bafyx' \
             FROM generate_series(1, 1234) g"
        ))
        .await;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = config(
        dir.path(),
        &[("a", pgs[0].dsn(), ""), ("b", pgs[1].dsn(), "")],
    );
    let options = AuditOptions {
        mode: Mode::Pushdown,
        ..AuditOptions::default()
    };
    let report = audit::run(&cfg, &options).await;
    for node in ["a", "b"] {
        let listed = report
            .divergences
            .iter()
            .filter(|d| d.kind == Kind::InvalidRow && d.node == node)
            .count();
        assert_eq!(listed, 1000, "{node}: {:#?}", report.counts);
    }
    let m = &report.models[0];
    let counted: Vec<(&str, u64)> = m
        .invalid_rows_not_listed
        .iter()
        .map(|(n, c)| (n.as_str(), *c))
        .collect();
    assert_eq!(counted, [("a", 234), ("b", 234)], "the rest is counted");
    assert!(
        !report.complete,
        "a list cut short is not a complete report"
    );
    let json = String::from_utf8(ceramic_audit::report::json::render(&report).expect("renders"))
        .expect("utf-8");
    assert!(json.contains("\"invalid_rows_not_listed\""), "{json}");
    let summary = ceramic_audit::report::summary::render(&report);
    assert!(
        summary.contains("node a, model") && summary.contains("234 more invalid rows"),
        "{summary}"
    );
}

/// `--verify-state` on a node whose API fails: the report is incomplete and names the node and
/// the model it could not verify (before, a row said so but the report claimed completeness).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verify_state_read_failure_makes_the_report_incomplete() {
    use crate::common::http::{FakeNode, Reply};
    let model = model_id("verify-fails");
    let rows: Vec<Row> = (0..30).map(|i| Row::new(i, 1)).collect();
    let pgs = [TempPg::start(), TempPg::start()];
    for pg in &pgs {
        pg_model(pg, &model, &[], &rows).await;
    }
    let api =
        FakeNode::start(|_, _| Reply::Full(400, r#"{"error":"the node is shutting down"}"#.into()))
            .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let api_line = format!("api_url = \"{}\"", api.url);
    let cfg = config(
        dir.path(),
        &[("a", pgs[0].dsn(), &api_line), ("b", pgs[1].dsn(), "")],
    );
    let options = AuditOptions {
        verify_state: ceramic_audit::audit::verify::VerifyState::All,
        ..AuditOptions::default()
    };
    let report = audit::run(&cfg, &options).await;
    assert!(!report.complete, "{:#?}", report.divergences);
    let row = report
        .divergences
        .iter()
        .find(|d| d.kind == Kind::Unreachable)
        .unwrap_or_else(|| panic!("no row says what was not verified: {report:#?}"));
    assert_eq!(
        (row.node.as_str(), row.model.as_str()),
        ("a", model.as_str())
    );
    assert!(
        row.detail.contains("--verify-state") && row.detail.contains("30 rows not verified"),
        "{}",
        row.detail
    );
    assert!(
        api.requests()
            .iter()
            .any(|r| r.target.contains("multiqueries")),
        "the node was asked"
    );
}

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cluster-3/cluster.toml")
}

fn watch(dir: &Path, extra: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ceramic-audit"))
        .args(["watch", "--every", "1s", "--jitter", "0", "--config"])
        .arg(fixture())
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .env_remove("CERAMIC_AUDIT_QUIET")
        .output()
        .expect("the binary runs")
}

/// `watch --repair` whose journal cannot be opened: the cycle says so in `cycle.json`, its
/// report is incomplete, and a `--cycles 1` run exits 2 (before: a warning, exit 0).
#[test]
fn watch_repair_with_a_journal_it_cannot_open_is_incomplete_and_exits_2() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("watch");
    // A directory where the journal file should be: it cannot be opened for appending.
    std::fs::create_dir_all(dir.join("repair-journal.jsonl")).expect("mkdir");
    // b misses a stream in the fixture: due for repair after one cycle.
    let out = watch(
        &dir,
        &[
            "--cycles",
            "1",
            "--repair",
            "--nodes",
            "b",
            "--repair-after",
            "1",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stdout.contains("1 cycle(s) incomplete"), "{stdout}");
    assert!(stderr.contains("auto-repair did not run"), "{stderr}");
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("latest/cycle.json")).expect("cycle.json"))
            .expect("json");
    let why = info["repair_error"].as_str().expect("repair_error set");
    assert!(why.contains("repair-journal.jsonl"), "{why}");
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("latest/report.json")).expect("report.json"),
    )
    .expect("json");
    assert_eq!(report["complete"], false);
    // The cycle directory is named as README, reports/README.md and `watch --help` say.
    let name = std::fs::read_link(dir.join("latest")).expect("latest is a symlink");
    let name = name.to_string_lossy();
    let shape = name
        .bytes()
        .map(|b| if b.is_ascii_digit() { b'9' } else { b })
        .collect::<Vec<_>>();
    assert_eq!(
        String::from_utf8_lossy(&shape),
        "cycle-9999-99-99T99-99-99.999Z-999999",
        "{name}"
    );
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_ceramic-audit"))
        .args(["watch", "--help"])
        .output()
        .expect("help");
    let named = "cycle-<UTC time>-<n>/";
    assert!(String::from_utf8_lossy(&help.stdout).contains(named));
    for doc in ["README.md", "reports/README.md"] {
        let text =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(doc)).expect("doc");
        assert!(text.contains(named), "{doc}");
        assert!(
            text.contains("cycle-2026-11-29T21-40-33.607Z-000001"),
            "{doc}"
        );
    }
}

/// `watch --cycles 2` in which every cycle fails (its report cannot be put in place): exit 2
/// and the count on stdout (before: exit 0, the failures only in the log).
#[test]
fn watch_cycles_that_all_fail_exit_2() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("watch");
    // `latest` a non-empty directory: the symlink cannot be renamed over it.
    std::fs::create_dir_all(dir.join("latest/keep")).expect("mkdir");
    let out = watch(&dir, &["--cycles", "2"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("2 cycle(s) failed"), "{stdout}");
}

/// The fixture's two SQLite nodes (`a`, `b`: b misses a stream a holds), each with `extra`
/// TOML lines, plus `more` nodes; cluster "example" like the fixture's reports.
fn fixture_config(dir: &Path, extra_a: &str, extra_b: &str, more: &str) -> std::path::PathBuf {
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cluster-3");
    let text = format!(
        "cluster = \"example\"\n\n[[nodes]]\nname = \"a\"\nindex = \"sqlite://{}\"\n{extra_a}\n\n\
         [[nodes]]\nname = \"b\"\nindex = \"sqlite://{}\"\n{extra_b}\n{more}",
        fx.join("a.sqlite").display(),
        fx.join("b.sqlite").display()
    );
    let path = dir.join("cluster.toml");
    std::fs::write(&path, text).expect("write cluster.toml");
    path
}

fn repair(config: &Path, out: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_ceramic-audit"))
        .args([
            "repair",
            "--nodes",
            "b",
            "--settle-seconds",
            "0",
            "--config",
        ])
        .arg(config)
        .arg("--out")
        .arg(out)
        .args(extra)
        .env_remove("CERAMIC_AUDIT_QUIET")
        .output()
        .expect("the binary runs");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    (run.status.code(), text)
}

/// `repair` whose own audit could not read a node: exit 2 and a note (before: exit 0, the
/// plan silently missing whatever that node would have shown).
#[test]
fn a_repair_whose_audit_was_incomplete_exits_2() {
    let tmp = tempfile::tempdir().expect("temp dir");
    // Nothing listens on port 1: node c is unreachable.
    let config = fixture_config(
        tmp.path(),
        "",
        "",
        "\n[[nodes]]\nname = \"c\"\nindex = \"postgres://ceramic@127.0.0.1:1/ceramic\"\n",
    );
    let (code, text) = repair(
        &config,
        &tmp.path().join("out"),
        &["--timeout-seconds", "5"],
    );
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("note: the audit was incomplete"), "{text}");
    // No api_url in the fixture: everything is left alone, and said so plainly.
    assert!(text.contains("no action planned, "), "{text}");
    assert!(!text.contains("0 action(s) planned"), "{text}");
    let plan: serde_json::Value = serde_json::from_slice(
        &std::fs::read(tmp.path().join("out/plan.json")).expect("plan.json written"),
    )
    .expect("json");
    assert!(plan.as_array().is_some_and(|p| !p.is_empty()), "{plan}");
}

/// `repair` that cannot read the commits it would send (the source node's API fails): the
/// action is skipped, marked `read_error` in plan.json, and the exit code is 2 (before: a
/// "left alone" line and exit 0, as if by policy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_skipped_for_read_errors_make_repair_exit_2() {
    use crate::common::http::{FakeNode, Reply};
    let api = FakeNode::start(|_, _| Reply::Full(400, r#"{"error":"no such thing"}"#.into())).await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let line = format!("api_url = \"{}\"", api.url);
    let config = fixture_config(tmp.path(), &line, &line, "");
    // The fixture's recorded report: b misses a stream that a holds.
    let audit_dir = tmp.path().join("audit");
    let audited = std::process::Command::new(env!("CARGO_BIN_EXE_ceramic-audit"))
        .args([
            "audit",
            "--no-logs",
            "--settle-seconds",
            "0",
            "-q",
            "--config",
        ])
        .arg(fixture())
        .arg("--out")
        .arg(&audit_dir)
        .status()
        .expect("audit runs");
    assert_eq!(audited.code(), Some(1), "the fixture diverges");
    let from = audit_dir.join("report.json");
    let (code, text) = repair(
        &config,
        &tmp.path().join("out"),
        &["--from-report", from.to_str().expect("utf-8")],
    );
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("skipped because a node could not be read"),
        "{text}"
    );
    let plan = std::fs::read_to_string(tmp.path().join("out/plan.json")).expect("plan.json");
    assert!(plan.contains("\"read_error\": true"), "{plan}");
    assert!(plan.contains("cannot read the commits from a"), "{plan}");
}
