//! The N-way range-fingerprint descent, written sans-IO.
//!
//! Every round sends one batch of [`Query`]s — the same batch to every store — and takes every
//! store's answers back. A range whose fingerprints agree on all N stores is settled; otherwise it
//! is split (a wide first level, narrower below) or, once small on every store, compared row by
//! row: first by 8-byte digests, then full entries only for the digests not present everywhere.
//! Cost therefore grows with the number of differences × log n, and the bytes per store do not
//! grow with N, because all stores answer the same ranges.
//!
//! The state machine never blocks and never does I/O: [`super::run_descent`] drives it over
//! synchronous stores; async drivers (Postgres, HTTP) call [`Descent::queries`] /
//! [`Descent::feed`] themselves and may ask all nodes concurrently.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use thiserror::Error;

use super::cost::Cost;

#[path = "grid.rs"]
mod grid;
use super::hash::{AssociativeHash, HashCount};
use super::key::{Entry, Key, Range, Value};
use super::sizing::{self, Plan, SizeHint};
use super::split::{interpolate, split_between, split_within, union_bounds, Alphabet};
use super::store::{
    answers_wire_len, check_bounds, check_entries, entries_wire_len, queries_wire_len, Answer,
    Query, Summary,
};

/// Most stores a descent compares at once. Bounded so per-range bookkeeping stays small; a larger
/// cluster is audited in groups.
pub const MAX_STORES: usize = 16;

/// Tuning of the descent. Every field has a default chosen for a 10^6-key model table; the
/// comments say what goes wrong when a value is off.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DescentParams {
    /// Sub-ranges of the first split (default 256). The first level costs a full scan on every
    /// store whatever its width, and 256 fingerprints are ~6 KiB; narrower adds a round for large
    /// sets, much wider sends kilobytes of fingerprints that almost all agree.
    pub root_fanout: usize,
    /// Sub-ranges of every later split (default 16, negentropy's measured sweet spot). Smaller
    /// costs more rounds; larger sends more fingerprints per difference.
    pub fanout: usize,
    /// A differing range with at most this many entries on every store is compared row by row
    /// (default 32). A leaf costs 8 bytes per row per store, a further split ~`fanout` × 24
    /// bytes and a round: far below 32 the split costs more than it saves; far above, leaves
    /// send hundreds of digests per difference.
    pub leaf_threshold: u64,
    /// Compare leaves by 8-byte digests before fetching entries (default true). Off, a leaf sends
    /// every entry in full (~130 bytes each) — one round less, many more bytes.
    pub leaf_digests: bool,
    /// Safety net (default 64 rounds): at the last round every open range is fetched whole, so a
    /// pathological key distribution ends slowly but correctly instead of looping.
    pub max_rounds: usize,
    /// Characters keys are made of, for even splits (default base36, as StreamIDs). Wrong only
    /// costs evenness: uneven sub-ranges mean more fingerprints and rounds, never wrong results.
    pub alphabet: Alphabet,
    /// Start with the count and first/last key of the whole key space instead of its
    /// fingerprint (default false). For a SQL store the first fingerprint is a full hashing
    /// scan and the first split hashes every row again; a bounds-only root is a cheap scan, so
    /// equal sets cost 2 rounds but only one hashing scan. Memory stores answer either for free.
    pub root_bounds_only: bool,
    /// SQL stores (default false): below the first split, cut a differing range at every key
    /// prefix of one length (the grid, see `grid.rs`: ~`leaf_threshold` keys a cell) and fetch
    /// a differing cell whole, so a descent takes 3 rounds and the store answers the cells from
    /// one grouped pass. Off for memory stores: a cell costs a fingerprint even where no key
    /// differs, and whole cells send ~`leaf_threshold` entries per difference.
    pub grid: bool,
    /// Where the driver can tell the stores' sizes up front ([`RangeStore::size`]: stores held
    /// in memory), start with a first level sized for them ([`super::sizing`]) instead of the
    /// root fingerprint and the fixed fanouts above (default false: a SQL store's first level
    /// is a full scan whatever its width, and its driver does not know the sizes). Equal sets
    /// then cost the first level's fingerprints instead of one; expected differences of 0
    /// keep the root fingerprint.
    pub sized_first_level: bool,
    /// Differences the sized first level is planned for (default 0; the previous audit's count
    /// is a good estimate). Off by 10× costs bytes or a round, never a difference.
    pub expected_diffs: u64,
    /// What one more round is worth in bytes per store when the sized first level is planned
    /// (default [`sizing::ROUND_BYTES`], 2 KiB, for stores across a network). A store read
    /// locally, where a round is only more queries, prices it higher to take fewer, wider
    /// levels; too high and equal ranges' fingerprints cost more than the rounds saved.
    pub round_bytes: u64,
    /// Record a human-readable trace of every round (tests, `--explain`); off for speed.
    pub trace: bool,
}

