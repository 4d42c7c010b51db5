//! `audit` and `crawl`: resolve flags and config into a plan, run it on a tokio runtime, write
//! the outputs, and map the result to an exit code.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::flags::AuditFlags;
use super::{write_out, Failure, EXIT_DIVERGENCE, EXIT_INCOMPLETE, EXIT_INTERRUPTED, EXIT_OK};
use crate::audit;
use crate::config::ClusterConfig;
use crate::report::{self, Format, Kind};
use crate::source::snapshot;

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
    /// Divergence kinds that make the exit code 1 (comma-separated). Default: all but
    /// `unreachable` (which always gives exit code 2) and `in_flight`.
    #[arg(long, value_delimiter = ',', env = "CERAMIC_AUDIT_FAIL_ON")]
    pub fail_on: Option<Vec<Kind>>,
    #[command(flatten)]
    pub flags: AuditFlags,
    /// Print no summary on stdout and no progress display on stderr (reports are still
    /// written).
    #[arg(long, short, env = "CERAMIC_AUDIT_QUIET")]
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
    /// Seconds allowed to connect and for any single statement (1 to 86400).
    #[arg(
        long,
        default_value_t = 30,
        env = "CERAMIC_AUDIT_TIMEOUT_SECONDS",
        value_parser = clap::value_parser!(u64).range(1..=super::flags::MAX_TIMEOUT_SECONDS)
    )]
    pub timeout_seconds: u64,
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
    let mut options = args.flags.options().map_err(incomplete)?;
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
    options.progress = crate::progress::Progress::new("audit", args.quiet);
    let report = run_interruptible(audit::run(&config, &options));
    options.progress.finish();
    let report = report?;
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
