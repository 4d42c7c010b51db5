//! The binary as an operator meets it: help, version, `inspect`, exit codes.

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value as Json;

fn bin() -> Command {
    Command::cargo_bin("ceramic-audit").expect("binary is built")
}

/// Runs `ceramic-audit inspect ARGS…`, expects exit 0, and parses stdout as JSON.
fn inspect_json(args: &[&str]) -> Json {
    let out = bin().arg("inspect").args(args).assert().success();
    serde_json::from_slice(&out.get_output().stdout).expect("inspect prints JSON")
}

#[test]
fn help_and_version_exit_zero() {
    bin()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("inspect"))
        .stdout(predicate::str::contains("Exit codes"));
    bin()
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn inspect_prints_the_tile_stream_and_its_genesis() {
    let json = inspect_json(&["kjzl6cwe1jw147dvq16zluojmraqvwdmbh61dx9e0c59i344lcrsgqfohexp60s"]);
    assert_eq!(json["kind"], "stream_id");
    assert_eq!(json["stream_type"], 0);
    assert_eq!(json["stream_type_name"], "tile");
    assert_eq!(
        json["genesis"]["cid"],
        "bagcqcerakszw2vsovxznyp5gfnpdj4cqm2xiv76yd24wkjewhhykovorwo6a"
    );
}

#[test]
fn inspect_decodes_a_commit_id_url_and_an_event_id() {
    let json = inspect_json(&[
        "--compact",
        "ceramic://k1dpgaqe3i64kjqcp801r3sn7ysi5i0k7nxvs7j351s7kewfzr3l7mdxnj7szwo4kr9mn2qki5nnj0cv836ythy1t1gya9s25cn1nexst3jxi5o3h6qprfyju",
    ]);
    assert_eq!(json["kind"], "commit_id");
    assert_eq!(
        json["commit"]["cid"],
        "bagjqcgzaday6dzalvmy5ady2m5a5legq5zrbsnlxfc2bfxej532ds7htpova"
    );
    assert_eq!(json["is_genesis_commit"], false);

    let json = inspect_json(&["ce0105ff01ba25076d730241e745cc7c072ff729ea683b751701711220f4ef7ec208944d257025408bb647949e6b72930520bc80f34d8bfbafd2643d86"]);
    assert_eq!(json["kind"], "event_id");
    assert_eq!(json["network"], "inmemory");
    assert_eq!(
        json["event"]["cid"],
        "bafyreihu557meceujusxajkaro3epfe6nnzjgbjaxsapgtml7ox5ezb5qy"
    );
}

#[test]
fn a_bad_id_exits_2_with_one_line_saying_what_was_expected() {
    for bad in ["kjzl6cwe1", "not-an-id", "ce0105"] {
        let assert = bin().args(["inspect", bad]).assert().code(2);
        let out = assert.get_output();
        assert!(out.stdout.is_empty(), "nothing on stdout for {bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "one line for {bad}: {err}"
        );
        assert!(err.contains("expected"), "says what was expected: {err}");
    }
}

#[test]
fn a_usage_error_exits_2() {
    bin().arg("no-such-command").assert().code(2);
}

