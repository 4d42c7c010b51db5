//! One ceramic-one node's event store (`<store_dir>/db.sqlite3`), read strictly read-only.
//!
//! Opened with `SQLITE_OPEN_READ_ONLY` (`mode=ro`), never written, never checkpointed: beside a
//! live node in WAL mode its data may sit entirely in `db.sqlite3-wal` (reference §9), which only
//! SQLite itself reads consistently. All reads of one audit run inside one read transaction, so
//! they see one snapshot even while the node writes; such a transaction holds back the node's WAL
//! checkpoints only for the few seconds an audit takes.
//!
//! Fingerprints are Recon's own: the per-row lanes `ahash_0..7` (sha256 of the EventId, stored by
//! the node) summed with exact integer arithmetic and reduced mod 2^32. The node itself sums with
//! SQLite's floating `TOTAL()`, which stops being exact past 2^53 per lane (~4 M rows in one
//! range); `SUM()` on integers is exact up to 2^63, i.e. for any range under 2^31 rows, and fails
//! loudly (integer overflow) rather than silently beyond that.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cid::Cid;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use thiserror::Error;

use super::event::{parse_event, EventInfo};
use super::interest::Interest;
use crate::ids::read_cid;
use crate::recon::{
    quantile_ranks, separator, Bounds, Entry, HashCount, Key, Range, RangeStore, Sha256a, Summary,
    Value,
};

/// How long a read waits on a lock held by the node (a checkpoint or a WAL restart) before it
/// fails. Too short and an audit beside a busy node fails spuriously; too long and a stuck node
/// stalls the audit for that long before it is reported unreachable.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Tables the audit reads; a file without them is not a ceramic-one store (or one older than
/// the 2024-03 schema).
const REQUIRED_TABLES: [&str; 4] = [
    "ceramic_one_event",
    "ceramic_one_block",
    "ceramic_one_event_block",
    "ceramic_one_interest",
];

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("event store {path}: {message}")]
    Open { path: String, message: String },
    #[error("event store {path}: `{sql}`: {source}")]
    Sql {
        path: String,
        sql: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("event store {path}: {message}")]
    Data { path: String, message: String },
}

/// A read-only connection to one node's `db.sqlite3`.
pub struct EventStore {
    conn: Connection,
    path: PathBuf,
}

/// A store seen through one model's key space: the [`RangeStore`] the descent asks.
pub struct ModelView<'a> {
    store: &'a EventStore,
    start: Vec<u8>,
    end: Vec<u8>,
}

impl EventStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open_err = |message: String| StoreError::Open {
            path: path.display().to_string(),
            message,
        };
        if !path.is_file() {
            return Err(open_err("no such file".into()));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let uri = format!("file:{}?mode=ro", path.display());
        let conn = Connection::open_with_flags(&uri, flags).map_err(|e| {
            open_err(format!(
                "cannot open read-only: {e} (a WAL store in a read-only directory needs its \
                 -shm file; audit a copy made with `sqlite3 db.sqlite3 \".backup copy\"`)"
            ))
        })?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| open_err(e.to_string()))?;
        let store = Self {
            conn,
            path: path.to_path_buf(),
        };
        for table in REQUIRED_TABLES {
            let sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1";
            let found: Option<i64> = store
                .conn
                .query_row(sql, [table], |r| r.get(0))
                .optional()
                .map_err(|e| store.sql(sql, e))?;
            if found.is_none() {
                return Err(open_err(format!(
                    "table {table} is missing: not a ceramic-one event store"
                )));
            }
        }
        // One snapshot for every read that follows (see the module comment).
        store
            .conn
            .execute_batch("BEGIN")
            .map_err(|e| store.sql("BEGIN", e))?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sql(&self, sql: &'static str, source: rusqlite::Error) -> StoreError {
        StoreError::Sql {
            path: self.path.display().to_string(),
            sql,
            source,
        }
    }

    fn data(&self, message: String) -> StoreError {
        StoreError::Data {
            path: self.path.display().to_string(),
            message,
        }
    }

    /// The node's own interests, decoded; an undecodable one is an error naming its bytes.
    pub fn interests(&self) -> Result<Vec<Interest>, StoreError> {
        let sql = "SELECT order_key FROM ceramic_one_interest ORDER BY order_key";
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.sql(sql, e))?;
        let keys = stmt
            .query_map([], |r| r.get::<_, Vec<u8>>(0))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.sql(sql, e))?;
        keys.iter()
            .map(|k| {
                Interest::decode(k)
                    .map_err(|m| self.data(format!("interest {}: {m}", hex::encode(k))))
            })
            .collect()
    }

    /// The first stored EventId at or after `from`, if any (an index seek).
    pub fn first_key_from(&self, from: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let sql = "SELECT MIN(order_key) FROM ceramic_one_event WHERE order_key >= ?1";
        self.conn
            .query_row(sql, [from], |r| r.get::<_, Option<Vec<u8>>>(0))
            .map_err(|e| self.sql(sql, e))
    }

    /// Events in `[start, end)`: EventId, event CID and the node-local `delivered` (None when
    /// never delivered), in key order.
    pub fn events(
        &self,
        start: &[u8],
        end: &[u8],
    ) -> Result<Vec<(Vec<u8>, Cid, bool)>, StoreError> {
        let sql = "SELECT order_key, cid, delivered IS NOT NULL FROM ceramic_one_event \
                   WHERE order_key >= ?1 AND order_key < ?2 ORDER BY order_key";
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.sql(sql, e))?;
        let rows = stmt
            .query_map(params![start, end], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?, r.get(2)?))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.sql(sql, e))?;
        rows.into_iter()
            .map(|(key, cid, delivered)| {
                let (cid, _) = read_cid(&cid, "event cid").map_err(|e| {
                    self.data(format!("event {}: bad cid column: {e}", hex::encode(&key)))
                })?;
                Ok((key, cid, delivered))
            })
            .collect()
    }

    /// Whether the store holds the event with this CID.
    pub fn has_event(&self, cid: &Cid) -> Result<bool, StoreError> {
        let sql = "SELECT 1 FROM ceramic_one_event WHERE cid = ?1";
        self.conn
            .query_row(sql, [cid.to_bytes()], |_| Ok(()))
            .optional()
            .map(|o| o.is_some())
            .map_err(|e| self.sql(sql, e))
    }

    /// One block by CID, looked up by its multihash as the node stores blocks.
    pub fn block(&self, cid: &Cid) -> Result<Option<Vec<u8>>, StoreError> {
        let sql = "SELECT bytes FROM ceramic_one_block WHERE multihash = ?1";
        self.conn
            .query_row(sql, [cid.hash().to_bytes()], |r| r.get(0))
            .optional()
            .map_err(|e| self.sql(sql, e))
    }

    /// The event's fields, read from its blocks.
    pub fn event(&self, cid: &Cid) -> Result<EventInfo, StoreError> {
        // A failed block read must surface as the SQL error, not as "block missing".
        let failure = std::cell::RefCell::new(None);
        let lookup = |c: &Cid| match self.block(c) {
            Ok(b) => b,
            Err(e) => {
                failure.borrow_mut().get_or_insert(e);
                None
            }
        };
        let parsed = parse_event(cid, &lookup);
        match (parsed, failure.into_inner()) {
            (Ok(info), _) => Ok(info),
            (Err(_), Some(sql)) => Err(sql),
            (Err(e), None) => Err(self.data(e.to_string())),
        }
    }

    pub fn view(&self, start: Vec<u8>, end: Vec<u8>) -> ModelView<'_> {
        ModelView {
            store: self,
            start,
            end,
        }
    }
}

