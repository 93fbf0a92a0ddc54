//! The public keys GHL's webhooks are verified with (`[webhooks] ghl_public_key_file`,
//! `ghl_ed25519_public_key_file`), read and checked once, at load, into the byte forms `ring`
//! verifies with. Public keys are no secret: the files need not be private.
//!
//! Accepted forms, since the reference shows only the PEM of the RSA key:
//! - RSA: PEM `PUBLIC KEY` (SubjectPublicKeyInfo, as GHL publishes it) or `RSA PUBLIC KEY`
//!   (PKCS#1), or the DER of either; at least 2048 bits (ring verifies 2048-8192).
//! - Ed25519: PEM `PUBLIC KEY`, its DER, the 32 raw bytes, or those 32 bytes in base64 on one line.

use base64ct::{Base64, Encoding};

/// The RSA key GHL publishes for `x-wh-signature` (WebhookAuthentication.md): the default.
pub const PUBLISHED_RSA_KEY_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIICIjANBgkqhkiG9w0BAQEFAAOCAg8AMIICCgKCAgEAokvo/r9tVgcfZ5DysOSC
Frm602qYV0MaAiNnX9O8KxMbiyRKWeL9JpCpVpt4XHIcBOK4u3cLSqJGOLaPuXw6
dO0t6Q/ZVdAV5Phz+ZtzPL16iCGeK9po6D6JHBpbi989mmzMryUnQJezlYJ3DVfB
csedpinheNnyYeFXolrJvcsjDtfAeRx5ByHQmTnSdFUzuAnC9/GepgLT9SM4nCpv
uxmZMxrJt5Rw+VUaQ9B8JSvbMPpez4peKaJPZHBbU3OdeCVx5klVXXZQGNHOs8gF
3kvoV5rTnXV0IknLBXlcKKAQLZcY/Q9rG6Ifi9c+5vqlvHPCUJFT5XUGG5RKgOKU
J062fRtN+rLYZUV+BjafxQauvC8wSWeYja63VSUruvmNj8xkx2zE/Juc+yjLjTXp
IocmaiFeAO6fUtNjDeFVkhf5LNb59vECyrHD2SQIrhgXpO4Q3dVNA5rw576PwTzN
h/AMfHKIjE4xQA1SZuYJmNnmVZLIZBlQAF9Ntd03rfadZ+yDiOXCCs9FkHibELhC
HULgCsnuDJHcrGNd5/Ddm5hxGQ0ASitgHeMZ0kcIOwKDOzOU53lDza6/Y09T7sYJ
PQe7z0cvj7aE4B+Ax1ZoZGPzpJlZtGXCsu9aTEGEnKzmsFqwcSsnw3JB31IGKAyk
T1hhTiaCeIY/OwwwNUY2yvcCAwEAAQ==
-----END PUBLIC KEY-----
";

/// rsaEncryption, 1.2.840.113549.1.1.1.
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// id-Ed25519, 1.3.101.112.
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// The verification keys of GHL's webhooks.
#[derive(Clone, PartialEq, Eq)]
pub struct GhlKeys {
    /// PKCS#1 `RSAPublicKey` DER, for `x-wh-signature`.
    pub rsa: Vec<u8>,
    /// The raw 32-byte key, for `x-ghl-signature`; `None`: that header cannot be verified.
    pub ed25519: Option<[u8; 32]>,
    /// Whether `x-wh-signature` (RSA, announced for retirement) is accepted at all.
    pub accept_legacy_rsa: bool,
}

impl Default for GhlKeys {
    fn default() -> GhlKeys {
        GhlKeys {
            rsa: parse_rsa(PUBLISHED_RSA_KEY_PEM.as_bytes()).expect("the published GHL key parses"),
            ed25519: None,
            accept_legacy_rsa: true,
        }
    }
}

/// Sizes and switches only: the keys are public, but a wall of bytes helps no one.
impl std::fmt::Debug for GhlKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GhlKeys")
            .field("rsa_der_bytes", &self.rsa.len())
            .field("ed25519", &self.ed25519.is_some())
            .field("accept_legacy_rsa", &self.accept_legacy_rsa)
            .finish()
    }
}

