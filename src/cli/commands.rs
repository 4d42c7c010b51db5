//! `audit` and `crawl`: resolve flags and config into a plan, run it on a tokio runtime, write
//! the outputs, and map the result to an exit code.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{write_out, Failure, EXIT_DIVERGENCE, EXIT_INCOMPLETE, EXIT_INTERRUPTED, EXIT_OK};
use crate::audit::verify::VerifyState;
use crate::audit::{self, AuditOptions};
use crate::config::ClusterConfig;
use crate::recon::DescentParams;
use crate::report::{self, Format, Kind};
use crate::source::snapshot;
use crate::source::{Compare, Mode, RowCheck};

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The cluster file (TOML): nodes and where their indexes are.
    #[arg(long, env = "CERAMIC_AUDIT_CONFIG")]
    pub config: PathBuf,
    /// Report directory, or `-` to print the report on stdout (JSON if asked, else CSV).
    /// Default: `reports/<UTC time>/`.
    #[arg(long, env = "CERAMIC_AUDIT_OUT")]
    pub out: Option<PathBuf>,
    /// Report formats, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "csv,json",
        env = "CERAMIC_AUDIT_FORMAT"
    )]
    pub format: Vec<Format>,
    /// How Postgres nodes are read: fingerprints computed by Postgres, or every row downloaded.
    #[arg(
        long,
        value_enum,
        default_value = "pushdown",
        env = "CERAMIC_AUDIT_MODE"
    )]
    pub mode: Mode,
    /// Divergence kinds that make the exit code 1 (comma-separated). Default: all but
    /// `unreachable` (which always gives exit code 2) and `in_flight`.
    #[arg(long, value_delimiter = ',', env = "CERAMIC_AUDIT_FAIL_ON")]
    pub fail_on: Option<Vec<Kind>>,
    /// Seconds allowed to connect to a node and for any single statement.
    #[arg(long, default_value_t = 30, env = "CERAMIC_AUDIT_TIMEOUT_SECONDS")]
    pub timeout_seconds: u64,
    /// Sub-ranges of the first split (see README "How the comparison works").
    #[arg(long, default_value_t = DescentParams::default().root_fanout, env = "CERAMIC_AUDIT_ROOT_FANOUT")]
    pub root_fanout: usize,
    /// Sub-ranges of later splits.
    #[arg(long, default_value_t = DescentParams::default().fanout, env = "CERAMIC_AUDIT_FANOUT")]
    pub fanout: usize,
    /// A differing range with at most this many rows on every node is compared row by row.
    #[arg(long, default_value_t = DescentParams::default().leaf_threshold, env = "CERAMIC_AUDIT_LEAF_THRESHOLD")]
    pub leaf_threshold: u64,
    /// Seconds to wait before differing rows are read again; rows that changed meanwhile are
    /// reported `in_flight` (a write still propagating), not as divergences. 0 skips it.
    #[arg(long, default_value_t = audit::DEFAULT_SETTLE_SECONDS as f64, env = "CERAMIC_AUDIT_SETTLE_SECONDS")]
    pub settle_seconds: f64,
    /// How Postgres nodes (push-down) look for malformed rows that every node holds alike:
    /// `quick` (NULL/short tips and ids) or `full` (every id and tip against its alphabet; costs
    /// as much as the fingerprints). Differing rows are always parsed exactly.
    #[arg(
        long,
        value_enum,
        default_value = "quick",
        env = "CERAMIC_AUDIT_ROW_CHECK"
    )]
    pub row_check: RowCheck,
    /// Columns compared: `all` (tip, controller, content, anchor times, custom columns) or
    /// `tips` (stream id and tip only: what a missed update changes; several times cheaper on
    /// Postgres, blind to content mismatches under an equal tip).
    #[arg(long, value_enum, default_value = "all", env = "CERAMIC_AUDIT_COMPARE")]
    pub compare: Compare,
    /// Stop comparing a model once this many differing streams are found (the report lists
    /// them and says it stopped; exit code 2).
    #[arg(long, env = "CERAMIC_AUDIT_MAX_DIFFS")]
    pub max_diffs: Option<u64>,
    /// Stop comparing once the audit has run this many seconds (what was found is reported;
    /// exit code 2). Statements in flight finish first.
    #[arg(long, env = "CERAMIC_AUDIT_MAX_SECONDS")]
    pub max_seconds: Option<f64>,
    /// Do not read the nodes' HTTP APIs (`api_url`) about differing streams: tip differences
    /// then stay `tip_mismatch` instead of `lagging`, `forked` or `index_stale`, and missing
    /// rows stay `missing_stream` (no pin list is read, so no `index_missing`).
    #[arg(long, env = "CERAMIC_AUDIT_NO_LOGS")]
    pub no_logs: bool,
    /// Also compare index rows with their own node's stream state where the nodes agree:
    /// `all` rows, `sample:N` rows per node and model drawn at random, or `off`. Finds an index
    /// row left behind on every node at once. Costs one HTTP load per row asked.
    #[arg(long, env = "CERAMIC_AUDIT_VERIFY_STATE", default_value = "off", value_parser = parse_verify)]
    pub verify_state: VerifyState,
    /// Print no summary on stdout (reports are still written).
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct CrawlArgs {
    /// The cluster file (TOML).
    #[arg(long, env = "CERAMIC_AUDIT_CONFIG")]
    pub config: PathBuf,
    /// The node to crawl (its `name` in the cluster file).
    #[arg(long)]
    pub node: String,
    /// The snapshot file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Seconds allowed to connect and for any single statement.
    #[arg(long, default_value_t = 30, env = "CERAMIC_AUDIT_TIMEOUT_SECONDS")]
    pub timeout_seconds: u64,
}