impl ModelView<'_> {
    /// `range` clamped to the model's key space.
    fn bounds_of(&self, range: &Range) -> (Vec<u8>, Vec<u8>) {
        let lo = range.start.as_bytes().max(self.start.as_slice()).to_vec();
        let hi = match &range.end {
            Some(e) => e.as_bytes().min(self.end.as_slice()).to_vec(),
            None => self.end.clone(),
        };
        (lo, hi)
    }

    fn rows(&self, range: &Range) -> Result<Vec<Row>, StoreError> {
        let (lo, hi) = self.bounds_of(range);
        let sql = "SELECT order_key, cid, ahash_0, ahash_1, ahash_2, ahash_3, ahash_4, ahash_5, \
                   ahash_6, ahash_7 FROM ceramic_one_event \
                   WHERE order_key >= ?1 AND order_key < ?2 ORDER BY order_key";
        let s = self.store;
        let mut stmt = s.conn.prepare_cached(sql).map_err(|e| s.sql(sql, e))?;
        stmt.query_map(params![lo, hi], |r| {
            let mut lanes = [0u32; 8];
            for (i, lane) in lanes.iter_mut().enumerate() {
                *lane = lane_of(r.get::<_, i64>(2 + i)?);
            }
            Ok((r.get(0)?, r.get(1)?, Sha256a(lanes)))
        })
        .and_then(|rows| rows.collect())
        .map_err(|e| s.sql(sql, e))
    }
}

/// One event row of a range: EventId, CID bytes, and its stored lanes.
type Row = (Vec<u8>, Vec<u8>, Sha256a);

/// A stored lane (non-negative, below 2^32 as the node writes it) as the u32 it encodes; any
/// other integer is reduced mod 2^32 exactly as the sum is.
fn lane_of(v: i64) -> u32 {
    (v.rem_euclid(1 << 32)) as u32
}

