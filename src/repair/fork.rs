//! Resolving a fork the way js-ceramic resolves one (issue 13): the node on the losing branch
//! is made to learn the other tip through its own conflict resolution, never by posting the
//! winner's commits to it — those do not build on its tip, and js-ceramic 6.11 refuses them
//! ("Commit to stream … rejected because it builds on stale state … Current tip: …"), which is
//! a statement about how the commit was offered, not a verdict on the stream.
//!
//! Measured on a real 6.11 cluster (`../shared/reference/real-ceramic.md`, "Repairs"): a
//! `GET /api/v0/streams/<id>?sync=1` on the losing node makes it query its peers for the tip,
//! fetch the other branch, apply `_pickLogToAccept` and switch to the winning branch in
//! 0.5–0.8 s; its index row follows. This module judges what the node did afterwards: reached
//! the predicted winner (state and index), settled on another branch (a finding about the
//! prediction, not a repair), or stayed where it was.

use std::time::Instant;

use super::{classify, Done, IndexReader, RepairOptions, Status, StepError, Stepper, VERIFY_POLL};
use crate::api::NodeApi;
use crate::repair::plan::Action;

/// js-ceramic's words when a commit is offered on top of a tip it does not build on.
const STALE_STATE: &str = "builds on stale state";

/// Whether a node's error means "offered the wrong way" (the commit does not build on the
/// node's tip): a sync=1 load is the way to offer it, so this is never `unrepairable`.
pub fn is_stale_state(text: &str) -> bool {
    text.to_ascii_lowercase().contains(STALE_STATE)
}

/// What the target showed when the verification window ended (or as soon as it matched).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// The target's state log (CIDs, oldest first), empty when it could not be read.
    pub state_log: Vec<String>,
    /// The tip of the target's index row.
    pub index_tip: Option<String>,
}

impl Seen {
    pub fn state_tip(&self) -> Option<&str> {
        self.state_log.last().map(String::as_str)
    }
}

/// The verdict on a fork resolution: `None` while the target may still move (keep polling),
/// else the status and a detail. `before` is the target's tip before the load, `predicted` the
/// predicted winner's tip, `last_chance` whether the verification window has ended.
pub fn judge(
    before: Option<&str>,
    predicted: &str,
    seen: &Seen,
    last_chance: bool,
) -> Option<(Status, String)> {
    let state_tip = seen.state_tip();
    let index_tip = seen.index_tip.as_deref();
    // The node holds the predicted tip, or a later tip on top of it (a write arrived since).
    let on_winner = seen.state_log.iter().any(|c| c == predicted);
    if on_winner && state_tip.is_some() && index_tip == state_tip {
        let detail = if state_tip == Some(predicted) {
            String::new()
        } else {
            format!(
                "on the predicted winner's branch, now at the later tip {}",
                state_tip.unwrap_or_default()
            )
        };
        return Some((Status::Repaired, detail));
    }
    if !last_chance {
        return None;
    }
    let show = |t: Option<&str>| t.unwrap_or("(none)").to_string();
    Some(match state_tip {
        None => (
            Status::Failed,
            format!(
                "the node's state could not be read after the sync=1 load (index tip {})",
                show(index_tip)
            ),
        ),
        Some(_) if on_winner => (
            Status::Failed,
            format!(
                "the state reached the predicted winner's branch (tip {}) but the index row \
                 still shows {}",
                show(state_tip),
                show(index_tip)
            ),
        ),
        Some(t) if Some(t) == before => (
            Status::Failed,
            format!(
                "still on its own branch (tip {t}) after a sync=1 load: it did not learn the \
                 predicted winner's tip {predicted} from its peers (are they connected?), or \
                 js-ceramic keeps this branch and the prediction is wrong"
            ),
        ),
        Some(t) => (
            Status::SettledElsewhere,
            format!(
                "js-ceramic settled on another branch than predicted: tip {t} (was {}), \
                 predicted {predicted}; index tip {}",
                show(before),
                show(index_tip)
            ),
        ),
    })
}

