//! A ceramic-one store (`--store-dir`): `pipeline/` first, then `db.sqlite3` through SQLite's
//! online backup API. The order matters: the pipeline's aggregator resumes from the highest
//! event order it persisted, so a `db.sqlite3` older than `pipeline/` would make it skip events
//! (ceramic-one.md §1.5); taking `pipeline/` first makes the database the newer of the two.

use std::path::Path;

use super::manifest::{self, CeramicOneLayer};

pub const DIR: &str = "ceramic-one";

pub fn backup(store: &Path, out: &Path) -> Result<CeramicOneLayer, String> {
    let started_at = manifest::now();
    let db = store.join("db.sqlite3");
    if !db.is_file() {
        return Err(format!(
            "no db.sqlite3 in the ceramic-one store {}",
            store.display()
        ));
    }
    let dst = out.join(DIR);
    std::fs::create_dir_all(&dst).map_err(|e| format!("cannot create {}: {e}", dst.display()))?;
    let pipeline = store.join("pipeline");
    if pipeline.is_dir() {
        copy_tree(&pipeline, &dst.join("pipeline"))?;
    }
    super::index::backup_sqlite(&db, &dst.join("db.sqlite3"))?;
    Ok(CeramicOneLayer {
        started_at,
        finished_at: manifest::now(),
        files: manifest::entries(out, DIR)?,
    })
}

/// Puts a backed-up store back into `store` (which must not hold a `db.sqlite3` unless `force`).
pub fn restore(backup: &Path, store: &Path, force: bool) -> Result<(), String> {
    let db = store.join("db.sqlite3");
    if db.exists() && !force {
        return Err(format!(
            "{} exists; restore refuses to overwrite it without --force",
            db.display()
        ));
    }
    std::fs::create_dir_all(store)
        .map_err(|e| format!("cannot create {}: {e}", store.display()))?;
    let pipeline = store.join("pipeline");
    if pipeline.exists() {
        std::fs::remove_dir_all(&pipeline)
            .map_err(|e| format!("cannot remove {}: {e}", pipeline.display()))?;
    }
    if backup.join(DIR).join("pipeline").is_dir() {
        copy_tree(&backup.join(DIR).join("pipeline"), &pipeline)?;
    }
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(store.join(format!("db.sqlite3{suffix}")));
    }
    std::fs::copy(backup.join(DIR).join("db.sqlite3"), &db)
        .map(|_| ())
        .map_err(|e| format!("cannot write {}: {e}", db.display()))
}

/// Recursive file copy (regular files and directories).
pub fn copy_tree(src: &Path, dst: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dst).map_err(|e| format!("cannot create {}: {e}", dst.display()))?;
    let rd = std::fs::read_dir(src).map_err(|e| format!("cannot list {}: {e}", src.display()))?;
    for e in rd {
        let e = e.map_err(|e| format!("cannot list {}: {e}", src.display()))?;
        let (from, to) = (e.path(), dst.join(e.file_name()));
        if from.is_dir() {
            copy_tree(&from, &to)?;
        } else {
            std::fs::copy(&from, &to)
                .map_err(|e| format!("cannot copy {}: {e}", from.display()))?;
        }
    }
    Ok(())
}
