//! Divergence ageing across `watch` cycles: when each divergence was first seen and in how many
//! consecutive cycles; one that disappears by itself (pubsub caught up, a repair) is reported
//! once as healed. Kept in the watch state file between runs.
//!
//! Healed means observed gone: a divergence that is absent because the cycle could not see it
//! (a node it concerns was down or not compared, the model's comparison stopped early, the
//! stream was outside an incremental cycle's scope) is carried over unchanged — its
//! `first_seen`, `cycles`, alerts and `--repair-after` clock go on when it is seen again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::report::{Divergence, Kind};

/// A divergence's identity across cycles.
pub type Key = (String, String, String, Kind);

pub fn key(d: &Divergence) -> Key {
    (d.model.clone(), d.stream_id.clone(), d.node.clone(), d.kind)
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    pub first_seen: String,
    pub last_seen: String,
    pub cycles: u32,
    /// The nodes whose rows the divergence was judged from (its node, the nodes agreeing with
    /// the majority, the node ahead): all must be compared again for it to count as healed.
    #[serde(default)]
    pub nodes: Vec<String>,
}

/// The nodes a divergence concerns: its own, and those it was judged against.
fn concerned(d: &Divergence) -> Vec<String> {
    let mut nodes: Vec<String> = std::iter::once(d.node.clone())
        .chain(d.agreeing_nodes.iter().cloned())
        .chain(d.log.ahead_node.iter().cloned())
        .collect();
    nodes.sort();
    nodes.dedup();
    nodes
}

/// One divergence that was reported last cycle and is gone now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Healed {
    pub model: String,
    pub stream_id: String,
    pub node: String,
    pub kind: Kind,
    pub first_seen: String,
    pub cycles: u32,
}

/// Ages `now_divergent` against `known` (updated in place) at time `now`: stamps each row with
/// `first_seen` and `cycles`, and returns what healed. `compared(model, stream, nodes)` says
/// whether this cycle compared `stream` of `model` on every one of `nodes`; a known divergence
/// that is absent but was not compared so is kept as it was, not healed. Rows of kinds that
/// describe the audit itself (`unreachable`, `in_flight`) are not aged: a node that could not be
/// read says nothing about the rows it holds.
pub fn age(
    known: &mut BTreeMap<String, (Key, Seen)>,
    now_divergent: &mut [Divergence],
    now: &str,
    compared: impl Fn(&str, &str, &[String]) -> bool,
) -> Vec<Healed> {
    let mut next: BTreeMap<String, (Key, Seen)> = BTreeMap::new();
    for d in now_divergent.iter_mut() {
        if matches!(d.kind, Kind::Unreachable | Kind::InFlight) {
            continue;
        }
        let k = key(d);
        let id = key_text(&k);
        let seen = match known.get(&id) {
            Some((_, s)) => Seen {
                first_seen: s.first_seen.clone(),
                last_seen: now.to_string(),
                cycles: s.cycles + 1,
                nodes: concerned(d),
            },
            None => Seen {
                first_seen: now.to_string(),
                last_seen: now.to_string(),
                cycles: 1,
                nodes: concerned(d),
            },
        };
        d.first_seen = Some(seen.first_seen.clone());
        d.cycles = Some(seen.cycles);
        next.insert(id, (k, seen));
    }
    let mut healed = Vec::new();
    for (id, (k, s)) in std::mem::take(known) {
        if next.contains_key(&id) {
            continue;
        }
        let (model, stream_id, node, kind) = &k;
        // State files written before `nodes` existed: the divergence's own node at least.
        let nodes = if s.nodes.is_empty() {
            vec![node.clone()]
        } else {
            s.nodes.clone()
        };
        if compared(model, stream_id, &nodes) {
            healed.push(Healed {
                model: model.clone(),
                stream_id: stream_id.clone(),
                node: node.clone(),
                kind: *kind,
                first_seen: s.first_seen.clone(),
                cycles: s.cycles,
            });
        } else {
            tracing::debug!(%model, stream = %stream_id, %node, "not compared this cycle: kept");
            next.insert(id, (k, s));
        }
    }
    *known = next;
    healed
}

/// The state file's map key (JSON keys are strings).
pub fn key_text((model, stream, node, kind): &Key) -> String {
    format!("{model}/{stream}/{node}/{}", kind.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(stream: &str, kind: Kind) -> Divergence {
        Divergence::stream("m", stream, "b", kind, None, String::new())
    }

    #[test]
    fn divergences_age_and_heal_once() {
        let all = |_: &str, _: &str, _: &[String]| true;
        let mut known = BTreeMap::new();
        let mut c1 = vec![row("s1", Kind::Lagging), row("s2", Kind::MissingStream)];
        assert!(age(&mut known, &mut c1, "t1", all).is_empty());
        assert_eq!(c1[0].cycles, Some(1));
        let mut c2 = vec![row("s1", Kind::Lagging), row("", Kind::Unreachable)];
        let healed = age(&mut known, &mut c2, "t2", all);
        assert_eq!(c2[0].cycles, Some(2));
        assert_eq!(c2[0].first_seen.as_deref(), Some("t1"));
        assert_eq!(c2[1].cycles, None);
        assert_eq!(healed.len(), 1);
        assert_eq!((healed[0].stream_id.as_str(), healed[0].cycles), ("s2", 1));
        // Healed once: the next cycle does not report it again.
        let mut c3 = vec![row("s1", Kind::Lagging)];
        assert!(age(&mut known, &mut c3, "t3", all).is_empty());
        assert_eq!(c3[0].cycles, Some(3));
        // Another kind for the same stream is a new divergence.
        let mut c4 = vec![row("s1", Kind::IndexStale)];
        let healed = age(&mut known, &mut c4, "t4", all);
        assert_eq!((c4[0].cycles, healed.len()), (Some(1), 1));
    }

    #[test]
    fn a_divergence_not_compared_is_kept_not_healed() {
        let mut known = BTreeMap::new();
        let mut d = row("s1", Kind::Lagging);
        d.agreeing_nodes = vec!["a".into()];
        let mut c1 = vec![d.clone()];
        age(&mut known, &mut c1, "t1", |_, _, _| true);
        // Cycle 2: node a (the one b was judged against) is down: b's row vanished unseen.
        let down_a = |_: &str, _: &str, nodes: &[String]| !nodes.iter().any(|n| n == "a");
        assert!(age(&mut known, &mut [], "t2", down_a).is_empty());
        // Cycle 3: seen again: the same divergence, its third cycle, first seen at t1.
        let mut c3 = vec![d];
        assert!(age(&mut known, &mut c3, "t3", |_, _, _| true).is_empty());
        assert_eq!(
            (c3[0].first_seen.as_deref(), c3[0].cycles),
            (Some("t1"), Some(2))
        );
        // Cycle 4: compared and gone: healed.
        let healed = age(&mut known, &mut [], "t4", |_, _, _| true);
        assert_eq!(healed.len(), 1);
    }
}
