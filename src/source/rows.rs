//! One index row, source-independent, and the canonical text its comparable columns are hashed
//! from. Every source must produce the same digest for the same logical row — Postgres computes
//! it in SQL (see `postgres.rs`, which builds the same text), SQLite and snapshots in Rust here —
//! so a Postgres node and a SQLite node holding the same stream compare equal.
//!
//! Canonical columns text (fields joined by `\n`):
//! `controller_did`, `stream_content` as Postgres renders jsonb (keys by length then bytes,
//! `", "` and `": "` separators), `last_anchored_at` and `first_anchored_at` as epoch
//! milliseconds (empty when NULL), then each `custom_*` column in name order as `name=value`, or
//! `name!` when NULL. Node-local columns (`created_at`, `updated_at`) never enter it.

use serde_json::Value as Json;

use crate::ids::{parse_cid, StreamId};
use crate::recon::{pg_hash_bytes_extended, Entry, Key, Value};

/// The comparable columns of one model-table row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexRow {
    pub stream_id: String,
    pub controller: Option<String>,
    /// Canonical (jsonb-rendered) content text; `None` when NULL.
    pub content: Option<String>,
    pub tip: Option<String>,
    pub last_anchored_ms: Option<i64>,
    pub first_anchored_ms: Option<i64>,
    /// `(column name, value)`, sorted by name.
    pub custom: Vec<(String, Option<String>)>,
}

impl IndexRow {
    pub fn columns_text(&self) -> String {
        let mut out = String::with_capacity(self.content.as_ref().map_or(0, String::len) + 128);
        out.push_str(self.controller.as_deref().unwrap_or(""));
        out.push('\n');
        out.push_str(self.content.as_deref().unwrap_or(""));
        out.push('\n');
        if let Some(ms) = self.last_anchored_ms {
            out.push_str(&ms.to_string());
        }
        out.push('\n');
        if let Some(ms) = self.first_anchored_ms {
            out.push_str(&ms.to_string());
        }
        for (name, value) in &self.custom {
            out.push('\n');
            out.push_str(name);
            match value {
                Some(v) => {
                    out.push('=');
                    out.push_str(v);
                }
                None => out.push('!'),
            }
        }
        out
    }

    /// `hashtextextended(columns text, 0)`, as the Postgres source computes it in SQL.
    pub fn digest(&self) -> u64 {
        pg_hash_bytes_extended(self.columns_text().as_bytes(), 0)
    }

    /// The reconciliation entry of this row under `model` (a NULL tip hashes as empty).
    pub fn entry(&self, model: &str) -> Entry {
        Entry::new(
            Key::new(model, &self.stream_id),
            Value::new(self.tip.clone().unwrap_or_default(), self.digest()),
        )
    }
}

/// Why a row cannot be trusted as data: an unparseable stream id or tip, or a NULL tip. `None`
/// for a valid row.
pub fn row_problem(stream_id: &str, tip: Option<&str>) -> Option<String> {
    let mut problems = Vec::new();
    if let Err(e) = StreamId::parse(stream_id) {
        problems.push(format!("stream_id is not a StreamID ({e})"));
    }
    match tip {
        None | Some("") => problems.push("tip is NULL or empty".to_string()),
        Some(t) => {
            if let Err(e) = parse_cid(t) {
                problems.push(format!("tip is not a CID ({e})"));
            }
        }
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// The columns of an index row that a node derives from the stream's state alone (content and
/// controller), as read for explaining a `content_mismatch`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowContent {
    pub stream_id: String,
    pub controller: Option<String>,
    /// Canonical (jsonb-rendered) content text; `None` when NULL.
    pub content: Option<String>,
}

/// A JSON value as Postgres prints it as `jsonb::text` (the canonical content text).
pub fn jsonb_value_text(value: &Json) -> String {
    let mut out = String::new();
    render(value, &mut out);
    out
}

/// Renders JSON text the way Postgres prints the same value as `jsonb::text`, so content read
/// from SQLite (JSON text as the node wrote it) digests like content read from Postgres.
/// Returns `None` for text that is not JSON.
pub fn jsonb_text(json_text: &str) -> Option<String> {
    let value: Json = serde_json::from_str(json_text).ok()?;
    let mut out = String::with_capacity(json_text.len() + 16);
    render(&value, &mut out);
    Some(out)
}

fn render(v: &Json, out: &mut String) {
    match v {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        // With serde_json's arbitrary_precision the literal is kept as written, as Postgres'
        // numeric keeps it (trailing zeros included).
        Json::Number(n) => out.push_str(&n.to_string()),
        Json::String(s) => render_string(s, out),
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render(item, out);
            }
            out.push(']');
        }
        Json::Object(map) => {
            // jsonb orders keys by length, then bytes (and keeps the last of duplicate keys,
            // as serde_json's map does).
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| {
                a.len()
                    .cmp(&b.len())
                    .then_with(|| a.as_bytes().cmp(b.as_bytes()))
            });
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render_string(k, out);
                out.push_str(": ");
                if let Some(item) = map.get(k) {
                    render(item, out);
                }
            }
            out.push('}');
        }
    }
}

/// Postgres' `escape_json`: `"`, `\`, \b \f \n \r \t escaped, other control characters as
/// `\u00xx`, everything else (non-ASCII included) as is.
fn render_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}
