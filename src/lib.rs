//! ceramic-audit: audit a cluster of Ceramic / ComposeDB nodes for replica divergence.
//!
//! # Layout
//!
//! - [`ids`] — StreamID, CommitID, CIDs and Recon EventIds: parse, format, inspect. Pure.
//! - [`recon`] — the reconciliation core, its own crate (`crates/recon`): range fingerprints
//!   (Recon's Sha256a and a cheaper MD5-lane sum that SQL can compute), a store trait for one
//!   node's sorted key set, an in-memory store, and the N-way range-fingerprint descent with
//!   its cost accounting. Pure: its Cargo.toml lists no I/O crate, so none can be imported.
//! - [`config`] — the cluster file: nodes and where their indexes are; validation with line
//!   numbers; secrets from the environment or files only; DSN redaction.
//! - [`source`] — one node's ComposeDB index behind one type: Postgres (fingerprints pushed down
//!   into SQL, or rows downloaded), SQLite, snapshot files; the canonical row form every source
//!   hashes identically.
//! - [`api`] — a node's HTTP API (`/api/v0`): stream state, commits, multiqueries, healthcheck;
//!   timeouts, retries on transient errors only, bounded concurrency and rate per node.
//! - [`audit`] — the audit run: every model compared N-way, node failures survived, differing
//!   rows re-checked after a settle pause, classification.
//! - [`report`] — report data, CSV, JSON and the terminal summary.
//! - [`atomic`] — the one atomic file write (temp file, fsync, rename, directory fsync).
//! - [`repair`] — re-publishing missing commits to lagging nodes: the plan (dry run), the
//!   strategies with their fall-through, the append-only journal, verification.
//! - [`watch`] — scheduled cycles (full and incremental), divergence ageing, Prometheus
//!   metrics, opt-in auto-repair.
//! - [`progress`] — the one progress display on stderr (terminal only, hidden by `-q`).
//! - [`cli`] — argument parsing (clap), the commands, and the exit-code contract.
//!
//! Dependency direction: `cli → watch → repair → audit → source, api, report → recon, ids`; `recon` never imports
//! an async runtime, HTTP client or database crate. The layout follows DESIGN.md, except that
//! integration tests live in `tests/suite/` behind one `tests/tests.rs` (one test binary, one
//! link) and the test harness for temporary Postgres servers in `tests/common/`, which the
//! index benchmark reuses.
//!
//! The descent is written "sans-IO": [`recon::Descent`] hands out one batch of range queries per
//! round and takes every store's answers back, so an async driver can ask all nodes at once and a
//! SQL store can answer a whole level in one statement. [`recon::run_descent`] drives it against
//! synchronous stores such as [`recon::MemoryStore`].

pub mod api;
pub mod atomic;
pub mod audit;
pub mod backup;
pub mod cli;
pub mod config;
pub mod ids;
pub mod progress;
pub use ::recon;
pub mod repair;
pub mod report;
pub mod source;
pub mod tls;
pub mod watch;
