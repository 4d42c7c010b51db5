//! Whole-table and per-stream reads: the model list, downloads, the row check, the re-check,
//! tips for verification, rows changed since a watermark.

use std::collections::{BTreeMap, HashMap};

use super::pieces::in_pieces;
use super::plan::plain;
use super::sql::quote_ident;

use super::{PgSource, INVALID_ROWS_LISTED};
use crate::recon::{Entry, Key, Value};
use crate::source::rows::RowContent;
use crate::source::{ModelState, RowCheck, SourceError, TableInfo};

impl PgSource {
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

    /// Download mode: every row's stream id and row hash (computed by Postgres as in push-down),
    /// streamed; the tips of the few differing rows are read later with [`PgSource::rows_of`].
    pub async fn download_hashes(
        &mut self,
        model: &str,
        table: &TableInfo,
    ) -> Result<super::hashed::Downloaded, SourceError> {
        let mut out = super::hashed::Downloaded::default();
        let mut too_large = None;
        let pieces = self.pieces(model).await?;
        in_pieces!(self, pieces, |cut, piece| {
            let sql = format!(
                "SELECT stream_id, {hash} FROM {table}",
                hash = self.hash_sql(&table.custom),
                table = self.table_sql(model),
            );
            self.stream_rows("downloading row hashes", &sql, &[&model], |row| {
                let s: &str = row.try_get(0)?;
                let h: i64 = row.try_get(1)?;
                if let Err(m) = out.push(s.as_bytes(), h as u64) {
                    too_large.get_or_insert(m);
                }
                Ok(s.len() as u64 + 8)
            })
            .await?;
        });
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
        let mut out = Vec::new();
        let pieces = self.pieces(model).await?;
        in_pieces!(self, pieces, |cut, piece| {
            let sql = format!(
                "SELECT stream_id, tip, {digest} FROM {table}",
                digest = self.digest_sql(&table.custom),
                table = self.table_sql(model),
            );
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
        });
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
        let mut counted = Counted::default();
        let pieces = self.pieces(model).await?;
        let pieces = in_pieces!(self, pieces, |cut, piece| {
            let c = self.count_rows(model, &suspicious).await?;
            let rows = c.total;
            counted.add(c);
            cut.saw(piece, rows);
        });
        self.learn(model, &pieces);
        let Counted {
            total,
            bad,
            first,
            last,
        } = counted;
        self.rows_scanned += total;
        let shape = self.shapes.entry(model.to_string()).or_default();
        shape.rows = Some(total);
        shape.common_prefix = match (&first, &last) {
            (Some(f), Some(l)) => f.bytes().zip(l.bytes()).take_while(|(x, y)| x == y).count(),
            _ => 0,
        };
        shape.bounds = Some(first.zip(last));
        let out = if bad > 0 {
            self.list_invalid_rows(model, &suspicious).await?
        } else {
            Vec::new()
        };
        let bad = bad as i64;
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
        let not_listed = (bad.max(0) as u64).saturating_sub(out.len() as u64);
        self.not_listed.insert(model.to_string(), not_listed);
        Ok(out)
    }

