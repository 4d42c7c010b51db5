//! The cluster file (`cluster.toml`): which nodes exist and where each one's index is.
//!
//! Topology lives here; behaviour comes from flags. Secrets never live here: a Postgres password
//! comes from `password_env`, `password_file` or the standard `PGPASSWORD`, and a DSN that
//! carries one is refused, so a config file can be committed and printed safely. Every mistake is
//! reported with the key and the line it is on.
//!
//! ```toml
//! cluster = "prod"
//! models = ["kjzl6hvfrbw6c…"]          # optional; default: every indexed model on any node
//!
//! [[nodes]]
//! name = "a"
//! api_url = "http://127.0.0.1:7007"      # optional: lets the audit read logs of differing streams
//! index = "postgres://ceramic@127.0.0.1:5432/ceramic"
//! password_env = "NODE_A_PGPASSWORD"     # or password_file = "/run/secrets/a"
//! admin_key_file = "/run/secrets/admin"  # optional (or admin_key_env): an admin DID's seed
//!                                        # (64 hex digits) to read the node's pin list
//! state_store = "/var/lib/ceramic/statestore"  # optional, for `backup`/`restore`: the node's
//!                                        # state-store.local-directory (its `<network>*` dirs)
//! ipfs_api = "http://127.0.0.1:5001"     # optional, for `backup`/`restore`: the node's IPFS RPC API
//! ceramic_one_store = "/var/lib/ceramic-one"  # optional: a ceramic-one --store-dir to back up
//! ceramic_one_api = "http://127.0.0.1:5101"   # optional: the node's ceramic-one HTTP API (audit
//!                                        # without the store; repair by copying events)
//!
//! [[nodes]]
//! name = "b"
//! index = "sqlite:///var/lib/ceramic/indexing.sqlite"   # or "snapshot:b.json"
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;
use toml::Spanned;

/// Where a node's ComposeDB index is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndexLocation {
    /// `postgres://user@host:port/db` (no password in it).
    Postgres { dsn: String },
    /// `sqlite:///absolute/path` or `sqlite://relative/path` (relative to the config file).
    Sqlite { path: PathBuf },
    /// `snapshot:path`: a file written by `ceramic-audit crawl` (relative to the config file).
    Snapshot { path: PathBuf },
    /// No `index` key: a ceramic-one node alone (only allowed with `ceramic_one_store`).
    None,
}

/// Where a Postgres password comes from (never the config file itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PasswordSource {
    Env(String),
    File(PathBuf),
    /// `PGPASSWORD` if set, else none (trust / peer / certificate auth).
    Standard,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    pub name: String,
    pub api_url: Option<String>,
    /// `api_ca_file`: the CA certificates (PEM) an `https://` api_url is checked against
    /// (default: the system's store).
    pub api_ca_file: Option<PathBuf>,
    pub index: IndexLocation,
    pub password: PasswordSource,
    /// Where the seed of an admin DID of this node comes from (`admin_key_env` /
    /// `admin_key_file`); it lets the audit read the node's pin list (`index_missing`).
    pub admin_key: Option<PasswordSource>,
    /// The node's LevelDB state-store directory (`state-store.local-directory`), holding one
    /// `<network>*` directory per use case; needed by `backup` and `restore`.
    pub state_store: Option<PathBuf>,
    /// The node's IPFS RPC API (`http://host:5001`): where `backup` reads blocks and `restore`
    /// imports them.
    pub ipfs_api: Option<String>,
    /// A ceramic-one `--store-dir` (`db.sqlite3`, `pipeline/`) that `backup` copies too.
    pub ceramic_one_store: Option<PathBuf>,
    /// The node's ceramic-one HTTP API root (`http://host:5101`, `/ceramic` is added): read
    /// when there is no `ceramic_one_store`, written to by the event repair.
    pub ceramic_one_api: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    pub cluster: String,
    /// Models to audit; `None`: every model indexed on any node.
    pub models: Option<Vec<String>>,
    pub nodes: Vec<NodeConfig>,
    /// The file it was read from (for messages).
    pub path: PathBuf,
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}:{line}: `{key}`: {message}")]
    Invalid {
        path: String,
        line: usize,
        key: String,
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    cluster: Spanned<String>,
    #[serde(default)]
    models: Option<Vec<Spanned<String>>>,
    nodes: Spanned<Vec<RawNode>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: Spanned<String>,
    #[serde(default)]
    api_url: Option<Spanned<String>>,
    #[serde(default)]
    api_ca_file: Option<Spanned<String>>,
    #[serde(default)]
    index: Option<Spanned<String>>,
    #[serde(default)]
    password_env: Option<Spanned<String>>,
    #[serde(default)]
    password_file: Option<Spanned<String>>,
    #[serde(default)]
    admin_key_env: Option<Spanned<String>>,
    #[serde(default)]
    admin_key_file: Option<Spanned<String>>,
    #[serde(default)]
    state_store: Option<Spanned<String>>,
    #[serde(default)]
    ipfs_api: Option<Spanned<String>>,
    #[serde(default)]
    ceramic_one_store: Option<Spanned<String>>,
    #[serde(default)]
    ceramic_one_api: Option<Spanned<String>>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Removes any password from a DSN before it is printed: `postgres://u:secret@h/db` →
/// `postgres://u:***@h/db`. Non-URL text is returned unchanged.
pub fn redact_dsn(dsn: &str) -> String {
    let Some((scheme, rest)) = dsn.split_once("://") else {
        return dsn.to_string();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => dsn.to_string(),
        },
        None => dsn.to_string(),
    }
}