impl Default for DescentParams {
    fn default() -> Self {
        Self {
            root_fanout: 256,
            fanout: 16,
            leaf_threshold: 32,
            leaf_digests: true,
            max_rounds: 64,
            alphabet: Alphabet::Base36,
            root_bounds_only: false,
            grid: false,
            sized_first_level: false,
            expected_diffs: 0,
            round_bytes: sizing::ROUND_BYTES,
            trace: false,
        }
    }
}

/// Misuse of the state machine or a store answer that does not fit the question.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DescentError {
    #[error("a descent compares 2 to {MAX_STORES} stores, got {0}")]
    StoreCount(usize),
    #[error("invalid descent parameter: {0}")]
    Params(&'static str),
    #[error("answers from {got} stores, expected {expected}")]
    AnswerSets { expected: usize, got: usize },
    #[error("store {store} gave {got} answers to {expected} queries")]
    AnswerCount {
        store: usize,
        expected: usize,
        got: usize,
    },
    #[error("store {store} answered query {index} ({expected}) with another kind of answer")]
    AnswerKind {
        store: usize,
        index: usize,
        expected: &'static str,
    },
    #[error("store {store} returned key {key} outside the queried range {range}")]
    OutOfRange {
        store: usize,
        key: String,
        range: String,
    },
    #[error("store {store} returned key {key} twice")]
    DuplicateKey { store: usize, key: String },
    #[error("the descent has finished; no more answers are expected")]
    Finished,
}

/// A key that is not the same on every store, with each store's value (`None`: absent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    pub key: Key,
    pub values: Vec<Option<Value>>,
}

/// The result of a finished descent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Every differing key, in key order.
    pub differences: Vec<Difference>,
    pub cost: Cost,
    /// One line per query per round when `trace` was on.
    pub trace: Vec<String>,
}

#[derive(Clone, Debug)]
enum Work {
    /// The bounds-only first look at the whole key space.
    Root,
    /// Compare fingerprints; `depth` 0 is the whole key space; `parent_total` is the number of
    /// entries (all stores) of the range this one was split from, to detect a split that
    /// separated nothing.
    Probe {
        depth: usize,
        parent_total: Option<u64>,
        /// First and last key (inclusive) that any store held in an ancestor range, when known:
        /// no key of this range lies outside it, so splits interpolate inside the hull instead
        /// of into empty key space next to -inf/+inf.
        hull: Option<(Key, Key)>,
    },
    /// Row digests of a small differing range.
    Leaf,
    /// Entries of a leaf range (all, or those with the listed digests).
    Fetch,
    /// A grid cell (`DescentParams::grid`): fetched whole when it differs.
    Cell { hull: Option<(Key, Key)> },
}

/// The descent's state between rounds.
#[derive(Debug)]
pub struct Descent<H> {
    params: DescentParams,
    stores: usize,
    /// This round's work, each with the query sent for it.
    current: Vec<(Work, Query)>,
    differences: Vec<Difference>,
    cost: Cost,
    trace: Vec<String>,
    /// Key length of the grid cells, once the first split has set it (`DescentParams::grid`).
    grid_len: Option<usize>,
    _hash: std::marker::PhantomData<H>,
}

