//! `inspect`: recognise any Ceramic identifier and describe it as plain data (JSON for the CLI).

use cid::Cid;
use serde::Serialize;

use super::{format_cid, parse_cid, EventId, IdError, StreamId, StreamRef};

/// Facts about one CID, as shown by `inspect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CidInfo {
    pub cid: String,
    pub version: u64,
    pub codec: u64,
    pub multihash_code: u64,
    pub digest_hex: String,
}

impl CidInfo {
    pub fn new(cid: &Cid) -> Self {
        Self {
            cid: format_cid(cid),
            version: cid.version().into(),
            codec: cid.codec(),
            multihash_code: cid.hash().code(),
            digest_hex: hex::encode(cid.hash().digest()),
        }
    }
}

/// What an identifier is, with every field an operator might want to see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Inspection {
    StreamId {
        stream_id: String,
        stream_type: u64,
        stream_type_name: &'static str,
        genesis: CidInfo,
        bytes_hex: String,
    },
    CommitId {
        commit_id: String,
        stream_id: String,
        stream_type: u64,
        stream_type_name: &'static str,
        genesis: CidInfo,
        /// The commit CID (equal to the genesis CID for the genesis commit).
        commit: CidInfo,
        is_genesis_commit: bool,
        bytes_hex: String,
    },
    EventId {
        event_id: String,
        network: String,
        network_id: u64,
        separator_hash_hex: String,
        controller_hash_hex: String,
        init_cid_tail_hex: String,
        /// Absent in range fenceposts, which carry no event CID.
        event: Option<CidInfo>,
    },
    Cid(CidInfo),
}

fn describe_stream(stream: &StreamId) -> (u64, &'static str, CidInfo) {
    (
        stream.stream_type.code(),
        stream.stream_type.name(),
        CidInfo::new(&stream.genesis),
    )
}

fn looks_like_hex(s: &str) -> bool {
    s.len() % 2 == 0 && s.len() >= 4 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Recognises `input` as a StreamID / CommitID (any accepted URL form), an EventId in hex, or
/// a CID, in that order, and describes it. The error of the most plausible reading is returned,
/// so "k…" that fails says why it is not a StreamID rather than why it is not a CID.
pub fn inspect(input: &str) -> Result<Inspection, IdError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if looks_like_hex(s) && s[..4].eq_ignore_ascii_case("ce01") {
        let id = EventId::from_hex(s)?;
        return Ok(Inspection::EventId {
            event_id: id.to_string(),
            network: id.network.name(),
            network_id: id.network.id(),
            separator_hash_hex: hex::encode(id.separator_hash),
            controller_hash_hex: hex::encode(id.controller_hash),
            init_cid_tail_hex: hex::encode(id.init_tail),
            event: id.event.as_ref().map(CidInfo::new),
        });
    }
    let stream_err = match StreamRef::parse(s) {
        Ok(StreamRef::Stream(stream)) => {
            let (stream_type, stream_type_name, genesis) = describe_stream(&stream);
            return Ok(Inspection::StreamId {
                stream_id: stream.to_string(),
                stream_type,
                stream_type_name,
                genesis,
                bytes_hex: hex::encode(stream.to_bytes()),
            });
        }
        Ok(StreamRef::Commit(commit)) => {
            let (stream_type, stream_type_name, genesis) = describe_stream(&commit.stream);
            return Ok(Inspection::CommitId {
                commit_id: commit.to_string(),
                stream_id: commit.stream.to_string(),
                stream_type,
                stream_type_name,
                genesis,
                commit: CidInfo::new(commit.commit_cid()),
                is_genesis_commit: commit.is_genesis(),
                bytes_hex: hex::encode(commit.to_bytes()),
            });
        }
        Err(e) => e,
    };
    match parse_cid(s) {
        Ok(cid) => Ok(Inspection::Cid(CidInfo::new(&cid))),
        // A base36 string or URL form that is not a CID either: the StreamID reason is the
        // useful one (e.g. "truncated varint in stream type").
        Err(_) if s.starts_with('k') || s.contains("ceramic") => Err(stream_err),
        Err(_) => Err(IdError::Unrecognised),
    }
}
