//! The few IPFS RPC calls a backup and a restore make (js-ipfs 0.18 `ipfs-http-server` and Kubo
//! answer them alike): `version`, `refs/local`, `block/get`, `dag/import`.
//!
//! js-ipfs ignores `offline=true` and fetches an absent block from the network, hanging until
//! the timeout (measured, real-ceramic.md), so a backup asks only for blocks `refs/local` lists.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use cid::Cid;

/// Bytes of CAR per `dag/import` request: what a restore holds in memory at once, whatever
/// the archive's size. Too small only costs requests (each one a few ms); too large holds that
/// much in memory here and inside the node while it parses the upload.
pub const IMPORT_PIECE_BYTES: usize = 64 << 20;

pub struct Ipfs {
    node: String,
    base: String,
    http: reqwest::Client,
}

impl Ipfs {
    /// One client keeping at most `connections` idle connections: as many as requests in
    /// flight (`--block-requests` for a backup, 1 for a restore), so none is reopened.
    pub fn new(
        node: &str,
        base: &str,
        timeout: Duration,
        connections: usize,
    ) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .pool_max_idle_per_host(connections.max(1))
            .build()
            .map_err(|e| format!("node {node}: cannot build the IPFS client: {e}"))?;
        Ok(Self {
            node: node.to_string(),
            base: base.trim_end_matches('/').to_string(),
            http,
        })
    }

    async fn post(&self, call: &str) -> Result<reqwest::Response, String> {
        let url = format!("{}/api/v0/{call}", self.base);
        let resp = self
            .http
            .post(&url)
            .send()
            .await
            .map_err(|e| format!("node {}: IPFS {url}: {e}", self.node))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            return Err(format!(
                "node {}: IPFS {url}: HTTP {status}: {}",
                self.node,
                body.chars().take(300).collect::<String>()
            ));
        }
        Ok(resp)
    }

    /// `agentVersion`-like text for the manifest (`js-ipfs/0.18.1`, `kubo/0.26.0`).
    pub async fn version(&self) -> Result<String, String> {
        let v: serde_json::Value = self
            .post("version")
            .await?
            .json()
            .await
            .map_err(|e| format!("node {}: IPFS version: {e}", self.node))?;
        Ok(v.get("Version")
            .and_then(|s| s.as_str())
            .unwrap_or("unknown")
            .to_string())
    }

    /// The multihashes of every block the node holds (IPFS keys its blockstore by multihash;
    /// `refs/local` prints each as a raw-codec CID).
    pub async fn local_multihashes(&self) -> Result<HashSet<Vec<u8>>, String> {
        let text = self
            .post("refs/local")
            .await?
            .text()
            .await
            .map_err(|e| format!("node {}: IPFS refs/local: {e}", self.node))?;
        let mut out = HashSet::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| format!("node {}: IPFS refs/local line {line:?}: {e}", self.node))?;
            if let Some(err) = v
                .get("Err")
                .and_then(|e| e.as_str())
                .filter(|e| !e.is_empty())
            {
                return Err(format!("node {}: IPFS refs/local: {err}", self.node));
            }
            let r = v.get("Ref").and_then(|r| r.as_str()).unwrap_or_default();
            let cid = crate::ids::parse_cid(r)
                .map_err(|e| format!("node {}: IPFS refs/local gave {r:?}: {e}", self.node))?;
            out.insert(cid.hash().to_bytes());
        }
        Ok(out)
    }

    pub async fn block_get(&self, cid: &Cid) -> Result<Vec<u8>, String> {
        let resp = self.post(&format!("block/get?arg={cid}")).await?;
        resp.bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| format!("node {}: IPFS block/get {cid}: {e}", self.node))
    }

    /// Imports a CAR file's blocks, in pieces of [`IMPORT_PIECE_BYTES`] (roots not pinned:
    /// pinning walks the DAG and would fetch anchor-tree blocks of other streams from the
    /// network). Returns the pieces sent.
    pub async fn dag_import(&self, car: &Path) -> Result<u64, String> {
        let mut pieces = super::car::CarPieces::open(car, IMPORT_PIECE_BYTES)?;
        let mut sent = 0;
        while let Some(piece) = pieces.next_piece()? {
            self.dag_import_piece(piece).await?;
            sent += 1;
        }
        Ok(sent)
    }

    async fn dag_import_piece(&self, bytes: Vec<u8>) -> Result<(), String> {
        // js-ipfs refuses a part without a content type ("No content-type in multipart part").
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name("blocks.car")
            .mime_str("application/vnd.ipld.car")
            .map_err(|e| format!("node {}: IPFS dag/import: {e}", self.node))?;
        let form = reqwest::multipart::Form::new().part("file", part);
        let url = format!("{}/api/v0/dag/import?pin-roots=false", self.base);
        let resp = self
            .http
            .post(&url)
            .multipart(form)
            .send()
            .await
            .map_err(|e| format!("node {}: IPFS {url}: {e}", self.node))?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        // js-ipfs streams its answer: a failure can arrive as a 200 with an error object.
        if !status.is_success()
            || body.contains("\"Type\":\"error\"")
            || body.contains("Failed to import")
        {
            return Err(format!(
                "node {}: IPFS dag/import: HTTP {status}: {}",
                self.node,
                body.chars().take(300).collect::<String>()
            ));
        }
        Ok(())
    }
}