fn dsn_has_password(dsn: &str) -> bool {
    redact_dsn(dsn) != dsn || dsn.contains("password=")
}

impl ClusterConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses config text; relative file paths resolve against `path`'s directory.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let raw: RawConfig = toml::from_str(text).map_err(|e| toml_error(&e, text, &shown))?;
        let invalid =
            |span: std::ops::Range<usize>, key: &str, message: String| ConfigError::Invalid {
                path: shown.clone(),
                line: line_of(text, span.start),
                key: key.to_string(),
                message,
            };
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &str| {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        if raw.cluster.get_ref().trim().is_empty() {
            return Err(invalid(
                raw.cluster.span(),
                "cluster",
                "must not be empty".into(),
            ));
        }
        let models = match raw.models {
            None => None,
            Some(models) => Some(canonical_models(&models, &invalid)?),
        };
        let nodes_span = raw.nodes.span();
        let raw_nodes = raw.nodes.into_inner();
        if raw_nodes.len() < 2 {
            return Err(invalid(
                nodes_span,
                "nodes",
                format!(
                    "an audit compares at least 2 nodes, found {} (add [[nodes]] tables)",
                    raw_nodes.len()
                ),
            ));
        }
        if raw_nodes.len() > crate::recon::MAX_STORES {
            return Err(invalid(
                nodes_span,
                "nodes",
                format!("at most {} nodes per audit", crate::recon::MAX_STORES),
            ));
        }
        let mut nodes: Vec<NodeConfig> = Vec::with_capacity(raw_nodes.len());
        for node in raw_nodes {
            let parsed = node_config(node, &nodes, &invalid, &resolve)?;
            nodes.push(parsed);
        }
        Ok(Self {
            cluster: raw.cluster.into_inner(),
            models,
            nodes,
            path: path.to_path_buf(),
        })
    }
}

/// The span of a config error, its key and its message, as `ConfigError::Invalid`.
type Invalid<'a> = dyn Fn(std::ops::Range<usize>, &str, String) -> ConfigError + 'a;

/// A TOML syntax error as `file:line: message`, as every other config error, with toml's caret
/// diagram kept below it (its first line, "TOML parse error at line L, column C", dropped).
fn toml_error(e: &toml::de::Error, text: &str, shown: &str) -> ConfigError {
    let full = e.to_string();
    let diagram: Vec<&str> = full.lines().skip(1).collect();
    let first = e.message().lines().next().unwrap_or("").to_string();
    ConfigError::Parse {
        // The line toml's diagram shows (its span may start at the next line's break).
        path: match full
            .lines()
            .next()
            .and_then(|h| h.split("at line ").nth(1))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.trim().parse::<usize>().ok())
            .or_else(|| e.span().map(|span| line_of(text, span.start)))
        {
            Some(line) => format!("{shown}:{line}"),
            None => shown.to_string(),
        },
        message: format!("{first}\n{}", diagram.join("\n").trim_end()),
    }
}

