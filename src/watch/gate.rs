//! The load-balancer readiness gate (issue 13): `GET /ready/<node>` on `watch`'s HTTP listener
//! answers 200 while the node may take traffic and 503 with a one-line reason while it may not,
//! so an HAProxy, nginx or Traefik health check takes a divergent node out of rotation and puts
//! it back once it is repaired.
//!
//! A node is held out when, in the latest cycle, it was unreachable (its index could not be read
//! or its API failed the healthcheck), or it has a divergence of a gated kind (`--gate-on`)
//! first seen at least `--gate-after` ago. Ages are judged when the proxy asks, not when the
//! cycle ended, so a divergence crosses `--gate-after` between cycles too. Before the first
//! cycle every node is 503: nothing is known yet.
//!
//! Pure: [`Snapshot::from_report`] keeps what the verdict needs from a cycle, [`verdict`]
//! decides. The HTTP route is in `http.rs`.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::report::{Kind, Report};

/// Kinds that hold a node out by default: every kind that means the node serves other data
/// than the cluster (not `unreachable`, judged on its own; not `in_flight`, a write still
/// propagating; not `model_not_indexed`, a deployment choice).
pub const DEFAULT_KINDS: [Kind; 8] = [
    Kind::MissingStream,
    Kind::TipMismatch,
    Kind::Lagging,
    Kind::Forked,
    Kind::IndexStale,
    Kind::IndexMissing,
    Kind::ContentMismatch,
    Kind::InvalidRow,
];

/// `--gate-on` and `--gate-after`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    pub on: Vec<Kind>,
    /// A divergence holds the node out once it is at least this old.
    pub after: Duration,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            on: DEFAULT_KINDS.to_vec(),
            after: Duration::from_secs(60),
        }
    }
}

/// What the gate knows from the latest cycle.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Every node of the cluster: `None` when it was reachable, else why not.
    pub nodes: BTreeMap<String, Option<String>>,
    /// `(node, kind, first seen in unix ms)` of each divergence row.
    pub divergences: Vec<(String, Kind, i64)>,
}

impl Snapshot {
    /// From a cycle's report (its rows aged: `first_seen` set; a row without one counts as
    /// first seen at `now_ms`) and the nodes' API healthchecks (`Err`: why it failed).
    pub fn from_report(
        report: &Report,
        health: &BTreeMap<String, Result<(), String>>,
        now_ms: i64,
    ) -> Self {
        let mut nodes: BTreeMap<String, Option<String>> = report
            .nodes
            .iter()
            .map(|n| {
                let why = (!n.reachable).then(|| {
                    format!(
                        "index unreadable: {}",
                        n.error.as_deref().unwrap_or("no detail")
                    )
                });
                (n.name.clone(), why)
            })
            .collect();
        for (node, result) in health {
            if let Err(e) = result {
                let slot = nodes.entry(node.clone()).or_default();
                if slot.is_none() {
                    *slot = Some(format!("API healthcheck failed: {e}"));
                }
            }
        }
        let divergences = report
            .divergences
            .iter()
            .map(|d| {
                let seen = d.first_seen.as_deref().and_then(unix_ms).unwrap_or(now_ms);
                (d.node.clone(), d.kind, seen)
            })
            .collect();
        Self { nodes, divergences }
    }
}

fn unix_ms(rfc3339: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// The gate's answer for one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Ready(String),
    NotReady(String),
    /// No such node in the cluster.
    Unknown(String),
}

/// Whether `node` may take traffic at `now_ms`, with a one-line reason.
pub fn verdict(snapshot: Option<&Snapshot>, rules: &Rules, node: &str, now_ms: i64) -> Verdict {
    let Some(s) = snapshot else {
        return Verdict::NotReady("no audit cycle has finished yet".into());
    };
    let Some(reach) = s.nodes.get(node) else {
        return Verdict::Unknown(format!("no node {node:?} in the cluster"));
    };
    if let Some(why) = reach {
        return Verdict::NotReady(format!(
            "unreachable in the latest cycle: {}",
            one_line(why)
        ));
    }
    if s.divergences
        .iter()
        .any(|(n, k, _)| n == node && *k == Kind::Unreachable)
    {
        return Verdict::NotReady(
            "unreachable in the latest cycle: a model could not be read".into(),
        );
    }
    let after = i64::try_from(rules.after.as_millis()).unwrap_or(i64::MAX);
    let mut held: BTreeMap<Kind, u64> = BTreeMap::new();
    let mut young = 0u64;
    let mut oldest = i64::MAX;
    for (_, kind, seen) in s
        .divergences
        .iter()
        .filter(|(n, k, _)| n == node && rules.on.contains(k))
    {
        if now_ms.saturating_sub(*seen) >= after {
            *held.entry(*kind).or_default() += 1;
            oldest = oldest.min(*seen);
        } else {
            young += 1;
        }
    }
    if held.is_empty() {
        return Verdict::Ready(if young == 0 {
            "no gated divergence".into()
        } else {
            format!("{young} gated divergence(s) younger than --gate-after")
        });
    }
    Verdict::NotReady(format!(
        "{} for {} s or more",
        held.iter()
            .map(|(k, n)| format!("{}={n}", k.as_str()))
            .collect::<Vec<_>>()
            .join(" "),
        now_ms.saturating_sub(oldest) / 1000
    ))
}

