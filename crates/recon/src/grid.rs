//! The prefix grid of a SQL store's descent (`DescentParams::grid`): below the first split,
//! a differing range is cut at every base36 key prefix of one fixed length G, so that each cell
//! is exactly one group of a `GROUP BY left(stream_id, G)` the store can compute in one pass,
//! and a differing cell is fetched whole. The descent then takes three rounds: the first
//! split, the cells of its differing ranges, their rows.

use super::super::hash::AssociativeHash;
use super::super::key::{Key, Range};
use super::super::split::{base36_text, base36_value};
use super::super::store::{Query, Summary};
use super::{push_children, Descent, Work};

/// A differing grid cell is fetched whole when no store holds more than this many times
/// `leaf_threshold` keys in it (a cell holds `leaf_threshold` on average). Higher fetches
/// thousands of rows for a skewed cell; lower descends ordinary cells a round further.
const CELL_FETCH_FACTOR: u64 = 4;

impl<H: AssociativeHash> Descent<H> {
    /// Fixes the grid's key length from the key space's bounds and its largest store.
    pub(super) fn set_grid(&mut self, hull: Option<&(Key, Key)>, max: u64) {
        if let (true, Some((first, last))) = (self.params.grid, hull) {
            self.grid_len = grid_len(first, last, max, self.params.leaf_threshold);
        }
    }

    /// The grid cells of a differing first-level range, when the grid applies to it.
    pub(super) fn grid_cells(
        &self,
        range: &Range,
        depth: usize,
        hull: Option<&(Key, Key)>,
    ) -> Option<Vec<(Work, Query)>> {
        let ((first, last), len) = hull.zip(self.grid_len).filter(|_| depth == 1)?;
        // At least one digit past the range's own bounds, or a range one cell wide (bounds
        // already on the grid) would not be cut at all.
        let bound_len = range
            .end
            .as_ref()
            .map_or(0, Key::len)
            .max(range.start.len());
        let len = len.max(bound_len + 1);
        let points = grid_points(range, first, last, len).filter(|p| !p.is_empty())?;
        let mut cells = Vec::new();
        push_children(range, points, 2, 0, None, &mut cells);
        let hull = Some((first.clone(), last.clone()));
        Some(
            cells
                .into_iter()
                .map(|(_, q)| (Work::Cell { hull: hull.clone() }, q))
                .collect(),
        )
    }

    /// A grid cell: settled when equal; fetched whole when it differs, unless a store holds
    /// many more keys than a cell should (skewed keys), which is descended the ordinary way.
    pub(super) fn cell(
        &mut self,
        range: Range,
        hull: Option<(Key, Key)>,
        summaries: &[Summary<H>],
        next: &mut Vec<(Work, Query)>,
    ) {
        let max = summaries
            .iter()
            .map(|s| s.fingerprint.count)
            .max()
            .unwrap_or(0);
        let equal = summaries
            .windows(2)
            .all(|w| w[0].fingerprint == w[1].fingerprint);
        if equal || max > CELL_FETCH_FACTOR * self.params.leaf_threshold {
            return self.probe(range, 2, None, hull, summaries, next);
        }
        self.cost.ranges_compared += 1;
        self.cost.ranges_differing += 1;
        self.cost.fingerprints += summaries.len() as u64;
        self.cost.leaf_ranges += 1;
        self.note(|| format!("  cell {range} max {max} -> fetch whole"));
        next.push((Work::Fetch, Query::Entries { range, only: None }));
    }
}

/// Most grid digits after the common prefix of the key space. 36^6 ≈ 2 × 10^9 cells: far more
/// than any table has rows. Past it the grid is not used (the plain split still is).
const MAX_GRID_DIGITS: usize = 6;

/// Most cells one differing first-level range may be cut into; a range that would need more
/// (a very narrow first level over a huge table) is split the ordinary way instead. Too low
/// falls back to extra rounds on large tables; too high sends that many fingerprints per
/// differing range.
pub const MAX_CELLS_PER_RANGE: u128 = 4096;

/// The grid's key length for a key space whose first and last keys are `first` and `last` and
/// whose largest store holds `rows` keys: the common prefix of the two plus the fewest base36
/// digits that put at most `cell_rows` keys in a cell on average. `None` when the bounds are not
/// base36 past their common prefix (the grid would not be exact) or the grid would be too fine.
pub(super) fn grid_len(first: &Key, last: &Key, rows: u64, cell_rows: u64) -> Option<usize> {
    let (f, l) = (first.as_bytes(), last.as_bytes());
    let common = f.iter().zip(l).take_while(|(a, b)| a == b).count();
    let cells_needed = rows.div_ceil(cell_rows.max(1)).max(1) as u128;
    let digits = (1..=MAX_GRID_DIGITS).find(|&m| 36u128.pow(m as u32) >= cells_needed)?;
    let len = common + digits;
    // Both ends must read as base36 over the grid digits, or cells would not be prefixes.
    base36_value(&f[common..f.len().min(len)], digits)?;
    base36_value(&l[common..l.len().min(len)], digits)?;
    Some(len)
}

