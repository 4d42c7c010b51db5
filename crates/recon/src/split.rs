//! Range splitting: boundaries as a pure function of the range (and, when known, of the first and
//! last key present), so every store is asked about exactly the same sub-ranges.
//!
//! Boundaries are interpolated between two keys after their common prefix, reading the next
//! characters as digits of a number in the keys' [`Alphabet`]. Stream keys are base36 StreamIDs
//! whose characters after the fixed type prefix are close to uniform over `0-9a-z`, so cuts that
//! are even in base36 digit space give near-equal counts; cuts even in byte space would waste the
//! gap between `9` and `a` and leave some sub-ranges with several times their share. Skewed keys
//! still terminate (the descent asks for the actual first and last keys when a split left
//! everything in one child) — skew costs rounds, never correctness: every boundary is checked to
//! lie strictly inside its interval before it is used.

use serde::Serialize;

use super::key::{Key, Range};

/// The characters keys are made of, for interpolation only: any key may contain any byte, and
/// bytes outside the alphabet still order correctly (they map to the nearest digit, which only
/// makes a split less even).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Alphabet {
    /// `0-9a-z`: StreamIDs, CIDs in base36/base32 lower. The default.
    Base36,
    /// All 256 byte values: arbitrary binary keys.
    Bytes,
}

const BASE36: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// `s` padded with `0` to `len` characters, read exactly as a base36 number (`len` ≤ 24, the
/// most that fit in a u128); `None` when a character is not base36 or `s` is longer than `len`.
/// Unlike the interpolation below, which maps any byte to a nearby digit, this is exact: SQL
/// prefix filters enumerate the prefixes between two such values.
pub fn base36_value(s: &[u8], len: usize) -> Option<u128> {
    if s.len() > len || len > Alphabet::Base36.window() {
        return None;
    }
    s.iter()
        .copied()
        .chain(std::iter::repeat(b'0'))
        .take(len)
        .try_fold(0u128, |v, c| {
            let d = BASE36.iter().position(|&x| x == c)? as u128;
            Some(v * 36 + d)
        })
}

