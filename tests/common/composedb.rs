//! ComposeDB-shaped indexes for tests: the system tables and model tables as js-ceramic creates
//! them (`ceramic-interfaces.md` §2), in Postgres and SQLite, with valid StreamIDs and CIDs.

use ceramic_audit::ids::{StreamId, StreamType};
use cid::Cid;
use multihash::Multihash;
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};

use super::pg::TempPg;

fn cid(codec: u64, seed: &str) -> Cid {
    let digest = Sha256::digest(seed.as_bytes());
    Cid::new_v1(
        codec,
        Multihash::<64>::wrap(0x12, &digest).expect("32-byte digest fits"),
    )
}

/// A model StreamID (type 2, dag-jose genesis) derived from `seed`.
pub fn model_id(seed: &str) -> String {
    StreamId::new(StreamType::Model, cid(0x85, &format!("model:{seed}"))).to_string()
}

/// A MID StreamID (type 3) derived from `seed`.
pub fn stream_id(seed: &str) -> String {
    StreamId::new(
        StreamType::ModelInstanceDocument,
        cid(0x85, &format!("mid:{seed}")),
    )
    .to_string()
}

/// A commit CID (dag-jose) derived from `seed`.
pub fn tip(seed: &str) -> String {
    cid(0x85, &format!("commit:{seed}")).to_string()
}

/// One model-table row.
#[derive(Clone, Debug)]
pub struct Row {
    pub stream_id: String,
    pub controller: String,
    pub content: Json,
    pub tip: Option<String>,
    pub last_anchored_ms: Option<i64>,
    pub first_anchored_ms: Option<i64>,
    pub custom: Vec<(String, Option<String>)>,
}

impl Row {
    /// Stream `i`'s row at update `version`.
    pub fn new(i: usize, version: usize) -> Self {
        Self {
            stream_id: stream_id(&i.to_string()),
            controller: "did:key:z6MkgSV3tAuw7gUWqKCUY7ae6uWNxqYgdwPhUJbJhF9EFXm9".into(),
            content: json!({"title": format!("order {i}"), "amount": i * 10, "paid": version > 0,
                            "note": "é \"quoted\"\nline", "items": [1, 2.50, {"z": null, "a": true}]}),
            tip: Some(tip(&format!("{i}:{version}"))),
            last_anchored_ms: (i % 3 == 0).then_some(1_700_000_000_000 + i as i64 * 1000),
            first_anchored_ms: (i % 3 == 0).then_some(1_700_000_000_000),
            custom: Vec::new(),
        }
    }

    pub fn with_custom(mut self, name: &str, value: Option<&str>) -> Self {
        self.custom.push((name.into(), value.map(str::to_string)));
        self
    }
}

pub const PG_SYSTEM_DDL: &str = r#"
CREATE TABLE IF NOT EXISTS ceramic_models (
  model varchar(1024) PRIMARY KEY,
  is_indexed boolean DEFAULT true,
  enable_historical_sync boolean DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  updated_by varchar(1024) NOT NULL DEFAULT '0',
  indices jsonb);
CREATE TABLE IF NOT EXISTS ceramic_config (
  option varchar(1024) UNIQUE, value varchar(1024),
  created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(),
  updated_by varchar(1024));
INSERT INTO ceramic_config (option, value) VALUES ('network', 'inmemory') ON CONFLICT DO NOTHING;
"#;

fn last10(model: &str) -> &str {
    &model[model.len().saturating_sub(10)..]
}

/// The model table DDL js-ceramic's Postgres migration creates (plus `custom_*` columns).
pub fn pg_model_ddl(model: &str, custom: &[&str]) -> String {
    let idx = format!("idx_{}", last10(model));
    let mut cols = String::new();
    for c in custom {
        cols.push_str(&format!(",\n  \"{c}\" varchar(1024)"));
    }
    let mut ddl = format!(
        r#"CREATE TABLE "{model}" (
  "stream_id" varchar(255) NOT NULL,
  "controller_did" varchar(1024) NOT NULL,
  "stream_content" jsonb NOT NULL,
  "tip" varchar(255) NOT NULL,
  "last_anchored_at" timestamptz,
  "first_anchored_at" timestamptz,
  "created_at" timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
  "updated_at" timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP{cols},
  CONSTRAINT "idx_{idx}_pkey" PRIMARY KEY ("stream_id"),
  CONSTRAINT "constr_{idx}_unique" UNIQUE ("stream_id"));
CREATE INDEX "{idx}_stream_id" ON "{model}" ("stream_id");
CREATE INDEX "{idx}_last_anchored_at" ON "{model}" ("last_anchored_at");
CREATE INDEX "{idx}_created_at" ON "{model}" USING hash ("created_at");
CREATE INDEX "{idx}_updated_at" ON "{model}" ("updated_at");
"#
    );
    for c in custom {
        ddl.push_str(&format!(
            "CREATE INDEX \"idx_{idx}_{c}\" ON \"{model}\" (\"{c}\");\n"
        ));
    }
    ddl
}

