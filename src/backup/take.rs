//! `backup`: the layers in dependency order — index, then state store, then blocks — so each
//! later layer is a superset of what the earlier ones reference (an index row needs its
//! stream's state; a state's log needs its blocks). Reads only: no write to the node, no stream
//! load through the Ceramic API (a load can sync or re-index what is being copied), one
//! connection per layer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::index;
use super::ipfs::Ipfs;
use super::manifest::{self, BlocksLayer, IndexLayer, Manifest, StateStoreLayer};
use super::statestore;
use super::BackupError;
use crate::config::{ClusterConfig, IndexLocation, NodeConfig};

pub const INDEX_PG: &str = "index/index.pgdump";
pub const INDEX_SQLITE: &str = "index/index.sqlite";
pub const STATE_DIR: &str = "statestore";
pub const CAR: &str = "blocks/blocks.car";

#[derive(Clone, Debug)]
pub struct BackupOptions {
    pub out: PathBuf,
    /// The node is stopped: one state-store pass, no stability check.
    pub stopped: bool,
    /// Live state-store copy passes before giving up (each pass copies the whole store).
    pub max_passes: u32,
    /// Per IPFS request.
    pub timeout: Duration,
    /// IPFS `block/get` requests in flight at once (and connections kept), see
    /// [`DEFAULT_BLOCK_REQUESTS`].
    pub block_requests: usize,
    /// The display on stderr (hidden in libraries and tests, and with `-q`).
    pub progress: crate::progress::Progress,
    /// Cancelled when the backup is interrupted: a running `pg_dump` is killed and reaped (the
    /// other layers are file copies and reads, simply abandoned).
    pub stop: tokio_util::sync::CancellationToken,
}

/// Block requests in flight by default. One request at a time spends its time waiting on the
/// round trip (588 s for 4·10^5 blocks in a debug build); 8 keeps the node's IPFS busy without
/// crowding out the node's own traffic. Too high only queues requests inside the node (js-ipfs
/// answers on one event loop) and holds that many connections; 1 restores the old
/// one-connection behaviour.
pub const DEFAULT_BLOCK_REQUESTS: usize = 8;

/// Takes a backup of `node` into `opts.out` (missing or empty). Returns the manifest, also
/// written to `manifest.json` last: a directory without one (an interrupted or failed backup)
/// is never taken for a complete backup by `backup verify`.
///
/// A node with a ComposeDB index gets the js-ceramic layers (index, state store, blocks); a
/// node with a `ceramic_one_store` gets that store too; a ceramic-one node alone only that.
pub async fn backup(
    cluster: &ClusterConfig,
    node: &NodeConfig,
    opts: &BackupOptions,
) -> Result<Manifest, BackupError> {
    let name = &node.name;
    let err = |layer: &'static str| {
        move |e: String| BackupError::new(format!("node {name}: {layer}: {e}"))
    };
    let js = !matches!(node.index, IndexLocation::None);
    let js_parts = if js {
        Some((
            configured(cluster, node, "state_store", node.state_store.as_deref())?,
            configured(cluster, node, "ipfs_api", node.ipfs_api.as_deref())?,
        ))
    } else {
        None
    };
    prepare_out(&opts.out)?;
    if opts.stopped {
        ensure_stopped(node).await?;
    }
    let progress = &opts.progress;
    let started_at = manifest::now();
    let (mut index, mut state_store, mut blocks) = (None, None, None);
    if let Some((state_root, ipfs_api)) = js_parts {
        // 1. Index.
        progress.stage("index", None);
        index = Some(
            blocking(node, opts, |n, o| backup_index(n, &o.out, &o.stop))
                .await
                .map_err(err("index"))?,
        );
        // 2. State store.
        progress.stage("state store", None);
        let root = state_root.to_path_buf();
        let (layer, streams) = blocking(node, opts, move |n, o| {
            backup_state_store(&n.name, &root, o)
        })
        .await
        .map_err(BackupError::new)?;
        state_store = Some(layer);
        // 3. Blocks of every copied stream's log.
        blocks = Some(backup_blocks(name, ipfs_api, opts, &streams).await?);
    }
    // 4. ceramic-one store, if this node has one.
    let ceramic_one = match &node.ceramic_one_store {
        Some(store) => {
            progress.stage("ceramic-one: pipeline/ then db.sqlite3", None);
            let store = store.clone();
            Some(
                blocking(node, opts, move |_, o| {
                    super::ceramic_one::backup(&store, &o.out)
                })
                .await
                .map_err(err("ceramic-one"))?,
            )
        }
        None => None,
    };
    let m = Manifest {
        format: manifest::FORMAT.into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        cluster: cluster.cluster.clone(),
        node: name.clone(),
        mode: if opts.stopped { "stopped" } else { "live" }.into(),
        started_at,
        finished_at: manifest::now(),
        index,
        state_store,
        blocks,
        ceramic_one,
    };
    write_manifest(&opts.out, &m)?;
    progress.finish();
    Ok(m)
}

