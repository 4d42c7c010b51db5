//! The N-way descent against a plain `BTreeMap` oracle, after negentropy's differential fuzzer:
//! every key is placed on some subset of 2–5 stores, sometimes with a different value on one of
//! them; the descent must report exactly the keys the oracle finds, with every store's value.

use std::collections::{BTreeMap, BTreeSet};

use ceramic_audit::recon::{
    interpolate, quantile_ranks, run_descent, separator, split_between, Alphabet, AssociativeHash,
    Bounds, DescentParams, Difference, Entry, Key, Md5Lanes, MemoryStore, Range, RangeStore,
    Sha256a, Summary, Value,
};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};

use crate::common::check;

/// One key of a generated case: where it lives and whether one store holds another value.
#[derive(Clone, Debug)]
struct Placement {
    key: Key,
    /// Bit i set: present on store i (0 = on every store).
    mask: u16,
    /// Some(i): store i holds a different tip (if present there).
    altered: Option<usize>,
    /// Some(i): store i holds the same tip but other column content.
    content: Option<usize>,
}

fn base36_key() -> impl Strategy<Value = Key> {
    // Realistic keys: one or two models, MID-like stream ids with a fixed prefix.
    (0..2u8, "[0-9a-z]{6,12}").prop_map(|(m, tail)| {
        Key::new(
            &format!("kjzl6hvfrbw6c{m}"),
            &format!("kjzl6kcym7w8y{tail}"),
        )
    })
}

fn awkward_key() -> impl Strategy<Value = Key> {
    // Byte strings made to break interpolation: empty, prefixes of each other, 0x00 and 0xff runs.
    proptest::collection::vec(
        prop_oneof![Just(0u8), Just(1), Just(b'a'), Just(0x7f), Just(0xff)],
        0..7,
    )
    .prop_map(Key::from_bytes)
}

fn placement(key: impl Strategy<Value = Key>) -> impl Strategy<Value = Placement> {
    (
        key,
        prop_oneof![3 => Just(0u16), 2 => any::<u16>()],
        proptest::option::weighted(0.15, 0..5usize),
        proptest::option::weighted(0.05, 0..5usize),
    )
        .prop_map(|(key, mask, altered, content)| Placement {
            key,
            mask,
            altered,
            content,
        })
}

#[derive(Clone, Debug)]
struct Case {
    stores: usize,
    keys: Vec<Placement>,
    params: DescentParams,
    /// The stores list their key quantiles (a sized first level is cut at them).
    quantiles: bool,
}

fn params() -> impl Strategy<Value = DescentParams> {
    (
        2..9usize,
        2..6usize,
        1..7u64,
        any::<bool>(),
        prop_oneof![4 => Just(64usize), 1 => 2..6usize],
        (
            prop_oneof![Just(Alphabet::Base36), Just(Alphabet::Bytes)],
            any::<bool>(),
            // The sized first level, planned for an estimate that may be far off.
            proptest::option::weighted(0.3, 0..400u64),
            any::<bool>(),
        ),
        // Rounds priced from cheap to very dear.
        prop_oneof![Just(2048u64), 1..1_000_000u64],
    )
        .prop_map(
            |(
                root_fanout,
                fanout,
                leaf_threshold,
                leaf_digests,
                max_rounds,
                (alphabet, root_bounds_only, sized, grid),
                round_bytes,
            )| {
                // Small max_rounds exercise the safety net (fetch every open range whole).
                DescentParams {
                    root_fanout,
                    fanout,
                    leaf_threshold,
                    leaf_digests,
                    max_rounds,
                    alphabet,
                    root_bounds_only,
                    grid,
                    sized_first_level: sized.is_some(),
                    expected_diffs: sized.unwrap_or(0),
                    round_bytes,
                    ..DescentParams::default()
                }
            },
        )
}

fn case(key: impl Strategy<Value = Key>) -> impl Strategy<Value = Case> {
    (
        2..=5usize,
        proptest::collection::vec(placement(key), 0..300),
        params(),
        any::<bool>(),
    )
        .prop_map(|(stores, keys, params, quantiles)| Case {
            stores,
            keys,
            params,
            quantiles,
        })
}

