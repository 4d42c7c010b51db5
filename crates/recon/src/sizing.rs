//! A first level sized for the stores (issue 16): when the driver knows, before the first
//! round, how many keys the stores hold, where their keys lie and roughly how many differ — as
//! it does for stores held in memory (SQLite files, snapshots, ceramic-one event stores) — the
//! descent skips the single root fingerprint and the fixed 256-way split made for SQL
//! push-down, and starts with a split whose width, the later fanout and the leaf size are
//! chosen together to minimise the bytes of the whole descent plus a price per round.
//!
//! The plan comes from the cost model's expectations (`store.rs`): `d` differences fall at
//! random into the ranges of a level, so the ranges that differ at a level are those that hold
//! at least one of them; every split costs one fingerprint per child and store; a leaf costs
//! one 8-byte digest per key and store. Keys are assumed spread evenly over the hull (StreamIDs
//! are), and a wrong estimate of `d` costs bytes or a round, never a difference: the descent
//! below the first level is the usual one.

use super::key::Key;

/// What the driver knows of the stores before the first round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SizeHint {
    /// Keys each store holds, in store order.
    pub rows_per_store: Vec<u64>,
    /// The first and last key any store holds (`None`: every store is empty).
    pub hull: Option<(Key, Key)>,
    /// Differences expected (from the previous audit, or the caller's guess). The spread of
    /// the counts is a lower bound the plan uses when it is larger.
    pub expected_diffs: u64,
}

impl SizeHint {
    /// The number of differences the plan assumes: the estimate, or the count spread when that
    /// is larger (a store with k more keys differs in at least k of them).
    pub fn diffs(&self) -> u64 {
        let max = self.rows_per_store.iter().copied().max().unwrap_or(0);
        let min = self.rows_per_store.iter().copied().min().unwrap_or(0);
        self.expected_diffs.max(max - min)
    }
}

/// The shape of a sized descent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Sub-ranges of the first split of the hull.
    pub first: usize,
    /// Sub-ranges of every later split.
    pub fanout: usize,
    /// Ranges at most this large on every store are compared row by row.
    pub leaf_threshold: u64,
    /// Fingerprint levels before the leaves (rounds = levels + 2: digests, then entries).
    pub levels: usize,
}

/// The default price of one round in bytes per store when plans are compared
/// (`DescentParams::round_bytes`). A round trip costs latency that bytes do not: at 1 ms RTT
/// and 1 Gbit/s it costs as much time as ~125 KB. Far lower and the plan takes 6–7 rounds to
/// save a few hundred bytes (the fixed 256/16 plan); far higher and it buys one round less with
/// tens of kilobytes of fingerprints that agree.
pub const ROUND_BYTES: u64 = 2048;

/// Bytes of one range's question in the cost model, per store: a tag and two interpolated
/// bounds, which share most of their characters with the bound before. Measured in the recon
/// benchmark at 4–6 bytes; a rough value only shifts the balance between width and depth.
const QUERY_BYTES: f64 = 5.0;

/// Bytes of a count varint in an answer (counts up to 16383 take 2).
const COUNT_BYTES: f64 = 2.0;

/// Widths tried for the first split: powers of two from 16 (below that the levels under it
/// cost more than it saves) to 2^16 (the CLI's `--root-fanout` bound).
const FIRST_WIDTHS: std::ops::RangeInclusive<u32> = 4..=16;

/// Fanouts tried for later splits: 4 to 128 (negentropy uses 16; beyond 128 a level sends
/// more fingerprints per difference than a leaf of that size sends digests).
const FANOUTS: [usize; 6] = [4, 8, 16, 32, 64, 128];

/// Most fingerprint levels a plan may have: with a first split of 16 and fanouts of 128,
/// 4 levels reach leaves of one key at 2^32 keys.
const MAX_LEVELS: usize = 4;

/// Expected number of ranges, among `ranges` equal ones, that hold at least one of `d`
/// differences placed at random.
fn occupied(ranges: f64, d: f64) -> f64 {
    if ranges <= 1.0 {
        return ranges.min(d);
    }
    ranges * (1.0 - (1.0 - 1.0 / ranges).powf(d))
}

