//! Whole-table statements cut into pieces (`--statement-rows`): a statement that would read a
//! whole table (the row check, a round answered by a sequential scan, a download) runs once
//! per contiguous range of the table's heap blocks instead, each a TID range scan
//! (`ctid >= '(a,0)' AND ctid < '(b,0)'`, PostgreSQL 14 and later) reading about the rows
//! asked for; the pieces' answers are added up here. Every piece runs in the session's one
//! snapshot, so together they read exactly what one statement would have.
//!
//! Why: a production server may cap statements (`statement_timeout`), and the first level of a
//! 10^6-row table is one ~1–3 s scan (README, Benchmarks). The price is one round trip and one
//! answer per piece (the first level's 256 sums come back once per piece), so it is off unless
//! asked for.

use super::sql::quote_ident;
use super::PgSource;
use crate::recon::Range;
use crate::source::SourceError;

/// Runs `$body` once per piece of `$pieces` (once, on the whole table, when they are not cut)
/// with `$src.piece` set to it, so [`PgSource::table_sql`] names that piece; all inside one
/// snapshot ([`PgSource::begin_pieces`]), which is closed whether or not the body failed.
/// The body may use `?`; the first error stops the loop and is returned after the snapshot
/// is closed. Evaluates to the pieces, which the body can tell what it saw (`$cut.saw`).
///
/// A macro, not a method taking an async closure: such a closure's future borrows the source
/// for a lifetime rustc cannot prove `Send` for every caller ("implementation of `Send` is not
/// general enough", tried with `AsyncFnMut`), and the source's futures run on tokio's workers.
macro_rules! in_pieces {
    ($src:expr, $pieces:expr, |$cut:ident, $piece:ident| $body:block) => {{
        let mut $cut = $pieces;
        let opened = $src.begin_pieces(&$cut).await?;
        let run = async {
            while let Some($piece) = $cut.next_piece() {
                $src.piece = $piece;
                $body
            }
            Ok::<(), SourceError>(())
        }
        .await;
        let ended = $src.end_pieces(opened).await;
        run?;
        ended?;
        $cut
    }};
}
pub(super) use in_pieces;

/// Rows per 8 KiB heap block assumed for a table the server has no statistics for
/// (`reltuples` unknown): ComposeDB rows with their content take 200–400 bytes. Only the
/// first piece of such a table is sized by it; later ones by the rows the pieces met. Too
/// high makes that first piece read fewer rows than asked (one more statement), too low makes
/// it read more (a longer first statement).
pub(super) const DEFAULT_ROWS_PER_BLOCK: f64 = 30.0;

/// The oldest server with TID range scans (PostgreSQL 14): on older ones each piece would be a
/// sequential scan of the whole table, filtered.
pub(super) const MIN_SERVER_VERSION: i32 = 140_000;

/// A contiguous range of a table's heap blocks; `end: None` reaches past the last block (rows
/// the snapshot sees cannot lie past the blocks counted in it, but an open end costs nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Piece {
    pub(super) start: u64,
    pub(super) end: Option<u64>,
}

impl Piece {
    /// The rows of `table` (a quoted identifier) in this piece, under the table's own name so
    /// the statement around it reads as it would on the table.
    fn sql(&self, table: &str) -> String {
        match self.end {
            Some(end) => format!(
                "(SELECT * FROM {table} WHERE ctid >= '({},0)'::tid AND ctid < '({end},0)'::tid) AS {table}",
                self.start
            ),
            None => format!(
                "(SELECT * FROM {table} WHERE ctid >= '({},0)'::tid) AS {table}",
                self.start
            ),
        }
    }
}

/// The pieces one whole-table statement is cut into, sized as it goes: each piece spans the
/// blocks that should hold `rows` rows at the density seen so far.
#[derive(Clone, Debug)]
pub(super) struct Pieces {
    /// `None`: not cut (one statement on the table).
    rows: Option<u64>,
    blocks: u64,
    next: u64,
    rows_per_block: f64,
    /// Rows and blocks of the bounded pieces answered, from which the density is learned.
    seen: (u64, u64),
    finished: bool,
}

impl Pieces {
    /// One statement on the whole table.
    pub(super) fn whole() -> Self {
        Self {
            rows: None,
            blocks: 0,
            next: 0,
            rows_per_block: DEFAULT_ROWS_PER_BLOCK,
            seen: (0, 0),
            finished: false,
        }
    }

