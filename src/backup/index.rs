//! The ComposeDB index layer: Postgres through the real `pg_dump` (custom format: its own
//! consistent snapshot, restorable by `pg_restore`), SQLite through SQLite's online backup API
//! (never a file copy of a live database); and the model rows read back from either.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rusqlite::{Connection, OpenFlags};

/// One index row as a backup check needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexRow {
    pub model: String,
    pub stream_id: String,
    pub tip: Option<String>,
}

/// Finds a PostgreSQL client program: `PATH` first, then the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian installs them there; `pg_dump` must be at least
/// the server's major version).
pub fn pg_tool(name: &str) -> Result<PathBuf, String> {
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let p = dir.join(name);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let p = e.path().join("bin").join(name);
            p.is_file().then_some((v, p))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p).ok_or_else(|| {
        format!(
            "{name} not found on PATH or in /usr/lib/postgresql/*/bin; install the PostgreSQL \
             client (Debian: apt-get install postgresql-client, or scripts/setup.sh)"
        )
    })
}

/// `pg_dump --version` text, for the manifest.
pub fn tool_version(tool: &Path) -> String {
    Command::new(tool)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// How often a running client program is checked for `stop`. Longer only delays the stop
/// (an interrupted backup waits this long at most before pg_dump is killed); shorter polls more.
const STOP_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// Runs a PostgreSQL client program; its stderr becomes the error. When `stop` is cancelled
/// the program is killed and reaped before this returns: an interrupted backup must not leave
/// a pg_dump behind, holding its snapshot on the production server and writing into a
/// directory the operator was told to delete.
fn run_pg(
    tool: &Path,
    args: &[&str],
    password: Option<&str>,
    what: &str,
    stop: Option<&tokio_util::sync::CancellationToken>,
) -> Result<(), String> {
    let mut cmd = Command::new(tool);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    cmd.env("PGCONNECT_TIMEOUT", "30");
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{what}: cannot run {}: {e}", tool.display()))?;
    // Drained beside the wait, so a chatty program never blocks on a full pipe.
    let stderr = child.stderr.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut pipe, &mut text);
            text
        })
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if stop.is_some_and(|s| s.is_cancelled()) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{what}: stopped; {} killed", tool.display()));
            }
            Ok(None) => std::thread::sleep(STOP_POLL),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{what}: cannot wait for {}: {e}", tool.display()));
            }
        }
    };
    let stderr = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    if !status.success() {
        return Err(format!(
            "{what}: {} failed ({status}): {}",
            tool.display(),
            stderr.trim()
        ));
    }
    Ok(())
}

/// `pg_dump --format=custom` of the whole database into `file`: one connection, one
/// transaction snapshot. Killed when `stop` is cancelled.
pub fn dump_postgres(
    dsn: &str,
    password: Option<&str>,
    file: &Path,
    stop: &tokio_util::sync::CancellationToken,
) -> Result<String, String> {
    let tool = pg_tool("pg_dump")?;
    let file_s = file.to_string_lossy();
    run_pg(
        &tool,
        &[
            "--format=custom",
            "--no-owner",
            "--no-privileges",
            "--file",
            &file_s,
            "--dbname",
            dsn,
        ],
        password,
        &format!("pg_dump of {}", crate::config::redact_dsn(dsn)),
        Some(stop),
    )?;
    Ok(tool_version(&tool))
}

