//! Temporary PostgreSQL servers for tests: `initdb` into a temp dir, `pg_ctl start` on a free
//! 127.0.0.1 port, removed on drop. Running as root, the server runs as the `postgres` user
//! (Postgres refuses root). If no server can start, the test fails with the reason — never a
//! silent skip.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;

pub struct TempPg {
    dir: tempfile::TempDir,
    pub port: u16,
    bin: PathBuf,
    run_as: Option<String>,
    /// The server options it was started with (for [`TempPg::restart`]).
    opts: String,
}

fn find_bin() -> Result<PathBuf, String> {
    if let Ok(out) = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
    {
        let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !p.is_empty() {
            let real = std::fs::canonicalize(&p).unwrap_or_else(|_| PathBuf::from(&p));
            if let Some(dir) = real.parent() {
                return Ok(dir.to_path_buf());
            }
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path().join("bin"))
                .filter(|p| p.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.pop().ok_or_else(|| {
        "PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql/*/bin); \
         run scripts/setup.sh, which installs it"
            .to_string()
    })
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false)
}

impl TempPg {
    /// Starts a server or panics with the reason (tests must not skip silently).
    pub fn start() -> Self {
        match Self::try_start(None) {
            Ok(pg) => pg,
            Err(e) => panic!("cannot start a temporary PostgreSQL for this test: {e}"),
        }
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<String, String> {
        let path = self.bin.join(program);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&path);
                c
            }
            None => Command::new(&path),
        };
        let out = cmd
            .args(args)
            .output()
            .map_err(|e| format!("{program}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{program} {args:?} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A server with `ssl = on` presenting `cert_pem` (chain) and `key_pem`; plain connections
    /// are still accepted (`pg_hba` `host` lines match both), so `sslmode=prefer` is testable
    /// against [`TempPg::start`] and the TLS modes against this one.
    pub fn start_tls(cert_pem: &str, key_pem: &str) -> Self {
        match Self::try_start(Some((cert_pem, key_pem))) {
            Ok(pg) => pg,
            Err(e) => panic!("cannot start a temporary PostgreSQL with TLS for this test: {e}"),
        }
    }

    fn try_start(tls: Option<(&str, &str)>) -> Result<Self, String> {
        let bin = find_bin()?;
        let dir = tempfile::Builder::new()
            .prefix("ceramic-audit-pg-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let run_as = is_root().then(|| "postgres".to_string());
        if let Some(user) = &run_as {
            let ok = Command::new("chown")
                .args(["-R", &format!("{user}:"), &dir.path().display().to_string()])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if !ok {
                return Err(format!("cannot chown {} to {user}", dir.path().display()));
            }
        }
        let mut pg = Self {
            dir,
            port: 0,
            bin,
            run_as,
            opts: String::new(),
        };
        let data = pg.data_dir();
        pg.run(
            "initdb",
            &[
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
        )?;
        let mut ssl = String::new();
        if let Some((cert, key)) = tls {
            use std::os::unix::fs::PermissionsExt;
            let dir = pg.dir.path().join("data");
            for (name, text) in [("server.crt", cert), ("server.key", key)] {
                let path = dir.join(name);
                std::fs::write(&path, text).map_err(|e| format!("{name}: {e}"))?;
                // Postgres refuses a key readable by others.
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| format!("{name}: {e}"))?;
                if let Some(user) = &pg.run_as {
                    let ok = Command::new("chown")
                        .args([&format!("{user}:"), &path.display().to_string()])
                        .status()
                        .map(|s| s.success())
                        .unwrap_or(false);
                    if !ok {
                        return Err(format!("cannot chown {} to {user}", path.display()));
                    }
                }
            }
            ssl = " -c ssl=on".into();
        }
        // A port can be taken between probing and binding: retry a few times.
        let mut last = String::new();
        for _ in 0..5 {
            pg.port = free_port()?;
            let opts = format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
                 -c full_page_writes=off -c shared_buffers=128MB{ssl}",
                pg.port,
                pg.dir.path().display()
            );
            let log = pg.dir.path().join("server.log").display().to_string();
            match pg.run(
                "pg_ctl",
                &[
                    "-D", &data, "-o", &opts, "-l", &log, "-w", "-t", "60", "start",
                ],
            ) {
                Ok(_) => {
                    pg.opts = opts;
                    return Ok(pg);
                }
                Err(e) => {
                    last = format!("{e}\n{}", std::fs::read_to_string(&log).unwrap_or_default());
                }
            }
        }
        Err(last)
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    pub fn dsn(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// What the server has logged so far.
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Runs SQL (several statements allowed) as the superuser.
    pub async fn execute(&self, sql: &str) {
        let client = self.client().await;
        client.batch_execute(sql).await.unwrap_or_else(|e| {
            let detail = e
                .as_db_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_string());
            panic!("SQL failed: {detail}\n{sql}")
        });
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.dsn(), tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect to temp Postgres on port {}: {e}", self.port));
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client
    }

    /// Starts the server again after [`TempPg::kill`], on the same port with the same data.
    pub fn restart(&self) {
        let log = self.dir.path().join("server.log").display().to_string();
        if let Err(e) = self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir(),
                "-o",
                &self.opts,
                "-l",
                &log,
                "-w",
                "-t",
                "60",
                "start",
            ],
        ) {
            panic!(
                "cannot restart the temporary PostgreSQL on port {}: {e}",
                self.port
            );
        }
    }

    /// Kills the postmaster at once (a node dying mid-audit).
    pub fn kill(&self) {
        let _ = self.run(
            "pg_ctl",
            &["-D", &self.data_dir(), "-m", "immediate", "-w", "stop"],
        );
    }
}

impl Drop for TempPg {
    fn drop(&mut self) {
        let _ = self.run(
            "pg_ctl",
            &["-D", &self.data_dir(), "-m", "immediate", "-w", "stop"],
        );
    }
}
