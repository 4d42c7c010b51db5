//! `ceramic-audit repair`: plan (dry run, the default) or apply re-publication of missing
//! commits to lagging nodes. See `crate::repair`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use clap::Args;

use super::commands::{incomplete, report_dir, runtime};
use super::flags::{count, rate, AuditFlags, MAX_TIMEOUT_SECONDS};
use super::{write_out, Failure, EXIT_DIVERGENCE, EXIT_INCOMPLETE, EXIT_INTERRUPTED, EXIT_OK};
use crate::atomic::write as write_atomic;
use crate::audit;
use crate::config::ClusterConfig;
use crate::repair::journal::Journal;
use crate::repair::plan::{self, Targets};
use crate::repair::{self as r, RepairOptions, RepairReport, Status, Verdict};
use crate::report::Divergence;

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("targets").required(true).args(["nodes", "all_lagging"])))]
pub struct RepairArgs {
    /// The cluster file.
    #[arg(long, env = "CERAMIC_AUDIT_CONFIG")]
    pub config: PathBuf,
    /// Repair what this audit report (`report.json`) lists, instead of auditing first.
    #[arg(long, value_name = "REPORT_JSON", env = "CERAMIC_AUDIT_FROM_REPORT")]
    pub from_report: Option<PathBuf>,
    /// The only nodes written to (comma-separated names).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "NODES",
        env = "CERAMIC_AUDIT_NODES"
    )]
    pub nodes: Vec<String>,
    /// Write to every node that has something to repair.
    #[arg(long, env = "CERAMIC_AUDIT_ALL_LAGGING")]
    pub all_lagging: bool,
    /// Execute the plan (without it: a dry run that writes nothing to any node). Deliberately
    /// not read from the environment: a variable left set must not turn a dry run into writes.
    #[arg(long)]
    pub apply: bool,
    /// Push the predicted winner's branch to nodes on a losing fork.
    #[arg(long, env = "CERAMIC_AUDIT_RESOLVE_FORKS")]
    pub resolve_forks: bool,
    /// Publish re-applied commits over pubsub (off: only the target is written to).
    #[arg(long, env = "CERAMIC_AUDIT_PUBLISH")]
    pub publish: bool,
    /// ceramic-one: register the interests `not_interested` rows name, on the nodes that lack
    /// them (the plan says what each node will then download). Deliberately not read from the
    /// environment: an interest changes what a node stores from then on.
    #[arg(long)]
    pub add_interest: bool,
    /// Where plan.csv/json and repair.csv/json go (default reports/repair-<UTC time>/).
    #[arg(long, env = "CERAMIC_AUDIT_REPAIR_OUT")]
    pub out: Option<PathBuf>,
    /// The append-only journal shared by runs (re-runs skip what it records as done).
    #[arg(
        long,
        default_value = "reports/repair-journal.jsonl",
        env = "CERAMIC_AUDIT_JOURNAL"
    )]
    pub journal: PathBuf,
    /// Per action: every request and the verification together (1 to 86400 seconds).
    #[arg(
        long,
        default_value_t = 180,
        value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_SECONDS),
        env = "CERAMIC_AUDIT_ACTION_SECONDS"
    )]
    pub action_seconds: u64,
    /// How long a repaired node may take to show the winning tip in its state and index (0 to
    /// 86400 seconds).
    #[arg(
        long,
        default_value_t = 20,
        value_parser = clap::value_parser!(u64).range(0..=MAX_TIMEOUT_SECONDS),
        env = "CERAMIC_AUDIT_VERIFY_SECONDS"
    )]
    pub verify_seconds: u64,
    /// Consecutive failures on one node before its remaining actions are skipped.
    #[arg(
        long,
        default_value_t = 5,
        value_parser = clap::value_parser!(u32).range(1..),
        env = "CERAMIC_AUDIT_MAX_FAILURES"
    )]
    pub max_failures: u32,
    /// Requests per second to one node at most (0.001 to 100000).
    #[arg(long, default_value_t = 10.0, value_parser = rate, env = "CERAMIC_AUDIT_RATE")]
    pub rate: f64,
    /// Actions at once on one node (1 to 64), each on another stream; together they stay
    /// within --rate.
    #[arg(
        long,
        default_value_t = r::DEFAULT_CONCURRENCY,
        value_parser = count(1, MAX_CONCURRENCY),
        env = "CERAMIC_AUDIT_CONCURRENCY"
    )]
    pub concurrency: usize,
    /// Print no summary and no progress display.
    #[arg(long, short, env = "CERAMIC_AUDIT_QUIET")]
    pub quiet: bool,
    /// The audit run first (unless --from-report); --timeout-seconds also bounds each request
    /// of the repair.
    #[command(flatten)]
    pub flags: AuditFlags,
}

