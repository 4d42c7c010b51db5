//! One node's sorted set, as the descent sees it: a [`RangeStore`] answers batches of range
//! [`Query`]s. The trait is synchronous and I/O-free on purpose; stores that talk to a database
//! or a node implement their own driver around [`super::Descent`] (which never blocks) instead.
//!
//! [`MemoryStore`] is the reference implementation: a sealed, sorted vector with prefix sums, so
//! every range fingerprint costs two binary searches whatever the range's size.

use std::collections::BTreeSet;
use std::convert::Infallible;

use super::hash::{AssociativeHash, HashCount};
use super::key::{Entry, Key, Range};

/// One question about one range. A round sends the same batch of queries to every store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    /// Entry count and first/last key of the range, without hashing anything: the cheap first
    /// look of a SQL store (see `DescentParams::root_bounds_only`).
    Bounds { range: Range },
    /// Fingerprint of the range; with `bounds`, also its first and last key.
    Summary { range: Range, bounds: bool },
    /// The `short()` digest of every entry in the range, in key order.
    Digests { range: Range },
    /// The entries of the range; with `only`, just those whose digest is in the set.
    Entries {
        range: Range,
        only: Option<BTreeSet<u64>>,
    },
}

impl Query {
    pub fn range(&self) -> &Range {
        match self {
            Self::Bounds { range }
            | Self::Summary { range, .. }
            | Self::Digests { range }
            | Self::Entries { range, .. } => range,
        }
    }
}

/// Bytes of a varint holding `v`.
fn varint_len(v: u64) -> usize {
    (64 - v.leading_zeros() as usize).div_ceil(7).max(1)
}

/// Bytes of `key` sent after `prev` in the cost model: the length shared with the previous key
/// and the rest, as negentropy encodes bounds. Keys in a batch are sorted, so the model part and
/// the StreamID type prefix travel once, not in every range.
fn key_wire_len(prev: &[u8], key: &[u8]) -> usize {
    let shared = prev.iter().zip(key).take_while(|(a, b)| a == b).count();
    let rest = key.len() - shared;
    varint_len(shared as u64) + varint_len(rest as u64) + rest
}

/// Bytes a batch of queries takes on the wire in the cost model: per query a tag byte and its
/// two bounds (prefix-compressed against the previous bound; +inf is one byte), and for a
/// filtered entries query 8 bytes per digest.
pub fn queries_wire_len<'a>(batch: impl IntoIterator<Item = &'a Query>) -> usize {
    let mut prev: &[u8] = &[];
    let mut total = 0;
    for q in batch {
        let range = q.range();
        total += 1 + key_wire_len(prev, range.start.as_bytes());
        prev = range.start.as_bytes();
        total += match &range.end {
            Some(end) => {
                let n = key_wire_len(prev, end.as_bytes());
                prev = end.as_bytes();
                n
            }
            None => 1,
        };
        if let Query::Entries { only: Some(d), .. } = q {
            total += varint_len(d.len() as u64) + 8 * d.len();
        }
    }
    total
}

/// The first and last key of a range, `None` when it is empty (or they were not asked for).
pub type Bounds = Option<(Key, Key)>;

/// A range's fingerprint plus, when asked for, its first and last key (`None` when empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary<H> {
    pub fingerprint: HashCount<H>,
    pub bounds: Option<(Key, Key)>,
}

/// The answer to one [`Query`], same position in the batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer<H> {
    /// Entry count and, unless empty, first and last key.
    Bounds {
        count: u64,
        bounds: Option<(Key, Key)>,
    },
    Summary(Summary<H>),
    Digests(Vec<u64>),
    Entries(Vec<Entry>),
}

/// Bytes one store's answers to a batch take on the wire in the cost model: a fingerprint is
/// `WIRE_BYTES` of hash plus a varint count; bounds and entry keys are prefix-compressed against
/// the previous key in the answer; a digest is 8 bytes; an entry also carries its tip (with a
/// length byte) and its 8-byte column digest.
pub fn answers_wire_len<H: AssociativeHash>(answers: &[Answer<H>]) -> usize {
    let mut prev: &[u8] = &[];
    let mut total = 0;
    for a in answers {
        match a {
            Answer::Bounds { count, bounds } => {
                total += varint_len(*count);
                if let Some((first, last)) = bounds {
                    total += key_wire_len(prev, first.as_bytes());
                    total += key_wire_len(first.as_bytes(), last.as_bytes());
                    prev = last.as_bytes();
                }
            }
            Answer::Summary(s) => {
                total += H::WIRE_BYTES + varint_len(s.fingerprint.count);
                if let Some((first, last)) = &s.bounds {
                    total += key_wire_len(prev, first.as_bytes());
                    total += key_wire_len(first.as_bytes(), last.as_bytes());
                    prev = last.as_bytes();
                }
            }
            Answer::Digests(d) => total += varint_len(d.len() as u64) + 8 * d.len(),
            Answer::Entries(list) => total += entries_wire_len(list),
        }
    }
    total
}

