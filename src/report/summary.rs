//! The short human summary printed on stdout after an audit.

use std::fmt::Write;

use super::{Kind, Report};

pub fn render(report: &Report) -> String {
    let mut s = String::new();
    let verdict = if !report.complete {
        "INCOMPLETE"
    } else if report.divergences.is_empty() {
        "consistent"
    } else {
        "DIVERGENT"
    };
    let _ = writeln!(
        s,
        "cluster {}: {verdict} ({} node(s), {} model(s), {} ms)",
        report.cluster,
        report.nodes.len(),
        report.models.len(),
        report.duration_ms
    );
    let _ = writeln!(
        s,
        "\n{:<16} {:<9} {:<9} {:>10} {:>12} {:>6} {:>8}  status",
        "node", "source", "mode", "rows", "bytes", "sql", "ms"
    );
    for n in &report.nodes {
        let status = match &n.error {
            Some(e) => format!("UNREACHABLE: {e}"),
            None => "ok".into(),
        };
        let _ = writeln!(
            s,
            "{:<16} {:<9} {:<9} {:>10} {:>12} {:>6} {:>8}  {status}",
            n.name, n.source, n.mode, n.rows, n.bytes_received, n.statements, n.millis
        );
    }
    for n in &report.nodes {
        if let Some(t) = n.tls.as_deref().filter(|t| t.starts_with("none:")) {
            let _ = writeln!(s, "note: node {}: TLS {t}", n.name);
        }
        if let Some(e) = &n.api_error {
            let _ = writeln!(s, "note: node {}: HTTP API unreachable: {e}", n.name);
        }
    }
    if !report.models.is_empty() {
        let _ = writeln!(
            s,
            "\n{:<64} {:>6} {:>9}  divergences",
            "model", "nodes", "rounds"
        );
        for m in &report.models {
            let counts = m
                .counts
                .iter()
                .map(|(k, n)| format!("{}={n}", k.as_str()))
                .collect::<Vec<_>>()
                .join(" ");
            let _ = writeln!(
                s,
                "{:<64} {:>6} {:>9}  {}",
                m.model,
                m.nodes_compared.len(),
                m.cost.as_ref().map_or("-".into(), |c| c.rounds.to_string()),
                if counts.is_empty() {
                    "none".into()
                } else {
                    counts
                }
            );
        }
    }
    for m in &report.models {
        for (node, more) in &m.invalid_rows_not_listed {
            let _ = writeln!(
                s,
                "note: node {node}, model {}: {more} more invalid rows than are listed",
                m.model
            );
        }
    }
    let _ = writeln!(s);
    for k in Kind::ALL {
        if let Some(n) = report.counts.get(&k) {
            let _ = writeln!(s, "{:<18} {n}", k.as_str());
        }
    }
    if report.counts.is_empty() {
        let _ = writeln!(s, "no divergence");
    }
    s
}
