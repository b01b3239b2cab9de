//! `X-PARTNER-SIGN`: signing what we send to Smart Glocal and verifying what it sends us.
//!
//! Two schemes are in the wild, chosen by configuration:
//! - `rsa-sha256`: RSASSA-PKCS1-v1_5 over SHA-256, base64. Requests are signed with the
//!   merchant's private key; webhooks are verified with Smart Glocal's public key.
//! - `hmac-sha256`: HMAC-SHA256 with a shared secret, lower-case hex, compared in constant time.
//!
//! Both always work on the exact bytes on the wire: callers sign the bytes they send and
//! verify the bytes they received, never a re-serialisation.

mod secret;

use std::sync::Arc;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use ring::rand::SystemRandom;
use ring::signature::{self, RsaKeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

pub use secret::{Secret, SecretError};

type HmacSha256 = Hmac<Sha256>;

/// Which signature scheme a peer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scheme {
    #[serde(rename = "rsa-sha256")]
    RsaSha256,
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
}

impl Scheme {
    pub fn as_str(&self) -> &'static str {
        match self {
            Scheme::RsaSha256 => "rsa-sha256",
            Scheme::HmacSha256 => "hmac-sha256",
        }
    }
}

impl std::fmt::Display for Scheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Scheme {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "rsa-sha256" => Ok(Scheme::RsaSha256),
            "hmac-sha256" => Ok(Scheme::HmacSha256),
            other => Err(format!(
                "unknown signing scheme `{other}`: expected rsa-sha256 or hmac-sha256"
            )),
        }
    }
}

/// A key that could not be loaded. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not PEM: {0}")]
    NotPem(String),
    #[error("PEM block `{0}` is not an RSA key of the expected kind (private: PRIVATE KEY or RSA PRIVATE KEY; public: PUBLIC KEY or RSA PUBLIC KEY)")]
    WrongBlock(String),
    #[error("the RSA key was rejected: {0}")]
    Rejected(String),
    #[error("the HMAC secret is empty")]
    EmptySecret,
}

/// Why a signature did not verify. Deliberately vague: the caller answers 401 either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no signature")]
    Missing,
    #[error("the signature is not well-formed")]
    Malformed,
    #[error("the signature does not match the body")]
    Mismatch,
}

/// Signs outgoing bodies.
#[derive(Clone)]
pub enum Signer {
    Rsa(Arc<RsaKeyPair>),
    Hmac(Secret),
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.scheme())
    }
}

impl Signer {
    /// An RSA private key in PEM: PKCS#8 (`PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`).
    pub fn rsa_from_pem(pem_text: &str) -> Result<Self, KeyError> {
        let block = pem::parse(pem_text).map_err(|e| KeyError::NotPem(e.to_string()))?;
        let pair = match block.tag() {
            "PRIVATE KEY" => RsaKeyPair::from_pkcs8(block.contents()),
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(block.contents()),
            other => return Err(KeyError::WrongBlock(other.to_owned())),
        }
        .map_err(|e| KeyError::Rejected(e.to_string()))?;
        Ok(Signer::Rsa(Arc::new(pair)))
    }

    pub fn hmac(secret: Secret) -> Result<Self, KeyError> {
        if secret.expose().is_empty() {
            return Err(KeyError::EmptySecret);
        }
        Ok(Signer::Hmac(secret))
    }

    /// A signer of `scheme` from key text: PEM for RSA, the secret itself for HMAC.
    pub fn from_key(scheme: Scheme, key: Secret) -> Result<Self, KeyError> {
        match scheme {
            Scheme::RsaSha256 => Self::rsa_from_pem(key.expose()),
            Scheme::HmacSha256 => Self::hmac(key),
        }
    }

    pub fn scheme(&self) -> Scheme {
        match self {
            Signer::Rsa(_) => Scheme::RsaSha256,
            Signer::Hmac(_) => Scheme::HmacSha256,
        }
    }

    /// The `X-PARTNER-SIGN` value for these exact bytes.
    pub fn sign(&self, body: &[u8]) -> String {
        match self {
            Signer::Rsa(pair) => {
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    body,
                    &mut signature,
                )
                // Only fails for a buffer of the wrong length, which modulus_len rules out.
                .expect("RSA signing with a correctly sized buffer");
                base64::engine::general_purpose::STANDARD.encode(signature)
            }
            Signer::Hmac(secret) => hex::encode(hmac_tag(secret, body)),
        }
    }
}

fn hmac_tag(secret: &Secret, body: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// Verifies incoming bodies.
#[derive(Clone)]
pub enum Verifier {
    /// PKCS#1 `RSAPublicKey` DER, which is what ring verifies against.
    Rsa(Arc<Vec<u8>>),
    Hmac(Secret),
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Verifier({})", self.scheme())
    }
}

impl Verifier {
    /// An RSA public key in PEM: SPKI (`PUBLIC KEY`) or PKCS#1 (`RSA PUBLIC KEY`).
    pub fn rsa_from_pem(pem_text: &str) -> Result<Self, KeyError> {
        let block = pem::parse(pem_text).map_err(|e| KeyError::NotPem(e.to_string()))?;
        let pkcs1 = match block.tag() {
            "PUBLIC KEY" => {
                let spki = spki::SubjectPublicKeyInfoRef::try_from(block.contents())
                    .map_err(|e| KeyError::Rejected(e.to_string()))?;
                spki.subject_public_key
                    .as_bytes()
                    .ok_or_else(|| KeyError::Rejected("unaligned key bits".into()))?
                    .to_vec()
            }
            "RSA PUBLIC KEY" => block.contents().to_vec(),
            other => return Err(KeyError::WrongBlock(other.to_owned())),
        };
        if pkcs1.is_empty() {
            return Err(KeyError::Rejected("empty key".into()));
        }
        Ok(Verifier::Rsa(Arc::new(pkcs1)))
    }

    pub fn hmac(secret: Secret) -> Result<Self, KeyError> {
        if secret.expose().is_empty() {
            return Err(KeyError::EmptySecret);
        }
        Ok(Verifier::Hmac(secret))
    }

    /// A verifier of `scheme` from key text: PEM for RSA, the secret itself for HMAC.
    pub fn from_key(scheme: Scheme, key: Secret) -> Result<Self, KeyError> {
        match scheme {
            Scheme::RsaSha256 => Self::rsa_from_pem(key.expose()),
            Scheme::HmacSha256 => Self::hmac(key),
        }
    }

    pub fn scheme(&self) -> Scheme {
        match self {
            Verifier::Rsa(_) => Scheme::RsaSha256,
            Verifier::Hmac(_) => Scheme::HmacSha256,
        }
    }

    /// Checks `signature` (the `X-PARTNER-SIGN` value) against these exact bytes.
    pub fn verify(&self, body: &[u8], signature: Option<&str>) -> Result<(), SignatureError> {
        let signature = signature
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or(SignatureError::Missing)?;
        match self {
            Verifier::Rsa(public_key) => {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(signature)
                    .map_err(|_| SignatureError::Malformed)?;
                UnparsedPublicKey::new(
                    &signature::RSA_PKCS1_2048_8192_SHA256,
                    public_key.as_slice(),
                )
                .verify(body, &raw)
                .map_err(|_| SignatureError::Mismatch)
            }
            Verifier::Hmac(secret) => {
                let raw = hex::decode(signature).map_err(|_| SignatureError::Malformed)?;
                let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes())
                    .expect("HMAC takes keys of any length");
                mac.update(body);
                // `verify_slice` compares in constant time.
                mac.verify_slice(&raw).map_err(|_| SignatureError::Mismatch)
            }
        }
    }
}
