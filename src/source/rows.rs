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
        // With serde_json's arbitrary_precision the literal is kept as written; Postgres
        // stores it as `numeric`, which prints it in its own form (see `numeric_text`).
        Json::Number(n) => out.push_str(&numeric_text(&n.to_string())),
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

/// Exponents Postgres' `numeric` input accepts (`NUMERIC_MAX_PRECISION`); past them jsonb
/// rejects the document, so such a literal is kept as written. The bound also keeps a hostile
/// `1e999999999` from expanding into a gigabyte of zeros.
const NUMERIC_MAX_EXPONENT: i64 = 1000;

/// A JSON number literal as Postgres prints it back from jsonb (`numeric_in`, then
/// `numeric_out`): never in exponent form, the display scale being the digits after the point
/// minus the exponent (at least 0) — `1e+21` is `1000000000000000000000`, `1.230e-5` is
/// `0.00001230`, `1.5e2` is `150` — and zero has no sign (`-0` is `0`, `-0.0` is `0.0`).
/// Integers beyond 2^53 or i64 keep every digit. Anything not a JSON number is returned as is.
pub fn numeric_text(literal: &str) -> String {
    let (negative, rest) = match literal.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, literal),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, "0"),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let exponent = match exponent.parse::<i64>() {
        Ok(e) if e.abs() <= NUMERIC_MAX_EXPONENT => e,
        _ => return literal.to_string(),
    };
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits_ok(int) || !digits_ok(frac) {
        return literal.to_string();
    }
    let digits = format!("{int}{frac}");
    // Where the point falls in `digits`, and how many fraction digits are shown.
    let point = int.len() as i64 + exponent;
    let scale = (frac.len() as i64 - exponent).max(0) as usize;
    let int_part = if point <= 0 {
        String::new()
    } else if point as usize >= digits.len() {
        format!("{digits}{}", "0".repeat(point as usize - digits.len()))
    } else {
        digits[..point as usize].to_string()
    };
    let int_part = match int_part.trim_start_matches('0') {
        "" => "0",
        trimmed => trimmed,
    };
    let frac_part = if point < 0 {
        format!("{}{digits}", "0".repeat((-point) as usize))
    } else {
        digits.get(point as usize..).unwrap_or_default().to_string()
    };
    let zero = digits.bytes().all(|b| b == b'0');
    let mut out = String::with_capacity(int_part.len() + scale + 2);
    if negative && !zero {
        out.push('-');
    }
    out.push_str(int_part);
    if scale > 0 {
        out.push('.');
        out.push_str(&frac_part[..scale.min(frac_part.len())]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Postgres' own answers (`SELECT '<literal>'::jsonb::text`, PostgreSQL 15); the
    /// integration test `jsonb_text::sqlite_text_and_jsonb_render_and_digest_alike` asks a live server.
    #[test]
    fn numbers_print_as_postgres_numeric_does() {
        for (literal, pg) in [
            ("1e+21", "1000000000000000000000"),
            ("1.230e-5", "0.00001230"),
            ("-0", "0"),
            ("-0.0", "0.0"),
            ("1.5e2", "150"),
            ("1.25e1", "12.5"),
            ("100e-2", "1.00"),
            ("0.10", "0.10"),
            ("1E3", "1000"),
            ("-12.5E-1", "-1.25"),
            ("9007199254740993", "9007199254740993"),
            (
                "-123456789012345678901234567890",
                "-123456789012345678901234567890",
            ),
            ("0e10", "0"),
            ("0.000e2", "0.0"),
        ] {
            assert_eq!(numeric_text(literal), pg, "{literal}");
        }
        assert_eq!(numeric_text("1e1001"), "1e1001", "kept: jsonb rejects it");
        assert_eq!(numeric_text("1e999999999999"), "1e999999999999");
    }
}
