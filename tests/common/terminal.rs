//! Running the binary under a real pseudo-terminal, from util-linux's `script` (Debian
//! essential, so always installed): how the progress display is seen as an operator sees it.

use std::process::Command;

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Runs the binary with `args` under a pseudo-terminal (stdout and stderr both the terminal);
/// returns everything the terminal received.
pub fn under_a_terminal(args: &[&str]) -> String {
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
