//! A node's SQLite index (js-ceramic's default, `~/.ceramic/indexing.sqlite`), opened read-only
//! and read whole in one read transaction. Differences from Postgres (`ceramic-interfaces.md`
//! §2.4): timestamps are epoch milliseconds, `stream_content` is JSON text (rendered here as
//! Postgres renders jsonb, so the digests agree), tables are found in `sqlite_schema`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use async_trait::async_trait;
use rusqlite::{types::ValueRef, Connection, OpenFlags};

use super::rows::{jsonb_text, IndexRow, RowContent};
use super::whole::WholeIndex;
use super::{
    Backend, Compare, IndexHash, InvalidRow, Loaded, ModelState, NodeStats, RowCheck, SourceError,
    TableInfo,
};
use crate::config::NodeConfig;
use crate::recon::{Answer, Entry, Query};

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Reads a text column that may hold text, a number or NULL (SQLite is loosely typed).
fn text(v: ValueRef<'_>) -> Option<String> {
    match v {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(r) => Some(r.to_string()),
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
    }
}

/// Reads an epoch-milliseconds column (integer, or text holding one).
fn millis(v: ValueRef<'_>) -> Option<i64> {
    match v {
        ValueRef::Integer(i) => Some(i),
        ValueRef::Real(r) => Some(r as i64),
        ValueRef::Text(t) => std::str::from_utf8(t).ok()?.trim().parse().ok(),
        _ => None,
    }
}

