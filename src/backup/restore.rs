//! `restore DIR --node b`: puts a verified backup's layers back into a stopped node — blocks
//! through the IPFS API's `dag/import` (additive: content-addressed blocks overwrite nothing),
//! the state store's LevelDB directories, and the index (`pg_restore` into an empty database,
//! created first when it does not exist, or the SQLite file); a ceramic-one store's `pipeline/`
//! and `db.sqlite3`. Every precondition is checked before anything is written.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::manifest::{self, Manifest};
use super::take::{ensure_stopped, CAR, INDEX_PG, INDEX_SQLITE, STATE_DIR};
use super::verify::{verify, VerifyReport};
use super::{ceramic_one, index, pgdb, BackupError};
use crate::config::{IndexLocation, NodeConfig};

#[derive(Clone, Debug)]
pub struct RestoreOptions {
    /// Overwrite non-empty targets, and restore a backup that fails verification.
    pub force: bool,
    pub timeout: Duration,
}

#[derive(Debug, Serialize)]
pub struct RestoreReport {
    pub node: String,
    /// Findings of the verification run first (non-empty only with --force).
    pub verify_findings: usize,
    /// Checks the verification could not run (see `VerifyReport::unchecked`).
    pub unchecked: Vec<String>,
    /// What was put back, in order.
    pub steps: Vec<String>,
}

/// Why a restore refused to start (nothing was written).
#[derive(Debug)]
pub enum Refusal {
    /// The backup fails verification; the report says why.
    Unverified(VerifyReport),
    Error(BackupError),
}

impl From<BackupError> for Refusal {
    fn from(e: BackupError) -> Self {
        Refusal::Error(e)
    }
}

pub async fn restore(
    dir: &Path,
    node: &NodeConfig,
    opts: &RestoreOptions,
) -> Result<RestoreReport, Refusal> {
    let name = &node.name;
    let check = verify(dir)?;
    if !check.findings.is_empty() && !opts.force {
        return Err(Refusal::Unverified(check));
    }
    let m: Manifest = serde_json::from_slice(
        &std::fs::read(dir.join(manifest::FILE))
            .map_err(|e| BackupError::new(format!("cannot read the manifest: {e}")))?,
    )
    .map_err(|e| BackupError::new(format!("cannot read the manifest: {e}")))?;
    ensure_stopped(node).await?;
    let fail = |e: String| BackupError::new(format!("node {name}: {e}"));

    // Preconditions, all before any write. A backup holding a ceramic-one store is restored
    // whole or not at all: js-ceramic on ceramic-one reads its events from that store, so
    // putting back the js layers alone would leave a node whose index and state store point at
    // events it does not have.
    let ceramic_one_store =
        match (&node.ceramic_one_store, &m.ceramic_one) {
            (Some(store), Some(_)) => {
                ceramic_one::check_target(store, opts.force).map_err(fail)?;
                Some(store)
            }
            (None, Some(_)) => return Err(fail(
                "the backup holds a ceramic-one store, and `ceramic_one_store` is not set in the \
                 config: set it to the node's --store-dir so every layer is restored"
                    .into(),
            )
            .into()),
            _ => None,
        };
    let js = m.index.is_some() || m.state_store.is_some() || m.blocks.is_some();
    let js_plan = if js {
        Some(check_js_targets(&m, node, opts).await?)
    } else {
        None
    };

    let mut steps = Vec::new();
    if let Some(plan) = js_plan {
        steps.extend(restore_js(dir, &m, node, opts, plan).await?);
    }
    if let Some(store) = ceramic_one_store {
        ceramic_one::restore(dir, store, opts.force).map_err(fail)?;
        steps.push(format!(
            "ceramic-one: pipeline/ then db.sqlite3 into {}",
            store.display()
        ));
    }
    Ok(RestoreReport {
        node: name.clone(),
        verify_findings: check.findings.len(),
        unchecked: check.unchecked,
        steps,
    })
}

/// What the js-ceramic layers' preconditions found.
struct JsPlan {
    state_root: std::path::PathBuf,
    ipfs_api: String,
    dirs: Vec<String>,
    /// The Postgres index database does not exist yet: create it first.
    create_db: bool,
}