fn store_name(i: usize) -> char {
    // Stores are named a, b, c, … in traces (MAX_STORES is 16, well inside the alphabet).
    char::from(b'a' + (i % 26) as u8)
}

impl<H: AssociativeHash> Descent<H> {
    pub fn new(stores: usize, params: DescentParams) -> Result<Self, DescentError> {
        if !(2..=MAX_STORES).contains(&stores) {
            return Err(DescentError::StoreCount(stores));
        }
        if params.root_fanout < 2 || params.fanout < 2 {
            return Err(DescentError::Params("fanouts must be at least 2"));
        }
        if params.leaf_threshold < 1 {
            return Err(DescentError::Params("leaf_threshold must be at least 1"));
        }
        if params.max_rounds < 2 {
            return Err(DescentError::Params("max_rounds must be at least 2"));
        }
        let (root, query) = if params.root_bounds_only {
            (
                Work::Root,
                Query::Bounds {
                    range: Range::full(),
                },
            )
        } else {
            (
                Work::Probe {
                    depth: 0,
                    parent_total: None,
                    hull: None,
                },
                Query::Summary {
                    range: Range::full(),
                    bounds: true,
                },
            )
        };
        Ok(Self {
            params,
            stores,
            current: vec![(root, query)],
            differences: Vec::new(),
            cost: Cost {
                bytes_received_per_store: vec![0; stores],
                ..Cost::default()
            },
            trace: Vec::new(),
            grid_len: None,
            _hash: std::marker::PhantomData,
        })
    }

    /// Like [`Descent::new`], with the first level, fanout and leaf size planned from `hint`
    /// ([`sizing::plan`]); the plain descent when no split is worth it (no expected difference,
    /// a tiny or empty key space).
    pub fn sized(
        stores: usize,
        params: DescentParams,
        hint: &SizeHint,
    ) -> Result<Self, DescentError> {
        Self::sized_at(stores, params, hint, None)
    }

    /// The plan [`Descent::sized`] follows for `hint`, when it sizes at all: a driver that can
    /// read key quantiles asks for `plan.first` parts.
    pub fn plan_for(stores: usize, params: &DescentParams, hint: &SizeHint) -> Option<Plan> {
        let rows = hint.rows_per_store.iter().copied().max().unwrap_or(0);
        sizing::plan(
            rows,
            hint.diffs(),
            stores,
            H::WIRE_BYTES,
            params.round_bytes,
        )
        .filter(|_| hint.hull.is_some())
    }

    /// [`Descent::sized`] with the first level cut at `points` (a store's key quantiles,
    /// [`RangeStore::quantiles`](super::RangeStore::quantiles)) instead of interpolated between
    /// the hull's ends; points that are not strictly increasing are ignored.
    pub fn sized_at(
        stores: usize,
        params: DescentParams,
        hint: &SizeHint,
        points: Option<Vec<Key>>,
    ) -> Result<Self, DescentError> {
        let plan = Self::plan_for(stores, &params, hint);
        let (Some(plan), Some((first, last))) = (plan, &hint.hull) else {
            return Self::new(stores, params);
        };
        let params = DescentParams {
            root_fanout: plan.first,
            fanout: plan.fanout,
            leaf_threshold: plan.leaf_threshold,
            root_bounds_only: false,
            ..params
        };
        let mut descent = Self::new(stores, params)?;
        let increasing = |p: &Vec<Key>| {
            !p.is_empty() && !p[0].as_bytes().is_empty() && p.windows(2).all(|w| w[0] < w[1])
        };
        let points = match points.filter(increasing) {
            Some(points) => points,
            None => split_between(first, last, plan.first, descent.params.alphabet),
        };
        let total = hint.rows_per_store.iter().sum();
        descent.current.clear();
        let hull = Some((first.clone(), last.clone()));
        push_children(&Range::full(), points, 1, total, hull, &mut descent.current);
        descent.cost.rows_per_store = hint.rows_per_store.clone();
        Ok(descent)
    }