/// The `len`-character base36 text of `v` (the inverse of [`base36_value`]; higher digits of a
/// `v` ≥ 36^len are dropped).
pub fn base36_text(mut v: u128, len: usize) -> String {
    let mut out = vec![b'0'; len];
    for slot in out.iter_mut().rev() {
        *slot = BASE36[(v % 36) as usize];
        v /= 36;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Alphabet {
    fn radix(self) -> u128 {
        match self {
            Self::Base36 => 36,
            Self::Bytes => 256,
        }
    }

    /// Digits read per key: as many as fit in a u128 (36^24 < 2^125, 256^16 = 2^128). Fewer
    /// would stop distinguishing long keys that share a short prefix (a split then separates
    /// nothing and costs a bounds round); more cannot be represented.
    fn window(self) -> usize {
        match self {
            Self::Base36 => 24,
            Self::Bytes => 16,
        }
    }

    /// Monotone map of a byte to a digit: a byte between two alphabet characters maps to the
    /// lower one's digit.
    fn digit(self, b: u8) -> u128 {
        match self {
            Self::Bytes => u128::from(b),
            Self::Base36 => match b {
                b'0'..=b'9' => u128::from(b - b'0'),
                b'a'..=b'z' => u128::from(b - b'a') + 10,
                b':'..=b'`' => 9,
                b'{'..=u8::MAX => 35,
                _ => 0,
            },
        }
    }

    fn char(self, digit: u128) -> u8 {
        match self {
            // `digit` < radix by construction; the fallbacks are unreachable but panic-free.
            Self::Bytes => u8::try_from(digit).unwrap_or(u8::MAX),
            Self::Base36 => BASE36
                .get(usize::try_from(digit).unwrap_or(35))
                .copied()
                .unwrap_or(b'z'),
        }
    }

    /// The `window()` characters of `bytes` from `from` on as a number; a shorter key is padded
    /// with the lowest digit (it sorts before any of its continuations).
    fn value(self, bytes: &[u8], from: usize) -> u128 {
        let tail = bytes.get(from..).unwrap_or(&[]);
        (0..self.window()).fold(0u128, |acc, i| {
            acc * self.radix() + tail.get(i).map_or(0, |&b| self.digit(b))
        })
    }

    fn chars(self, mut value: u128) -> Vec<u8> {
        let mut out = vec![0u8; self.window()];
        for slot in out.iter_mut().rev() {
            *slot = self.char(value % self.radix());
            value /= self.radix();
        }
        out
    }

    fn max_value(self) -> u128 {
        match self {
            Self::Bytes => u128::MAX,
            Self::Base36 => 36u128.pow(24) - 1,
        }
    }
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Up to `k - 1` strictly increasing boundaries `p` with `a < p` and (if `b` is given) `p < b`,
/// spaced evenly between `a` and `b` (or the top of the key space) in `alphabet` digits. May
/// return fewer, or none, when `a` and `b` are too close to split.
pub fn interpolate(a: &[u8], b: Option<&[u8]>, k: usize, alphabet: Alphabet) -> Vec<Key> {
    let (prefix_len, ua, ub) = match b {
        Some(b) => {
            let p = common_prefix(a, b);
            (p, alphabet.value(a, p), alphabet.value(b, p))
        }
        None => (0, alphabet.value(a, 0), alphabet.max_value()),
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
        let mut full = a[..prefix_len].to_vec();
        full.extend_from_slice(&alphabet.chars(point));
        // The shortest prefix of the point that still lies above both `a` and the previous
        // boundary: boundaries travel in every query, so short ones keep requests small, and
        // any value between the neighbours splits equally well.
        let floor = match out.last() {
            Some(prev) if prev.as_bytes() > a => prev.as_bytes(),
            _ => a,
        };
        let Some(len) = (prefix_len + 1..=full.len()).find(|&l| &full[..l] > floor) else {
            continue;
        };
        full.truncate(len);
        let key = Key::from_bytes(full);
        if b.is_none_or(|b| key.as_bytes() < b) {
            out.push(key);
        }
    }
    out
}

/// Boundaries for a range known to hold keys from `first` to `last` (inclusive, `first < last`):
/// every boundary `p` has `first < p <= last`, so the first and last key always land in different
/// sub-ranges and the split makes progress.
pub fn split_between(first: &Key, last: &Key, k: usize, alphabet: Alphabet) -> Vec<Key> {
    let mut points = interpolate(first.as_bytes(), Some(last.as_bytes()), k, alphabet);
    if points.is_empty() && first < last {
        points.push(last.clone());
    }
    points
}

/// The smallest first key and the largest last key among stores that reported bounds.
pub(crate) fn union_bounds<'a>(bounds: impl Iterator<Item = &'a (Key, Key)>) -> Option<(Key, Key)> {
    bounds.fold(None, |acc, (f, l)| match acc {
        None => Some((f.clone(), l.clone())),
        Some((af, al)) => Some((af.min(f.clone()), al.max(l.clone()))),
    })
}

/// Boundaries for `range` when every key in it is known to lie within `hull` (inclusive): cut
/// the part of the range inside the hull, so no sub-range is spent on empty key space.
pub(crate) fn split_within(
    range: &Range,
    hull: &(Key, Key),
    fanout: usize,
    alphabet: Alphabet,
) -> Vec<Key> {
    let (first, last) = hull;
    let lo = if range.start > *first {
        &range.start
    } else {
        first
    };
    match &range.end {
        // The range ends beyond the last key: boundaries in (lo, last] keep `last` in range.
        Some(end) if last < end => split_between(lo, last, fanout, alphabet),
        None => split_between(lo, last, fanout, alphabet),
        Some(end) => interpolate(lo.as_bytes(), Some(end.as_bytes()), fanout, alphabet),
    }
}
