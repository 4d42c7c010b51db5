//! Answering a round of the descent: at most one statement per kind of query (bounds,
//! summaries, digests, entries), each over the round's plan.

use std::collections::{BTreeSet, HashMap};

use tokio_postgres::types::ToSql;

use super::cells::{Grouped, CLIENT_BUCKET_MIN};
use super::packed::Packed;
use super::pieces::{in_pieces, Pieces};
use super::plan::{
    bucket_sql, buckets, from_sql, stream_bound, Buckets, PrefixFilter, StreamBound,
};
use super::sql::wrap_sql;
use super::PgSource;
use crate::recon::{Answer, Entry, HashCount, Key, PgHash64, Query, Range, Summary, Value};
use crate::source::{SourceError, TableInfo};

/// The kinds of query a round may hold, in the order they are answered (each kind in one
/// statement).
#[derive(Clone, Copy, PartialEq, Eq)]
enum QueryKind {
    Bounds,
    Summary,
    Digests,
    Entries,
}

impl QueryKind {
    const ORDER: [QueryKind; 4] = [
        QueryKind::Bounds,
        QueryKind::Summary,
        QueryKind::Digests,
        QueryKind::Entries,
    ];

    fn of(q: &Query) -> Self {
        match q {
            Query::Bounds { .. } => QueryKind::Bounds,
            Query::Summary { .. } => QueryKind::Summary,
            Query::Digests { .. } => QueryKind::Digests,
            Query::Entries { .. } => QueryKind::Entries,
        }
    }
}

