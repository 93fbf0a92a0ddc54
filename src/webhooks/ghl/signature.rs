//! GHL's webhook signatures: `x-ghl-signature`, base64 Ed25519 (verified first), and the legacy
//! `x-wh-signature`, base64 RSA-SHA256 PKCS#1 v1.5 (accepted while `ghl_accept_legacy_rsa`).
//!
//! What is signed is ambiguous: the guide says the payload, and its Node sample verifies
//! `JSON.stringify(parsed body)`, a re-serialisation. Both readings are tried: the raw bytes,
//! then the body's compact form ([`compact`]), which is what `JSON.stringify(JSON.parse(body))`
//! gives for a body that a Node sender wrote with `JSON.stringify` (pretty-printed or not):
//! whitespace outside strings removed, key order and every string and number kept as written.

use axum::http::HeaderMap;
use base64ct::{Base64, Base64Unpadded, Encoding};
use ring::signature::{ED25519, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};

use crate::config::GhlKeys;

/// The Ed25519 header.
pub const HEADER_ED25519: &str = "x-ghl-signature";
/// The legacy RSA header.
pub const HEADER_RSA: &str = "x-wh-signature";

/// Which header's signature held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Ed25519,
    Rsa,
}

/// What the signature was over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signed {
    /// The body as received.
    Raw,
    /// Its compact re-serialisation.
    Compact,
}

/// A signature that held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub scheme: Scheme,
    pub signed: Signed,
}

/// Why a body is not accepted as GHL's. Worded for the log: never a signature's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no signature header (x-ghl-signature or x-wh-signature)")]
    Missing,
    #[error(
        "only x-ghl-signature (Ed25519) came, and no ghl_ed25519_public_key_file is configured"
    )]
    NoEd25519Key,
    #[error("only the legacy x-wh-signature came, and ghl_accept_legacy_rsa = false refuses it")]
    LegacyRefused,
    #[error("the signature does not verify with the configured GHL key")]
    Invalid,
}

/// Checks that `body` is signed by GHL: Ed25519 first, then (if accepted) the legacy RSA
/// header; over the raw bytes, then over the compact form.
pub fn verify(
    headers: &HeaderMap,
    body: &[u8],
    keys: &GhlKeys,
) -> Result<Verified, SignatureError> {
    let ed = signatures(headers, HEADER_ED25519);
    let rsa = signatures(headers, HEADER_RSA);
    if ed.is_empty() && rsa.is_empty() {
        return Err(SignatureError::Missing);
    }
    let compacted = compact(body);
    let readings: [(Signed, &[u8]); 2] = [(Signed::Raw, body), (Signed::Compact, &compacted)];
    if let Some(key) = &keys.ed25519 {
        let key = UnparsedPublicKey::new(&ED25519, key);
        for (signed, bytes) in readings {
            if ed.iter().any(|sig| key.verify(bytes, sig).is_ok()) {
                return Ok(Verified {
                    scheme: Scheme::Ed25519,
                    signed,
                });
            }
        }
    }
    if keys.accept_legacy_rsa {
        let key = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &keys.rsa);
        for (signed, bytes) in readings {
            if rsa.iter().any(|sig| key.verify(bytes, sig).is_ok()) {
                return Ok(Verified {
                    scheme: Scheme::Rsa,
                    signed,
                });
            }
        }
    }
    Err(match (ed.is_empty(), rsa.is_empty()) {
        (false, true) if keys.ed25519.is_none() => SignatureError::NoEd25519Key,
        (true, false) if !keys.accept_legacy_rsa => SignatureError::LegacyRefused,
        _ => SignatureError::Invalid,
    })
}

/// The decoded signatures of every `name` header (padded or unpadded base64).
fn signatures(headers: &HeaderMap, name: &str) -> Vec<Vec<u8>> {
    headers
        .get_all(name)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter_map(|v| {
            Base64::decode_vec(v)
                .or_else(|_| Base64Unpadded::decode_vec(v))
                .ok()
        })
        .collect()
}