fn configured<'a, T: ?Sized>(
    cluster: &ClusterConfig,
    node: &NodeConfig,
    key: &str,
    value: Option<&'a T>,
) -> Result<&'a T, BackupError> {
    value.ok_or_else(|| {
        BackupError::new(format!(
            "node {}: `{key}` is not set in {} (a node with a ComposeDB index needs it)",
            node.name,
            cluster.path.display()
        ))
    })
}

/// Runs a synchronous layer (pg_dump, file copies, SQLite's backup) on the blocking pool, so
/// the caller's `select!` on Ctrl-C stays responsive while it runs.
async fn blocking<T: Send + 'static>(
    node: &NodeConfig,
    opts: &BackupOptions,
    f: impl FnOnce(&NodeConfig, &BackupOptions) -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let (node, opts) = (node.clone(), opts.clone());
    tokio::task::spawn_blocking(move || f(&node, &opts))
        .await
        .map_err(|e| format!("the copy stopped: {e}"))?
}

/// The state store, copied so that the copy is usable while the node runs, then read back: the
/// layer's manifest entry and every stream it holds (their logs are what the blocks must cover).
fn backup_state_store(
    name: &str,
    state_root: &Path,
    opts: &BackupOptions,
) -> Result<(StateStoreLayer, BTreeMap<String, statestore::StoredStream>), String> {
    let err = |layer: &'static str| move |e: String| format!("node {name}: {layer}: {e}");
    let s_started = manifest::now();
    let dst = opts.out.join(STATE_DIR);
    let copied = statestore::copy_store(state_root, &dst, opts.stopped, opts.max_passes)
        .map_err(err("state store"))?;
    let mut streams = BTreeMap::new();
    for d in copied
        .dirs
        .iter()
        .filter(|d| statestore::is_stream_store(d))
    {
        let read = statestore::read_streams(&dst.join(d)).map_err(err("state store copy"))?;
        streams.extend(read.streams);
    }
    let state_store = StateStoreLayer {
        started_at: s_started,
        finished_at: manifest::now(),
        passes: copied.passes,
        dirs: copied.dirs.clone(),
        streams: streams.len() as u64,
        files: manifest::entries(&opts.out, STATE_DIR).map_err(err("state store"))?,
    };
    Ok((state_store, streams))
}

