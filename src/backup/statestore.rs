//! The js-ceramic state store: one LevelDB directory per use case (`<network>`,
//! `<network>-anchor-requests`, `<network>-feed-aggregation`, `<network>-recon`) under
//! `state-store.local-directory`. Copied file by file while the node may be writing, then proved
//! usable by opening the copy; read back as stream id → log.
//!
//! Why a plain copy can be made consistent: LevelDB never rewrites a table (`*.ldb`) file; it
//! appends to the write-ahead `*.log` and the `MANIFEST-*`, and a compaction or memtable flush
//! creates new files and deletes old ones. A pass is kept when the set of files, and the size
//! of every file other than a `.log`, is the same before and after it — no compaction or flush
//! ran meanwhile — and its `.log` copies are cut back to their last whole record (a record is
//! one atomic write batch), so the copy is the store as of some instant during the pass.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusty_leveldb::{LdbIterator, Options, DB};

/// Use-case suffixes whose values are not stream states.
const AUX_SUFFIXES: [&str; 3] = ["-anchor-requests", "-feed-aggregation", "-recon"];
/// LevelDB's block size for `.log` files (format constant, `log_format.h`).
const LOG_BLOCK: usize = 32 * 1024;
const LOG_HEADER: usize = 7;

/// LevelDB directories (those holding a `CURRENT`) under `root`, sorted by name.
pub fn store_dirs(root: &Path) -> Result<Vec<String>, String> {
    let entries = std::fs::read_dir(root)
        .map_err(|e| format!("cannot list the state store {}: {e}", root.display()))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", root.display()))?;
        if entry.path().join("CURRENT").is_file() {
            out.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    out.sort();
    Ok(out)
}

/// Whether a store directory holds stream states (not an auxiliary use case).
pub fn is_stream_store(name: &str) -> bool {
    !AUX_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// Files of one pass: name → size, for every store directory. `LOCK` (a lock, no data) and
/// `LOG*` (LevelDB's text info log) are not data.
type Listing = BTreeMap<PathBuf, u64>;

fn listing(root: &Path, dirs: &[String]) -> Result<Listing, String> {
    let mut out = Listing::new();
    for d in dirs {
        let dir = root.join(d);
        let rd =
            std::fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        for entry in rd {
            let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "LOCK" || name.starts_with("LOG") {
                continue;
            }
            // A file deleted between the listing and its metadata is a change the next
            // listing sees; skip it here.
            if let Ok(meta) = entry.metadata() {
                if meta.is_file() {
                    out.insert(Path::new(d).join(name), meta.len());
                }
            }
        }
    }
    Ok(out)
}

fn same_except_logs(a: &Listing, b: &Listing) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|((na, sa), (nb, sb))| {
            na == nb && (sa == sb || na.extension().is_some_and(|e| e == "log"))
        })
}

/// What a copy took.
#[derive(Debug)]
pub struct CopyOutcome {
    pub dirs: Vec<String>,
    pub passes: u32,
}

/// Copies every store directory under `src` into `dst` (which must not exist). `stopped`: the
/// node is stopped, one pass is enough. Otherwise passes repeat until one sees no compaction,
/// at most `max_passes`.
pub fn copy_store(
    src: &Path,
    dst: &Path,
    stopped: bool,
    max_passes: u32,
) -> Result<CopyOutcome, String> {
    let dirs = store_dirs(src)?;
    if dirs.is_empty() {
        return Err(format!(
            "no LevelDB directory (one with a CURRENT file) under the state store {}",
            src.display()
        ));
    }
    let mut last_change = String::new();
    for pass in 1..=max_passes.max(1) {
        if dst.exists() {
            std::fs::remove_dir_all(dst)
                .map_err(|e| format!("cannot clear {}: {e}", dst.display()))?;
        }
        let before = listing(src, &dirs)?;
        match copy_pass(src, dst, &before) {
            Ok(()) => {}
            Err(e) if !stopped => {
                // A file listed then deleted: a compaction ran; try again.
                last_change = e;
                continue;
            }
            Err(e) => return Err(e),
        }
        let after = listing(src, &dirs)?;
        if stopped || same_except_logs(&before, &after) {
            return Ok(CopyOutcome { dirs, passes: pass });
        }
        last_change = "files changed during the pass (a compaction or memtable flush)".into();
    }
    Err(format!(
        "the state store {} kept changing: no stable copy in {max_passes} passes ({last_change}); \
         retry when writes are lighter, raise --max-passes, or stop the node and use --stopped",
        src.display()
    ))
}

