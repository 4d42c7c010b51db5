//! What a repair would do, decided from an audit's divergences: per stream and target node, a
//! strategy, the node to copy from, and (once the nodes were read) the commits to send in
//! order. [`select`] is pure: which rows are acted on, and why the others are not.

use serde::{Deserialize, Serialize};

use crate::report::{ContentCause, Divergence, Kind};

/// How a target node is brought to the winning tip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The node does not know the stream: `POST /streams` with the genesis, then every later
    /// commit in order.
    Create,
    /// The node's log is a prefix of the source's: `POST /commits` for every missing commit,
    /// oldest first (never only the newest: an isolated node hangs fetching its `prev`). Falls
    /// back to the whole log from the genesis.
    Republish,
    /// The node's index disagrees with its own state (another tip, no row, or other content
    /// at the same tip): a `sync=1` load makes it re-index.
    Reindex,
    /// `--resolve-forks`: a `sync=1` load on the node on the losing branch, which makes
    /// js-ceramic fetch the other tip and apply its own conflict resolution (posting the
    /// winner's commits is refused: they do not build on the node's tip).
    ResolveFork,
    /// A ceramic-one node lacks events another holds: `GET /ceramic/events/{cid}` on the source,
    /// `POST /ceramic/events` on the target, init event first, then in `prev` order
    /// ([`crate::repair::events`]).
    CopyEvents,
    /// `--add-interest`: `POST /ceramic/interests` for the model on a node that lacks it, so
    /// Recon syncs the model between it and the nodes already interested.
    AddInterest,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Create => "create",
            Strategy::Republish => "republish",
            Strategy::Reindex => "reindex",
            Strategy::ResolveFork => "resolve_fork",
            Strategy::CopyEvents => "copy_events",
            Strategy::AddInterest => "add_interest",
        }
    }
}

/// Which nodes a repair may write to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Targets {
    Named(Vec<String>),
    /// `--all-lagging`: every node with something to repair.
    All,
}

impl Targets {
    pub fn allows(&self, node: &str) -> bool {
        match self {
            Targets::All => true,
            Targets::Named(list) => list.iter().any(|n| n == node),
        }
    }
}

/// One line of `plan.csv`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    pub model: String,
    pub stream_id: String,
    pub target: String,
    /// The divergence kind this action answers.
    pub kind: Kind,
    pub strategy: Option<Strategy>,
    /// The node holding the winning tip (the target itself for `reindex`).
    pub source: Option<String>,
    /// The tip the target must reach, once known.
    pub winning_tip: Option<String>,
    /// CIDs to send, in order (for `create`, the genesis first).
    pub commits: Vec<String>,
    /// Why this row is not acted on (then `strategy` is empty).
    pub skip: Option<String>,
    /// Skipped because a node could not be read while planning (not a policy): the repair
    /// did not do what it would have, so its exit code is 2.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_error: bool,
    /// What the action will make happen beyond its own writes (`add_interest`: what the nodes
    /// will download).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
}

/// Chooses a strategy for each stream-level divergence on an allowed target; everything else
/// is listed with the reason it is left alone. Node- and model-level rows are not actions.
pub fn select(divergences: &[Divergence], targets: &Targets, resolve_forks: bool) -> Vec<Action> {
    let mut out = Vec::new();
    for d in divergences.iter().filter(|d| !d.stream_id.is_empty()) {
        let mut action = Action {
            model: d.model.clone(),
            stream_id: d.stream_id.clone(),
            target: d.node.clone(),
            kind: d.kind,
            strategy: None,
            source: None,
            winning_tip: None,
            commits: Vec::new(),
            skip: None,
            read_error: false,
            effect: None,
        };
        let chosen: Result<(Strategy, Option<String>), String> = match d.kind {
            Kind::Lagging => d
                .log
                .ahead_node
                .clone()
                .map(|n| (Strategy::Republish, Some(n)))
                .ok_or_else(|| "no node ahead is named".to_string()),
            Kind::MissingStream => d
                .agreeing_nodes
                .first()
                .cloned()
                .map(|n| (Strategy::Create, Some(n)))
                .ok_or_else(|| "no node holding the stream is named".to_string()),
            Kind::IndexStale | Kind::IndexMissing => Ok((Strategy::Reindex, Some(d.node.clone()))),
            Kind::MissingEvent => d
                .agreeing_nodes
                .first()
                .cloned()
                .map(|n| (Strategy::CopyEvents, Some(n)))
                .ok_or_else(|| "no node holding the events is named".to_string()),
            Kind::ContentMismatch => match d.log.content_cause {
                Some(ContentCause::IndexDiffersFromState) => {
                    Ok((Strategy::Reindex, Some(d.node.clone())))
                }
                Some(ContentCause::StateDiffersFromOtherNodes) => Err(
                    "content_mismatch: the node's own state differs from the other nodes' at the \
                     same tip: reported, not repaired"
                        .into(),
                ),
                Some(ContentCause::OtherColumns) => Err(
                    "content_mismatch: the row matches the node's state; anchor times or custom \
                     columns differ: not repaired"
                        .into(),
                ),
                None => Err(
                    "content_mismatch: cause not determined (audit with api_url set and without \
                     --no-logs): not repaired"
                        .into(),
                ),
            },
            Kind::Forked if resolve_forks => d
                .log
                .predicted_winner
                .clone()
                .map(|n| (Strategy::ResolveFork, Some(n)))
                .ok_or_else(|| "fork without a predicted winner".to_string()),
            Kind::Forked => Err("fork: left alone without --resolve-forks".into()),
            Kind::TipMismatch => Err(
                "tip_mismatch: the logs were not read, so who is behind is unknown (audit with \
                 api_url set and without --no-logs)"
                    .into(),
            ),
            Kind::StateMissing => Err(
                "state_missing: ceramic-one builds the state itself once it holds the model's \
                 definition (copied by the meta-model's missing_event action, if any)"
                    .into(),
            ),
            Kind::UndeliveredEvent => Err(
                "undelivered_event: delivered by the node once it holds the `prev` (copied by \
                 the stream's missing_event action, if any)"
                    .into(),
            ),
            other => Err(format!("{}: not repaired by re-publishing", other.as_str())),
        };
        match chosen {
            Ok((strategy, source)) if targets.allows(&d.node) => {
                action.strategy = Some(strategy);
                action.source = source;
                action.winning_tip = match strategy {
                    Strategy::Reindex => None,
                    _ => d.majority_tip.clone(),
                };
            }
            Ok(_) => action.skip = Some("the node is not a repair target (--nodes)".into()),
            Err(why) => action.skip = Some(why),
        }
        out.push(action);
    }
    out
}