/// The JSON text without whitespace outside strings: `JSON.stringify(JSON.parse(text))` for a
/// text a JavaScript serialiser wrote. Not a canonical form (no key sorting, no re-escaping):
/// the point is to match GHL's Node sender, which keeps key order and writes strings its way.
pub fn compact(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for &b in text {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            if b == b'"' {
                in_string = true;
            }
            out.push(b);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use ring::rand::SystemRandom;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    fn ed_pair() -> Ed25519KeyPair {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap()
    }

    fn keys_for(pair: &Ed25519KeyPair) -> GhlKeys {
        GhlKeys {
            ed25519: Some(pair.public_key().as_ref().try_into().unwrap()),
            ..GhlKeys::default()
        }
    }

    fn header(name: &str, sig: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(&Base64::encode_string(sig)).unwrap(),
        );
        h
    }

    #[test]
    fn compact_removes_whitespace_outside_strings_only() {
        let pretty =
            b"{\n  \"type\": \"NoteDelete\",\n  \"body\": \"a  b\\\" \\\\ \",\n  \"n\": [1, 2]\n}";
        assert_eq!(
            compact(pretty),
            b"{\"type\":\"NoteDelete\",\"body\":\"a  b\\\" \\\\ \",\"n\":[1,2]}".to_vec()
        );
    }

    #[test]
    fn ed25519_over_raw_or_compact_bytes() {
        let pair = ed_pair();
        let keys = keys_for(&pair);
        let pretty = b"{\n  \"type\": \"ContactDelete\",\n  \"id\": \"c1\"\n}";
        let raw = pair.sign(pretty);
        assert_eq!(
            verify(&header(HEADER_ED25519, raw.as_ref()), pretty, &keys),
            Ok(Verified {
                scheme: Scheme::Ed25519,
                signed: Signed::Raw
            })
        );
        let over_compact = pair.sign(&compact(pretty));
        assert_eq!(
            verify(
                &header(HEADER_ED25519, over_compact.as_ref()),
                pretty,
                &keys
            ),
            Ok(Verified {
                scheme: Scheme::Ed25519,
                signed: Signed::Compact
            })
        );
        // A changed body, another key, no key, no header.
        assert_eq!(
            verify(&header(HEADER_ED25519, raw.as_ref()), b"{}", &keys),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            verify(
                &header(HEADER_ED25519, raw.as_ref()),
                pretty,
                &keys_for(&ed_pair())
            ),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            verify(
                &header(HEADER_ED25519, raw.as_ref()),
                pretty,
                &GhlKeys::default()
            ),
            Err(SignatureError::NoEd25519Key)
        );
        assert_eq!(
            verify(&HeaderMap::new(), pretty, &keys),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn rsa_over_raw_or_compact_bytes_with_a_configured_key() {
        use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
        let pair = RsaKeyPair::from_pkcs8(include_bytes!(
            "../../sandbox/ghl/TEST-ONLY-webhook-rsa-key.pk8.der"
        ))
        .unwrap();
        let sign = |msg: &[u8]| {
            let mut sig = vec![0; pair.public().modulus_len()];
            pair.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), msg, &mut sig)
                .unwrap();
            sig
        };
        let keys = GhlKeys {
            rsa: pair.public_key().as_ref().to_vec(),
            ..GhlKeys::default()
        };
        let pretty = b"{\n  \"type\": \"TaskComplete\"\n}";
        for (bytes, signed) in [
            (pretty.to_vec(), Signed::Raw),
            (compact(pretty), Signed::Compact),
        ] {
            assert_eq!(
                verify(&header(HEADER_RSA, &sign(&bytes)), pretty, &keys),
                Ok(Verified {
                    scheme: Scheme::Rsa,
                    signed
                })
            );
        }
        // The published key (the default) does not take a test key's signature.
        assert_eq!(
            verify(
                &header(HEADER_RSA, &sign(pretty)),
                pretty,
                &GhlKeys::default()
            ),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn the_legacy_header_is_refused_when_configured_so() {
        let pair = ed_pair();
        let keys = GhlKeys {
            accept_legacy_rsa: false,
            ..keys_for(&pair)
        };
        // A signature over the body with the published key cannot be made here; any value
        // shows the switch is consulted before the key.
        assert_eq!(
            verify(&header(HEADER_RSA, &[1u8; 512]), b"{}", &keys),
            Err(SignatureError::LegacyRefused)
        );
        assert_eq!(
            verify(&header(HEADER_RSA, &[1u8; 512]), b"{}", &GhlKeys::default()),
            Err(SignatureError::Invalid)
        );
    }
}
