//! Command-line interface: arguments (clap), the commands, and the exit-code contract.
//!
//! Exit codes (DESIGN.md): 0 consistent / success, 1 divergence found, 2 could not complete (bad
//! input, bad config, a node or source unreadable), 130 interrupted.

use std::io::Write;

use clap::{Parser, Subcommand};

use crate::ids;

mod backup;
mod commands;
pub mod flags;
mod repair;
mod signals;
mod watch;
pub use backup::{BackupAction, BackupArgs, RestoreArgs};
pub use commands::{AuditArgs, CrawlArgs};
pub use repair::RepairArgs;
pub use watch::WatchArgs;

/// Everything consistent, or the command did what was asked.
pub const EXIT_OK: i32 = 0;
/// The audit found divergence.
pub const EXIT_DIVERGENCE: i32 = 1;
/// The command could not complete: bad input or config, unreadable node or source.
pub const EXIT_INCOMPLETE: i32 = 2;
/// Interrupted (Ctrl-C or SIGTERM).
pub const EXIT_INTERRUPTED: i32 = 130;

#[derive(Debug, Parser)]
#[command(
    name = "ceramic-audit",
    version,
    about = "Audit a cluster of Ceramic / ComposeDB nodes for replica divergence, and repair it",
    long_about = "Audit a cluster of Ceramic / ComposeDB nodes for replica divergence, and repair it.\n\n\
        Exit codes: 0 consistent, 1 divergence found, 2 could not complete (bad input, bad \
        config, unreachable node), 130 interrupted."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compare every node's ComposeDB index and report what differs.
    ///
    /// Writes `divergences.csv` and `report.json` into `reports/<UTC time>/` (or `--out`) and
    /// prints a summary. Exit code 0: consistent; 1: divergence found (of the `--fail-on`
    /// kinds); 2: incomplete (a node or model could not be read, or bad config).
    Audit(AuditArgs),
    /// Write one node's index state to a snapshot file, to audit later or elsewhere.
    Crawl(CrawlArgs),
    /// Re-publish the commits lagging nodes miss (dry run unless --apply), then verify.
    ///
    /// From a fresh audit or `--from-report`; writes only to `--nodes` (or every node with
    /// `--all-lagging`). Writes plan.csv/json, and with --apply repair.csv/json and the journal.
    /// Exit code 0: everything planned was repaired (or a dry run); 1: something failed or is
    /// unrepairable; 2: could not start, its audit was incomplete, or actions were skipped
    /// because a node could not be read; 130: interrupted (re-run to resume).
    Repair(RepairArgs),
    /// Audit on a schedule until SIGINT/SIGTERM: incremental cycles between full ones, report
    /// retention, divergence ageing, Prometheus metrics, opt-in auto-repair.
    ///
    /// Each cycle writes `<dir>/cycle-<UTC time>-<n>/` (e.g.
    /// `cycle-2026-11-29T21-40-33.607Z-000001`: report.json, divergences.csv, cycle.json) whole
    /// or not at all and points `<dir>/latest` at it. Exit code 0 after a clean shutdown; 2 on
    /// a bad config, or when every cycle of `--cycles N` failed or was incomplete.
    Watch(WatchArgs),
    /// Back up one node: its index (pg_dump / SQLite online backup), then its state store,
    /// then every block its streams' logs need (CAR), with a manifest.json.
    ///
    /// Reads only: never writes to the node or loads a stream through its API. Exit code 0:
    /// complete; 1: written, but blocks the logs need were missing on the node; 2: failed.
    /// `backup verify DIR` checks a backup (exit codes as for `audit`).
    Backup(BackupArgs),
    /// Put a verified backup back into a stopped node (its IPFS running): blocks, state store,
    /// index. Refuses non-empty targets and unverified backups without --force.
    ///
    /// Exit code 0: restored; 2: refused or failed.
    Restore(RestoreArgs),
    /// Decode a StreamID, CommitID, EventId (hex) or CID and print it as JSON.
    ///
    /// Accepts `k…` base36 ids, `ceramic://<id>`, `/ceramic/<id>`, `<id>?commit=<cid>`, EventIds
    /// in hex (`ce0105…`) and CIDs (`bafy…`, `bagcq…`, `Qm…`). Exits 2 on an unrecognised id.
    Inspect {
        /// The identifier to decode.
        id: String,
        /// Print the JSON on one line instead of indented.
        #[arg(long)]
        compact: bool,
    },
}

/// A command's failure: printed once on stderr, mapped to an exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

/// Runs the parsed command, writing its output to `out`. Returns the exit code on success.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<i32, Failure> {
    match cli.command {
        Command::Inspect { id, compact } => inspect(&id, compact, out),
        Command::Audit(args) => commands::audit(args, out),
        Command::Crawl(args) => commands::crawl(args, out),
        Command::Repair(args) => repair::repair(args, out),
        Command::Watch(args) => watch::watch(args, out),
        Command::Backup(args) => backup::backup(args, out),
        Command::Restore(args) => backup::restore(args, out),
    }
}

fn inspect(id: &str, compact: bool, out: &mut dyn Write) -> Result<i32, Failure> {
    let info = ids::inspect(id).map_err(|e| {
        // The argument is echoed to say which one failed, but not a pasted 4 KB blob whole.
        let id = match id.char_indices().nth(80) {
            Some((cut, _)) => format!("{}… ({} characters)", &id[..cut], id.chars().count()),
            None => id.to_string(),
        };
        Failure {
            code: EXIT_INCOMPLETE,
            message: match e {
                ids::IdError::Unrecognised => format!("cannot decode {id:?}: {e}"),
                e => format!(
                    "cannot decode {id:?}: {e} (expected a StreamID/CommitID `k…`, an EventId in \
                 hex or a CID)"
                ),
            },
        }
    })?;
    let json = if compact {
        serde_json::to_string(&info)
    } else {
        serde_json::to_string_pretty(&info)
    }
    .map_err(|e| Failure {
        code: EXIT_INCOMPLETE,
        message: format!("cannot serialize the inspection: {e}"),
    })?;
    write_out(out, &json)?;
    Ok(EXIT_OK)
}

/// Writes a line; a closed pipe (`| head`) is not an error worth reporting, as in ripgrep.
pub(crate) fn write_out(out: &mut dyn Write, text: &str) -> Result<(), Failure> {
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure {
            code: EXIT_INCOMPLETE,
            message: format!("cannot write to stdout: {e}"),
        }),
    }
}
