//! How a round of the descent is turned into a scan: ranges as `width_bucket` thresholds,
//! primary-key range scans, or one sequential scan grouped by prefix (with a prefix filter from
//! the previous round), chosen from what the table's shape has taught us.

use super::PgSource;
use crate::recon::{base36_text, base36_value, Key, Range};

/// What this node learned about a model's table while answering: its row count and the common
/// prefix of its stream ids (from the root bounds), and the row counts of the ranges it
/// summarised last, from which the rows a new round will touch are estimated.
#[derive(Default)]
pub(super) struct Shape {
    pub(super) rows: Option<u64>,
    pub(super) common_prefix: usize,
    /// First and last stream id in byte order, read with the row check (`Some(None)`: empty).
    pub(super) bounds: Option<Option<(String, String)>>,
    pub(super) last: Vec<(Range, u64)>,
    /// The table's size in heap blocks and the server's rows-per-block statistic, read once
    /// when a statement is first cut into pieces (see [`super::pieces`]).
    pub(super) heap: Option<(u64, Option<f64>)>,
    /// Rows per heap block as counted by the row check's pieces.
    pub(super) rows_per_block: Option<f64>,
}

impl Shape {
    /// Rows in the ranges last summarised that meet any of `ranges` (an upper bound on the rows
    /// the new round touches, as ranges only narrow from round to round).
    pub(super) fn estimate(&self, ranges: &[&Range]) -> Option<u64> {
        if self.last.is_empty() {
            return self.rows;
        }
        Some(self.parents(ranges).map(|(_, n)| n).sum())
    }

    /// Per range of `ranges`: the rows of the ranges last summarised that meet it (an upper
    /// bound on the rows it holds), or the table's rows when nothing was summarised yet.
    pub(super) fn estimate_each(&self, ranges: &[&Range]) -> Vec<u64> {
        if self.last.is_empty() {
            return vec![self.rows.unwrap_or(0); ranges.len()];
        }
        let mut last: Vec<&(Range, u64)> = self.last.iter().collect();
        last.sort_by(|a, b| a.0.start.cmp(&b.0.start));
        let disjoint = last
            .windows(2)
            .all(|w| w[0].0.end.as_ref().is_some_and(|e| *e <= w[1].0.start));
        ranges
            .iter()
            .map(|r| {
                if !disjoint {
                    return self.parents(&[*r]).map(|(_, n)| n).sum();
                }
                // Sorted and disjoint: the first range ending past r's start, then every one
                // starting before r's end.
                let i =
                    last.partition_point(|(l, _)| l.end.as_ref().is_some_and(|e| *e <= r.start));
                last[i..]
                    .iter()
                    .take_while(|(l, _)| r.end.as_ref().is_none_or(|e| l.start < *e))
                    .map(|(_, n)| n)
                    .sum()
            })
            .collect()
    }

    /// The ranges last summarised that meet any of `ranges`. A round holds thousands of grid
    /// cells against hundreds (or thousands) of last ranges: each is looked up among the
    /// round's ranges sorted by start, not compared with all of them.
    pub(super) fn parents<'a>(
        &'a self,
        ranges: &[&Range],
    ) -> impl Iterator<Item = &'a (Range, u64)> + 'a {
        let mut sorted: Vec<Range> = ranges.iter().map(|r| (*r).clone()).collect();
        sorted.sort_by(|a, b| a.start.cmp(&b.start));
        // Longest end among ranges starting at or before each position (ranges may overlap
        // when a round mixes kinds), so one binary search finds any range meeting `r`.
        let mut reach: Vec<Option<crate::recon::Key>> = Vec::with_capacity(sorted.len());
        for q in &sorted {
            let prev = reach
                .last()
                .cloned()
                .unwrap_or(Some(crate::recon::Key::from_bytes(Vec::new())));
            reach.push(match (prev, &q.end) {
                (None, _) | (_, None) => None,
                (Some(p), Some(e)) => Some(p.max(e.clone())),
            });
        }
        self.last.iter().filter(move |(r, _)| {
            // Ranges starting before r's end; the last of them reaching past r's start meets r.
            let k = match &r.end {
                Some(end) => sorted.partition_point(|q| q.start < *end),
                None => sorted.len(),
            };
            k > 0 && reach[k - 1].as_ref().is_none_or(|e| r.start < *e)
        })
    }
}