/// Most actions at once on one node: more would be a load test of the node, not a repair.
const MAX_CONCURRENCY: u64 = 64;

pub fn repair(args: RepairArgs, out: &mut dyn Write) -> Result<i32, Failure> {
    let config = ClusterConfig::load(&args.config).map_err(|e| incomplete(e.to_string()))?;
    for n in &args.nodes {
        if !config.nodes.iter().any(|c| &c.name == n) {
            return Err(incomplete(format!(
                "--nodes: no node {n:?} in {}",
                args.config.display()
            )));
        }
    }
    let dir = args.out.clone().unwrap_or_else(|| {
        let d = report_dir();
        let name = d
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        d.with_file_name(format!("repair-{name}"))
    });
    std::fs::create_dir_all(&dir).map_err(|e| {
        incomplete(format!(
            "--out {}: cannot create the directory: {e}",
            dir.display()
        ))
    })?;
    let mut observed_at: Option<String> = None;
    let mut audit_complete = true;
    let divergences: Vec<Divergence> = match &args.from_report {
        Some(path) => {
            let text = std::fs::read(path)
                .map_err(|e| incomplete(format!("--from-report {}: {e}", path.display())))?;
            let report: ReportIn = serde_json::from_slice(&text).map_err(|e| {
                incomplete(format!(
                    "--from-report {}: not an audit report.json: {e}",
                    path.display()
                ))
            })?;
            if report.cluster != config.cluster {
                return Err(incomplete(format!(
                    "--from-report {}: the report is of cluster {:?}, the config of {:?}",
                    path.display(),
                    report.cluster,
                    config.cluster
                )));
            }
            observed_at = Some(report.started_at);
            audit_complete = report.complete;
            report.divergences
        }
        None => Vec::new(),
    };
    let mut options = RepairOptions {
        targets: if args.all_lagging {
            Targets::All
        } else {
            Targets::Named(args.nodes.clone())
        },
        resolve_forks: args.resolve_forks,
        publish: args.publish,
        timeout: args.flags.timeout(),
        action_timeout: Duration::from_secs(args.action_seconds),
        verify_timeout: Duration::from_secs(args.verify_seconds),
        max_failures: args.max_failures,
        rate: args.rate,
        concurrency: args.concurrency,
        add_interest: args.add_interest,
        observed_at,
        progress: crate::progress::Progress::new("repair", args.quiet),
    };
    let mut audit_options = args.flags.options().map_err(incomplete)?;
    audit_options.progress = options.progress.clone();
    let journal = if args.apply {
        Some(Mutex::new(
            Journal::open(&args.journal).map_err(|e| incomplete(e.to_string()))?,
        ))
    } else {
        None
    };
    let started_at = audit::now_rfc3339();
    let from_report = args.from_report.is_some();
    let rt = runtime()?;
    let report = rt.block_on(async {
        let stop = super::signals::cancel_on_signal();
        let divergences = if from_report {
            divergences
        } else {
            let audit_options = audit_options.clone();
            let audited = tokio::select! {
                rep = audit::run(&config, &audit_options) => rep,
                _ = stop.cancelled() => return Err(Failure {
                    code: EXIT_INTERRUPTED,
                    message: "interrupted during the audit; nothing was written to any node".into(),
                }),
            };
            if !audited.complete {
                tracing::warn!("the audit was incomplete; repairing what it found");
                audit_complete = false;
            }
            options.observed_at = Some(audited.started_at.clone());
            audited.divergences
        };
        let (actions, outcomes) =
            r::plan_and_apply(&config, &divergences, &options, journal.as_ref(), &stop).await;
        Ok(RepairReport {
            schema_version: 1,
            cluster: config.cluster.clone(),
            started_at,
            finished_at: audit::now_rfc3339(),
            applied: args.apply,
            journal: args.apply.then(|| args.journal.display().to_string()),
            interrupted: stop.is_cancelled(),
            audit_complete,
            counts: r::counts(&outcomes),
            plan: actions,
            outcomes,
        })
    });
    options.progress.finish();
    let report = report?;
    let write = |name: &str, bytes: std::io::Result<Vec<u8>>| -> Result<(), Failure> {
        let path = dir.join(name);
        bytes
            .and_then(|b| write_atomic(&path, &b))
            .map_err(|e| incomplete(format!("cannot write {}: {e}", path.display())))
    };
    write("plan.csv", plan::render_csv(&report.plan))?;
    write(
        "plan.json",
        serde_json::to_vec_pretty(&report.plan).map_err(std::io::Error::other),
    )?;
    if args.apply {
        write("repair.csv", r::render_csv(&report.outcomes))?;
        write(
            "repair.json",
            serde_json::to_vec_pretty(&report).map_err(std::io::Error::other),
        )?;
    }
    if !args.quiet {
        write_out(out, &summary(&report, &dir))?;
    }
    Ok(match report.verdict() {
        Verdict::Interrupted => EXIT_INTERRUPTED,
        Verdict::Incomplete => EXIT_INCOMPLETE,
        Verdict::Unresolved => EXIT_DIVERGENCE,
        Verdict::Done => EXIT_OK,
    })
}

