//! All integration tests build into this one binary (one link, one run), as ripgrep does.
//!
//! - `deploy` — `deploy/alerts.yml` passes `promtool check rules` and its unit tests; the
//!   alerts and the Grafana dashboard use only exported metrics.
//! - `ids` — identifier vectors from `fixtures/ids/vectors.json` round-trip byte- and
//!   string-exactly; malformed identifiers give typed errors, never panics (property tests).
//! - `recon_props` — the N-way descent against a `BTreeMap` oracle on random stores (proptest,
//!   seeded; `CERAMIC_AUDIT_TEST_SEED` reproduces a run), plus the cost bound.
//! - `recon_errors` — failing stores and malformed answers give typed errors, never panics.
//! - `recon_snapshots` — small descents rendered round by round, compared with inline snapshots.
//! - `purity` — `src/recon` imports no I/O crate.
//! - `audit_cli` — `audit` and `crawl` from the command line on `fixtures/cluster-3`: reports,
//!   exit codes, `--fail-on`, `--out -`, config errors with their line.
//! - `audit_pg` — `audit` against real temporary PostgreSQL servers (and SQLite files,
//!   snapshots): every divergence kind, push-down = download.
//! - `audit_pg_faults` — malformed rows, a node's server killed mid-audit or down from the
//!   start: the audit goes on with the rest and says what it could not see.
//! - `logs` — log relations (behind, ahead, forked) and js-ceramic's fork winner, including the
//!   JavaScript string comparison of CID bytes.
//! - `pg_hash` — the push-down hash port equals Postgres' `hashtextextended` (recorded values
//!   and a live server on random text).
//! - `api` — the node HTTP API client against a real HTTP server on 127.0.0.1 answering (and
//!   failing) like js-ceramic 6.11: shapes, retries on transient errors only, errors naming node,
//!   endpoint and stream, pacing.
//! - `backup` — `backup`, `backup verify` and `restore` on real Postgres / SQLite indexes, real
//!   LevelDB state stores and a scripted IPFS API: every layer counted, a block the node lacks
//!   reported and never fetched, damaged backups (tip not in the CAR, index row without state,
//!   truncated CAR, checksum mismatch, no manifest) each a finding with exit 1, restore refusals,
//!   a live copy of a store being written.
//! - `backup_signals` — SIGTERM while pg_dump runs against a real Postgres (waiting on a lock):
//!   exit 130, the pg_dump child killed and reaped, no dump finished on the server.
//! - `ceramic_one` — ceramic-one event stores: the recorded 3-node fixture gives exactly its
//!   rows; fingerprints = SQL `SUM(ahash_i)` mod 2^32 = an independent Sha256a (proptest); EventIds
//!   rebuilt from the SDK's CARs = the stored order_keys; a live WAL store read without writing.
//! - `ceramic_one_repair` — a scripted ceramic-one HTTP node over copies of the fixture stores
//!   (model walk paging, init-first refusal, 404 states, faults naming node/model/offset); the
//!   event repair: the plan copies exactly the missing events, init first; applied, the
//!   re-audit keeps only `not_interested`; `--add-interest` registers both sides and converges.
//! - `ceramic_one_settle` — events reaching a store during the settle pause are `in_flight`, the
//!   other rows stand.
//! - `cli` — the binary's help, version, `inspect` output and exit codes.
//! - `log_format` — `CERAMIC_AUDIT_LOG_FORMAT=json` log lines on stdout; text logs on stderr
//!   without colour escapes; an unknown format exits 2.
//! - `repair` — plan and apply against scripted nodes with SQLite indexes: each strategy, the
//!   fall-through to the whole log, a rejection kept as unrepairable, the circuit breaker, the
//!   journal making a re-run a no-op. (Real nodes: `interop/repair-test.sh`.)
//! - `repair_concurrency` — `--concurrency` on scripted nodes: that many actions at once on a
//!   node and no more, never two on one stream, the circuit breaker with workers in flight, a
//!   stop letting the actions in flight finish. (Throughput on real nodes:
//!   `interop/repair-throughput.sh`.)
//! - `statement_rows` — `--statement-rows` on real Postgres nodes: audits in pieces of the
//!   heap find exactly what whole-table statements find (both modes, both comparisons); no
//!   statement sent reads a model table whole, and every piece holds about the rows asked.
//! - `tls` — Postgres `sslmode`/`sslrootcert` against a real server with `ssl = on` and a CA
//!   the test generates; `https://` api_urls against a TLS endpoint served here.
//! - `watch` — scheduling under paused time, incremental vs full cycles on real Postgres,
//!   ageing and healing, `/metrics` scraped and parsed, auto-repair selection.

mod common;

#[path = "suite/api.rs"]
mod api;
#[path = "suite/audit_cli.rs"]
mod audit_cli;
#[path = "suite/audit_pg.rs"]
mod audit_pg;
#[path = "suite/audit_pg_faults.rs"]
mod audit_pg_faults;

#[path = "suite/backup.rs"]
mod backup;
#[path = "suite/backup_ceramic_one.rs"]
mod backup_ceramic_one;
#[path = "suite/backup_signals.rs"]
mod backup_signals;
#[path = "suite/blame.rs"]
mod blame;
#[path = "suite/ceramic_one.rs"]
mod ceramic_one;
#[path = "suite/ceramic_one_repair.rs"]
mod ceramic_one_repair;
#[path = "suite/ceramic_one_settle.rs"]
mod ceramic_one_settle;
#[path = "suite/cli.rs"]
mod cli;
#[path = "suite/deploy.rs"]
mod deploy;
#[path = "suite/good_citizen.rs"]
mod good_citizen;
#[path = "suite/honest.rs"]
mod honest;
#[path = "suite/ids.rs"]
mod ids;
#[path = "suite/jsonb_text.rs"]
mod jsonb_text;
#[path = "suite/log_format.rs"]
mod log_format;
#[path = "suite/logs.rs"]
mod logs;
#[path = "suite/pg_hash.rs"]
mod pg_hash;
#[path = "suite/pg_rounds.rs"]
mod pg_rounds;
#[path = "suite/progress.rs"]
mod progress;
#[path = "suite/purity.rs"]
mod purity;
#[path = "suite/recon_errors.rs"]
mod recon_errors;
#[path = "suite/recon_props.rs"]
mod recon_props;
#[path = "suite/recon_snapshots.rs"]
mod recon_snapshots;
#[path = "suite/repair.rs"]
mod repair;
#[path = "suite/repair_concurrency.rs"]
mod repair_concurrency;
#[path = "suite/statement_rows.rs"]
mod statement_rows;
#[path = "suite/tls.rs"]
mod tls;
#[path = "suite/watch.rs"]
mod watch;