/// Expected bytes (all stores) and rounds of a descent over `rows` keys per store with `d`
/// differences, split `first` ways, then `fanout` ways for `levels - 1` more levels.
fn expected(rows: f64, d: f64, stores: f64, per_range: f64, plan: &Plan) -> (f64, usize) {
    let mut ranges = plan.first as f64;
    let mut bytes = ranges * per_range * stores;
    let mut differing = occupied(ranges, d);
    for _ in 1..plan.levels {
        ranges = differing * plan.fanout as f64;
        bytes += ranges * per_range * stores;
        differing = occupied(ranges, d);
    }
    let leaf = rows / (plan.first as f64 * (plan.fanout as f64).powi(plan.levels as i32 - 1));
    bytes += differing * (QUERY_BYTES + leaf * 8.0) * stores;
    (bytes, plan.levels + 2)
}

/// The cheapest plan for `stores` stores of `rows` keys each with `d` differences, when a
/// fingerprint takes `fingerprint_bytes` and a round is priced at `round_bytes` per store;
/// `None` when no split is worth it (`d` = 0, or so few keys that one leaf holds them all).
pub fn plan(
    rows: u64,
    d: u64,
    stores: usize,
    fingerprint_bytes: usize,
    round_bytes: u64,
) -> Option<Plan> {
    if d == 0 || rows <= 32 {
        return None;
    }
    let per_range = fingerprint_bytes as f64 + COUNT_BYTES + QUERY_BYTES;
    let (n, d, s) = (rows as f64, d as f64, stores as f64);
    let mut best: Option<(f64, Plan)> = None;
    for levels in 1..=MAX_LEVELS {
        for first in FIRST_WIDTHS.map(|p| 1usize << p) {
            for fanout in FANOUTS {
                if levels == 1 && fanout != FANOUTS[0] {
                    continue; // the fanout is unused: try each first width once
                }
                let leaf = n / (first as f64 * (fanout as f64).powi(levels as i32 - 1));
                if leaf < 1.0 {
                    continue;
                }
                // Twice the mean: leaves vary in size, and one just over the threshold would
                // cost a whole extra level.
                let leaf_threshold = (2.0 * leaf).ceil().max(2.0) as u64;
                let candidate = Plan {
                    first,
                    fanout,
                    leaf_threshold,
                    levels,
                };
                let (bytes, rounds) = expected(n, d, s, per_range, &candidate);
                let score = bytes + round_bytes as f64 * s * rounds as f64;
                if best.as_ref().is_none_or(|(b, _)| score < *b) {
                    best = Some((score, candidate));
                }
            }
        }
    }
    best.map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_plan_without_expected_differences_or_keys() {
        assert_eq!(plan(1_000_000, 0, 3, 8, ROUND_BYTES), None);
        assert_eq!(plan(32, 5, 2, 8, ROUND_BYTES), None);
    }

    #[test]
    fn plans_stay_within_their_bounds_and_widen_with_differences() {
        let mut last_first = 0;
        // Up to 1 % of the keys; beyond that, leaves of a few keys under a narrower first
        // level beat a very wide one.
        for d in [1u64, 10, 100, 1_000, 10_000] {
            let p = plan(1_000_000, d, 2, 8, ROUND_BYTES).expect("a plan");
            assert!((16..=65_536).contains(&p.first), "{p:?}");
            assert!(
                FANOUTS.contains(&p.fanout) && p.leaf_threshold >= 2,
                "{p:?}"
            );
            assert!((1..=MAX_LEVELS).contains(&p.levels), "{p:?}");
            // More differences: more of every level differs, so a wider first level pays.
            assert!(
                p.first >= last_first,
                "d={d}: {p:?} narrower than {last_first}"
            );
            last_first = p.first;
        }
    }

    #[test]
    fn a_dearer_round_buys_fewer_levels() {
        let cheap = plan(1_000_000, 100, 3, 32, ROUND_BYTES).expect("a plan");
        let dear = plan(1_000_000, 100, 3, 32, 64 * 1024).expect("a plan");
        assert!(dear.levels < cheap.levels, "{cheap:?} vs {dear:?}");
    }

    #[test]
    fn the_count_spread_is_a_floor_for_the_estimate() {
        let hint = SizeHint {
            rows_per_store: vec![1_000, 1_040, 990],
            hull: None,
            expected_diffs: 10,
        };
        assert_eq!(hint.diffs(), 50);
    }
}
