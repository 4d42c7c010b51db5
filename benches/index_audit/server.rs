//! What a method costs the Postgres servers: CPU seconds of each server's processes (from
//! /proc, the postmaster's own and reaped children's times plus its live children's), and the
//! longest single statement (from the server log, every statement's duration logged).

use std::path::PathBuf;

pub struct Server {
    pub postmaster: u32,
    pub log: PathBuf,
}

/// Clock ticks a second of /proc's times (`getconf CLK_TCK`; 100 on Linux).
fn ticks_per_s() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Fields of /proc/<pid>/stat after the command name: (ppid, utime, stime, cutime, cstime).
fn stat(pid: u32) -> Option<(u32, u64, u64, u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the state (f[0]): ppid is field 4 overall (f[1]); utime..cstime fields 14–17.
    Some((
        f.get(1)?.parse().ok()?,
        f.get(11)?.parse().ok()?,
        f.get(12)?.parse().ok()?,
        f.get(13)?.parse().ok()?,
        f.get(14)?.parse().ok()?,
    ))
}

impl Server {
    /// Finds the server's postmaster (the parent of a backend) and log file.
    pub async fn find(pg: &super::pg::TempPg) -> Server {
        let client = pg.client().await;
        // Every statement's duration goes to the log (parameters left out: a round's bounds
        // arrays would fill it).
        for sql in [
            "ALTER SYSTEM SET log_min_duration_statement = 0",
            "ALTER SYSTEM SET log_parameter_max_length = 0",
            "SELECT pg_reload_conf()",
        ] {
            client
                .batch_execute(sql)
                .await
                .expect("log statement durations");
        }
        let row = client
            .query_one(
                "SELECT pg_backend_pid(), current_setting('data_directory')",
                &[],
            )
            .await
            .expect("backend pid");
        let backend: i32 = row.get(0);
        let data: String = row.get(1);
        let postmaster = stat(backend as u32).map(|s| s.0).expect("postmaster pid");
        let log = PathBuf::from(data)
            .parent()
            .map(|p| p.join("server.log"))
            .expect("server log");
        Server { postmaster, log }
    }

    /// CPU seconds of the server so far (exited backends included once reaped).
    pub fn cpu_s(&self) -> f64 {
        let mut ticks = 0u64;
        if let Some((_, u, s, cu, cs)) = stat(self.postmaster) {
            ticks += u + s + cu + cs;
        }
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for e in dir.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                    continue;
                };
                if let Some((ppid, u, s, _, _)) = stat(pid) {
                    if ppid == self.postmaster {
                        ticks += u + s;
                    }
                }
            }
        }
        ticks as f64 / ticks_per_s()
    }

    pub fn log_len(&self) -> u64 {
        std::fs::metadata(&self.log).map_or(0, |m| m.len())
    }

    /// The longest statement logged after byte `from` of the log, in seconds.
    pub fn longest_statement_s(&self, from: u64) -> f64 {
        let text = std::fs::read(&self.log).unwrap_or_default();
        let tail = String::from_utf8_lossy(&text[(from as usize).min(text.len())..]).into_owned();
        tail.lines()
            .filter_map(|l| {
                let ms = l.split("duration: ").nth(1)?.split(" ms").next()?;
                ms.trim().parse::<f64>().ok()
            })
            .fold(0.0, f64::max)
            / 1000.0
    }
}

/// Server cost of one method: per server CPU seconds and the longest statement.
pub struct Meter {
    cpu: Vec<f64>,
    logs: Vec<u64>,
}

impl Meter {
    pub fn start(servers: &[Server]) -> Meter {
        Meter {
            cpu: servers.iter().map(Server::cpu_s).collect(),
            logs: servers.iter().map(Server::log_len).collect(),
        }
    }

    /// `(cpu seconds per server, longest statement seconds)`; waits for backends to be reaped.
    pub fn stop(&self, servers: &[Server]) -> (Vec<f64>, f64) {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let cpu = servers
            .iter()
            .zip(&self.cpu)
            .map(|(s, before)| ((s.cpu_s() - before) * 100.0).round() / 100.0)
            .collect();
        let longest = servers
            .iter()
            .zip(&self.logs)
            .map(|(s, from)| s.longest_statement_s(*from))
            .fold(0.0, f64::max);
        (cpu, longest)
    }
}
