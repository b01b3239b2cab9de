//! Secrets that never print: signing keys, webhook secrets, the agent-token secret.
//!
//! A thin name over `secrecy`'s [`SecretString`]: its `Debug` is redacted, it has no
//! `Display`, and the memory is zeroed when dropped. What this adds is reading one from a file.

use std::path::Path;

use secrecy::{ExposeSecret, SecretString};

/// A secret value. `Debug` shows it redacted; only [`Secret::expose`] reads it.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(SecretString);

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read the secret file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// Reads a secret from a file, trimming the trailing newline editors add.
    pub fn from_file(path: &Path) -> Result<Self, SecretError> {
        std::fs::read_to_string(path)
            .map(|text| Self::new(text.trim_end_matches(['\n', '\r'])))
            .map_err(|source| SecretError::File {
                path: path.display().to_string(),
                source,
            })
    }

    /// The value itself. Call sites of this are the only places a secret is used.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}
