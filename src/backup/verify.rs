//! `backup verify DIR`: checks a backup by itself, the way the audit checks a node — every file
//! against the manifest's size and SHA-256, every index row's tip in its stream's state-store
//! log, every log's blocks (commits, payloads, capabilities, anchor proofs and paths) in the
//! CAR with bytes that hash to their CID, and the counts the manifest recorded.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::Serialize;

use super::manifest::{self, CeramicOneLayer, Manifest};
use super::needs::{expand, Need};
use super::statestore::{self, StoredStream};
use super::take::{CAR, INDEX_PG, INDEX_SQLITE, STATE_DIR};
use super::{index, BackupError};

/// One problem, with where it is.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    /// manifest_unreadable, file_missing, checksum_mismatch, count_mismatch, car_damaged,
    /// block_corrupt, block_missing, state_unreadable, index_unreadable,
    /// index_row_without_state, index_tip_not_in_log, sqlite_damaged, event_blocks_missing.
    pub kind: String,
    /// index, state_store, blocks, ceramic_one, manifest.
    pub layer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
    pub detail: String,
}

#[derive(Debug, Default, Serialize)]
pub struct VerifyReport {
    pub node: String,
    pub streams: u64,
    pub index_rows: u64,
    pub blocks: u64,
    /// Events in a ceramic-one store's copy (0 without one).
    pub events: u64,
    pub findings: Vec<Finding>,
    /// Checks that could not run because the manifest lacks what they compare against (an
    /// older backup): neither a finding nor a pass, so the report does not claim either.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unchecked: Vec<String>,
}

fn finding(
    kind: &str,
    layer: &str,
    stream: Option<&str>,
    cid: Option<&str>,
    detail: String,
) -> Finding {
    Finding {
        kind: kind.into(),
        layer: layer.into(),
        stream: stream.map(str::to_string),
        cid: cid.map(str::to_string),
        detail,
    }
}

