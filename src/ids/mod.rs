//! Ceramic identifiers: StreamID, CommitID, CIDs and Recon EventIds — parse, format, inspect.
//!
//! Owns the byte layouts of CIP-59 (StreamID / CommitID) and of rust-ceramic's current EventId
//! (`ceramic-interfaces.md` §3 and §5.2). Everything here is pure: no I/O, and every parser
//! returns a typed [`IdError`] on bad input instead of panicking, because identifiers arrive from
//! index rows and HTTP bodies we do not control.

mod cid;
mod error;
mod event_id;
mod inspect;
mod stream_id;

pub use self::cid::{format_cid, parse_cid, read_cid};
pub use error::IdError;
pub use event_id::{EventId, Network};
pub use inspect::{inspect, Inspection};
pub use stream_id::{CommitId, StreamId, StreamRef, StreamType, STREAMID_CODEC};
