//! Range splitting: boundaries as a pure function of the range (and, when known, of the first and
//! last key present), so every store is asked about exactly the same sub-ranges.
//!
//! Boundaries are interpolated between two byte strings after their common prefix, reading the
//! next [`WINDOW`] bytes as a big-endian number. Keys under one model are base36 StreamIDs whose
//! characters after the fixed type prefix are close to uniform, so equal-width cuts give
//! near-equal counts. Skewed key sets still terminate (the descent asks for the actual first and
//! last keys when a split left everything in one child) — skew costs rounds, never correctness.

use super::key::Key;

/// Bytes after the common prefix used for interpolation. 16 bytes resolve 2^128 positions; fewer
/// would stop distinguishing long keys sharing a short prefix (splits would then fail to
/// separate them and cost an extra bounds round), more buys nothing for realistic keys.
const WINDOW: usize = 16;

/// The `WINDOW` bytes of `bytes` from `from` on, as a big-endian number; missing bytes of a
/// shorter key count as 0x00 (a key sorts before any of its continuations).
fn window(bytes: &[u8], from: usize) -> u128 {
    let mut w = [0u8; WINDOW];
    let tail = bytes.get(from..).unwrap_or(&[]);
    let n = tail.len().min(WINDOW);
    w[..n].copy_from_slice(&tail[..n]);
    u128::from_be_bytes(w)
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Up to `k - 1` strictly increasing boundaries `p` with `a < p` and (if `b` is given) `p < b`,
/// spaced evenly between `a` and `b` (or the top of the key space). May return fewer, or none,
/// when `a` and `b` are too close to split in the window.
pub fn interpolate(a: &[u8], b: Option<&[u8]>, k: usize) -> Vec<Key> {
    let (prefix_len, ua, ub) = match b {
        Some(b) => {
            let p = common_prefix(a, b);
            (p, window(a, p), window(b, p))
        }
        None => (0, window(a, 0), u128::MAX),
    };
    if ub <= ua || k < 2 {
        return Vec::new();
    }
    let span = ub - ua;
    let (step, rem) = (span / k as u128, span % k as u128);
    let mut out: Vec<Key> = Vec::with_capacity(k - 1);
    for i in 1..k as u128 {
        // ua + span * i / k without overflowing u128 (rem < k and i < k).
        let point = ua + step * i + rem * i / k as u128;
        if point <= ua {
            continue;
        }
        let mut bytes = a[..prefix_len].to_vec();
        bytes.extend_from_slice(&point.to_be_bytes());
        while bytes.len() > prefix_len && bytes.last() == Some(&0) {
            bytes.pop();
        }
        let key = Key::from_bytes(bytes);
        let above_a = key.as_bytes() > a;
        let below_b = b.is_none_or(|b| key.as_bytes() < b);
        let increasing = out.last().is_none_or(|last| *last < key);
        if above_a && below_b && increasing {
            out.push(key);
        }
    }
    out
}

/// Boundaries for a range known to hold keys from `first` to `last` (inclusive, `first < last`):
/// every boundary `p` has `first < p <= last`, so the first and last key always land in different
/// sub-ranges and the split makes progress.
pub fn split_between(first: &Key, last: &Key, k: usize) -> Vec<Key> {
    let mut points = interpolate(first.as_bytes(), Some(last.as_bytes()), k);
    if points.is_empty() && first < last {
        points.push(last.clone());
    }
    points
}