    /// Pieces of about `rows` rows over a table of `blocks` heap blocks holding about
    /// `rows_per_block` rows each.
    pub(super) fn new(rows: u64, blocks: u64, rows_per_block: f64) -> Self {
        Self {
            rows: Some(rows.max(1)),
            blocks,
            next: 0,
            rows_per_block: if rows_per_block.is_finite() && rows_per_block > 0.0 {
                rows_per_block
            } else {
                DEFAULT_ROWS_PER_BLOCK
            },
            seen: (0, 0),
            finished: false,
        }
    }

    /// The next piece: `Some(None)` is the whole table (not cut), `None` the end.
    pub(super) fn next_piece(&mut self) -> Option<Option<Piece>> {
        if self.finished {
            return None;
        }
        let Some(rows) = self.rows else {
            self.finished = true;
            return Some(None);
        };
        let step = ((rows as f64 / self.rows_per_block).floor() as u64).max(1);
        let start = self.next;
        let end = start.saturating_add(step);
        if end >= self.blocks {
            self.finished = true;
            return Some(Some(Piece { start, end: None }));
        }
        self.next = end;
        Some(Some(Piece {
            start,
            end: Some(end),
        }))
    }

    /// The rows `piece` held: later pieces are sized by the density seen so far.
    pub(super) fn saw(&mut self, piece: Option<Piece>, rows: u64) {
        let Some(Piece {
            start,
            end: Some(end),
        }) = piece
        else {
            return;
        };
        self.seen.0 += rows;
        self.seen.1 += end - start;
        if self.seen.0 > 0 {
            self.rows_per_block = self.seen.0 as f64 / self.seen.1 as f64;
        }
    }

    /// Rows per block learned so far (`None`: nothing bounded was counted).
    pub(super) fn learned(&self) -> Option<f64> {
        (self.seen.0 > 0).then(|| self.seen.0 as f64 / self.seen.1 as f64)
    }

    /// More than one statement.
    pub(super) fn cut(&self) -> bool {
        self.rows.is_some()
    }
}

impl PgSource {
    /// What a statement reads as `model`'s table: the table, or the current piece of it.
    pub(super) fn table_sql(&self, model: &str) -> String {
        let table = quote_ident(model);
        match self.piece {
            Some(p) => p.sql(&table),
            None => table,
        }
    }

    /// The pieces a whole-table statement on `model` is cut into: the table itself unless
    /// `--statement-rows` is set. The table's size in blocks is read once per model, inside
    /// the snapshot; the density comes from the row check's counts when it ran, else from the
    /// server's statistics, else [`DEFAULT_ROWS_PER_BLOCK`].
    pub(super) async fn pieces(&mut self, model: &str) -> Result<Pieces, SourceError> {
        let Some(rows) = self.statement_rows else {
            return Ok(Pieces::whole());
        };
        let known = self.shapes.get(model).and_then(|s| s.heap);
        let (blocks, stats) = match known {
            Some(heap) => heap,
            None => {
                let sql = "SELECT (pg_relation_size(c.oid) / current_setting('block_size')::int8)::int8, \
                                  c.reltuples::float8, c.relpages::int8 \
                           FROM pg_class c WHERE c.oid = $1::text::regclass";
                let table = quote_ident(model);
                let found = self
                    .query("reading the table's size in blocks", sql, &[&table])
                    .await?;
                let row = found.first().ok_or_else(|| {
                    self.node_error(format!("model {model}: its table is not in pg_class"))
                })?;
                let get =
                    |e: tokio_postgres::Error| self.error("reading the table's size", sql, &e);
                let blocks: i64 = row.try_get(0).map_err(get)?;
                let tuples: f64 = row.try_get(1).map_err(get)?;
                let pages: i64 = row.try_get(2).map_err(get)?;
                self.bytes_received += 24;
                let stats = (tuples > 0.0 && pages > 0).then(|| tuples / pages as f64);
                let heap = (blocks.max(0) as u64, stats);
                self.shapes.entry(model.to_string()).or_default().heap = Some(heap);
                heap
            }
        };
        let density = self
            .shapes
            .get(model)
            .and_then(|s| s.rows_per_block)
            .or(stats)
            .unwrap_or(DEFAULT_ROWS_PER_BLOCK);
        Ok(Pieces::new(rows, blocks, density))
    }

    /// Keeps the density `pieces` learned for `model`'s next statements.
    pub(super) fn learn(&mut self, model: &str, pieces: &Pieces) {
        if let Some(d) = pieces.learned() {
            self.shapes
                .entry(model.to_string())
                .or_default()
                .rows_per_block = Some(d);
        }
    }

