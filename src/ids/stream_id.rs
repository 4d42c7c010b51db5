//! StreamID and CommitID (CIP-59): `varint(0xce) ‖ varint(type) ‖ genesis CID [‖ 00 | commit CID]`,
//! as multibase base36 lower (`k…`).
//!
//! Parsing mirrors js-ceramic's `stream-ref-parsing.ts`: nothing after the genesis CID is a
//! StreamID, a single `00` is the CommitID of the genesis commit, anything else must be exactly
//! one more CID. Round-trips are byte-exact: we keep the CIDs as parsed and re-encode them.

use std::fmt;

use cid::Cid;
use multibase::Base;
use serde::Serialize;

use super::{cid::read_cid, IdError};

/// The multicodec of StreamIDs, CommitIDs and EventIds (`ce 01` as a varint).
pub const STREAMID_CODEC: u64 = 0xce;

/// Stream type codes from js-ceramic's registry (`stream-type.ts`). Unknown codes are kept so an
/// unknown StreamID still round-trips; only its name is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StreamType {
    Tile,
    Caip10Link,
    Model,
    ModelInstanceDocument,
    Unloadable,
    Other(u64),
}

impl StreamType {
    pub fn from_code(code: u64) -> Self {
        match code {
            0 => Self::Tile,
            1 => Self::Caip10Link,
            2 => Self::Model,
            3 => Self::ModelInstanceDocument,
            4 => Self::Unloadable,
            other => Self::Other(other),
        }
    }

    pub fn code(self) -> u64 {
        match self {
            Self::Tile => 0,
            Self::Caip10Link => 1,
            Self::Model => 2,
            Self::ModelInstanceDocument => 3,
            Self::Unloadable => 4,
            Self::Other(c) => c,
        }
    }

    /// The name js-ceramic uses (`doctype`), or `unknown`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tile => "tile",
            Self::Caip10Link => "caip10-link",
            Self::Model => "model",
            Self::ModelInstanceDocument => "MID",
            Self::Unloadable => "UNLOADABLE",
            Self::Other(5) => "EventID",
            Self::Other(_) => "unknown",
        }
    }
}

/// A StreamID: stream type plus genesis CID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId {
    pub stream_type: StreamType,
    pub genesis: Cid,
}

/// A CommitID: a StreamID plus one commit; `commit == None` is the genesis commit (encoded `00`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CommitId {
    pub stream: StreamId,
    pub commit: Option<Cid>,
}

/// What a Ceramic reference string names: a whole stream or one commit of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamRef {
    Stream(StreamId),
    Commit(CommitId),
}

fn read_varint<'a>(bytes: &'a [u8], field: &'static str) -> Result<(u64, &'a [u8]), IdError> {
    unsigned_varint::decode::u64(bytes).map_err(|_| IdError::Varint { field })
}

fn push_varint(out: &mut Vec<u8>, v: u64) {
    let mut buf = unsigned_varint::encode::u64_buffer();
    out.extend_from_slice(unsigned_varint::encode::u64(v, &mut buf));
}

/// Decodes a multibase string and insists on base36 lower, the only base js-ceramic emits.
fn decode_base36(s: &str) -> Result<Vec<u8>, IdError> {
    let (base, bytes) = multibase::decode(s).map_err(|e| IdError::Multibase(e.to_string()))?;
    match base {
        Base::Base36Lower | Base::Base36Upper => Ok(bytes),
        other => Err(IdError::WrongBase(format!("{other:?}"))),
    }
}

/// Strips the accepted URL forms: `ceramic://<id>`, `/ceramic/<id>`, and `?commit=<cid>`.
/// Returns the bare id and the commit, if the query gave one.
fn strip_url(s: &str) -> (&str, Option<&str>) {
    let s = s.trim();
    let s = s
        .strip_prefix("ceramic://")
        .or_else(|| s.strip_prefix("/ceramic/"))
        .unwrap_or(s);
    match s.split_once("?commit=") {
        Some((id, commit)) => (id, Some(commit)),
        None => (s, None),
    }
}