/// The grid points strictly inside `range` and inside the key space `[first, last]`: every key
/// `first[..common] ‖ d` with `d` of `len − common` base36 digits. `None` when a bound is not
/// base36 where it matters, the range lies outside the key space, or there are more than
/// [`MAX_CELLS_PER_RANGE`] points (the caller then splits the ordinary way).
pub(super) fn grid_points(range: &Range, first: &Key, last: &Key, len: usize) -> Option<Vec<Key>> {
    let (f, l) = (first.as_bytes(), last.as_bytes());
    let common = f.iter().zip(l).take_while(|(a, b)| a == b).count();
    let digits = len
        .checked_sub(common)
        .filter(|d| (1..=MAX_GRID_DIGITS).contains(d))?;
    let head = &f[..common];
    // Grid value of a key sharing `head`: its digits, and whether the point at that value lies
    // strictly above the key (a key shorter than the grid length is below its zero-padding).
    let value = |k: &[u8]| -> Option<(u128, bool)> {
        let tail = k.strip_prefix(head)?;
        let v = base36_value(&tail[..tail.len().min(digits)], digits)?;
        Some((v, tail.len() < digits))
    };
    let lower = if range.start.as_bytes() > f {
        range.start.as_bytes()
    } else {
        f
    };
    if lower > l {
        return None;
    }
    // Smallest grid value whose point is > lower.
    let (v, above) = value(lower)?;
    let lo = if above { v } else { v + 1 };
    // Largest grid value whose point is <= last, and (exclusive) below the range's end.
    let (vl, last_above) = value(l)?;
    let mut hi = if last_above { vl } else { vl + 1 };
    if let Some(end) = &range.end {
        let e = end.as_bytes();
        if e <= lower {
            return None;
        }
        if e.starts_with(head) {
            let (ve, end_above) = value(e)?;
            // Points < end: a point equal to or above end's padding is not.
            hi = hi.min(if end_above || e.len() == len {
                ve
            } else {
                ve + 1
            });
        } else if e < head {
            return None;
        }
    }
    if hi <= lo {
        return Some(Vec::new());
    }
    if hi - lo > MAX_CELLS_PER_RANGE {
        return None;
    }
    Some(
        (lo..hi)
            .map(|v| {
                let mut k = head.to_vec();
                k.extend_from_slice(base36_text(v, digits).as_bytes());
                Key::from_bytes(k)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> Key {
        Key::from_bytes(s.as_bytes().to_vec())
    }

    #[test]
    fn cells_hold_at_most_the_asked_rows_on_average() {
        // 10^6 rows, 32 a cell: 36^3 = 46,656 cells (21 rows each) after the common "kx".
        assert_eq!(grid_len(&k("kx0abc"), &k("kxzzzz"), 1_000_000, 32), Some(5));
        assert_eq!(grid_len(&k("kx0abc"), &k("kxzzzz"), 1_000, 32), Some(3));
        // Not base36 where the grid reads: no grid.
        assert_eq!(grid_len(&k("kxA0"), &k("kxz"), 1_000, 32), None);
    }

    #[test]
    fn points_lie_strictly_inside_the_range_and_the_key_space() {
        let (first, last) = (k("kx05"), k("kxz9"));
        let range = Range::new(k("kx1"), Some(k("kx1c")));
        let points = grid_points(&range, &first, &last, 4).expect("grid");
        let shown: Vec<String> = points.iter().map(|p| p.to_string()).collect();
        assert_eq!(shown.first().map(String::as_str), Some("kx10"));
        assert_eq!(shown.last().map(String::as_str), Some("kx1b"));
        assert_eq!(points.len(), 12);
        // Bounds longer than the grid: the point equal to a bound's prefix is below the start
        // and not used; the end's prefix point is below the end and used.
        let range = Range::new(k("kx1a5"), Some(k("kx1c7")));
        let shown: Vec<String> = grid_points(&range, &first, &last, 4)
            .expect("grid")
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(shown, ["kx1b", "kx1c"]);
        // The first range of the key space starts at its first key: no empty cells below it.
        let range = Range::new(Key::from_bytes(Vec::new()), Some(k("kx02")));
        assert_eq!(grid_points(&range, &first, &last, 4), None);
        let range = Range::new(Key::from_bytes(Vec::new()), Some(k("kx0c")));
        let shown: Vec<String> = grid_points(&range, &first, &last, 4)
            .expect("grid")
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(shown, ["kx06", "kx07", "kx08", "kx09", "kx0a", "kx0b"]);
        // The last range ends at the last key.
        let range = Range::new(k("kxz8"), None);
        let shown: Vec<String> = grid_points(&range, &first, &last, 4)
            .expect("grid")
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(shown, ["kxz9"]);
    }
}
