//! A ceramic-one node's HTTP API (base path `/ceramic`, reference `ceramic-one.md` §2), the part
//! the audit and the event repair use: one event's CAR (`GET /events/{cid}`), posting an event
//! (`POST /events`), a model's events in EventId order (`GET /experimental/events/model/<m>`,
//! offset paging), the node's interests (`GET /experimental/interests`, `POST /interests`) and
//! whether it serves a stream's state (`GET /streams/<id>`).
//!
//! The same client as js-ceramic's ([`NodeApi`]: timeouts, retries of transient failures,
//! pacing to a rate): `api_url` is the node's root (`http://127.0.0.1:5101`), `/ceramic` is added.

use std::collections::BTreeSet;

use cid::Cid;
use serde::Deserialize;
use serde_json::json;

use super::event::{parse_event, Car, EventInfo};
use super::interest::Interest;
use crate::api::{ApiError, NodeApi};
use crate::ids::Network;

/// Events asked for per page of `experimental/events`. The node's default is 10000 (§2); a
/// smaller page keeps one answer (full CARs, base64) to a few MB and a failed page cheap to
/// retry, at the cost of more requests. Too large and one page may time out on a busy node.
pub const PAGE_LIMIT: u64 = 1000;

/// Pages read from one model at most (so 10^7 events at [`PAGE_LIMIT`]). A walk that reaches
/// it stops and says so (the audit is then incomplete) instead of paging forever through a node
/// whose offsets never end. Raise it for a bigger model.
pub const MAX_PAGES: u64 = 10_000;

/// One page of `experimental/events`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    pub events: Vec<PageEvent>,
    pub resume_offset: u64,
    pub is_complete: bool,
}

#[derive(Debug, Deserialize)]
pub struct PageEvent {
    /// The event CID (base32).
    pub id: String,
    /// The event's CAR, multibase (`m` base64).
    pub data: Option<String>,
}

/// One event as a walk returns it.
#[derive(Clone, Debug)]
pub struct Walked {
    pub cid: Cid,
    pub car: Vec<u8>,
    pub info: EventInfo,
}

/// A model's events as one node listed them, and what the listing cost.
#[derive(Clone, Debug, Default)]
pub struct Walk {
    pub events: Vec<Walked>,
    /// Response bytes received.
    pub bytes: u64,
    /// Requests made.
    pub pages: u64,
}

/// Why a model could not be walked: which node, model and page, and what went wrong.
#[derive(Debug, thiserror::Error)]
#[error("node {node}: model {model}: page at offset {offset}: {why}")]
pub struct WalkError {
    pub node: String,
    pub model: String,
    pub offset: u64,
    pub why: String,
}

/// Decodes a multibase CAR (any base the `multibase` crate knows; the node sends `m`).
pub fn decode_car(text: &str) -> Result<Vec<u8>, String> {
    multibase::decode(text)
        .map(|(_, bytes)| bytes)
        .map_err(|e| format!("the CAR is not multibase: {e}"))
}

/// Encodes a CAR as the node sends and accepts it (`m`, base64 without padding).
pub fn encode_car(car: &[u8]) -> String {
    multibase::encode(multibase::Base::Base64, car)
}

/// Reads the event a CAR holds: its root must be `expected` (when given), its blocks complete.
pub fn event_of_car(car: &[u8], expected: Option<&Cid>) -> Result<(Cid, EventInfo), String> {
    let parsed = Car::parse(car)?;
    let root = *parsed.roots.first().ok_or("the CAR has no root")?;
    if let Some(cid) = expected.filter(|c| **c != root) {
        return Err(format!("the CAR's root is {root}, not the event {cid}"));
    }
    let info = parse_event(&root, &|c| parsed.block(c)).map_err(|e| e.to_string())?;
    Ok((root, info))
}

