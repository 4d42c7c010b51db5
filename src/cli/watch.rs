//! `ceramic-audit watch`: audits on a schedule until SIGINT/SIGTERM. See `crate::watch`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::commands::{incomplete, runtime};
use super::flags::{count, human_duration, share, AuditFlags};
use super::{write_out, Failure, EXIT_INCOMPLETE, EXIT_OK};
use crate::config::ClusterConfig;
use crate::repair::plan::Targets;
use crate::repair::RepairOptions;
use crate::watch::schedule::{random_unit, Schedule};
use crate::watch::{self, AutoRepair, WatchOptions, Watcher};

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The cluster file.
    #[arg(long, env = "CERAMIC_AUDIT_CONFIG")]
    pub config: PathBuf,
    /// Time between cycle starts (more than 0, at most 366 days).
    #[arg(long, default_value = "15m", value_parser = human_duration, env = "CERAMIC_AUDIT_EVERY")]
    pub every: Duration,
    /// Up to this share of --every is added at random to each wait (0–1).
    #[arg(long, default_value_t = 0.1, value_parser = share, env = "CERAMIC_AUDIT_JITTER")]
    pub jitter: f64,
    /// Cycle reports (one directory each), `latest`, the state file and the repair journal.
    #[arg(long, default_value = "reports/watch", env = "CERAMIC_AUDIT_WATCH_DIR")]
    pub dir: PathBuf,
    /// Cycle report directories kept (1 to 100000).
    #[arg(long, default_value_t = 96, value_parser = count(1, 100_000), env = "CERAMIC_AUDIT_KEEP")]
    pub keep: usize,
    /// A full audit at least this often; the cycles between compare changed rows only.
    #[arg(long, default_value = "24h", value_parser = human_duration, env = "CERAMIC_AUDIT_FULL_EVERY")]
    pub full_every: Duration,
    /// Safety margin subtracted from the `updated_at` watermarks of incremental cycles.
    #[arg(long, default_value = "5m", value_parser = human_duration, env = "CERAMIC_AUDIT_MARGIN")]
    pub margin: Duration,
    /// Divergences seen in this many consecutive cycles count as alerting (metrics).
    #[arg(
        long,
        default_value_t = 2,
        value_parser = clap::value_parser!(u32).range(1..),
        env = "CERAMIC_AUDIT_ALERT_AFTER"
    )]
    pub alert_after: u32,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464).
    #[arg(long, env = "CERAMIC_AUDIT_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Also write the metrics to this file (node_exporter's textfile collector).
    #[arg(long, env = "CERAMIC_AUDIT_METRICS_TEXTFILE")]
    pub metrics_textfile: Option<PathBuf>,
    /// Stop after this many cycles (default: run until SIGINT/SIGTERM).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), env = "CERAMIC_AUDIT_CYCLES")]
    pub cycles: Option<u64>,
    /// Repair lagging and missing streams that persisted --repair-after cycles. Not read from
    /// the environment: a variable left set must not turn watching into writing.
    #[arg(long, requires = "nodes")]
    pub repair: bool,
    /// The only nodes auto-repair writes to (comma-separated).
    #[arg(long, value_delimiter = ',', env = "CERAMIC_AUDIT_NODES")]
    pub nodes: Vec<String>,
    /// Auto-repair actions per cycle at most (1 to 100000).
    #[arg(long, default_value_t = 100, value_parser = count(1, 100_000), env = "CERAMIC_AUDIT_REPAIR_MAX")]
    pub repair_max: usize,
    /// Cycles a divergence must persist before auto-repair touches it.
    #[arg(
        long,
        default_value_t = 2,
        value_parser = clap::value_parser!(u32).range(1..),
        env = "CERAMIC_AUDIT_REPAIR_AFTER"
    )]
    pub repair_after: u32,
    /// No progress display on stderr (it is drawn only on a terminal anyway).
    #[arg(long, short, env = "CERAMIC_AUDIT_QUIET")]
    pub quiet: bool,
    #[command(flatten)]
    pub flags: AuditFlags,
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
    #[arg(long, default_value = "1m", value_parser = human_duration, env = "CERAMIC_AUDIT_GATE_AFTER")]
    pub gate_after: Duration,
}

pub fn watch(args: WatchArgs, out: &mut dyn Write) -> Result<i32, Failure> {
    let config = ClusterConfig::load(&args.config).map_err(|e| incomplete(e.to_string()))?;
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
    let timeout = args.flags.timeout();
    let mut audit = args.flags.options().map_err(incomplete)?;
    audit.progress = crate::progress::Progress::new("watch", args.quiet);
    let progress = audit.progress.clone();
    let options = WatchOptions {
        schedule: Schedule {
            every: args.every,
            jitter: args.jitter,
        },
        dir: args.dir.clone(),
        keep: args.keep,
        full_every: args.full_every,
        margin: args.margin,
        alert_after: args.alert_after,
        audit,
        metrics_textfile: args.metrics_textfile.clone(),
        repair: args.repair.then(|| AutoRepair {
            options: RepairOptions {
                targets: Targets::Named(args.nodes.clone()),
                timeout,
                progress: progress.clone(),
                ..RepairOptions::default()
            },
            max: args.repair_max,
            after: args.repair_after,
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
        // Cycles that failed (no report written) or whose report is incomplete: if every cycle
        // was one or the other, the exit code is 2.
        let failed = Arc::new(AtomicU64::new(0));
        let incomplete = Arc::new(AtomicU64::new(0));
        let summary = watch::run_loop(
            options.schedule,
            args.cycles,
            |n| {
                let watcher = watcher.clone();
                let (failed, progress) = (failed.clone(), progress.clone());
                let incomplete = incomplete.clone();
                async move {
                    let mut w = watcher.lock().await;
                    match w.cycle().await {
                        Ok(c) => {
                            if !c.report.complete {
                                incomplete.fetch_add(1, Ordering::Relaxed);
                            }
                            tracing::info!(
                                "cycle {n} ({}{}): {} divergence(s), {} healed, report {}",
                                c.info.kind.as_str(),
                                if c.report.complete {
                                    ""
                                } else {
                                    ", INCOMPLETE"
                                },
                                c.report.divergences.len(),
                                c.info.healed.len(),
                                c.dir.display()
                            )
                        }
                        Err(e) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            tracing::error!("cycle {n}: {e}");
                        }
                    }
                    progress.stage(&format!("cycle {n} done, waiting for the next"), None);
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
        progress.finish();
        let failed = failed.load(Ordering::Relaxed);
        let incomplete = incomplete.load(Ordering::Relaxed);
        let ran = summary.starts.len() as u64;
        let mut text = text;
        if failed > 0 {
            text.push_str(&format!(
                "; {failed} cycle(s) failed (no report written; see the log)"
            ));
        }
        if incomplete > 0 {
            text.push_str(&format!("; {incomplete} cycle(s) incomplete"));
        }
        write_out(out, &text)?;
        // A bounded run (`--cycles N`: a script, CI) in which no cycle saw the whole cluster
        // watched nothing: say so in the exit code, not only in the log. A service stopped by
        // a signal keeps exit code 0 (its cycles are in the reports and metrics).
        Ok::<i32, Failure>(
            if args.cycles.is_some() && ran > 0 && failed + incomplete == ran {
                EXIT_INCOMPLETE
            } else {
                EXIT_OK
            },
        )
    })
}