impl PgSource {
    /// Answers one round of the descent for `model`: one statement per kind of query, or, with
    /// `--statement-rows`, one per piece of the table (sequential scans) or per group of ranges
    /// (index range scans).
    pub async fn answer(
        &mut self,
        model: &str,
        table: &TableInfo,
        batch: &[Query],
    ) -> Result<Vec<Answer<PgHash64>>, SourceError> {
        let mut answers: Vec<Option<Answer<PgHash64>>> = vec![None; batch.len()];
        for kind in QueryKind::ORDER {
            let idx: Vec<usize> = (0..batch.len())
                .filter(|&i| QueryKind::of(&batch[i]) == kind)
                .collect();
            if idx.is_empty() {
                continue;
            }
            let ranges: Vec<&Range> = idx.iter().map(|&i| batch[i].range()).collect();
            let scan = if kind == QueryKind::Summary {
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
            let groups = if b.ranges.is_some() {
                self.range_groups(model, &ranges)
            } else {
                std::iter::once(0..ranges.len()).collect()
            };
            let filled = if groups.len() == 1 {
                self.fill(model, table, kind, batch, &idx, &ranges, &b)
                    .await?
            } else {
                // Index range scans in groups of about `--statement-rows` rows; each group's
                // ranges keep their plan (a subset of base36 bounds is base36).
                tracing::debug!(node = %self.node, model, groups = groups.len(), "range groups");
                let mut filled = Vec::with_capacity(ranges.len());
                for g in groups {
                    let sub = &ranges[g.clone()];
                    let sub_b = buckets(model, sub, true);
                    filled.extend(
                        self.fill(model, table, kind, batch, &idx[g], sub, &sub_b)
                            .await?,
                    );
                }
                filled
            };
            if kind == QueryKind::Summary {
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

    /// The answers to the queries `idx` of `batch` (all of `kind`, over `ranges`, planned as
    /// `b`): one statement, or one per piece of the table added up. A summary round filtered by
    /// key prefix is repeated unfiltered if the filter missed rows.
    #[allow(clippy::too_many_arguments)]
    async fn fill(
        &mut self,
        model: &str,
        table: &TableInfo,
        kind: QueryKind,
        batch: &[Query],
        idx: &[usize],
        ranges: &[&Range],
        b: &Buckets,
    ) -> Result<Vec<Answer<PgHash64>>, SourceError> {
        let whole = ranges.len() == 1
            && stream_bound(model, &ranges[0].start) == StreamBound::Below
            && ranges[0]
                .end
                .as_ref()
                .is_none_or(|e| stream_bound(model, e) == StreamBound::Above);
        if kind == QueryKind::Bounds {
            if let Some(cached) = self.cached_bounds(model, whole) {
                return Ok(vec![cached]);
            }
        }
        let with_bounds = idx
            .iter()
            .any(|&i| matches!(batch[i], Query::Summary { bounds: true, .. }));
        let only: Vec<Option<&BTreeSet<u64>>> = idx
            .iter()
            .map(|&i| match &batch[i] {
                Query::Entries { only, .. } => only.as_ref(),
                _ => None,
            })
            .collect();
        let mut filter = match kind {
            QueryKind::Summary => b
                .scan_prefix
                .and_then(|_| self.prefix_filter(model, ranges)),
            _ => None,
        };
        let grouped = match kind {
            QueryKind::Summary => self.grouped(model, b, with_bounds),
            _ => None,
        };
        let cut = if b.ranges.is_some() {
            Pieces::whole()
        } else {
            self.pieces(model).await?
        };
        loop {
            let mut acc: Option<Vec<Answer<PgHash64>>> = None;
            let mut filtered = 0u64;
            in_pieces!(self, cut.clone(), |pieces, piece| {
                let (answers, passed) = match kind {
                    QueryKind::Bounds => (self.bounds(model, b).await?, 0),
                    QueryKind::Summary => match &grouped {
                        Some(g) => self.grid_round(model, table, g, filter.as_ref()).await?,
                        None => {
                            self.summaries(model, table, b, with_bounds, filter.as_ref())
                                .await?
                        }
                    },
                    QueryKind::Digests => (self.digests(model, table, b).await?, 0),
                    QueryKind::Entries => (self.entries(model, table, b, &only).await?, 0),
                };
                filtered += passed;
                acc = Some(match acc.take() {
                    None => answers,
                    Some(prev) => add_answers(prev, answers),
                });
            });
            let mut answers = acc.unwrap_or_default();
            if cut.cut() && kind == QueryKind::Entries {
                for a in &mut answers {
                    if let Answer::Entries(list) = a {
                        list.sort_by(|x, y| x.key.cmp(&y.key));
                    }
                }
            }
            match filter.take() {
                Some(f) if filtered != f.expected_rows => {
                    // A row outside base36 escaped the filter: ask again without it.
                    tracing::debug!(
                        node = %self.node,
                        model,
                        found = filtered,
                        expected = f.expected_rows,
                        "prefix filter missed rows; repeating the round unfiltered"
                    );
                }
                _ => return Ok(answers),
            }
        }
    }

    /// How a summary round is answered by prefix groups assigned here (see [`super::cells`]),
    /// when it should be.
    fn grouped<'b>(&self, model: &str, b: &'b Buckets, with_bounds: bool) -> Option<Grouped<'b>> {
        let len = b.scan_prefix?;
        if with_bounds || b.thresholds.len() < CLIENT_BUCKET_MIN {
            return None;
        }
        let shape = self.shapes.get(model)?;
        let (first, _) = shape.bounds.clone().flatten()?;
        let head = first.get(..shape.common_prefix.min(len))?.to_string();
        Some(Grouped { b, len, head })
    }

    /// A grouped summary round's answers, and the rows the prefix filter let through.
    async fn grid_round(
        &mut self,
        model: &str,
        table: &TableInfo,
        g: &Grouped<'_>,
        filter: Option<&PrefixFilter>,
    ) -> Result<(Vec<Answer<PgHash64>>, u64), SourceError> {
        let (mut by_bucket, filtered) = self.grouped_summaries(model, table, g, filter).await?;
        Ok((in_bucket_order(&g.b.bucket, &mut by_bucket), filtered))
    }

    pub(super) fn params<'a>(
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
    pub(super) async fn round_query(
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
    pub(super) fn push_hi<'a>(b: &'a Buckets, params: &mut Vec<&'a (dyn ToSql + Sync)>) {
        if let Some(plan) = &b.ranges {
            params.push(&plan.hi);
        }
    }

    pub(super) fn threshold_texts(b: &Buckets) -> Vec<String> {
        if b.binary {
            Vec::new()
        } else {
            b.thresholds
                .iter()
                .map(|t| String::from_utf8_lossy(t).into_owned())
                .collect()
        }
    }

    pub(super) async fn summaries(
        &mut self,
        model: &str,
        table: &TableInfo,
        b: &Buckets,
        with_bounds: bool,
        filter: Option<&PrefixFilter>,
    ) -> Result<(Vec<Answer<PgHash64>>, u64), SourceError> {
        let wanted: Vec<i32> = b.bucket.iter().flatten().copied().collect();
        let mut by_bucket: HashMap<i32, Summary<PgHash64>> = HashMap::new();
        let mut passed = 0;
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
                    table = self.table_sql(model),
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
                    from = from_sql(b, &self.table_sql(model), 4),
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
            passed = filtered.unwrap_or(0).max(0) as u64;
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
        Ok((in_bucket_order(&b.bucket, &mut by_bucket), passed))
    }

    /// The whole table's count and first and last id: the row check (which runs before every
    /// descent) read them in this snapshot already, so only narrower bounds are asked of
    /// Postgres.
    fn cached_bounds(&self, model: &str, whole: bool) -> Option<Answer<PgHash64>> {
        let (rows, bounds) = self
            .shapes
            .get(model)
            .and_then(|s| s.rows.zip(s.bounds.clone()))
            .filter(|_| whole)?;
        let bounds = bounds.map(|(f, l)| (Key::new(model, &f), Key::new(model, &l)));
        Some(Answer::Bounds {
            count: rows,
            bounds,
        })
    }

    /// Count and first/last stream id per range: a scan without hashing (the descent's first
    /// look, `DescentParams::root_bounds_only`).
    pub(super) async fn bounds(
        &mut self,
        model: &str,
        b: &Buckets,
    ) -> Result<Vec<Answer<PgHash64>>, SourceError> {
        let wanted: Vec<i32> = b.bucket.iter().flatten().copied().collect();
        let mut by_bucket: HashMap<i32, (u64, Option<(Key, Key)>)> = HashMap::new();
        if !wanted.is_empty() {
            // `$1` (the model) is unused here but typed, so all statements share parameters.
            let sql = format!(
                "SELECT bucket, count(*)::bigint, min(sid), max(sid) \
                 FROM (SELECT {bucket} AS bucket, stream_id COLLATE \"C\" AS sid FROM {from}) s \
                 WHERE bucket = ANY($3::int[]) AND $1::text IS NOT NULL GROUP BY bucket",
                bucket = bucket_sql(b, 2),
                from = from_sql(b, &self.table_sql(model), 4),
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

    pub(super) async fn digests(
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
                from = from_sql(b, &self.table_sql(model), 4),
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

    pub(super) async fn entries(
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
                from = from_sql(b, &self.table_sql(model), 6),
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
}

/// Two pieces' answers to the same queries, added up range by range: counts and sums add,
/// bounds widen, digests and entries join (entries are put back in key order by the caller).
fn add_answers(a: Vec<Answer<PgHash64>>, b: Vec<Answer<PgHash64>>) -> Vec<Answer<PgHash64>> {
    let widen = |x: Option<(Key, Key)>, y: Option<(Key, Key)>| match (x, y) {
        (Some((f1, l1)), Some((f2, l2))) => Some((f1.min(f2), l1.max(l2))),
        (x, None) => x,
        (None, y) => y,
    };
    a.into_iter()
        .zip(b)
        .map(|pair| match pair {
            (
                Answer::Bounds { count, bounds },
                Answer::Bounds {
                    count: c2,
                    bounds: b2,
                },
            ) => Answer::Bounds {
                count: count + c2,
                bounds: widen(bounds, b2),
            },
            (Answer::Summary(s1), Answer::Summary(s2)) => Answer::Summary(Summary {
                fingerprint: HashCount {
                    hash: PgHash64(s1.fingerprint.hash.0.wrapping_add(s2.fingerprint.hash.0)),
                    count: s1.fingerprint.count + s2.fingerprint.count,
                },
                bounds: widen(s1.bounds, s2.bounds),
            }),
            (Answer::Digests(mut d1), Answer::Digests(d2)) => {
                d1.extend(d2);
                Answer::Digests(d1)
            }
            (Answer::Entries(mut e1), Answer::Entries(e2)) => {
                e1.extend(e2);
                Answer::Entries(e1)
            }
            // Each piece answers the same queries in the same order.
            (a, _) => a,
        })
        .collect()
}

/// A summary round's answers in the ranges' order: each range's bucket summed by the server,
/// or an empty summary for a range no row fell into.
fn in_bucket_order(
    buckets: &[Option<i32>],
    by_bucket: &mut HashMap<i32, Summary<PgHash64>>,
) -> Vec<Answer<PgHash64>> {
    buckets
        .iter()
        .map(|bk| {
            Answer::Summary(bk.and_then(|k| by_bucket.remove(&k)).unwrap_or(Summary {
                fingerprint: HashCount::zero(),
                bounds: None,
            }))
        })
        .collect()
}
