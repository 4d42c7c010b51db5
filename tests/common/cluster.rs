//! Cluster files and audit runs shared by the suites that audit real Postgres servers and
//! SQLite files (`audit_pg`, `audit_pg_faults`, `pg_rounds`, `statement_rows`).

use std::path::Path;

use ceramic_audit::audit::{self, AuditOptions};
use ceramic_audit::config::ClusterConfig;
use ceramic_audit::report::{Divergence, Kind, Report};
use ceramic_audit::source::Mode;

use super::pg::TempPg;

/// A cluster file for `nodes` (name, index location), written in `dir`.
pub fn config(dir: &Path, nodes: &[(&str, String)]) -> ClusterConfig {
    let mut text = String::from("cluster = \"test\"\n");
    for (name, index) in nodes {
        text.push_str(&format!(
            "\n[[nodes]]\nname = \"{name}\"\nindex = \"{index}\"\n"
        ));
    }
    let path = dir.join("cluster.toml");
    std::fs::write(&path, &text).expect("write cluster.toml");
    ClusterConfig::load(&path).expect("valid cluster.toml")
}

/// Nodes a, b, c, … on these servers.
pub fn pg_config(dir: &Path, pgs: &[TempPg]) -> ClusterConfig {
    let nodes: Vec<(&str, String)> = ["a", "b", "c", "d", "e"]
        .into_iter()
        .zip(pgs)
        .map(|(name, pg)| (name, pg.dsn()))
        .collect();
    config(dir, &nodes)
}

/// The default audit in `mode`.
pub async fn audit_with(cfg: &ClusterConfig, mode: Mode) -> Report {
    let options = AuditOptions {
        mode,
        ..AuditOptions::default()
    };
    audit::run(cfg, &options).await
}

/// The (stream, node, kind) triples of a report, sorted, for exact comparison.
pub fn triples(report: &Report) -> Vec<(String, String, Kind)> {
    let mut out: Vec<_> = report
        .divergences
        .iter()
        .map(|d| (d.stream_id.clone(), d.node.clone(), d.kind))
        .collect();
    out.sort();
    out
}

/// The divergence of `stream` on `node`; panics with the whole list when there is none.
pub fn find<'a>(report: &'a Report, stream: &str, node: &str) -> &'a Divergence {
    report
        .divergences
        .iter()
        .find(|d| d.stream_id == stream && d.node == node)
        .unwrap_or_else(|| {
            panic!(
                "no divergence for {stream} on {node}: {:#?}",
                report.divergences
            )
        })
}