fn summary(report: &RepairReport, dir: &std::path::Path) -> String {
    let mut by_strategy: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut commits = 0;
    for a in &report.plan {
        if let Some(s) = a.strategy {
            *by_strategy.entry(s.as_str()).or_default() += 1;
            commits += a.commits.len();
        }
    }
    let planned: usize = by_strategy.values().sum();
    let strategies = if by_strategy.is_empty() {
        String::new()
    } else {
        format!(
            " ({})",
            by_strategy
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let mut text = if report.plan.is_empty() {
        format!("repair {}: nothing to repair\n", report.cluster)
    } else if planned == 0 {
        format!(
            "repair {}: no action planned, {} left alone\n",
            report.cluster,
            report.plan.len()
        )
    } else {
        format!(
            "repair {}: {planned} action(s) planned{strategies}, {commits} commit(s) to send, {} \
             left alone\n",
            report.cluster,
            report.plan.len() - planned
        )
    };
    if !report.audit_complete {
        text.push_str(
            "note: the audit was incomplete: what it could not see is not in this plan (exit \
             code 2)\n",
        );
    }
    let unread = report.plan.iter().filter(|a| a.read_error).count();
    if unread > 0 {
        text.push_str(&format!(
            "note: {unread} action(s) skipped because a node could not be read (exit code 2)\n"
        ));
    }
    for a in report.plan.iter().filter(|a| a.effect.is_some()) {
        text.push_str(&format!(
            "  {} on {}: {}\n",
            a.strategy.map(|s| s.as_str()).unwrap_or("left alone"),
            a.target,
            a.effect.as_deref().unwrap_or_default()
        ));
    }
    for a in report.plan.iter().filter(|a| a.strategy.is_none()) {
        text.push_str(&format!(
            "  left alone: {} on {} ({}): {}\n",
            a.stream_id,
            a.target,
            a.kind.as_str(),
            a.skip.as_deref().unwrap_or_default()
        ));
    }
    if report.applied {
        text.push_str(&format!(
            "applied: {}{}\n",
            [
                Status::Repaired,
                Status::Failed,
                Status::Unrepairable,
                Status::SettledElsewhere,
                Status::Skipped
            ]
            .iter()
            // settled_elsewhere only when it happened (forks resolved by the nodes).
            .filter(|s| **s != Status::SettledElsewhere || report.counts.contains_key(s))
            .map(|s| format!(
                "{} {}",
                s.as_str(),
                report.counts.get(s).copied().unwrap_or(0)
            ))
            .collect::<Vec<_>>()
            .join(", "),
            if report.interrupted {
                " (interrupted)"
            } else {
                ""
            }
        ));
        for o in report.outcomes.iter().filter(|o| {
            matches!(
                o.status,
                Status::Failed | Status::Unrepairable | Status::SettledElsewhere
            )
        }) {
            text.push_str(&format!(
                "  {}: {} on {}: {}\n",
                o.status.as_str(),
                o.stream_id,
                o.target,
                o.detail
            ));
        }
        text.push_str(&format!(
            "written: {}/plan.csv, plan.json, repair.csv, repair.json",
            dir.display()
        ));
    } else {
        text.push_str(&format!(
            "dry run: nothing was written to any node (--apply executes); plan: {}/plan.csv, plan.json",
            dir.display()
        ));
    }
    text
}

/// The part of an audit `report.json` a repair reads.
#[derive(serde::Deserialize)]
struct ReportIn {
    cluster: String,
    started_at: String,
    /// Every audit report has it; absent (a hand-made file), nothing says it was incomplete.
    #[serde(default = "yes")]
    complete: bool,
    divergences: Vec<Divergence>,
}

fn yes() -> bool {
    true
}