fn parse_verify(s: &str) -> Result<VerifyState, String> {
    s.parse()
}

pub(super) fn incomplete(message: String) -> Failure {
    Failure {
        code: EXIT_INCOMPLETE,
        message,
    }
}

pub(super) fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| incomplete(format!("cannot start the async runtime: {e}")))
}

/// Runs `fut` to completion, or returns exit code 130 on Ctrl-C or SIGTERM (nothing
/// half-written: reports are written only after the audit finished, each atomically).
fn run_interruptible<T>(fut: impl std::future::Future<Output = T>) -> Result<T, Failure> {
    let rt = runtime()?;
    rt.block_on(async {
        let stop = super::signals::cancel_on_signal();
        tokio::select! {
            v = fut => Ok(v),
            _ = stop.cancelled() => Err(Failure {
                code: EXIT_INTERRUPTED,
                message: "interrupted; no report written".into(),
            }),
        }
    })
}

pub(super) fn report_dir() -> PathBuf {
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]-[minute]-[second]Z"
        ))
        .unwrap_or_else(|_| "report".into());
    PathBuf::from("reports").join(stamp)
}

pub fn audit(args: AuditArgs, out: &mut dyn Write) -> Result<i32, Failure> {
    let config = ClusterConfig::load(&args.config).map_err(|e| incomplete(e.to_string()))?;
    let params = DescentParams {
        root_fanout: args.root_fanout,
        fanout: args.fanout,
        leaf_threshold: args.leaf_threshold,
        ..DescentParams::default()
    };
    crate::recon::Descent::<crate::source::IndexHash>::new(2, params.clone())
        .map_err(|e| incomplete(format!("--root-fanout/--fanout/--leaf-threshold: {e}")))?;
    if args.format.is_empty() {
        return Err(incomplete(
            "--format needs at least one of csv, json".into(),
        ));
    }
    // Validate the output location before the long work (hyperfine's manners).
    let to_stdout = args.out.as_deref() == Some(std::path::Path::new("-"));
    let dir = match &args.out {
        Some(p) if !to_stdout => p.clone(),
        _ => report_dir(),
    };
    if !to_stdout {
        std::fs::create_dir_all(&dir).map_err(|e| {
            incomplete(format!(
                "--out {}: cannot create the report directory: {e}",
                dir.display()
            ))
        })?;
    }
    let options = AuditOptions {
        mode: args.mode,
        params,
        timeout: Duration::from_secs(args.timeout_seconds.max(1)),
        row_check: args.row_check,
        compare: args.compare,
        max_diffs: args.max_diffs,
        read_logs: !args.no_logs,
        verify_state: args.verify_state,
        scope: None,
        max_duration: args
            .max_seconds
            .map(|s| {
                Duration::try_from_secs_f64(s).map_err(|_| {
                    incomplete(format!(
                        "--max-seconds {s}: expected a number of seconds ≥ 0"
                    ))
                })
            })
            .transpose()?,
        settle: Duration::try_from_secs_f64(args.settle_seconds).map_err(|_| {
            incomplete(format!(
                "--settle-seconds {}: expected a number of seconds ≥ 0",
                args.settle_seconds
            ))
        })?,
    };
    let report = run_interruptible(audit::run(&config, &options))?;
    if to_stdout {
        let bytes = if args.format.contains(&Format::Json) {
            report::json::render(&report)
        } else {
            report::csv::render(&report)
        }
        .map_err(|e| incomplete(format!("cannot render the report: {e}")))?;
        write_out(out, String::from_utf8_lossy(&bytes).trim_end())?;
    } else {
        let written = report::write_dir(&dir, &report, &args.format).map_err(|e| {
            incomplete(format!("cannot write the report to {}: {e}", dir.display()))
        })?;
        if !args.quiet {
            let mut text = report::summary::render(&report);
            text.push_str(&format!("\nreport: {}", written.join(", ")));
            write_out(out, &text)?;
        }
    }
    let fail_on: Vec<Kind> = args.fail_on.unwrap_or_else(|| {
        Kind::ALL
            .iter()
            .copied()
            .filter(|k| !matches!(k, Kind::Unreachable | Kind::InFlight))
            .collect()
    });
    Ok(if !report.complete {
        EXIT_INCOMPLETE
    } else if report.count_of(&fail_on) > 0 {
        EXIT_DIVERGENCE
    } else {
        EXIT_OK
    })
}

pub fn crawl(args: CrawlArgs, out: &mut dyn Write) -> Result<i32, Failure> {
    let config = ClusterConfig::load(&args.config).map_err(|e| incomplete(e.to_string()))?;
    let node_config = config
        .nodes
        .iter()
        .find(|n| n.name == args.node)
        .ok_or_else(|| {
            incomplete(format!(
                "--node {}: no such node in {} (nodes: {})",
                args.node,
                args.config.display(),
                config
                    .nodes
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?
        .clone();
    let timeout = Duration::from_secs(args.timeout_seconds.max(1));
    let file = run_interruptible(snapshot::crawl(&node_config, &config.cluster, timeout))?
        .map_err(|e| incomplete(e.to_string()))?;
    let rows: usize = file.models.values().map(|m| m.rows.len()).sum();
    snapshot::write(&args.out, &file).map_err(incomplete)?;
    write_out(
        out,
        &format!(
            "node {}: {} model(s), {rows} row(s) written to {}",
            args.node,
            file.models.len(),
            args.out.display()
        ),
    )?;
    Ok(EXIT_OK)
}
