//! Associative, commutative range hashes: the fingerprint of a range is the sum of its entries'
//! hashes, so any range's fingerprint can be assembled from sub-ranges (or from prefix sums) and
//! does not depend on how a store iterates.
//!
//! Three algorithms:
//! - [`Sha256a`] — Recon's "ahash": sha256 read as 8 little-endian u32 lanes, added lane-wise
//!   with wrap-around (rust-ceramic `recon/src/sha256a.rs`, CIP-124 appendix A). Bit-compatible,
//!   so fingerprints can be compared with ceramic-one's stored `ahash_0..7` sums.
//! - [`Md5Lanes`] — md5 read as 2 big-endian u64 lanes, added with wrap-around. Postgres computes
//!   it at ~1.2 M rows/s in plain SQL (`('x'||substr(md5(t),1,16))::bit(64)::bigint`, summed as
//!   numeric, reduced mod 2^64), where Sha256a runs at 54 k rows/s. It was the first push-down
//!   hash; kept as a 128-bit alternative the tests also exercise.
//! - [`PgHash64`] — Postgres' own `hashtextextended(text, 0)` (Bob Jenkins' lookup3 as
//!   `hash_bytes_extended` in `src/common/hashfn.c`), ported here bit for bit. Postgres 15
//!   computes it at ~4 M rows/s as a built-in, 4–5× faster than the md5 lanes (whose hex-to-bit
//!   conversion dominates), so it is the push-down hash: every node sums it in SQL, and the
//!   SQLite, snapshot and download paths compute the same function here. The function has not
//!   changed since it appeared in Postgres 11; a big-endian server computes other values, and
//!   the Postgres source refuses any server whose answer to a probe differs from this port's.
//!
//! XOR is not an option: duplicates would cancel (the reason CIP-124 gives for a sum).

use std::fmt::Debug;

use md5::Md5;
use sha2::{Digest, Sha256};

/// A hash with an identity, an associative and commutative `add`, and its inverse `sub`
/// (prefix sums need it). Implementations must be lane-wise modular sums of per-entry hashes.
pub trait AssociativeHash: Clone + Debug + PartialEq + Eq + Send + Sync + 'static {
    /// Name written into reports and benchmark JSON.
    const NAME: &'static str;
    /// Bytes a fingerprint takes on the wire (used by the cost accounting).
    const WIRE_BYTES: usize;

    fn zero() -> Self;
    /// The hash of one entry's canonical bytes (see `Entry::hash_input`).
    fn digest(bytes: &[u8]) -> Self;
    fn add(&self, other: &Self) -> Self;
    fn sub(&self, other: &Self) -> Self;
    /// Serialized form: empty for zero (as Recon serializes it), else `WIRE_BYTES` bytes.
    fn to_bytes(&self) -> Vec<u8>;
    /// A 64-bit digest of a single entry's hash, used to compare leaf rows cheaply.
    fn short(&self) -> u64;

    /// Human form for traces: a short hex prefix, or `0` for the identity.
    fn render(&self) -> String {
        let bytes = self.to_bytes();
        if bytes.is_empty() {
            "0".into()
        } else {
            hex::encode(&bytes[..bytes.len().min(4)])
        }
    }
}

/// Recon's Sha256a: 8 little-endian u32 lanes of sha256, wrapping lane-wise sum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Sha256a(pub [u32; 8]);

impl Sha256a {
    pub fn from_digest_bytes(bytes: &[u8; 32]) -> Self {
        let mut lanes = [0u32; 8];
        for (lane, chunk) in lanes.iter_mut().zip(bytes.chunks_exact(4)) {
            *lane = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        Self(lanes)
    }
}

impl AssociativeHash for Sha256a {
    const NAME: &'static str = "sha256a";
    const WIRE_BYTES: usize = 32;

    fn zero() -> Self {
        Self([0; 8])
    }

    fn digest(bytes: &[u8]) -> Self {
        Self::from_digest_bytes(&Sha256::digest(bytes).into())
    }

    fn add(&self, other: &Self) -> Self {
        Self(std::array::from_fn(|i| self.0[i].wrapping_add(other.0[i])))
    }

    fn sub(&self, other: &Self) -> Self {
        Self(std::array::from_fn(|i| self.0[i].wrapping_sub(other.0[i])))
    }

    fn to_bytes(&self) -> Vec<u8> {
        if *self == Self::zero() {
            return Vec::new();
        }
        self.0.iter().flat_map(|l| l.to_le_bytes()).collect()
    }

    fn short(&self) -> u64 {
        u64::from(self.0[0]) | (u64::from(self.0[1]) << 32)
    }
}

/// md5 as two big-endian u64 lanes with a wrapping lane-wise sum: 128 bits of fingerprint that
/// SQL can compute cheaply. `short()` is the first lane, i.e. `substr(md5(t),1,16)` in SQL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Md5Lanes(pub [u64; 2]);

impl AssociativeHash for Md5Lanes {
    const NAME: &'static str = "md5-lanes";
    const WIRE_BYTES: usize = 16;

    fn zero() -> Self {
        Self([0; 2])
    }

    fn digest(bytes: &[u8]) -> Self {
        let d: [u8; 16] = Md5::digest(bytes).into();
        let mut hi = [0u8; 8];
        let mut lo = [0u8; 8];
        hi.copy_from_slice(&d[..8]);
        lo.copy_from_slice(&d[8..]);
        Self([u64::from_be_bytes(hi), u64::from_be_bytes(lo)])
    }

