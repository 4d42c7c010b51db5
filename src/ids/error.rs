//! The one error type of the identifier parsers.

use thiserror::Error;

/// Why an identifier could not be parsed. Every variant says what was expected, so the CLI can
/// print it as a one-line message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdError {
    #[error("empty identifier")]
    Empty,
    #[error("not multibase base36 (`k…`): {0}")]
    Multibase(String),
    #[error("expected multibase base36 lower (`k…`), got multibase `{0}`")]
    WrongBase(String),
    #[error("truncated or invalid varint in {field}")]
    Varint { field: &'static str },
    #[error("expected codec 0xce (StreamID/CommitID/EventId), got 0x{0:x}")]
    WrongCodec(u64),
    #[error("invalid CID in {field}: {reason}")]
    Cid { field: &'static str, reason: String },
    #[error("{0} trailing byte(s) after the {1}")]
    Trailing(usize, &'static str),
    #[error("expected EventId stream type 5, got {0}")]
    NotEventId(u64),
    #[error("EventId too short: {field} needs {need} byte(s), {have} left")]
    EventIdShort {
        field: &'static str,
        need: usize,
        have: usize,
    },
    #[error("not hex: {0}")]
    Hex(String),
    #[error("a CommitID was given where a StreamID is expected")]
    UnexpectedCommit,
    #[error("conflicting commits: the id carries one and `?commit=` gives another")]
    ConflictingCommit,
    #[error(
        "unrecognised identifier: expected a StreamID or CommitID (base36 `k…`, also as \
         `ceramic://…`, `/ceramic/…` or `…?commit=<cid>`), an EventId (hex, `ce0105…`) or a CID \
         (`bafy…`, `bagcq…`, `Qm…`)"
    )]
    Unrecognised,
}
