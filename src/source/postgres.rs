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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use futures::{pin_mut, TryStreamExt};
use tokio_postgres::{types::ToSql, Client};

use super::{Compare, ModelState, RowCheck, SourceError, TableInfo};
use crate::config::{redact_dsn, NodeConfig};
use crate::recon::{
    pg_hash_bytes_extended, Answer, Entry, HashCount, Key, PgHash64, Query, Range, Summary, Value,
};

/// Rows returned by the invalid-row probe per model; more are counted, not listed. Too low hides
/// invalid rows from the report; too high makes a badly broken table flood it.
pub const INVALID_ROWS_LISTED: i64 = 1000;

pub struct PgSource {
    node: String,
    client: Client,
    /// The driver task of the connection; aborted on drop.
    connection: tokio::task::JoinHandle<()>,
    pub statements: u64,
    pub bytes_received: u64,
    pub rows_scanned: u64,
    pub busy: Duration,
    /// The database collation orders base36 strings like bytes (probed at connect).
    collation_ok: bool,
    /// Models whose stream ids are all `k[0-9a-z]+` (learned from the malformed-row scan).
    plain_keys: HashMap<String, bool>,
    /// What answering has taught us about each model's table (see [`Shape`]).
    shapes: HashMap<String, Shape>,
    /// The columns compared; with `Tips` every column digest is 0 (as `Compare::apply`).
    compare: Compare,
    /// How the connection is protected, as observed (`NodeReport::tls`).
    pub tls: String,
}

/// What this node learned about a model's table while answering: its row count and the common
/// prefix of its stream ids (from the root bounds), and the row counts of the ranges it
/// summarised last, from which the rows a new round will touch are estimated.
#[derive(Default)]
struct Shape {
    rows: Option<u64>,
    common_prefix: usize,
    /// First and last stream id in byte order, read with the row check (`Some(None)`: empty).
    bounds: Option<Option<(String, String)>>,
    last: Vec<(Range, u64)>,
}

impl Shape {
    /// Rows in the ranges last summarised that meet any of `ranges` (an upper bound on the rows
    /// the new round touches, as ranges only narrow from round to round).
    fn estimate(&self, ranges: &[&Range]) -> Option<u64> {
        if self.last.is_empty() {
            return self.rows;
        }
        Some(
            self.last
                .iter()
                .filter(|(r, _)| ranges.iter().any(|q| ranges_meet(r, q)))
                .map(|(_, n)| n)
                .sum(),
        )
    }
}

/// Whether two half-open ranges share a key.
fn ranges_meet(a: &Range, b: &Range) -> bool {
    a.end.as_ref().is_none_or(|e| b.start < *e) && b.end.as_ref().is_none_or(|e| a.start < *e)
}

/// A round is answered by one sequential scan, grouped by key prefix, once it would touch at
/// least this share of the table; below it, by primary-key range scans. Index range scans visit
/// heap pages in key order, i.e. at random (stream ids are random, rows are stored in write
/// order): measured ~9 µs a row on a 10^6-row table with the default 128 MB shared_buffers,
/// against ~0.3 µs a row for a sequential scan plus ~1.5 µs hashing every row. Too low a share
/// hashes whole tables to answer small rounds; too high pays random I/O for a third of a table.
const SCAN_SHARE: f64 = 0.2;

/// The scan plan groups rows by their first L characters before assigning ranges (assigning
/// each row with `width_bucket` costs ~1.5 µs, grouping ~0.3 µs). L is the longest range bound;
/// the groups are at most 36^(L − common prefix) for base36 ids. More digits than this would
/// make the hash table outgrow `work_mem` (set at connect) and spill to disk.
const SCAN_GROUP_DIGITS: usize = 3;

/// (The session also sets `jit = off`: the planner's cost estimates for range joins are large,
/// which made Postgres spend ~350 ms compiling each small leaf statement that then ran in
/// 10 ms; the large scans gain nothing measurable from it.)
///
/// `work_mem` for the audit's session: room for the scan plan's group table (46,656 groups of
/// ~150 bytes) without spilling. Per hash node of our own statements only.
const WORK_MEM: &str = "64MB";