impl NodeApi {
    /// `GET /ceramic/events/{cid}`: the event's CAR, or None when the node answers 404.
    pub async fn c1_event(&self, cid: &Cid) -> Result<Option<Vec<u8>>, ApiError> {
        #[derive(Deserialize)]
        struct EventBody {
            data: String,
        }
        let endpoint = "GET /ceramic/events";
        let path = format!("ceramic/events/{cid}");
        let raw = match self
            .send(endpoint, None, |c, url| c.get(url.join(&path)))
            .await
        {
            Err(ApiError::Status { status: 404, .. }) => return Ok(None),
            other => other?,
        };
        let body: EventBody = self.parse(endpoint, None, &raw)?;
        let car = decode_car(&body.data).map_err(|e| self.malformed(endpoint, None, e))?;
        Ok(Some(car))
    }

    /// `POST /ceramic/events` with the CAR. The node stores it (204) or refuses it (400 with
    /// its `message`, e.g. a data event whose init event it lacks). Posting an event the node
    /// holds is harmless, so transient failures are retried.
    pub async fn c1_post_event(&self, car: &[u8]) -> Result<(), ApiError> {
        let body = json!({ "data": encode_car(car) });
        self.send("POST /ceramic/events", None, |c, url| {
            c.post(url.join("ceramic/events")).json(&body)
        })
        .await
        .map(|_| ())
    }

    /// One page of `GET /ceramic/experimental/events/model/<model>?offset=&limit=`.
    pub async fn c1_model_page(
        &self,
        model: &str,
        offset: u64,
        limit: u64,
    ) -> Result<(Page, u64), ApiError> {
        let endpoint = "GET /ceramic/experimental/events/model";
        let path =
            format!("ceramic/experimental/events/model/{model}?offset={offset}&limit={limit}");
        let raw = self
            .send(endpoint, None, |c, url| c.get(url.join(&path)))
            .await?;
        Ok((self.parse(endpoint, None, &raw)?, raw.len() as u64))
    }

    /// `GET /ceramic/config/network`: the network the node runs on (its EventIds carry it).
    pub async fn c1_network(&self) -> Result<Network, ApiError> {
        #[derive(Deserialize)]
        struct Body {
            name: String,
        }
        let endpoint = "GET /ceramic/config/network";
        let raw = self
            .send(endpoint, None, |c, url| {
                c.get(url.join("ceramic/config/network"))
            })
            .await?;
        let body: Body = self.parse(endpoint, None, &raw)?;
        super::mirror::network_named(&body.name).ok_or_else(|| {
            self.malformed(endpoint, None, format!("unknown network {:?}", body.name))
        })
    }