    /// The batch to send to every store this round; `None` once the descent has finished.
    pub fn queries(&self) -> Option<Vec<Query>> {
        (!self.current.is_empty()).then(|| self.current.iter().map(|(_, q)| q.clone()).collect())
    }

    pub fn is_finished(&self) -> bool {
        self.current.is_empty()
    }

    /// Rounds answered so far.
    pub fn rounds(&self) -> u64 {
        self.cost.rounds
    }

    /// The cost so far (ranges compared and differing, bytes, …).
    pub fn cost(&self) -> &Cost {
        &self.cost
    }

    /// Differing keys found so far.
    pub fn differences_found(&self) -> usize {
        self.differences.len()
    }

    /// Takes every store's answers to this round's batch (`answers[store][query]`) and prepares
    /// the next round. Answers are checked against the questions before anything is used.
    pub fn feed(&mut self, answers: Vec<Vec<Answer<H>>>) -> Result<(), DescentError> {
        self.feed_round(answers, true)
    }

    /// As [`Descent::feed`], for a round every store answered from what it had already read
    /// (no round trip: e.g. the bounds-only root from a SQL store's row check). It is not
    /// counted in `rounds`; its bytes are.
    pub fn feed_local(&mut self, answers: Vec<Vec<Answer<H>>>) -> Result<(), DescentError> {
        self.feed_round(answers, false)
    }

    fn feed_round(&mut self, answers: Vec<Vec<Answer<H>>>, trip: bool) -> Result<(), DescentError> {
        if self.current.is_empty() {
            return Err(DescentError::Finished);
        }
        self.check(&answers)?;
        let round = std::mem::take(&mut self.current);
        self.cost.rounds += u64::from(trip);
        if self.params.trace {
            self.trace.push(format!("round {}", self.cost.rounds));
        }
        self.cost.bytes_sent +=
            (queries_wire_len(round.iter().map(|(_, q)| q)) * self.stores) as u64;
        for (store, list) in answers.iter().enumerate() {
            let bytes = answers_wire_len(list) as u64;
            self.cost.bytes_received += bytes;
            self.cost.bytes_received_per_store[store] += bytes;
        }
        // `answers[s][i]` by column: move each query's answers out together.
        let mut columns: Vec<Vec<Answer<H>>> = (0..round.len()).map(|_| Vec::new()).collect();
        for list in answers {
            for (i, a) in list.into_iter().enumerate() {
                columns[i].push(a);
            }
        }
        let last_round = self.cost.rounds + 1 >= self.params.max_rounds as u64;
        let mut next = Vec::new();
        for ((work, query), column) in round.into_iter().zip(columns) {
            let range = query.range().clone();
            match work {
                Work::Root => {
                    let looks = column
                        .into_iter()
                        .map(|a| match a {
                            Answer::Bounds { count, bounds } => (count, bounds),
                            // `check` has verified every kind already.
                            _ => (0, None),
                        })
                        .collect::<Vec<_>>();
                    self.cost.rows_per_store = looks.iter().map(|(c, _)| *c).collect();
                    self.root(range, &looks, &mut next);
                }
                Work::Probe {
                    depth,
                    parent_total,
                    hull,
                } => {
                    let summaries = column
                        .into_iter()
                        .map(|a| match a {
                            Answer::Summary(s) => s,
                            // `check` has verified every kind already.
                            _ => Summary {
                                fingerprint: HashCount::zero(),
                                bounds: None,
                            },
                        })
                        .collect::<Vec<_>>();
                    if self.cost.rows_per_store.is_empty() && range == Range::full() {
                        self.cost.rows_per_store =
                            summaries.iter().map(|s| s.fingerprint.count).collect();
                    }
                    self.probe(range, depth, parent_total, hull, &summaries, &mut next);
                }
                Work::Cell { hull } => {
                    let summaries = column
                        .into_iter()
                        .map(|a| match a {
                            Answer::Summary(s) => s,
                            _ => Summary {
                                fingerprint: HashCount::zero(),
                                bounds: None,
                            },
                        })
                        .collect::<Vec<_>>();
                    self.cell(range, hull, &summaries, &mut next);
                }
                Work::Leaf => {
                    let lists = column
                        .into_iter()
                        .map(|a| match a {
                            Answer::Digests(d) => d,
                            _ => Vec::new(),
                        })
                        .collect::<Vec<_>>();
                    self.leaf(range, &lists, &mut next);
                }
                Work::Fetch => {
                    let lists = column
                        .into_iter()
                        .map(|a| match a {
                            Answer::Entries(e) => e,
                            _ => Vec::new(),
                        })
                        .collect::<Vec<_>>();
                    self.fetch(&range, lists);
                }
            }
        }
        if last_round {
            // The safety net: fetch every open range whole next round; that round settles all.
            for (work, query) in &mut next {
                if !matches!(work, Work::Fetch) {
                    *work = Work::Fetch;
                    *query = Query::Entries {
                        range: query.range().clone(),
                        only: None,
                    };
                }
            }
        }
        self.current = next;
        Ok(())
    }

