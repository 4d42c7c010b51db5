//! Recon EventIds, current layout (rust-ceramic since v0.17.0, `core/src/event_id.rs`):
//!
//! ```text
//! varint(0xce) ‖ varint(5) ‖ varint(network)
//!   ‖ last8(sha256("model" ‖ model StreamID bytes))   separator hash
//!   ‖ last8(sha256(controller DID, UTF-8))             controller hash
//!   ‖ last4(init event CID bytes)                      stream (init) tail
//!   ‖ event CID bytes                                  absent in range fenceposts
//! ```
//!
//! The module doc in rust-ceramic still mentions `"|"` and an event height; the code has neither,
//! and neither do we (the reference's `blessing` vector checks this).

use std::fmt;

use cid::Cid;
use sha2::{Digest, Sha256};

use super::{cid::read_cid, stream_id::STREAMID_CODEC, IdError};

/// The EventId "stream type" of CIP-124.
const EVENT_ID_TYPE: u64 = 5;
/// Local networks are numbered from here (`0x1_0000_0000 + id`).
const LOCAL_NETWORK_BASE: u64 = 0x1_0000_0000;

/// Ceramic network ids as they appear in EventIds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Network {
    Mainnet,
    TestnetClay,
    DevUnstable,
    InMemory,
    Local(u32),
    /// A code this version does not know; kept so the id still round-trips.
    Unknown(u64),
}

impl Network {
    pub fn id(self) -> u64 {
        match self {
            Self::Mainnet => 0,
            Self::TestnetClay => 1,
            Self::DevUnstable => 2,
            Self::InMemory => 0xff,
            Self::Local(id) => LOCAL_NETWORK_BASE + u64::from(id),
            Self::Unknown(code) => code,
        }
    }

    pub fn from_id(id: u64) -> Self {
        match id {
            0 => Self::Mainnet,
            1 => Self::TestnetClay,
            2 => Self::DevUnstable,
            0xff => Self::InMemory,
            n if n >= LOCAL_NETWORK_BASE && n - LOCAL_NETWORK_BASE <= u64::from(u32::MAX) => {
                // The guard bounds the value, so the conversion cannot fail.
                Self::Local(u32::try_from(n - LOCAL_NETWORK_BASE).unwrap_or(u32::MAX))
            }
            other => Self::Unknown(other),
        }
    }

    /// The name js-ceramic and ceramic-one use (`local-<id>` for local networks).
    pub fn name(self) -> String {
        match self {
            Self::Mainnet => "mainnet".into(),
            Self::TestnetClay => "testnet-clay".into(),
            Self::DevUnstable => "dev-unstable".into(),
            Self::InMemory => "inmemory".into(),
            Self::Local(id) => format!("local-{id}"),
            Self::Unknown(code) => format!("unknown-0x{code:x}"),
        }
    }
}

/// A parsed EventId. The three hashed parts are kept as bytes: they cannot be inverted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventId {
    pub network: Network,
    pub separator_hash: [u8; 8],
    pub controller_hash: [u8; 8],
    pub init_tail: [u8; 4],
    pub event: Option<Cid>,
}

fn last<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let take = bytes.len().min(N);
    out[N - take..].copy_from_slice(&bytes[bytes.len() - take..]);
    out
}

fn take<'a, const N: usize>(
    bytes: &'a [u8],
    field: &'static str,
) -> Result<([u8; N], &'a [u8]), IdError> {
    if bytes.len() < N {
        return Err(IdError::EventIdShort {
            field,
            need: N,
            have: bytes.len(),
        });
    }
    let (head, rest) = bytes.split_at(N);
    let mut out = [0u8; N];
    out.copy_from_slice(head);
    Ok((out, rest))
}

impl EventId {
    /// Builds the EventId of `event` in the stream whose init event is `init`, for a model
    /// separator (`sep_key = "model"`, `sep_value` = the model's StreamID bytes).
    pub fn build(
        network: Network,
        sep_key: &str,
        sep_value: &[u8],
        controller: &str,
        init: &Cid,
        event: &Cid,
    ) -> Self {
        let mut sep = Sha256::new();
        sep.update(sep_key.as_bytes());
        sep.update(sep_value);
        let sep: [u8; 32] = sep.finalize().into();
        let ctrl: [u8; 32] = Sha256::digest(controller.as_bytes()).into();
        Self {
            network,
            separator_hash: last(&sep),
            controller_hash: last(&ctrl),
            init_tail: last(&init.to_bytes()),
            event: Some(*event),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        let mut buf = unsigned_varint::encode::u64_buffer();
        out.extend_from_slice(unsigned_varint::encode::u64(STREAMID_CODEC, &mut buf));
        out.extend_from_slice(unsigned_varint::encode::u64(EVENT_ID_TYPE, &mut buf));
        out.extend_from_slice(unsigned_varint::encode::u64(self.network.id(), &mut buf));
        out.extend_from_slice(&self.separator_hash);
        out.extend_from_slice(&self.controller_hash);
        out.extend_from_slice(&self.init_tail);
        if let Some(event) = &self.event {
            out.extend_from_slice(&event.to_bytes());
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdError> {
        let varint =
            |b, field| unsigned_varint::decode::u64(b).map_err(|_| IdError::Varint { field });
        let (codec, rest) = varint(bytes, "codec")?;
        if codec != STREAMID_CODEC {
            return Err(IdError::WrongCodec(codec));
        }
        let (kind, rest) = varint(rest, "EventId type")?;
        if kind != EVENT_ID_TYPE {
            return Err(IdError::NotEventId(kind));
        }
        let (network, rest) = varint(rest, "network id")?;
        let (separator_hash, rest) = take::<8>(rest, "separator hash")?;
        let (controller_hash, rest) = take::<8>(rest, "controller hash")?;
        let (init_tail, rest) = take::<4>(rest, "init CID tail")?;
        let event = if rest.is_empty() {
            None
        } else {
            let (cid, used) = read_cid(rest, "event CID")?;
            if used != rest.len() {
                return Err(IdError::Trailing(rest.len() - used, "event CID"));
            }
            Some(cid)
        };
        Ok(Self {
            network: Network::from_id(network),
            separator_hash,
            controller_hash,
            init_tail,
            event,
        })
    }

    /// Parses the hex form (either case; `Display` writes upper case like rust-ceramic).
    pub fn from_hex(s: &str) -> Result<Self, IdError> {
        let bytes = hex::decode(s.trim()).map_err(|e| IdError::Hex(e.to_string()))?;
        Self::from_bytes(&bytes)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode_upper(self.to_bytes()))
    }
}