/// Error texts can span lines; a health check reason must not.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(divergences: &[(&str, Kind, i64)]) -> Snapshot {
        Snapshot {
            nodes: [("a".to_string(), None), ("b".to_string(), None)].into(),
            divergences: divergences
                .iter()
                .map(|(n, k, t)| (n.to_string(), *k, *t))
                .collect(),
        }
    }

    fn rules(after_s: u64) -> Rules {
        Rules {
            after: Duration::from_secs(after_s),
            ..Rules::default()
        }
    }

    #[test]
    fn a_divergence_holds_its_node_out_only_once_older_than_gate_after() {
        let s = snapshot(&[("b", Kind::Lagging, 1_000_000)]);
        assert_eq!(
            verdict(Some(&s), &rules(30), "b", 1_000_000 + 29_999),
            Verdict::Ready("1 gated divergence(s) younger than --gate-after".into())
        );
        assert_eq!(
            verdict(Some(&s), &rules(30), "b", 1_000_000 + 45_000),
            Verdict::NotReady("lagging=1 for 45 s or more".into())
        );
        assert_eq!(
            verdict(Some(&s), &rules(30), "a", 1_000_000 + 45_000),
            Verdict::Ready("no gated divergence".into())
        );
    }

    #[test]
    fn only_gated_kinds_count_and_unreachable_always_does() {
        let s = snapshot(&[("b", Kind::InFlight, 0), ("b", Kind::ContentMismatch, 0)]);
        let only_lagging = Rules {
            on: vec![Kind::Lagging],
            after: Duration::ZERO,
        };
        assert!(matches!(
            verdict(Some(&s), &only_lagging, "b", 10),
            Verdict::Ready(_)
        ));
        assert!(
            matches!(verdict(Some(&s), &rules(0), "b", 10), Verdict::NotReady(r) if r == "content_mismatch=1 for 0 s or more")
        );
        let mut down = snapshot(&[]);
        down.nodes.insert(
            "b".into(),
            Some("API healthcheck failed:\nconnection refused".into()),
        );
        assert_eq!(
            verdict(Some(&down), &rules(0), "b", 10),
            Verdict::NotReady(
                "unreachable in the latest cycle: API healthcheck failed: connection refused"
                    .into()
            )
        );
        let model_down = snapshot(&[("a", Kind::Unreachable, 0)]);
        assert!(matches!(
            verdict(Some(&model_down), &rules(600), "a", 10),
            Verdict::NotReady(_)
        ));
    }

    #[test]
    fn before_the_first_cycle_nothing_is_ready_and_unknown_nodes_are_unknown() {
        assert!(matches!(
            verdict(None, &rules(0), "a", 0),
            Verdict::NotReady(_)
        ));
        assert!(matches!(
            verdict(Some(&snapshot(&[])), &rules(0), "z", 0),
            Verdict::Unknown(_)
        ));
    }

    #[test]
    fn a_failed_healthcheck_marks_a_node_whose_index_was_read() {
        let report = Report {
            schema_version: 1,
            cluster: "c".into(),
            started_at: String::new(),
            finished_at: String::new(),
            duration_ms: 0,
            complete: true,
            hash: String::new(),
            compared: "all".into(),
            row_check: "quick".into(),
            params: Default::default(),
            nodes: Vec::new(),
            models: Vec::new(),
            counts: Default::default(),
            divergences: Vec::new(),
        };
        let health = [("a".to_string(), Err("HTTP 503".to_string()))].into();
        let s = Snapshot::from_report(&report, &health, 0);
        assert_eq!(
            s.nodes.get("a"),
            Some(&Some("API healthcheck failed: HTTP 503".into()))
        );
    }
}
