//! The node HTTP API client against a real HTTP server on 127.0.0.1 that answers like a
//! js-ceramic 6.11 node (shapes from ../shared/reference/real-ceramic.md), and fails like one.

use std::time::Duration;

use ceramic_audit::api::{ApiError, ApiOptions, NodeApi};

use crate::common::http::{FakeNode, Reply};

const STREAM: &str = "kjzl6kcym7w8y5gddxijppujr2m7uap90kcf5nc3u3x38lvkkxl1zmdshs90jci";
const MODEL: &str = "kjzl6hvfrbw6c8ts6i0ex6yh1j8hsu23h6eeif2h615gm3asvfxghz0sfqqp03b";

fn state_json(tips: &[&str]) -> String {
    let log: Vec<String> = tips
        .iter()
        .enumerate()
        .map(|(i, t)| format!(r#"{{"cid":"{t}","type":{}}}"#, if i == 0 { 0 } else { 1 }))
        .collect();
    format!(
        r#"{{"type":3,"content":{{"title":"one v2","count":2}},"metadata":{{"controllers":["did:key:z6MkUser"],"model":"{MODEL}","unique":"abc"}},"signature":2,"anchorStatus":"NOT_REQUESTED","log":[{}],"doctype":"MID"}}"#,
        log.join(",")
    )
}

fn quick() -> ApiOptions {
    ApiOptions {
        timeout: Duration::from_millis(800),
        retries: 2,
        concurrency: 2,
        max_rate: None,
    }
}

#[tokio::test]
async fn reads_state_commits_multiquery_and_health_as_a_node_serves_them() {
    let node = FakeNode::start(|req, _| {
        let t = req.target.as_str();
        if t.starts_with("/api/v0/node/healthcheck") {
            Reply::Full(200, "Alive!".into())
        } else if t == format!("/api/v0/streams/{STREAM}?sync=2") {
            Reply::Full(
                200,
                format!(r#"{{"streamId":"{STREAM}","state":{}}}"#, state_json(&["bagcqceragen", "bagcqceratip"])),
            )
        } else if t == format!("/api/v0/commits/{STREAM}") {
            Reply::Full(
                200,
                format!(
                    r#"{{"streamId":"{STREAM}","commits":[{{"cid":"bagcqceragen","value":{{"jws":{{"payload":"p","signatures":[]}},"linkedBlock":"AA=="}}}},{{"cid":"bafyanchor","value":{{"id":"x","path":"","prev":"y","proof":"z"}}}}]}}"#
                ),
            )
        } else if t == "/api/v0/multiqueries" {
            // The node omits streams it could not load.
            Reply::Full(200, format!(r#"{{"{STREAM}":{}}}"#, state_json(&["bagcqceragen"])))
        } else {
            Reply::Full(404, "{}".into())
        }
    })
    .await;
    let api = NodeApi::new("a", &node.url, quick()).expect("client");
    api.healthcheck().await.expect("healthy");

    let state = api.stream(STREAM).await.expect("state");
    assert_eq!(state.tip(), Some("bagcqceratip"));
    assert_eq!(state.stream_type, 3);
    assert_eq!(state.metadata.model.as_deref(), Some(MODEL));
    assert_eq!(state.metadata.controllers, ["did:key:z6MkUser"]);
    assert_eq!(state.log.iter().map(|e| e.kind).collect::<Vec<_>>(), [0, 1]);
    let commits = ceramic_audit::audit::logs::from_api(&state.log);
    assert_eq!(commits.len(), 2);
    assert!(
        commits.iter().all(|c| c.anchor.is_none()),
        "no anchor in this log"
    );

    let commits = api.commits(STREAM).await.expect("commits");
    assert_eq!(commits.len(), 2);
    assert_eq!(commits[1].cid, "bafyanchor");
    assert!(
        commits[1].value.get("proof").is_some(),
        "values stay as served"
    );

    let other = "kjzl6kcym7w8y85oa7v97j3hkguvnrtak4ufwvhr4gxlw84wx15yb8yeor52i6h".to_string();
    let loaded = api
        .multiquery(&[STREAM.to_string(), other.clone()])
        .await
        .expect("multiquery");
    assert!(loaded.contains_key(STREAM));
    assert!(
        !loaded.contains_key(&other),
        "a failed load is a missing key"
    );

    let requests = node.requests();
    let mq = requests
        .iter()
        .find(|r| r.target == "/api/v0/multiqueries")
        .expect("multiquery sent");
    assert_eq!(mq.method, "POST");
    let body: serde_json::Value = serde_json::from_str(&mq.body).expect("JSON body");
    assert_eq!(body["queries"][1]["streamId"], other.as_str());
    assert_eq!(
        body["queries"][0]["opts"]["sync"], 2,
        "never ask the node to sync"
    );
    assert_eq!(
        body["timeout"], 600,
        "the node answers before the client's 800 ms run out"
    );
    assert!(
        requests.iter().all(|r| !r.target.contains("pin")),
        "the audit never pins: {requests:?}"
    );
}

#[tokio::test]
async fn errors_name_the_node_endpoint_and_stream_and_only_transient_ones_are_retried() {
    let node = FakeNode::start(|req, n| {
        let t = req.target.as_str();
        if t.starts_with("/api/v0/streams/k500") {
            Reply::Full(500, r#"{"error":"Failed to load stream"}"#.into())
        } else if t.starts_with("/api/v0/streams/kcut") {
            Reply::Truncated(
                200,
                format!(r#"{{"streamId":"kcut","state":{}}}"#, state_json(&["b1"])),
            )
        } else if t.starts_with("/api/v0/streams/kslow") {
            Reply::After(
                Duration::from_secs(30),
                Box::new(Reply::Full(200, "{}".into())),
            )
        } else if t.starts_with("/api/v0/streams/kjunk") {
            Reply::Full(
                200,
                r#"{"streamId":"kjunk","state":{"type":"three"}}"#.into(),
            )
        } else if t.starts_with("/api/v0/streams/kbusy") {
            // Busy for the first two requests, then fine.
            if n < 2 {
                Reply::Full(503, "busy".into())
            } else {
                Reply::Full(
                    200,
                    format!(r#"{{"streamId":"kbusy","state":{}}}"#, state_json(&["b1"])),
                )
            }
        } else {
            Reply::Full(404, "{}".into())
        }
    })
    .await;
    let api = NodeApi::new("b", &node.url, quick()).expect("client");

    let e = api.stream("kbusy").await;
    assert_eq!(e.expect("retried past 503").tip(), Some("b1"));
    assert_eq!(node.requests().len(), 3, "two 503s, then success");

    let before = node.requests().len();
    let e = api.stream("k500").await.expect_err("500");
    let text = e.to_string();
    assert!(matches!(e, ApiError::Status { status: 500, .. }), "{e:?}");
    assert!(
        text.contains("node b") && text.contains("GET /api/v0/streams"),
        "{text}"
    );
    assert!(
        text.contains("stream k500") && text.contains("Failed to load stream"),
        "{text}"
    );
    assert_eq!(node.requests().len(), before + 1, "a 500 is not retried");

    let e = api.stream("kcut").await.expect_err("truncated");
    assert!(matches!(e, ApiError::Unreachable { .. }), "{e:?}");
    assert!(e.to_string().contains("after 3 attempts"), "{e}");

    let e = api.stream("kjunk").await.expect_err("junk");
    assert!(matches!(e, ApiError::Malformed { .. }), "{e:?}");
    assert!(e.to_string().contains("stream kjunk"), "{e}");

    let started = std::time::Instant::now();
    let e = api.stream("kslow").await.expect_err("timeout");
    assert!(matches!(e, ApiError::Unreachable { .. }), "{e:?}");
    // 3 attempts of 0.8 s and 0.6 s of backoff: it gave up long before the node would answer.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "gave up at its timeouts"
    );

    // An id from a damaged index row travels as one escaped path segment, not as a path.
    let e = api.stream("k/../x?y").await.expect_err("unknown");
    assert!(matches!(e, ApiError::Status { status: 404, .. }), "{e:?}");
    assert!(
        node.requests()
            .iter()
            .any(|r| r.target == "/api/v0/streams/k%2F..%2Fx%3Fy?sync=2"),
        "{:?}",
        node.requests()
    );

    // A node that is not there at all.
    let dead = NodeApi::new("c", "http://127.0.0.1:9", quick()).expect("client");
    let e = dead.healthcheck().await.expect_err("refused");
    assert!(e.to_string().contains("node c"), "{e}");
    // The OS's reason is kept, not only reqwest's "error sending request".
    assert!(e.to_string().contains("Connection refused"), "{e}");
    assert!(
        NodeApi::new("d", "ftp://example.org", quick()).is_err(),
        "only http and https"
    );
    assert!(NodeApi::new("d", "not a url", quick()).is_err());
}

#[tokio::test]
async fn requests_are_paced_to_the_rate_cap() {
    let node = FakeNode::start(|_, _| Reply::Full(200, "Alive!".into())).await;
    let options = ApiOptions {
        max_rate: Some(20.0),
        ..quick()
    };
    let api = NodeApi::new("a", &node.url, options).expect("client");
    let started = std::time::Instant::now();
    for _ in 0..6 {
        api.healthcheck().await.expect("healthy");
    }
    // Six starts at 20/s need at least five gaps of 50 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_pin_list_is_read_with_a_fresh_code_signed_by_the_admin_did() {
    use ceramic_audit::api::admin::AdminKey;
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};
    let seed = "1f".repeat(32);
    let key = AdminKey::from_hex(&seed).expect("key");
    let public = ed25519_dalek::SigningKey::from_bytes(&[0x1f; 32]).verifying_key();
    let node = FakeNode::start(move |req, n| {
        match req.target.as_str() {
            "/api/v0/admin/getCode" => Reply::Full(200, format!(r#"{{"code":"code-{n}"}}"#)),
            "/api/v0/admin/pins" => {
                let Some(jws) = req
                    .authorization
                    .as_deref()
                    .and_then(|a| a.strip_prefix("Basic "))
                else {
                    return Reply::Full(401, r#"{"error":"Missing authorization header"}"#.into());
                };
                let parts: Vec<&str> = jws.split('.').collect();
                let decode = |s: &str| multibase::Base::Base64Url.decode(s).unwrap_or_default();
                let payload: serde_json::Value =
                    serde_json::from_slice(&decode(parts[1])).unwrap_or_default();
                let signature = Signature::from_slice(&decode(parts[2]));
                let signed = signature.is_ok_and(|s| {
                    VerifyingKey::verify(
                        &public,
                        format!("{}.{}", parts[0], parts[1]).as_bytes(),
                        &s,
                    )
                    .is_ok()
                });
                // The code handed out just before, for this very path, signed by the admin key.
                if !signed
                    || payload["code"] != format!("code-{}", n - 1)
                    || payload["requestPath"] != "/api/v0/admin/pins"
                {
                    return Reply::Full(401, r#"{"error":"Unauthorized access"}"#.into());
                }
                Reply::Full(
                    200,
                    format!(r#"{{"pinnedStreamIds":["{STREAM}","{MODEL}"]}}"#),
                )
            }
            _ => Reply::Full(404, "{}".into()),
        }
    })
    .await;
    let api = NodeApi::new("a", &node.url, quick()).expect("client");
    let pins = api.pinned(&key).await.expect("pins");
    assert_eq!(pins, [STREAM.to_string(), MODEL.to_string()].into());
    // Another key is refused by the node, and the error names the node and the endpoint.
    let other = AdminKey::from_hex(&"2e".repeat(32)).expect("key");
    let err = api.pinned(&other).await.expect_err("refused").to_string();
    assert!(
        err.contains("node a: GET /api/v0/admin/pins: HTTP 401: Unauthorized access"),
        "{err}"
    );
}
