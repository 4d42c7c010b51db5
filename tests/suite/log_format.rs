//! `CERAMIC_AUDIT_LOG_FORMAT`: JSON log lines on stdout for container log collectors, and a
//! clear error for a value the binary does not know.

use assert_cmd::Command;
use serde_json::Value as Json;

fn audit_fixture(format: &str, out: &std::path::Path) -> std::process::Output {
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/cluster-3/cluster.toml"
    );
    Command::cargo_bin("ceramic-audit")
        .expect("binary is built")
        .args([
            "audit",
            "-q",
            "--settle-seconds",
            "0.1",
            "--config",
            config,
            "--out",
        ])
        .arg(out)
        .env("CERAMIC_AUDIT_LOG", "info")
        .env("CERAMIC_AUDIT_LOG_FORMAT", format)
        .output()
        .expect("the binary runs")
}

#[test]
fn json_logs_are_one_object_per_line_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let out = audit_fixture("json", dir.path());
    assert_eq!(out.status.code(), Some(1), "the example cluster diverges");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Json> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(!lines.is_empty(), "info logs expected on stdout");
    for line in &lines {
        assert!(
            line["level"].is_string() && line["timestamp"].is_string(),
            "{line}"
        );
        assert!(line["fields"]["message"].is_string(), "{line}");
    }
    // The report is still written whole.
    assert!(dir.path().join("report.json").is_file());
}

#[test]
fn text_logs_stay_on_stderr_without_colour_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let out = audit_fixture("text", dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "-q: nothing on stdout");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains(" INFO "), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "no ANSI escapes when not a terminal: {stderr:?}"
    );
}

#[test]
fn an_unknown_log_format_exits_2_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let out = audit_fixture("xml", dir.path());
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("CERAMIC_AUDIT_LOG_FORMAT=\"xml\": expected text or json"),
        "{stderr}"
    );
    assert!(!dir.path().join("report.json").exists(), "nothing ran");
}
