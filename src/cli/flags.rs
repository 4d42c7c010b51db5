//! The audit flags, defined once and flattened into `audit`, `watch` and `repair` (each audits
//! the cluster first), with their `CERAMIC_AUDIT_*` variables; and the parsers that check every
//! duration, rate and count before any work starts: a value out of range is a usage error (exit
//! 2) naming the flag, never a panic in `Duration` or `Instant` arithmetic later.

use std::time::Duration;

use clap::builder::RangedU64ValueParser;
use clap::Args;

use crate::audit::verify::VerifyState;
use crate::audit::{self, AuditOptions};
use crate::recon::DescentParams;
use crate::source::{Compare, Mode, RowCheck};

/// The longest duration any flag accepts (a year and a day). Longer is certainly a typo, and
/// far longer overflows `Instant` arithmetic (`--every 1e19s` used to panic).
pub const MAX_SECONDS: f64 = 366.0 * 24.0 * 3600.0;

/// The longest per-statement / per-request timeout: a day. A longer one only hides a hung node.
pub const MAX_TIMEOUT_SECONDS: u64 = 24 * 3600;

/// Fanout bounds: below 2 a split separates nothing; above these a round asks one statement
/// for more ranges than it can carry (and a huge value would allocate without bound).
const MAX_ROOT_FANOUT: u64 = 65_536;
const MAX_FANOUT: u64 = 4_096;
/// Above this, a "leaf" is a whole-table download in disguise; 10 M rows is already ~1 GB.
const MAX_LEAF_THRESHOLD: u64 = 10_000_000;

/// A number of seconds: finite, ≥ 0 and at most [`MAX_SECONDS`].
pub fn seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("{s:?}: expected a number of seconds ≥ 0"));
    }
    if v > MAX_SECONDS {
        return Err(format!(
            "{s:?}: at most {MAX_SECONDS} seconds (a year and a day)"
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

/// A human duration (`30s`, `15m`, `24h`): more than 0 and at most [`MAX_SECONDS`].
pub fn human_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (e.g. 30s, 15m, 24h)"))?;
    if d.as_secs_f64() > MAX_SECONDS {
        return Err(format!("{s:?}: at most 366 days"));
    }
    Ok(d)
}

/// A share between 0 and 1.
pub fn share(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("{s:?}: expected a number from 0 to 1"));
    }
    Ok(v)
}

/// Requests per second: from 0.001 (one every 17 minutes) to 100 000. Below, the pause
/// between requests overflows a `Duration`; above, pacing means nothing.
pub fn rate(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if !(0.001..=100_000.0).contains(&v) {
        return Err(format!(
            "{s:?}: expected requests per second from 0.001 to 100000"
        ));
    }
    Ok(v)
}

/// A count from `min` to `max`, as a `usize`.
pub fn count(min: u64, max: u64) -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::<usize>::new().range(min..=max)
}

fn parse_verify(s: &str) -> Result<VerifyState, String> {
    s.parse()
}

