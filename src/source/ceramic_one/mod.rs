//! ceramic-one (Recon era) nodes as sources: the node's own event store (`db.sqlite3`), read
//! read-only, compared N-way by model with the same range descent as the index audit.
//!
//! - [`event`]: an event's fields from its blocks, its EventId, CAR files;
//! - [`interest`]: interest bytes and model key spaces;
//! - [`store`]: one node's `db.sqlite3` (read-only, one snapshot) as a [`crate::recon::RangeStore`];
//! - [`http`]: the node's HTTP API (`/ceramic/…`): events, model walks, interests, states;
//! - [`mirror`]: a node reached only over HTTP, filed into a private SQLite store;
//! - [`compare`]: the comparison and its rows (`missing_event`, `undelivered_event`,
//!   `not_interested`, `state_missing`).

pub mod compare;
pub mod event;
pub mod http;
pub mod interest;
pub mod mirror;
pub mod store;

pub use compare::{compare, CompareError, Findings, StoreNode, META_MODEL};
pub use store::{EventStore, StoreError};
