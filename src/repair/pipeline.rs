//! The repair pipeline, assembled once for `repair` and `watch --repair`: plan what the
//! divergences call for, then (given a journal) apply the plan; and what the run amounts to,
//! for the caller to map to an exit code.

use std::sync::Mutex;

use tokio_util::sync::CancellationToken;

use super::journal::Journal;
use super::plan::Action;
use super::{apply, prepare, Outcome, RepairOptions, RepairReport, Status};
use crate::config::ClusterConfig;
use crate::report::Divergence;

/// Plans the repair of `divergences` and, with a journal, applies the plan (without one: a
/// dry run, nothing written to any node). `stop` ends each node's queue after the action in
/// flight.
pub async fn plan_and_apply(
    config: &ClusterConfig,
    divergences: &[Divergence],
    options: &RepairOptions,
    journal: Option<&Mutex<Journal>>,
    stop: &CancellationToken,
) -> (Vec<Action>, Vec<Outcome>) {
    options.progress.stage("planning (reading logs)", None);
    let (actions, fetched) = prepare(config, divergences, options).await;
    let outcomes = match journal {
        Some(j) => {
            let planned = actions.iter().filter(|a| a.strategy.is_some()).count();
            options.progress.stage("actions", Some(planned as u64));
            apply(config, &actions, &fetched, j, options, stop).await
        }
        None => Vec::new(),
    };
    (actions, outcomes)
}

/// What a repair run amounts to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Everything planned was repaired (or a dry run).
    Done,
    /// Something failed, is unrepairable or was settled another way than predicted.
    Unresolved,
    /// Stopped before the end (re-run to resume).
    Interrupted,
    /// The audit behind the plan was incomplete, or actions were skipped because a node could
    /// not be read: the repair may have left divergences it never saw.
    Incomplete,
}

impl RepairReport {
    pub fn verdict(&self) -> Verdict {
        let unresolved = self.outcomes.iter().any(|o| {
            matches!(
                o.status,
                Status::Failed | Status::Unrepairable | Status::SettledElsewhere
            )
        });
        if self.interrupted {
            Verdict::Interrupted
        } else if !self.audit_complete || self.plan.iter().any(|a| a.read_error) {
            Verdict::Incomplete
        } else if unresolved {
            Verdict::Unresolved
        } else {
            Verdict::Done
        }
    }
}