    fn add(&self, other: &Self) -> Self {
        Self([
            self.0[0].wrapping_add(other.0[0]),
            self.0[1].wrapping_add(other.0[1]),
        ])
    }

    fn sub(&self, other: &Self) -> Self {
        Self([
            self.0[0].wrapping_sub(other.0[0]),
            self.0[1].wrapping_sub(other.0[1]),
        ])
    }

    fn to_bytes(&self) -> Vec<u8> {
        if *self == Self::zero() {
            return Vec::new();
        }
        self.0.iter().flat_map(|l| l.to_be_bytes()).collect()
    }

    fn short(&self) -> u64 {
        self.0[0]
    }
}

/// Postgres' `hash_bytes_extended(k, len, seed)` as a little-endian server computes it (the
/// aligned and unaligned read paths give the same result there). `hashtextextended(t, seed)` is
/// this function over the text's bytes, read as a signed `int8`.
pub fn pg_hash_bytes_extended(key: &[u8], seed: u64) -> u64 {
    fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
        *a = a.wrapping_sub(*c);
        *a ^= c.rotate_left(4);
        *c = c.wrapping_add(*b);
        *b = b.wrapping_sub(*a);
        *b ^= a.rotate_left(6);
        *a = a.wrapping_add(*c);
        *c = c.wrapping_sub(*b);
        *c ^= b.rotate_left(8);
        *b = b.wrapping_add(*a);
        *a = a.wrapping_sub(*c);
        *a ^= c.rotate_left(16);
        *c = c.wrapping_add(*b);
        *b = b.wrapping_sub(*a);
        *b ^= a.rotate_left(19);
        *a = a.wrapping_add(*c);
        *c = c.wrapping_sub(*b);
        *c ^= b.rotate_left(4);
        *b = b.wrapping_add(*a);
    }
    fn finish(a: &mut u32, b: &mut u32, c: &mut u32) {
        *c ^= *b;
        *c = c.wrapping_sub(b.rotate_left(14));
        *a ^= *c;
        *a = a.wrapping_sub(c.rotate_left(11));
        *b ^= *a;
        *b = b.wrapping_sub(a.rotate_left(25));
        *c ^= *b;
        *c = c.wrapping_sub(b.rotate_left(16));
        *a ^= *c;
        *a = a.wrapping_sub(c.rotate_left(4));
        *b ^= *a;
        *b = b.wrapping_sub(a.rotate_left(14));
        *c ^= *b;
        *c = c.wrapping_sub(b.rotate_left(24));
    }
    let word = |k: &[u8]| -> u32 {
        k.iter()
            .take(4)
            .enumerate()
            .fold(0u32, |w, (i, &byte)| w | (u32::from(byte) << (8 * i)))
    };
    // Postgres takes the length as a C `int` and the state as uint32: a key over 4 GiB cannot
    // be a Postgres text value, so truncating the length here changes nothing real.
    let init = 0x9e37_79b9u32
        .wrapping_add(key.len() as u32)
        .wrapping_add(3_923_095);
    let (mut a, mut b, mut c) = (init, init, init);
    if seed != 0 {
        a = a.wrapping_add((seed >> 32) as u32);
        b = b.wrapping_add(seed as u32);
        mix(&mut a, &mut b, &mut c);
    }
    let mut k = key;
    while k.len() >= 12 {
        a = a.wrapping_add(word(&k[0..4]));
        b = b.wrapping_add(word(&k[4..8]));
        c = c.wrapping_add(word(&k[8..12]));
        mix(&mut a, &mut b, &mut c);
        k = &k[12..];
    }
    // The last 0–11 bytes: the lowest byte of `c` is left for the length, so the bytes that go
    // into `c` are shifted up by one byte.
    if k.len() > 8 {
        c = c.wrapping_add(word(&k[8..]) << 8);
    }
    if k.len() > 4 {
        b = b.wrapping_add(word(&k[4..k.len().min(8)]));
    }
    if !k.is_empty() {
        a = a.wrapping_add(word(&k[..k.len().min(4)]));
    }
    finish(&mut a, &mut b, &mut c);
    (u64::from(b) << 32) | u64::from(c)
}

/// Postgres' `hashtextextended(t, 0)` as a one-lane 64-bit sum: the push-down hash. A range
/// travels as this sum and its row count (`HashCount`), 64 + 64 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct PgHash64(pub u64);

impl AssociativeHash for PgHash64 {
    const NAME: &'static str = "pg-hashtextextended";
    const WIRE_BYTES: usize = 8;

    fn zero() -> Self {
        Self(0)
    }

    fn digest(bytes: &[u8]) -> Self {
        Self(pg_hash_bytes_extended(bytes, 0))
    }

    fn add(&self, other: &Self) -> Self {
        Self(self.0.wrapping_add(other.0))
    }

    fn sub(&self, other: &Self) -> Self {
        Self(self.0.wrapping_sub(other.0))
    }

    fn to_bytes(&self) -> Vec<u8> {
        if self.0 == 0 {
            return Vec::new();
        }
        self.0.to_be_bytes().to_vec()
    }

    fn short(&self) -> u64 {
        self.0
    }
}

/// A range's fingerprint as it travels: the hash sum and the number of entries it covers.
/// Two ranges are taken as equal when both agree (a sum and a count, as Recon's `HashCount`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashCount<H> {
    pub hash: H,
    pub count: u64,
}

impl<H: AssociativeHash> HashCount<H> {
    pub fn zero() -> Self {
        Self {
            hash: H::zero(),
            count: 0,
        }
    }
}