/// Makes the target resolve the fork itself (a `sync=1` load), then polls its state and index
/// row until they show the predicted winner's tip, or the verify window ends. Also the way out
/// when a commit post was refused as building on stale state (the node forked since the plan).
pub(super) async fn resolve(
    api: &NodeApi,
    a: &Action,
    step: &mut Stepper<'_>,
    index: &mut IndexReader,
    options: &RepairOptions,
) -> Done {
    let done = |status, detail, seen: Option<&Seen>| Done {
        status,
        winning_tip: a.winning_tip.clone(),
        state_tip: seen.and_then(|s| s.state_tip().map(str::to_string)),
        index_tip: seen.and_then(|s| s.index_tip.clone()),
        detail,
    };
    let Some(predicted) = a.winning_tip.clone() else {
        return done(Status::Failed, "no predicted winner's tip".into(), None);
    };
    let before = api
        .stream(&a.stream_id)
        .await
        .ok()
        .and_then(|s| s.tip().map(str::to_string));
    if let Err(e) = api.load_synced(&a.stream_id).await {
        let _ = step.record("sync", None, "error", &e.to_string(), None);
        return match classify(e) {
            StepError::Rejected(t) => done(Status::Unrepairable, t, None),
            StepError::Transient(t) | StepError::Stale(t) => done(Status::Failed, t, None),
        };
    }
    if let Err(e) = step.record("sync", None, "ok", "", None) {
        return done(Status::Failed, e, None);
    }
    let deadline = Instant::now() + options.verify_timeout;
    loop {
        let last_chance = Instant::now() >= deadline;
        let mut seen = Seen {
            state_log: Vec::new(),
            index_tip: None,
        };
        let mut errors = Vec::new();
        match api.stream(&a.stream_id).await {
            Ok(s) => seen.state_log = s.log.into_iter().map(|e| e.cid).collect(),
            Err(e) => errors.push(e.to_string()),
        }
        match index.tip(&a.model, &a.stream_id).await {
            Ok(t) => seen.index_tip = t,
            Err(e) => errors.push(e),
        }
        if let Some((status, mut detail)) = judge(before.as_deref(), &predicted, &seen, last_chance)
        {
            if status != Status::Repaired && !errors.is_empty() {
                detail.push_str(&format!(" ({})", errors.join("; ")));
            }
            return done(status, detail, Some(&seen));
        }
        tokio::time::sleep(VERIFY_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(log: &[&str], index: Option<&str>) -> Seen {
        Seen {
            state_log: log.iter().map(|c| c.to_string()).collect(),
            index_tip: index.map(str::to_string),
        }
    }

    #[test]
    fn the_predicted_tip_in_state_and_index_is_repaired() {
        let s = seen(&["g", "w"], Some("w"));
        assert_eq!(
            judge(Some("l"), "w", &s, false),
            Some((Status::Repaired, String::new()))
        );
        // A later write on top of the winner counts too, once the index shows it.
        let s = seen(&["g", "w", "w2"], Some("w2"));
        let (status, detail) = judge(Some("l"), "w", &s, false).expect("verdict");
        assert_eq!(status, Status::Repaired);
        assert!(detail.contains("later tip w2"), "{detail}");
    }

    #[test]
    fn an_index_behind_the_state_is_waited_for_then_failed() {
        let s = seen(&["g", "w"], Some("l"));
        assert_eq!(judge(Some("l"), "w", &s, false), None);
        let (status, detail) = judge(Some("l"), "w", &s, true).expect("verdict");
        assert_eq!(status, Status::Failed);
        assert!(detail.contains("index row still shows l"), "{detail}");
    }

    #[test]
    fn another_branch_is_a_finding_and_no_move_is_a_failure() {
        let s = seen(&["g", "x"], Some("x"));
        let (status, detail) = judge(Some("l"), "w", &s, true).expect("verdict");
        assert_eq!(status, Status::SettledElsewhere);
        assert!(detail.contains("tip x (was l), predicted w"), "{detail}");
        let s = seen(&["g", "l"], Some("l"));
        let (status, detail) = judge(Some("l"), "w", &s, true).expect("verdict");
        assert_eq!(status, Status::Failed);
        assert!(detail.contains("still on its own branch"), "{detail}");
    }

    #[test]
    fn stale_state_errors_are_recognised() {
        assert!(is_stale_state(
            "Commit to stream k… rejected because it builds on stale state. Calling 'sync()' …"
        ));
        assert!(!is_stale_state(
            "Txn bafy… was not recently anchored by the InMemoryAnchorService"
        ));
    }
}
