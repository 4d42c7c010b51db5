//! `ceramic-audit audit` and `crawl` as an operator runs them, on the recorded example cluster
//! (`fixtures/cluster-3`: two SQLite indexes and a snapshot) and on broken configs.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use ceramic_audit::config::{redact_dsn, ClusterConfig, ConfigError};
use serde_json::Value as Json;

fn bin() -> Command {
    let mut cmd = Command::cargo_bin("ceramic-audit").expect("binary is built");
    // Keep the settle re-check, but short: the example files do not change under the test.
    cmd.env("CERAMIC_AUDIT_SETTLE_SECONDS", "0.2");
    cmd
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cluster-3/cluster.toml")
}

#[test]
fn the_example_cluster_is_divergent_and_both_reports_are_written() {
    let out = tempfile::tempdir().expect("temp dir");
    let assert = bin()
        .args(["audit", "--config"])
        .arg(example())
        .arg("--out")
        .arg(out.path())
        .env_remove("CERAMIC_AUDIT_FAIL_ON")
        .assert()
        .code(1);
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    assert!(stdout.contains("cluster example: DIVERGENT"), "{stdout}");
    assert!(stdout.contains("tip_mismatch       2"), "{stdout}");

    let report: Json = serde_json::from_slice(
        &std::fs::read(out.path().join("report.json")).expect("report.json written"),
    )
    .expect("report.json is JSON");
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["complete"], true);
    assert_eq!(
        report["counts"]["missing_stream"], 1,
        "the malformed id is no missing_stream"
    );
    assert_eq!(report["counts"]["tip_mismatch"], 2);
    assert_eq!(report["counts"]["content_mismatch"], 1);
    assert_eq!(report["counts"]["invalid_row"], 1);
    assert_eq!(report["counts"]["model_not_indexed"], 1);

    let mut csv = csv::Reader::from_path(out.path().join("divergences.csv")).expect("csv written");
    let headers = csv.headers().expect("header").clone();
    assert_eq!(
        headers.iter().collect::<Vec<_>>(),
        [
            "model",
            "stream_id",
            "node",
            "kind",
            "tip",
            "majority_tip",
            "agreeing_nodes",
            "detail",
            "missing_commits",
            "ahead_node",
            "fork_point",
            "predicted_winner",
            "likely_cause",
            "repair_hint",
            "first_seen",
            "cycles",
            "content_cause"
        ]
    );
    let rows: Vec<csv::StringRecord> = csv.records().map(|r| r.expect("row")).collect();
    // 6: the malformed id on b is one invalid_row, not also two missing_stream on a and c.
    assert_eq!(rows.len(), 6);
    let stale: Vec<&csv::StringRecord> = rows.iter().filter(|r| &r[3] == "tip_mismatch").collect();
    assert!(
        stale.iter().all(|r| &r[2] == "b" && &r[6] == "a;c"),
        "{stale:?}"
    );
    // No temp files are left behind.
    let names: Vec<String> = std::fs::read_dir(out.path())
        .expect("out dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn fail_on_lets_a_scheduled_job_choose_what_counts() {
    let out = tempfile::tempdir().expect("temp dir");
    // Only invalid rows count... and there is one.
    bin()
        .args(["audit", "-q", "--fail-on", "invalid_row", "--config"])
        .arg(example())
        .arg("--out")
        .arg(out.path())
        .assert()
        .code(1);
    // Unreachable is never among them, and nothing else is asked for: exit 0.
    bin()
        .args(["audit", "-q", "--fail-on", "unreachable", "--config"])
        .arg(example())
        .arg("--out")
        .arg(out.path())
        .assert()
        .code(0)
        .stdout("");
}

#[test]
fn out_dash_prints_the_report_on_stdout() {
    let assert = bin()
        .args(["audit", "--format", "json", "--out", "-", "--config"])
        .arg(example())
        .assert()
        .code(1);
    let json: Json = serde_json::from_slice(&assert.get_output().stdout).expect("JSON on stdout");
    assert_eq!(json["cluster"], "example");
    let assert = bin()
        .args(["audit", "--format", "csv", "--out", "-", "--config"])
        .arg(example())
        .assert()
        .code(1);
    let text = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    assert!(text.starts_with("model,stream_id,node,kind"), "{text}");
}

