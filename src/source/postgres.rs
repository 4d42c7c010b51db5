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
//! with the number of ranges asked about, not with the table. The per-row hash is md5-based
//! ([`crate::recon::Md5Lanes`]): two 64-bit lanes summed as numeric and reduced mod 2^64 here.
//! Download mode streams `(stream_id, tip, column digest)` for every row instead and
//! fingerprints locally; both modes hash the same SQL-built text, so they agree by construction
//! (a test checks it).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use futures::{pin_mut, TryStreamExt};
use tokio_postgres::{types::ToSql, Client, NoTls};

use super::{ModelState, SourceError, TableInfo};
use crate::config::{redact_dsn, NodeConfig};
use crate::recon::{Answer, Entry, HashCount, Key, Md5Lanes, Query, Range, Summary, Value};

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
}

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

/// SQL building the canonical columns text of `rows.rs` for one row.
fn columns_sql(custom: &[String]) -> String {
    let mut e = String::from(
        "coalesce(controller_did, '') || E'\\n' || coalesce(stream_content::jsonb::text, '') \
         || E'\\n' || coalesce((extract(epoch from last_anchored_at) * 1000)::bigint::text, '') \
         || E'\\n' || coalesce((extract(epoch from first_anchored_at) * 1000)::bigint::text, '')",
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

/// SQL of the row hash input's md5 (hex); `$1` is the model string.
fn hash_sql(custom: &[String]) -> String {
    format!(
        "md5($1::text || E'\\n' || stream_id || E'\\n' || coalesce(tip, '') || E'\\n' || md5({}))",
        columns_sql(custom)
    )
}

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

fn lane(text: &str) -> Result<u64, String> {
    let v: i128 = text
        .parse()
        .map_err(|e| format!("lane sum {text:?} is not an integer: {e}"))?;
    // Postgres sums the signed lanes exactly; the fingerprint is that sum mod 2^64.
    Ok(v.rem_euclid(1i128 << 64) as u64)
}

fn short_digest(hex16: &str) -> Result<u64, String> {
    u64::from_str_radix(hex16, 16).map_err(|e| format!("digest {hex16:?}: {e}"))
}

fn digest_bytes(hex32: &str) -> Result<[u8; 16], String> {
    let v = hex::decode(hex32).map_err(|e| format!("column digest {hex32:?}: {e}"))?;
    v.try_into()
        .map_err(|_| format!("column digest {hex32:?} is not 16 bytes"))
}

impl PgSource {
    /// Connects, pins the session read-only and opens the crawl's snapshot transaction.
    pub async fn connect(
        node: &NodeConfig,
        dsn: &str,
        password: Option<String>,
        timeout: Duration,
    ) -> Result<Self, SourceError> {
        let err = |what: &str, e: &dyn std::fmt::Display| SourceError::Node {
            node: node.name.clone(),
            message: format!("{what} {}: {e}", redact_dsn(dsn)),
        };
        let mut config: tokio_postgres::Config = dsn.parse().map_err(|e| err("invalid DSN", &e))?;
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
        let (client, connection) = tokio::time::timeout(timeout, config.connect(NoTls))
            .await
            .map_err(|_| {
                err(
                    "timed out connecting to",
                    &format!("{}s", timeout.as_secs()),
                )
            })?
            .map_err(|e| err("cannot connect to", &e))?;
        let connection = tokio::spawn(async move {
            // Errors surface on the next query as a closed connection; nothing to do here.
            let _ = connection.await;
        });
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
        };
        let setup = format!(
            "SET default_transaction_read_only = on; SET statement_timeout = {}; \
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
        source.statements += 2;
        Ok(source)
    }

    fn error(&self, what: &str, sql: &str, e: &tokio_postgres::Error) -> SourceError {
        let detail = e.as_db_error().map_or_else(
            || e.to_string(),
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
    ) -> Result<Vec<Answer<Md5Lanes>>, SourceError> {
        let mut answers: Vec<Option<Answer<Md5Lanes>>> = vec![None; batch.len()];
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
            let b = buckets(model, &ranges, self.range_scans(model));
            let filled = match kind {
                0 => self.bounds(model, &b).await?,
                1 => {
                    let with_bounds = idx
                        .iter()
                        .any(|&i| matches!(batch[i], Query::Summary { bounds: true, .. }));
                    self.summaries(model, table, &b, with_bounds).await?
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
    ) -> Result<Vec<Answer<Md5Lanes>>, SourceError> {
        let wanted: Vec<i32> = b.bucket.iter().flatten().copied().collect();
        let mut by_bucket: HashMap<i32, Summary<Md5Lanes>> = HashMap::new();
        if !wanted.is_empty() {
            // The bucket filter runs inside the subquery and OFFSET 0 keeps it from being
            // flattened, so each row's hash is computed once (flattened, each lane recomputes it)
            // and only for rows in the requested ranges. Measured on 10^5 rows: 0.83 s vs 1.35 s.
            let minmax = if with_bounds {
                "min(sid), max(sid)"
            } else {
                "NULL::text, NULL::text"
            };
            let sql = format!(
                "SELECT bucket, count(*)::bigint, \
                        sum(('x' || substr(h, 1, 16))::bit(64)::bigint)::text, \
                        sum(('x' || substr(h, 17, 16))::bit(64)::bigint)::text, {minmax} \
                 FROM (SELECT {bucket} AS bucket, stream_id COLLATE \"C\" AS sid, {hash} AS h \
                       FROM {from} WHERE {bucket} = ANY($3::int[]) OFFSET 0) s \
                 GROUP BY bucket",
                bucket = bucket_sql(b, 2),
                hash = hash_sql(&table.custom),
                from = from_sql(b, &quote_ident(model), 4),
            );
            let rows = self
                .round_query("range fingerprints", &sql, model, b, &wanted, &[])
                .await?;
            for row in rows {
                let get = |e: tokio_postgres::Error| self.error("reading fingerprints", &sql, &e);
                let bucket: i32 = row.try_get(0).map_err(get)?;
                let count: i64 = row.try_get(1).map_err(get)?;
                let l0: String = row.try_get(2).map_err(get)?;
                let l1: String = row.try_get(3).map_err(get)?;
                let first: Option<String> = row.try_get(4).map_err(get)?;
                let last: Option<String> = row.try_get(5).map_err(get)?;
                self.bytes_received +=
                    (12 + l0.len()
                        + l1.len()
                        + first.as_ref().map_or(0, String::len)
                        + last.as_ref().map_or(0, String::len)) as u64;
                self.rows_scanned += count.max(0) as u64;
                let hash = Md5Lanes([
                    lane(&l0).map_err(|m| self.node_error(m))?,
                    lane(&l1).map_err(|m| self.node_error(m))?,
                ]);
                by_bucket.insert(
                    bucket,
                    Summary {
                        fingerprint: HashCount {
                            hash,
                            count: count.max(0) as u64,
                        },
                        bounds: first
                            .zip(last)
                            .map(|(f, l)| (Key::new(model, &f), Key::new(model, &l))),
                    },
                );
            }
        }
        Ok(b.bucket
            .iter()
            .map(|bk| {
                Answer::Summary(
                    bk.and_then(|k| by_bucket.get(&k).cloned())
                        .unwrap_or(Summary {
                            fingerprint: HashCount::zero(),
                            bounds: None,
                        }),
                )
            })
            .collect())
    }

    /// Count and first/last stream id per range: a scan without hashing (the descent's first
    /// look, `DescentParams::root_bounds_only`).
    async fn bounds(
        &mut self,
        model: &str,
        b: &Buckets,
    ) -> Result<Vec<Answer<Md5Lanes>>, SourceError> {
        let wanted: Vec<i32> = b.bucket.iter().flatten().copied().collect();
        let mut by_bucket: HashMap<i32, (u64, Option<(Key, Key)>)> = HashMap::new();
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
    ) -> Result<Vec<Answer<Md5Lanes>>, SourceError> {
        let wanted: Vec<i32> = b.bucket.iter().flatten().copied().collect();
        let mut by_bucket: HashMap<i32, Vec<u64>> = HashMap::new();
        if !wanted.is_empty() {
            let sql = format!(
                "SELECT bucket, substr(h, 1, 16) \
                 FROM (SELECT {bucket} AS bucket, stream_id COLLATE \"C\" AS sid, {hash} AS h \
                       FROM {from}) s \
                 WHERE bucket = ANY($3::int[]) ORDER BY sid",
                bucket = bucket_sql(b, 2),
                hash = hash_sql(&table.custom),
                from = from_sql(b, &quote_ident(model), 4),
            );
            let rows = self
                .round_query("row digests", &sql, model, b, &wanted, &[])
                .await?;
            for row in rows {
                let get = |e: tokio_postgres::Error| self.error("reading digests", &sql, &e);
                let bucket: i32 = row.try_get(0).map_err(get)?;
                let d: String = row.try_get(1).map_err(get)?;
                self.bytes_received += 4 + d.len() as u64;
                self.rows_scanned += 1;
                by_bucket
                    .entry(bucket)
                    .or_default()
                    .push(short_digest(&d).map_err(|m| self.node_error(m))?);
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
    ) -> Result<Vec<Answer<Md5Lanes>>, SourceError> {
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
            let digests: Vec<String> = only
                .iter()
                .flatten()
                .flat_map(|set| set.iter().map(|d| format!("{d:016x}")))
                .collect();
            let sql = format!(
                "SELECT bucket, stream_id, tip, d, substr(h, 1, 16) \
                 FROM (SELECT {bucket} AS bucket, stream_id, tip, {hash} AS h, \
                              md5({cols}) AS d FROM {from}) s \
                 WHERE bucket = ANY($3::int[]) \
                   AND (bucket = ANY($4::int[]) OR substr(h, 1, 16) = ANY($5::text[])) \
                 ORDER BY stream_id COLLATE \"C\"",
                bucket = bucket_sql(b, 2),
                hash = hash_sql(&table.custom),
                cols = columns_sql(&table.custom),
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
                let d: String = row.try_get(3).map_err(get)?;
                let short: String = row.try_get(4).map_err(get)?;
                self.bytes_received += (4
                    + stream.len()
                    + tip.as_ref().map_or(0, String::len)
                    + d.len()
                    + short.len()) as u64;
                self.rows_scanned += 1;
                let entry = Entry::new(
                    Key::new(model, &stream),
                    Value::new(
                        tip.unwrap_or_default(),
                        digest_bytes(&d).map_err(|m| self.node_error(m))?,
                    ),
                );
                let short = short_digest(&short).map_err(|m| self.node_error(m))?;
                by_bucket.entry(bucket).or_default().push((short, entry));
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

    /// Download mode: every row of the model as `(stream_id, tip, column digest)`.
    pub async fn download(
        &mut self,
        model: &str,
        table: &TableInfo,
    ) -> Result<Vec<Entry>, SourceError> {
        let sql = format!(
            "SELECT stream_id, tip, md5({cols}) FROM {table}",
            cols = columns_sql(&table.custom),
            table = quote_ident(model),
        );
        let started = Instant::now();
        self.statements += 1;
        let params: [&(dyn ToSql + Sync); 0] = [];
        let stream = self
            .client
            .query_raw(sql.as_str(), params)
            .await
            .map_err(|e| self.error("downloading rows", &sql, &e))?;
        pin_mut!(stream);
        let mut out = Vec::new();
        while let Some(row) = stream
            .try_next()
            .await
            .map_err(|e| self.error("downloading rows", &sql, &e))?
        {
            let get = |e: tokio_postgres::Error| self.error("reading rows", &sql, &e);
            let s: String = row.try_get(0).map_err(get)?;
            let tip: Option<String> = row.try_get(1).map_err(get)?;
            let d: String = row.try_get(2).map_err(get)?;
            self.bytes_received += (s.len() + tip.as_ref().map_or(0, String::len) + d.len()) as u64;
            out.push(Entry::new(
                Key::new(model, &s),
                Value::new(
                    tip.unwrap_or_default(),
                    digest_bytes(&d).map_err(|m| self.node_error(m))?,
                ),
            ));
        }
        self.rows_scanned += out.len() as u64;
        self.busy += started.elapsed();
        Ok(out)
    }

    /// Rows whose stream id or tip cannot be an identifier, found by a cheap pattern scan (exact
    /// parsing happens on what it returns). Returns up to [`INVALID_ROWS_LISTED`] rows.
    pub async fn suspicious_rows(
        &mut self,
        model: &str,
    ) -> Result<Vec<(String, Option<String>)>, SourceError> {
        let sql = format!(
            "SELECT stream_id, tip FROM {table} \
             WHERE tip IS NULL OR length(stream_id) < 20 OR length(tip) < 20 \
                OR stream_id COLLATE \"C\" !~ '^k[0-9a-z]+$' \
                OR tip COLLATE \"C\" !~ '^(b[a-z2-7]+|Qm[1-9A-HJ-NP-Za-km-z]+)$' \
             ORDER BY stream_id COLLATE \"C\" LIMIT {INVALID_ROWS_LISTED}",
            table = quote_ident(model),
        );
        let rows = self.query("finding invalid rows", &sql, &[]).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let get = |e: tokio_postgres::Error| self.error("reading invalid rows", &sql, &e);
            let s: String = row.try_get(0).map_err(get)?;
            let tip: Option<String> = row.try_get(1).map_err(get)?;
            self.bytes_received += (s.len() + tip.as_ref().map_or(0, String::len)) as u64;
            out.push((s, tip));
        }
        // Every stream id is plain base36 unless the scan returned one that is not (or was cut
        // off at its limit, so some could be missing from the list).
        let plain_keys = (out.len() as i64) < INVALID_ROWS_LISTED
            && out
                .iter()
                .all(|(s, _)| s.starts_with('k') && s.len() > 1 && plain(s.as_bytes()));
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
            "SELECT stream_id, tip, md5({cols}) FROM {table} WHERE stream_id = ANY($1::text[])",
            cols = columns_sql(&table.custom),
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
            let d: String = row.try_get(2).map_err(get)?;
            self.bytes_received += (s.len() + tip.as_ref().map_or(0, String::len) + d.len()) as u64;
            out.push(Entry::new(
                Key::new(model, &s),
                Value::new(
                    tip.unwrap_or_default(),
                    digest_bytes(&d).map_err(|m| self.node_error(m))?,
                ),
            ));
        }
        Ok(out)
    }

    /// Ends the snapshot transaction (read-only: nothing to commit).
    pub async fn close(self) {
        let _ = self.client.batch_execute("ROLLBACK").await;
    }
}