/// Whether two half-open ranges share a key.
#[cfg(test)]
fn ranges_meet(a: &Range, b: &Range) -> bool {
    a.end.as_ref().is_none_or(|e| b.start < *e) && b.end.as_ref().is_none_or(|e| a.start < *e)
}

/// A round is answered by one sequential scan, grouped by key prefix, once it would touch at
/// least this share of the table; below it, by primary-key range scans. Index range scans visit
/// heap pages in key order, i.e. at random (stream ids are random, rows are stored in write
/// order): measured ~9 µs a row on a 10^6-row table with the default 128 MB shared_buffers,
/// against ~0.3 µs a row for a sequential scan plus ~1.5 µs hashing every row. Too low a share
/// hashes whole tables to answer small rounds; too high pays random I/O for a third of a table.
pub(super) const SCAN_SHARE: f64 = 0.2;

/// The scan plan groups rows by their first L characters before assigning ranges (assigning
/// each row with `width_bucket` costs ~1.5 µs, grouping ~0.3 µs). L is the longest range bound;
/// the groups are at most 36^(L − common prefix) for base36 ids. More digits than this would
/// make the hash table outgrow `work_mem` (set at connect) and spill to disk.
pub(super) const SCAN_GROUP_DIGITS: usize = 3;

/// Or any prefix length, when the round touches at most this many rows (so at most this many
/// groups): ~150 bytes a group stays inside `work_mem` (64 MB, set at connect). Higher spills
/// the group table to disk; lower sends grid rounds over ids with a fixed head (real StreamIDs
/// share ~13 characters and more digits of their CID header) to range scans of every cell.
pub(super) const SCAN_MAX_GROUPS: u64 = 400_000;

/// Every base36 string of exactly `len` characters inside the stream-id ranges `spans`
/// (`[lo, hi)`, `None` for an open end, clipped to the table's first and last id), or `None`
/// when they are not all base36 or there would be more than `max`. A row lies in a span exactly
/// when its first `len` characters are one of them, provided no span bound is longer than `len`.
/// A range of stream ids as `[lo, hi)`; `None` is an open end.
pub(super) type Span = (Option<Vec<u8>>, Option<Vec<u8>>);

pub(super) fn prefixes_in(
    spans: &[Span],
    first: &str,
    last: &str,
    len: usize,
    max: usize,
) -> Option<Vec<String>> {
    let floor = base36_value(&first.as_bytes()[..first.len().min(len)], len)?;
    let ceiling = base36_value(&last.as_bytes()[..last.len().min(len)], len)? + 1;
    let mut out = Vec::new();
    for (lo, hi) in spans {
        let start = match lo {
            Some(lo) => base36_value(lo, len)?.max(floor),
            None => floor,
        };
        let end = match hi {
            Some(hi) => base36_value(hi, len)?.min(ceiling),
            None => ceiling,
        };
        if end > start {
            if out.len() as u128 + (end - start) > max as u128 {
                return None;
            }
            out.extend((start..end).map(|v| base36_text(v, len)));
        }
    }
    Some(out)
}

/// Rows a scan-plan round may skip before hashing: those whose first `len` characters are not
/// in `prefixes` (the last round's differing ranges), with the rows those ranges held, which
/// the filtered scan must find again or it is repeated unfiltered.
pub(super) struct PrefixFilter {
    pub(super) len: usize,
    pub(super) prefixes: Vec<String>,
    pub(super) expected_rows: u64,
}

/// Most prefixes a scan-plan filter lists (sent as a parameter, ~17 bytes each, and hashed by
/// Postgres). Too low forgoes the filter on wide rounds; too high sends megabytes of prefixes.
pub(super) const PREFIX_FILTER_MAX: usize = 100_000;

/// Where a key bound falls in one model's table: below every row, at a stream id, or above all.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum StreamBound {
    Below,
    At(Vec<u8>),
    Above,
}