/// How the cluster is audited: shared by `audit`, `watch` (each cycle) and `repair` (the
/// audit before the plan).
#[derive(Clone, Debug, Args)]
pub struct AuditFlags {
    /// How Postgres nodes are read: fingerprints computed by Postgres, or every row downloaded.
    #[arg(
        long,
        value_enum,
        default_value = "pushdown",
        env = "CERAMIC_AUDIT_MODE"
    )]
    pub mode: Mode,
    /// Seconds allowed to connect to a node, for any single statement and any HTTP request
    /// (1 to 86400).
    #[arg(
        long,
        default_value_t = 30,
        env = "CERAMIC_AUDIT_TIMEOUT_SECONDS",
        value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_SECONDS)
    )]
    pub timeout_seconds: u64,
    /// Sub-ranges of the first split (2 to 65536; see README "How the comparison works").
    #[arg(
        long,
        default_value_t = DescentParams::default().root_fanout,
        env = "CERAMIC_AUDIT_ROOT_FANOUT",
        value_parser = count(2, MAX_ROOT_FANOUT)
    )]
    pub root_fanout: usize,
    /// Sub-ranges of later splits (2 to 4096).
    #[arg(
        long,
        default_value_t = DescentParams::default().fanout,
        env = "CERAMIC_AUDIT_FANOUT",
        value_parser = count(2, MAX_FANOUT)
    )]
    pub fanout: usize,
    /// A differing range with at most this many rows on every node is compared row by row
    /// (1 to 10000000).
    #[arg(
        long,
        default_value_t = DescentParams::default().leaf_threshold,
        env = "CERAMIC_AUDIT_LEAF_THRESHOLD",
        value_parser = clap::value_parser!(u64).range(1..=MAX_LEAF_THRESHOLD)
    )]
    pub leaf_threshold: u64,
    /// Seconds to wait before differing rows are read again; rows that changed meanwhile are
    /// reported `in_flight` (a write still propagating), not as divergences. 0 skips it.
    #[arg(
        long,
        default_value_t = audit::DEFAULT_SETTLE_SECONDS as f64,
        env = "CERAMIC_AUDIT_SETTLE_SECONDS",
        value_parser = seconds_f64
    )]
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
    #[arg(
        long,
        env = "CERAMIC_AUDIT_MAX_DIFFS",
        value_parser = clap::value_parser!(u64).range(1..=u32::MAX as u64)
    )]
    pub max_diffs: Option<u64>,
    /// Stop comparing once the audit has run this many seconds (what was found is reported;
    /// exit code 2). Statements in flight finish first.
    #[arg(long, env = "CERAMIC_AUDIT_MAX_SECONDS", value_parser = seconds_f64)]
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
    /// Postgres: cut every statement that would read a whole table (the row check, a round
    /// answered by a sequential scan, a download) into statements of about this many rows
    /// each, over ranges of the table's blocks (1000 to 1000000000; PostgreSQL 14 or later).
    /// For servers with a `statement_timeout`: each piece costs a round trip and its answer.
    #[arg(
        long,
        env = "CERAMIC_AUDIT_STATEMENT_ROWS",
        value_parser = clap::value_parser!(u64).range(MIN_STATEMENT_ROWS..=MAX_STATEMENT_ROWS)
    )]
    pub statement_rows: Option<u64>,
}

/// `--statement-rows` bounds. Below the minimum a 10^6-row table would take over a thousand
/// statements, each a round trip and a first-level answer (~5 KB); the maximum is past any
/// table this tool was measured on (the option is then a no-op).
const MIN_STATEMENT_ROWS: u64 = 1000;
const MAX_STATEMENT_ROWS: u64 = 1_000_000_000;

/// [`seconds`], kept as the number given (so `--help` shows `3`, not a `Duration`).
fn seconds_f64(s: &str) -> Result<f64, String> {
    seconds(s).map(|d| d.as_secs_f64())
}

impl AuditFlags {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_seconds)
    }

    /// The audit these flags ask for (every value was checked when parsed).
    pub fn options(&self) -> Result<AuditOptions, String> {
        let params = DescentParams {
            root_fanout: self.root_fanout,
            fanout: self.fanout,
            leaf_threshold: self.leaf_threshold,
            ..DescentParams::default()
        };
        crate::recon::Descent::<crate::source::IndexHash>::new(2, params.clone())
            .map_err(|e| format!("--root-fanout/--fanout/--leaf-threshold: {e}"))?;
        Ok(AuditOptions {
            mode: self.mode,
            params,
            timeout: self.timeout(),
            row_check: self.row_check,
            compare: self.compare,
            max_diffs: self.max_diffs,
            read_logs: !self.no_logs,
            verify_state: self.verify_state,
            scope: None,
            max_duration: self.max_seconds.map(Duration::from_secs_f64),
            settle: Duration::from_secs_f64(self.settle_seconds),
            progress: crate::progress::Progress::hidden(),
            statement_rows: self.statement_rows,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_rates_out_of_range_are_refused() {
        for bad in ["1e19", "-1", "NaN", "inf", "x"] {
            assert!(seconds(bad).is_err(), "{bad}");
        }
        assert_eq!(seconds("2.5"), Ok(Duration::from_millis(2500)));
        assert!(human_duration("100000000y").is_err());
        assert!(human_duration("15m").is_ok());
        assert!(rate("1e-20").is_err() && rate("0").is_err() && rate("1e19").is_err());
        assert!(share("1.5").is_err() && share("0.1").is_ok());
    }
}
