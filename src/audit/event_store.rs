//! The ceramic-one part of an audit: every node with a `ceramic_one_store` has its event store
//! compared with the others' ([`crate::source::ceramic_one`]); the rows, models and node lines
//! join the report of the index audit (or make the whole report when no node has an index).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::config::ClusterConfig;
use crate::recon::DescentParams;
use crate::report::{Divergence, Kind, NodeReport, Report};
use crate::source::ceramic_one::{compare, EventStore, Findings, StoreNode};

/// `db.sqlite3` inside a `--store-dir`; a path to the file itself is taken as is.
fn db_path(store: &Path) -> PathBuf {
    if store.is_dir() {
        store.join("db.sqlite3")
    } else {
        store.to_path_buf()
    }
}

/// What the event-store comparison adds to a report.
pub struct EventStoreAudit {
    pub nodes: Vec<NodeReport>,
    pub findings: Findings,
    pub complete: bool,
}

/// Opens every configured store (read-only) and compares them; never fails as a whole: a store
/// that cannot be read is an `unreachable` row and makes the audit incomplete.
pub fn run(config: &ClusterConfig, params: &DescentParams) -> EventStoreAudit {
    let mut reports = Vec::new();
    let mut opened = Vec::new();
    let mut complete = true;
    let mut unreachable = Vec::new();
    for node in &config.nodes {
        let Some(store) = &node.ceramic_one_store else {
            continue;
        };
        let started = Instant::now();
        let path = db_path(store);
        let result = EventStore::open(&path).and_then(|s| {
            let rows = s.events(&[], &[0xff; 80])?.len() as u64;
            Ok((s, rows))
        });
        let (error, rows) = match result {
            Ok((store, rows)) => {
                opened.push(StoreNode {
                    name: node.name.clone(),
                    store,
                });
                (None, rows)
            }
            Err(e) => {
                complete = false;
                unreachable.push(Divergence::node_level(
                    "",
                    &node.name,
                    Kind::Unreachable,
                    format!("ceramic-one event store: {e}"),
                ));
                (Some(e.to_string()), 0)
            }
        };
        reports.push(NodeReport {
            name: node.name.clone(),
            source: "ceramic-one".into(),
            mode: "read-only".into(),
            reachable: error.is_none(),
            error,
            rows,
            bytes_received: 0,
            statements: 0,
            millis: started.elapsed().as_millis() as u64,
            tls: None,
            api_error: None,
        });
    }
    let mut findings = Findings::default();
    if opened.len() >= 2 {
        match compare(&opened, params) {
            Ok(f) => findings = f,
            Err(e) => {
                complete = false;
                let node = match &e {
                    crate::source::ceramic_one::CompareError::Store { node, .. } => node.clone(),
                    _ => String::new(),
                };
                findings.divergences.push(Divergence::node_level(
                    "",
                    &node,
                    Kind::Unreachable,
                    format!("ceramic-one comparison stopped: {e}"),
                ));
            }
        }
    } else if !reports.is_empty() {
        // One readable store has nothing to be compared with.
        complete = false;
    }
    findings.divergences.extend(unreachable);
    EventStoreAudit {
        nodes: reports,
        findings,
        complete,
    }
}

/// Adds the event-store audit to `report` (counts and order as the index audit keeps them).
pub fn merge(report: &mut Report, audit: EventStoreAudit) {
    report.nodes.extend(audit.nodes);
    report.models.extend(audit.findings.models);
    report.divergences.extend(audit.findings.divergences);
    report.complete &= audit.complete;
    report.divergences.sort_by(|a, b| {
        (&a.model, &a.stream_id, &a.node, a.kind).cmp(&(&b.model, &b.stream_id, &b.node, b.kind))
    });
    let mut counts = BTreeMap::new();
    for d in &report.divergences {
        *counts.entry(d.kind).or_default() += 1;
    }
    report.counts = counts;
}
