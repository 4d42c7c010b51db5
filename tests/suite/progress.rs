//! The progress display (`src/progress.rs`) as an operator meets it: drawn on a terminal,
//! absent from pipes (no `\r`, no ANSI escape), hidden by `-q`. The terminal is a real
//! pseudo-terminal from util-linux's `script` (Debian essential, so always installed).

use std::path::{Path, PathBuf};
use std::process::Command;

fn config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cluster-3/cluster.toml")
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Runs the binary with `args` under a pseudo-terminal (stdout and stderr both the terminal);
/// returns everything the terminal received.
fn under_a_terminal(args: &[&str]) -> String {
    let bin = env!("CARGO_BIN_EXE_ceramic-audit");
    let line = std::iter::once(bin)
        .chain(args.iter().copied())
        .map(quote)
        .collect::<Vec<_>>()
        .join(" ");
    let out = Command::new("script")
        .args(["-qfec", &line, "/dev/null"])
        .env_remove("CERAMIC_AUDIT_QUIET")
        .output()
        .expect("util-linux `script` runs (the pseudo-terminal for this test)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_audit_draws_its_progress_on_a_terminal_only_and_not_with_quiet() {
    let out = tempfile::tempdir().expect("temp dir");
    let dir = out.path().to_str().expect("utf-8 temp path");
    let config = config();
    let config = config.to_str().expect("utf-8 path");

    // On a terminal: the stages are drawn, the model count with them, and cleared (\r + erase).
    let shown = under_a_terminal(&["audit", "--config", config, "--out", dir]);
    assert!(
        shown.contains("audit: models"),
        "no progress drawn: {shown:?}"
    );
    assert!(shown.contains("/2 ETA"), "no model count: {shown:?}");
    assert!(
        shown.contains("\r\u{1b}[2K"),
        "the bar is not cleared: {shown:?}"
    );
    assert!(shown.contains("cluster example: DIVERGENT"), "{shown:?}");

    // -q on the same terminal: nothing of it (and no summary).
    let quiet = under_a_terminal(&["audit", "--config", config, "--out", dir, "-q"]);
    assert!(!quiet.contains("audit: "), "drawn despite -q: {quiet:?}");
    assert!(!quiet.contains('\u{1b}'), "escapes despite -q: {quiet:?}");

    // stderr a pipe: not one byte of the display.
    let piped = Command::new(env!("CARGO_BIN_EXE_ceramic-audit"))
        .args(["audit", "--config", config, "--out", dir])
        .env("CERAMIC_AUDIT_LOG", "info")
        .output()
        .expect("the binary runs");
    assert_eq!(piped.status.code(), Some(1), "the fixture diverges");
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert!(!stderr.contains('\r'), "\\r in piped stderr: {stderr:?}");
    assert!(
        !stderr.contains('\u{1b}'),
        "escape in piped stderr: {stderr:?}"
    );
    assert!(!stderr.contains("audit: models"), "{stderr:?}");
    // The logs themselves still arrive (the display's writer passes them through).
    assert!(stderr.contains("INFO"), "{stderr:?}");
}
