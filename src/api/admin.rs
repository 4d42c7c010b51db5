//! The admin API's authentication, for the one admin read the audit makes: the node's pin list
//! (`GET /api/v0/admin/pins`), which says what its state store holds without loading anything
//! (reference `ceramic-interfaces.md` §1.8).
//!
//! A request carries `Authorization: Basic <compact JWS>`, signed by a DID listed in the node's
//! `http-api.admin-dids`, over `{"code": <single-use code from GET /admin/getCode>,
//! "requestPath": "/api/v0/admin/pins"}`. The DID is an ed25519 `did:key` made from a 32-byte
//! seed, as `key-did-provider-ed25519` makes it; the JWS header is `{"alg": "EdDSA", "kid":
//! "<did>#<multibase key>"}`, which the node checks with `kid.startsWith(adminDid)`.

use ed25519_dalek::{Signer, SigningKey};
use multibase::Base;

/// An admin DID's signing key.
pub struct AdminKey {
    key: SigningKey,
    did: String,
}

impl std::fmt::Debug for AdminKey {
    // Never print the seed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminKey").field("did", &self.did).finish()
    }
}

/// The multicodec prefix of an ed25519 public key (`0xed` as a varint).
const ED25519_PUB: [u8; 2] = [0xed, 0x01];

impl AdminKey {
    /// From the seed as 64 hex digits (how the interop harness and `did-from-seed.mjs` keep it).
    pub fn from_hex(text: &str) -> Result<Self, String> {
        let bytes =
            hex::decode(text.trim()).map_err(|e| format!("the admin key is not hex: {e}"))?;
        let seed: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            format!(
                "the admin key must be 32 bytes (64 hex digits), got {}",
                b.len()
            )
        })?;
        let key = SigningKey::from_bytes(&seed);
        let mut public = ED25519_PUB.to_vec();
        public.extend_from_slice(key.verifying_key().as_bytes());
        let did = format!("did:key:{}", multibase::encode(Base::Base58Btc, public));
        Ok(Self { key, did })
    }

    /// `did:key:z6Mk…`
    pub fn did(&self) -> &str {
        &self.did
    }

    /// The compact JWS for one admin request.
    pub fn jws(&self, code: &str, request_path: &str) -> String {
        let fingerprint = self.did.trim_start_matches("did:key:");
        let header =
            serde_json::json!({"alg": "EdDSA", "kid": format!("{}#{fingerprint}", self.did)});
        let payload = serde_json::json!({"code": code, "requestPath": request_path});
        let b64 = |v: &serde_json::Value| Base::Base64Url.encode(v.to_string().as_bytes());
        let signing_input = format!("{}.{}", b64(&header), b64(&payload));
        let signature = self.key.sign(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            Base::Base64Url.encode(signature.to_bytes())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_did_matches_key_did_provider_ed25519() {
        // From the interop harness: `node did-from-seed.mjs <seed>` printed this DID.
        let key =
            AdminKey::from_hex("0000000000000000000000000000000000000000000000000000000000000001")
                .expect("key");
        assert_eq!(
            key.did(),
            "did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG"
        );
        let jws = key.jws("c0de", "/api/v0/admin/pins");
        let parts: Vec<&str> = jws.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header = Base::Base64Url.decode(parts[0]).expect("header");
        let header: serde_json::Value = serde_json::from_slice(&header).expect("json");
        assert_eq!(header["alg"], "EdDSA");
        assert_eq!(
            header["kid"].as_str().unwrap_or_default(),
            format!("{}#{}", key.did(), &key.did()[8..])
        );
    }

    #[test]
    fn a_bad_seed_is_refused_with_a_reason() {
        assert!(AdminKey::from_hex("zz").unwrap_err().contains("not hex"));
        assert!(AdminKey::from_hex("00ff").unwrap_err().contains("32 bytes"));
    }
}
