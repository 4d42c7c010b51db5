//! Prometheus text exposition (format 0.0.4) of the latest `watch` cycle, served on
//! `--metrics-listen` at `/metrics` (see [`super::http`]) and optionally written to a node_exporter textfile.
//! Names follow `ceramic_audit_<name>_<unit>`; labels are kind, model, node, type and result
//! only — never a stream id, so the series count stays bounded by the cluster's shape.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::report::{Kind, Report};

/// Counters kept across cycles by the running process.
#[derive(Clone, Debug, Default)]
pub struct Totals {
    /// Cycles by type (`full`, `incremental`).
    pub cycles: BTreeMap<String, u64>,
    /// Cycles that ended incomplete (a node or model could not be read).
    pub incomplete_cycles: u64,
    pub bytes_received: BTreeMap<String, u64>,
    pub healed: u64,
    /// Repairs by result (`repaired`, `failed`, `unrepairable`, `skipped`).
    pub repairs: BTreeMap<String, u64>,
    /// Rows per (model, node) at the latest cycle that compared the model whole.
    pub rows: BTreeMap<(String, String), u64>,
}

/// What one exposition describes.
pub struct Exposition<'a> {
    pub report: &'a Report,
    /// Divergences seen in at least this many consecutive cycles count as alerting.
    pub alert_after: u32,
    pub last_run_unix: f64,
    pub last_success_unix: Option<f64>,
    pub duration_seconds: f64,
    pub totals: &'a Totals,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {value}");
        } else {
            let _ = writeln!(self.0, "{name}{{{}}} {value}", labels.join(","));
        }
    }
}

pub fn render(e: &Exposition) -> String {
    let mut o = Out(String::new());
    build_info(&mut o);
    latest_cycle(&mut o, e);
    since_start(&mut o, e);
    timing(&mut o, e);
    o.0
}

/// The exposition until the first cycle has finished: what is known already, so a scrape is
/// never an empty 200 — the build, no cycle run by this process yet, and (from `state.json`)
/// when an earlier run last finished a complete cycle. The latest-cycle series are absent
/// until there is a cycle to describe (0 would claim "no divergence" unobserved).
pub fn render_starting(last_success_unix: Option<f64>) -> String {
    let mut o = Out(String::new());
    build_info(&mut o);
    o.family(
        "ceramic_audit_cycles_total",
        "counter",
        "Audit cycles run since the process started, by type.",
    );
    for t in ["full", "incremental"] {
        o.sample("ceramic_audit_cycles_total", &[("type", t)], 0.0);
    }
    if let Some(t) = last_success_unix {
        o.family(
            "ceramic_audit_last_success_timestamp_seconds",
            "gauge",
            "When the latest complete cycle finished (unix time; 0 if none yet).",
        );
        o.sample("ceramic_audit_last_success_timestamp_seconds", &[], t);
    }
    o.0
}

