//! The reconciliation core: range fingerprints, a store trait, and the N-way descent.
//!
//! Pure by construction — its Cargo.toml lists no async runtime, HTTP client, database driver
//! or CSV writer (ceramic-audit's `tests/suite/purity.rs` checks the list), so it is tested
//! exhaustively in memory and every source (Postgres push-down, SQLite, HTTP, snapshot files)
//! plugs into the same descent.

mod cost;
mod descent;
mod hash;
mod key;
mod run;
mod sizing;
mod split;
mod store;

pub use cost::Cost;
pub use descent::{Descent, DescentError, DescentParams, Difference, Outcome, MAX_STORES};
pub use hash::{pg_hash_bytes_extended, AssociativeHash, HashCount, Md5Lanes, PgHash64, Sha256a};
pub use key::{Entry, Key, Range, Value};
pub use run::{run_descent, RunError};
pub use sizing::{plan as plan_first_level, Plan, SizeHint, ROUND_BYTES};
pub use split::{base36_text, base36_value, interpolate, split_between, Alphabet};
pub use store::{
    answers_wire_len, entries_wire_len, quantile_ranks, queries_wire_len, separator, Answer,
    Bounds, MemoryStore, Query, RangeStore, Summary,
};
