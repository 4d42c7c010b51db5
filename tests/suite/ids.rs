//! Identifier vectors and malformed-input properties.

use ceramic_audit::ids::{
    inspect, parse_cid, CommitId, EventId, IdError, Inspection, Network, StreamId, StreamRef,
    StreamType,
};
use ceramic_audit::recon::{AssociativeHash, Sha256a};
use proptest::prelude::*;
use serde_json::Value as Json;

use crate::common::check;

fn vectors() -> Json {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/ids/vectors.json");
    let text = std::fs::read_to_string(path).expect("fixtures/ids/vectors.json is readable");
    serde_json::from_str(&text).expect("fixtures/ids/vectors.json is JSON")
}

fn s<'a>(v: &'a Json, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("vector field {field} is a string: {v}"))
}

#[test]
fn stream_id_vectors_round_trip_bytes_and_strings() {
    let v = vectors();
    let list = v["stream_ids"].as_array().expect("stream_ids array");
    assert!(list.len() >= 2);
    for vec in list {
        let id = StreamId::parse(s(vec, "string")).expect("vector parses");
        assert_eq!(id.to_string(), s(vec, "string"), "string round trip");
        assert_eq!(hex::encode(id.to_bytes()), s(vec, "hex"), "bytes");
        let bytes = hex::decode(s(vec, "hex")).expect("hex");
        assert_eq!(StreamId::from_bytes(&bytes).expect("bytes parse"), id);
        assert_eq!(Some(id.stream_type.code()), vec["stream_type"].as_u64());
        assert_eq!(id.stream_type.name(), s(vec, "stream_type_name"));
        if let Some(genesis) = vec["genesis"].as_str() {
            assert_eq!(id.genesis.to_string(), genesis);
        }
        if let Some(code) = vec["genesis_multihash_code"].as_u64() {
            assert_eq!(id.genesis.hash().code(), code);
            assert_eq!(
                hex::encode(id.genesis.hash().digest()),
                s(vec, "genesis_digest_hex")
            );
        }
    }
}

#[test]
fn the_meta_model_with_multihash_code_0x71_is_type_4() {
    let id = StreamId::parse("kh4q0ozorrgaq2mezktnrmdwleo1d").expect("meta-model parses");
    assert_eq!(id.stream_type, StreamType::Unloadable);
    assert_eq!(id.genesis.codec(), 0x71);
    assert_eq!(id.genesis.hash().code(), 0x71);
    assert_eq!(id.to_string(), "kh4q0ozorrgaq2mezktnrmdwleo1d");
}

#[test]
fn commit_id_vectors_decode_to_their_commit_cids() {
    let v = vectors();
    for vec in v["commit_ids"].as_array().expect("commit_ids array") {
        let parsed = StreamRef::parse(s(vec, "string")).expect("vector parses");
        let StreamRef::Commit(commit) = parsed else {
            panic!("{} is a CommitID", s(vec, "string"));
        };
        assert_eq!(commit.commit_cid().to_string(), s(vec, "commit"));
        assert_eq!(Some(commit.is_genesis()), vec["is_genesis"].as_bool());
        assert_eq!(commit.stream.to_string(), s(vec, "stream_id"));
        assert_eq!(commit.to_string(), s(vec, "string"), "string round trip");
        assert_eq!(hex::encode(commit.to_bytes()), s(vec, "hex"), "bytes");
        let again = StreamRef::from_bytes(&commit.to_bytes()).expect("bytes parse");
        assert_eq!(again, StreamRef::Commit(commit.clone()));
        // A CommitID is not a StreamID.
        assert_eq!(
            StreamId::parse(s(vec, "string")),
            Err(IdError::UnexpectedCommit)
        );
    }
}

#[test]
fn url_forms_parse_to_the_canonical_id() {
    let v = vectors();
    for vec in v["url_forms"].as_array().expect("url_forms array") {
        let parsed = StreamRef::parse(s(vec, "input")).expect("url form parses");
        assert_eq!(
            parsed.to_string(),
            s(vec, "canonical"),
            "{}",
            s(vec, "input")
        );
    }
}

