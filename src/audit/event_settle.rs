//! The settle re-check of the event-store comparison, as the index audit has one
//! ([`super::settle`]): Recon carries a new event to the other nodes within seconds, so an event
//! written just before the audit looked shows as `missing_event` on the nodes it has not reached
//! yet. After the pause every store is opened again (a fresh read snapshot) and compared again;
//! a row of the first look that the second look no longer shows becomes `in_flight` (it
//! resolved by itself; re-audit to see the cluster converge). Rows the second look shows are
//! kept as first seen, and rows only the second look shows (written during the pause) are not
//! reported: this audit did not observe them at its snapshot.

use std::collections::HashSet;
use std::path::PathBuf;

use tracing::{info, warn};

use crate::recon::DescentParams;
use crate::report::{Divergence, Kind};
use crate::source::ceramic_one::{compare, EventStore, StoreNode};

/// One compared store, to be opened again after the pause.
pub(super) struct Reopen {
    pub(super) name: String,
    pub(super) path: PathBuf,
    /// The node's own `db.sqlite3`, written within [`crate::source::QUIET_FILE`]: it can
    /// change during the pause. A recorded or stopped node's file, and the private mirror of
    /// an HTTP node (read once, never refreshed), cannot.
    pub(super) live: bool,
}

/// Kinds a node can leave by itself while the audit waits: an event arriving over Recon, a
/// delivery, a model definition arriving, an interest registered.
fn settles(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::MissingEvent | Kind::UndeliveredEvent | Kind::StateMissing | Kind::NotInterested
    )
}

/// Whether a re-check can change anything: some first-look row could settle and some store is
/// live. (No pause for stores nobody writes: the fixture audit takes milliseconds.)
pub(super) fn needed(stores: &[Reopen], rows: &[Divergence]) -> bool {
    stores.iter().any(|s| s.live) && rows.iter().any(|d| settles(d.kind))
}

/// Compares the stores again (call after the pause, on the blocking pool) and turns each
/// first-look row the second look no longer shows into `in_flight`. When the second look cannot
/// be taken, the first look stands (it was observed) and the reason is logged.
pub(super) fn recheck(
    stores: &[Reopen],
    params: &DescentParams,
    pause_seconds: f64,
    rows: &mut [Divergence],
) {
    let opened: Result<Vec<StoreNode>, String> = stores
        .iter()
        .map(|s| {
            EventStore::open(&s.path)
                .map(|store| StoreNode {
                    name: s.name.clone(),
                    store,
                })
                .map_err(|e| format!("node {}: {e}", s.name))
        })
        .collect();
    let second = opened.and_then(|nodes| compare(&nodes, params).map_err(|e| e.to_string()));
    let second = match second {
        Ok(findings) => findings.divergences,
        Err(e) => {
            warn!("ceramic-one settle re-check not taken, rows stand as first seen: {e}");
            return;
        }
    };
    let still: HashSet<(&str, &str, &str, Kind)> = second
        .iter()
        .map(|d| {
            (
                d.model.as_str(),
                d.stream_id.as_str(),
                d.node.as_str(),
                d.kind,
            )
        })
        .collect();
    let mut settled = 0usize;
    for row in rows.iter_mut() {
        let key = (
            row.model.as_str(),
            row.stream_id.as_str(),
            row.node.as_str(),
            row.kind,
        );
        if !settles(row.kind) || still.contains(&key) {
            continue;
        }
        settled += 1;
        *row = Divergence::stream(
            &row.model,
            &row.stream_id,
            &row.node,
            Kind::InFlight,
            row.tip.clone(),
            format!(
                "{} at the first look, gone {pause_seconds} s later (the node caught up by \
                 itself); first look: {}; re-audit to see whether it converged",
                row.kind.as_str(),
                row.detail
            ),
        )
        .with_majority(row.majority_tip.clone(), row.agreeing_nodes.clone());
    }
    info!(settled, "ceramic-one settle re-check done");
}