/// Every block each stream's log needs, exported as one CAR from what the node's IPFS holds
/// locally: a block it lacks is a finding, never a network fetch.
async fn backup_blocks(
    name: &str,
    ipfs_api: &str,
    opts: &BackupOptions,
    streams: &BTreeMap<String, statestore::StoredStream>,
) -> Result<BlocksLayer, BackupError> {
    let progress = &opts.progress;
    progress.stage("blocks", None);
    let b_started = manifest::now();
    let ipfs =
        Ipfs::new(name, ipfs_api, opts.timeout, opts.block_requests).map_err(BackupError::new)?;
    let ipfs_version = ipfs.version().await.map_err(BackupError::new)?;
    let local = ipfs.local_multihashes().await.map_err(BackupError::new)?;
    let car_path = opts.out.join(CAR);
    std::fs::create_dir_all(car_path.parent().unwrap_or(&opts.out))
        .map_err(|e| BackupError::new(format!("cannot create {}: {e}", car_path.display())))?;
    let exported = super::export::export(
        &ipfs,
        &local,
        streams,
        &car_path,
        opts.block_requests,
        &|done, queued| progress.detail(format!("{done} fetched of {queued} known so far")),
    )
    .await
    .map_err(|e| BackupError::new(format!("node {name}: blocks: {e}")))?;
    Ok(BlocksLayer {
        started_at: b_started,
        finished_at: manifest::now(),
        ipfs_version,
        blocks: exported.blocks,
        bytes: exported.bytes,
        missing: exported.missing,
        files: manifest::entries(&opts.out, CAR)
            .map_err(|e| BackupError::new(format!("node {name}: blocks: {e}")))?,
    })
}

pub fn write_manifest(dir: &Path, m: &Manifest) -> Result<(), BackupError> {
    let json = serde_json::to_vec_pretty(m)
        .map_err(|e| BackupError::new(format!("cannot serialize the manifest: {e}")))?;
    let path = dir.join(manifest::FILE);
    crate::atomic::write(&path, &json)
        .map_err(|e| BackupError::new(format!("cannot write {}: {e}", path.display())))
}

fn backup_index(
    node: &NodeConfig,
    out: &Path,
    stop: &tokio_util::sync::CancellationToken,
) -> Result<IndexLayer, String> {
    let started_at = manifest::now();
    std::fs::create_dir_all(out.join("index")).map_err(|e| format!("cannot create index/: {e}"))?;
    let (kind, rel, tool, rows) = match &node.index {
        IndexLocation::Postgres { dsn } => {
            let password = node.password.read(&node.name)?;
            let file = out.join(INDEX_PG);
            let tool = index::dump_postgres(dsn, password.as_deref(), &file, stop)?;
            let rows = index::rows_from_dump(&file)?;
            ("postgres", INDEX_PG, tool, rows)
        }
        IndexLocation::Sqlite { path } => {
            let file = out.join(INDEX_SQLITE);
            index::backup_sqlite(path, &file)?;
            let rows = index::rows_from_sqlite(&file)?;
            (
                "sqlite",
                INDEX_SQLITE,
                format!("SQLite {}", rusqlite::version()),
                rows,
            )
        }
        IndexLocation::Snapshot { path } => {
            return Err(format!(
                "the index is a snapshot file ({}), not a live database: nothing to back up",
                path.display()
            ))
        }
        IndexLocation::None => {
            return Err(
                "the node has no ComposeDB index (`index`): nothing to back up there".into(),
            )
        }
    };
    Ok(IndexLayer {
        kind: kind.into(),
        started_at,
        finished_at: manifest::now(),
        tool,
        rows: index::counts(&rows),
        files: manifest::entries(out, rel)?,
    })
}

fn prepare_out(out: &Path) -> Result<(), BackupError> {
    if out.exists() {
        let empty = std::fs::read_dir(out)
            .map_err(|e| BackupError::new(format!("cannot read {}: {e}", out.display())))?
            .next()
            .is_none();
        if !empty {
            return Err(BackupError::new(format!(
                "{} exists and is not empty; a backup goes into a new directory",
                out.display()
            )));
        }
    }
    std::fs::create_dir_all(out)
        .map_err(|e| BackupError::new(format!("cannot create {}: {e}", out.display())))
}

/// `--stopped` promises no writer; a node whose API still answers would break that promise.
pub(crate) async fn ensure_stopped(node: &NodeConfig) -> Result<(), BackupError> {
    let Some(url) = &node.api_url else {
        return Ok(());
    };
    let health = format!("{}/api/v0/node/healthcheck", url.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .map_err(|e| BackupError::new(format!("cannot build an HTTP client: {e}")))?;
    if client
        .get(&health)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        return Err(BackupError::new(format!(
            "node {}: its Ceramic API {url} still answers; stop the daemon first",
            node.name
        )));
    }
    Ok(())
}