/// Reads a model's rows; `only` restricts to those stream ids (the settle re-check).
fn read_model(
    conn: &Connection,
    model: &str,
    table: &TableInfo,
    only: Option<&[String]>,
    bytes: &mut u64,
) -> rusqlite::Result<Vec<crate::recon::Entry>> {
    let custom_sql: String = table
        .custom
        .iter()
        .map(|c| format!(", {}", quote_ident(c)))
        .collect();
    let filter = match only {
        Some(ids) => format!(
            " WHERE stream_id IN ({})",
            ids.iter()
                .map(|s| quote_literal(s))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => String::new(),
    };
    let sql = format!(
        "SELECT stream_id, controller_did, stream_content, tip, last_anchored_at, \
         first_anchored_at{custom_sql} FROM {}{filter}",
        quote_ident(model)
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut entries = Vec::new();
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let raw_content = text(r.get_ref(2)?);
        // Content that is not JSON is kept as written: it will differ from any jsonb node.
        let content = raw_content
            .as_deref()
            .map(|c| jsonb_text(c).unwrap_or_else(|| c.to_string()));
        let mut row = IndexRow {
            stream_id: text(r.get_ref(0)?).unwrap_or_default(),
            controller: text(r.get_ref(1)?),
            content,
            tip: text(r.get_ref(3)?),
            last_anchored_ms: millis(r.get_ref(4)?),
            first_anchored_ms: millis(r.get_ref(5)?),
            custom: Vec::with_capacity(table.custom.len()),
        };
        for (i, name) in table.custom.iter().enumerate() {
            row.custom.push((name.clone(), text(r.get_ref(6 + i)?)));
        }
        *bytes += (row.stream_id.len()
            + row.controller.as_ref().map_or(0, String::len)
            + raw_content.as_ref().map_or(0, String::len)
            + row.tip.as_ref().map_or(0, String::len)
            + 16) as u64;
        entries.push(row.entry(model));
    }
    Ok(entries)
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
}

/// The current rows of `streams` in `model` (a fresh read, for the settle re-check).
pub fn rows_of(
    node: &str,
    path: &Path,
    model: &str,
    table: &TableInfo,
    streams: &[String],
) -> Result<Vec<crate::recon::Entry>, SourceError> {
    let mut bytes = 0;
    open(path)
        .and_then(|conn| read_model(&conn, model, table, Some(streams), &mut bytes))
        .map_err(|e| SourceError::Node {
            node: node.to_string(),
            message: format!(
                "SQLite index {}: re-reading model {model}: {e}",
                path.display()
            ),
        })
}

/// The content and controller of `streams`' rows in `model` (absent streams are left out).
pub fn contents(
    node: &str,
    path: &Path,
    model: &str,
    streams: &[String],
) -> Result<Vec<RowContent>, SourceError> {
    let fail = |e: rusqlite::Error| SourceError::Node {
        node: node.to_string(),
        message: format!(
            "SQLite index {}: reading the content of rows of {model}: {e}",
            path.display()
        ),
    };
    let conn = open(path).map_err(fail)?;
    let sql = format!(
        "SELECT stream_id, controller_did, stream_content FROM {} WHERE stream_id IN ({})",
        quote_ident(model),
        streams
            .iter()
            .map(|s| quote_literal(s))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut stmt = conn.prepare(&sql).map_err(fail)?;
    let rows = stmt
        .query_map([], |r| {
            let content = text(r.get_ref(2)?);
            Ok(RowContent {
                stream_id: text(r.get_ref(0)?).unwrap_or_default(),
                controller: text(r.get_ref(1)?),
                // As the audit digests it: jsonb-rendered, or as written when not JSON.
                content: content.map(|c| jsonb_text(&c).unwrap_or(c)),
            })
        })
        .map_err(fail)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(fail)
}

/// Stream ids of `model`'s rows with `updated_at` (unix ms) at or after `since_ms` (all rows
/// when `None`), and the newest `updated_at`.
pub fn changed_since(
    node: &str,
    path: &Path,
    model: &str,
    since_ms: Option<i64>,
) -> Result<(Vec<String>, Option<i64>), SourceError> {
    let fail = |e: rusqlite::Error| SourceError::Node {
        node: node.to_string(),
        message: format!(
            "SQLite index {}: reading rows of {model} changed since the last cycle: {e}",
            path.display()
        ),
    };
    let conn = open(path).map_err(fail)?;
    let mut stmt = conn
        .prepare(&format!(
            "SELECT stream_id, updated_at FROM {} WHERE ?1 IS NULL OR updated_at >= ?1",
            quote_ident(model)
        ))
        .map_err(fail)?;
    let rows = stmt
        .query_map([since_ms], |r| {
            Ok((text(r.get_ref(0)?), r.get_ref(1).map(millis)?))
        })
        .map_err(fail)?;
    let mut out = Vec::new();
    let mut newest = since_ms;
    for row in rows {
        let (stream, at) = row.map_err(fail)?;
        newest = newest.max(at);
        if let Some(s) = stream {
            out.push(s);
        }
    }
    Ok((out, newest))
}

pub fn load(node: &str, path: &Path) -> Result<Loaded, SourceError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| SourceError::Node {
        node: node.to_string(),
        message: format!("SQLite index {}: {what}: {e}", path.display()),
    };
    if !path.exists() {
        return Err(fail("cannot open", &"no such file"));
    }
    let conn = open(path).map_err(|e| fail("cannot open", &e))?;
    // One read transaction: every model is read at the same point.
    conn.execute_batch("BEGIN")
        .map_err(|e| fail("cannot start a read transaction", &e))?;

    let mut models: BTreeMap<String, ModelState> = BTreeMap::new();
    {
        let mut stmt = conn
            .prepare("SELECT model, is_indexed FROM ceramic_models")
            .map_err(|e| fail("reading ceramic_models", &e))?;
        let rows = stmt
            .query_map([], |r| Ok((text(r.get_ref(0)?), r.get_ref(1).map(millis)?)))
            .map_err(|e| fail("reading ceramic_models", &e))?;
        for row in rows {
            let (model, on) = row.map_err(|e| fail("reading ceramic_models", &e))?;
            if let Some(model) = model {
                let state = if on == Some(0) {
                    ModelState::NotIndexed
                } else {
                    ModelState::Missing
                };
                models.insert(model, state);
            }
        }
    }
    let mut loaded = Loaded {
        models: BTreeMap::new(),
        rows: HashMap::new(),
        bytes: 0,
    };
    for (model, state) in models.iter_mut() {
        if *state == ModelState::NotIndexed {
            continue;
        }
        let columns: Vec<String> = {
            let sql = format!(
                "SELECT name FROM pragma_table_info({})",
                quote_literal(model)
            );
            let mut stmt = conn
                .prepare(&sql)
                .map_err(|e| fail("reading table columns", &e))?;
            let names = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(|e| fail("reading table columns", &e))?;
            names
                .collect::<Result<_, _>>()
                .map_err(|e| fail("reading table columns", &e))?
        };
        if columns.is_empty() {
            continue; // no table: stays Missing
        }
        *state = TableInfo::from_columns(&columns);
        let ModelState::Ready(table) = &*state else {
            continue;
        };
        let entries = read_model(&conn, model, table, None, &mut loaded.bytes)
            .map_err(|e| fail(&format!("reading model {model}"), &e))?;
        loaded.rows.insert(model.clone(), entries);
    }
    loaded.models = models;
    Ok(loaded)
}

fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A SQLite index as an audit source: read whole at open, read again (a fresh transaction)
/// for the settle re-check and for changed rows.
pub struct SqliteIndex {
    node: String,
    path: PathBuf,
    compare: Compare,
    whole: WholeIndex,
}

impl SqliteIndex {
    pub async fn open(
        config: &NodeConfig,
        path: &Path,
        compare: Compare,
    ) -> Result<(Self, BTreeMap<String, ModelState>), SourceError> {
        let started = Instant::now();
        let loaded = super::load_blocking(config, path, "SQLite", load).await?;
        let (whole, models) = WholeIndex::new(loaded, started, compare);
        let index = Self {
            node: config.name.clone(),
            path: path.to_path_buf(),
            compare,
            whole,
        };
        Ok((index, models))
    }

    /// Runs a read of the file on the blocking pool (it must not stall the async workers that
    /// drive the other nodes).
    async fn blocking<T: Send + 'static>(
        &self,
        read: impl FnOnce(&str, &Path) -> Result<T, SourceError> + Send + 'static,
    ) -> Result<T, SourceError> {
        let (node, path) = (self.node.clone(), self.path.clone());
        tokio::task::spawn_blocking(move || read(&node, &path))
            .await
            .map_err(|e| SourceError::Node {
                node: self.node.clone(),
                message: format!("SQLite reader stopped: {e}"),
            })?
    }
}

