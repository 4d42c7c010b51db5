//! ceramic-one interests (`ceramic_one_interest.order_key`, `GET /experimental/interests`): which
//! EventId ranges a node syncs. Layout (reference `ceramic-one.md` §3.5, rust-ceramic
//! `core/src/interest.rs`): a CBOR *sequence* of `bytes(last8(sha256(sep_key)))`,
//! `bytes(peer_id)`, an indicator (0 min fencepost, 1 range, 2 max fencepost) and, for a range,
//! `bytes(start EventId)`, `bytes(end EventId)`, `u64 not_after` (0 = never expires).
//!
//! A model's whole key space is the EventId range from the minimum controller/init/event to the
//! maximum (`build_start_stop_range`, §3.4): `prefix ‖ 00×12` up to `prefix ‖ FF×12 ‖ FF`, where
//! the prefix is `ce 01 05 ‖ varint(network) ‖ last8(sha256(sep_key ‖ model bytes))`.

use std::io::Cursor;

use ciborium::Value;
use sha2::{Digest, Sha256};

use crate::ids::{EventId, Network};

/// One decoded interest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interest {
    pub sep_key_hash: Vec<u8>,
    pub peer_id: Vec<u8>,
    /// `[start, end)` in EventId bytes; None for the min/max fenceposts, which cover no events.
    pub range: Option<(Vec<u8>, Vec<u8>)>,
    /// Unix seconds after which the interest lapses; 0 = never.
    pub not_after: u64,
}

fn bytes(v: Option<Value>, what: &str) -> Result<Vec<u8>, String> {
    match v {
        Some(Value::Bytes(b)) => Ok(b),
        Some(other) => Err(format!("{what} is not a byte string ({other:?})")),
        None => Err(format!("{what} is missing")),
    }
}

fn uint(v: Option<Value>, what: &str) -> Result<u64, String> {
    match v {
        Some(Value::Integer(i)) => u64::try_from(i).map_err(|_| format!("{what} is negative")),
        Some(other) => Err(format!("{what} is not an unsigned integer ({other:?})")),
        None => Err(format!("{what} is missing")),
    }
}

impl Interest {
    /// Decodes interest bytes; a clear error for anything else (never a panic).
    pub fn decode(raw: &[u8]) -> Result<Self, String> {
        let mut cursor = Cursor::new(raw);
        let mut next = || -> Option<Value> {
            if cursor.position() as usize >= raw.len() {
                return None;
            }
            ciborium::de::from_reader(&mut cursor).ok()
        };
        let sep_key_hash = bytes(next(), "the separator key hash")?;
        let peer_id = bytes(next(), "the peer id")?;
        let indicator = uint(next(), "the range indicator")?;
        let (range, not_after) = match indicator {
            0 | 2 => (None, 0),
            1 => {
                let start = bytes(next(), "the range start")?;
                let end = bytes(next(), "the range end")?;
                (Some((start, end)), uint(next(), "not_after")?)
            }
            other => return Err(format!("unknown range indicator {other}")),
        };
        if next().is_some() {
            return Err("trailing data after the interest".into());
        }
        Ok(Self {
            sep_key_hash,
            peer_id,
            range,
            not_after,
        })
    }

    /// Whether this interest covers all of `[start, end)`.
    pub fn covers(&self, start: &[u8], end: &[u8]) -> bool {
        self.range
            .as_ref()
            .is_some_and(|(s, e)| s.as_slice() <= start && end <= e.as_slice())
    }
}

/// The EventId prefix shared by every event of one model: network and separator hash.
pub fn model_prefix(network: Network, sep_key: &str, model: &[u8]) -> Vec<u8> {
    let mut id = EventId::build(
        network,
        sep_key,
        model,
        "",
        &cid::Cid::default(),
        &cid::Cid::default(),
    );
    id.event = None;
    let bytes = id.to_bytes();
    bytes[..bytes.len() - 12].to_vec()
}

/// A model's whole key space `[prefix ‖ 00×12, prefix ‖ FF×13)` from its EventId prefix.
pub fn model_range(prefix: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut start = prefix.to_vec();
    start.extend_from_slice(&[0u8; 12]);
    let mut end = prefix.to_vec();
    end.extend_from_slice(&[0xffu8; 13]);
    (start, end)
}

/// The prefix (network + separator hash) of an EventId or interest bound, when it is one.
pub fn prefix_of(event_id: &[u8]) -> Option<Vec<u8>> {
    let id = EventId::from_bytes(event_id).ok()?;
    let full = id.to_bytes();
    let tail = 8 + 4 + id.event.map_or(0, |c| c.to_bytes().len());
    Some(full[..full.len() - tail].to_vec())
}

/// The interest bytes a node stores when `POST /interests {"sep":"model","sepValue":…}` is
/// called on it (§3.5, `post_interests`): the model's whole key space, its own peer id, never
/// expiring.
pub fn model_interest(network: Network, model: &[u8], peer_id: &[u8]) -> Vec<u8> {
    let (start, end) = model_range(&model_prefix(network, "model", model));
    let items = [
        Value::Bytes(sep_key_hash("model")),
        Value::Bytes(peer_id.to_vec()),
        Value::Integer(1.into()),
        Value::Bytes(start),
        Value::Bytes(end),
        Value::Integer(0.into()),
    ];
    let mut out = Vec::new();
    for item in &items {
        // Writing CBOR into a Vec cannot fail.
        let _ = ciborium::ser::into_writer(item, &mut out);
    }
    out
}

/// `last8(sha256(key))`, the interest's separator key hash.
pub fn sep_key_hash(sep_key: &str) -> Vec<u8> {
    Sha256::digest(sep_key.as_bytes())[24..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_bytes_are_errors() {
        assert!(Interest::decode(&[]).is_err());
        assert!(Interest::decode(&[0xff, 0x00]).is_err());
        // bytes(1) bytes(1) then indicator 7
        assert!(Interest::decode(&[0x41, 1, 0x41, 2, 0x07]).is_err());
        // a max fencepost with nothing after it decodes and covers nothing
        let i = Interest::decode(&[0x41, 1, 0x41, 2, 0x02]).unwrap();
        assert!(i.range.is_none());
        assert!(!i.covers(b"a", b"b"));
    }

    #[test]
    fn a_model_range_holds_its_events_only() {
        let meta = crate::ids::StreamId::parse("kh4q0ozorrgaq2mezktnrmdwleo1d")
            .unwrap()
            .to_bytes();
        let p = model_prefix(Network::Local(42), "model", &meta);
        // Measured on ceramic-one 0.58 (reference §9): local-42 starts ce 01 05 aa 80 80 80 10;
        // the meta-model separator hash is ba25076d730241e7 (rust-ceramic's EventId vector).
        assert_eq!(hex::encode(&p), "ce0105aa80808010ba25076d730241e7");
        let (s, e) = model_range(&p);
        assert!(s < e);
        assert_eq!(prefix_of(&s).as_deref(), Some(p.as_slice()));
        let bytes = model_interest(Network::Local(42), &meta, b"peer");
        let decoded = Interest::decode(&bytes).unwrap();
        assert_eq!(decoded.range, Some((s.clone(), e.clone())));
        assert_eq!(decoded.peer_id, b"peer");
        assert!(decoded.covers(&s, &e));
    }
}
