//! Turns one differing key (each node's value or absence) into report rows.
//!
//! Absent nodes are `missing_stream`. Among the nodes that hold a row, the tip held by the most
//! nodes is the majority tip (none on a tie); nodes with another tip are `tip_mismatch` (refined
//! into lagging / forked once commit logs are read), and nodes with the majority tip but other
//! column content are `content_mismatch`. Nodes in the majority get no row; they are listed in
//! `agreeing_nodes` of the others.

use std::collections::BTreeMap;

use crate::recon::{Difference, Value};
use crate::report::{Divergence, Kind};

/// The largest group, if it is strictly larger than every other.
fn majority<K: Clone + Ord>(groups: &BTreeMap<K, Vec<usize>>) -> Option<K> {
    let mut sizes: Vec<(usize, &K)> = groups.iter().map(|(k, v)| (v.len(), k)).collect();
    sizes.sort_by_key(|s| std::cmp::Reverse(s.0));
    match sizes.as_slice() {
        [(n, k), rest @ ..] if rest.first().is_none_or(|(m, _)| m < n) => Some((*k).clone()),
        _ => None,
    }
}

pub fn classify(model: &str, diff: &Difference, nodes: &[String]) -> Vec<Divergence> {
    let stream = diff.key.stream();
    let mut by_tip: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut absent = Vec::new();
    for (i, v) in diff.values.iter().enumerate() {
        match v {
            Some(v) => by_tip.entry(v.tip.as_str()).or_default().push(i),
            None => absent.push(i),
        }
    }
    let majority_tip = majority(&by_tip);
    let names = |idx: &[usize]| idx.iter().map(|&i| nodes[i].clone()).collect::<Vec<_>>();
    let all_tips = || {
        diff.values
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Some(v) if v.tip.is_empty() => format!("{}=(no tip)", nodes[i]),
                Some(v) => format!("{}={}", nodes[i], v.tip),
                None => format!("{}=(absent)", nodes[i]),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let row = |i: usize, kind: Kind, agreeing: Vec<String>, detail: String| {
        let tip = diff.values[i]
            .as_ref()
            .map(|v| v.tip.clone())
            .filter(|t| !t.is_empty());
        Divergence::stream(model, &stream, &nodes[i], kind, tip, detail)
            .with_majority(majority_tip.map(str::to_string), agreeing)
    };
    let mut out = Vec::new();
    let holders: Vec<usize> = by_tip.values().flatten().copied().collect();
    for &i in &absent {
        let agreeing = match majority_tip {
            Some(t) => names(&by_tip[t]),
            None => names(&holders),
        };
        out.push(row(
            i,
            Kind::MissingStream,
            agreeing,
            format!("no row on this node; {}", all_tips()),
        ));
    }
    for (tip, idx) in &by_tip {
        if Some(*tip) == majority_tip {
            // Same tip: compare the other columns within the group.
            let mut by_digest: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
            for &i in idx {
                if let Some(Value { digest, .. }) = &diff.values[i] {
                    by_digest.entry(*digest).or_default().push(i);
                }
            }
            if by_digest.len() > 1 {
                let main = majority(&by_digest);
                for (digest, members) in &by_digest {
                    if Some(*digest) == main {
                        continue;
                    }
                    let agreeing = main.map(|m| names(&by_digest[&m])).unwrap_or_default();
                    for &i in members {
                        out.push(row(
                            i,
                            Kind::ContentMismatch,
                            agreeing.clone(),
                            format!(
                                "same tip, different controller, content, anchor times or custom \
                                 columns (column digest {:08x})",
                                digest >> 32
                            ),
                        ));
                    }
                }
            }
            continue;
        }
        let agreeing = majority_tip.map(|t| names(&by_tip[t])).unwrap_or_default();
        for &i in idx {
            out.push(row(
                i,
                Kind::TipMismatch,
                agreeing.clone(),
                format!("tips: {}", all_tips()),
            ));
        }
    }
    out
}
