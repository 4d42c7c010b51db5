//! CIDs with any multihash code.
//!
//! The `cid` crate's default [`cid::Cid`] carries a `Multihash<64>`, which accepts any multihash
//! code — required, because the meta-model `kh4q0ozorrgaq2mezktnrmdwleo1d` wraps a CID whose
//! "hash" code is 0x71 (dag-cbor) around an identity digest.

use std::io::Cursor;

use cid::Cid;

use super::IdError;

/// Reads one binary CID from the front of `bytes`; returns it and the number of bytes it used.
pub fn read_cid(bytes: &[u8], field: &'static str) -> Result<(Cid, usize), IdError> {
    let mut cursor = Cursor::new(bytes);
    let cid = Cid::read_bytes(&mut cursor).map_err(|e| IdError::Cid {
        field,
        reason: e.to_string(),
    })?;
    // The cursor position is bounded by `bytes.len()`, which is a usize.
    let used = usize::try_from(cursor.position()).map_err(|_| IdError::Cid {
        field,
        reason: "length overflow".into(),
    })?;
    Ok((cid, used))
}

/// Parses a CID string (`bafy…`, `bagcq…`, `Qm…`, or any multibase).
pub fn parse_cid(s: &str) -> Result<Cid, IdError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    Cid::try_from(s).map_err(|e| IdError::Cid {
        field: "CID string",
        reason: e.to_string(),
    })
}

/// Formats a CID the way js-ceramic prints it: CIDv0 in base58btc, CIDv1 in base32 lower.
pub fn format_cid(cid: &Cid) -> String {
    cid.to_string()
}
