//! The ceramic-one part of an audit: every node with a `ceramic_one_store` has its event store
//! compared with the others' ([`crate::source::ceramic_one`]); a node with only a
//! `ceramic_one_api` is read over HTTP into a private store first
//! ([`crate::source::ceramic_one::mirror`]). The rows, models and node lines join the report of
//! the index audit (or make the whole report when no node has an index).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::info;

use crate::api::{ApiOptions, NodeApi};
use crate::config::ClusterConfig;
use crate::recon::DescentParams;
use crate::report::{Divergence, Kind, NodeReport, Report};
use crate::source::ceramic_one::compare::store_models;
use crate::source::ceramic_one::mirror::{meta_walk, mirror, models_defined};
use crate::source::ceramic_one::{compare, EventStore, Findings, StoreNode, META_MODEL};

use super::event_settle::{self, Reopen};
use super::state_sample;

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
    /// Per node with a `ceramic_one_api`: the streams whose state it is asked for
    /// ([`super::state_sample`]).
    pub samples: Vec<(String, Vec<state_sample::Candidate>)>,
}

/// The stores opened so far, their node lines and what could not be read.
#[derive(Default)]
struct Opened {
    reports: Vec<NodeReport>,
    stores: Vec<StoreNode>,
    unreachable: Vec<Divergence>,
    complete: bool,
}

impl Opened {
    fn failed(&mut self, node: &str, source: &str, what: String, started: Instant) {
        self.complete = false;
        self.unreachable.push(Divergence::node_level(
            "",
            node,
            Kind::Unreachable,
            what.clone(),
        ));
        self.reports
            .push(node_report(node, source, Some(what), 0, 0, 0, started));
    }
}

fn node_report(
    name: &str,
    source: &str,
    error: Option<String>,
    rows: u64,
    bytes: u64,
    requests: u64,
    started: Instant,
) -> NodeReport {
    let http = source.ends_with("http");
    NodeReport {
        name: name.to_string(),
        source: source.into(),
        mode: if http { "http" } else { "read-only" }.into(),
        reachable: error.is_none(),
        error,
        rows,
        bytes_received: bytes,
        statements: requests,
        millis: started.elapsed().as_millis() as u64,
        tls: None,
        api_error: None,
    }
}

/// Opens every configured store, read-only.
fn open_stores(config: &ClusterConfig) -> Opened {
    let mut opened = Opened {
        complete: true,
        ..Opened::default()
    };
    for node in &config.nodes {
        let Some(store) = &node.ceramic_one_store else {
            continue;
        };
        let started = Instant::now();
        let result = EventStore::open(&db_path(store)).and_then(|s| {
            let rows = s.events(&[], &[0xff; 80])?.len() as u64;
            Ok((s, rows))
        });
        match result {
            Ok((store, rows)) => {
                opened.stores.push(StoreNode {
                    name: node.name.clone(),
                    store,
                });
                opened.reports.push(node_report(
                    &node.name,
                    "ceramic-one",
                    None,
                    rows,
                    0,
                    0,
                    started,
                ));
            }
            Err(e) => opened.failed(
                &node.name,
                "ceramic-one",
                format!("ceramic-one event store: {e}"),
                started,
            ),
        }
    }
    opened
}