fn copy_pass(src: &Path, dst: &Path, files: &Listing) -> Result<(), String> {
    for rel in files.keys() {
        let from = src.join(rel);
        let to = dst.join(rel);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        let bytes =
            std::fs::read(&from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
        let keep = if rel.extension().is_some_and(|e| e == "log") {
            whole_records(&bytes)
        } else {
            bytes.len()
        };
        std::fs::write(&to, &bytes[..keep])
            .map_err(|e| format!("cannot write {}: {e}", to.display()))?;
    }
    Ok(())
}

/// The length of the longest prefix of a LevelDB `.log` made of whole records: a record torn by
/// a concurrent append (header or fragments past the end, a FIRST without its LAST) is cut.
pub fn whole_records(log: &[u8]) -> usize {
    let mut pos = 0;
    let mut good = 0;
    let mut in_fragmented = false;
    while pos < log.len() {
        let left_in_block = LOG_BLOCK - pos % LOG_BLOCK;
        if left_in_block < LOG_HEADER {
            // Trailer padding: the writer zero-fills it and moves to the next block.
            pos += left_in_block;
            continue;
        }
        if pos + LOG_HEADER > log.len() {
            break;
        }
        let len = u16::from_le_bytes([log[pos + 4], log[pos + 5]]) as usize;
        let kind = log[pos + 6];
        let end = pos + LOG_HEADER + len;
        if kind == 0 || end > log.len() || len > left_in_block - LOG_HEADER {
            break; // zero type = preallocated space; or a torn record
        }
        pos = end;
        match kind {
            1 => {
                good = pos; // FULL
                in_fragmented = false;
            }
            2 | 3 => in_fragmented = true, // FIRST, MIDDLE
            4 if in_fragmented => {
                good = pos; // LAST
                in_fragmented = false;
            }
            _ => break,
        }
    }
    good
}

/// A stream as the state store holds it: its log (commit CIDs, oldest first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredStream {
    pub log: Vec<String>,
}

/// Everything read from one backed-up stream store directory.
#[derive(Debug, Default)]
pub struct StoreRead {
    pub streams: BTreeMap<String, StoredStream>,
    /// Entries whose value is not a stream state with a log: (key, why).
    pub unreadable: Vec<(String, String)>,
}

/// Opens a copy of the LevelDB directory `dir` (in a scratch directory, because opening replays
/// the `.log` and writes) and reads every entry.
pub fn read_streams(dir: &Path) -> Result<StoreRead, String> {
    let scratch = tempfile::tempdir().map_err(|e| format!("cannot create a scratch dir: {e}"))?;
    let copy = scratch.path().join("db");
    std::fs::create_dir(&copy).map_err(|e| format!("cannot create {}: {e}", copy.display()))?;
    let rd = std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    for entry in rd {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        std::fs::copy(entry.path(), copy.join(entry.file_name()))
            .map_err(|e| format!("cannot copy {}: {e}", entry.path().display()))?;
    }
    let opts = Options {
        create_if_missing: false,
        ..Options::default()
    };
    let mut db = DB::open(&copy, opts)
        .map_err(|e| format!("LevelDB {} does not open: {e}", dir.display()))?;
    let mut it = db
        .new_iter()
        .map_err(|e| format!("LevelDB {} cannot be iterated: {e}", dir.display()))?;
    let mut out = StoreRead::default();
    while let Some((k, v)) = it.next() {
        let key = String::from_utf8_lossy(&k).into_owned();
        match parse_state(&v) {
            Ok(s) => {
                out.streams.insert(key, s);
            }
            Err(why) => out.unreadable.push((key, why)),
        }
    }
    Ok(out)
}

fn parse_state(v: &[u8]) -> Result<StoredStream, String> {
    let json: serde_json::Value =
        serde_json::from_slice(v).map_err(|e| format!("value is not JSON: {e}"))?;
    let log = json
        .get("log")
        .and_then(|l| l.as_array())
        .ok_or("state has no `log` array")?;
    let log = log
        .iter()
        .map(|e| {
            e.get("cid")
                .and_then(|c| c.as_str())
                .map(str::to_string)
                .ok_or_else(|| "a log entry has no `cid`".to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    if log.is_empty() {
        return Err("empty log".into());
    }
    Ok(StoredStream { log })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: u8, data: &[u8]) -> Vec<u8> {
        let mut r = vec![0, 0, 0, 0];
        r.extend_from_slice(&(data.len() as u16).to_le_bytes());
        r.push(kind);
        r.extend_from_slice(data);
        r
    }

    #[test]
    fn torn_log_tail_is_cut_at_the_last_whole_record() {
        let mut log = record(1, b"first");
        let whole = log.len();
        log.extend(record(2, b"start of a"));
        assert_eq!(
            whole_records(&log),
            whole,
            "FIRST without LAST is not whole"
        );
        log.extend(record(4, b"batch"));
        let both = log.len();
        assert_eq!(whole_records(&log), both);
        log.extend(&record(1, b"torn")[..6]);
        assert_eq!(whole_records(&log), both);
    }
}
