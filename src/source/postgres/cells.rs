//! Rounds with many narrow ranges (the descent's prefix grid, `DescentParams::grid`): the node
//! sums rows per key prefix in one scan and returns the prefix groups; they are assigned to the
//! ranges here. In SQL, `width_bucket` over a text array walks the array to reach each probe
//! (measured 7 µs a row with 2,600 bounds), i.e. seconds for 15,000 grid cells; here it is a
//! binary search. A grid cell is one prefix group, so the bytes are those of the per-range
//! answer (~21 bytes a group against 20 a range).

use std::collections::HashMap;

use tokio_postgres::types::ToSql;

use super::packed::Packed;
use super::plan::{Buckets, PrefixFilter};
use super::sql::wrap_sql;
use super::PgSource;
use crate::recon::{HashCount, PgHash64, Summary};
use crate::source::{SourceError, TableInfo};

/// A summary round with at least this many range bounds assigns prefix groups to ranges here
/// rather than in SQL. Below it `width_bucket` in SQL is cheap and the groups would cost more
/// bytes than the ranges (the first level: ~1,300 groups for 256 ranges); far above it SQL
/// spends seconds walking the bounds array.
pub(super) const CLIENT_BUCKET_MIN: usize = 1024;

/// How a grouped round's answer maps back: the common prefix stripped from every group.
pub(super) struct Grouped<'a> {
    pub(super) b: &'a Buckets,
    /// Prefix length of the scan (every range bound is at most this long).
    pub(super) len: usize,
    /// The stream ids' common prefix (from the row check), not sent back with each group.
    pub(super) head: String,
}

impl PgSource {
    /// Per-bucket sums of a grouped round, and the rows the prefix filter let through (the
    /// caller repeats the round unfiltered if that is not every row it expected).
    pub(super) async fn grouped_summaries(
        &mut self,
        model: &str,
        table: &TableInfo,
        g: &Grouped<'_>,
        filter: Option<&PrefixFilter>,
    ) -> Result<(HashMap<i32, Summary<PgHash64>>, u64), SourceError> {
        let (prefix_where, filtered_rows) = match filter {
            Some(f) => (
                format!(
                    "WHERE left(stream_id, {}) COLLATE \"C\" = ANY($2::text[])",
                    f.len
                ),
                "(SELECT sum(n) FROM g)::int8",
            ),
            None => ("WHERE $2::text[] IS NOT NULL".to_string(), "NULL::int8"),
        };
        // Each group: int2 length and the prefix past the common head, int8 count, int8 sum.
        let sql = format!(
            "WITH g AS MATERIALIZED ( \
                 SELECT p, count(*) AS n, sum(h) AS s \
                 FROM (SELECT left(stream_id, {len}) COLLATE \"C\" AS p, {hash} AS h \
                       FROM {table} {prefix_where} OFFSET 0) r \
                 GROUP BY p) \
             SELECT string_agg(int2send(octet_length(substr(p, {from}))::int2) \
                               || convert_to(substr(p, {from}), 'UTF8') \
                               || int8send(n) || int8send({sum}), ''::bytea ORDER BY p), \
                    {filtered_rows} \
             FROM g",
            len = g.len,
            from = g.head.len() + 1,
            hash = self.hash_sql(&table.custom),
            table = self.table_sql(model),
            sum = wrap_sql("s"),
        );
        // `$1` is the model (in the row hash), `$2` the prefix filter.
        let model_s = model.to_string();
        let prefixes: Vec<String> = filter.map(|f| f.prefixes.clone()).unwrap_or_default();
        let params: Vec<&(dyn ToSql + Sync)> = vec![&model_s, &prefixes];
        let rows = self.query("grid cell fingerprints", &sql, &params).await?;
        let get = |e: tokio_postgres::Error| self.error("reading grid cells", &sql, &e);
        let row = rows
            .first()
            .ok_or_else(|| self.node_error("grid cell fingerprints: no row returned".into()))?;
        let packed: Option<Vec<u8>> = row.try_get(0).map_err(get)?;
        let filtered: Option<i64> = row.try_get(1).map_err(get)?;
        let packed = packed.unwrap_or_default();
        self.bytes_received += packed.len() as u64;
        let wanted: std::collections::HashSet<i32> = g.b.bucket.iter().flatten().copied().collect();
        let mut by_bucket: HashMap<i32, Summary<PgHash64>> = HashMap::new();
        let mut reader = Packed(&packed);
        while !reader.is_empty() {
            let (prefix, count, sum) =
                read_group(&mut reader, &g.head).map_err(|m| self.node_error(m))?;
            self.rows_scanned += count;
            // width_bucket's rule: the number of bounds at or below the prefix, in byte order.
            let bucket =
                g.b.thresholds
                    .partition_point(|t| t.as_slice() <= prefix.as_slice());
            let bucket = i32::try_from(bucket).unwrap_or(i32::MAX);
            if !wanted.contains(&bucket) {
                continue;
            }
            let slot = by_bucket.entry(bucket).or_insert(Summary {
                fingerprint: HashCount::zero(),
                bounds: None,
            });
            slot.fingerprint.count += count;
            slot.fingerprint.hash = PgHash64(slot.fingerprint.hash.0.wrapping_add(sum));
        }
        Ok((by_bucket, filtered.unwrap_or(0).max(0) as u64))
    }
}

/// One packed group: its full prefix (head restored), row count and hash sum.
fn read_group(r: &mut Packed, head: &str) -> Result<(Vec<u8>, u64, u64), String> {
    let len = u16::from_be_bytes(r.take::<2>("a group prefix length")?) as usize;
    let mut prefix = head.as_bytes().to_vec();
    for _ in 0..len {
        prefix.push(r.take::<1>("a group prefix")?[0]);
    }
    Ok((prefix, r.u64("a group count")?, r.u64("a group sum")?))
}
