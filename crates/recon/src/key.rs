//! Keys, values, entries and ranges of the reconciled set.
//!
//! A key is the byte string `model ‖ 0x00 ‖ stream`: byte order on it is exactly the order of the
//! pair (model, stream id) because 0x00 sorts below every other byte and neither part contains it.
//! Keys stay strings as the index stores them (not parsed StreamIDs) so an unparseable row is still
//! a key that can be compared and reported, and so every source — Postgres with `COLLATE "C"`,
//! SQLite, files — orders them the same way: by bytes.

use std::fmt;

use super::hash::AssociativeHash;

/// `model ‖ 0x00 ‖ stream`, or any byte string used as a range boundary.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Key(Vec<u8>);

impl Key {
    pub fn new(model: &str, stream: &str) -> Self {
        let mut b = Vec::with_capacity(model.len() + 1 + stream.len());
        b.extend_from_slice(model.as_bytes());
        b.push(0);
        b.extend_from_slice(stream.as_bytes());
        Self(b)
    }

    /// A key from raw bytes (range boundaries produced by splitting are such keys).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn parts(&self) -> (&[u8], &[u8]) {
        match self.0.iter().position(|&b| b == 0) {
            Some(i) => (&self.0[..i], &self.0[i + 1..]),
            None => (&self.0[..], &[]),
        }
    }

    /// The model part (lossy UTF-8: index rows may hold anything).
    pub fn model(&self) -> String {
        String::from_utf8_lossy(self.parts().0).into_owned()
    }

    /// The stream part (lossy UTF-8).
    pub fn stream(&self) -> String {
        String::from_utf8_lossy(self.parts().1).into_owned()
    }
}

fn write_escaped(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for &b in bytes {
        if b.is_ascii_graphic() && b != b'\\' {
            write!(f, "{}", b as char)?;
        } else {
            write!(f, "\\x{b:02x}")?;
        }
    }
    Ok(())
}

/// `model/stream` for keys, with non-printable bytes escaped (`\x..`) so boundaries read too.
impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.iter().position(|&b| b == 0) {
            Some(i) => {
                write_escaped(f, &self.0[..i])?;
                f.write_str("/")?;
                write_escaped(f, &self.0[i + 1..])
            }
            None => write_escaped(f, &self.0),
        }
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({self})")
    }
}

/// What a node holds for a key: the tip CID string and a 64-bit digest of the comparable
/// columns (controller, content, anchor timestamps, custom columns; Postgres'
/// `hashtextextended` of their canonical text). Node-local columns never enter it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Value {
    pub tip: String,
    pub digest: u64,
}

impl Value {
    pub fn new(tip: impl Into<String>, digest: u64) -> Self {
        Self {
            tip: tip.into(),
            digest,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Entry {
    pub key: Key,
    pub value: Value,
}

impl Entry {
    pub fn new(key: Key, value: Value) -> Self {
        Self { key, value }
    }

    /// The canonical bytes an entry is hashed from, chosen so SQL can build the same string:
    /// `model \n stream \n tip \n digest` with the digest as a signed decimal (how Postgres
    /// prints an `int8`). Identifiers never contain a newline, so the fields cannot run into
    /// each other for well-formed rows.
    pub fn hash_input(&self) -> Vec<u8> {
        let (model, stream) = self.key.parts();
        let mut out = Vec::with_capacity(model.len() + stream.len() + self.value.tip.len() + 24);
        out.extend_from_slice(model);
        out.push(b'\n');
        out.extend_from_slice(stream);
        out.push(b'\n');
        out.extend_from_slice(self.value.tip.as_bytes());
        out.push(b'\n');
        out.extend_from_slice((self.value.digest as i64).to_string().as_bytes());
        out
    }

    pub fn hash<H: AssociativeHash>(&self) -> H {
        H::digest(&self.hash_input())
    }
}

/// A half-open key range `[start, end)`; an empty `start` is the minimum, `end = None` is +∞.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Range {
    pub start: Key,
    pub end: Option<Key>,
}

impl Range {
    /// Every key.
    pub fn full() -> Self {
        Self::default()
    }

    pub fn new(start: Key, end: Option<Key>) -> Self {
        Self { start, end }
    }

    pub fn contains(&self, key: &Key) -> bool {
        *key >= self.start && self.end.as_ref().is_none_or(|e| key < e)
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start.is_empty() {
            f.write_str("[-inf, ")?;
        } else {
            write!(f, "[{}, ", self.start)?;
        }
        match &self.end {
            None => f.write_str("+inf)"),
            Some(e) => write!(f, "{e})"),
        }
    }
}

impl fmt::Debug for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
