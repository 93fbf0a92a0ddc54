//! HotspotSystem's webhook signature: base64(HMAC-SHA256(raw body, the webhook's key)).
//!
//! The reference is unsure of the header's spelling: HotspotSystem's PHP sample reads
//! `HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256` (the CGI name of `X-HotspotSystem-Hmac-Sha256`, which a
//! server may also send literally). Both are read; header names are case-insensitive. Each
//! webhook has its own key, so the signature is checked against every configured key, each
//! comparison in constant time and all of them made (no early exit on the first match). Besides
//! the documented base64 of the digest, base64 of its hex form and the hex form itself are
//! accepted (what PHP's `hash_hmac` gives without its raw flag).

use axum::http::HeaderMap;
use base64ct::{Base64, Base64Unpadded, Encoding};
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// The header as HotspotSystem presumably sends it.
pub const HEADER: &str = "x-hotspotsystem-hmac-sha256";
/// The header under the name HotspotSystem's PHP sample reads.
pub const HEADER_CGI: &str = "http_x_hotspotsystem_hmac_sha256";

type HmacSha256 = Hmac<Sha256>;

/// Why a body is not accepted as signed. Worded for the log: no key, no signature value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error(
        "no signature header (X-HotspotSystem-Hmac-Sha256 or HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256)"
    )]
    Missing,
    #[error("the signature header is neither base64 nor a hex digest")]
    NotBase64,
    #[error("the signature matches none of the configured keys")]
    NoKeyMatches,
    #[error("no webhook key is configured")]
    NoKeys,
}

/// The signature HotspotSystem sends for `body` under `key` (base64, padded).
pub fn sign(body: &[u8], key: &str) -> String {
    let mut mac = mac(key.as_bytes());
    mac.update(body);
    Base64::encode_string(mac.finalize().into_bytes().as_slice())
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length; this never fails.
    <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length")
}

/// Checks that `body` is signed, in either header, by one of `keys`.
///
/// The documented form is base64 of the raw digest. A PHP sender that forgets `hash_hmac`'s
/// raw flag sends base64 of the hex digest, or the hex digest itself: both are accepted too,
/// since a signature in any of them still needs the key.
pub fn verify(
    headers: &HeaderMap,
    body: &[u8],
    keys: &[SecretString],
) -> Result<(), SignatureError> {
    let values: Vec<&str> = [HEADER, HEADER_CGI]
        .into_iter()
        .flat_map(|name| headers.get_all(name).into_iter())
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    if values.is_empty() {
        return Err(SignatureError::Missing);
    }
    // Every byte string a value may stand for: its base64 decoding, and itself (hex).
    let mut candidates: Vec<Vec<u8>> = Vec::new();
    for v in &values {
        if let Ok(b) = Base64::decode_vec(v).or_else(|_| Base64Unpadded::decode_vec(v)) {
            candidates.push(b);
        }
        if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
            candidates.push(v.as_bytes().to_vec());
        }
    }
    if candidates.is_empty() {
        return Err(SignatureError::NotBase64);
    }
    if keys.is_empty() {
        return Err(SignatureError::NoKeys);
    }
    let mut matched = false;
    for key in keys {
        let mut m = mac(key.expose_secret().as_bytes());
        m.update(body);
        let digest = m.finalize().into_bytes();
        let hex = hex_lower(digest.as_slice());
        for c in &candidates {
            // Every comparison is made, each in constant time for its length.
            matched |= ct_eq(c, digest.as_slice());
            matched |= ct_eq(&c.to_ascii_lowercase(), hex.as_bytes());
        }
    }
    if matched {
        Ok(())
    } else {
        Err(SignatureError::NoKeyMatches)
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Equal in time that depends on the lengths only.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn keys(k: &[&str]) -> Vec<SecretString> {
        k.iter()
            .map(|k| SecretString::from(k.to_string()))
            .collect()
    }

    fn headers(name: &str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
        h
    }

    #[test]
    fn a_known_vector() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            sign(b"what do ya want for nothing?", "Jefe"),
            "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM="
        );
    }

    #[test]
    fn either_header_spelling_in_any_case_with_any_configured_key() {
        let body = br#"{"id":"1","UserName":"AA-BB"}"#;
        let sig = sign(body, "key-two");
        let ks = keys(&["key-one", "key-two"]);
        for name in [
            "X-HotspotSystem-Hmac-Sha256",
            "x-hotspotsystem-hmac-sha256",
            "HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256",
            "http_x_hotspotsystem_hmac_sha256",
        ] {
            assert_eq!(verify(&headers(name, &sig), body, &ks), Ok(()), "{name}");
        }
        // Without padding, as some senders write base64.
        let unpadded = sig.trim_end_matches('=');
        assert_eq!(verify(&headers(HEADER, unpadded), body, &ks), Ok(()));
    }

    #[test]
    fn a_hex_digest_or_its_base64_is_accepted_too() {
        let body = br#"{"id":"1"}"#;
        let ks = keys(&["mine"]);
        let mut m = mac(b"mine");
        m.update(body);
        let hex = hex_lower(m.finalize().into_bytes().as_slice());
        for sig in [
            hex.clone(),
            hex.to_ascii_uppercase(),
            Base64::encode_string(hex.as_bytes()),
        ] {
            assert_eq!(verify(&headers(HEADER, &sig), body, &ks), Ok(()), "{sig}");
        }
        let other = keys(&["theirs"]);
        assert_eq!(
            verify(&headers(HEADER, &hex), body, &other),
            Err(SignatureError::NoKeyMatches)
        );
    }

    #[test]
    fn a_wrong_key_a_changed_body_or_no_header_is_refused() {
        let body = br#"{"id":"1"}"#;
        let sig = sign(body, "other");
        let ks = keys(&["mine"]);
        assert_eq!(
            verify(&headers(HEADER, &sig), body, &ks),
            Err(SignatureError::NoKeyMatches)
        );
        let good = sign(body, "mine");
        assert_eq!(
            verify(&headers(HEADER, &good), br#"{"id":"2"}"#, &ks),
            Err(SignatureError::NoKeyMatches)
        );
        assert_eq!(
            verify(&HeaderMap::new(), body, &ks),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(&headers(HEADER, "not base64 at all!"), body, &ks),
            Err(SignatureError::NotBase64)
        );
        assert_eq!(
            verify(&headers(HEADER, &good), body, &[]),
            Err(SignatureError::NoKeys)
        );
    }
}