#[test]
fn a_commit_in_both_the_id_and_the_query_is_refused() {
    let commit_id = "k3y52l7qbv1frxwipl4hp7e6jlu4f6u8upm2xv0irmedfkm5cnutmezzi3u7mytj4";
    let input = format!("{commit_id}?commit=0");
    assert_eq!(StreamRef::parse(&input), Err(IdError::ConflictingCommit));
}

fn network(name: &str) -> Network {
    match name {
        "mainnet" => Network::Mainnet,
        "testnet-clay" => Network::TestnetClay,
        "inmemory" => Network::InMemory,
        other => panic!("network {other} in vectors"),
    }
}

#[test]
fn event_id_vectors_build_parse_and_print() {
    let v = vectors();
    for vec in v["event_ids"].as_array().expect("event_ids array") {
        let sep = StreamId::parse(s(vec, "sep_value")).expect("model id");
        let init = parse_cid(s(vec, "init")).expect("init cid");
        let event = parse_cid(s(vec, "event")).expect("event cid");
        let built = EventId::build(
            network(s(vec, "network")),
            s(vec, "sep_key"),
            &sep.to_bytes(),
            s(vec, "controller"),
            &init,
            &event,
        );
        assert_eq!(
            hex::encode(built.to_bytes()),
            s(vec, "hex"),
            "{}",
            s(vec, "name")
        );
        let parsed = EventId::from_hex(s(vec, "hex")).expect("vector parses");
        assert_eq!(parsed, built);
        assert_eq!(parsed.network.id(), vec["network_id"].as_u64().expect("id"));
        assert_eq!(parsed.network.name(), s(vec, "network"));
        // Display is upper-case hex, like rust-ceramic's.
        assert_eq!(parsed.to_string(), s(vec, "hex").to_uppercase());
    }
}

#[test]
fn local_and_unknown_networks_round_trip() {
    for id in [
        0u64,
        1,
        2,
        3,
        0xfe,
        0xff,
        0x1_0000_0000,
        0x1_0000_0000 + 1234,
        u64::MAX,
    ] {
        let net = Network::from_id(id);
        assert_eq!(net.id(), id, "{net:?}");
        let event = EventId {
            network: net,
            separator_hash: [1; 8],
            controller_hash: [2; 8],
            init_tail: [3; 4],
            event: None,
        };
        assert_eq!(EventId::from_bytes(&event.to_bytes()), Ok(event));
    }
    assert_eq!(Network::from_id(0x1_0000_0000 + 7).name(), "local-7");
}

