//! The progress display (`src/progress.rs`) as an operator meets it: drawn on a terminal,
//! absent from pipes (no `\r`, no ANSI escape), hidden by `-q`, on a real pseudo-terminal
//! (`common::terminal`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::terminal::under_a_terminal;

fn config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cluster-3/cluster.toml")
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