impl Drop for PgSource {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// SQL building the canonical columns text of `rows.rs` for one row. Anchor times become epoch
/// milliseconds through `date_part` (a float8, exact to well under a millisecond for any
/// Ceramic time): `extract` computes in numeric and costs 0.3 µs a row more.
fn columns_sql(custom: &[String]) -> String {
    let mut e = String::from(
        "coalesce(controller_did, '') || E'\\n' || coalesce(stream_content::jsonb::text, '') \
         || E'\\n' || coalesce(round(date_part('epoch', last_anchored_at) * 1000)::int8::text, '') \
         || E'\\n' || coalesce(round(date_part('epoch', first_anchored_at) * 1000)::int8::text, '')",
    );
    for c in custom {
        e.push_str(&format!(
            " || E'\\n' || coalesce({} || {}, {})",
            quote_literal(&format!("{c}=")),
            quote_ident(c),
            quote_literal(&format!("{c}!"))
        ));
    }
    e
}

/// A numeric sum of `int8` row hashes reduced mod 2^64 and shown as the `int8` with the same
/// bits (`(s mod 2^64 + 2^63) mod 2^64 − 2^63`), so it travels as 8 binary bytes.
fn wrap_sql(sum: &str) -> String {
    format!(
        "((({sum}) % 18446744073709551616 + 27670116110564327424) % 18446744073709551616 \
          - 9223372036854775808)::int8"
    )
}

/// Text whose `hashtextextended` is checked against our port at connect time: a server that
/// hashes differently (big-endian hardware, a patched build) must not be compared by hash.
const HASH_PROBE: &str = "ceramic-audit hash probe: kjzl6kcym7w8y ✓";

/// Base36 digits in byte order, as stream ids spell them.
const BASE36: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// `s` padded with `0` to `len` characters, read as a base36 number; `None` when a character is
/// not base36, `s` is longer than `len`, or the number would not fit.
fn base36_value(s: &[u8], len: usize) -> Option<u128> {
    if s.len() > len || len > 24 {
        return None;
    }
    s.iter()
        .copied()
        .chain(std::iter::repeat(b'0'))
        .take(len)
        .try_fold(0u128, |v, c| {
            let d = BASE36.iter().position(|&x| x == c)? as u128;
            Some(v * 36 + d)
        })
}

fn base36_text(mut v: u128, len: usize) -> String {
    let mut out = vec![b'0'; len];
    for slot in out.iter_mut().rev() {
        *slot = BASE36[(v % 36) as usize];
        v /= 36;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every base36 string of exactly `len` characters inside the stream-id ranges `spans`
/// (`[lo, hi)`, `None` for an open end, clipped to the table's first and last id), or `None`
/// when they are not all base36 or there would be more than `max`. A row lies in a span exactly
/// when its first `len` characters are one of them, provided no span bound is longer than `len`.
/// A range of stream ids as `[lo, hi)`; `None` is an open end.
type Span = (Option<Vec<u8>>, Option<Vec<u8>>);

fn prefixes_in(
    spans: &[Span],
    first: &str,
    last: &str,
    len: usize,
    max: usize,
) -> Option<Vec<String>> {
    let floor = base36_value(&first.as_bytes()[..first.len().min(len)], len)?;
    let ceiling = base36_value(&last.as_bytes()[..last.len().min(len)], len)? + 1;
    let mut out = Vec::new();
    for (lo, hi) in spans {
        let start = match lo {
            Some(lo) => base36_value(lo, len)?.max(floor),
            None => floor,
        };
        let end = match hi {
            Some(hi) => base36_value(hi, len)?.min(ceiling),
            None => ceiling,
        };
        if end > start {
            if out.len() as u128 + (end - start) > max as u128 {
                return None;
            }
            out.extend((start..end).map(|v| base36_text(v, len)));
        }
    }
    Some(out)
}

/// Rows a scan-plan round may skip before hashing: those whose first `len` characters are not
/// in `prefixes` (the last round's differing ranges), with the rows those ranges held, which
/// the filtered scan must find again or it is repeated unfiltered.
struct PrefixFilter {
    len: usize,
    prefixes: Vec<String>,
    expected_rows: u64,
}

/// Most prefixes a scan-plan filter lists (sent as a parameter, ~17 bytes each, and hashed by
/// Postgres). Too low forgoes the filter on wide rounds; too high sends megabytes of prefixes.
const PREFIX_FILTER_MAX: usize = 100_000;

/// Where a key bound falls in one model's table: below every row, at a stream id, or above all.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum StreamBound {
    Below,
    At(Vec<u8>),
    Above,
}

fn stream_bound(model: &str, key: &Key) -> StreamBound {
    let mut head = model.as_bytes().to_vec();
    head.push(0);
    let k = key.as_bytes();
    if let Some(rest) = k.strip_prefix(head.as_slice()) {
        if rest.is_empty() {
            StreamBound::Below
        } else {
            StreamBound::At(rest.to_vec())
        }
    } else if k < head.as_slice() {
        StreamBound::Below
    } else {
        StreamBound::Above
    }
}

/// The round's ranges as `width_bucket` thresholds: `bucket[i]` is the bucket number rows of
/// range `i` get, or `None` for a range that holds no row of this table.
struct Buckets {
    thresholds: Vec<Vec<u8>>,
    bucket: Vec<Option<i32>>,
    /// Some bound is not UTF-8 (only possible with unusual keys): compare as bytea then.
    binary: bool,
    /// When set, rows are found by index range scans instead of `width_bucket` (see
    /// [`range_plan`]); `bucket[i]` is then the range's number in `idx`.
    ranges: Option<RangePlan>,
    /// When set, one sequential scan groups rows by their first this many characters and the
    /// groups are assigned to ranges (see [`SCAN_SHARE`]); only with `ranges` unset.
    scan_prefix: Option<usize>,
}

/// Ranges as parallel arrays for `unnest(lo, hi, idx)`, joined on the primary-key btree.
struct RangePlan {
    lo: Vec<String>,
    hi: Vec<String>,
    idx: Vec<i32>,
}

/// Bound strings made only of base36 characters, the only ones for which the database's own
/// collation is trusted to order like bytes (checked against a probe at connect time).
fn plain(s: &[u8]) -> bool {
    s.iter()
        .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

/// Index range scans for a round, when they select exactly the rows byte order would: every
/// stream id of the table is `k[0-9a-z]+` (so all lie in `['', 'l')`), every bound is base36,
/// and the collation orders such strings like bytes. `None` otherwise.
fn range_plan(model: &str, ranges: &[&Range]) -> Option<RangePlan> {
    let mut plan = RangePlan {
        lo: Vec::new(),
        hi: Vec::new(),
        idx: Vec::new(),
    };
    for (i, r) in ranges.iter().enumerate() {
        let lo = match stream_bound(model, &r.start) {
            StreamBound::Below => String::new(),
            StreamBound::At(s) if plain(&s) => String::from_utf8(s).ok()?,
            StreamBound::At(_) => return None,
            StreamBound::Above => continue,
        };
        let hi = match r
            .end
            .as_ref()
            .map_or(StreamBound::Above, |e| stream_bound(model, e))
        {
            StreamBound::Above => "l".to_string(),
            StreamBound::At(s) if plain(&s) => String::from_utf8(s).ok()?,
            StreamBound::At(_) => return None,
            StreamBound::Below => continue,
        };
        if lo >= hi {
            continue;
        }
        plan.lo.push(lo);
        plan.hi.push(hi);
        plan.idx.push(i32::try_from(i).ok()?);
    }
    Some(plan)
}

fn buckets(model: &str, ranges: &[&Range], range_scans: bool) -> Buckets {
    if range_scans {
        if let Some(plan) = range_plan(model, ranges) {
            let mut bucket = vec![None; ranges.len()];
            for &i in &plan.idx {
                bucket[i as usize] = Some(i);
            }
            return Buckets {
                thresholds: Vec::new(),
                bucket,
                binary: false,
                ranges: Some(plan),
                scan_prefix: None,
            };
        }
    }
    let mut spans: Vec<(usize, StreamBound, StreamBound)> = ranges
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let lo = stream_bound(model, &r.start);
            let hi = r
                .end
                .as_ref()
                .map_or(StreamBound::Above, |e| stream_bound(model, e));
            (i, lo, hi)
        })
        .collect();
    spans.sort_by(|a, b| a.1.cmp(&b.1));
    let mut thresholds: Vec<Vec<u8>> = Vec::new();
    let mut bucket = vec![None; ranges.len()];
    for (i, lo, hi) in spans {
        if lo >= hi || lo == StreamBound::Above || hi == StreamBound::Below {
            continue; // no stream id of this table falls in the range
        }
        if let StreamBound::At(s) = &lo {
            if thresholds.last() != Some(s) {
                thresholds.push(s.clone());
            }
        }
        // Rows in [lo, hi) count `thresholds.len()` thresholds at or below them.
        bucket[i] = i32::try_from(thresholds.len()).ok();
        if let StreamBound::At(s) = hi {
            thresholds.push(s);
        }
    }
    let binary = thresholds.iter().any(|t| std::str::from_utf8(t).is_err());
    Buckets {
        thresholds,
        bucket,
        binary,
        ranges: None,
        scan_prefix: None,
    }
}

/// The rows a round's statement reads: the table, or the ranges joined on its primary key
/// (`$2` lo, `$3` idx, `${hi_param}` hi).
fn from_sql(b: &Buckets, table: &str, hi_param: usize) -> String {
    if b.ranges.is_some() {
        // LATERAL + OFFSET 0: one primary-key range scan per range. As a plain join the planner
        // may pick a sequential scan filtered against every range (10^6 rows × 1,600 ranges:
        // minutes instead of milliseconds).
        format!(
            "unnest($2::text[], ${hi_param}::text[], $3::int[]) AS r(lo, hi, i) \
             CROSS JOIN LATERAL (SELECT * FROM {table} \
                                 WHERE stream_id >= r.lo AND stream_id < r.hi OFFSET 0) t"
        )
    } else {
        table.to_string()
    }
}

/// The `width_bucket` expression and its threshold parameter for a round.
fn bucket_sql(b: &Buckets, param: usize) -> String {
    if b.ranges.is_some() {
        "r.i".into()
    } else if b.thresholds.is_empty() {
        // One range covering the table: every row is in bucket 0 (the parameter is still
        // referenced so Postgres can type it).
        format!("0 * cardinality(${param}::text[])")
    } else if b.binary {
        format!("width_bucket(convert_to(stream_id, 'UTF8'), ${param}::bytea[])")
    } else {
        format!("width_bucket(stream_id COLLATE \"C\", ${param}::text[])")
    }
}

/// Big-endian integers packed back to back by `int4send`/`int8send`, read in order.
struct Packed<'a>(&'a [u8]);

