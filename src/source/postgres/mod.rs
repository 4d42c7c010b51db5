//! A node's ComposeDB index in Postgres, read-only.
//!
//! The whole crawl of a node runs in one `REPEATABLE READ READ ONLY` transaction on a session
//! with `default_transaction_read_only = on`, so every model is read at one consistent point and
//! nothing can be written even by mistake.
//!
//! Push-down: a round of the descent becomes at most three statements per model (summaries,
//! digests, entries). Each assigns every row to the round's ranges with `width_bucket` over the
//! sorted range bounds (`COLLATE "C"`, i.e. byte order, as everywhere else), filters to the
//! requested buckets *before* hashing, and aggregates in Postgres, so the bytes returned grow
//! with the number of ranges asked about, not with the table. The per-row hash is Postgres' own
//! `hashtextextended` ([`crate::recon::PgHash64`], ported bit for bit): ~1 µs per row with the
//! content rendered, where md5 lanes cost ~5 µs. Sums are reduced mod 2^64 in SQL and come back
//! packed as binary (`int8send`), 20 bytes per range.
//! Download mode streams `(stream_id, tip, column digest)` for every row instead and
//! fingerprints locally; both modes hash the same SQL-built text, so they agree by construction
//! (a test checks it).

mod cells;
mod connect;
pub mod hashed;
mod index;
mod packed;
mod pieces;
mod plan;
mod queries;
mod rounds;
mod sql;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::{pin_mut, TryStreamExt};
use tokio_postgres::{types::ToSql, Client};

use super::{Compare, SourceError};
use plan::Shape;

pub use index::PgIndex;

/// Rows returned by the invalid-row probe per model; more are counted, not listed. Too low hides
/// invalid rows from the report; too high makes a badly broken table flood it.
pub const INVALID_ROWS_LISTED: i64 = 1000;

/// One Postgres session, its snapshot transaction and what it has cost; the methods are
/// spread over this folder by job.
pub struct PgSource {
    node: String,
    client: Client,
    /// The driver task of the connection; aborted on drop.
    connection: tokio::task::JoinHandle<()>,
    pub statements: u64,
    pub bytes_received: u64,
    pub rows_scanned: u64,
    pub busy: Duration,
    /// A snapshot transaction is open (from connect until [`PgSource::end_snapshot`], and
    /// again after [`PgSource::refresh_snapshot`]): ending one that is not makes the server
    /// log and send a "there is no transaction in progress" warning.
    in_snapshot: bool,
    /// The database collation orders base36 strings like bytes (probed at connect).
    collation_ok: bool,
    /// Models whose stream ids are all `k[0-9a-z]+` (learned from the malformed-row scan).
    plain_keys: HashMap<String, bool>,
    /// Per model: rows that failed the invalid-row check beyond the [`INVALID_ROWS_LISTED`]
    /// listed (counted by the same scan, so the report can say how many it does not list).
    not_listed: HashMap<String, u64>,
    /// What answering has taught us about each model's table (see [`Shape`]).
    shapes: HashMap<String, Shape>,
    /// The columns compared; with `Tips` every column digest is 0 (as `Compare::apply`).
    compare: Compare,
    /// How the connection is protected, as observed (`NodeReport::tls`).
    pub tls: String,
    /// Rows a whole-table statement may read before it is cut into pieces (`--statement-rows`).
    statement_rows: Option<u64>,
    /// The piece of the table the statement being built reads (see [`pieces`]).
    piece: Option<pieces::Piece>,
}

impl Drop for PgSource {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl PgSource {
    pub(super) fn error(&self, what: &str, sql: &str, e: &tokio_postgres::Error) -> SourceError {
        let detail = e.as_db_error().map_or_else(
            || crate::tls::error_chain(e),
            |d| format!("{}: {}", d.code().code(), d.message()),
        );
        let sql: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
        let sql = match sql.char_indices().nth(160) {
            Some((cut, _)) => format!("{}…", &sql[..cut]),
            None => sql,
        };
        SourceError::Node {
            node: self.node.clone(),
            message: format!("{what}: {detail} (SQL: {sql})"),
        }
    }

    pub(super) async fn query(
        &mut self,
        what: &str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, SourceError> {
        let started = Instant::now();
        self.statements += 1;
        let rows = self
            .client
            .query(sql, params)
            .await
            .map_err(|e| self.error(what, sql, &e))?;
        self.busy += started.elapsed();
        tracing::debug!(
            node = %self.node,
            ms = started.elapsed().as_millis() as u64,
            rows = rows.len(),
            "{what}"
        );
        Ok(rows)
    }

    pub(super) fn node_error(&self, message: String) -> SourceError {
        SourceError::Node {
            node: self.node.clone(),
            message,
        }
    }

    /// Runs one statement and hands its rows to `each` as they stream in (nothing is buffered
    /// here); `each` returns the bytes it read, for the counters.
    pub(super) async fn stream_rows(
        &mut self,
        what: &str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        mut each: impl FnMut(&tokio_postgres::Row) -> Result<u64, tokio_postgres::Error>,
    ) -> Result<(), SourceError> {
        let started = Instant::now();
        self.statements += 1;
        let stream = self
            .client
            .query_raw(sql, params.iter().copied())
            .await
            .map_err(|e| self.error(what, sql, &e))?;
        pin_mut!(stream);
        while let Some(row) = stream
            .try_next()
            .await
            .map_err(|e| self.error(what, sql, &e))?
        {
            self.bytes_received += each(&row).map_err(|e| self.error(what, sql, &e))?;
            self.rows_scanned += 1;
        }
        self.busy += started.elapsed();
        Ok(())
    }
}
