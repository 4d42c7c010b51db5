//! The session: connect, pin it read-only, open the snapshot transaction, and check that this
//! server hashes as our port does. The one place a connection is made (TLS goes here).

use std::collections::HashMap;
use std::time::Duration;

use super::PgSource;
use crate::config::{redact_dsn, NodeConfig};
use crate::recon::pg_hash_bytes_extended;
use crate::source::{Reading, SourceError};

/// (The session also sets `jit = off`: the planner's cost estimates for range joins are large,
/// which made Postgres spend ~350 ms compiling each small leaf statement that then ran in
/// 10 ms; the large scans gain nothing measurable from it.)
///
/// `work_mem` for the audit's session: room for the scan plan's group table (46,656 groups of
/// ~150 bytes) without spilling. Per hash node of our own statements only.
pub(super) const WORK_MEM: &str = "64MB";

/// Text whose `hashtextextended` is checked against our port at connect time: a server that
/// hashes differently (big-endian hardware, a patched build) must not be compared by hash.
pub(super) const HASH_PROBE: &str = "ceramic-audit hash probe: kjzl6kcym7w8y ✓";

impl PgSource {
    /// `--statement-rows` cuts tables by heap blocks, which only TID range scans read without
    /// scanning the rest of the table: refused on an older server rather than multiplying
    /// its work by the number of pieces.
    async fn check_tid_range_scans(&mut self) -> Result<(), SourceError> {
        let sql =
            "SELECT current_setting('server_version_num')::int4, current_setting('server_version')";
        let row = self
            .client
            .query_one(sql, &[])
            .await
            .map_err(|e| self.error("reading the server version", sql, &e))?;
        self.statements += 1;
        let num: i32 = row
            .try_get(0)
            .map_err(|e| self.error("reading the server version", sql, &e))?;
        let text: String = row
            .try_get(1)
            .map_err(|e| self.error("reading the server version", sql, &e))?;
        if num < super::pieces::MIN_SERVER_VERSION {
            return Err(self.node_error(format!(
                "--statement-rows needs PostgreSQL 14 or later (TID range scans); this server \
                 runs {text}: audit it without the option"
            )));
        }
        Ok(())
    }

    /// Connects, pins the session read-only and opens the crawl's snapshot transaction.
    pub async fn connect(
        node: &NodeConfig,
        dsn: &str,
        password: Option<String>,
        reading: &Reading,
    ) -> Result<Self, SourceError> {
        let (timeout, compare) = (reading.timeout, reading.compare);
        let err = |what: &str, e: &dyn std::fmt::Display| SourceError::Node {
            node: node.name.clone(),
            message: format!("{what} {}: {e}", redact_dsn(dsn)),
        };
        let (plain_dsn, tls) = crate::tls::split_pg_dsn(dsn).map_err(|e| err("invalid DSN", &e))?;
        let mut config: tokio_postgres::Config =
            plain_dsn.parse().map_err(|e| err("invalid DSN", &e))?;
        if let Some(p) = password {
            config.password(p);
        }
        if config.get_user().is_none() {
            if let Ok(user) = std::env::var("PGUSER") {
                config.user(&user);
            } else {
                config.user("postgres");
            }
        }
        config.application_name("ceramic-audit");
        config.connect_timeout(timeout);
        let (client, connection) =
            tokio::time::timeout(timeout, crate::tls::connect_pg(&config, &tls))
                .await
                .map_err(|_| {
                    err(
                        "timed out connecting to",
                        &format!("{}s", timeout.as_secs()),
                    )
                })?
                .map_err(|e| err("cannot connect to", &e))?;
        let mut source = Self {
            node: node.name.clone(),
            client,
            connection,
            statements: 0,
            bytes_received: 0,
            rows_scanned: 0,
            busy: Duration::ZERO,
            in_snapshot: false,
            collation_ok: false,
            plain_keys: HashMap::new(),
            not_listed: HashMap::new(),
            shapes: HashMap::new(),
            compare,
            tls: String::new(),
            statement_rows: reading.statement_rows,
            piece: None,
        };
        // Observed, not assumed: `prefer` may have fallen back to plain text.
        let probe = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
        let encrypted = match source.client.query_opt(probe, &[]).await {
            Ok(row) => row
                .and_then(|r| r.try_get::<_, bool>(0).ok())
                .unwrap_or(false),
            Err(e) => return Err(source.error("reading the connection's TLS state", probe, &e)),
        };
        source.statements += 1;
        source.tls = crate::tls::describe_pg_state(&tls, encrypted);
        let setup = format!(
            "SET default_transaction_read_only = on; SET statement_timeout = {}; \
             SET work_mem = '{WORK_MEM}'; SET jit = off; \
             BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            timeout.as_millis()
        );
        source
            .client
            .batch_execute(&setup)
            .await
            .map_err(|e| source.error("starting the read-only snapshot", &setup, &e))?;
        source.in_snapshot = true;
        // Index range scans compare in the database's collation; use them only if it orders
        // base36 strings (and '' and 'l' around them) exactly as bytes do.
        let probe =
            "SELECT '' < 'k' AND 'k' < 'k0' AND 'k0' < 'k9' AND 'k9' < 'ka' AND 'ka' < 'kz' \
                     AND 'k9z' < 'ka' AND 'kab' < 'kabc' AND 'kaz' < 'kb' AND 'kzzz' < 'l'";
        let row = source
            .client
            .query_one(probe, &[])
            .await
            .map_err(|e| source.error("probing the collation", probe, &e))?;
        source.collation_ok = row.try_get::<_, bool>(0).unwrap_or(false);
        // Every digest and fingerprint relies on the server hashing as our port does.
        let probe = "SELECT hashtextextended($1::text, 0)";
        let row = source
            .client
            .query_one(probe, &[&HASH_PROBE])
            .await
            .map_err(|e| {
                source.error("probing hashtextextended (Postgres 11 or later)", probe, &e)
            })?;
        let server: i64 = row
            .try_get(0)
            .map_err(|e| source.error("reading the hash probe", probe, &e))?;
        let ours = pg_hash_bytes_extended(HASH_PROBE.as_bytes(), 0) as i64;
        if server != ours {
            return Err(source.node_error(format!(
                "this server's hashtextextended gives {server} where ceramic-audit computes \
                 {ours} (a big-endian or modified build?); its rows cannot be compared by hash. \
                 Crawl it from a replica on standard hardware instead"
            )));
        }
        source.statements += 3;
        if source.statement_rows.is_some() {
            source.check_tid_range_scans().await?;
        }
        Ok(source)
    }
}