#[async_trait]
impl Backend for SqliteIndex {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    /// A file nobody wrote for [`super::QUIET_FILE`] cannot change during a settle pause.
    fn is_live(&self) -> bool {
        super::recently_written(&self.path)
    }

    fn stats(&self) -> NodeStats {
        self.whole.stats()
    }

    async fn entries(&mut self, model: &str, _: &TableInfo) -> Result<Vec<Entry>, SourceError> {
        Ok(self.whole.entries(model))
    }

    async fn answer(
        &mut self,
        model: &str,
        _: &TableInfo,
        batch: &[Query],
    ) -> Result<Vec<Answer<IndexHash>>, SourceError> {
        Ok(self.whole.answer(model, batch))
    }

    async fn invalid_rows(
        &mut self,
        model: &str,
        _: RowCheck,
    ) -> Result<Vec<InvalidRow>, SourceError> {
        Ok(self.whole.invalid_rows(model))
    }

    async fn recheck(
        &mut self,
        model: &str,
        table: &TableInfo,
        streams: &[String],
    ) -> Result<Vec<Entry>, SourceError> {
        let (model, table, streams) = (model.to_string(), table.clone(), streams.to_vec());
        let compare = self.compare;
        self.blocking(move |node, path| {
            rows_of(node, path, &model, &table, &streams).map(|e| compare.apply(e))
        })
        .await
    }

    async fn index_tips(
        &mut self,
        model: &str,
        sample: Option<u64>,
    ) -> Result<Vec<(String, String)>, SourceError> {
        Ok(self.whole.tips(model, sample))
    }

    async fn contents(
        &mut self,
        model: &str,
        streams: &[String],
    ) -> Result<Vec<RowContent>, SourceError> {
        let (model, streams) = (model.to_string(), streams.to_vec());
        self.blocking(move |node, path| contents(node, path, &model, &streams))
            .await
    }

    async fn changed_since(
        &mut self,
        model: &str,
        since_ms: Option<i64>,
    ) -> Result<(Vec<String>, Option<i64>), SourceError> {
        let model = model.to_string();
        self.blocking(move |node, path| changed_since(node, path, &model, since_ms))
            .await
    }
}