/// The shortest key above `prev` and at most `key` (`prev` < `key`): `key` cut one byte past
/// what the two share. A range starting there holds `key` and not `prev`, as one starting at
/// `key` would, and its bound costs a few bytes in a question instead of a whole key.
pub fn separator(prev: &Key, key: &Key) -> Key {
    let (p, k) = (prev.as_bytes(), key.as_bytes());
    let shared = p.iter().zip(k).take_while(|(a, b)| a == b).count();
    Key::from_bytes(k[..(shared + 1).min(k.len())].to_vec())
}

/// The ranks `n·i / parts` (i = 1 … parts − 1) among `n` sorted keys, ascending; ranks that
/// repeat (fewer keys than parts) are taken once, rank 0 never (the first range would be
/// empty).
pub fn quantile_ranks(n: usize, parts: usize) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::new();
    for i in 1..parts.max(1) {
        let rank = ((n as u128 * i as u128) / parts as u128) as usize;
        if rank > out.last().copied().unwrap_or(0) && rank < n {
            out.push(rank);
        }
    }
    out
}

/// Bytes of one list of entries in the cost model: a count, then per entry its key
/// (prefix-compressed against the previous entry's), its tip with a length varint, and its
/// 8-byte column digest.
pub fn entries_wire_len(list: &[Entry]) -> usize {
    let mut prev: &[u8] = &[];
    let mut total = varint_len(list.len() as u64);
    for e in list {
        total += key_wire_len(prev, e.key.as_bytes())
            + varint_len(e.value.tip.len() as u64)
            + e.value.tip.len()
            + 8;
        prev = e.key.as_bytes();
    }
    total
}

/// One node's sorted key set. Implement the three per-range methods; `answer` batches them
/// (override it to answer a whole round at once, as a SQL store does).
pub trait RangeStore {
    type Hash: AssociativeHash;
    type Error: std::error::Error + Send + Sync + 'static;

    fn summary(&mut self, range: &Range, bounds: bool) -> Result<Summary<Self::Hash>, Self::Error>;
    fn digests(&mut self, range: &Range) -> Result<Vec<u64>, Self::Error>;
    fn entries(
        &mut self,
        range: &Range,
        only: Option<&BTreeSet<u64>>,
    ) -> Result<Vec<Entry>, Self::Error>;

    /// Count and first/last key of a range; by default from `summary` (free for a store with
    /// prefix sums; a SQL store overrides `answer` to skip the hashing).
    fn bounds(&mut self, range: &Range) -> Result<(u64, Bounds), Self::Error> {
        let s = self.summary(range, true)?;
        Ok((s.fingerprint.count, s.bounds))
    }

    /// The store's key count and first/last key when known without asking it anything (a
    /// store held in memory); `None` by default. [`super::run_descent`] sizes its first level
    /// from these when `DescentParams::sized_first_level` is on.
    fn size(&mut self) -> Option<(u64, Bounds)> {
        None
    }

    /// Split points at the store's key ranks `n·i / parts` for i = 1 … parts − 1 (strictly
    /// increasing; each the shortest [`separator`] from the key before it),
    /// when it can list them without asking anything (a store held in memory or a local file);
    /// `None` by default. [`super::run_descent`] cuts a sized first level at these instead of
    /// interpolating between the first and last key, so every first-level range holds its
    /// share of keys however they cluster (EventIds of one controller share 20+ leading bytes,
    /// and interpolated ranges then hold whole controllers or nothing).
    fn quantiles(&mut self, _parts: usize) -> Option<Vec<Key>> {
        None
    }

    fn answer(&mut self, batch: &[Query]) -> Result<Vec<Answer<Self::Hash>>, Self::Error> {
        batch
            .iter()
            .map(|q| match q {
                Query::Bounds { range } => self
                    .bounds(range)
                    .map(|(count, bounds)| Answer::Bounds { count, bounds }),
                Query::Summary { range, bounds } => {
                    self.summary(range, *bounds).map(Answer::Summary)
                }
                Query::Digests { range } => self.digests(range).map(Answer::Digests),
                Query::Entries { range, only } => {
                    self.entries(range, only.as_ref()).map(Answer::Entries)
                }
            })
            .collect()
    }
}

/// A sealed in-memory store: entries sorted by key (one per key), per-entry hashes, and prefix
/// sums of those hashes so `summary` is O(log n).
#[derive(Clone, Debug)]
pub struct MemoryStore<H> {
    entries: Vec<Entry>,
    hashes: Vec<H>,
    /// `prefix[i]` = sum of `hashes[..i]`; `prefix.len() == entries.len() + 1`.
    prefix: Vec<H>,
}

