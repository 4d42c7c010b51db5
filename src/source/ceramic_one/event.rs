//! Ceramic events as ceramic-one stores them: the few fields the audit needs, read from an
//! event's blocks (a signed event is a dag-jose envelope whose `link` is the dag-cbor payload; an
//! unsigned one is the dag-cbor payload itself), and the event's Recon key (EventId) rebuilt
//! from them the way ceramic-one does (reference `ceramic-one.md` §3.4).
//!
//! Pure: blocks come from a closure, so the SQLite store, a CAR file and an HTTP body share it.

use ciborium::Value;
use cid::Cid;
use thiserror::Error;

use crate::ids::{read_cid, EventId, Network};

/// Multicodec of a dag-jose block (a signed event's envelope).
pub const DAG_JOSE: u64 = 0x85;
/// Multicodec of a dag-cbor block.
pub const DAG_CBOR: u64 = 0x71;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum EventError {
    #[error("event {cid}: block {block} is not in the store")]
    MissingBlock { cid: String, block: String },
    #[error("event {cid}: {what} is not valid CBOR: {reason}")]
    Cbor {
        cid: String,
        what: &'static str,
        reason: String,
    },
    #[error("event {cid}: {reason}")]
    Shape { cid: String, reason: String },
}

/// What the audit reads from one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventInfo {
    pub cid: Cid,
    /// The stream's init event (the event itself for an init event).
    pub init: Cid,
    /// `prev` of a data or time event; None for an init event.
    pub prev: Option<Cid>,
    /// Init events only: the header's separator key, `model` bytes and first controller.
    pub header: Option<InitHeader>,
    pub is_time_event: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitHeader {
    pub sep: String,
    pub model: Vec<u8>,
    pub controller: String,
}

impl EventInfo {
    pub fn is_init(&self) -> bool {
        self.prev.is_none()
    }
}

fn shape(cid: &Cid, reason: impl Into<String>) -> EventError {
    EventError::Shape {
        cid: cid.to_string(),
        reason: reason.into(),
    }
}

fn decode(cid: &Cid, what: &'static str, bytes: &[u8]) -> Result<Value, EventError> {
    ciborium::de::from_reader(bytes).map_err(|e| EventError::Cbor {
        cid: cid.to_string(),
        what,
        reason: e.to_string(),
    })
}

fn field<'a>(map: &'a Value, name: &str) -> Option<&'a Value> {
    map.as_map()?
        .iter()
        .find(|(k, _)| k.as_text() == Some(name))
        .map(|(_, v)| v)
}

/// A dag-cbor link: tag 42 around the CID bytes with a leading 0x00.
fn link(value: &Value) -> Option<Cid> {
    match value {
        Value::Tag(42, inner) => {
            let bytes = inner.as_bytes()?;
            let (cid, used) = read_cid(bytes.strip_prefix(&[0u8])?, "link").ok()?;
            (used + 1 == bytes.len()).then_some(cid)
        }
        _ => None,
    }
}