impl StreamId {
    pub fn new(stream_type: StreamType, genesis: Cid) -> Self {
        Self {
            stream_type,
            genesis,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 38);
        push_varint(&mut out, STREAMID_CODEC);
        push_varint(&mut out, self.stream_type.code());
        out.extend_from_slice(&self.genesis.to_bytes());
        out
    }

    /// Parses StreamID bytes; a CommitID's bytes are an error here.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdError> {
        match StreamRef::from_bytes(bytes)? {
            StreamRef::Stream(s) => Ok(s),
            StreamRef::Commit(_) => Err(IdError::UnexpectedCommit),
        }
    }

    /// Parses a StreamID string (base36, or one of the URL forms without a commit).
    pub fn parse(s: &str) -> Result<Self, IdError> {
        match StreamRef::parse(s)? {
            StreamRef::Stream(s) => Ok(s),
            StreamRef::Commit(_) => Err(IdError::UnexpectedCommit),
        }
    }

    /// The CommitID of this stream's genesis commit.
    pub fn genesis_commit(&self) -> CommitId {
        CommitId {
            stream: self.clone(),
            commit: None,
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&multibase::encode(Base::Base36Lower, self.to_bytes()))
    }
}

impl std::str::FromStr for StreamId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::parse(s)
    }
}

impl CommitId {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.stream.to_bytes();
        match &self.commit {
            None => out.push(0),
            Some(c) => out.extend_from_slice(&c.to_bytes()),
        }
        out
    }

    /// The commit CID this id points to (the genesis CID for the genesis commit).
    pub fn commit_cid(&self) -> &Cid {
        self.commit.as_ref().unwrap_or(&self.stream.genesis)
    }

    pub fn is_genesis(&self) -> bool {
        self.commit.is_none()
    }
}

impl fmt::Display for CommitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&multibase::encode(Base::Base36Lower, self.to_bytes()))
    }
}

impl StreamRef {
    /// Parses StreamID or CommitID bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdError> {
        let (codec, rest) = read_varint(bytes, "codec")?;
        if codec != STREAMID_CODEC {
            return Err(IdError::WrongCodec(codec));
        }
        let (type_code, rest) = read_varint(rest, "stream type")?;
        let (genesis, used) = read_cid(rest, "genesis CID")?;
        let stream = StreamId::new(StreamType::from_code(type_code), genesis);
        let rest = &rest[used..];
        match rest {
            [] => Ok(Self::Stream(stream)),
            [0] => Ok(Self::Commit(CommitId {
                stream,
                commit: None,
            })),
            _ => {
                let (commit, used) = read_cid(rest, "commit CID")?;
                if used != rest.len() {
                    return Err(IdError::Trailing(rest.len() - used, "commit CID"));
                }
                Ok(Self::Commit(CommitId {
                    stream,
                    commit: Some(commit),
                }))
            }
        }
    }

    /// Parses any accepted reference string: `k…`, `ceramic://k…`, `/ceramic/k…`, with an
    /// optional `?commit=<cid>` (a commit equal to the genesis, or `0`, means the genesis commit,
    /// as js-ceramic's `parseCommit` does).
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let (id, commit) = strip_url(s);
        if id.is_empty() {
            return Err(IdError::Empty);
        }
        let parsed = Self::from_bytes(&decode_base36(id)?)?;
        let Some(commit) = commit else {
            return Ok(parsed);
        };
        let stream = match parsed {
            Self::Stream(stream) => stream,
            Self::Commit(_) => return Err(IdError::ConflictingCommit),
        };
        let commit = match commit.trim() {
            "0" => None,
            c => {
                let cid = super::parse_cid(c)?;
                (cid != stream.genesis).then_some(cid)
            }
        };
        Ok(Self::Commit(CommitId { stream, commit }))
    }

    pub fn stream(&self) -> &StreamId {
        match self {
            Self::Stream(s) => s,
            Self::Commit(c) => &c.stream,
        }
    }
}

impl fmt::Display for StreamRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stream(s) => s.fmt(f),
            Self::Commit(c) => c.fmt(f),
        }
    }
}

/// Serialized as the canonical string, as every report shows it.
impl Serialize for StreamId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
