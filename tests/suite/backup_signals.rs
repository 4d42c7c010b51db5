//! An interrupted backup leaves no `pg_dump` behind: SIGTERM while pg_dump runs against a real
//! Postgres (held back by a lock another session keeps, as a busy production table would) exits
//! 130 with the dump process killed and reaped, and the server never finishes that dump.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::pg::TempPg;

/// The pids of `parent`'s children running `comm` (from /proc).
fn children_named(parent: u32, comm: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // `pid (comm) state ppid …`; comm may hold spaces, so split after the last ')'.
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                return false;
            };
            let ppid = stat[close + 1..].split_whitespace().nth(1);
            &stat[open + 1..close] == comm && ppid == Some(&parent.to_string())
        })
        .collect()
}

/// Bytes of the files directly in `dir` (0 when it does not exist).
fn bytes_under(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Sessions on the server whose client is pg_dump.
async fn dump_sessions(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_dump'",
            &[],
        )
        .await
        .expect("pg_stat_activity")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_pg_dump_kills_and_reaps_it() {
    let pg = TempPg::start();
    pg.execute("CREATE TABLE orders (id int PRIMARY KEY, note text)")
        .await;
    pg.execute("INSERT INTO orders SELECT i, 'n' || i FROM generate_series(1, 100) i")
        .await;
    // Another session holds the table: pg_dump waits for its lock, so it is still running when
    // the signal comes, however fast the machine.
    let locker = pg.client().await;
    locker
        .batch_execute("BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    // Watched from a session of its own: inside the locker's transaction pg_stat_activity is
    // one snapshot.
    let watcher = pg.client().await;

    let root = tempfile::tempdir().expect("temp dir");
    let cfg = root.path().join("cluster.toml");
    std::fs::write(
        &cfg,
        format!(
            "cluster = \"t\"\n[[nodes]]\nname = \"a\"\nindex = \"sqlite:///nonexistent\"\n[[nodes]]\nname = \"b\"\nindex = \"{}\"\n\
             state_store = \"statestore\"\nipfs_api = \"http://127.0.0.1:9\"\n",
            pg.dsn()
        ),
    )
    .expect("write config");
    let out = root.path().join("bk");
    let mut backup = Command::new(env!("CARGO_BIN_EXE_ceramic-audit"))
        .args(["backup", "-q", "--node", "b", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn backup");

    // Bounded: pg_dump starts within seconds (the index is the first layer).
    let started = Instant::now();
    let dump = loop {
        if let Some(&pid) = children_named(backup.id(), "pg_dump").first() {
            break pid;
        }
        assert!(
            backup.try_wait().expect("try_wait").is_none(),
            "the backup ended before pg_dump ran: {:?}",
            backup.wait_with_output()
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no pg_dump child after 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // Until it holds a session on the server (it is then waiting for the lock).
    while dump_sessions(&watcher).await == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "pg_dump never connected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let killed = Command::new("kill")
        .args(["-TERM", &backup.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let stopping = Instant::now();
    let status = loop {
        if let Some(status) = backup.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(15),
            "the backup did not stop within 15 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = backup.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("unfinished backup"), "{stderr}");
    // The dump process is gone, not orphaned: killed and reaped before the exit.
    assert!(
        !std::path::Path::new(&format!("/proc/{dump}")).exists(),
        "pg_dump (pid {dump}) outlived the interrupted backup"
    );
    assert!(!out.join("manifest.json").exists());

    // Once the lock is released, no dump resumes on the server: its session ends (the server
    // notices the closed connection when the lock wait ends) and nothing is written.
    locker.batch_execute("ROLLBACK").await.expect("unlock");
    let released = Instant::now();
    while dump_sessions(&watcher).await > 0 {
        assert!(
            released.elapsed() < Duration::from_secs(10),
            "a pg_dump session still runs on the server 10 s after the interrupted backup"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dumped = bytes_under(&out.join("index"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        dumped,
        bytes_under(&out.join("index")),
        "the dump file kept growing after the exit"
    );
}