/// The stores' contents, built from the placements (a later duplicate key replaces an earlier
/// one, as in the store).
fn contents(case: &Case) -> Vec<BTreeMap<Key, Value>> {
    let mut stores = vec![BTreeMap::new(); case.stores];
    for (i, p) in case.keys.iter().enumerate() {
        let all = (1u16 << case.stores) - 1;
        let mask = if p.mask & all == 0 { all } else { p.mask & all };
        for (s, store) in stores.iter_mut().enumerate() {
            if mask & (1 << s) == 0 {
                store.remove(&p.key);
                continue;
            }
            let tip = if p.altered.map(|a| a % case.stores) == Some(s) {
                format!("bafyreialtered{i}")
            } else {
                format!("bafyreitip{i}")
            };
            let mut digest = 7u64;
            if p.content.map(|c| c % case.stores) == Some(s) {
                digest = 8;
            }
            store.insert(p.key.clone(), Value::new(tip, digest));
        }
    }
    stores
}

/// The oracle: every key not present with one equal value on all stores.
fn oracle(stores: &[BTreeMap<Key, Value>]) -> Vec<Difference> {
    let mut keys: Vec<&Key> = stores.iter().flat_map(|s| s.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let values: Vec<Option<Value>> = stores.iter().map(|s| s.get(k).cloned()).collect();
            let same =
                values.iter().all(Option::is_some) && values.windows(2).all(|w| w[0] == w[1]);
            (!same).then(|| Difference {
                key: k.clone(),
                values,
            })
        })
        .collect()
}

/// A memory store that also lists its key quantiles, as an event store does: a sized first
/// level is then cut at them (`RangeStore::quantiles`).
struct Quantiled<H> {
    keys: Vec<Key>,
    store: MemoryStore<H>,
}

impl<H: AssociativeHash> RangeStore for Quantiled<H> {
    type Hash = H;
    type Error = std::convert::Infallible;
    fn summary(&mut self, range: &Range, bounds: bool) -> Result<Summary<H>, Self::Error> {
        self.store.summary(range, bounds)
    }
    fn digests(&mut self, range: &Range) -> Result<Vec<u64>, Self::Error> {
        self.store.digests(range)
    }
    fn entries(
        &mut self,
        range: &Range,
        only: Option<&BTreeSet<u64>>,
    ) -> Result<Vec<Entry>, Self::Error> {
        self.store.entries(range, only)
    }
    fn size(&mut self) -> Option<(u64, Bounds)> {
        self.store.size()
    }
    fn quantiles(&mut self, parts: usize) -> Option<Vec<Key>> {
        let ranks = quantile_ranks(self.keys.len(), parts);
        Some(
            ranks
                .iter()
                .map(|&r| separator(&self.keys[r - 1], &self.keys[r]))
                .collect(),
        )
    }
}

