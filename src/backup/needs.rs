//! Which blocks a stream's log needs, beyond the log's own commits: a signed commit (dag-jose)
//! needs its payload block and the CACAO capability named in its protected header (`cap:
//! "ipfs://<cid>"`, a string, so no generic DAG walk would find it); an anchor commit needs its
//! proof block and every Merkle-tree node on its `path` from the proof's root. A generic DAG
//! export would instead follow the anchor tree into other streams' commits and the transaction
//! CID, which the node does not hold — so the walk is spelled out here, one step per block.

use cid::Cid;
use ipld_core::ipld::Ipld;
use serde::Serialize;

const DAG_JOSE: u64 = 0x85;
const DAG_CBOR: u64 = 0x71;

/// Why a block is needed (reported with every missing block).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A commit of the stream's log (genesis, signed data, anchor).
    Commit,
    /// The dag-cbor payload a signed commit links to.
    Payload,
    /// A CACAO capability a signed commit's header names.
    Capability,
    /// An anchor commit's proof block.
    AnchorProof,
    /// A Merkle-tree node between an anchor proof's root and the anchored commit.
    AnchorPath,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Commit => "commit",
            Role::Payload => "payload",
            Role::Capability => "capability",
            Role::AnchorProof => "anchor_proof",
            Role::AnchorPath => "anchor_path",
        }
    }
}

/// A block still to visit, with what to do once its bytes are known.
#[derive(Clone, Debug)]
pub struct Need {
    pub cid: Cid,
    pub role: Role,
    /// For anchor proofs and path nodes: the path segments still to follow from this block.
    pub path: Vec<String>,
}

impl Need {
    pub fn commit(cid: Cid) -> Self {
        Self {
            cid,
            role: Role::Commit,
            path: Vec::new(),
        }
    }
}

/// The blocks `need`'s bytes point at that the log also needs. An error means the block is not
/// what its role says (undecodable, or missing a field its kind requires).
pub fn expand(need: &Need, data: &[u8]) -> Result<Vec<Need>, String> {
    match need.role {
        Role::Payload | Role::Capability => Ok(Vec::new()),
        Role::Commit => expand_commit(&need.cid, data),
        Role::AnchorProof => {
            let proof = decode(data)?;
            let root = link(&proof, "root").ok_or("anchor proof without a `root` link")?;
            Ok(vec![Need {
                cid: root,
                role: Role::AnchorPath,
                path: need.path.clone(),
            }])
        }
        Role::AnchorPath => {
            // The last segment points at the anchored commit itself, which is in the log.
            if need.path.len() <= 1 {
                return Ok(Vec::new());
            }
            let node = decode(data)?;
            let seg = &need.path[0];
            let child = match &node {
                Ipld::List(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
                Ipld::Map(m) => m.get(seg.as_str()),
                _ => None,
            };
            match child {
                Some(Ipld::Link(c)) => Ok(vec![Need {
                    cid: *c,
                    role: Role::AnchorPath,
                    path: need.path[1..].to_vec(),
                }]),
                _ => Err(format!(
                    "anchor path segment {seg:?} does not lead to a link in Merkle node {}",
                    need.cid
                )),
            }
        }
    }
}

fn expand_commit(cid: &Cid, data: &[u8]) -> Result<Vec<Need>, String> {
    let value = decode(data)?;
    let mut out = Vec::new();
    match cid.codec() {
        DAG_JOSE => {
            // dag-jose stores the payload as the bytes of the linked CID, and the protected
            // header as the raw JSON bytes.
            let payload = bytes(&value, "payload").ok_or("signed commit without a payload")?;
            let (link, _) = crate::ids::read_cid(payload, "JWS payload CID")
                .map_err(|e| format!("signed commit payload is not a CID: {e}"))?;
            out.push(Need {
                cid: link,
                role: Role::Payload,
                path: Vec::new(),
            });
            if let Some(Ipld::List(sigs)) = map_get(&value, "signatures") {
                for sig in sigs {
                    if let Some(cap) = bytes(sig, "protected").and_then(cap_of) {
                        if !out.iter().any(|n| n.cid == cap) {
                            out.push(Need {
                                cid: cap,
                                role: Role::Capability,
                                path: Vec::new(),
                            });
                        }
                    }
                }
            }
        }
        DAG_CBOR => {
            if let Some(proof) = link(&value, "proof") {
                let path = match map_get(&value, "path") {
                    Some(Ipld::String(p)) => p
                        .split('/')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect(),
                    _ => return Err("anchor commit without a `path` string".into()),
                };
                out.push(Need {
                    cid: proof,
                    role: Role::AnchorProof,
                    path,
                });
            }
        }
        other => {
            return Err(format!(
                "commit codec 0x{other:x} is neither dag-jose nor dag-cbor"
            ))
        }
    }
    Ok(out)
}

/// The CACAO CID in a JWS protected header (`{"cap":"ipfs://bafy…",…}`), if any.
fn cap_of(protected: &[u8]) -> Option<Cid> {
    let header: serde_json::Value = serde_json::from_slice(protected).ok()?;
    let cap = header.get("cap")?.as_str()?;
    crate::ids::parse_cid(cap.strip_prefix("ipfs://")?).ok()
}

fn decode(data: &[u8]) -> Result<Ipld, String> {
    serde_ipld_dagcbor::from_slice(data).map_err(|e| format!("not dag-cbor: {e}"))
}

fn map_get<'a>(v: &'a Ipld, key: &str) -> Option<&'a Ipld> {
    match v {
        Ipld::Map(m) => m.get(key),
        _ => None,
    }
}

fn link(v: &Ipld, key: &str) -> Option<Cid> {
    match map_get(v, key) {
        Some(Ipld::Link(c)) => Some(*c),
        _ => None,
    }
}

fn bytes<'a>(v: &'a Ipld, key: &str) -> Option<&'a [u8]> {
    match map_get(v, key) {
        Some(Ipld::Bytes(b)) => Some(b),
        _ => None,
    }
}