/// `models = [...]`: each entry a bare model StreamID, canonicalised, listed once.
fn canonical_models(
    models: &[Spanned<String>],
    invalid: &Invalid,
) -> Result<Vec<String>, ConfigError> {
    let mut canonical: Vec<String> = Vec::with_capacity(models.len());
    for m in models {
        let text = m.get_ref().trim();
        let bad = |message: String| invalid(m.span(), "models", message);
        // Only the bare id: a URL form is a sign of a copy from somewhere else and
        // its meaning (a commit?) is not what a model list means.
        if text.contains("://") || text.contains('/') || text.contains('?') {
            return Err(bad(format!(
                "{text:?}: give the bare model StreamID (`kjzl6hvfrbw6c…`), not a URL"
            )));
        }
        let id = crate::ids::StreamId::parse(text)
            .map_err(|e| bad(format!("{text:?} is not a model StreamID: {e}")))?;
        if id.stream_type != crate::ids::StreamType::Model {
            return Err(bad(format!(
                "{text:?} is the StreamID of a {} (type {}), not of a model",
                id.stream_type.name(),
                id.stream_type.code()
            )));
        }
        let id = id.to_string();
        if canonical.contains(&id) {
            return Err(bad(format!("{id} is listed twice")));
        }
        canonical.push(id);
    }
    Ok(canonical)
}

/// One `[[nodes]]` table, checked against the nodes already read (`taken`).
fn node_config(
    node: RawNode,
    taken: &[NodeConfig],
    invalid: &Invalid,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Result<NodeConfig, ConfigError> {
    let name = node.name.get_ref().trim().to_string();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(invalid(
            node.name.span(),
            "nodes.name",
            format!("{name:?}: use letters, digits, '-', '_' or '.'"),
        ));
    }
    if taken.iter().any(|n| n.name == name) {
        return Err(invalid(
            node.name.span(),
            "nodes.name",
            format!("{name:?} appears twice"),
        ));
    }
    let index = match node.index.as_ref() {
        Some(i) => index_location(&name, i.get_ref().trim(), &resolve)
            .map_err(|message| invalid(i.span(), "nodes.index", message))?,
        // A ceramic-one node alone has no ComposeDB index.
        None if node.ceramic_one_store.is_some() || node.ceramic_one_api.is_some() => {
            IndexLocation::None
        }
        None => {
            return Err(invalid(
                node.name.span(),
                "nodes.index",
                format!(
                    "node {name}: needs `index` (a ComposeDB index), `ceramic_one_store` or \
                     `ceramic_one_api` (a ceramic-one node), or both"
                ),
            ))
        }
    };
    // Checked now: an unset variable is a mistake in the setup, not a node that is down.
    if let Some(env) = &node.password_env {
        if std::env::var_os(env.get_ref()).is_none() {
            return Err(invalid(
                env.span(),
                "nodes.password_env",
                format!("node {name}: the variable {} is not set", env.get_ref()),
            ));
        }
    }
    let password = secret_source(node.password_env, node.password_file, &resolve)
        .map_err(|span| {
            invalid(
                span,
                "nodes.password_env",
                format!("node {name}: give password_env or password_file, not both"),
            )
        })?
        .unwrap_or(PasswordSource::Standard);
    let admin_key =
        secret_source(node.admin_key_env, node.admin_key_file, &resolve).map_err(|span| {
            invalid(
                span,
                "nodes.admin_key_env",
                format!("node {name}: give admin_key_env or admin_key_file, not both"),
            )
        })?;
    for (key, url) in [
        ("nodes.api_url", &node.api_url),
        ("nodes.ipfs_api", &node.ipfs_api),
        ("nodes.ceramic_one_api", &node.ceramic_one_api),
    ] {
        if let Some(url) = url {
            let u = url.get_ref();
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(invalid(
                    url.span(),
                    key,
                    format!(
                        "node {name}: expected http://host:port or https://…, got {:?}",
                        redact_dsn(u)
                    ),
                ));
            }
        }
    }
    let api_ca_file = match node.api_ca_file {
        None => None,
        Some(f) => {
            let path = resolve(f.get_ref());
            if let Err(e) = crate::tls::root_store(Some(&path)) {
                return Err(invalid(
                    f.span(),
                    "nodes.api_ca_file",
                    format!("node {name}: {e}"),
                ));
            }
            Some(path)
        }
    };
    Ok(NodeConfig {
        name,
        api_url: node.api_url.map(Spanned::into_inner),
        api_ca_file,
        index,
        password,
        admin_key,
        state_store: node.state_store.map(|p| resolve(p.get_ref())),
        ipfs_api: node
            .ipfs_api
            .map(|u| u.into_inner().trim_end_matches('/').to_string()),
        ceramic_one_store: node.ceramic_one_store.map(|p| resolve(p.get_ref())),
        ceramic_one_api: node
            .ceramic_one_api
            .map(|u| u.into_inner().trim_end_matches('/').to_string()),
    })
}