/// Checks the js-ceramic targets (state store directories, the index) without writing.
async fn check_js_targets(
    m: &Manifest,
    node: &NodeConfig,
    opts: &RestoreOptions,
) -> Result<JsPlan, BackupError> {
    let name = &node.name;
    let fail = |e: String| BackupError::new(format!("node {name}: {e}"));
    let state_root = node
        .state_store
        .clone()
        .ok_or_else(|| fail("`state_store` is not set in the config".into()))?;
    let ipfs_api = node
        .ipfs_api
        .clone()
        .ok_or_else(|| fail("`ipfs_api` is not set in the config".into()))?;
    let dirs = m
        .state_store
        .as_ref()
        .map(|s| s.dirs.clone())
        .unwrap_or_default();
    for d in &dirs {
        let target = state_root.join(d);
        if non_empty_dir(&target) && !opts.force {
            return Err(fail(format!(
                "the state store directory {} is not empty; restore refuses to overwrite it without --force",
                target.display()
            )));
        }
    }
    let mut create_db = false;
    let index_kind = m.index.as_ref().map(|i| i.kind.as_str()).unwrap_or("");
    match (&node.index, index_kind) {
        (IndexLocation::Postgres { dsn }, "postgres") => {
            index::pg_tool("pg_restore").map_err(fail)?;
            let password = node.password.read(name).map_err(fail)?;
            create_db = !pgdb::exists(dsn, password.as_deref(), opts.timeout)
                .await
                .map_err(fail)?;
            let tables = if create_db {
                0
            } else {
                user_tables(dsn, password.as_deref()).map_err(fail)?
            };
            if tables > 0 && !opts.force {
                return Err(fail(format!(
                    "the index database {} holds {tables} tables; restore refuses to overwrite it without --force",
                    crate::config::redact_dsn(dsn)
                )));
            }
        }
        (IndexLocation::Sqlite { path }, "sqlite") => {
            if path.metadata().is_ok_and(|md| md.len() > 0) && !opts.force {
                return Err(fail(format!(
                    "the SQLite index {} exists; restore refuses to overwrite it without --force",
                    path.display()
                )));
            }
        }
        (_, kind) => {
            return Err(fail(format!(
                "the backup's index is {kind:?}, the node's configured index is not of that kind"
            )))
        }
    }
    Ok(JsPlan {
        state_root,
        ipfs_api,
        dirs,
        create_db,
    })
}

/// Writes the js-ceramic layers: blocks, state store, index — the reverse of the backup order,
/// so whatever a later layer references is back first.
async fn restore_js(
    dir: &Path,
    m: &Manifest,
    node: &NodeConfig,
    opts: &RestoreOptions,
    plan: JsPlan,
) -> Result<Vec<String>, BackupError> {
    let name = &node.name;
    let fail = |e: String| BackupError::new(format!("node {name}: {e}"));
    let JsPlan {
        state_root,
        ipfs_api,
        dirs,
        create_db,
    } = plan;
    let ipfs =
        super::ipfs::Ipfs::new(name, &ipfs_api, opts.timeout, 1).map_err(BackupError::new)?;
    ipfs.version().await.map_err(BackupError::new)?;
    let mut steps = Vec::new();
    let blocks = m.blocks.as_ref().map(|b| b.blocks).unwrap_or(0);
    let pieces = if blocks > 0 {
        ipfs.dag_import(&dir.join(CAR))
            .await
            .map_err(BackupError::new)?
    } else {
        0
    };
    steps.push(format!(
        "blocks: {blocks} imported through {ipfs_api}/api/v0/dag/import ({pieces} request{})",
        if pieces == 1 { "" } else { "s" }
    ));
    std::fs::create_dir_all(&state_root)
        .map_err(|e| fail(format!("cannot create {}: {e}", state_root.display())))?;
    for d in &dirs {
        let target = state_root.join(d);
        if target.exists() {
            std::fs::remove_dir_all(&target)
                .map_err(|e| fail(format!("cannot clear {}: {e}", target.display())))?;
        }
        ceramic_one::copy_tree(&dir.join(STATE_DIR).join(d), &target).map_err(fail)?;
    }
    steps.push(format!(
        "state store: {} into {}",
        dirs.join(", "),
        state_root.display()
    ));
    match &node.index {
        IndexLocation::Postgres { dsn } => {
            let password = node.password.read(name).map_err(fail)?;
            if create_db {
                let db = pgdb::create(dsn, password.as_deref(), opts.timeout)
                    .await
                    .map_err(fail)?;
                steps.push(format!("index: created the database {db:?}"));
            }
            index::restore_postgres(dsn, password.as_deref(), &dir.join(INDEX_PG), opts.force)
                .map_err(fail)?;
            steps.push(format!(
                "index: pg_restore into {}",
                crate::config::redact_dsn(dsn)
            ));
        }
        IndexLocation::Sqlite { path } => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| fail(format!("cannot create {}: {e}", parent.display())))?;
            }
            for suffix in ["-wal", "-shm", "-journal"] {
                let mut p = path.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(p);
            }
            std::fs::copy(dir.join(INDEX_SQLITE), path)
                .map_err(|e| fail(format!("cannot write {}: {e}", path.display())))?;
            steps.push(format!("index: SQLite file {}", path.display()));
        }
        IndexLocation::Snapshot { .. } | IndexLocation::None => {}
    }
    Ok(steps)
}

fn non_empty_dir(p: &Path) -> bool {
    std::fs::read_dir(p).is_ok_and(|mut d| d.next().is_some())
}

/// Tables in the target database, counted from `pg_dump --schema-only` (libpq, so the DSN's
/// sslmode and certificates work as for the dump and the restore themselves).
fn user_tables(dsn: &str, password: Option<&str>) -> Result<usize, String> {
    let schema = index::schema_of(dsn, password)?;
    Ok(schema
        .lines()
        .filter(|l| l.starts_with("CREATE TABLE "))
        .count())
}