pub(super) fn stream_bound(model: &str, key: &Key) -> StreamBound {
    let mut head = model.as_bytes().to_vec();
    head.push(0);
    let k = key.as_bytes();
    if let Some(rest) = k.strip_prefix(head.as_slice()) {
        if rest.is_empty() {
            StreamBound::Below
        } else {
            StreamBound::At(rest.to_vec())
        }
    } else if k < head.as_slice() {
        StreamBound::Below
    } else {
        StreamBound::Above
    }
}

/// The round's ranges as `width_bucket` thresholds: `bucket[i]` is the bucket number rows of
/// range `i` get, or `None` for a range that holds no row of this table.
pub(super) struct Buckets {
    pub(super) thresholds: Vec<Vec<u8>>,
    pub(super) bucket: Vec<Option<i32>>,
    /// Some bound is not UTF-8 (only possible with unusual keys): compare as bytea then.
    pub(super) binary: bool,
    /// When set, rows are found by index range scans instead of `width_bucket` (see
    /// [`range_plan`]); `bucket[i]` is then the range's number in `idx`.
    pub(super) ranges: Option<RangePlan>,
    /// When set, one sequential scan groups rows by their first this many characters and the
    /// groups are assigned to ranges (see [`SCAN_SHARE`]); only with `ranges` unset.
    pub(super) scan_prefix: Option<usize>,
}

/// Ranges as parallel arrays for `unnest(lo, hi, idx)`, joined on the primary-key btree.
pub(super) struct RangePlan {
    pub(super) lo: Vec<String>,
    pub(super) hi: Vec<String>,
    pub(super) idx: Vec<i32>,
}

/// Bound strings made only of base36 characters, the only ones for which the database's own
/// collation is trusted to order like bytes (checked against a probe at connect time).
pub(super) fn plain(s: &[u8]) -> bool {
    s.iter()
        .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

/// Index range scans for a round, when they select exactly the rows byte order would: every
/// stream id of the table is `k[0-9a-z]+` (so all lie in `['', 'l')`), every bound is base36,
/// and the collation orders such strings like bytes. `None` otherwise.
pub(super) fn range_plan(model: &str, ranges: &[&Range]) -> Option<RangePlan> {
    let mut plan = RangePlan {
        lo: Vec::new(),
        hi: Vec::new(),
        idx: Vec::new(),
    };
    for (i, r) in ranges.iter().enumerate() {
        let lo = match stream_bound(model, &r.start) {
            StreamBound::Below => String::new(),
            StreamBound::At(s) if plain(&s) => String::from_utf8(s).ok()?,
            StreamBound::At(_) => return None,
            StreamBound::Above => continue,
        };
        let hi = match r
            .end
            .as_ref()
            .map_or(StreamBound::Above, |e| stream_bound(model, e))
        {
            StreamBound::Above => "l".to_string(),
            StreamBound::At(s) if plain(&s) => String::from_utf8(s).ok()?,
            StreamBound::At(_) => return None,
            StreamBound::Below => continue,
        };
        if lo >= hi {
            continue;
        }
        plan.lo.push(lo);
        plan.hi.push(hi);
        plan.idx.push(i32::try_from(i).ok()?);
    }
    Some(plan)
}

pub(super) fn buckets(model: &str, ranges: &[&Range], range_scans: bool) -> Buckets {
    if range_scans {
        if let Some(plan) = range_plan(model, ranges) {
            let mut bucket = vec![None; ranges.len()];
            for &i in &plan.idx {
                bucket[i as usize] = Some(i);
            }
            return Buckets {
                thresholds: Vec::new(),
                bucket,
                binary: false,
                ranges: Some(plan),
                scan_prefix: None,
            };
        }
    }
    let mut spans: Vec<(usize, StreamBound, StreamBound)> = ranges
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let lo = stream_bound(model, &r.start);
            let hi = r
                .end
                .as_ref()
                .map_or(StreamBound::Above, |e| stream_bound(model, e));
            (i, lo, hi)
        })
        .collect();
    spans.sort_by(|a, b| a.1.cmp(&b.1));
    let mut thresholds: Vec<Vec<u8>> = Vec::new();
    let mut bucket = vec![None; ranges.len()];
    for (i, lo, hi) in spans {
        if lo >= hi || lo == StreamBound::Above || hi == StreamBound::Below {
            continue; // no stream id of this table falls in the range
        }
        if let StreamBound::At(s) = &lo {
            if thresholds.last() != Some(s) {
                thresholds.push(s.clone());
            }
        }
        // Rows in [lo, hi) count `thresholds.len()` thresholds at or below them.
        bucket[i] = i32::try_from(thresholds.len()).ok();
        if let StreamBound::At(s) = hi {
            thresholds.push(s);
        }
    }
    let binary = thresholds.iter().any(|t| std::str::from_utf8(t).is_err());
    Buckets {
        thresholds,
        bucket,
        binary,
        ranges: None,
        scan_prefix: None,
    }
}

