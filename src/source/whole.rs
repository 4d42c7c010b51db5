//! An index read whole into memory (SQLite, snapshot files): one sorted, hashed store per model
//! and its invalid rows, answering every query here. The kinds that read whole embed this and
//! add only what differs (how a second look is read, whether rows can change).

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use super::{
    invalid_rows, memory_store, Compare, IndexHash, InvalidRow, Loaded, ModelState, NodeStats,
};
use crate::recon::{Answer, Entry, MemoryStore, Query, RangeStore};

pub struct WholeIndex {
    stores: HashMap<String, MemoryStore<IndexHash>>,
    invalid: HashMap<String, Vec<InvalidRow>>,
    stats: NodeStats,
}

impl WholeIndex {
    /// Hashes and checks every row of `loaded` (read since `started`); returns the index and the
    /// node's models.
    pub fn new(
        loaded: Loaded,
        started: Instant,
        compare: Compare,
    ) -> (Self, BTreeMap<String, ModelState>) {
        let mut stores = HashMap::new();
        let mut invalid = HashMap::new();
        let mut rows = 0u64;
        for (model, entries) in loaded.rows {
            rows += entries.len() as u64;
            invalid.insert(model.clone(), invalid_rows(&tips_of(&entries)));
            stores.insert(model, memory_store(compare.apply(entries)));
        }
        let index = Self {
            stores,
            invalid,
            stats: NodeStats {
                rows,
                bytes_received: loaded.bytes,
                statements: 0,
                millis: started.elapsed().as_millis() as u64,
            },
        };
        (index, loaded.models)
    }

    pub fn stats(&self) -> NodeStats {
        self.stats.clone()
    }

    pub fn entries(&self, model: &str) -> Vec<Entry> {
        self.stores
            .get(model)
            .map(|s| s.as_slice().to_vec())
            .unwrap_or_default()
    }

    pub fn answer(&mut self, model: &str, batch: &[Query]) -> Vec<Answer<IndexHash>> {
        match self.stores.get_mut(model) {
            Some(store) => answer(store, batch),
            // A ready model with no rows: an empty table.
            None => answer(&mut MemoryStore::new([]), batch),
        }
    }

    pub fn invalid_rows(&self, model: &str) -> Vec<InvalidRow> {
        self.invalid.get(model).cloned().unwrap_or_default()
    }

    /// The held entries of `streams` (absent streams are left out).
    pub fn rows_of(&self, model: &str, streams: &[String]) -> Vec<Entry> {
        self.stores
            .get(model)
            .map(|m| select(m, streams))
            .unwrap_or_default()
    }

    /// `(stream_id, tip)` of the model's rows with a tip: all, or `sample` drawn at random.
    pub fn tips(&self, model: &str, sample: Option<u64>) -> Vec<(String, String)> {
        let mut rows: Vec<(String, String)> = self
            .stores
            .get(model)
            .map(|m| {
                m.as_slice()
                    .iter()
                    .filter(|e| !e.value.tip.is_empty())
                    .map(|e| (e.key.stream().to_string(), e.value.tip.clone()))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(n) = sample {
            // A fresh draw each run: order by a hash of the stream id salted with the clock.
            let salt = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
                .to_le_bytes();
            let rank = |s: &str| {
                let mut h = <sha2::Sha256 as sha2::Digest>::new();
                sha2::Digest::update(&mut h, salt);
                sha2::Digest::update(&mut h, s.as_bytes());
                sha2::Digest::finalize(h)
            };
            rows.sort_by_cached_key(|(s, _)| rank(s));
            rows.truncate(usize::try_from(n).unwrap_or(usize::MAX));
        }
        rows
    }
}

/// A memory store's answers (it cannot fail).
pub fn answer(store: &mut MemoryStore<IndexHash>, batch: &[Query]) -> Vec<Answer<IndexHash>> {
    match store.answer(batch) {
        Ok(a) => a,
        Err(e) => match e {},
    }
}

/// The entries of `streams` held in `store`.
pub fn select(store: &MemoryStore<IndexHash>, streams: &[String]) -> Vec<Entry> {
    let wanted: std::collections::HashSet<&String> = streams.iter().collect();
    store
        .as_slice()
        .iter()
        .filter(|e| wanted.contains(&e.key.stream()))
        .cloned()
        .collect()
}

/// `(stream_id, tip)` of entries, a NULL (empty) tip as `None`: what the row check reads.
pub fn tips_of(entries: &[Entry]) -> Vec<(String, Option<String>)> {
    entries
        .iter()
        .map(|e| {
            (
                e.key.stream(),
                Some(e.value.tip.clone()).filter(|t| !t.is_empty()),
            )
        })
        .collect()
}