/// The database's schema as SQL (`pg_dump --schema-only`): what a restore would overwrite.
pub fn schema_of(dsn: &str, password: Option<&str>) -> Result<String, String> {
    let tool = pg_tool("pg_dump")?;
    let mut cmd = Command::new(&tool);
    cmd.args([
        "--schema-only",
        "--no-owner",
        "--file",
        "-",
        "--dbname",
        dsn,
    ])
    .stdin(Stdio::null())
    .env("PGCONNECT_TIMEOUT", "30");
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", tool.display()))?;
    if !out.status.success() {
        return Err(format!(
            "cannot read the schema of {} (does the database exist? create it with createdb): {}",
            crate::config::redact_dsn(dsn),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Restores a custom-format dump into the database `dsn` (which must exist). `clean`: drop the
/// dump's objects first (`--clean --if-exists`).
pub fn restore_postgres(
    dsn: &str,
    password: Option<&str>,
    file: &Path,
    clean: bool,
) -> Result<(), String> {
    let tool = pg_tool("pg_restore")?;
    let file_s = file.to_string_lossy();
    let mut args = vec![
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        "--dbname",
        dsn,
    ];
    if clean {
        args.extend(["--clean", "--if-exists"]);
    }
    args.push(&file_s);
    run_pg(
        &tool,
        &args,
        password,
        &format!("pg_restore into {}", crate::config::redact_dsn(dsn)),
        None,
    )
}

/// Reads the model tables' rows out of a custom-format dump (`pg_restore --data-only -f -`
/// prints each table as a `COPY … FROM stdin;` block of tab-separated text).
pub fn rows_from_dump(file: &Path) -> Result<Vec<IndexRow>, String> {
    let tool = pg_tool("pg_restore")?;
    let mut child = Command::new(&tool)
        .args(["--data-only", "--file", "-"])
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", tool.display()))?;
    let stdout = child.stdout.take().ok_or("pg_restore gave no stdout")?;
    let rows = parse_copy_blocks(BufReader::new(stdout));
    let out = child
        .wait_with_output()
        .map_err(|e| format!("pg_restore of {}: {e}", file.display()))?;
    if !out.status.success() {
        return Err(format!(
            "pg_restore cannot read {} ({}): {}",
            file.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    rows.map_err(|e| format!("{}: {e}", file.display()))
}

/// Model rows from `COPY schema."<model>" (cols) FROM stdin;` blocks; other tables skipped.
pub fn parse_copy_blocks(input: impl BufRead) -> Result<Vec<IndexRow>, String> {
    let mut out = Vec::new();
    // (model, index of stream_id, index of tip)
    let mut current: Option<(String, usize, Option<usize>)> = None;
    for (n, line) in input.lines().enumerate() {
        let line = line.map_err(|e| format!("line {}: {e}", n + 1))?;
        if let Some((model, id_col, tip_col)) = &current {
            if line == "\\." {
                current = None;
                continue;
            }
            let fields: Vec<&str> = line.split('\t').collect();
            let field = |i: usize| {
                fields
                    .get(i)
                    .filter(|f| **f != "\\N")
                    .map(|f| f.to_string())
            };
            let stream_id = field(*id_col)
                .ok_or_else(|| format!("line {}: a row of {model} has no stream_id", n + 1))?;
            out.push(IndexRow {
                model: model.clone(),
                stream_id,
                tip: tip_col.and_then(field),
            });
        } else if let Some(rest) = line.strip_prefix("COPY ") {
            let Some((name, cols)) = rest.split_once(" (") else {
                continue;
            };
            let table = name.rsplit('.').next().unwrap_or(name).trim_matches('"');
            if crate::ids::StreamId::parse(table).is_err() {
                continue;
            }
            let cols: Vec<&str> = cols
                .split(") FROM")
                .next()
                .unwrap_or("")
                .split(", ")
                .map(|c| c.trim_matches('"'))
                .collect();
            let Some(id_col) = cols.iter().position(|c| *c == "stream_id") else {
                continue;
            };
            current = Some((
                table.to_string(),
                id_col,
                cols.iter().position(|c| *c == "tip"),
            ));
        }
    }
    if let Some((model, ..)) = current {
        return Err(format!(
            "the COPY block of {model} is not terminated (truncated dump)"
        ));
    }
    Ok(out)
}

/// Copies a live SQLite database with SQLite's online backup API (a consistent snapshot even
/// while js-ceramic writes to it).
pub fn backup_sqlite(src: &Path, dst: &Path) -> Result<(), String> {
    let conn = Connection::open_with_flags(src, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("cannot open the SQLite index {}: {e}", src.display()))?;
    let mut out = Connection::open(dst)
        .map_err(|e| format!("cannot create the SQLite copy {}: {e}", dst.display()))?;
    let backup = rusqlite::backup::Backup::new(&conn, &mut out)
        .map_err(|e| format!("SQLite online backup of {} failed: {e}", src.display()))?;
    // All pages in one step, under one read transaction: one consistent snapshot. Stepping in
    // chunks (rusqlite's `Connection::backup` takes 100 pages at a time) restarts from the first
    // page whenever another connection writes between two steps, so a busy writer could keep
    // the copy from ever finishing. In WAL mode the writer is not blocked by this reader.
    // Busy/Locked: a writer holds the lock (rollback-journal mode); retried for up to
    // BUSY_RETRIES × 50 ms = 60 s. Too low fails a backup behind one long write transaction;
    // too high only delays the error for a database that stays locked.
    const BUSY_RETRIES: u32 = 1200;
    for _ in 0..BUSY_RETRIES {
        match backup.step(-1) {
            Ok(rusqlite::backup::StepResult::Done) => return Ok(()),
            Ok(rusqlite::backup::StepResult::More) => continue,
            Ok(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
            Err(e) => {
                return Err(format!(
                    "SQLite online backup of {} failed: {e}",
                    src.display()
                ))
            }
        }
    }
    Err(format!(
        "SQLite online backup of {}: the database stayed locked for 60 s",
        src.display()
    ))
}

/// Model rows of a SQLite index file (tables named after a model StreamID).
pub fn rows_from_sqlite(path: &Path) -> Result<Vec<IndexRow>, String> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let sql_err = |sql: &str, e: rusqlite::Error| format!("{}: {sql}: {e}", path.display());
    let list = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name";
    let tables: Vec<String> = conn
        .prepare(list)
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| sql_err(list, e))?;
    let mut out = Vec::new();
    for table in tables
        .into_iter()
        .filter(|t| crate::ids::StreamId::parse(t).is_ok())
    {
        let sql = format!(
            "SELECT stream_id, tip FROM \"{}\"",
            table.replace('"', "\"\"")
        );
        let rows: Vec<(String, Option<String>)> = conn
            .prepare(&sql)
            .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
            .map_err(|e| sql_err(&sql, e))?;
        out.extend(rows.into_iter().map(|(stream_id, tip)| IndexRow {
            model: table.clone(),
            stream_id,
            tip,
        }));
    }
    Ok(out)
}

/// Rows per model table.
pub fn counts(rows: &[IndexRow]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for r in rows {
        *out.entry(r.model.clone()).or_insert(0) += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_blocks_of_model_tables_only() {
        let text = "SET x = 1;\n\
            COPY public.ceramic_models (model, is_indexed) FROM stdin;\n\
            kjzl6hvfrbw6c5ajfmes842lu09vjxu5956e3xq0xk12gp2jcf9s90cagt2god9\tt\n\\.\n\
            COPY public.\"kjzl6hvfrbw6c5ajfmes842lu09vjxu5956e3xq0xk12gp2jcf9s90cagt2god9\" (stream_id, controller_did, tip) FROM stdin;\n\
            k1\tdid:key:z\tbagc1\nk2\tdid:key:z\t\\N\n\\.\n";
        let rows = parse_copy_blocks(text.as_bytes()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].tip.as_deref(), Some("bagc1"));
        assert_eq!(rows[1].tip, None);
        let cut = &text[..text.len() - 4];
        assert!(parse_copy_blocks(cut.as_bytes())
            .unwrap_err()
            .contains("not terminated"));
    }
}