impl Packed<'_> {
    fn take<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        if self.0.len() < N {
            return Err(format!(
                "packed answer ends inside {what} ({} bytes left, {N} needed)",
                self.0.len()
            ));
        }
        let (head, rest) = self.0.split_at(N);
        self.0 = rest;
        let mut out = [0u8; N];
        out.copy_from_slice(head);
        Ok(out)
    }

    fn i32(&mut self, what: &str) -> Result<i32, String> {
        self.take::<4>(what).map(i32::from_be_bytes)
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        self.take::<8>(what).map(u64::from_be_bytes)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl PgSource {
    /// Connects, pins the session read-only and opens the crawl's snapshot transaction.
    pub async fn connect(
        node: &NodeConfig,
        dsn: &str,
        password: Option<String>,
        timeout: Duration,
        compare: Compare,
    ) -> Result<Self, SourceError> {
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
            collation_ok: false,
            plain_keys: HashMap::new(),
            shapes: HashMap::new(),
            compare,
            tls: String::new(),
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
        Ok(source)
    }

    /// SQL of the column digest (`int8`): the canonical columns text hashed, or 0 when only
    /// tips are compared.
    fn digest_sql(&self, custom: &[String]) -> String {
        match self.compare {
            Compare::All => format!("hashtextextended({}, 0)", columns_sql(custom)),
            Compare::Tips => "0::int8".into(),
        }
    }

    /// SQL of the row hash (`int8`, `Entry::hash_input` hashed); `$1` is the model string.
    fn hash_sql(&self, custom: &[String]) -> String {
        format!(
            "hashtextextended($1::text || E'\\n' || stream_id || E'\\n' || coalesce(tip, '') \
             || E'\\n' || {}::text, 0)",
            self.digest_sql(custom)
        )
    }

    fn error(&self, what: &str, sql: &str, e: &tokio_postgres::Error) -> SourceError {
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

    async fn query(
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

    /// Indexed models and their tables, as this node sees them.
    pub async fn models(&mut self) -> Result<BTreeMap<String, ModelState>, SourceError> {
        let sql = "SELECT model, is_indexed FROM ceramic_models";
        let indexed = self.query("listing ceramic_models", sql, &[]).await?;
        let mut models = BTreeMap::new();
        let mut names: Vec<String> = Vec::new();
        for row in &indexed {
            let model: String = row
                .try_get(0)
                .map_err(|e| self.error("reading ceramic_models", sql, &e))?;
            let on: Option<bool> = row
                .try_get(1)
                .map_err(|e| self.error("reading ceramic_models", sql, &e))?;
            self.bytes_received += model.len() as u64 + 1;
            names.push(model.clone());
            models.insert(
                model,
                if on.unwrap_or(true) {
                    ModelState::Missing
                } else {
                    ModelState::NotIndexed
                },
            );
        }
        let sql = "SELECT table_name::text, column_name::text FROM information_schema.columns \
                   WHERE table_schema = current_schema() AND table_name::text = ANY($1::text[]) \
                   ORDER BY table_name, column_name";
        let columns = self
            .query("reading model table columns", sql, &[&names])
            .await?;
        let mut tables: HashMap<String, Vec<String>> = HashMap::new();
        for row in &columns {
            let table: String = row
                .try_get(0)
                .map_err(|e| self.error("reading columns", sql, &e))?;
            let column: String = row
                .try_get(1)
                .map_err(|e| self.error("reading columns", sql, &e))?;
            self.bytes_received += (table.len() + column.len()) as u64;
            tables.entry(table).or_default().push(column);
        }
        for (model, state) in models.iter_mut() {
            if *state == ModelState::NotIndexed {
                continue;
            }
            *state = match tables.get(model) {
                None => ModelState::Missing,
                Some(cols) => TableInfo::from_columns(cols),
            };
        }
        Ok(models)
    }

    /// Answers one round of the descent for `model` in at most three statements.
    pub async fn answer(
        &mut self,
        model: &str,
        table: &TableInfo,
        batch: &[Query],
    ) -> Result<Vec<Answer<PgHash64>>, SourceError> {
        let mut answers: Vec<Option<Answer<PgHash64>>> = vec![None; batch.len()];
        let kinds: [fn(&Query) -> bool; 4] = [
            |q| matches!(q, Query::Bounds { .. }),
            |q| matches!(q, Query::Summary { .. }),
            |q| matches!(q, Query::Digests { .. }),
            |q| matches!(q, Query::Entries { .. }),
        ];
        for (kind, wanted) in kinds.iter().enumerate() {
            let idx: Vec<usize> = (0..batch.len()).filter(|&i| wanted(&batch[i])).collect();
            if idx.is_empty() {
                continue;
            }
            let ranges: Vec<&Range> = idx.iter().map(|&i| batch[i].range()).collect();
            let scan = if kind == 1 {
                self.scan_prefix(model, &ranges)
            } else {
                None
            };
            let mut b = buckets(model, &ranges, scan.is_none() && self.range_scans(model));
            if !b.binary && b.ranges.is_none() {
                b.scan_prefix = scan;
            }
            tracing::debug!(
                node = %self.node,
                model,
                ranges = ranges.len(),
                plan = match (&b.scan_prefix, &b.ranges) {
                    (Some(_), _) => "prefix scan",
                    (None, Some(_)) => "key range scans",
                    (None, None) => "width_bucket scan",
                },
                "round plan"
            );
            let filled = match kind {
                0 => {
                    let whole = ranges.len() == 1
                        && stream_bound(model, &ranges[0].start) == StreamBound::Below
                        && ranges[0]
                            .end
                            .as_ref()
                            .is_none_or(|e| stream_bound(model, e) == StreamBound::Above);
                    self.bounds(model, &b, whole).await?
                }
                1 => {
                    let with_bounds = idx
                        .iter()
                        .any(|&i| matches!(batch[i], Query::Summary { bounds: true, .. }));
                    let filter = b
                        .scan_prefix
                        .and_then(|_| self.prefix_filter(model, &ranges));
                    match self
                        .summaries(model, table, &b, with_bounds, filter.as_ref())
                        .await?
                    {
                        Some(answers) => answers,
                        // A row outside base36 escaped the filter: ask again without it.
                        None => self
                            .summaries(model, table, &b, with_bounds, None)
                            .await?
                            .unwrap_or_default(),
                    }
                }
                2 => self.digests(model, table, &b).await?,
                _ => {
                    let only: Vec<Option<&BTreeSet<u64>>> = idx
                        .iter()
                        .map(|&i| match &batch[i] {
                            Query::Entries { only, .. } => only.as_ref(),
                            _ => None,
                        })
                        .collect();
                    self.entries(model, table, &b, &only).await?
                }
            };
            if kind == 1 {
                let last = ranges
                    .iter()
                    .zip(&filled)
                    .map(|(r, a)| match a {
                        Answer::Summary(s) => ((*r).clone(), s.fingerprint.count),
                        _ => ((*r).clone(), 0),
                    })
                    .collect();
                self.shapes.entry(model.to_string()).or_default().last = last;
            }
            for (k, answer) in idx.into_iter().zip(filled) {
                answers[k] = Some(answer);
            }
        }
        answers
            .into_iter()
            .map(|a| {
                a.ok_or_else(|| SourceError::Node {
                    node: self.node.clone(),
                    message: "internal: a query of the round was not answered".into(),
                })
            })
            .collect()
    }

    fn params<'a>(
        model: &'a String,
        b: &'a Buckets,
        text: &'a Vec<String>,
        wanted: &'a Vec<i32>,
    ) -> Vec<&'a (dyn ToSql + Sync)> {
        let thresholds: &(dyn ToSql + Sync) = match &b.ranges {
            Some(plan) => &plan.lo,
            None if b.binary => &b.thresholds,
            None => text,
        };
        vec![model, thresholds, wanted]
    }

    /// Runs one statement of a round: parameters `$1` model, `$2` thresholds (or range starts),
    /// `$3` wanted buckets, then `extra`, then the range ends if the round uses a range plan.
    async fn round_query(
        &mut self,
        what: &str,
        sql: &str,
        model: &str,
        b: &Buckets,
        wanted: &Vec<i32>,
        extra: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, SourceError> {
        let model_s = model.to_string();
        let texts = Self::threshold_texts(b);
        let mut params = Self::params(&model_s, b, &texts, wanted);
        params.extend_from_slice(extra);
        Self::push_hi(b, &mut params);
        self.query(what, sql, &params).await
    }

    /// Appends the range plan's `hi` array (the last parameter), if the round uses one.
    fn push_hi<'a>(b: &'a Buckets, params: &mut Vec<&'a (dyn ToSql + Sync)>) {
        if let Some(plan) = &b.ranges {
            params.push(&plan.hi);
        }
    }

    fn threshold_texts(b: &Buckets) -> Vec<String> {
        if b.binary {
            Vec::new()
        } else {
            b.thresholds
                .iter()
                .map(|t| String::from_utf8_lossy(t).into_owned())
                .collect()
        }
    }

    async fn summaries(
        &mut self,
        model: &str,
        table: &TableInfo,
        b: &Buckets,
        with_bounds: bool,
        filter: Option<&PrefixFilter>,
    ) -> Result<Option<Vec<Answer<PgHash64>>>, SourceError> {
        let wanted: Vec<i32> = b.bucket.iter().flatten().copied().collect();
        let mut by_bucket: HashMap<i32, Summary<PgHash64>> = HashMap::new();
        if !wanted.is_empty() {
            // One row back: per range `int4 bucket, int8 count, int8 sum` packed in a bytea (20
            // bytes a range; as rows of three binary columns the protocol would add 19 more).
            // Bounds are asked for rarely (a range whose keys all share one split point) and
            // come as two text arrays in bucket order.
            let (minmax, bound_cols) = if with_bounds {
                (
                    ", min(sid) AS lo, max(sid) AS hi",
                    "array_agg(lo ORDER BY bucket), array_agg(hi ORDER BY bucket)",
                )
            } else {
                ("", "NULL::text[], NULL::text[]")
            };
            let packing = format!(
                "SELECT string_agg(int4send(bucket) || int8send(n) || int8send({sum}), ''::bytea \
                                   ORDER BY bucket), {bound_cols}",
                sum = wrap_sql("s"),
            );
            let (prefix_where, filtered_rows) = match filter {
                Some(f) => (
                    format!(
                        "WHERE left(stream_id, {}) COLLATE \"C\" = ANY($4::text[])",
                        f.len
                    ),
                    "(SELECT sum(n) FROM g)::int8",
                ),
                None => (String::new(), "NULL::int8"),
            };
            let sql = match b.scan_prefix {
                // Hash every row once, sum per key prefix, then assign the (few) prefix groups
                // to ranges: a prefix at least as long as every bound orders like its rows.
                // Both OFFSET 0 fences matter: without them Postgres pushes the bucket filter
                // down to every row, and `width_bucket` over text walks its array linearly
                // (7 µs a row with 2,600 bounds).
                Some(len) => format!(
                    "WITH g AS MATERIALIZED ( \
                         SELECT p, count(*) AS n, sum(h) AS s{minmax} \
                         FROM (SELECT left(stream_id, {len}) COLLATE \"C\" AS p, \
                                      stream_id COLLATE \"C\" AS sid, {hash} AS h \
                               FROM {table} {prefix_where} OFFSET 0) r \
                         GROUP BY p) \
                     {packing}, {filtered_rows} \
                     FROM (SELECT {bucket} AS bucket, sum(n)::int8 AS n, sum(s) AS s{minmax_outer} \
                           FROM g GROUP BY 1) s \
                     WHERE bucket = ANY($3::int[])",
                    bucket = if b.thresholds.is_empty() {
                        "0 * cardinality($2::text[])".to_string()
                    } else {
                        "width_bucket(p, $2::text[])".to_string()
                    },
                    minmax_outer = if with_bounds {
                        ", min(lo) AS lo, max(hi) AS hi"
                    } else {
                        ""
                    },
                    hash = self.hash_sql(&table.custom),
                    table = quote_ident(model),
                ),
                None => format!(
                    "{packing}, NULL::int8 \
                     FROM (SELECT bucket, count(*) AS n, sum(h) AS s{minmax} \
                           FROM (SELECT {bucket} AS bucket, stream_id COLLATE \"C\" AS sid, \
                                        {hash} AS h \
                                 FROM {from} WHERE {bucket} = ANY($3::int[])) s \
                           GROUP BY bucket) g",
                    bucket = bucket_sql(b, 2),
                    hash = self.hash_sql(&table.custom),
                    from = from_sql(b, &quote_ident(model), 4),
                ),
            };
            let prefixes: Vec<String> = filter.map(|f| f.prefixes.clone()).unwrap_or_default();
            let extra: Vec<&(dyn ToSql + Sync)> = if filter.is_some() {
                vec![&prefixes]
            } else {
                Vec::new()
            };
            let rows = self
                .round_query("range fingerprints", &sql, model, b, &wanted, &extra)
                .await?;
            let get = |e: tokio_postgres::Error| self.error("reading fingerprints", &sql, &e);
            let row = rows
                .first()
                .ok_or_else(|| self.node_error("range fingerprints: no row returned".into()))?;
            let packed: Option<Vec<u8>> = row.try_get(0).map_err(get)?;
            let lo: Option<Vec<Option<String>>> = row.try_get(1).map_err(get)?;
            let hi: Option<Vec<Option<String>>> = row.try_get(2).map_err(get)?;
            let filtered: Option<i64> = row.try_get(3).map_err(get)?;
            let packed = packed.unwrap_or_default();
            if let Some(f) = filter {
                if filtered.unwrap_or(0).max(0) as u64 != f.expected_rows {
                    tracing::debug!(
                        node = %self.node,
                        model,
                        found = filtered.unwrap_or(0),
                        expected = f.expected_rows,
                        "prefix filter missed rows; repeating the round unfiltered"
                    );
                    return Ok(None);
                }
            }
            self.bytes_received += packed.len() as u64
                + [&lo, &hi]
                    .iter()
                    .flat_map(|a| a.iter().flatten().flatten())
                    .map(|t| t.len() as u64 + 1)
                    .sum::<u64>();
            let mut reader = Packed(&packed);
            let mut k = 0;
            while !reader.is_empty() {
                let parse = |r: &mut Packed| -> Result<(i32, u64, u64), String> {
                    Ok((r.i32("a bucket")?, r.u64("a count")?, r.u64("a sum")?))
                };
                let (bucket, count, sum) = parse(&mut reader).map_err(|m| self.node_error(m))?;
                self.rows_scanned += count;
                let first = lo.as_ref().and_then(|v| v.get(k).cloned().flatten());
                let last = hi.as_ref().and_then(|v| v.get(k).cloned().flatten());
                k += 1;
                by_bucket.insert(
                    bucket,
                    Summary {
                        fingerprint: HashCount {
                            hash: PgHash64(sum),
                            count,
                        },
                        bounds: first
                            .zip(last)
                            .map(|(f, l)| (Key::new(model, &f), Key::new(model, &l))),
                    },
                );
            }
        }
        Ok(Some(
            b.bucket
                .iter()
                .map(|bk| {
                    Answer::Summary(bk.and_then(|k| by_bucket.get(&k).cloned()).unwrap_or(
                        Summary {
                            fingerprint: HashCount::zero(),
                            bounds: None,
                        },
                    ))
                })
                .collect(),
        ))
    }

    /// Count and first/last stream id per range: a scan without hashing (the descent's first
    /// look, `DescentParams::root_bounds_only`).
    async fn bounds(
        &mut self,
        model: &str,
        b: &Buckets,
        whole: bool,
    ) -> Result<Vec<Answer<PgHash64>>, SourceError> {
        let wanted: Vec<i32> = b.bucket.iter().flatten().copied().collect();
        let mut by_bucket: HashMap<i32, (u64, Option<(Key, Key)>)> = HashMap::new();
        // The row check (which runs before every descent) read the whole table's size and first
        // and last id in this snapshot already; only narrower bounds are asked of Postgres.
        let cached = self
            .shapes
            .get(model)
            .and_then(|s| s.rows.zip(s.bounds.clone()))
            .filter(|_| whole);
        if let Some((rows, bounds)) = cached {
            let bounds = bounds.map(|(f, l)| (Key::new(model, &f), Key::new(model, &l)));
            return Ok(vec![Answer::Bounds {
                count: rows,
                bounds,
            }]);
        }
        if !wanted.is_empty() {
            // `$1` (the model) is unused here but typed, so all statements share parameters.
            let sql = format!(
                "SELECT bucket, count(*)::bigint, min(sid), max(sid) \
                 FROM (SELECT {bucket} AS bucket, stream_id COLLATE \"C\" AS sid FROM {from}) s \
                 WHERE bucket = ANY($3::int[]) AND $1::text IS NOT NULL GROUP BY bucket",
                bucket = bucket_sql(b, 2),
                from = from_sql(b, &quote_ident(model), 4),
            );
            let rows = self
                .round_query("range bounds", &sql, model, b, &wanted, &[])
                .await?;
            for row in rows {
                let get = |e: tokio_postgres::Error| self.error("reading range bounds", &sql, &e);
                let bucket: i32 = row.try_get(0).map_err(get)?;
                let count: i64 = row.try_get(1).map_err(get)?;
                let first: String = row.try_get(2).map_err(get)?;
                let last: String = row.try_get(3).map_err(get)?;
                self.bytes_received += (12 + first.len() + last.len()) as u64;
                self.rows_scanned += count.max(0) as u64;
                by_bucket.insert(
                    bucket,
                    (
                        count.max(0) as u64,
                        Some((Key::new(model, &first), Key::new(model, &last))),
                    ),
                );
            }
        }
        Ok(b.bucket
            .iter()
            .map(|bk| {
                let (count, bounds) = bk
                    .and_then(|k| by_bucket.get(&k).cloned())
                    .unwrap_or((0, None));
                Answer::Bounds { count, bounds }
            })
            .collect())
    }

    /// The prefix length of the scan plan, when this round should be answered by one sequential
    /// scan: it touches at least [`SCAN_SHARE`] of the table, stream ids are base36, and the
    /// longest bound is at most [`SCAN_GROUP_DIGITS`] characters past the ids' common prefix.
    fn scan_prefix(&self, model: &str, ranges: &[&Range]) -> Option<usize> {
        if self.plain_keys.get(model) != Some(&true) {
            return None;
        }
        let shape = self.shapes.get(model)?;
        let rows = shape.rows?;
        let touched = shape.estimate(ranges)?;
        tracing::debug!(node = %self.node, model, touched, rows, "rows a round would touch");
        if (touched as f64) < SCAN_SHARE * rows as f64 {
            return None;
        }
        let mut len = 1;
        for r in ranges {
            for k in std::iter::once(&r.start).chain(r.end.as_ref()) {
                if let StreamBound::At(s) = stream_bound(model, k) {
                    len = len.max(s.len());
                }
            }
        }
        (len.saturating_sub(shape.common_prefix) <= SCAN_GROUP_DIGITS).then_some(len)
    }

    /// The filter for a scan-plan round: the base36 prefixes of the last round's ranges that
    /// meet this one, at the length of their longest bound.
    fn prefix_filter(&self, model: &str, ranges: &[&Range]) -> Option<PrefixFilter> {
        let shape = self.shapes.get(model)?;
        let (first, last) = shape.bounds.clone().flatten()?;
        let parents: Vec<&(Range, u64)> = shape
            .last
            .iter()
            .filter(|(r, _)| ranges.iter().any(|q| ranges_meet(r, q)))
            .collect();
        if parents.is_empty() || parents.len() == shape.last.len() {
            return None; // nothing learned, or every range differs: filtering saves nothing
        }
        let bound = |k: &Key| match stream_bound(model, k) {
            StreamBound::At(s) => Some(Some(s)),
            StreamBound::Below | StreamBound::Above => Some(None),
        };
        let mut spans = Vec::with_capacity(parents.len());
        let mut len = 1;
        for (r, _) in &parents {
            let lo = bound(&r.start)?;
            let hi = match &r.end {
                Some(e) => bound(e)?,
                None => None,
            };
            len = len
                .max(lo.as_ref().map_or(0, Vec::len))
                .max(hi.as_ref().map_or(0, Vec::len));
            spans.push((lo, hi));
        }
        let prefixes = prefixes_in(&spans, &first, &last, len, PREFIX_FILTER_MAX)?;
        Some(PrefixFilter {
            len,
            prefixes,
            expected_rows: parents.iter().map(|(_, n)| n).sum(),
        })
    }

    fn range_scans(&self, model: &str) -> bool {
        self.collation_ok && self.plain_keys.get(model) == Some(&true)
    }

    fn node_error(&self, message: String) -> SourceError {
        SourceError::Node {
            node: self.node.clone(),
            message,
        }
    }

    async fn digests(
        &mut self,
        model: &str,
        table: &TableInfo,
        b: &Buckets,
    ) -> Result<Vec<Answer<PgHash64>>, SourceError> {
        let wanted: Vec<i32> = b.bucket.iter().flatten().copied().collect();
        let mut by_bucket: HashMap<i32, Vec<u64>> = HashMap::new();
        if !wanted.is_empty() {
            // A row per range, its row hashes packed in key order (8 bytes a row).
            let sql = format!(
                "SELECT bucket, string_agg(int8send(h), ''::bytea ORDER BY sid) \
                 FROM (SELECT {bucket} AS bucket, stream_id COLLATE \"C\" AS sid, {hash} AS h \
                       FROM {from}) s \
                 WHERE bucket = ANY($3::int[]) GROUP BY bucket",
                bucket = bucket_sql(b, 2),
                hash = self.hash_sql(&table.custom),
                from = from_sql(b, &quote_ident(model), 4),
            );
            let rows = self
                .round_query("row digests", &sql, model, b, &wanted, &[])
                .await?;
            for row in rows {
                let get = |e: tokio_postgres::Error| self.error("reading digests", &sql, &e);
                let bucket: i32 = row.try_get(0).map_err(get)?;
                let packed: Vec<u8> = row.try_get(1).map_err(get)?;
                self.bytes_received += 4 + packed.len() as u64;
                let mut reader = Packed(&packed);
                let list = by_bucket.entry(bucket).or_default();
                while !reader.is_empty() {
                    list.push(reader.u64("a row hash").map_err(|m| self.node_error(m))?);
                    self.rows_scanned += 1;
                }
            }
        }
        Ok(b.bucket
            .iter()
            .map(|bk| Answer::Digests(bk.and_then(|k| by_bucket.remove(&k)).unwrap_or_default()))
            .collect())
    }

    async fn entries(
        &mut self,
        model: &str,
        table: &TableInfo,
        b: &Buckets,
        only: &[Option<&BTreeSet<u64>>],
    ) -> Result<Vec<Answer<PgHash64>>, SourceError> {
        let wanted: Vec<i32> = b.bucket.iter().flatten().copied().collect();
        let mut by_bucket: HashMap<i32, Vec<(u64, Entry)>> = HashMap::new();
        if !wanted.is_empty() {
            // Buckets fetched whole, and the digests wanted from the others.
            let whole: Vec<i32> = b
                .bucket
                .iter()
                .zip(only)
                .filter_map(|(bk, o)| if o.is_none() { *bk } else { None })
                .collect();
            let digests: Vec<i64> = only
                .iter()
                .flatten()
                .flat_map(|set| set.iter().map(|d| *d as i64))
                .collect();
            let sql = format!(
                "SELECT bucket, stream_id, tip, d, h \
                 FROM (SELECT bucket, stream_id, tip, d, \
                              hashtextextended($1::text || E'\\n' || stream_id || E'\\n' \
                                               || coalesce(tip, '') || E'\\n' || d::text, 0) AS h \
                       FROM (SELECT {bucket} AS bucket, stream_id, tip, {digest} AS d \
                             FROM {from}) s0 \
                       WHERE bucket = ANY($3::int[])) s \
                 WHERE bucket = ANY($4::int[]) OR h = ANY($5::int8[]) \
                 ORDER BY stream_id COLLATE \"C\"",
                bucket = bucket_sql(b, 2),
                digest = self.digest_sql(&table.custom),
                from = from_sql(b, &quote_ident(model), 6),
            );
            let rows = self
                .round_query(
                    "differing rows",
                    &sql,
                    model,
                    b,
                    &wanted,
                    &[&whole, &digests],
                )
                .await?;
            for row in rows {
                let get = |e: tokio_postgres::Error| self.error("reading rows", &sql, &e);
                let bucket: i32 = row.try_get(0).map_err(get)?;
                let stream: String = row.try_get(1).map_err(get)?;
                let tip: Option<String> = row.try_get(2).map_err(get)?;
                let d: i64 = row.try_get(3).map_err(get)?;
                let short: i64 = row.try_get(4).map_err(get)?;
                self.bytes_received +=
                    (4 + stream.len() + tip.as_ref().map_or(0, String::len) + 16) as u64;
                self.rows_scanned += 1;
                let entry = Entry::new(
                    Key::new(model, &stream),
                    Value::new(tip.unwrap_or_default(), d as u64),
                );
                by_bucket
                    .entry(bucket)
                    .or_default()
                    .push((short as u64, entry));
            }
        }
        Ok(b.bucket
            .iter()
            .zip(only)
            .map(|(bk, o)| {
                let rows = bk.and_then(|k| by_bucket.remove(&k)).unwrap_or_default();
                Answer::Entries(
                    rows.into_iter()
                        .filter(|(short, _)| o.is_none_or(|set| set.contains(short)))
                        .map(|(_, e)| e)
                        .collect(),
                )
            })
            .collect())
    }

    /// Runs one statement and hands its rows to `each` as they stream in (nothing is buffered
    /// here); `each` returns the bytes it read, for the counters.
    async fn stream_rows(
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

    /// Download mode: every row's stream id and row hash (computed by Postgres as in push-down),
    /// streamed; the tips of the few differing rows are read later with [`PgSource::rows_of`].
    pub async fn download_hashes(
        &mut self,
        model: &str,
        table: &TableInfo,
    ) -> Result<super::hashed::Downloaded, SourceError> {
        let sql = format!(
            "SELECT stream_id, {hash} FROM {table}",
            hash = self.hash_sql(&table.custom),
            table = quote_ident(model),
        );
        let mut out = super::hashed::Downloaded::default();
        let mut too_large = None;
        self.stream_rows("downloading row hashes", &sql, &[&model], |row| {
            let s: &str = row.try_get(0)?;
            let h: i64 = row.try_get(1)?;
            if let Err(m) = out.push(s.as_bytes(), h as u64) {
                too_large.get_or_insert(m);
            }
            Ok(s.len() as u64 + 8)
        })
        .await?;
        match too_large {
            Some(m) => Err(self.node_error(format!("model {model}: {m}"))),
            None => Ok(out),
        }
    }

    /// Every row of the model as `(stream_id, tip, column digest)` (`crawl`).
    pub async fn download(
        &mut self,
        model: &str,
        table: &TableInfo,
    ) -> Result<Vec<Entry>, SourceError> {
        let sql = format!(
            "SELECT stream_id, tip, {digest} FROM {table}",
            digest = self.digest_sql(&table.custom),
            table = quote_ident(model),
        );
        let mut out = Vec::new();
        self.stream_rows("downloading rows", &sql, &[], |row| {
            let s: String = row.try_get(0)?;
            let tip: Option<String> = row.try_get(1)?;
            let d: i64 = row.try_get(2)?;
            let bytes = (s.len() + tip.as_ref().map_or(0, String::len) + 8) as u64;
            out.push(Entry::new(
                Key::new(model, &s),
                Value::new(tip.unwrap_or_default(), d as u64),
            ));
            Ok(bytes)
        })
        .await?;
        Ok(out)
    }

    /// Rows whose stream id or tip cannot be an identifier (exact parsing happens on what this
    /// returns), up to [`INVALID_ROWS_LISTED`]. One scan counts them and reads the table's
    /// size and first and last stream id, which the descent's first round then reuses.
    pub async fn suspicious_rows(
        &mut self,
        model: &str,
        check: RowCheck,
    ) -> Result<Vec<(String, Option<String>)>, SourceError> {
        // octet_length is O(1); length() walks UTF-8 (0.4 s more on 10^6 rows).
        let quick = "tip IS NULL OR octet_length(tip) < 20 OR octet_length(stream_id) < 20 \
                     OR stream_id COLLATE \"C\" < 'k' OR stream_id COLLATE \"C\" >= 'l'";
        let suspicious = match check {
            RowCheck::Quick => quick.to_string(),
            RowCheck::Full => format!(
                "{quick} OR stream_id COLLATE \"C\" !~ '^k[0-9a-z]+$' \
                 OR tip COLLATE \"C\" !~ '^(b[a-z2-7]+|Qm[1-9A-HJ-NP-Za-km-z]+)$'"
            ),
        };
        let table = quote_ident(model);
        // First and last id: from the primary key where the collation orders ids like bytes
        // (two index probes), else compared row by row in byte order (0.2 s on 10^6 rows).
        let sql = if self.collation_ok {
            format!(
                "SELECT count(*)::int8, (count(*) FILTER (WHERE {suspicious}))::int8, \
                        (SELECT min(stream_id) FROM {table}), (SELECT max(stream_id) FROM {table}) \
                 FROM {table}"
            )
        } else {
            format!(
                "SELECT count(*)::int8, (count(*) FILTER (WHERE {suspicious}))::int8, \
                        min(stream_id COLLATE \"C\"), max(stream_id COLLATE \"C\") FROM {table}"
            )
        };
        let rows = self.query("checking rows", &sql, &[]).await?;
        let get = |e: tokio_postgres::Error| self.error("reading the row check", &sql, &e);
        let row = rows
            .first()
            .ok_or_else(|| self.node_error("checking rows: no row returned".into()))?;
        let total: i64 = row.try_get(0).map_err(get)?;
        let bad: i64 = row.try_get(1).map_err(get)?;
        let first: Option<String> = row.try_get(2).map_err(get)?;
        let last: Option<String> = row.try_get(3).map_err(get)?;
        self.bytes_received += 16
            + first.as_ref().map_or(0, String::len) as u64
            + last.as_ref().map_or(0, String::len) as u64;
        self.rows_scanned += total.max(0) as u64;
        let shape = self.shapes.entry(model.to_string()).or_default();
        shape.rows = Some(total.max(0) as u64);
        shape.common_prefix = match (&first, &last) {
            (Some(f), Some(l)) => f.bytes().zip(l.bytes()).take_while(|(x, y)| x == y).count(),
            _ => 0,
        };
        shape.bounds = Some(first.zip(last));
        let mut out = Vec::new();
        if bad > 0 {
            let sql = format!(
                "SELECT stream_id, tip FROM {table} WHERE {suspicious} \
                 ORDER BY stream_id COLLATE \"C\" LIMIT {INVALID_ROWS_LISTED}"
            );
            let rows = self.query("listing invalid rows", &sql, &[]).await?;
            for row in rows {
                let get = |e: tokio_postgres::Error| self.error("reading invalid rows", &sql, &e);
                let s: String = row.try_get(0).map_err(get)?;
                let tip: Option<String> = row.try_get(1).map_err(get)?;
                self.bytes_received += (s.len() + tip.as_ref().map_or(0, String::len)) as u64;
                out.push((s, tip));
            }
        }
        // Stream ids are taken as plain base36 (index range scans and prefix grouping rely on
        // it) when no row failed the check. The quick check only proves the `k` prefix and the
        // length; a non-base36 id that slips through can at worst be placed in a neighbouring
        // range by a non-C collation, which the descent rejects as an inconsistent answer (an
        // error naming the node), never as silence.
        let plain_keys = bad == 0
            || (check == RowCheck::Full
                && (out.len() as i64) < INVALID_ROWS_LISTED
                && out
                    .iter()
                    .all(|(s, _)| s.starts_with('k') && s.len() > 1 && plain(s.as_bytes())));
        self.plain_keys.insert(model.to_string(), plain_keys);
        Ok(out)
    }

    /// Starts a new read-only snapshot, for the settle re-check: the crawl's snapshot would
    /// show the same (possibly in-flight) state again.
    pub async fn refresh_snapshot(&mut self) -> Result<(), SourceError> {
        let sql = "ROLLBACK; BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
        self.statements += 1;
        self.client
            .batch_execute(sql)
            .await
            .map_err(|e| self.error("starting a new snapshot for the re-check", sql, &e))
    }

    /// The current `(tip, column digest)` of each of `streams` (absent streams are left out).
    pub async fn rows_of(
        &mut self,
        model: &str,
        table: &TableInfo,
        streams: &[String],
    ) -> Result<Vec<Entry>, SourceError> {
        let sql = format!(
            "SELECT stream_id, tip, {digest} FROM {table} WHERE stream_id = ANY($1::text[])",
            digest = self.digest_sql(&table.custom),
            table = quote_ident(model),
        );
        let rows = self
            .query("re-reading differing rows", &sql, &[&streams])
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let get = |e: tokio_postgres::Error| self.error("re-reading rows", &sql, &e);
            let s: String = row.try_get(0).map_err(get)?;
            let tip: Option<String> = row.try_get(1).map_err(get)?;
            let d: i64 = row.try_get(2).map_err(get)?;
            self.bytes_received += (s.len() + tip.as_ref().map_or(0, String::len) + 8) as u64;
            out.push(Entry::new(
                Key::new(model, &s),
                Value::new(tip.unwrap_or_default(), d as u64),
            ));
        }
        Ok(out)
    }

    /// The content (as `jsonb::text`) and controller of `streams`' rows in `model`.
    pub async fn contents(
        &mut self,
        model: &str,
        streams: &[String],
    ) -> Result<Vec<super::rows::RowContent>, SourceError> {
        let sql = format!(
            "SELECT stream_id, controller_did, stream_content::text FROM {} \
             WHERE stream_id = ANY($1::text[])",
            quote_ident(model)
        );
        let rows = self
            .query("reading the content of differing rows", &sql, &[&streams])
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let get = |e: tokio_postgres::Error| self.error("reading row content", &sql, &e);
            let content: Option<String> = row.try_get(2).map_err(get)?;
            let r = super::rows::RowContent {
                stream_id: row.try_get(0).map_err(get)?,
                controller: row.try_get(1).map_err(get)?,
                content,
            };
            self.bytes_received +=
                (r.stream_id.len() + r.content.as_ref().map_or(0, String::len)) as u64;
            out.push(r);
        }
        Ok(out)
    }

    /// `(stream_id, tip)` of every row of `model`, or of `sample` rows drawn at random (one
    /// scan with a top-N sort: `ORDER BY random() LIMIT n`). Rows with a NULL tip are left out
    /// (they are `invalid_row` already).
    pub async fn tips(
        &mut self,
        model: &str,
        sample: Option<u64>,
    ) -> Result<Vec<(String, String)>, SourceError> {
        let table = quote_ident(model);
        let sql = match sample {
            Some(n) => format!(
                "SELECT stream_id, tip FROM {table} WHERE tip IS NOT NULL ORDER BY random() LIMIT {n}"
            ),
            None => format!("SELECT stream_id, tip FROM {table} WHERE tip IS NOT NULL"),
        };
        let rows = self.query("reading tips to verify", &sql, &[]).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let get = |e: tokio_postgres::Error| self.error("reading tips", &sql, &e);
            let s: String = row.try_get(0).map_err(get)?;
            let tip: String = row.try_get(1).map_err(get)?;
            self.bytes_received += (s.len() + tip.len()) as u64;
            out.push((s, tip));
        }
        Ok(out)
    }

    /// Stream ids of `model`'s rows with `updated_at` at or after `since_ms` (unix ms; all rows
    /// when `None`), and the newest `updated_at` of the table (the next watermark).
    pub async fn changed_since(
        &mut self,
        model: &str,
        since_ms: Option<i64>,
    ) -> Result<(Vec<String>, Option<i64>), SourceError> {
        let table = quote_ident(model);
        let sql = format!(
            "SELECT stream_id, (extract(epoch FROM updated_at) * 1000)::int8 FROM {table} \
             WHERE $1::int8 IS NULL OR updated_at >= to_timestamp($1::int8 / 1000.0)"
        );
        let rows = self
            .query(
                "reading rows changed since the last cycle",
                &sql,
                &[&since_ms],
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        let mut newest: Option<i64> = None;
        for row in rows {
            let get = |e: tokio_postgres::Error| self.error("reading changed rows", &sql, &e);
            let s: String = row.try_get(0).map_err(get)?;
            let at: Option<i64> = row.try_get(1).map_err(get)?;
            self.bytes_received += s.len() as u64 + 8;
            newest = newest.max(at);
            out.push(s);
        }
        if since_ms.is_some() {
            // The newest row may be older than the watermark asked for: keep the watermark.
            newest = newest.max(since_ms);
        }
        Ok((out, newest))
    }

    /// Ends the snapshot transaction (read-only: nothing to commit).
    pub async fn close(self) {
        let _ = self.client.batch_execute("ROLLBACK").await;
    }
}
