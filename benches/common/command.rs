//! The command line a benchmark report records: `cargo bench --bench NAME`, preceded by every
//! `CERAMIC_AUDIT_BENCH_*` variable that was set (quoted for a POSIX shell where needed), so a
//! partial run (a subset of methods or of d, another row count) can be told from a full one and
//! pasted back to repeat it.

pub fn command(bench: &str) -> String {
    let mut vars: Vec<String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("CERAMIC_AUDIT_BENCH_"))
        .map(|(k, v)| format!("{k}={}", shell_quote(&v)))
        .collect();
    vars.sort();
    vars.push(format!("cargo bench --bench {bench}"));
    vars.join(" ")
}

/// `v` as one shell word: unchanged when it holds only characters no shell treats specially,
/// else in single quotes (a quote inside written as `'\''`).
fn shell_quote(v: &str) -> String {
    let plain = !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b",._-/:=+@%".contains(&b));
    if plain {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\'', r"'\''"))
    }
}
