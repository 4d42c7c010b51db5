//! ceramic-audit: audit a cluster of Ceramic / ComposeDB nodes for replica divergence.
//!
//! # Layout
//!
//! - [`ids`] — StreamID, CommitID, CIDs and Recon EventIds: parse, format, inspect. Pure.
//! - [`recon`] — the reconciliation core: range fingerprints (Recon's Sha256a and a cheaper
//!   MD5-lane sum that SQL can compute), a store trait for one node's sorted key set, an
//!   in-memory store, and the N-way range-fingerprint descent with its cost accounting. Pure:
//!   no async runtime, HTTP or database imports (a test checks this), so it runs in unit tests
//!   and property tests without a network.
//! - [`cli`] — argument parsing (clap), the commands, and the exit-code contract.
//!
//! Dependency direction: `cli → recon, ids`. Sources (Postgres, SQLite, HTTP, snapshots), the
//! audit, repair and reports join as `src/source/`, `src/audit/`, `src/repair/` and
//! `src/report/` as the issues that need them land; `recon` never imports them.
//!
//! The descent is written "sans-IO": [`recon::Descent`] hands out one batch of range queries per
//! round and takes every store's answers back, so an async driver can ask all nodes at once and a
//! SQL store can answer a whole level in one statement. [`recon::run_descent`] drives it against
//! synchronous stores such as [`recon::MemoryStore`].

pub mod audit;
pub mod cli;
pub mod config;
pub mod ids;
pub mod recon;
pub mod report;
pub mod source;
