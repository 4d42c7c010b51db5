//! The reconciliation core stays pure: no async runtime, HTTP, database, CSV or file I/O.

use std::path::Path;

#[test]
fn recon_core_imports_no_io_crate() {
    let forbidden = [
        "tokio",
        "reqwest",
        "hyper",
        "postgres",
        "rusqlite",
        "sqlx",
        "csv",
        "std::fs",
        "std::net",
        "std::process",
        "std::thread",
    ];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/recon");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("src/recon exists") {
        let path = entry.expect("readable dir entry").path();
        let text = std::fs::read_to_string(&path).expect("readable source file");
        for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for word in forbidden {
                assert!(
                    !line.contains(word),
                    "{} uses `{word}`: src/recon must stay free of I/O ({line:?})",
                    path.display()
                );
            }
        }
        checked += 1;
    }
    assert!(
        checked >= 5,
        "expected the recon modules, found {checked} files"
    );
}