/// Why a key file is not a usable key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the PEM block is not valid base64")]
    PemBase64,
    #[error("a PEM block of type {0:?}, where a public key was expected")]
    PemLabel(String),
    #[error("not a DER-encoded public key ({0})")]
    Der(&'static str),
    #[error("a public key of another algorithm (expected {0})")]
    Algorithm(&'static str),
    #[error("an RSA key of {0} bits; at least 2048 are needed")]
    RsaTooSmall(usize),
    #[error("not an Ed25519 public key (PEM, DER, 32 raw bytes, or their base64)")]
    Ed25519Form,
}

/// Reads an RSA public key in any accepted form into PKCS#1 DER.
pub fn parse_rsa(bytes: &[u8]) -> Result<Vec<u8>, KeyError> {
    let (label, der) = match pem(bytes)? {
        Some((label, der)) => (Some(label), der),
        None => (None, bytes.to_vec()),
    };
    let pkcs1 = match label.as_deref() {
        Some("RSA PUBLIC KEY") => der,
        Some("PUBLIC KEY") => spki(&der, OID_RSA, "RSA")?,
        Some(other) => return Err(KeyError::PemLabel(other.to_string())),
        None => match spki(&der, OID_RSA, "RSA") {
            Ok(k) => k,
            Err(KeyError::Algorithm(a)) => return Err(KeyError::Algorithm(a)),
            Err(_) => der,
        },
    };
    let bits = rsa_modulus_bits(&pkcs1)?;
    if bits < 2048 {
        return Err(KeyError::RsaTooSmall(bits));
    }
    Ok(pkcs1)
}

/// Reads an Ed25519 public key in any accepted form into its 32 bytes.
pub fn parse_ed25519(bytes: &[u8]) -> Result<[u8; 32], KeyError> {
    let raw = match pem(bytes)? {
        Some((label, der)) if label == "PUBLIC KEY" => spki(&der, OID_ED25519, "Ed25519")?,
        Some((label, _)) => return Err(KeyError::PemLabel(label)),
        None if bytes.len() == 32 => bytes.to_vec(),
        None => match spki(bytes, OID_ED25519, "Ed25519") {
            Ok(k) => k,
            Err(KeyError::Algorithm(a)) => return Err(KeyError::Algorithm(a)),
            Err(_) => {
                let text = std::str::from_utf8(bytes).map_err(|_| KeyError::Ed25519Form)?;
                Base64::decode_vec(text.trim()).map_err(|_| KeyError::Ed25519Form)?
            }
        },
    };
    <[u8; 32]>::try_from(raw.as_slice()).map_err(|_| KeyError::Ed25519Form)
}

/// The label and DER of the first PEM block, if `bytes` is PEM.
fn pem(bytes: &[u8]) -> Result<Option<(String, Vec<u8>)>, KeyError> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Ok(None);
    };
    let Some(start) = text.find("-----BEGIN ") else {
        return Ok(None);
    };
    let rest = &text[start + "-----BEGIN ".len()..];
    let Some(end_label) = rest.find("-----") else {
        return Ok(None);
    };
    let label = rest[..end_label].to_string();
    let body = &rest[end_label + 5..];
    let body = &body[..body.find("-----END").unwrap_or(body.len())];
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let der = Base64::decode_vec(&b64).map_err(|_| KeyError::PemBase64)?;
    Ok(Some((label, der)))
}

/// One DER element: (tag, content, rest).
fn der(input: &[u8]) -> Result<(u8, &[u8], &[u8]), KeyError> {
    let (&tag, rest) = input.split_first().ok_or(KeyError::Der("truncated"))?;
    let (&first, rest) = rest.split_first().ok_or(KeyError::Der("truncated"))?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err(KeyError::Der("bad length"));
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(KeyError::Der("truncated"));
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

/// The key bytes of a SubjectPublicKeyInfo whose algorithm is `oid`.
fn spki(input: &[u8], oid: &[u8], name: &'static str) -> Result<Vec<u8>, KeyError> {
    let (tag, seq, _) = der(input)?;
    if tag != 0x30 {
        return Err(KeyError::Der("not a SEQUENCE"));
    }
    let (tag, algorithm, rest) = der(seq)?;
    if tag != 0x30 {
        return Err(KeyError::Der("no AlgorithmIdentifier"));
    }
    let (tag, found, _) = der(algorithm)?;
    if tag != 0x06 {
        return Err(KeyError::Der("no algorithm OID"));
    }
    if found != oid {
        return Err(KeyError::Algorithm(name));
    }
    let (tag, bits, _) = der(rest)?;
    match bits.split_first() {
        Some((0, key)) if tag == 0x03 => Ok(key.to_vec()),
        _ => Err(KeyError::Der("no BIT STRING key")),
    }
}

/// The bit length of a PKCS#1 `RSAPublicKey`'s modulus (checking its shape).
fn rsa_modulus_bits(pkcs1: &[u8]) -> Result<usize, KeyError> {
    let (tag, seq, _) = der(pkcs1)?;
    if tag != 0x30 {
        return Err(KeyError::Der("not an RSAPublicKey"));
    }
    let (tag, n, rest) = der(seq)?;
    let (etag, e, _) = der(rest)?;
    if tag != 0x02 || etag != 0x02 || e.is_empty() {
        return Err(KeyError::Der("not an RSAPublicKey"));
    }
    let n = match n.iter().position(|b| *b != 0) {
        Some(i) => &n[i..],
        None => return Err(KeyError::Der("a zero modulus")),
    };
    Ok(n.len() * 8 - n[0].leading_zeros() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_key_is_4096_bit_rsa() {
        let k = parse_rsa(PUBLISHED_RSA_KEY_PEM.as_bytes()).unwrap();
        assert_eq!(rsa_modulus_bits(&k).unwrap(), 4096);
        // Its DER, and the PKCS#1 inside, read the same.
        let (_, spki_der) = pem(PUBLISHED_RSA_KEY_PEM.as_bytes()).unwrap().unwrap();
        assert_eq!(parse_rsa(&spki_der).unwrap(), k);
        assert_eq!(parse_rsa(&k).unwrap(), k);
        let pkcs1_pem = format!(
            "-----BEGIN RSA PUBLIC KEY-----\n{}\n-----END RSA PUBLIC KEY-----\n",
            Base64::encode_string(&k)
        );
        assert_eq!(parse_rsa(pkcs1_pem.as_bytes()).unwrap(), k);
    }

    #[test]
    fn ed25519_in_every_form() {
        let raw = [7u8; 32];
        let mut spki_der = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        spki_der.extend_from_slice(&raw);
        let pem_text = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            Base64::encode_string(&spki_der)
        );
        for form in [
            raw.to_vec(),
            spki_der.clone(),
            pem_text.into_bytes(),
            format!("{}\n", Base64::encode_string(&raw)).into_bytes(),
        ] {
            assert_eq!(parse_ed25519(&form).unwrap(), raw);
        }
        // An RSA key where an Ed25519 one is expected, and the other way round.
        assert_eq!(
            parse_ed25519(PUBLISHED_RSA_KEY_PEM.as_bytes()),
            Err(KeyError::Algorithm("Ed25519"))
        );
        assert_eq!(parse_rsa(&spki_der), Err(KeyError::Algorithm("RSA")));
        assert!(parse_rsa(b"not a key").is_err());
    }
}
