//! The repair journal: an append-only JSONL file, one record per action step and one per
//! outcome, each written and fsynced before the next write to a node. A repair that is killed
//! loses at most the step in flight, and that step is idempotent on the node (re-applying a
//! commit it has is a no-op), so a re-run can start from the target's current state.
//!
//! A re-run skips the actions whose last outcome for the same target, stream and winning tip
//! was `unrepairable`, or `repaired` after the divergence was observed (a repair recorded
//! before a newer audit saw the stream diverge again does not count); a `failed` one is tried
//! again.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One line of the journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub at: String,
    pub run: String,
    pub model: String,
    pub stream_id: String,
    pub target: String,
    /// The tip the target must reach (empty when unknown).
    pub winning_tip: String,
    /// `create`, `commit`, `reindex`, `verify`, or `outcome`.
    pub step: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
    /// `ok`, `error`; for `outcome`: `repaired`, `failed`, `unrepairable`.
    pub result: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

pub struct Journal {
    path: PathBuf,
    file: File,
    /// Last outcome per (model, stream, target, winning tip), with when it was recorded.
    outcomes: HashMap<(String, String, String, String), (String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("repair journal {path}: {message}")]
    Io { path: String, message: String },
    #[error("repair journal {path}:{line}: not a journal record: {message}")]
    Corrupt {
        path: String,
        line: usize,
        message: String,
    },
}

impl Journal {
    /// Opens (or creates) the journal and reads what earlier runs did. A torn last line (the
    /// process died mid-write) is cut off; any other unreadable line is an error, so a wrong
    /// file is never appended to.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let io = |e: std::io::Error| JournalError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        // A run killed mid-write leaves a torn last line: cut it off, so that the records
        // appended after it start on a line of their own.
        if let Ok(bytes) = std::fs::read(path) {
            if !bytes.is_empty() && bytes.last() != Some(&b'\n') {
                let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                tracing::warn!(
                    "repair journal {}: cutting off a torn last line",
                    path.display()
                );
                OpenOptions::new()
                    .write(true)
                    .open(path)
                    .and_then(|f| f.set_len(keep as u64))
                    .map_err(io)?;
            }
        }
        let mut outcomes = HashMap::new();
        if path.exists() {
            let lines: Vec<String> = BufReader::new(File::open(path).map_err(io)?)
                .lines()
                .collect::<Result<_, _>>()
                .map_err(io)?;
            for (i, line) in lines.iter().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<Record>(line) {
                    Ok(r) if r.step == "outcome" => {
                        outcomes.insert(
                            (r.model, r.stream_id, r.target, r.winning_tip),
                            (r.result, r.at),
                        );
                    }
                    Ok(_) => {}
                    Err(e) => {
                        return Err(JournalError::Corrupt {
                            path: path.display().to_string(),
                            line: i + 1,
                            message: e.to_string(),
                        })
                    }
                }
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            outcomes,
        })
    }

    /// The last outcome an earlier run recorded for this action, and when (RFC 3339).
    pub fn outcome(
        &self,
        model: &str,
        stream: &str,
        target: &str,
        tip: &str,
    ) -> Option<(&str, &str)> {
        self.outcomes
            .get(&(
                model.to_string(),
                stream.to_string(),
                target.to_string(),
                tip.to_string(),
            ))
            .map(|(r, at)| (r.as_str(), at.as_str()))
    }

    /// Appends one record and fsyncs it.
    pub fn append(&mut self, record: &Record) -> Result<(), JournalError> {
        let io = |e: std::io::Error| JournalError::Io {
            path: self.path.display().to_string(),
            message: e.to_string(),
        };
        let mut line = serde_json::to_vec(record).map_err(|e| JournalError::Io {
            path: self.path.display().to_string(),
            message: e.to_string(),
        })?;
        line.push(b'\n');
        self.file.write_all(&line).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        if record.step == "outcome" {
            self.outcomes.insert(
                (
                    record.model.clone(),
                    record.stream_id.clone(),
                    record.target.clone(),
                    record.winning_tip.clone(),
                ),
                (record.result.clone(), record.at.clone()),
            );
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(step: &str, result: &str) -> Record {
        Record {
            at: "t".into(),
            run: "r".into(),
            model: "m".into(),
            stream_id: "s".into(),
            target: "b".into(),
            winning_tip: "tip".into(),
            step: step.into(),
            cid: None,
            result: result.into(),
            detail: String::new(),
        }
    }

    #[test]
    fn outcomes_survive_a_reopen_and_a_torn_last_line_is_ignored() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("j.jsonl");
        {
            let mut j = Journal::open(&path).expect("open");
            j.append(&record("commit", "ok")).expect("append");
            j.append(&record("outcome", "repaired")).expect("append");
        }
        // A run killed mid-write leaves half a line.
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(br#"{"at":"t","run":"#).expect("write");
        drop(f);
        let mut j = Journal::open(&path).expect("reopen");
        assert_eq!(j.outcome("m", "s", "b", "tip"), Some(("repaired", "t")));
        assert_eq!(j.outcome("m", "s", "b", "other tip"), None);
        j.append(&record("outcome", "failed")).expect("append");
        let j = Journal::open(&path).expect("reopen");
        assert_eq!(j.outcome("m", "s", "b", "tip"), Some(("failed", "t")));
    }

    #[test]
    fn a_file_that_is_not_a_journal_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("j.jsonl");
        std::fs::write(&path, "not json\n{}\n").expect("write");
        let err = Journal::open(&path).err().expect("refused").to_string();
        assert!(err.contains("j.jsonl:1: not a journal record"), "{err}");
    }
}