/// Every numeric flag of every command, fed values no one means (huge, negative, NaN, a
/// year count that overflows, a vanishing rate): a usage error naming the flag, exit 2, never a
/// panic. The flags are enumerated from the command definitions, so a new numeric flag is
/// covered (and a new non-numeric one must be named in `NOT_NUMERIC`).
#[test]
fn extreme_values_of_every_numeric_flag_exit_2_without_panicking() {
    use clap::CommandFactory;
    const NOT_NUMERIC: &[&str] = &[
        "config",
        "out",
        "format",
        "mode",
        "fail_on",
        "row_check",
        "compare",
        "verify_state",
        "node",
        "from_report",
        "nodes",
        "journal",
        "dir",
        "metrics_listen",
        "metrics_textfile",
        "help",
        "version",
        "gate_on",
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/cluster-3/cluster.toml"
    );
    let out = dir.path().display().to_string();
    let snapshot = dir.path().join("a.json").display().to_string();
    let cli = ceramic_audit::cli::Cli::command();
    let mut checked = 0;
    let mut commands_checked = Vec::new();
    for (command, base) in [
        ("audit", vec!["--config", fixture, "--out", &out]),
        (
            "crawl",
            vec!["--config", fixture, "--node", "a", "--out", &snapshot],
        ),
        (
            "repair",
            vec!["--config", fixture, "--nodes", "a", "--out", &out],
        ),
        (
            "watch",
            vec!["--config", fixture, "--dir", &out, "--cycles", "1"],
        ),
        (
            "backup",
            vec!["--config", fixture, "--node", "a", "--out", &snapshot],
        ),
        ("restore", vec![&out, "--config", fixture, "--node", "a"]),
    ] {
        let sub = cli.find_subcommand(command).expect(command);
        commands_checked.push(command);
        let numeric: Vec<&clap::Arg> = sub
            .get_arguments()
            .filter(|a| a.get_action().takes_values())
            .filter(|a| !NOT_NUMERIC.contains(&a.get_id().as_str()))
            .collect();
        assert!(!numeric.is_empty(), "{command} has numeric flags");
        for arg in numeric {
            let flag = format!("--{}", arg.get_long().expect("long flag"));
            let mut values = vec![
                "1e19",
                "-1",
                "NaN",
                "inf",
                "99999999999999999999999",
                "100000000y",
            ];
            if flag == "--rate" {
                values.push("1e-20");
            }
            // Without the flag under test among the base arguments (watch's --cycles).
            let mut args: Vec<&str> = Vec::new();
            let mut i = 0;
            while i < base.len() {
                if base[i] == flag {
                    i += 2;
                } else {
                    args.push(base[i]);
                    i += 1;
                }
            }
            for v in values {
                let given = format!("{flag}={v}");
                let assert = bin()
                    .env_clear()
                    .arg(command)
                    .args(&args)
                    .arg(&given)
                    .timeout(std::time::Duration::from_secs(60))
                    .assert();
                let output = assert.get_output();
                let stderr = String::from_utf8_lossy(&output.stderr);
                assert_eq!(output.status.code(), Some(2), "{command} {given}: {stderr}");
                assert!(!stderr.contains("panicked"), "{command} {given}: {stderr}");
                assert!(
                    stderr.contains(&flag),
                    "{command} {given}: the flag is named: {stderr}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "{checked} cases");
    // Every command with a numeric flag is in the list above (inspect has none).
    for sub in cli.get_subcommands() {
        let has_numeric = sub
            .get_arguments()
            .filter(|a| a.get_action().takes_values())
            .any(|a| !NOT_NUMERIC.contains(&a.get_id().as_str()) && a.get_id() != "id");
        assert!(
            !has_numeric || commands_checked.contains(&sub.get_name()),
            "command {} has numeric flags: add it here",
            sub.get_name()
        );
    }
}

/// `audit` stopped by SIGTERM (systemd, `docker stop`) exits 130 at once, like Ctrl-C, writing
/// no report; and its log lines on a pipe carry no ANSI colour codes.
#[test]
fn audit_stops_on_sigterm_with_130_and_logs_without_colour_on_a_pipe() {
    let out = tempfile::tempdir().expect("tempdir");
    // Fresh copies: SQLite files written just now may still change, so the audit pauses.
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cluster-3");
    for f in ["cluster.toml", "a.sqlite", "b.sqlite", "c.snapshot.json"] {
        std::fs::copy(fixtures.join(f), out.path().join(f)).expect("copy");
    }
    let config = out.path().join("cluster.toml");
    let fixture = config.to_str().expect("utf-8 path");
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("ceramic-audit"))
        .args([
            "audit",
            "--config",
            fixture,
            "--settle-seconds",
            "120",
            "--out",
        ])
        .arg(out.path().join("out"))
        .env("CERAMIC_AUDIT_LOG", "info")
        .env_remove("NO_COLOR")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // The example differs, so the audit sits in its 120 s settle pause.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let started = std::time::Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(started.elapsed().as_secs() < 10, "stopped at once");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(stderr.contains("INFO"), "the log lines are there: {stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "no ANSI escape on a pipe: {stderr:?}"
    );
    assert!(!out.path().join("out/report.json").exists());
}

/// `inspect` of a pasted blob says what failed without echoing 4 KB back.
#[test]
fn inspect_does_not_echo_a_huge_argument() {
    let blob = "k".repeat(4096);
    let a = bin().args(["inspect", &blob]).assert().code(2);
    let stderr = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(stderr.len() < 400, "{} bytes: {stderr}", stderr.len());
    assert!(stderr.contains("4096 characters"), "{stderr}");
}