    fn check(&self, answers: &[Vec<Answer<H>>]) -> Result<(), DescentError> {
        if answers.len() != self.stores {
            return Err(DescentError::AnswerSets {
                expected: self.stores,
                got: answers.len(),
            });
        }
        for (store, list) in answers.iter().enumerate() {
            if list.len() != self.current.len() {
                return Err(DescentError::AnswerCount {
                    store,
                    expected: self.current.len(),
                    got: list.len(),
                });
            }
            for (index, ((_, q), a)) in self.current.iter().zip(list).enumerate() {
                let expected = match (q, a) {
                    (Query::Entries { range, .. }, Answer::Entries(entries)) => {
                        check_entries(store, range, entries)?;
                        continue;
                    }
                    (Query::Bounds { range }, Answer::Bounds { bounds, .. })
                    | (Query::Summary { range, .. }, Answer::Summary(Summary { bounds, .. })) => {
                        check_bounds(store, range, bounds.as_ref())?;
                        continue;
                    }
                    (Query::Digests { .. }, Answer::Digests(_)) => continue,
                    (Query::Bounds { .. }, _) => "bounds",
                    (Query::Summary { .. }, _) => "summary",
                    (Query::Digests { .. }, _) => "digests",
                    (Query::Entries { .. }, _) => "entries",
                };
                return Err(DescentError::AnswerKind {
                    store,
                    index,
                    expected,
                });
            }
        }
        Ok(())
    }

    fn note(&mut self, line: impl FnOnce() -> String) {
        if self.params.trace {
            self.trace.push(line());
        }
    }

