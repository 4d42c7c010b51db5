//! The reconciliation core stays pure: `crates/recon` may depend only on the crates below, so
//! an async runtime, HTTP client, database driver or CSV writer cannot even be imported there
//! (the compiler refuses a crate that is not a dependency, however the `use` is spelled).

use std::path::Path;

/// Data structures, errors and hash functions: nothing that reaches a network, a database or
/// the file system.
const ALLOWED: [&str; 5] = ["serde", "thiserror", "md-5", "sha2", "hex"];

#[test]
fn recon_crate_depends_on_no_io_crate() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/recon/Cargo.toml");
    let text = std::fs::read_to_string(&path).expect("crates/recon/Cargo.toml is readable");
    let manifest: toml::Table = text.parse().expect("crates/recon/Cargo.toml is TOML");
    let mut listed = Vec::new();
    for (section, value) in &manifest {
        if section.ends_with("dependencies") {
            listed.extend(
                value
                    .as_table()
                    .expect("a dependency table")
                    .keys()
                    .map(|k| format!("[{section}] {k}")),
            );
        }
        if section == "target" {
            // [target.'cfg(..)'.dependencies] would add crates on some platforms.
            panic!("crates/recon has platform-specific dependencies: {value}");
        }
    }
    let foreign: Vec<&String> = listed
        .iter()
        .filter(|l| {
            !l.starts_with("[dependencies] ")
                || !ALLOWED.iter().any(|a| l.ends_with(&format!(" {a}")))
        })
        .collect();
    assert!(
        foreign.is_empty(),
        "crates/recon must stay free of I/O; not allowed: {foreign:?}"
    );
    assert!(
        listed.len() >= 3,
        "expected recon's dependencies, found {listed:?}"
    );
}