    /// Opens a snapshot for the pieces of one statement when none is open (reads after
    /// [`PgSource::end_snapshot`]), so they still read one consistent table: a row updated
    /// between two pieces could otherwise be read twice or not at all. Returns whether it
    /// opened one ([`PgSource::end_pieces`] closes it).
    pub(super) async fn begin_pieces(&mut self, pieces: &Pieces) -> Result<bool, SourceError> {
        if !pieces.cut() || self.in_snapshot {
            return Ok(false);
        }
        let sql = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
        self.statements += 1;
        self.client
            .batch_execute(sql)
            .await
            .map_err(|e| self.error("starting a snapshot for a statement in pieces", sql, &e))?;
        Ok(true)
    }

    /// Ends what [`PgSource::begin_pieces`] opened.
    pub(super) async fn end_pieces(&mut self, opened: bool) -> Result<(), SourceError> {
        self.piece = None;
        if !opened {
            return Ok(());
        }
        let sql = "COMMIT";
        self.statements += 1;
        self.client
            .batch_execute(sql)
            .await
            .map_err(|e| self.error("ending a snapshot for a statement in pieces", sql, &e))
    }

    /// The round's ranges (positions in `ranges`) in consecutive groups whose rows, estimated
    /// from the last round's counts, stay within `--statement-rows`: a round of index range
    /// scans answered one group per statement. One group when the option is off.
    pub(super) fn range_groups(
        &self,
        model: &str,
        ranges: &[&Range],
    ) -> Vec<std::ops::Range<usize>> {
        let (Some(limit), Some(shape)) = (self.statement_rows, self.shapes.get(model)) else {
            return std::iter::once(0..ranges.len()).collect();
        };
        let estimates = shape.estimate_each(ranges);
        let mut groups = Vec::new();
        let (mut start, mut sum) = (0, 0u64);
        for (i, e) in estimates.into_iter().enumerate() {
            if i > start && sum.saturating_add(e) > limit {
                groups.push(start..i);
                (start, sum) = (i, 0);
            }
            sum = sum.saturating_add(e);
        }
        groups.push(start..ranges.len());
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(mut p: Pieces, rows_in: impl Fn(Piece) -> u64) -> Vec<Option<Piece>> {
        let mut out = Vec::new();
        while let Some(piece) = p.next_piece() {
            if let Some(q) = piece {
                p.saw(piece, rows_in(q));
            }
            out.push(piece);
            assert!(out.len() < 10_000, "unbounded");
        }
        out
    }

    #[test]
    fn pieces_cover_every_block_once_and_learn_the_density() {
        // 1,000 blocks of 100 rows each, first sized for 30 rows a block: 200 rows a piece.
        let got = all(Pieces::new(200, 1000, 30.0), |p| {
            (p.end.unwrap_or(1000).min(1000) - p.start) * 100
        });
        let first = got[0].unwrap();
        assert_eq!(
            first,
            Piece {
                start: 0,
                end: Some(6)
            }
        );
        // Learned 100 rows a block: two blocks a piece from then on.
        assert_eq!(
            got[1].unwrap(),
            Piece {
                start: 6,
                end: Some(8)
            }
        );
        let mut next = 0;
        for p in &got {
            let p = p.unwrap();
            assert_eq!(p.start, next, "{got:?}");
            next = p.end.unwrap_or(u64::MAX);
        }
        assert_eq!(next, u64::MAX, "the last piece is open-ended");
        assert_eq!(got.len(), 1 + (1000 - 6) / 2);
    }

    #[test]
    fn whole_tables_and_empty_tables_are_one_statement() {
        assert_eq!(all(Pieces::whole(), |_| 0), vec![None]);
        assert_eq!(
            all(Pieces::new(10, 0, 30.0), |_| 0),
            vec![Some(Piece {
                start: 0,
                end: None
            })]
        );
        // A density of nothing (an empty first piece) keeps the last one.
        let got = all(Pieces::new(30, 5, 30.0), |_| 0);
        assert_eq!(got.len(), 5);
        // Nonsense statistics fall back to the default.
        let p = Pieces::new(60, 100, f64::NAN);
        assert_eq!(p.rows_per_block, DEFAULT_ROWS_PER_BLOCK);
    }

    #[test]
    fn a_piece_reads_under_the_table_name() {
        let p = Piece {
            start: 3,
            end: Some(9),
        };
        assert_eq!(
            p.sql("\"m\""),
            "(SELECT * FROM \"m\" WHERE ctid >= '(3,0)'::tid AND ctid < '(9,0)'::tid) AS \"m\""
        );
    }
}