#[test]
fn crawl_then_audit_the_snapshots_gives_the_same_report() {
    let dir = tempfile::tempdir().expect("temp dir");
    for node in ["a", "b", "c"] {
        bin()
            .args(["crawl", "--node", node, "--config"])
            .arg(example())
            .arg("--out")
            .arg(dir.path().join(format!("{node}.json")))
            .assert()
            .success();
    }
    let cfg = dir.path().join("cluster.toml");
    std::fs::write(
        &cfg,
        "cluster = \"example\"\n[[nodes]]\nname = \"a\"\nindex = \"snapshot:a.json\"\n\
         [[nodes]]\nname = \"b\"\nindex = \"snapshot:b.json\"\n[[nodes]]\nname = \"c\"\nindex = \"snapshot:c.json\"\n",
    )
    .expect("write config");
    let run = |config: &Path| {
        let a = bin()
            .args(["audit", "--format", "json", "--out", "-", "--config"])
            .arg(config)
            .assert()
            .code(1);
        let mut json: Json = serde_json::from_slice(&a.get_output().stdout).expect("JSON");
        json["divergences"].take()
    };
    assert_eq!(run(&example()), run(&cfg));
}

fn write_config(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cluster.toml");
    std::fs::write(&path, text).expect("write config");
    (dir, path)
}

#[test]
fn config_mistakes_name_the_key_and_the_line() {
    let cases = [
        (
            "cluster = \"x\"\n[[nodes]]\nname = \"a\"\nindex = \"postgres://u:hunter2@db/x\"\n[[nodes]]\nname = \"b\"\nindex = \"sqlite://b\"\n",
            "cluster.toml:4: `nodes.index`",
            "carries a password",
        ),
        (
            "cluster = \"x\"\n[[nodes]]\nname = \"a\"\nindex = \"sqlite://a\"\n",
            "`nodes`",
            "at least 2 nodes",
        ),
        (
            "cluster = \"x\"\n[[nodes]]\nname = \"a\"\nindex = \"sqlite://a\"\n[[nodes]]\nname = \"a\"\nindex = \"mysql://b\"\n",
            "cluster.toml:6: `nodes.name`",
            "appears twice",
        ),
        (
            "cluster = \"x\"\n[[nodes]]\nname = \"a\"\nindex = \"sqlite://a\"\n[[nodes]]\nname = \"b\"\nindex = \"mysql://b\"\n",
            "cluster.toml:7: `nodes.index`",
            "expected postgres://",
        ),
        (
            "cluster = \"x\"\nmodels = [\"nope\"]\n[[nodes]]\nname = \"a\"\nindex = \"sqlite://a\"\n[[nodes]]\nname = \"b\"\nindex = \"sqlite://b\"\n",
            "cluster.toml:2: `models`",
            "not a model StreamID",
        ),
        ("cluster = \"x\"\nnodez = 3\n", "cluster.toml", "nodez"),
        // Each entry of a multi-line list is named by its own line.
        (
            "cluster = \"x\"\nmodels = [\n  \"kjzl6hvfrbw6c97a2vwsju63s4gx6sd6y8ao834gf0vd2ru7ywzbt4j118lcs0n\",\n  \"ceramic://kjzl6hvfrbw6c97a2vwsju63s4gx6sd6y8ao834gf0vd2ru7ywzbt4j118lcs0n\",\n]\n[[nodes]]\nname = \"a\"\nindex = \"sqlite://a\"\n[[nodes]]\nname = \"b\"\nindex = \"sqlite://b\"\n",
            "cluster.toml:4: `models`",
            "not a URL",
        ),
        (
            "cluster = \"x\"\nmodels = [\"kjzl6kcym7w8y4xjeh78wqgujhbugi8n5z4b7eyzlbussxqnirlkhdoqhsme1kn\"]\n[[nodes]]\nname = \"a\"\nindex = \"sqlite://a\"\n[[nodes]]\nname = \"b\"\nindex = \"sqlite://b\"\n",
            "cluster.toml:2: `models`",
            "not of a model",
        ),
        (
            "cluster = \"x\"\n[[nodes]]\nname = \"a\"\nindex = \"postgres://u@db/x\"\npassword_env = \"CERAMIC_AUDIT_TEST_UNSET_PASSWORD\"\n[[nodes]]\nname = \"b\"\nindex = \"sqlite://b\"\n",
            "cluster.toml:5: `nodes.password_env`",
            "CERAMIC_AUDIT_TEST_UNSET_PASSWORD is not set",
        ),
        // A TOML syntax error: `file:line:` and toml's caret diagram, on lines of its own.
        (
            "cluster = \"x\"\nmodels = [\"a\"\n",
            "cluster.toml:2: ",
            "\n  |",
        ),
    ];
    for (text, location, message) in cases {
        let (_dir, path) = write_config(text);
        let err: ConfigError = ClusterConfig::load(&path).expect_err("invalid config");
        let shown = err.to_string();
        assert!(
            shown.contains(location) && shown.contains(message),
            "{shown}"
        );
        assert!(
            !shown.contains("hunter2"),
            "the password is never printed: {shown}"
        );
        // The CLI exits 2 with that message.
        let a = bin()
            .args(["audit", "--config"])
            .arg(&path)
            .assert()
            .code(2);
        let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
        assert!(err.contains(message), "{err}");
    }
    let a = bin()
        .args(["audit", "--config", "/nonexistent/cluster.toml"])
        .assert()
        .code(2);
    assert!(String::from_utf8_lossy(&a.get_output().stderr).contains("cannot read config"));
}

