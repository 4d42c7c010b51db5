//! Issue 12, point 7: the same document digests alike whether a node's index holds it as
//! SQLite JSON text (as the node wrote it) or as Postgres jsonb. A live Postgres renders each
//! document (`$1::jsonb::text`), and an audit of a SQLite node against a Postgres node holding
//! the same documents finds nothing.

use ceramic_audit::audit::{self, AuditOptions};
use ceramic_audit::config::ClusterConfig;
use ceramic_audit::source::rows::jsonb_text;
use ceramic_audit::source::Mode;

use crate::common::composedb::{model_id, pg_model, sqlite_model, Row};
use crate::common::pg::TempPg;

/// Documents as a node may have written them: numbers in exponent form, negative zero, big
/// integers (beyond 2^53 and beyond i64), `\u` escapes (a surrogate pair, control characters,
/// an escaped slash), nested objects with keys out of jsonb's order and duplicate keys.
const DOCUMENTS: &[&str] = &[
    r#"{"n": 1e+21}"#,
    r#"{"n": 1.230e-5}"#,
    r#"{"n": -0, "m": -0.0, "k": 0e10}"#,
    r#"{"a": [1.5E2, 12.5e-1, 100e-2, 0.10, -7E0]}"#,
    r#"{"big": 9007199254740993, "bigger": 123456789012345678901234567890, "neg": -18446744073709551617}"#,
    r#"{"s": "caf\u00e9 \ud83d\ude00 \u001f\u0007 tab\t \/ \"q\" \\"}"#,
    r#"{"s": "\u00E9\u00e9"}"#,
    r#"{"zz": {"b": 2, "a": 1, "ab": {"y": [], "x": {}}}, "a": null, "a": true, "aaa": "last"}"#,
    r#"[{"k": 1, "k": 2}, "x", 3.0]"#,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_text_and_jsonb_render_and_digest_alike() {
    let pg = TempPg::start();
    let client = pg.client().await;
    for doc in DOCUMENTS {
        let row = client
            .query_one("SELECT $1::text::jsonb::text", &[doc])
            .await
            .unwrap_or_else(|e| panic!("Postgres takes {doc}: {e}"));
        let postgres: String = row.get(0);
        assert_eq!(jsonb_text(doc).as_deref(), Some(postgres.as_str()), "{doc}");
    }
    // `\u0000` is valid JSON but jsonb refuses it: such a document cannot be in a Postgres
    // index at all (js-ceramic's write fails there), so a SQLite node holding it differs from
    // a Postgres node by a missing row, never by a false equality.
    let nul = client
        .query_one("SELECT $1::text::jsonb::text", &[&r#"{"s": "a\u0000b"}"#])
        .await
        .expect_err("jsonb refuses \\u0000");
    assert!(
        nul.as_db_error()
            .is_some_and(|e| e.message().contains("unsupported Unicode escape sequence")),
        "{nul:?}"
    );

    // The same documents in a SQLite index (text as written) and a Postgres index (jsonb):
    // the audit compares every column and finds them equal.
    let model = model_id("jsonb-text");
    let rows: Vec<Row> = (0..DOCUMENTS.len()).map(|i| Row::new(i, 1)).collect();
    pg_model(&pg, &model, &[], &rows).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = dir.path().join("a.sqlite");
    sqlite_model(&sqlite, &model, &[], &rows);
    let conn = rusqlite::Connection::open(&sqlite).expect("sqlite");
    for (r, doc) in rows.iter().zip(DOCUMENTS) {
        conn.execute(
            &format!("UPDATE \"{model}\" SET stream_content = ?1 WHERE stream_id = ?2"),
            [doc, &r.stream_id.as_str()],
        )
        .expect("update sqlite");
        client
            .execute(
                &format!(
                    "UPDATE \"{model}\" SET stream_content = $1::text::jsonb WHERE stream_id = $2"
                ),
                &[doc, &r.stream_id],
            )
            .await
            .expect("update postgres");
    }
    drop(conn);
    let path = dir.path().join("cluster.toml");
    std::fs::write(
        &path,
        format!(
            "cluster = \"t\"\n\n[[nodes]]\nname = \"a\"\nindex = \"sqlite://{}\"\n\n\
             [[nodes]]\nname = \"b\"\nindex = \"{}\"\n",
            sqlite.display(),
            pg.dsn()
        ),
    )
    .expect("config");
    let cfg = ClusterConfig::load(&path).expect("config");
    for mode in [Mode::Pushdown, Mode::Download] {
        let report = audit::run(
            &cfg,
            &AuditOptions {
                mode,
                ..AuditOptions::default()
            },
        )
        .await;
        assert!(report.complete, "{mode:?}: {:#?}", report.divergences);
        assert!(
            report.divergences.is_empty(),
            "{mode:?}: {:#?}",
            report.divergences
        );
    }
}