    /// The CIDs of every event the node has delivered, from its feed (`GET
    /// /ceramic/feed/events?resumeAt=&limit=`, delivered events only, §2), and the requests
    /// made. Bounded by `max_pages`; the resume token is node-local and used only here.
    pub async fn c1_delivered(
        &self,
        limit: u64,
        max_pages: u64,
    ) -> Result<(BTreeSet<Cid>, u64), ApiError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Feed {
            events: Vec<PageEvent>,
            resume_token: String,
        }
        let endpoint = "GET /ceramic/feed/events";
        let mut out = BTreeSet::new();
        let mut token = "0".to_string();
        for page in 1..=max_pages {
            let path = format!("ceramic/feed/events?resumeAt={token}&limit={limit}");
            let raw = self
                .send(endpoint, None, |c, url| c.get(url.join(&path)))
                .await?;
            let feed: Feed = self.parse(endpoint, None, &raw)?;
            if feed.events.is_empty() {
                return Ok((out, page));
            }
            for e in &feed.events {
                let cid = e.id.parse().map_err(|err| {
                    self.malformed(endpoint, None, format!("event id {:?}: {err}", e.id))
                })?;
                out.insert(cid);
            }
            if feed.resume_token == token {
                return Err(self.malformed(
                    endpoint,
                    None,
                    format!("resumeToken {token} does not advance"),
                ));
            }
            token = feed.resume_token;
        }
        Err(self.malformed(
            endpoint,
            None,
            format!("stopped after {max_pages} pages (MAX_PAGES)"),
        ))
    }

    /// `GET /ceramic/experimental/interests`: the node's interests, decoded (§3.5).
    pub async fn c1_interests(&self) -> Result<Vec<Interest>, ApiError> {
        let endpoint = "GET /ceramic/experimental/interests";
        self.c1_interest_bytes()
            .await?
            .iter()
            .map(|b| {
                Interest::decode(b).map_err(|e| {
                    self.malformed(endpoint, None, format!("interest {}: {e}", hex::encode(b)))
                })
            })
            .collect()
    }

    /// The node's interests as bytes (`z` base58btc in the answer).
    pub async fn c1_interest_bytes(&self) -> Result<Vec<Vec<u8>>, ApiError> {
        #[derive(Deserialize)]
        struct Body {
            interests: Vec<Item>,
        }
        #[derive(Deserialize)]
        struct Item {
            data: String,
        }
        let endpoint = "GET /ceramic/experimental/interests";
        let raw = self
            .send(endpoint, None, |c, url| {
                c.get(url.join("ceramic/experimental/interests"))
            })
            .await?;
        let body: Body = self.parse(endpoint, None, &raw)?;
        body.interests
            .iter()
            .map(|i| {
                multibase::decode(&i.data)
                    .map(|(_, bytes)| bytes)
                    .map_err(|e| {
                        self.malformed(endpoint, None, format!("interest {:?}: {e}", i.data))
                    })
            })
            .collect()
    }

    /// `POST /ceramic/interests {"sep":"model","sepValue":<model>}`: the node starts syncing the
    /// model with every peer that is interested too (a write: only on the operator's request).
    pub async fn c1_add_interest(&self, model: &str) -> Result<(), ApiError> {
        let body = json!({ "sep": "model", "sepValue": model });
        self.send("POST /ceramic/interests", None, |c, url| {
            c.post(url.join("ceramic/interests")).json(&body)
        })
        .await
        .map(|_| ())
    }

    /// `GET /ceramic/streams/<id>`: whether the node serves a state for the stream (404: none).
    pub async fn c1_has_state(&self, stream: &str) -> Result<bool, ApiError> {
        let endpoint = "GET /ceramic/streams";
        let path = format!("ceramic/streams/{stream}");
        match self
            .send(endpoint, Some(stream), |c, url| c.get(url.join(&path)))
            .await
        {
            Ok(_) => Ok(true),
            Err(ApiError::Status { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Every event of `model` the node holds, in EventId order, page by page (bounded by
/// [`MAX_PAGES`]). Each event's CAR is checked: its root is the listed id and the event parses.
/// Any page that cannot be read or checked ends the walk with a [`WalkError`] saying why.
pub async fn walk_model(api: &NodeApi, model: &str, limit: u64) -> Result<Walk, WalkError> {
    let limit = limit.max(1);
    let mut out = Walk::default();
    let mut offset = 0u64;
    for _ in 0..MAX_PAGES {
        let fail = |why: String| WalkError {
            node: api.node().to_string(),
            model: model.to_string(),
            offset,
            why,
        };
        let (page, bytes) = api
            .c1_model_page(model, offset, limit)
            .await
            .map_err(|e| fail(e.to_string()))?;
        out.pages += 1;
        out.bytes += bytes;
        for e in &page.events {
            let cid: Cid =
                e.id.parse()
                    .map_err(|err| fail(format!("event id {:?} is not a CID: {err}", e.id)))?;
            let data = e
                .data
                .as_deref()
                .ok_or_else(|| fail(format!("event {cid}: no data")))?;
            let car = decode_car(data).map_err(|why| fail(format!("event {cid}: {why}")))?;
            let (_, info) = event_of_car(&car, Some(&cid))
                .map_err(|why| fail(format!("event {cid}: {why}")))?;
            out.events.push(Walked { cid, car, info });
        }
        // isComplete is `count < limit` (§2): a full last page needs one more, empty request.
        if page.is_complete || page.events.is_empty() {
            return Ok(out);
        }
        if page.resume_offset <= offset {
            return Err(fail(format!(
                "resumeOffset {} does not advance past {offset}",
                page.resume_offset
            )));
        }
        offset = page.resume_offset;
    }
    Err(WalkError {
        node: api.node().to_string(),
        model: model.to_string(),
        offset,
        why: format!("stopped after {MAX_PAGES} pages of {limit} (MAX_PAGES)"),
    })
}