#[test]
fn dsns_are_redacted() {
    assert_eq!(
        redact_dsn("postgres://u:secret@h:5432/db"),
        "postgres://u:***@h:5432/db"
    );
    assert_eq!(redact_dsn("postgres://u@h/db"), "postgres://u@h/db");
    assert_eq!(redact_dsn("sqlite:///x"), "sqlite:///x");
}

#[test]
fn an_unreadable_node_makes_the_audit_incomplete_exit_2() {
    let (dir, path) = write_config(&format!(
        "cluster = \"x\"\n[[nodes]]\nname = \"a\"\nindex = \"sqlite://{}\"\n[[nodes]]\nname = \"gone\"\nindex = \"sqlite://nope.sqlite\"\n\
         [[nodes]]\nname = \"b\"\nindex = \"sqlite://{}\"\n",
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cluster-3/a.sqlite").display(),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cluster-3/a.sqlite").display(),
    ));
    let a = bin()
        .args(["audit", "--config"])
        .arg(&path)
        .arg("--out")
        .arg(dir.path().join("r"))
        .assert()
        .code(2);
    let stdout = String::from_utf8_lossy(&a.get_output().stdout).into_owned();
    assert!(
        stdout.contains("INCOMPLETE") && stdout.contains("UNREACHABLE"),
        "{stdout}"
    );
    let report: Json =
        serde_json::from_slice(&std::fs::read(dir.path().join("r/report.json")).expect("report"))
            .expect("json");
    assert_eq!(report["complete"], false);
    assert_eq!(report["counts"]["unreachable"], 1);
    // a and b hold the same index: apart from the unreachable node, nothing differs.
    assert_eq!(report["divergences"].as_array().map(Vec::len), Some(1));
}