/// Compares the opened stores; never fails as a whole. `sampled`: the nodes whose states are
/// to be sampled afterwards.
fn finish(
    mut opened: Opened,
    params: &DescentParams,
    sampled: &BTreeSet<String>,
) -> EventStoreAudit {
    let samples = opened
        .stores
        .iter()
        .filter(|n| sampled.contains(&n.name))
        .map(|n| (n.name.clone(), state_sample::candidates(n)))
        .collect();
    let mut findings = Findings::default();
    if opened.stores.len() >= 2 {
        match compare(&opened.stores, params) {
            Ok(f) => findings = f,
            Err(e) => {
                opened.complete = false;
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
    } else if !opened.reports.is_empty() {
        // One readable store has nothing to be compared with.
        opened.complete = false;
    }
    findings.divergences.extend(opened.unreachable);
    EventStoreAudit {
        nodes: opened.reports,
        findings,
        complete: opened.complete,
        samples,
    }
}

/// Opens every configured store (read-only) and compares them; never fails as a whole: a store
/// that cannot be read is an `unreachable` row and makes the audit incomplete. Nodes with only
/// a `ceramic_one_api` are not read (see [`run_all`]).
pub fn run(config: &ClusterConfig, params: &DescentParams) -> EventStoreAudit {
    finish(open_stores(config), params, &BTreeSet::new())
}

/// [`run`], with every node that has a `ceramic_one_api` and no store read over HTTP first, and
/// the settle re-check ([`event_settle`]): after `settle`, rows the stores no longer show are
/// `in_flight`.
pub async fn run_all(
    config: &ClusterConfig,
    params: &DescentParams,
    settle: Duration,
) -> EventStoreAudit {
    let http: Vec<_> = config
        .nodes
        .iter()
        .filter(|n| n.ceramic_one_store.is_none())
        .filter_map(|n| Some((n, n.ceramic_one_api.as_ref()?)))
        .collect();
    let stores_config = config.clone();
    let Ok(mut opened) = tokio::task::spawn_blocking(move || open_stores(&stores_config)).await
    else {
        return finish(Opened::default(), params, &BTreeSet::new());
    };
    // Kept until the comparison is done: the mirrors of HTTP nodes live in it.
    let scratch = tempfile::tempdir();
    if !http.is_empty() {
        match &scratch {
            Ok(dir) => mirror_all(config, &http, dir.path(), &mut opened).await,
            Err(e) => {
                for (node, _) in &http {
                    opened.failed(
                        &node.name,
                        "ceramic-one-http",
                        format!("no scratch directory for the HTTP mirror: {e}"),
                        Instant::now(),
                    );
                }
            }
        }
    }
    let params = params.clone();
    let sampled: BTreeSet<String> = config
        .nodes
        .iter()
        .filter(|n| n.ceramic_one_api.is_some())
        .map(|n| n.name.clone())
        .collect();
    let reopen = reopen_list(config, &opened);
    let first_params = params.clone();
    let mut audit =
        tokio::task::spawn_blocking(move || finish(opened, &first_params, &sampled)).await;
    if let Ok(first) = &mut audit {
        if !settle.is_zero() && event_settle::needed(&reopen, &first.findings.divergences) {
            info!(
                seconds = settle.as_secs_f64(),
                "Settling before comparing the ceramic-one stores again."
            );
            tokio::time::sleep(settle).await;
            let mut rows = std::mem::take(&mut first.findings.divergences);
            let seconds = settle.as_secs_f64();
            let rechecked = tokio::task::spawn_blocking(move || {
                event_settle::recheck(&reopen, &params, seconds, &mut rows);
                rows
            })
            .await;
            match rechecked {
                Ok(rows) => first.findings.divergences = rows,
                Err(e) => {
                    // The rows went with the failed task: say the comparison is incomplete
                    // rather than report fewer divergences than were seen.
                    first.complete = false;
                    first.findings.divergences.push(Divergence::node_level(
                        "",
                        "",
                        Kind::Unreachable,
                        format!("the ceramic-one settle re-check failed: {e}"),
                    ));
                }
            }
        }
    }
    // The mirrors of HTTP nodes live in `scratch` until both looks are done.
    drop(scratch);
    let mut audit = audit.unwrap_or_else(|e| EventStoreAudit {
        nodes: Vec::new(),
        findings: Findings {
            models: Vec::new(),
            divergences: vec![Divergence::node_level(
                "",
                "",
                Kind::Unreachable,
                format!("the ceramic-one comparison failed: {e}"),
            )],
        },
        complete: false,
        samples: Vec::new(),
    });
    let (rows, complete) = state_sample::check(config, std::mem::take(&mut audit.samples)).await;
    audit.findings.divergences.extend(rows);
    audit.complete &= complete;
    audit
}

/// The compared stores, to be opened again by the settle re-check: a node's own store is live
/// when its file was written lately; an HTTP node's private mirror never changes.
fn reopen_list(config: &ClusterConfig, opened: &Opened) -> Vec<Reopen> {
    opened
        .stores
        .iter()
        .map(|n| {
            let own = config
                .nodes
                .iter()
                .any(|c| c.name == n.name && c.ceramic_one_store.is_some());
            let path = n.store.path().to_path_buf();
            Reopen {
                name: n.name.clone(),
                live: own && crate::source::recently_written(&path),
                path,
            }
        })
        .collect()
}

/// Reads every HTTP-only node into a private store under `dir` and opens it beside the others.
async fn mirror_all(
    config: &ClusterConfig,
    http: &[(&crate::config::NodeConfig, &String)],
    dir: &Path,
    opened: &mut Opened,
) {
    let mut models: BTreeSet<String> = config
        .models
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    models.extend(store_models(&opened.stores).unwrap_or_default());
    models.insert(META_MODEL.to_string());
    let mut metas = Vec::new();
    for (node, url) in http {
        let started = Instant::now();
        let api = NodeApi::with_ca(
            &node.name,
            url,
            node.api_ca_file.as_deref(),
            ApiOptions::default(),
        );
        let walked = match api {
            Ok(api) => match meta_walk(&api).await {
                Ok(meta) => Ok((api, meta)),
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        };
        if let Ok((_, meta)) = &walked {
            models.extend(models_defined(meta));
        }
        metas.push((node, walked, started));
    }
    for (node, walked, started) in metas {
        let source = "ceramic-one-http";
        let (api, meta) = match walked {
            Ok(w) => w,
            Err(e) => {
                opened.failed(&node.name, source, format!("ceramic-one API: {e}"), started);
                continue;
            }
        };
        let path = dir.join(format!("mirror-{}.sqlite3", opened.reports.len()));
        let read = match mirror(&api, meta, &models, &path).await {
            Ok(m) => EventStore::open(&path)
                .map(|store| (store, m))
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match read {
            Ok((store, m)) => {
                for prefix in &m.unlisted_interests {
                    opened.complete = false;
                    opened.unreachable.push(Divergence::node_level(
                        &format!("eventid-prefix:{prefix}"),
                        &node.name,
                        Kind::Unreachable,
                        format!(
                            "an interest of {} names a model no node holds the definition of \
                             and the config does not list: over HTTP its events cannot be \
                             listed (add the model to `models`, or give the node's \
                             ceramic_one_store)",
                            node.name
                        ),
                    ));
                }
                opened.reports.push(node_report(
                    &node.name, source, None, m.events, m.bytes, m.requests, started,
                ));
                opened.stores.push(StoreNode {
                    name: node.name.clone(),
                    store,
                });
            }
            Err(e) => opened.failed(&node.name, source, format!("ceramic-one API: {e}"), started),
        }
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
