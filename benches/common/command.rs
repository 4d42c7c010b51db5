//! The command line a benchmark report records: `cargo bench --bench NAME`, preceded by every
//! `CERAMIC_AUDIT_BENCH_*` variable that was set, so a partial run (a subset of methods or of
//! d, another row count) can be told from a full one and repeated exactly.

pub fn command(bench: &str) -> String {
    let mut vars: Vec<String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("CERAMIC_AUDIT_BENCH_"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    vars.sort();
    vars.push(format!("cargo bench --bench {bench}"));
    vars.join(" ")
}