/// Reads the event rooted at `cid` from its blocks (`block(cid)` returns a block's bytes).
pub fn parse_event(
    cid: &Cid,
    block: &dyn Fn(&Cid) -> Option<Vec<u8>>,
) -> Result<EventInfo, EventError> {
    let get = |c: &Cid| {
        block(c).ok_or_else(|| EventError::MissingBlock {
            cid: cid.to_string(),
            block: c.to_string(),
        })
    };
    let root = get(cid)?;
    let payload = match cid.codec() {
        DAG_JOSE => {
            let envelope = decode(cid, "the JWS envelope", &root)?;
            // The dag-jose block stores the JWS payload as raw bytes: the payload block's CID
            // (the `link` a decoder shows is derived from it, not stored).
            let payload_cid = field(&envelope, "payload")
                .and_then(Value::as_bytes)
                .and_then(|b| match read_cid(b, "JWS payload") {
                    Ok((c, used)) if used == b.len() => Some(c),
                    _ => None,
                })
                .ok_or_else(|| shape(cid, "the JWS payload is not a CID"))?;
            decode(cid, "the payload", &get(&payload_cid)?)?
        }
        DAG_CBOR => decode(cid, "the event", &root)?,
        other => return Err(shape(cid, format!("unexpected codec 0x{other:x}"))),
    };
    let is_time_event = field(&payload, "proof").is_some();
    match field(&payload, "prev") {
        Some(prev) => {
            let prev = link(prev).ok_or_else(|| shape(cid, "`prev` is not a link"))?;
            let init = field(&payload, "id")
                .and_then(link)
                .ok_or_else(|| shape(cid, "`id` (the init event) is missing or not a link"))?;
            Ok(EventInfo {
                cid: *cid,
                init,
                prev: Some(prev),
                header: None,
                is_time_event,
            })
        }
        None => {
            let header = field(&payload, "header")
                .ok_or_else(|| shape(cid, "an init event without a `header`"))?;
            let sep = field(header, "sep")
                .and_then(Value::as_text)
                .ok_or_else(|| shape(cid, "the init header has no `sep`"))?;
            // The separator value is the header field the separator key names (`model`).
            let model = field(header, sep)
                .and_then(Value::as_bytes)
                .ok_or_else(|| shape(cid, format!("the init header has no `{sep}` bytes")))?;
            let controller = field(header, "controllers")
                .and_then(Value::as_array)
                .and_then(|c| c.first())
                .and_then(Value::as_text)
                .ok_or_else(|| shape(cid, "the init header has no controller"))?;
            Ok(EventInfo {
                cid: *cid,
                init: *cid,
                prev: None,
                header: Some(InitHeader {
                    sep: sep.to_string(),
                    model: model.clone(),
                    controller: controller.to_string(),
                }),
                is_time_event,
            })
        }
    }
}

/// The EventId ceramic-one files `event` under, from its stream's init header.
pub fn event_id(network: Network, header: &InitHeader, event: &EventInfo) -> EventId {
    EventId::build(
        network,
        &header.sep,
        &header.model,
        &header.controller,
        &event.init,
        &event.cid,
    )
}

/// A CAR file (v1) split into its roots and blocks, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Car {
    pub roots: Vec<Cid>,
    pub blocks: Vec<(Cid, Vec<u8>)>,
}

impl Car {
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        fn varint(b: &[u8]) -> Result<(usize, &[u8]), String> {
            unsigned_varint::decode::usize(b).map_err(|e| format!("bad section length: {e}"))
        }
        let (len, rest) = varint(bytes)?;
        if rest.len() < len {
            return Err("truncated CAR header".into());
        }
        let header: Value = ciborium::de::from_reader(&rest[..len])
            .map_err(|e| format!("CAR header is not CBOR: {e}"))?;
        let roots = field(&header, "roots")
            .and_then(Value::as_array)
            .ok_or("CAR header has no roots")?
            .iter()
            .map(|r| link(r).ok_or_else(|| "a CAR root is not a CID".to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut rest = &rest[len..];
        let mut blocks = Vec::new();
        while !rest.is_empty() {
            let (len, after) = varint(rest)?;
            if after.len() < len {
                return Err("truncated CAR block".into());
            }
            let section = &after[..len];
            let (cid, used) = read_cid(section, "CAR block CID").map_err(|e| e.to_string())?;
            blocks.push((cid, section[used..].to_vec()));
            rest = &after[len..];
        }
        Ok(Self { roots, blocks })
    }

    pub fn block(&self, cid: &Cid) -> Option<Vec<u8>> {
        self.blocks
            .iter()
            .find(|(c, _)| c == cid)
            .map(|(_, b)| b.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Car::parse(&[]).is_err());
        assert!(Car::parse(&[0x05, 1, 2]).is_err());
        assert!(Car::parse(&[0xff; 12]).is_err());
        let cid: Cid = "bagcqcerawamm3kogfwuvcwasqnmttmaysxwwlhwvdcrjjryht772dgywhjea"
            .parse()
            .unwrap();
        let err = parse_event(&cid, &|_| Some(vec![0xa1, 0x61])).unwrap_err();
        assert!(matches!(err, EventError::Cbor { .. }), "{err}");
        let err = parse_event(&cid, &|_| None).unwrap_err();
        assert!(matches!(err, EventError::MissingBlock { .. }), "{err}");
    }
}