/// A secret named by an environment variable or a file, not both (`Err`: the variable's span).
fn secret_source(
    env: Option<Spanned<String>>,
    file: Option<Spanned<String>>,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Result<Option<PasswordSource>, std::ops::Range<usize>> {
    match (env, file) {
        (Some(env), None) => Ok(Some(PasswordSource::Env(env.into_inner()))),
        (None, Some(file)) => Ok(Some(PasswordSource::File(resolve(file.get_ref())))),
        (None, None) => Ok(None),
        (Some(env), Some(_)) => Err(env.span()),
    }
}

/// Where a node's index is, from its `index` value (`name` for messages); checks a Postgres
/// DSN carries no password, parses and has a readable `sslrootcert`.
fn index_location(
    name: &str,
    index_text: &str,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Result<IndexLocation, String> {
    if index_text.starts_with("postgres://") || index_text.starts_with("postgresql://") {
        if dsn_has_password(index_text) {
            return Err(format!(
                "node {name}: the DSN {} carries a password; put it in password_env, \
                     password_file or PGPASSWORD instead",
                redact_dsn(index_text)
            ));
        }
        let plain = match crate::tls::split_pg_dsn(index_text) {
            Ok((plain, tls)) => {
                if let Some(ca) = &tls.root_cert {
                    if let Err(e) = crate::tls::root_store(Some(ca)) {
                        return Err(format!("node {name}: sslrootcert: {e}"));
                    }
                }
                plain
            }
            Err(e) => return Err(format!("node {name}: {e}")),
        };
        if let Err(e) = plain.parse::<tokio_postgres::Config>() {
            return Err(format!("node {name}: not a valid Postgres URL: {e}"));
        }
        Ok(IndexLocation::Postgres {
            dsn: index_text.to_string(),
        })
    } else if let Some(p) = index_text.strip_prefix("sqlite://") {
        Ok(IndexLocation::Sqlite { path: resolve(p) })
    } else if let Some(p) = index_text.strip_prefix("snapshot:") {
        Ok(IndexLocation::Snapshot { path: resolve(p) })
    } else {
        Err(format!(
            "node {name}: expected postgres://…, sqlite://… or snapshot:…, got {:?}",
            redact_dsn(index_text)
        ))
    }
}

impl PasswordSource {
    /// Reads the password now (so a missing variable or file is reported before any work).
    pub fn read(&self, node: &str) -> Result<Option<String>, String> {
        self.read_as(node, "password")
    }

    /// Reads the secret; `what` names the keys in messages (`password` → `password_env`).
    pub fn read_as(&self, node: &str, what: &str) -> Result<Option<String>, String> {
        match self {
            Self::Env(var) => std::env::var(var)
                .map(Some)
                .map_err(|_| format!("node {node}: {what}_env {var} is not set")),
            Self::File(path) => std::fs::read_to_string(path)
                .map(|s| Some(s.trim_end_matches(['\n', '\r']).to_string()))
                .map_err(|e| {
                    format!(
                        "node {node}: cannot read {what}_file {}: {e}",
                        path.display()
                    )
                }),
            Self::Standard => Ok(std::env::var("PGPASSWORD").ok()),
        }
    }
}