/// Verifies the backup in `dir`. An error means the check itself could not run (no such
/// directory, `pg_restore` missing); anything wrong with the backup is a finding.
pub fn verify(dir: &Path) -> Result<VerifyReport, BackupError> {
    if !dir.is_dir() {
        return Err(BackupError::new(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    let mut report = VerifyReport::default();
    let mpath = dir.join(manifest::FILE);
    let m: Manifest = match std::fs::read(&mpath)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(m) => m,
        Err(e) => {
            report.findings.push(finding(
                "manifest_unreadable",
                "manifest",
                None,
                None,
                format!("{}: {e} (an interrupted backup has none)", mpath.display()),
            ));
            return Ok(report);
        }
    };
    if m.format != manifest::FORMAT {
        report.findings.push(finding(
            "manifest_unreadable",
            "manifest",
            None,
            None,
            format!("format {:?}, expected {:?}", m.format, manifest::FORMAT),
        ));
        return Ok(report);
    }
    report.node = m.node.clone();
    check_files(dir, &m, &mut report.findings);
    // A ceramic-one node alone has no js-ceramic layers; any other backup must have all three.
    let js = m.index.is_some() || m.state_store.is_some() || m.blocks.is_some();
    if js || m.ceramic_one.is_none() {
        let streams = check_state(dir, &m, &mut report);
        check_index(dir, &m, &streams, &mut report)?;
        check_blocks(dir, &m, &streams, &mut report);
    }
    if let Some(layer) = &m.ceramic_one {
        check_ceramic_one(dir, layer, &mut report);
    }
    report.findings.sort();
    report.findings.dedup();
    Ok(report)
}

fn check_files(dir: &Path, m: &Manifest, out: &mut Vec<Finding>) {
    for f in m.files() {
        // The layer's name as findings spell it, from the directory the file is in.
        let layer = match f.path.split('/').next().unwrap_or("") {
            STATE_DIR => "state_store",
            super::ceramic_one::DIR => "ceramic_one",
            dir => dir,
        };
        match manifest::hash_file(&dir.join(&f.path)) {
            Err(e) => out.push(finding(
                "file_missing",
                layer,
                None,
                None,
                format!("{}: {e}", f.path),
            )),
            Ok((size, sha)) if size != f.size || sha != f.sha256 => out.push(finding(
                "checksum_mismatch",
                layer,
                None,
                None,
                format!(
                    "{}: {size} bytes, sha256 {sha}; the manifest says {} bytes, sha256 {}",
                    f.path, f.size, f.sha256
                ),
            )),
            Ok(_) => {}
        }
    }
}

fn check_state(
    dir: &Path,
    m: &Manifest,
    report: &mut VerifyReport,
) -> BTreeMap<String, StoredStream> {
    let mut streams = BTreeMap::new();
    let Some(layer) = &m.state_store else {
        report.findings.push(finding(
            "file_missing",
            "state_store",
            None,
            None,
            "the manifest has no state store layer".into(),
        ));
        return streams;
    };
    for d in layer.dirs.iter().filter(|d| statestore::is_stream_store(d)) {
        match statestore::read_streams(&dir.join(STATE_DIR).join(d)) {
            Ok(read) => {
                for (key, why) in read.unreadable {
                    report.findings.push(finding(
                        "state_unreadable",
                        "state_store",
                        Some(&key),
                        None,
                        why,
                    ));
                }
                streams.extend(read.streams);
            }
            Err(e) => {
                report
                    .findings
                    .push(finding("state_unreadable", "state_store", None, None, e))
            }
        }
    }
    report.streams = streams.len() as u64;
    if streams.len() as u64 != layer.streams {
        report.findings.push(finding(
            "count_mismatch",
            "state_store",
            None,
            None,
            format!(
                "{} streams in the copy, the manifest says {}",
                streams.len(),
                layer.streams
            ),
        ));
    }
    streams
}

fn check_index(
    dir: &Path,
    m: &Manifest,
    streams: &BTreeMap<String, StoredStream>,
    report: &mut VerifyReport,
) -> Result<(), BackupError> {
    let Some(layer) = &m.index else {
        report.findings.push(finding(
            "file_missing",
            "index",
            None,
            None,
            "the manifest has no index layer".into(),
        ));
        return Ok(());
    };
    let rows = match layer.kind.as_str() {
        "postgres" => {
            // Without pg_restore the check cannot run: that is not a damaged backup.
            index::pg_tool("pg_restore").map_err(BackupError::new)?;
            index::rows_from_dump(&dir.join(INDEX_PG))
        }
        "sqlite" => index::rows_from_sqlite(&dir.join(INDEX_SQLITE)),
        other => Err(format!("unknown index kind {other:?}")),
    };
    let rows = match rows {
        Ok(r) => r,
        Err(e) => {
            report
                .findings
                .push(finding("index_unreadable", "index", None, None, e));
            return Ok(());
        }
    };
    report.index_rows = rows.len() as u64;
    let counts = index::counts(&rows);
    if counts != layer.rows {
        report.findings.push(finding(
            "count_mismatch",
            "index",
            None,
            None,
            format!(
                "rows per model {counts:?}, the manifest says {:?}",
                layer.rows
            ),
        ));
    }
    for row in &rows {
        match streams.get(&row.stream_id) {
            None => report.findings.push(finding(
                "index_row_without_state",
                "index",
                Some(&row.stream_id),
                row.tip.as_deref(),
                format!(
                    "model {}: the index row's stream is not in the state store copy",
                    row.model
                ),
            )),
            Some(s) => {
                if let Some(tip) = &row.tip {
                    if !s.log.contains(tip) {
                        report.findings.push(finding(
                            "index_tip_not_in_log",
                            "index",
                            Some(&row.stream_id),
                            Some(tip),
                            format!(
                                "model {}: the index row's tip is not in the stream's state-store log ({} commits, tip {})",
                                row.model,
                                s.log.len(),
                                s.log.last().map(String::as_str).unwrap_or("")
                            ),
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

fn check_blocks(
    dir: &Path,
    m: &Manifest,
    streams: &BTreeMap<String, StoredStream>,
    report: &mut VerifyReport,
) {
    let Some(layer) = &m.blocks else {
        report.findings.push(finding(
            "file_missing",
            "blocks",
            None,
            None,
            "the manifest has no blocks layer".into(),
        ));
        return;
    };
    let path = dir.join(CAR);
    let car = match super::car::CarIndex::open(&path) {
        Ok(c) => c,
        Err(e) => {
            report.findings.push(finding(
                "car_damaged",
                "blocks",
                None,
                None,
                format!("{CAR}: {e}"),
            ));
            super::car::CarIndex::default()
        }
    };
    if let Some(d) = &car.damage {
        report.findings.push(finding(
            "car_damaged",
            "blocks",
            None,
            None,
            format!("{CAR}: {d}"),
        ));
    }
    for c in &car.corrupt {
        report.findings.push(finding(
            "block_corrupt",
            "blocks",
            None,
            Some(&c.to_string()),
            "the block's bytes do not hash to its CID".into(),
        ));
    }
    report.blocks = car.blocks.len() as u64;
    if car.damage.is_none() && car.blocks.len() as u64 + car.corrupt.len() as u64 != layer.blocks {
        report.findings.push(finding(
            "count_mismatch",
            "blocks",
            None,
            None,
            format!(
                "{} blocks in the CAR, the manifest says {}",
                car.blocks.len(),
                layer.blocks
            ),
        ));
    }
    for (stream, state) in streams {
        let mut seen = HashSet::new();
        let mut queue: Vec<Need> = Vec::new();
        for c in &state.log {
            match crate::ids::parse_cid(c) {
                Ok(cid) => queue.push(Need::commit(cid)),
                Err(e) => report.findings.push(finding(
                    "state_unreadable",
                    "state_store",
                    Some(stream),
                    Some(c),
                    format!("log entry is not a CID: {e}"),
                )),
            }
        }
        while let Some(need) = queue.pop() {
            if !seen.insert(need.cid) {
                continue;
            }
            let Some(data) = car.get(&need.cid) else {
                report.findings.push(finding(
                    "block_missing",
                    "blocks",
                    Some(stream),
                    Some(&need.cid.to_string()),
                    format!("the {} block is not in the CAR", need.role.as_str()),
                ));
                continue;
            };
            match expand(&need, &data) {
                Ok(more) => queue.extend(more),
                Err(e) => report.findings.push(finding(
                    "block_corrupt",
                    "blocks",
                    Some(stream),
                    Some(&need.cid.to_string()),
                    format!(
                        "the {} block's links cannot be read: {e}",
                        need.role.as_str()
                    ),
                )),
            }
        }
    }
}

/// The ceramic-one copy, checked like a store: SQLite's `PRAGMA integrity_check`, the event
/// and block counts the manifest recorded, and every event's blocks present.
fn check_ceramic_one(dir: &Path, layer: &CeramicOneLayer, report: &mut VerifyReport) {
    let db = dir.join(super::ceramic_one::DB);
    let push = |report: &mut VerifyReport, kind: &str, detail: String| {
        report
            .findings
            .push(finding(kind, "ceramic_one", None, None, detail))
    };
    if let Err(e) = super::ceramic_one::integrity(&db) {
        push(report, "sqlite_damaged", e);
        return;
    }
    let c = match super::ceramic_one::counts(&db) {
        Ok(c) => c,
        Err(e) => return push(report, "sqlite_damaged", e),
    };
    report.events = c.events;
    // Each count the manifest recorded is compared; one it lacks (a backup written before the
    // counts were) is listed as not checked, never taken as 0.
    let counted = [
        ("events", c.events, layer.events),
        ("blocks", c.blocks, layer.blocks),
    ];
    for (what, held, recorded) in counted {
        match recorded {
            Some(n) if n != held => push(
                report,
                "count_mismatch",
                format!(
                    "{held} {what} in {}, the manifest says {n}",
                    super::ceramic_one::DB
                ),
            ),
            Some(_) => {}
            None => report.unchecked.push(format!(
                "ceramic-one {what}: the manifest records no count (a backup taken before \
                 counts were recorded), so the {held} {what} in {} were not compared",
                super::ceramic_one::DB
            )),
        }
    }
    if c.dangling > 0 {
        push(
            report,
            "event_blocks_missing",
            format!(
                "{} event-block links in {} name a block the copy does not hold",
                c.dangling,
                super::ceramic_one::DB
            ),
        );
    }
}