    /// The row check over the table or the current piece of it: rows, suspicious rows, and
    /// the first and last id in byte order.
    async fn count_rows(&mut self, model: &str, suspicious: &str) -> Result<Counted, SourceError> {
        let (table, from) = (quote_ident(model), self.table_sql(model));
        // First and last id: from the primary key where the collation orders ids like bytes
        // (two index probes on the whole table, whatever the piece), else compared row by row
        // in byte order (0.2 s on 10^6 rows).
        let sql = if self.collation_ok {
            format!(
                "SELECT count(*)::int8, (count(*) FILTER (WHERE {suspicious}))::int8, \
                        (SELECT min(stream_id) FROM {table}), (SELECT max(stream_id) FROM {table}) \
                 FROM {from}"
            )
        } else {
            format!(
                "SELECT count(*)::int8, (count(*) FILTER (WHERE {suspicious}))::int8, \
                        min(stream_id COLLATE \"C\"), max(stream_id COLLATE \"C\") FROM {from}"
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
        Ok(Counted {
            total: total.max(0) as u64,
            bad: bad.max(0) as u64,
            first,
            last,
        })
    }

    /// Up to [`INVALID_ROWS_LISTED`] suspicious rows, first in byte order (over every piece).
    async fn list_invalid_rows(
        &mut self,
        model: &str,
        suspicious: &str,
    ) -> Result<Vec<(String, Option<String>)>, SourceError> {
        let mut out: Vec<(String, Option<String>)> = Vec::new();
        let pieces = self.pieces(model).await?;
        in_pieces!(self, pieces, |cut, piece| {
            let sql = format!(
                "SELECT stream_id, tip FROM {} WHERE {suspicious} \
                 ORDER BY stream_id COLLATE \"C\" LIMIT {INVALID_ROWS_LISTED}",
                self.table_sql(model)
            );
            let rows = self.query("listing invalid rows", &sql, &[]).await?;
            for row in rows {
                let get = |e: tokio_postgres::Error| self.error("reading invalid rows", &sql, &e);
                let s: String = row.try_get(0).map_err(get)?;
                let tip: Option<String> = row.try_get(1).map_err(get)?;
                self.bytes_received += (s.len() + tip.as_ref().map_or(0, String::len)) as u64;
                out.push((s, tip));
            }
            // Each piece lists its first rows; the first of all are among them.
            out.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.truncate(INVALID_ROWS_LISTED as usize);
        });
        Ok(out)
    }

    /// Rows of `model` that failed the last invalid-row check but were not listed.
    pub fn invalid_rows_not_listed(&self, model: &str) -> u64 {
        self.not_listed.get(model).copied().unwrap_or(0)
    }

    /// Ends the snapshot transaction: later statements run each in its own (read-only)
    /// transaction until [`PgSource::refresh_snapshot`] starts a new one. The audit calls it
    /// once the comparison needs no more consistent reads, so the session does not sit
    /// `idle in transaction` through the settle pause and the HTTP phases (a server's
    /// `idle_in_transaction_session_timeout` would end it; vacuum would be held back).
    pub async fn end_snapshot(&mut self) -> Result<(), SourceError> {
        if !self.in_snapshot {
            return Ok(());
        }
        let sql = "COMMIT";
        self.statements += 1;
        self.client
            .batch_execute(sql)
            .await
            .map_err(|e| self.error("ending the read-only snapshot", sql, &e))?;
        self.in_snapshot = false;
        Ok(())
    }

    /// Starts a new read-only snapshot, for the settle re-check: the crawl's snapshot would
    /// show the same (possibly in-flight) state again.
    pub async fn refresh_snapshot(&mut self) -> Result<(), SourceError> {
        let sql = if self.in_snapshot {
            "ROLLBACK; BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
        } else {
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
        };
        self.statements += 1;
        self.client
            .batch_execute(sql)
            .await
            .map_err(|e| self.error("starting a new snapshot for the re-check", sql, &e))?;
        self.in_snapshot = true;
        Ok(())
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
    ) -> Result<Vec<RowContent>, SourceError> {
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
            let r = RowContent {
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
    /// scan with a top-N sort: the rows with the `n` smallest `random()` keys; cut into pieces,
    /// the `n` smallest over every piece's `n` smallest, as uniform as one scan). Rows with a
    /// NULL tip are left out (they are `invalid_row` already).
    pub async fn tips(
        &mut self,
        model: &str,
        sample: Option<u64>,
    ) -> Result<Vec<(String, String)>, SourceError> {
        let mut out: Vec<(f64, String, String)> = Vec::new();
        let pieces = self.pieces(model).await?;
        in_pieces!(self, pieces, |cut, piece| {
            let table = self.table_sql(model);
            let sql = match sample {
                Some(n) => format!(
                    "SELECT stream_id, tip, r FROM (SELECT stream_id, tip, random() AS r \
                     FROM {table} WHERE tip IS NOT NULL) s ORDER BY r LIMIT {n}"
                ),
                None => {
                    format!("SELECT stream_id, tip, 0::float8 FROM {table} WHERE tip IS NOT NULL")
                }
            };
            let rows = self.query("reading tips to verify", &sql, &[]).await?;
            for row in rows {
                let get = |e: tokio_postgres::Error| self.error("reading tips", &sql, &e);
                let s: String = row.try_get(0).map_err(get)?;
                let tip: String = row.try_get(1).map_err(get)?;
                let r: f64 = row.try_get(2).map_err(get)?;
                self.bytes_received += (s.len() + tip.len()) as u64;
                out.push((r, s, tip));
            }
            if let Some(n) = sample {
                out.sort_by(|a, b| a.0.total_cmp(&b.0));
                out.truncate(usize::try_from(n).unwrap_or(usize::MAX));
            }
        });
        Ok(out.into_iter().map(|(_, s, tip)| (s, tip)).collect())
    }

    /// Stream ids of `model`'s rows with `updated_at` at or after `since_ms` (unix ms; all rows
    /// when `None`), and the newest `updated_at` of the table (the next watermark).
    pub async fn changed_since(
        &mut self,
        model: &str,
        since_ms: Option<i64>,
    ) -> Result<(Vec<String>, Option<i64>), SourceError> {
        let mut out = Vec::new();
        let mut newest: Option<i64> = None;
        let pieces = self.pieces(model).await?;
        in_pieces!(self, pieces, |cut, piece| {
            let sql = format!(
                "SELECT stream_id, (extract(epoch FROM updated_at) * 1000)::int8 FROM {} \
                 WHERE $1::int8 IS NULL OR updated_at >= to_timestamp($1::int8 / 1000.0)",
                self.table_sql(model)
            );
            let rows = self
                .query(
                    "reading rows changed since the last cycle",
                    &sql,
                    &[&since_ms],
                )
                .await?;
            for row in rows {
                let get = |e: tokio_postgres::Error| self.error("reading changed rows", &sql, &e);
                let s: String = row.try_get(0).map_err(get)?;
                let at: Option<i64> = row.try_get(1).map_err(get)?;
                self.bytes_received += s.len() as u64 + 8;
                newest = newest.max(at);
                out.push(s);
            }
        });
        if since_ms.is_some() {
            // The newest row may be older than the watermark asked for: keep the watermark.
            newest = newest.max(since_ms);
        }
        Ok((out, newest))
    }

    /// Ends the snapshot transaction if one is open (read-only: nothing to commit).
    pub async fn close(self) {
        if self.in_snapshot {
            let _ = self.client.batch_execute("ROLLBACK").await;
        }
    }
}

/// The row check's counts, over one piece or added up over all.
#[derive(Default)]
struct Counted {
    total: u64,
    bad: u64,
    first: Option<String>,
    last: Option<String>,
}

impl Counted {
    fn add(&mut self, c: Counted) {
        self.total += c.total;
        self.bad += c.bad;
        // Byte order, as the ids were compared in SQL (`COLLATE "C"` or a checked collation).
        self.first = match (self.first.take(), c.first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last = match (self.last.take(), c.last) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}