fn descend<H: AssociativeHash>(case: &Case, stores: &[BTreeMap<Key, Value>]) -> Vec<Difference> {
    let entries = |s: &BTreeMap<Key, Value>| {
        s.iter()
            .map(|(k, v)| Entry::new(k.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    if case.quantiles {
        let mut mem: Vec<Quantiled<H>> = stores
            .iter()
            .map(|s| Quantiled {
                keys: s.keys().cloned().collect(),
                store: MemoryStore::new(entries(s)),
            })
            .collect();
        return run_descent(&mut mem, case.params.clone())
            .expect("memory stores cannot fail")
            .differences;
    }
    let mut mem: Vec<MemoryStore<H>> = stores
        .iter()
        .map(|s| MemoryStore::new(entries(s)))
        .collect();
    run_descent(&mut mem, case.params.clone())
        .expect("memory stores cannot fail")
        .differences
}

fn agrees_with_oracle(case: Case) -> Result<(), TestCaseError> {
    let stores = contents(&case);
    let expected = oracle(&stores);
    prop_assert_eq!(&descend::<Md5Lanes>(&case, &stores), &expected);
    prop_assert_eq!(&descend::<Sha256a>(&case, &stores), &expected);
    Ok(())
}

#[test]
fn descent_equals_the_set_difference_oracle_on_stream_keys() {
    check(
        "descent-oracle-base36",
        256,
        case(base36_key()),
        agrees_with_oracle,
    );
}

#[test]
fn descent_equals_the_set_difference_oracle_on_awkward_byte_keys() {
    check(
        "descent-oracle-awkward",
        256,
        case(awkward_key()),
        agrees_with_oracle,
    );
}

/// Random MID-like keys: fixed prefix, 46 random base36 characters, like real StreamIDs.
fn random_stream(rng: &mut impl Rng) -> String {
    const B36: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let tail: String = (0..46).map(|_| B36[rng.gen_range(0..36)] as char).collect();
    format!("kjzl6kcym7w8y{tail}")
}

/// The cost bound, stated with the default parameters (root fan-out R = 256, fan-out b = 16):
///
///   ranges compared ≤ 1 + R + (b + 1) · d · ⌈log_b n⌉
///
/// (the root, its R children, then per level at most d differing ranges each split into b, plus
/// at most one bounds re-probe per differing range and level). With c = R + b + 1 = 273 this is
/// the form `ranges ≤ c · (d + 1) · ⌈log_b n⌉`; the tighter form above is what we check.
#[test]
fn ranges_compared_grow_with_differences_times_log_n() {
    let params = DescentParams::default();
    let (r, b) = (params.root_fanout as f64, params.fanout as f64);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(crate::common::seed());
    for n in [2_000usize, 20_000, 100_000] {
        let base: Vec<Entry> = (0..n)
            .map(|i| {
                Entry::new(
                    Key::new("m", &random_stream(&mut rng)),
                    Value::new(format!("tip{i}"), 0),
                )
            })
            .collect();
        for d in [0usize, 1, 10, 100] {
            // d differences spread over 3 stores: missing on b, other tip on c, extra on a.
            let mut a = base.clone();
            let mut bb = base.clone();
            let mut c = base.clone();
            for j in 0..d {
                let idx = rng.gen_range(0..n);
                match j % 3 {
                    0 => bb[idx].value.tip = "gone".into(),
                    1 => c[idx].value.tip = format!("other{j}"),
                    _ => a.push(Entry::new(
                        Key::new("m", &random_stream(&mut rng)),
                        Value::new("extra", 0),
                    )),
                }
            }
            bb.retain(|e| e.value.tip != "gone");
            let sets: Vec<BTreeMap<Key, Value>> = [&a, &bb, &c]
                .iter()
                .map(|s| s.iter().map(|e| (e.key.clone(), e.value.clone())).collect())
                .collect();
            let mut stores: Vec<MemoryStore<Md5Lanes>> =
                [a, bb, c].into_iter().map(MemoryStore::new).collect();
            let out = run_descent(&mut stores, params.clone()).expect("memory stores");
            let found = out.differences.len();
            assert_eq!(out.differences, oracle(&sets), "n={n} d={d}");
            assert!(found <= d, "n={n} d={d}: {found} reported");
            let log = (n as f64).log(b).ceil();
            let bound = 1.0 + r + (b + 1.0) * found as f64 * log;
            assert!(
                out.cost.ranges_compared as f64 <= bound,
                "n={n} d={d}: {} ranges compared > bound {bound}",
                out.cost.ranges_compared
            );
            if d == 0 {
                assert_eq!(out.cost.rounds, 1, "equal sets settle in one round");
            }
        }
    }
}

/// Split boundaries lie strictly inside their interval and increase; `split_between` always
/// separates first from last. The descent's termination rests on these.
#[test]
fn split_points_are_increasing_and_inside_their_interval() {
    let key = proptest::collection::vec(
        prop_oneof![
            Just(0u8),
            Just(b'0'),
            Just(b'9'),
            Just(b'a'),
            Just(b'z'),
            Just(0xff),
            any::<u8>()
        ],
        0..30,
    );
    let alphabet = prop_oneof![Just(Alphabet::Base36), Just(Alphabet::Bytes)];
    check(
        "split-invariants",
        1024,
        (key.clone(), key, 2..300usize, alphabet),
        |(x, y, k, alphabet)| {
            if x == y {
                return Ok(());
            }
            let (a, b) = if x < y { (x, y) } else { (y, x) };
            let points = interpolate(&a, Some(&b), k, alphabet);
            prop_assert!(points.len() < k);
            for p in &points {
                prop_assert!(
                    p.as_bytes() > a.as_slice() && p.as_bytes() < b.as_slice(),
                    "{p} outside"
                );
            }
            prop_assert!(points.windows(2).all(|w| w[0] < w[1]));
            let unbounded = interpolate(&a, None, k, alphabet);
            prop_assert!(unbounded.iter().all(|p| p.as_bytes() > a.as_slice()));
            prop_assert!(unbounded.windows(2).all(|w| w[0] < w[1]));
            let (first, last) = (Key::from_bytes(a), Key::from_bytes(b));
            let cuts = split_between(&first, &last, k, alphabet);
            prop_assert!(!cuts.is_empty());
            prop_assert!(cuts.iter().all(|p| *p > first && *p <= last));
            Ok(())
        },
    );
}
