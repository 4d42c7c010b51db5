//! `backup`, `backup verify` and `restore`: flags, then the library's [`crate::backup`].

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::commands::{incomplete, runtime};
use super::{write_out, Failure, EXIT_DIVERGENCE, EXIT_INCOMPLETE, EXIT_INTERRUPTED, EXIT_OK};
use crate::backup::restore::{self, Refusal, RestoreOptions};
use crate::backup::take::{self, BackupOptions};
use crate::backup::verify::{self, VerifyReport};
use crate::config::{ClusterConfig, NodeConfig};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub action: Option<BackupAction>,
    /// The cluster file (TOML); the node needs `state_store` and `ipfs_api`.
    #[arg(long, env = "CERAMIC_AUDIT_CONFIG", required = true)]
    pub config: Option<PathBuf>,
    /// The node to back up (its `name` in the cluster file).
    #[arg(long, required = true)]
    pub node: Option<String>,
    /// A new (or empty) directory for the backup.
    #[arg(long, required = true)]
    pub out: Option<PathBuf>,
    /// The node's daemon is stopped: copy the state store in one pass (refused if its API
    /// answers).
    #[arg(long)]
    pub stopped: bool,
    /// Live state-store copy passes before giving up when every pass sees a compaction.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_passes: u32,
    /// Seconds allowed for each IPFS request.
    #[arg(
        long,
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..=super::flags::MAX_TIMEOUT_SECONDS)
    )]
    pub timeout_seconds: u64,
    /// IPFS block requests in flight at once (and connections held to the node's IPFS API);
    /// 1 fetches one block at a time.
    #[arg(
        long,
        default_value_t = take::DEFAULT_BLOCK_REQUESTS as u64,
        value_parser = clap::value_parser!(u64).range(1..=64)
    )]
    pub block_requests: u64,
    /// No progress display on stderr (the summary is still printed).
    #[arg(long, short, env = "CERAMIC_AUDIT_QUIET")]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum BackupAction {
    /// Check a backup by itself: files against the manifest, index rows against the state
    /// store, every log's blocks in the CAR. Exit 0 sound, 1 findings, 2 could not check.
    Verify {
        /// The backup directory.
        dir: PathBuf,
        /// Print the findings as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup directory.
    pub dir: PathBuf,
    /// The cluster file (TOML); the node needs `state_store` and `ipfs_api`.
    #[arg(long, env = "CERAMIC_AUDIT_CONFIG")]
    pub config: PathBuf,
    /// The node to restore (stopped; its IPFS running).
    #[arg(long)]
    pub node: String,
    /// Overwrite non-empty targets, and restore even a backup that fails verification.
    #[arg(long)]
    pub force: bool,
    /// Seconds allowed for each IPFS request and the database connection.
    #[arg(
        long,
        default_value_t = 120,
        value_parser = clap::value_parser!(u64).range(1..=super::flags::MAX_TIMEOUT_SECONDS)
    )]
    pub timeout_seconds: u64,
}

