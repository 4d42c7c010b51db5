//! `manifest.json`: what a backup holds, written last (a directory without it is an unfinished
//! backup). Schema `ceramic-audit-backup/1`, documented in reports/README.md.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const FORMAT: &str = "ceramic-audit-backup/1";
pub const FILE: &str = "manifest.json";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    /// ceramic-audit version that wrote it.
    pub tool_version: String,
    pub cluster: String,
    pub node: String,
    /// `live` (copied while the node ran) or `stopped` (`--stopped`).
    pub mode: String,
    pub started_at: String,
    pub finished_at: String,
    /// In the order taken: index, state store, blocks (js-ceramic); ceramic-one if configured.
    pub index: Option<IndexLayer>,
    pub state_store: Option<StateStoreLayer>,
    pub blocks: Option<BlocksLayer>,
    pub ceramic_one: Option<CeramicOneLayer>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FileEntry {
    /// Relative to the backup directory, `/`-separated.
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct IndexLayer {
    /// `postgres` (pg_dump custom format) or `sqlite` (online backup copy).
    pub kind: String,
    pub started_at: String,
    pub finished_at: String,
    /// `pg_dump (PostgreSQL) 15.x`, or the SQLite library version.
    pub tool: String,
    /// Rows per model table in the dump.
    pub rows: BTreeMap<String, u64>,
    pub files: Vec<FileEntry>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StateStoreLayer {
    pub started_at: String,
    pub finished_at: String,
    /// Copy passes made until one saw no compaction (1 with `--stopped`).
    pub passes: u32,
    /// LevelDB directories copied (`<network>`, `<network>-anchor-requests`, …).
    pub dirs: Vec<String>,
    /// Streams (state entries) in the stream store directories.
    pub streams: u64,
    pub files: Vec<FileEntry>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MissingBlock {
    pub stream: String,
    pub cid: String,
    /// commit, payload, capability, anchor_proof, anchor_path.
    pub role: String,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BlocksLayer {
    pub started_at: String,
    pub finished_at: String,
    /// The IPFS implementation's version (`/api/v0/version`).
    pub ipfs_version: String,
    /// Blocks written to the CAR.
    pub blocks: u64,
    /// Bytes of block data in the CAR.
    pub bytes: u64,
    /// Blocks a log needs that the node did not hold (never fetched from the network).
    pub missing: Vec<MissingBlock>,
    pub files: Vec<FileEntry>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CeramicOneLayer {
    pub started_at: String,
    pub finished_at: String,
    /// Rows of `ceramic_one_event` in the copy. `None` in backups taken before the counts were
    /// recorded: `backup verify` then says it could not compare them, rather than calling a
    /// count of 0 a mismatch.
    #[serde(default)]
    pub events: Option<u64>,
    /// Rows of `ceramic_one_block` in the copy (`None` as for `events`).
    #[serde(default)]
    pub blocks: Option<u64>,
    /// `pipeline/` (copied first) and `db.sqlite3` (online backup, second).
    pub files: Vec<FileEntry>,
}

impl Manifest {
    /// Every file any layer lists.
    pub fn files(&self) -> Vec<&FileEntry> {
        let mut out: Vec<&FileEntry> = Vec::new();
        if let Some(l) = &self.index {
            out.extend(&l.files);
        }
        if let Some(l) = &self.state_store {
            out.extend(&l.files);
        }
        if let Some(l) = &self.blocks {
            out.extend(&l.files);
        }
        if let Some(l) = &self.ceramic_one {
            out.extend(&l.files);
        }
        out
    }
}

/// Size and SHA-256 of a file, streamed.
pub fn hash_file(path: &Path) -> std::io::Result<(u64, String)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex::encode(h.finalize())))
}

/// Entries for every file under `root/rel` (a file or a directory), sorted by path.
pub fn entries(root: &Path, rel: &str) -> Result<Vec<FileEntry>, String> {
    let mut out = Vec::new();
    let mut stack = vec![rel.to_string()];
    while let Some(r) = stack.pop() {
        let p = root.join(&r);
        if p.is_dir() {
            let rd =
                std::fs::read_dir(&p).map_err(|e| format!("cannot list {}: {e}", p.display()))?;
            for e in rd {
                let e = e.map_err(|e| format!("cannot list {}: {e}", p.display()))?;
                stack.push(format!("{r}/{}", e.file_name().to_string_lossy()));
            }
        } else {
            let (size, sha256) =
                hash_file(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            out.push(FileEntry {
                path: r,
                size,
                sha256,
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// UTC now, RFC 3339.
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "unknown".into())
}