/// `ceramic_audit_build_info{version}` 1: which build is running.
fn build_info(o: &mut Out) {
    o.family(
        "ceramic_audit_build_info",
        "gauge",
        "The running build (always 1; its version in the label).",
    );
    o.sample(
        "ceramic_audit_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
}

/// What the latest cycle found: divergences by kind, model and node; alerting ones; nodes up.
fn latest_cycle(o: &mut Out, e: &Exposition) {
    let r = e.report;
    o.family(
        "ceramic_audit_divergences",
        "gauge",
        "Divergence rows in the latest cycle, by kind, model and node.",
    );
    let mut by: BTreeMap<(Kind, &str, &str), u64> = BTreeMap::new();
    for d in &r.divergences {
        *by.entry((d.kind, d.model.as_str(), d.node.as_str()))
            .or_default() += 1;
    }
    // Every kind appears for every model and node compared, so that a kind dropping to zero
    // is a sample of 0 rather than a vanished series.
    for m in &r.models {
        for n in &m.nodes_compared {
            for k in Kind::ALL {
                by.entry((k, m.model.as_str(), n.as_str())).or_default();
            }
        }
    }
    for ((kind, model, node), n) in &by {
        o.sample(
            "ceramic_audit_divergences",
            &[("kind", kind.as_str()), ("model", model), ("node", node)],
            *n as f64,
        );
    }

    o.family(
        "ceramic_audit_alerting_divergences",
        "gauge",
        "Divergence rows seen in at least --alert-after consecutive cycles, by kind.",
    );
    let mut alerting: BTreeMap<Kind, u64> = Kind::ALL.iter().map(|k| (*k, 0)).collect();
    for d in &r.divergences {
        if d.cycles.unwrap_or(1) >= e.alert_after
            && !matches!(d.kind, Kind::Unreachable | Kind::InFlight)
        {
            *alerting.entry(d.kind).or_default() += 1;
        }
    }
    for (k, n) in &alerting {
        o.sample(
            "ceramic_audit_alerting_divergences",
            &[("kind", k.as_str())],
            *n as f64,
        );
    }

    o.family(
        "ceramic_audit_node_up",
        "gauge",
        "1 when the node's index could be read in the latest cycle.",
    );
    for n in &r.nodes {
        o.sample(
            "ceramic_audit_node_up",
            &[("node", n.name.as_str())],
            if n.reachable { 1.0 } else { 0.0 },
        );
    }
}

/// Row counts of the latest full comparison, and counters kept since the process started.
fn since_start(o: &mut Out, e: &Exposition) {
    o.family(
        "ceramic_audit_index_rows",
        "gauge",
        "Rows of each model in each node's index (latest full comparison of the model).",
    );
    for ((model, node), rows) in &e.totals.rows {
        o.sample(
            "ceramic_audit_index_rows",
            &[("model", model.as_str()), ("node", node.as_str())],
            *rows as f64,
        );
    }

    o.family(
        "ceramic_audit_received_bytes_total",
        "counter",
        "Result bytes received from each node's index since the process started.",
    );
    for (node, b) in &e.totals.bytes_received {
        o.sample(
            "ceramic_audit_received_bytes_total",
            &[("node", node.as_str())],
            *b as f64,
        );
    }

    o.family(
        "ceramic_audit_cycles_total",
        "counter",
        "Audit cycles run since the process started, by type.",
    );
    for t in ["full", "incremental"] {
        o.sample(
            "ceramic_audit_cycles_total",
            &[("type", t)],
            e.totals.cycles.get(t).copied().unwrap_or(0) as f64,
        );
    }
    o.family(
        "ceramic_audit_incomplete_cycles_total",
        "counter",
        "Cycles in which a node or model could not be read.",
    );
    o.sample(
        "ceramic_audit_incomplete_cycles_total",
        &[],
        e.totals.incomplete_cycles as f64,
    );
    o.family(
        "ceramic_audit_healed_divergences_total",
        "counter",
        "Divergences that disappeared by themselves (or by a repair) since the process started.",
    );
    o.sample(
        "ceramic_audit_healed_divergences_total",
        &[],
        e.totals.healed as f64,
    );
    o.family(
        "ceramic_audit_repairs_total",
        "counter",
        "Auto-repair actions since the process started, by result.",
    );
    for result in ["repaired", "failed", "unrepairable", "skipped"] {
        o.sample(
            "ceramic_audit_repairs_total",
            &[("result", result)],
            e.totals.repairs.get(result).copied().unwrap_or(0) as f64,
        );
    }
}

/// When the latest cycle ran and how long it took.
fn timing(o: &mut Out, e: &Exposition) {
    o.family(
        "ceramic_audit_last_run_timestamp_seconds",
        "gauge",
        "When the latest cycle finished (unix time).",
    );
    o.sample(
        "ceramic_audit_last_run_timestamp_seconds",
        &[],
        e.last_run_unix,
    );
    o.family(
        "ceramic_audit_last_success_timestamp_seconds",
        "gauge",
        "When the latest complete cycle finished (unix time; 0 if none yet).",
    );
    o.sample(
        "ceramic_audit_last_success_timestamp_seconds",
        &[],
        e.last_success_unix.unwrap_or(0.0),
    );
    o.family(
        "ceramic_audit_run_duration_seconds",
        "gauge",
        "How long the latest cycle took.",
    );
    o.sample(
        "ceramic_audit_run_duration_seconds",
        &[],
        e.duration_seconds,
    );
}
