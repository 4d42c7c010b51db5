//! `ceramic-audit watch`: audits on a schedule until SIGINT/SIGTERM. See `crate::watch`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::commands::{incomplete, runtime};
use super::{write_out, Failure, EXIT_OK};
use crate::audit::AuditOptions;
use crate::config::ClusterConfig;
use crate::repair::plan::Targets;
use crate::repair::RepairOptions;
use crate::source::{Compare, Mode};
use crate::watch::schedule::{random_unit, Schedule};
use crate::watch::{self, AutoRepair, WatchOptions, Watcher};

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (e.g. 30s, 15m, 24h)"))
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The cluster file.
    #[arg(long, env = "CERAMIC_AUDIT_CONFIG")]
    pub config: PathBuf,
    /// Time between cycle starts.
    #[arg(long, default_value = "15m", value_parser = duration, env = "CERAMIC_AUDIT_EVERY")]
    pub every: Duration,
    /// Up to this share of --every is added at random to each wait (0–1).
    #[arg(long, default_value_t = 0.1)]
    pub jitter: f64,
    /// Cycle reports (one directory each), `latest`, the state file and the repair journal.
    #[arg(long, default_value = "reports/watch", env = "CERAMIC_AUDIT_WATCH_DIR")]
    pub dir: PathBuf,
    /// Cycle report directories kept.
    #[arg(long, default_value_t = 96)]
    pub keep: usize,
    /// A full audit at least this often; the cycles between compare changed rows only.
    #[arg(long, default_value = "24h", value_parser = duration)]
    pub full_every: Duration,
    /// Safety margin subtracted from the `updated_at` watermarks of incremental cycles.
    #[arg(long, default_value = "5m", value_parser = duration)]
    pub margin: Duration,
    /// Divergences seen in this many consecutive cycles count as alerting (metrics).
    #[arg(long, default_value_t = 2)]
    pub alert_after: u32,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464).
    #[arg(long, env = "CERAMIC_AUDIT_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Also write the metrics to this file (node_exporter's textfile collector).
    #[arg(long)]
    pub metrics_textfile: Option<PathBuf>,
    /// Stop after this many cycles (default: run until SIGINT/SIGTERM).
    #[arg(long)]
    pub cycles: Option<u64>,
    /// Repair lagging and missing streams that persisted --repair-after cycles.
    #[arg(long, requires = "nodes")]
    pub repair: bool,
    /// The only nodes auto-repair writes to (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub nodes: Vec<String>,
    /// Auto-repair actions per cycle at most.
    #[arg(long, default_value_t = 100)]
    pub repair_max: usize,
    /// Cycles a divergence must persist before auto-repair touches it.
    #[arg(long, default_value_t = 2)]
    pub repair_after: u32,
    /// Postgres nodes: fingerprints computed by Postgres, or rows downloaded.
    #[arg(long, value_enum, default_value_t = Mode::Pushdown)]
    pub mode: Mode,
    /// Columns compared.
    #[arg(long, value_enum, default_value_t = Compare::All)]
    pub compare: Compare,
    /// Per connection attempt, SQL statement and HTTP request.
    #[arg(long, default_value_t = 30)]
    pub timeout_seconds: u64,
    /// Do not call the nodes' HTTP APIs (no log classification, no pin lists).
    #[arg(long)]
    pub no_logs: bool,
    /// Pause before differing rows are read again (rows changed meanwhile are `in_flight`).
    #[arg(long, default_value_t = 3.0)]
    pub settle_seconds: f64,
    #[command(flatten)]
    pub gate: GateArgs,
}

/// The readiness gate served at `/ready/<node>` on `--metrics-listen` (`crate::watch::gate`).
#[derive(Debug, Args)]
pub struct GateArgs {
    /// Divergence kinds that take a node out of rotation (comma-separated).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "missing_stream,tip_mismatch,lagging,forked,index_stale,index_missing,content_mismatch,invalid_row",
        env = "CERAMIC_AUDIT_GATE_ON"
    )]
    pub gate_on: Vec<crate::report::Kind>,
    /// ... once first seen at least this long ago (e.g. 30s, 5m).
    #[arg(long, default_value = "1m", value_parser = duration, env = "CERAMIC_AUDIT_GATE_AFTER")]
    pub gate_after: Duration,
}