/// A snapshot file edited by hand or damaged is refused, not compared: a stream listed twice, a
/// model key that is not a model StreamID.
#[test]
fn a_snapshot_with_a_duplicated_row_or_a_bad_model_key_is_refused() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cluster-3");
    let text = std::fs::read_to_string(fixtures.join("c.snapshot.json")).expect("snapshot");
    let mut json: Json = serde_json::from_str(&text).expect("json");
    let rows = json["models"]["kjzl6hvfrbw6c97a2vwsju63s4gx6sd6y8ao834gf0vd2ru7ywzbt4j118lcs0n"]
        ["rows"]
        .as_array_mut()
        .expect("rows");
    let first = rows[0].clone();
    rows.push(first);
    let duplicated = serde_json::to_string(&json).expect("json");
    let bad_key = text.replace(
        "kjzl6hvfrbw6c97a2vwsju63s4gx6sd6y8ao834gf0vd2ru7ywzbt4j118lcs0n",
        "ceramic://kjzl6hvfrbw6c97a2vwsju63s4gx6sd6y8ao834gf0vd2ru7ywzbt4j118lcs0n",
    );
    for (snapshot, message) in [
        (duplicated, "listed twice"),
        (bad_key, "is not a model StreamID"),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("c.json"), snapshot).expect("write");
        let config = format!(
            "cluster = \"x\"\n[[nodes]]\nname = \"a\"\nindex = \"sqlite://{}\"\n[[nodes]]\nname = \"c\"\nindex = \"snapshot:c.json\"\n",
            fixtures.join("a.sqlite").display()
        );
        std::fs::write(dir.path().join("cluster.toml"), config).expect("write");
        let a = bin()
            .args(["audit", "--config"])
            .arg(dir.path().join("cluster.toml"))
            .arg("--out")
            .arg(dir.path().join("out"))
            .assert()
            .code(2);
        let stdout = String::from_utf8_lossy(&a.get_output().stdout).into_owned();
        assert!(
            stdout.contains("UNREACHABLE") && stdout.contains(message),
            "{stdout}"
        );
    }
}

/// Files nobody is writing cannot change during a settle pause, so there is none: the example
/// cluster (SQLite files untouched for minutes, a snapshot) is audited without waiting.
#[test]
fn no_settle_pause_for_files_that_cannot_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cluster-3");
    for f in ["cluster.toml", "a.sqlite", "b.sqlite", "c.snapshot.json"] {
        std::fs::copy(fixtures.join(f), dir.path().join(f)).expect("copy");
    }
    let aged = std::process::Command::new("touch")
        .args(["-d", "2 minutes ago"])
        .arg(dir.path().join("a.sqlite"))
        .arg(dir.path().join("b.sqlite"))
        .status()
        .expect("touch");
    assert!(aged.success());
    let started = std::time::Instant::now();
    bin()
        .args(["audit", "--config"])
        .arg(dir.path().join("cluster.toml"))
        .arg("--out")
        .arg(dir.path().join("out"))
        .env("CERAMIC_AUDIT_SETTLE_SECONDS", "30")
        .assert()
        .code(1);
    assert!(
        started.elapsed().as_secs() < 20,
        "waited {:?} on files that cannot change",
        started.elapsed()
    );
}

/// An `api_url` where nothing listens is named in the summary, in `report.json` and on stderr,
/// not only in the `detail` of the rows it left unrefined.
#[test]
fn an_unreachable_api_url_is_named_in_the_summary_the_report_and_on_stderr() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cluster-3");
    for f in ["a.sqlite", "b.sqlite", "c.snapshot.json"] {
        std::fs::copy(fixtures.join(f), dir.path().join(f)).expect("copy");
    }
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let config = format!(
        "cluster = \"example\"\n[[nodes]]\nname = \"a\"\napi_url = \"http://127.0.0.1:{closed}\"\nindex = \"sqlite://a.sqlite\"\n[[nodes]]\nname = \"b\"\nindex = \"sqlite://b.sqlite\"\n[[nodes]]\nname = \"c\"\nindex = \"snapshot:c.snapshot.json\"\n"
    );
    std::fs::write(dir.path().join("cluster.toml"), config).expect("write");
    let a = bin()
        .args(["audit", "--config"])
        .arg(dir.path().join("cluster.toml"))
        .arg("--out")
        .arg(dir.path().join("out"))
        .assert()
        .code(1);
    let stdout = String::from_utf8_lossy(&a.get_output().stdout).into_owned();
    let stderr = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(
        stdout.contains("note: node a: HTTP API unreachable")
            && stdout.contains("Connection refused"),
        "{stdout}"
    );
    assert!(stderr.contains("cannot be reached"), "{stderr}");
    let report: Json = serde_json::from_slice(
        &std::fs::read(dir.path().join("out/report.json")).expect("report.json"),
    )
    .expect("json");
    assert!(
        report["nodes"][0]["api_error"]
            .as_str()
            .is_some_and(|e| e.contains("Connection refused")),
        "{}",
        report["nodes"][0]
    );
    assert!(report["nodes"][1].get("api_error").is_none());
}