#[test]
fn sha256a_matches_recon() {
    let v = vectors();
    for vec in v["sha256a"].as_array().expect("sha256a array") {
        let sum = vec["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| Sha256a::digest(k.as_str().expect("key").as_bytes()))
            .fold(Sha256a::zero(), |acc, h| acc.add(&h));
        assert_eq!(hex::encode(sum.to_bytes()), s(vec, "hex"), "{vec}");
    }
    // Commutative and invertible.
    let (a, b) = (Sha256a::digest(b"a"), Sha256a::digest(b"b"));
    assert_eq!(a.add(&b), b.add(&a));
    assert_eq!(a.add(&b).sub(&b), a);
}

#[test]
fn inspect_names_each_kind() {
    let tile = inspect("kjzl6cwe1jw147dvq16zluojmraqvwdmbh61dx9e0c59i344lcrsgqfohexp60s")
        .expect("stream id");
    assert!(matches!(tile, Inspection::StreamId { stream_type: 0, .. }));
    let cid =
        inspect("bagcqcerakszw2vsovxznyp5gfnpdj4cqm2xiv76yd24wkjewhhykovorwo6a").expect("cid");
    assert!(matches!(cid, Inspection::Cid(ref c) if c.codec == 0x85));
    let ev = inspect("CE010500BA25076D730241E745CC7C072FF729EA683B751701711220F4EF7EC208944D257025408BB647949E6B72930520BC80F34D8BFBAFD2643D86")
        .expect("event id");
    assert!(matches!(ev, Inspection::EventId { network_id: 0, .. }));
    assert_eq!(inspect("hello"), Err(IdError::Unrecognised));
    assert_eq!(inspect("  "), Err(IdError::Empty));
}

#[test]
fn wrong_multibase_is_a_typed_error() {
    let id = StreamId::parse("kjzl6cwe1jw147dvq16zluojmraqvwdmbh61dx9e0c59i344lcrsgqfohexp60s")
        .expect("vector");
    let base58 = multibase::encode(multibase::Base::Base58Btc, id.to_bytes());
    assert!(matches!(
        StreamId::parse(&base58),
        Err(IdError::WrongBase(_))
    ));
}

#[test]
fn every_truncation_of_a_commit_id_errors_or_round_trips() {
    let v = vectors();
    for vec in v["commit_ids"].as_array().expect("commit_ids") {
        let bytes = hex::decode(s(vec, "hex")).expect("hex");
        for cut in 0..bytes.len() {
            let prefix = &bytes[..cut];
            // A prefix that happens to be a whole StreamID is valid; anything else is an error.
            if let Ok(parsed) = StreamRef::from_bytes(prefix) {
                let again = match &parsed {
                    StreamRef::Stream(s) => s.to_bytes(),
                    StreamRef::Commit(c) => c.to_bytes(),
                };
                assert_eq!(again, prefix, "prefix {cut} parsed as {parsed}");
            }
        }
    }
}

#[test]
fn random_bytes_and_strings_never_panic_and_parsed_ids_round_trip() {
    check(
        "id-bytes",
        1024,
        proptest::collection::vec(any::<u8>(), 0..80),
        |bytes| {
            if let Ok(r) = StreamRef::from_bytes(&bytes) {
                let again = match &r {
                    StreamRef::Stream(s) => s.to_bytes(),
                    StreamRef::Commit(c) => c.to_bytes(),
                };
                prop_assert_eq!(again, bytes.clone());
            }
            if let Ok(e) = EventId::from_bytes(&bytes) {
                prop_assert_eq!(e.to_bytes(), bytes.clone());
            }
            Ok(())
        },
    );
    check("id-strings", 1024, ".{0,90}", |text| {
        let _ = inspect(&text);
        let _ = StreamRef::parse(&text);
        let _ = EventId::from_hex(&text);
        Ok(())
    });
    // Valid prefixes with random tails: the realistic kind of corruption.
    let head = "ce0100018501122054b36d564eadf2dc3fa62b5e34f05066ae8affd81eb965249639f0a755d1b3bc";
    check(
        "id-corrupt-tails",
        1024,
        proptest::collection::vec(any::<u8>(), 0..40),
        move |tail| {
            let mut bytes = hex::decode(head).map_err(|e| TestCaseError::fail(e.to_string()))?;
            bytes.extend_from_slice(&tail);
            let text = multibase::encode(multibase::Base::Base36Lower, &bytes);
            match StreamRef::parse(&text) {
                Ok(r) => prop_assert_eq!(r.to_string(), text),
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
            let mut ev = hex::decode("ce010500").map_err(|e| TestCaseError::fail(e.to_string()))?;
            ev.extend_from_slice(&tail);
            if let Ok(e) = EventId::from_bytes(&ev) {
                prop_assert_eq!(e.to_bytes(), ev);
            }
            Ok(())
        },
    );
}

#[test]
fn genesis_commit_id_of_a_stream() {
    let id = StreamId::parse("kjzl6cwe1jw147dvq16zluojmraqvwdmbh61dx9e0c59i344lcrsgqfohexp60s")
        .expect("vector");
    let c: CommitId = id.genesis_commit();
    assert_eq!(
        c.to_string(),
        "k3y52l7qbv1frxwipl4hp7e6jlu4f6u8upm2xv0irmedfkm5cnutmezzi3u7mytj4"
    );
}