pub fn watch(args: WatchArgs, out: &mut dyn Write) -> Result<i32, Failure> {
    let config = ClusterConfig::load(&args.config).map_err(|e| incomplete(e.to_string()))?;
    if !(0.0..=1.0).contains(&args.jitter) {
        return Err(incomplete(format!(
            "--jitter {}: expected 0 to 1",
            args.jitter
        )));
    }
    if args.every.is_zero() {
        return Err(incomplete("--every must be longer than 0".into()));
    }
    for n in &args.nodes {
        if !config.nodes.iter().any(|c| &c.name == n) {
            return Err(incomplete(format!(
                "--nodes: no node {n:?} in {}",
                args.config.display()
            )));
        }
    }
    let timeout = Duration::from_secs(args.timeout_seconds.max(1));
    let options = WatchOptions {
        schedule: Schedule {
            every: args.every,
            jitter: args.jitter,
        },
        dir: args.dir.clone(),
        keep: args.keep.max(1),
        full_every: args.full_every,
        margin: args.margin,
        alert_after: args.alert_after.max(1),
        audit: AuditOptions {
            mode: args.mode,
            compare: args.compare,
            timeout,
            read_logs: !args.no_logs,
            settle: Duration::try_from_secs_f64(args.settle_seconds).map_err(|_| {
                incomplete(format!(
                    "--settle-seconds {}: expected a number of seconds ≥ 0",
                    args.settle_seconds
                ))
            })?,
            ..AuditOptions::default()
        },
        metrics_textfile: args.metrics_textfile.clone(),
        repair: args.repair.then(|| AutoRepair {
            options: RepairOptions {
                targets: Targets::Named(args.nodes.clone()),
                timeout,
                ..RepairOptions::default()
            },
            max: args.repair_max,
            after: args.repair_after.max(1),
        }),
    };
    let mut watcher = Watcher::new(config, options.clone()).map_err(incomplete)?;
    let rt = runtime()?;
    rt.block_on(async {
        let shutdown = super::signals::cancel_on_signal();
        if let Some(addr) = &args.metrics_listen {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| incomplete(format!("--metrics-listen {addr}: cannot listen: {e}")))?;
            tracing::info!("metrics on http://{addr}/metrics");
            let endpoints = watch::http::Endpoints {
                metrics: watcher.metrics(),
                gate: watcher.gate(),
                gate_rules: watch::gate::Rules {
                    on: args.gate.gate_on.clone(),
                    after: args.gate.gate_after,
                },
            };
            tokio::spawn(watch::http::serve(
                listener,
                watch::http::router(endpoints),
                shutdown.clone(),
            ));
        }
        let watcher = Arc::new(tokio::sync::Mutex::new(&mut watcher));
        let summary = watch::run_loop(
            options.schedule,
            args.cycles,
            |n| {
                let watcher = watcher.clone();
                async move {
                    let mut w = watcher.lock().await;
                    match w.cycle().await {
                        Ok(c) => tracing::info!(
                            "cycle {n} ({}): {} divergence(s), {} healed, report {}",
                            c.info.kind.as_str(),
                            c.report.divergences.len(),
                            c.info.healed.len(),
                            c.dir.display()
                        ),
                        Err(e) => tracing::error!("cycle {n}: {e}"),
                    }
                }
            },
            shutdown.cancelled(),
            random_unit,
        )
        .await;
        let text = format!(
            "watch: {} cycle(s){}{}",
            summary.starts.len(),
            if summary.abandoned {
                "; the cycle in flight at shutdown was abandoned (no report written for it)"
            } else {
                ""
            },
            if summary.overruns.is_empty() {
                String::new()
            } else {
                format!("; {} cycle(s) outlasted --every", summary.overruns.len())
            }
        );
        write_out(out, &text)?;
        Ok::<i32, Failure>(EXIT_OK)
    })
}