    fn probe(
        &mut self,
        range: Range,
        depth: usize,
        parent_total: Option<u64>,
        hull: Option<(Key, Key)>,
        summaries: &[Summary<H>],
        next: &mut Vec<(Work, Query)>,
    ) {
        self.cost.ranges_compared += 1;
        self.cost.fingerprints += summaries.len() as u64;
        let counts: Vec<u64> = summaries.iter().map(|s| s.fingerprint.count).collect();
        let total: u64 = counts.iter().sum();
        let max = counts.iter().copied().max().unwrap_or(0);
        let equal = summaries
            .windows(2)
            .all(|w| w[0].fingerprint == w[1].fingerprint);
        let shown = || {
            summaries
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    format!(
                        "{}={}:{}",
                        store_name(i),
                        s.fingerprint.count,
                        s.fingerprint.hash.render()
                    )
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        if equal {
            self.note(|| format!("  summary {range} {} -> equal", shown()));
            return;
        }
        self.cost.ranges_differing += 1;
        if max <= self.params.leaf_threshold {
            self.note(|| format!("  summary {range} {} -> leaf", shown()));
            self.cost.leaf_ranges += 1;
            next.push(self.leaf_work(range));
            return;
        }
        let widest = if depth == 0 {
            self.params.root_fanout
        } else {
            self.params.fanout
        };
        // The union of the stores' first and last keys, where the stores reported them.
        let bounds = union_bounds(summaries.iter().filter_map(|s| s.bounds.as_ref()));
        if depth == 0 {
            self.set_grid(bounds.as_ref(), max);
        } else if let Some(cells) = self.grid_cells(&range, depth, hull.as_ref()) {
            self.note(|| {
                format!(
                    "  summary {range} {} -> {} grid cells",
                    shown(),
                    cells.len()
                )
            });
            next.extend(cells);
            return;
        }
        let fanout = self.fanout(widest, max);
        let points = match (&bounds, &hull) {
            (Some((first, last)), _) => split_between(first, last, fanout, self.params.alphabet),
            // A split that left all of the parent's entries here separated nothing: learn the
            // real first/last key before splitting again, or skewed keys would creep down.
            _ if parent_total == Some(total) => Vec::new(),
            (None, Some(hull)) => split_within(&range, hull, fanout, self.params.alphabet),
            (None, None) => interpolate(
                range.start.as_bytes(),
                range.end.as_ref().map(Key::as_bytes),
                fanout,
                self.params.alphabet,
            ),
        };
        let hull = bounds.clone().or(hull);
        if points.is_empty() {
            if bounds.is_some() {
                // A single key on every store yet above the leaf threshold cannot happen (one
                // key per store); treat it as a leaf rather than trust that.
                self.note(|| format!("  summary {range} {} -> leaf", shown()));
                self.cost.leaf_ranges += 1;
                next.push(self.leaf_work(range));
            } else {
                self.note(|| format!("  summary {range} {} -> ask bounds", shown()));
                self.cost.bounds_probes += 1;
                next.push((
                    Work::Probe {
                        depth,
                        parent_total: None,
                        hull,
                    },
                    Query::Summary {
                        range,
                        bounds: true,
                    },
                ));
            }
            return;
        }
        self.note(|| {
            format!(
                "  summary {range} {} -> split {} at {}",
                shown(),
                points.len() + 1,
                points
                    .iter()
                    .map(Key::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        });
        push_children(&range, points, depth + 1, total, hull, next);
    }

    /// The bounds-only first look: split the key space between the first and last key any
    /// store holds (or compare it row by row when small), without a fingerprint yet.
    fn root(
        &mut self,
        range: Range,
        looks: &[(u64, Option<(Key, Key)>)],
        next: &mut Vec<(Work, Query)>,
    ) {
        let total: u64 = looks.iter().map(|(c, _)| c).sum();
        let max = looks.iter().map(|(c, _)| *c).max().unwrap_or(0);
        let hull = union_bounds(looks.iter().filter_map(|(_, b)| b.as_ref()));
        let counts = || {
            looks
                .iter()
                .enumerate()
                .map(|(i, (c, _))| format!("{}={c}", store_name(i)))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let Some((first, last)) = hull else {
            self.note(|| format!("  bounds {range} {} -> all empty", counts()));
            return;
        };
        if max <= self.params.leaf_threshold {
            self.note(|| format!("  bounds {range} {} -> leaf", counts()));
            self.cost.leaf_ranges += 1;
            next.push(self.leaf_work(range));
            return;
        }
        self.set_grid(Some(&(first.clone(), last.clone())), max);
        let fanout = self.fanout(self.params.root_fanout, max);
        let points = split_between(&first, &last, fanout, self.params.alphabet);
        self.note(|| {
            format!(
                "  bounds {range} {} -> split {}",
                counts(),
                points.len() + 1
            )
        });
        push_children(&range, points, 1, total, Some((first, last)), next);
    }

    /// Sub-ranges for a split of a range whose largest store holds `max` entries: at most
    /// `widest`, and no wider than needed to bring that store's share to half a leaf. A range
    /// of 3 × leaf_threshold rows split 256 ways would send 256 fingerprints to find 3 leaves;
    /// half, not one, because sub-range counts vary and a child just over the threshold costs
    /// a whole extra level.
    fn fanout(&self, widest: usize, max: u64) -> usize {
        let needed = (2 * max).div_ceil(self.params.leaf_threshold).max(2);
        widest.min(usize::try_from(needed).unwrap_or(usize::MAX))
    }

    fn leaf_work(&self, range: Range) -> (Work, Query) {
        if self.params.leaf_digests {
            (Work::Leaf, Query::Digests { range })
        } else {
            (Work::Fetch, Query::Entries { range, only: None })
        }
    }

    fn leaf(&mut self, range: Range, lists: &[Vec<u64>], next: &mut Vec<(Work, Query)>) {
        self.cost.digests += lists.iter().map(|l| l.len() as u64).sum::<u64>();
        // A digest held by every store is an entry every store holds identically (up to a 2^-64
        // collision); the others identify the rows to fetch.
        let mut holders: HashMap<u64, usize> = HashMap::new();
        for list in lists {
            let unique: BTreeSet<u64> = list.iter().copied().collect();
            for d in unique {
                *holders.entry(d).or_default() += 1;
            }
        }
        let odd: BTreeSet<u64> = holders
            .into_iter()
            .filter(|&(_, n)| n < self.stores)
            .map(|(d, _)| d)
            .collect();
        let counts = lists
            .iter()
            .enumerate()
            .map(|(i, l)| format!("{}={}", store_name(i), l.len()))
            .collect::<Vec<_>>()
            .join(" ");
        if odd.is_empty() {
            self.note(|| format!("  digests {range} {counts} -> equal"));
            return;
        }
        self.note(|| format!("  digests {range} {counts} -> fetch {}", odd.len()));
        next.push((
            Work::Fetch,
            Query::Entries {
                range,
                only: Some(odd),
            },
        ));
    }

    /// Compares a leaf's entries; `check` has verified they lie in `range`, once per store.
    fn fetch(&mut self, range: &Range, lists: Vec<Vec<Entry>>) {
        self.cost.entries += lists.iter().map(|l| l.len() as u64).sum::<u64>();
        self.cost.entry_bytes_received += lists
            .iter()
            .map(|l| entries_wire_len(l) as u64)
            .sum::<u64>();
        let mut by_key: BTreeMap<Key, Vec<Option<Value>>> = BTreeMap::new();
        for (store, list) in lists.into_iter().enumerate() {
            for e in list {
                let slot = by_key
                    .entry(e.key)
                    .or_insert_with(|| vec![None; self.stores]);
                slot[store] = Some(e.value);
            }
        }
        let mut found = Vec::new();
        for (key, values) in by_key {
            let same =
                values.iter().all(Option::is_some) && values.windows(2).all(|w| w[0] == w[1]);
            if !same {
                found.push(Difference { key, values });
            }
        }
        self.note(|| {
            let keys = found
                .iter()
                .map(|d| {
                    let on = d
                        .values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| match v {
                            Some(v) => format!("{}:{}", store_name(i), v.tip),
                            None => format!("{}:-", store_name(i)),
                        })
                        .collect::<Vec<_>>()
                        .join(" ");
                    format!("{} [{on}]", d.key)
                })
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "  entries {range} -> {}",
                if keys.is_empty() {
                    "none differ".into()
                } else {
                    keys
                }
            )
        });
        self.differences.extend(found);
    }

    /// The result; call once `is_finished()` (an unfinished descent returns what it has found).
    pub fn finish(mut self) -> Outcome {
        self.differences.sort_by(|a, b| a.key.cmp(&b.key));
        Outcome {
            differences: self.differences,
            cost: self.cost,
            trace: self.trace,
        }
    }
}

/// Queues the fingerprints of `range` cut at `points` (increasing, strictly inside it).
fn push_children(
    range: &Range,
    points: Vec<Key>,
    depth: usize,
    parent_total: u64,
    hull: Option<(Key, Key)>,
    next: &mut Vec<(Work, Query)>,
) {
    let mut start = range.start.clone();
    for end in points.into_iter().map(Some).chain([range.end.clone()]) {
        next.push((
            Work::Probe {
                depth,
                parent_total: Some(parent_total),
                hull: hull.clone(),
            },
            Query::Summary {
                range: Range::new(start, end.clone()),
                bounds: false,
            },
        ));
        start = end.unwrap_or_default();
    }
}