impl<H: AssociativeHash> MemoryStore<H> {
    /// Sorts and seals `entries`. When a key appears more than once the last one wins, as an
    /// upsert into a table keyed by stream id would.
    pub fn new(entries: impl IntoIterator<Item = Entry>) -> Self {
        Self::with_hashes(entries.into_iter().map(|e| {
            let h = e.hash::<H>();
            (e, h)
        }))
    }

    /// Like [`MemoryStore::new`], with each entry's hash already computed (callers hash in
    /// parallel; this module stays free of threads). The hash must be `entry.hash::<H>()`.
    pub fn with_hashes(entries: impl IntoIterator<Item = (Entry, H)>) -> Self {
        let mut entries: Vec<(Entry, H)> = entries.into_iter().collect();
        // Stable sort keeps insertion order among equal keys; keep the last of each run.
        entries.sort_by(|a, b| a.0.key.cmp(&b.0.key));
        let mut deduped: Vec<Entry> = Vec::with_capacity(entries.len());
        let mut hashes: Vec<H> = Vec::with_capacity(entries.len());
        for (e, h) in entries {
            match deduped.last_mut() {
                Some(last) if last.key == e.key => {
                    *last = e;
                    if let Some(lh) = hashes.last_mut() {
                        *lh = h;
                    }
                }
                _ => {
                    deduped.push(e);
                    hashes.push(h);
                }
            }
        }
        let mut prefix = Vec::with_capacity(hashes.len() + 1);
        let mut acc = H::zero();
        prefix.push(acc.clone());
        for h in &hashes {
            acc = acc.add(h);
            prefix.push(acc.clone());
        }
        Self {
            entries: deduped,
            hashes,
            prefix,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The sealed entries, sorted by key.
    pub fn as_slice(&self) -> &[Entry] {
        &self.entries
    }

    /// Index range `[lo, hi)` of the entries inside `range`.
    fn span(&self, range: &Range) -> (usize, usize) {
        let lo = self.entries.partition_point(|e| e.key < range.start);
        let hi = match &range.end {
            None => self.entries.len(),
            Some(end) => self.entries.partition_point(|e| e.key < *end),
        };
        (lo, hi.max(lo))
    }
}

impl<H: AssociativeHash> RangeStore for MemoryStore<H> {
    type Hash = H;
    type Error = Infallible;

    fn summary(&mut self, range: &Range, bounds: bool) -> Result<Summary<H>, Infallible> {
        let (lo, hi) = self.span(range);
        let fingerprint = HashCount {
            hash: self.prefix[hi].sub(&self.prefix[lo]),
            count: (hi - lo) as u64,
        };
        let bounds = (bounds && hi > lo).then(|| {
            (
                self.entries[lo].key.clone(),
                self.entries[hi - 1].key.clone(),
            )
        });
        Ok(Summary {
            fingerprint,
            bounds,
        })
    }

    fn size(&mut self) -> Option<(u64, Bounds)> {
        let bounds = match (self.entries.first(), self.entries.last()) {
            (Some(f), Some(l)) => Some((f.key.clone(), l.key.clone())),
            _ => None,
        };
        Some((self.entries.len() as u64, bounds))
    }

    fn digests(&mut self, range: &Range) -> Result<Vec<u64>, Infallible> {
        let (lo, hi) = self.span(range);
        Ok(self.hashes[lo..hi].iter().map(H::short).collect())
    }

    fn entries(
        &mut self,
        range: &Range,
        only: Option<&BTreeSet<u64>>,
    ) -> Result<Vec<Entry>, Infallible> {
        let (lo, hi) = self.span(range);
        Ok(self.entries[lo..hi]
            .iter()
            .zip(&self.hashes[lo..hi])
            .filter(|(_, h)| only.is_none_or(|set| set.contains(&h.short())))
            .map(|(e, _)| e.clone())
            .collect())
    }
}

/// A range's reported first and last key: both inside it, the first not after the last.
/// Split points are drawn between them, and points outside would make children overlap.
pub(crate) fn check_bounds(
    store: usize,
    range: &Range,
    bounds: Option<&(Key, Key)>,
) -> Result<(), super::descent::DescentError> {
    let Some((first, last)) = bounds else {
        return Ok(());
    };
    for key in [first, last] {
        if !range.contains(key) || first > last {
            return Err(super::descent::DescentError::OutOfRange {
                store,
                key: key.to_string(),
                range: range.to_string(),
            });
        }
    }
    Ok(())
}

/// Entries answered for `range` must lie in it, each key at most once.
pub(crate) fn check_entries(
    store: usize,
    range: &Range,
    entries: &[Entry],
) -> Result<(), super::descent::DescentError> {
    use super::descent::DescentError;
    let mut seen = BTreeSet::new();
    for e in entries {
        if !range.contains(&e.key) {
            return Err(DescentError::OutOfRange {
                store,
                key: e.key.to_string(),
                range: range.to_string(),
            });
        }
        if !seen.insert(&e.key) {
            return Err(DescentError::DuplicateKey {
                store,
                key: e.key.to_string(),
            });
        }
    }
    Ok(())
}