fn node_of(config: &std::path::Path, node: &str) -> Result<(ClusterConfig, NodeConfig), Failure> {
    let cluster = ClusterConfig::load(config).map_err(|e| incomplete(e.to_string()))?;
    let n = cluster
        .nodes
        .iter()
        .find(|n| n.name == node)
        .cloned()
        .ok_or_else(|| {
            incomplete(format!(
                "no node {node:?} in {} (nodes: {})",
                config.display(),
                cluster
                    .nodes
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
    Ok((cluster, n))
}

/// How long an interrupted backup waits for its layer's work to stop. Too short and a pg_dump
/// being killed may outlive the process; too long only delays the exit when a file copy (which
/// ignores the stop) is running.
const STOP_GRACE: Duration = Duration::from_secs(3);

pub fn backup(args: BackupArgs, out: &mut dyn Write) -> Result<i32, Failure> {
    if let Some(BackupAction::Verify { dir, json }) = args.action {
        return verify_cmd(&dir, json, out);
    }
    let (Some(config), Some(node), Some(dir)) = (args.config, args.node, args.out) else {
        return Err(incomplete("backup needs --config, --node and --out".into()));
    };
    let (cluster, node) = node_of(&config, &node)?;
    let rt = runtime()?;
    // Set by the first Ctrl-C or SIGTERM: the backup stops, and a running pg_dump is killed.
    let stop = rt.block_on(async { super::signals::cancel_on_signal() });
    let opts = BackupOptions {
        out: dir.clone(),
        stopped: args.stopped,
        max_passes: args.max_passes,
        timeout: Duration::from_secs(args.timeout_seconds.max(1)),
        block_requests: args.block_requests as usize,
        progress: crate::progress::Progress::new("backup", args.quiet),
        stop: stop.clone(),
    };
    let taken = rt.block_on(async {
        tokio::select! {
            m = take::backup(&cluster, &node, &opts) => Some(m),
            _ = stop.cancelled() => None,
        }
    });
    let Some(taken) = taken else {
        // A layer's copy may still run on a blocking thread. A pg_dump there sees `stop` within
        // 50 ms and is killed and reaped: wait for that, at most STOP_GRACE (a file copy
        // ignores the stop and is abandoned then). The directory has no manifest.json (written
        // last), so `backup verify` calls it unfinished.
        rt.shutdown_timeout(STOP_GRACE);
        return Err(Failure {
            code: EXIT_INTERRUPTED,
            message: format!(
                "interrupted; {} is an unfinished backup (no manifest.json): delete it",
                dir.display()
            ),
        });
    };
    let m = taken.map_err(|e| incomplete(e.to_string()))?;
    let index = m.index.as_ref();
    let state = m.state_store.as_ref();
    let blocks = m.blocks.as_ref();
    let missing = blocks.map(|b| b.missing.len()).unwrap_or(0);
    let mut text = format!(
        "backup of node {} ({}) in {}\n  index: {} ({} rows in {} models)\n  state store: {} streams in {} ({} pass{})\n  blocks: {} ({} bytes), {missing} missing",
        m.node,
        m.mode,
        dir.display(),
        index.map(|i| i.kind.as_str()).unwrap_or("-"),
        index.map(|i| i.rows.values().sum::<u64>()).unwrap_or(0),
        index.map(|i| i.rows.len()).unwrap_or(0),
        state.map(|s| s.streams).unwrap_or(0),
        state.map(|s| s.dirs.join(", ")).unwrap_or_default(),
        state.map(|s| s.passes).unwrap_or(0),
        if state.is_some_and(|s| s.passes == 1) { "" } else { "es" },
        blocks.map(|b| b.blocks).unwrap_or(0),
        blocks.map(|b| b.bytes).unwrap_or(0),
    );
    if index.is_none() {
        text = format!(
            "backup of node {} ({}) in {}",
            m.node,
            m.mode,
            dir.display()
        );
    }
    if let Some(c) = &m.ceramic_one {
        // A backup just taken always records both counts.
        text.push_str(&format!(
            "\n  ceramic-one: {} events, {} blocks ({} files, pipeline/ first)",
            c.events.unwrap_or_default(),
            c.blocks.unwrap_or_default(),
            c.files.len()
        ));
    }
    for b in blocks.map(|b| b.missing.as_slice()).unwrap_or(&[]) {
        text.push_str(&format!(
            "\n  missing {} {} of {}: {}",
            b.role, b.cid, b.stream, b.reason
        ));
    }
    write_out(out, &text)?;
    Ok(if missing == 0 {
        EXIT_OK
    } else {
        EXIT_DIVERGENCE
    })
}

fn verify_text(r: &VerifyReport) -> String {
    let mut text = format!(
        "backup of node {}: {} streams, {} index rows, {} blocks{}: {}",
        r.node,
        r.streams,
        r.index_rows,
        r.blocks,
        if r.events > 0 {
            format!(", {} ceramic-one events", r.events)
        } else {
            String::new()
        },
        match (r.findings.len(), r.unchecked.len()) {
            (0, 0) => "verified".to_string(),
            (0, u) => format!("verified ({u} not checked)"),
            (n, _) => format!("{n} findings"),
        }
    );
    for f in &r.findings {
        text.push_str(&format!("\n  {} [{}]", f.kind, f.layer));
        if let Some(s) = &f.stream {
            text.push_str(&format!(" stream {s}"));
        }
        if let Some(c) = &f.cid {
            text.push_str(&format!(" cid {c}"));
        }
        text.push_str(&format!(": {}", f.detail));
    }
    for u in &r.unchecked {
        text.push_str(&format!("\n  not checked: {u}"));
    }
    text
}

fn verify_cmd(dir: &std::path::Path, json: bool, out: &mut dyn Write) -> Result<i32, Failure> {
    let r = verify::verify(dir).map_err(|e| incomplete(e.to_string()))?;
    let text = if json {
        serde_json::to_string_pretty(&r)
            .map_err(|e| incomplete(format!("cannot serialize: {e}")))?
    } else {
        verify_text(&r)
    };
    write_out(out, &text)?;
    Ok(if r.findings.is_empty() {
        EXIT_OK
    } else {
        EXIT_DIVERGENCE
    })
}

pub fn restore(args: RestoreArgs, out: &mut dyn Write) -> Result<i32, Failure> {
    let (_, node) = node_of(&args.config, &args.node)?;
    let opts = RestoreOptions {
        force: args.force,
        timeout: Duration::from_secs(args.timeout_seconds.max(1)),
    };
    match runtime()?.block_on(restore::restore(&args.dir, &node, &opts)) {
        Ok(r) => {
            let mut text = format!("restored node {} from {}", r.node, args.dir.display());
            if r.verify_findings > 0 {
                text.push_str(&format!(" (--force: {} verification findings ignored)", r.verify_findings));
            }
            for u in &r.unchecked {
                text.push_str(&format!("\n  not checked before restoring: {u}"));
            }
            for s in &r.steps {
                text.push_str(&format!("\n  {s}"));
            }
            text.push_str("\nstart the node, then audit the cluster: what was written after the backup shows as lagging, and `repair` brings it over");
            write_out(out, &text)?;
            Ok(EXIT_OK)
        }
        Err(Refusal::Unverified(r)) => Err(Failure {
            code: EXIT_INCOMPLETE,
            message: format!(
                "refusing to restore: the backup fails verification (restore --force overrides)\n{}",
                verify_text(&r)
            ),
        }),
        Err(Refusal::Error(e)) => Err(incomplete(e.to_string())),
    }
}
