//! Divergence ageing across `watch` cycles: when each divergence was first seen and in how many
//! consecutive cycles; one that disappears by itself (pubsub caught up, a repair) is reported
//! once as healed. Kept in the watch state file between runs.

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
/// `first_seen` and `cycles`, and returns what healed. Rows of kinds that describe the audit
/// itself (`unreachable`, `in_flight`) are not aged: a node that could not be read says nothing
/// about the rows it holds.
pub fn age(
    known: &mut BTreeMap<String, (Key, Seen)>,
    now_divergent: &mut [Divergence],
    now: &str,
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
            },
            None => Seen {
                first_seen: now.to_string(),
                last_seen: now.to_string(),
                cycles: 1,
            },
        };
        d.first_seen = Some(seen.first_seen.clone());
        d.cycles = Some(seen.cycles);
        next.insert(id, (k, seen));
    }
    let healed = known
        .iter()
        .filter(|(id, _)| !next.contains_key(*id))
        .map(|(_, ((model, stream_id, node, kind), s))| Healed {
            model: model.clone(),
            stream_id: stream_id.clone(),
            node: node.clone(),
            kind: *kind,
            first_seen: s.first_seen.clone(),
            cycles: s.cycles,
        })
        .collect();
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
        let mut known = BTreeMap::new();
        let mut c1 = vec![row("s1", Kind::Lagging), row("s2", Kind::MissingStream)];
        assert!(age(&mut known, &mut c1, "t1").is_empty());
        assert_eq!(c1[0].cycles, Some(1));
        let mut c2 = vec![row("s1", Kind::Lagging), row("", Kind::Unreachable)];
        let healed = age(&mut known, &mut c2, "t2");
        assert_eq!(c2[0].cycles, Some(2));
        assert_eq!(c2[0].first_seen.as_deref(), Some("t1"));
        assert_eq!(c2[1].cycles, None);
        assert_eq!(healed.len(), 1);
        assert_eq!((healed[0].stream_id.as_str(), healed[0].cycles), ("s2", 1));
        // Healed once: the next cycle does not report it again.
        let mut c3 = vec![row("s1", Kind::Lagging)];
        assert!(age(&mut known, &mut c3, "t3").is_empty());
        assert_eq!(c3[0].cycles, Some(3));
        // Another kind for the same stream is a new divergence.
        let mut c4 = vec![row("s1", Kind::IndexStale)];
        let healed = age(&mut known, &mut c4, "t4");
        assert_eq!((c4[0].cycles, healed.len()), (Some(1), 1));
    }
}
