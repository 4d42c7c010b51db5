//! Download mode's store for a Postgres node: every stream id of a model in one byte arena,
//! each with the row hash its Postgres computed while streaming the table, and prefix sums of
//! those hashes, so any range fingerprint costs two binary searches.
//!
//! It keeps ~85 bytes a row where a [`crate::recon::MemoryStore`] of full entries keeps ~260
//! (the model repeated in every key, the tip as its own allocation): 3 nodes × 10^6 rows fit in
//! ~250 MB instead of ~950 MB. Tips and column digests are not kept: the few rows the descent
//! asks for as entries are read back from the node, in the same snapshot.

use std::cmp::Ordering;

use rayon::prelude::*;

use crate::recon::{AssociativeHash, HashCount, Key, PgHash64, Range, Summary};

pub struct HashedKeys {
    /// `model ‖ 0x00`, the head of every key.
    head: Vec<u8>,
    /// Stream ids as downloaded (unsorted), back to back.
    arena: Vec<u8>,
    /// `arena[offsets[j]..offsets[j + 1]]` is downloaded id `j`.
    offsets: Vec<u32>,
    /// `order[i]` is the downloaded id that is `i`-th in byte order (duplicates dropped).
    order: Vec<u32>,
    /// Row hash of the `i`-th id in byte order.
    hashes: Vec<u64>,
    /// `prefix[i]` = wrapping sum of `hashes[..i]`.
    prefix: Vec<u64>,
}

/// Rows as they stream in: ids back to back in one arena, with their row hashes.
#[derive(Default)]
pub struct Downloaded {
    pub arena: Vec<u8>,
    pub offsets: Vec<u32>,
    pub hashes: Vec<u64>,
}

impl Downloaded {
    /// Appends one row; `Err` once the ids outgrow 4 GiB (u32 offsets keep 4 bytes a row).
    pub fn push(&mut self, stream: &[u8], hash: u64) -> Result<(), String> {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        self.arena.extend_from_slice(stream);
        let end = u32::try_from(self.arena.len()).map_err(|_| {
            "more than 4 GiB of stream ids: too large for download mode".to_string()
        })?;
        self.offsets.push(end);
        self.hashes.push(hash);
        Ok(())
    }
}

impl HashedKeys {
    /// Seals downloaded rows: sorted by bytes on all cores; when an id appears twice the last
    /// one wins (as an upsert would).
    pub fn new(model: &str, rows: Downloaded) -> Self {
        let Downloaded {
            arena,
            mut offsets,
            hashes: raw,
        } = rows;
        if offsets.is_empty() {
            offsets.push(0);
        }
        let id = |j: u32| &arena[offsets[j as usize] as usize..offsets[j as usize + 1] as usize];
        let mut order: Vec<u32> = (0..raw.len() as u32).collect();
        order.par_sort_unstable_by(|&a, &b| id(a).cmp(id(b)).then(a.cmp(&b)));
        // Keep the last of each run of equal ids.
        let mut kept: Vec<u32> = Vec::with_capacity(order.len());
        for j in order {
            match kept.last_mut() {
                Some(last) if id(*last) == id(j) => *last = j,
                _ => kept.push(j),
            }
        }
        kept.shrink_to_fit();
        let hashes: Vec<u64> = kept.iter().map(|&j| raw[j as usize]).collect();
        drop(raw);
        let mut prefix = Vec::with_capacity(hashes.len() + 1);
        let mut acc = 0u64;
        prefix.push(acc);
        for h in &hashes {
            acc = acc.wrapping_add(*h);
            prefix.push(acc);
        }
        let mut head = model.as_bytes().to_vec();
        head.push(0);
        Self {
            head,
            arena,
            offsets,
            order: kept,
            hashes,
            prefix,
        }
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    fn stream(&self, i: usize) -> &[u8] {
        let j = self.order[i] as usize;
        &self.arena[self.offsets[j] as usize..self.offsets[j + 1] as usize]
    }

    fn key(&self, i: usize) -> Key {
        let mut k = self.head.clone();
        k.extend_from_slice(self.stream(i));
        Key::from_bytes(k)
    }

    /// Key `i` against `other` in byte order, without building the key.
    fn cmp_key(&self, i: usize, other: &Key) -> Ordering {
        self.head
            .iter()
            .chain(self.stream(i))
            .cmp(other.as_bytes().iter())
    }

    fn partition(&self, bound: &Key) -> usize {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.cmp_key(mid, bound) == Ordering::Less {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    fn span(&self, range: &Range) -> (usize, usize) {
        let lo = self.partition(&range.start);
        let hi = range.end.as_ref().map_or(self.len(), |e| self.partition(e));
        (lo, hi.max(lo))
    }

    pub fn summary(&self, range: &Range, bounds: bool) -> Summary<PgHash64> {
        let (lo, hi) = self.span(range);
        Summary {
            fingerprint: HashCount {
                hash: PgHash64(self.prefix[hi].wrapping_sub(self.prefix[lo])),
                count: (hi - lo) as u64,
            },
            bounds: (bounds && hi > lo).then(|| (self.key(lo), self.key(hi - 1))),
        }
    }

    pub fn digests(&self, range: &Range) -> Vec<u64> {
        let (lo, hi) = self.span(range);
        self.hashes[lo..hi]
            .iter()
            .map(|h| PgHash64(*h).short())
            .collect()
    }

    /// Stream ids (lossy UTF-8, as keys show them) and row hashes of the range, in key order.
    pub fn rows(&self, range: &Range) -> Vec<(String, u64)> {
        let (lo, hi) = self.span(range);
        (lo..hi)
            .map(|i| {
                (
                    String::from_utf8_lossy(self.stream(i)).into_owned(),
                    self.hashes[i],
                )
            })
            .collect()
    }
}
