//! A ceramic-one store (`--store-dir`): `pipeline/` first, then `db.sqlite3` through SQLite's
//! online backup API. The order matters: the pipeline's aggregator resumes from the highest
//! event order it persisted, so a `db.sqlite3` older than `pipeline/` would make it skip events
//! (ceramic-one.md §1.5); taking `pipeline/` first makes the database the newer of the two.
//! The copy is checked like a node: SQLite's own `PRAGMA integrity_check`, the event and block
//! counts the manifest recorded, and every event's blocks present.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::manifest::{self, CeramicOneLayer};

pub const DIR: &str = "ceramic-one";
pub const DB: &str = "ceramic-one/db.sqlite3";

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
    super::index::backup_sqlite(&db, &out.join(DB))?;
    let counts = counts(&out.join(DB))?;
    Ok(CeramicOneLayer {
        started_at,
        finished_at: manifest::now(),
        events: Some(counts.events),
        blocks: Some(counts.blocks),
        files: manifest::entries(out, DIR)?,
    })
}

/// What a copy of `db.sqlite3` holds, read back from the copy itself.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub events: u64,
    pub blocks: u64,
    /// Event→block links whose block is not in `ceramic_one_block` (an event that cannot be
    /// served from this copy).
    pub dangling: u64,
}

fn open_ro(db: &Path) -> Result<Connection, String> {
    Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("cannot open {}: {e}", db.display()))
}

/// Event, block and dangling-link counts of a ceramic-one database file.
pub fn counts(db: &Path) -> Result<Counts, String> {
    let conn = open_ro(db)?;
    let count = |sql: &str| -> Result<u64, String> {
        conn.query_row(sql, [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| format!("{}: {sql}: {e}", db.display()))
    };
    Ok(Counts {
        events: count("SELECT COUNT(*) FROM ceramic_one_event")?,
        blocks: count("SELECT COUNT(*) FROM ceramic_one_block")?,
        dangling: count(
            "SELECT COUNT(*) FROM ceramic_one_event_block eb \
             LEFT JOIN ceramic_one_block b ON b.multihash = eb.block_multihash \
             WHERE b.multihash IS NULL",
        )?,
    })
}

/// SQLite's `PRAGMA integrity_check`: `Ok(())` when it answers `ok`, else its first lines.
pub fn integrity(db: &Path) -> Result<(), String> {
    let conn = open_ro(db)?;
    let mut stmt = conn
        .prepare("PRAGMA integrity_check(20)")
        .map_err(|e| format!("{}: PRAGMA integrity_check: {e}", db.display()))?;
    let lines: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| format!("{}: PRAGMA integrity_check: {e}", db.display()))?;
    if lines == ["ok"] {
        Ok(())
    } else {
        Err(format!(
            "{}: PRAGMA integrity_check: {}",
            db.display(),
            lines.join("; ")
        ))
    }
}

/// Refuses a store that already holds a database or a pipeline, unless `force`. Checked before
/// anything of any layer is written.
pub fn check_target(store: &Path, force: bool) -> Result<(), String> {
    if force {
        return Ok(());
    }
    for name in ["db.sqlite3", "pipeline"] {
        let p = store.join(name);
        let occupied = if p.is_dir() {
            std::fs::read_dir(&p).is_ok_and(|mut d| d.next().is_some())
        } else {
            p.exists()
        };
        if occupied {
            return Err(format!(
                "{} exists; restore refuses to overwrite it without --force",
                p.display()
            ));
        }
    }
    Ok(())
}

/// Puts a backed-up store back into `store` (which must be empty unless `force`).
pub fn restore(backup: &Path, store: &Path, force: bool) -> Result<(), String> {
    check_target(store, force)?;
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
    // A stale WAL next to the restored file would be replayed into it on the next open.
    for suffix in ["-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(store.join(format!("db.sqlite3{suffix}")));
    }
    // Copied beside, then renamed: an interrupted restore leaves no half-written db.sqlite3.
    let db = store.join("db.sqlite3");
    let tmp = store.join("db.sqlite3.restoring");
    std::fs::copy(backup.join(DB), &tmp)
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &db).map_err(|e| format!("cannot write {}: {e}", db.display()))
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