fn sql_text(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

fn sql_opt(v: &Option<String>) -> String {
    v.as_deref().map_or("NULL".into(), sql_text)
}

fn pg_ts(ms: Option<i64>) -> String {
    ms.map_or("NULL".into(), |ms| {
        format!("to_timestamp({})", ms as f64 / 1000.0)
    })
}

/// Creates the system tables and `model` (indexed) with `custom` columns, then upserts `rows`.
pub async fn pg_model(pg: &TempPg, model: &str, custom: &[&str], rows: &[Row]) {
    pg.execute(PG_SYSTEM_DDL).await;
    pg.execute(&format!(
        "INSERT INTO ceramic_models (model, is_indexed) VALUES ({}, true);\n{}",
        sql_text(model),
        pg_model_ddl(model, custom)
    ))
    .await;
    pg_upsert(pg, model, rows).await;
}

/// Upserts rows as js-ceramic's indexStream does (`ON CONFLICT (stream_id) DO UPDATE`).
pub async fn pg_upsert(pg: &TempPg, model: &str, rows: &[Row]) {
    for chunk in rows.chunks(500) {
        pg.execute(&upsert_sql(model, chunk)).await;
    }
}

/// The SQL of [`pg_upsert`] for `rows`.
pub fn upsert_sql(model: &str, rows: &[Row]) -> String {
    let mut sql = String::new();
    for r in rows {
        let mut names = String::from(
            "stream_id, controller_did, stream_content, tip, last_anchored_at, first_anchored_at",
        );
        let mut values = format!(
            "{}, {}, {}::jsonb, {}, {}, {}",
            sql_text(&r.stream_id),
            sql_text(&r.controller),
            sql_text(&r.content.to_string()),
            sql_opt(&r.tip),
            pg_ts(r.last_anchored_ms),
            pg_ts(r.first_anchored_ms)
        );
        let mut sets = String::from(
            "controller_did = EXCLUDED.controller_did, stream_content = EXCLUDED.stream_content, \
             tip = EXCLUDED.tip, last_anchored_at = EXCLUDED.last_anchored_at, \
             first_anchored_at = EXCLUDED.first_anchored_at, updated_at = now()",
        );
        for (c, v) in &r.custom {
            names.push_str(&format!(", \"{c}\""));
            values.push_str(&format!(", {}", sql_opt(v)));
            sets.push_str(&format!(", \"{c}\" = EXCLUDED.\"{c}\""));
        }
        sql.push_str(&format!(
            "INSERT INTO \"{model}\" ({names}) VALUES ({values}) ON CONFLICT (stream_id) DO UPDATE SET {sets};\n"
        ));
    }
    sql
}

/// The same model in a SQLite index file (js-ceramic's SQLite layout: ms timestamps, JSON text).
pub fn sqlite_model(path: &std::path::Path, model: &str, custom: &[&str], rows: &[Row]) {
    let conn = rusqlite::Connection::open(path).expect("create SQLite index");
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS ceramic_models (model varchar(1024) PRIMARY KEY, \
         is_indexed boolean DEFAULT true, enable_historical_sync boolean DEFAULT false, \
         created_at datetime DEFAULT CURRENT_TIMESTAMP, updated_at datetime DEFAULT CURRENT_TIMESTAMP, \
         updated_by varchar(1024) NOT NULL DEFAULT '0', indices json);",
    )
    .expect("system tables");
    conn.execute(
        "INSERT INTO ceramic_models (model, is_indexed) VALUES (?1, 1)",
        [model],
    )
    .expect("ceramic_models row");
    let cols: String = custom
        .iter()
        .map(|c| format!(", \"{c}\" varchar(1024)"))
        .collect();
    conn.execute_batch(&format!(
        "CREATE TABLE \"{model}\" (stream_id varchar(1024) PRIMARY KEY, controller_did varchar(1024) NOT NULL, \
         stream_content varchar NOT NULL, tip varchar(255) NOT NULL, last_anchored_at integer, \
         first_anchored_at integer, created_at integer NOT NULL, updated_at integer NOT NULL{cols});"
    ))
    .expect("model table");
    for r in rows {
        let mut names = String::from("stream_id, controller_did, stream_content, tip, last_anchored_at, first_anchored_at, created_at, updated_at");
        // JSON as JavaScript writes it (insertion order, no spaces): SQLite keeps the text.
        let mut values = format!(
            "{}, {}, {}, {}, {}, {}, 1, 2",
            sql_text(&r.stream_id),
            sql_text(&r.controller),
            sql_text(&r.content.to_string()),
            sql_opt(&r.tip),
            r.last_anchored_ms.map_or("NULL".into(), |v| v.to_string()),
            r.first_anchored_ms.map_or("NULL".into(), |v| v.to_string()),
        );
        for (c, v) in &r.custom {
            names.push_str(&format!(", \"{c}\""));
            values.push_str(&format!(", {}", sql_opt(v)));
        }
        conn.execute_batch(&format!(
            "INSERT INTO \"{model}\" ({names}) VALUES ({values});"
        ))
        .expect("insert row");
    }
}