/// The rows a round's statement reads: the table, or the ranges joined on its primary key
/// (`$2` lo, `$3` idx, `${hi_param}` hi).
pub(super) fn from_sql(b: &Buckets, table: &str, hi_param: usize) -> String {
    if b.ranges.is_some() {
        // LATERAL + OFFSET 0: one primary-key range scan per range. As a plain join the planner
        // may pick a sequential scan filtered against every range (10^6 rows × 1,600 ranges:
        // minutes instead of milliseconds).
        format!(
            "unnest($2::text[], ${hi_param}::text[], $3::int[]) AS r(lo, hi, i) \
             CROSS JOIN LATERAL (SELECT * FROM {table} \
                                 WHERE stream_id >= r.lo AND stream_id < r.hi OFFSET 0) t"
        )
    } else {
        table.to_string()
    }
}

/// The `width_bucket` expression and its threshold parameter for a round.
pub(super) fn bucket_sql(b: &Buckets, param: usize) -> String {
    if b.ranges.is_some() {
        "r.i".into()
    } else if b.thresholds.is_empty() {
        // One range covering the table: every row is in bucket 0 (the parameter is still
        // referenced so Postgres can type it).
        format!("0 * cardinality(${param}::text[])")
    } else if b.binary {
        format!("width_bucket(convert_to(stream_id, 'UTF8'), ${param}::bytea[])")
    } else {
        format!("width_bucket(stream_id COLLATE \"C\", ${param}::text[])")
    }
}

impl PgSource {
    /// The prefix length of the scan plan, when this round should be answered by one sequential
    /// scan: it touches at least [`SCAN_SHARE`] of the table, stream ids are base36, and the
    /// longest bound is at most [`SCAN_GROUP_DIGITS`] characters past the ids' common prefix.
    pub(super) fn scan_prefix(&self, model: &str, ranges: &[&Range]) -> Option<usize> {
        if self.plain_keys.get(model) != Some(&true) {
            return None;
        }
        let shape = self.shapes.get(model)?;
        let rows = shape.rows?;
        let touched = shape.estimate(ranges)?;
        tracing::debug!(node = %self.node, model, touched, rows, "rows a round would touch");
        if (touched as f64) < SCAN_SHARE * rows as f64 {
            return None;
        }
        let mut len = 1;
        for r in ranges {
            for k in std::iter::once(&r.start).chain(r.end.as_ref()) {
                if let StreamBound::At(s) = stream_bound(model, k) {
                    len = len.max(s.len());
                }
            }
        }
        // Few enough groups: bounded by the digits, or by the rows touched (each row is in one
        // group; a prefix-filtered round of the grid touches a third of the table).
        (len.saturating_sub(shape.common_prefix) <= SCAN_GROUP_DIGITS || touched <= SCAN_MAX_GROUPS)
            .then_some(len)
    }

    /// The filter for a scan-plan round: the base36 prefixes of the last round's ranges that
    /// meet this one, at the length of their longest bound.
    pub(super) fn prefix_filter(&self, model: &str, ranges: &[&Range]) -> Option<PrefixFilter> {
        let shape = self.shapes.get(model)?;
        let (first, last) = shape.bounds.clone().flatten()?;
        let parents: Vec<&(Range, u64)> = shape.parents(ranges).collect();
        if parents.is_empty() || parents.len() == shape.last.len() {
            return None; // nothing learned, or every range differs: filtering saves nothing
        }
        let bound = |k: &Key| match stream_bound(model, k) {
            StreamBound::At(s) => Some(Some(s)),
            StreamBound::Below | StreamBound::Above => Some(None),
        };
        let mut spans = Vec::with_capacity(parents.len());
        let mut len = 1;
        for (r, _) in &parents {
            let lo = bound(&r.start)?;
            let hi = match &r.end {
                Some(e) => bound(e)?,
                None => None,
            };
            len = len
                .max(lo.as_ref().map_or(0, Vec::len))
                .max(hi.as_ref().map_or(0, Vec::len));
            spans.push((lo, hi));
        }
        let prefixes = prefixes_in(&spans, &first, &last, len, PREFIX_FILTER_MAX)?;
        Some(PrefixFilter {
            len,
            prefixes,
            expected_rows: parents.iter().map(|(_, n)| n).sum(),
        })
    }