/// One row of `plan.csv`.
#[derive(Default, Serialize)]
struct CsvRow<'a> {
    model: &'a str,
    stream_id: &'a str,
    target: &'a str,
    kind: &'a str,
    strategy: Option<&'a str>,
    source: Option<&'a str>,
    winning_tip: Option<&'a str>,
    /// `;`-separated.
    commits: String,
    skip: Option<&'a str>,
}

/// `plan.csv`: one row per action.
pub fn render_csv(actions: &[Action]) -> std::io::Result<Vec<u8>> {
    crate::report::csv::rows(actions.iter().map(|a| CsvRow {
        model: &a.model,
        stream_id: &a.stream_id,
        target: &a.target,
        kind: a.kind.as_str(),
        strategy: a.strategy.map(Strategy::as_str),
        source: a.source.as_deref(),
        winning_tip: a.winning_tip.as_deref(),
        commits: a.commits.join(";"),
        skip: a.skip.as_deref(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::LogFinding;

    fn row(node: &str, kind: Kind) -> Divergence {
        let stream = format!("s-{node}-{}", kind.as_str());
        Divergence::stream("m", &stream, node, kind, Some("old".into()), String::new())
            .with_majority(Some("new".into()), vec!["a".into()])
            .with_log(LogFinding {
                ahead_node: Some("a".into()),
                predicted_winner: Some("a".into()),
                ..LogFinding::default()
            })
    }

    #[test]
    fn each_kind_gets_its_strategy_and_only_named_nodes_are_targets() {
        let rows = vec![
            row("b", Kind::Lagging),
            row("b", Kind::MissingStream),
            row("b", Kind::IndexStale),
            row("b", Kind::IndexMissing),
            row("b", Kind::Forked),
            row("b", Kind::ContentMismatch),
            row("c", Kind::Lagging),
        ];
        let plan = select(&rows, &Targets::Named(vec!["b".into()]), false);
        let got: Vec<(String, Option<Strategy>, Option<String>)> = plan
            .iter()
            .map(|a| (a.target.clone(), a.strategy, a.source.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("b".into(), Some(Strategy::Republish), Some("a".into())),
                ("b".into(), Some(Strategy::Create), Some("a".into())),
                ("b".into(), Some(Strategy::Reindex), Some("b".into())),
                ("b".into(), Some(Strategy::Reindex), Some("b".into())),
                ("b".into(), None, None),
                ("b".into(), None, None),
                ("c".into(), None, None),
            ]
        );
        assert!(plan[4]
            .skip
            .as_deref()
            .unwrap_or_default()
            .contains("--resolve-forks"));
        assert!(plan[6]
            .skip
            .as_deref()
            .unwrap_or_default()
            .contains("not a repair target"));
        assert_eq!(plan[0].winning_tip.as_deref(), Some("new"));
        let mut edited = row("b", Kind::ContentMismatch);
        edited.log.content_cause = Some(ContentCause::IndexDiffersFromState);
        let mut differs = row("c", Kind::ContentMismatch);
        differs.log.content_cause = Some(ContentCause::StateDiffersFromOtherNodes);
        let content = select(&[edited, differs], &Targets::All, false);
        assert_eq!(content[0].strategy, Some(Strategy::Reindex));
        assert_eq!(content[1].strategy, None);
        assert!(content[1]
            .skip
            .as_deref()
            .unwrap_or_default()
            .contains("not repaired"));
        let forks = select(&rows, &Targets::All, true);
        assert_eq!(forks[4].strategy, Some(Strategy::ResolveFork));
        assert_eq!(forks[6].strategy, Some(Strategy::Republish));
    }
}