impl RangeStore for ModelView<'_> {
    type Hash = Sha256a;
    type Error = StoreError;

    fn summary(&mut self, range: &Range, bounds: bool) -> Result<Summary<Sha256a>, StoreError> {
        let (lo, hi) = self.bounds_of(range);
        let sql = "SELECT COUNT(*), SUM(ahash_0), SUM(ahash_1), SUM(ahash_2), SUM(ahash_3), \
                   SUM(ahash_4), SUM(ahash_5), SUM(ahash_6), SUM(ahash_7), MIN(order_key), \
                   MAX(order_key) FROM ceramic_one_event WHERE order_key >= ?1 AND order_key < ?2";
        let s = self.store;
        let mut stmt = s.conn.prepare_cached(sql).map_err(|e| s.sql(sql, e))?;
        stmt.query_row(params![lo, hi], |r| {
            let count: i64 = r.get(0)?;
            let mut lanes = [0u32; 8];
            for (i, lane) in lanes.iter_mut().enumerate() {
                *lane = lane_of(r.get::<_, Option<i64>>(1 + i)?.unwrap_or(0));
            }
            let first: Option<Vec<u8>> = r.get(9)?;
            let last: Option<Vec<u8>> = r.get(10)?;
            Ok(Summary {
                fingerprint: HashCount {
                    hash: Sha256a(lanes),
                    count: count.max(0) as u64,
                },
                bounds: match (bounds, first, last) {
                    (true, Some(f), Some(l)) => Some((Key::from_bytes(f), Key::from_bytes(l))),
                    _ => None,
                },
            })
        })
        .map_err(|e| s.sql(sql, e))
    }

    /// The model's event count and first/last EventId, read from the local file before the
    /// first round so the descent can size its first level (issue 15: without it a model of
    /// 10^6 events took 9 rounds, the fixed 256/16 split made for SQL push-down). One pass
    /// over the model's slice of the primary key and nothing sent over a network: the file is
    /// the auditor's own read-only view; not counted as a round (like the index audit's first
    /// look, which comes with its row check). A failed read gives `None`, logged as a warning:
    /// the descent then starts with the usual root fingerprint (results unchanged, more
    /// rounds), and a store that keeps failing fails that query with its context.
    fn size(&mut self) -> Option<(u64, Bounds)> {
        let sql = "SELECT COUNT(*), MIN(order_key), MAX(order_key) FROM ceramic_one_event \
                   WHERE order_key >= ?1 AND order_key < ?2";
        let s = self.store;
        let warn = |e: rusqlite::Error| {
            tracing::warn!(
                "{}: the descent is not sized for this model's stores",
                s.sql(sql, e)
            );
        };
        let mut stmt = s.conn.prepare_cached(sql).map_err(warn).ok()?;
        stmt.query_row(params![self.start, self.end], |r| {
            let count: i64 = r.get(0)?;
            let first: Option<Vec<u8>> = r.get(1)?;
            let last: Option<Vec<u8>> = r.get(2)?;
            Ok((
                count.max(0) as u64,
                first
                    .zip(last)
                    .map(|(f, l)| (Key::from_bytes(f), Key::from_bytes(l))),
            ))
        })
        .map_err(warn)
        .ok()
    }

    /// Split points at the model's EventIds of even ranks (shortest separators), from one pass
    /// over its slice of the primary key (keys only). A failed read gives `None`, logged, and
    /// the first level is interpolated instead (results unchanged, possibly more rounds).
    fn quantiles(&mut self, parts: usize) -> Option<Vec<Key>> {
        let sql = "SELECT order_key FROM ceramic_one_event \
                   WHERE order_key >= ?1 AND order_key < ?2 ORDER BY order_key";
        let s = self.store;
        let warn = |e: rusqlite::Error| {
            tracing::warn!(
                "{}: the first level is interpolated, not cut at key quantiles",
                s.sql(sql, e)
            );
        };
        let (n, _) = self.size()?;
        let mut stmt = s.conn.prepare_cached(sql).map_err(warn).ok()?;
        let mut rows = stmt
            .query(params![self.start, self.end])
            .map_err(warn)
            .ok()?;
        // The ranks wanted, ascending; rows are read once, keys kept only at those ranks.
        let mut ranks = quantile_ranks(n as usize, parts).into_iter();
        let mut next = ranks.next();
        let mut out = Vec::new();
        let mut rank = 0usize;
        let mut prev = Key::default();
        while let (Some(want), Some(row)) = (next, rows.next().map_err(warn).ok()?) {
            let key = Key::from_bytes(row.get::<_, Vec<u8>>(0).map_err(warn).ok()?);
            if rank == want {
                out.push(separator(&prev, &key));
                next = ranks.next();
            }
            prev = key;
            rank += 1;
        }
        Some(out)
    }

    fn digests(&mut self, range: &Range) -> Result<Vec<u64>, StoreError> {
        use crate::recon::AssociativeHash;
        Ok(self
            .rows(range)?
            .iter()
            .map(|(_, _, h)| h.short())
            .collect())
    }

    fn entries(
        &mut self,
        range: &Range,
        only: Option<&BTreeSet<u64>>,
    ) -> Result<Vec<Entry>, StoreError> {
        use crate::recon::AssociativeHash;
        let mut out = Vec::new();
        for (key, cid, hash) in self.rows(range)? {
            let short = hash.short();
            if only.is_some_and(|set| !set.contains(&short)) {
                continue;
            }
            // The value is the event CID (already the key's tail) and the row's own lanes, so a
            // row whose stored lanes disagree with another node's shows up as a difference.
            let tip = read_cid(&cid, "event cid")
                .map(|(c, _)| c.to_string())
                .unwrap_or_else(|_| hex::encode(&cid));
            out.push(Entry::new(Key::from_bytes(key), Value::new(tip, short)));
        }
        Ok(out)
    }
}