    pub(super) fn range_scans(&self, model: &str) -> bool {
        self.collation_ok && self.plain_keys.get(model) == Some(&true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(v: u32) -> Key {
        Key::new("m", &format!("k{v:05}"))
    }

    /// The sorted lookup finds exactly the last ranges that meet the round's, as comparing
    /// every pair does (overlapping and open-ended ranges included).
    #[test]
    fn parents_are_the_ranges_that_meet() {
        let mut seed = 0x5eed_u32;
        let mut next = move |m: u32| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (seed >> 8) % m
        };
        let range = move |next: &mut dyn FnMut(u32) -> u32| {
            let open = next(10) == 0;
            let a = next(1000);
            let b = a + 1 + next(200);
            Range::new(key(a), (!open).then(|| key(b)))
        };
        for _ in 0..200 {
            let mut last: Vec<(Range, u64)> = Vec::new();
            for i in 0..next(30) {
                last.push((range(&mut next), u64::from(i)));
            }
            let mut round: Vec<Range> = Vec::new();
            for _ in 0..next(30) {
                round.push(range(&mut next));
            }
            let refs: Vec<&Range> = round.iter().collect();
            let shape = Shape {
                last: last.clone(),
                ..Shape::default()
            };
            let fast: Vec<u64> = shape.parents(&refs).map(|(_, n)| *n).collect();
            let slow: Vec<u64> = last
                .iter()
                .filter(|(r, _)| refs.iter().any(|q| ranges_meet(r, q)))
                .map(|(_, n)| *n)
                .collect();
            assert_eq!(fast, slow);
        }
    }

    /// Per-range estimates: the counts of the last ranges each range meets, by the sorted
    /// lookup when the last ranges are disjoint and by comparing every pair when not.
    #[test]
    fn each_range_is_estimated_from_the_last_ranges_it_meets() {
        let mut seed = 0xfeed_u32;
        let mut next = move |m: u32| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (seed >> 8) % m
        };
        for case in 0..200 {
            // A partition of the key space (disjoint), or random ranges (overlapping).
            let mut last: Vec<(Range, u64)> = Vec::new();
            if case % 2 == 0 {
                let mut cuts: Vec<u32> = (0..next(20)).map(|_| next(1000)).collect();
                cuts.sort_unstable();
                cuts.dedup();
                let mut start = Key::from_bytes(Vec::new());
                for (i, c) in cuts.iter().enumerate() {
                    last.push((Range::new(start, Some(key(*c))), i as u64 + 1));
                    start = key(*c);
                }
                last.push((Range::new(start, None), 1000));
                last.reverse();
            } else {
                for i in 0..next(20) {
                    let a = next(1000);
                    last.push((
                        Range::new(key(a), Some(key(a + 1 + next(200)))),
                        u64::from(i),
                    ));
                }
            }
            let round: Vec<Range> = (0..next(20))
                .map(|_| {
                    let a = next(1000);
                    Range::new(key(a), (next(8) > 0).then(|| key(a + 1 + next(300))))
                })
                .collect();
            let refs: Vec<&Range> = round.iter().collect();
            let shape = Shape {
                last: last.clone(),
                ..Shape::default()
            };
            let slow: Vec<u64> = refs
                .iter()
                .map(|q| {
                    last.iter()
                        .filter(|(r, _)| ranges_meet(r, q))
                        .map(|(_, n)| n)
                        .sum()
                })
                .collect();
            assert_eq!(shape.estimate_each(&refs), slow, "case {case}");
        }
    }
}
