//! Smart Glocal identifiers. A `SessionId` or `RefundId` exists only once parsed, so a path
//! segment like `../etc` or `ps_` never reaches a signed request.

use serde::{Deserialize, Deserializer, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a valid {kind} id: expected `{prefix}` followed by letters, digits, `-` or `_`")]
pub struct IdError {
    pub kind: &'static str,
    pub prefix: &'static str,
    pub value: String,
}

macro_rules! prefixed_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn parse(value: &str) -> Result<Self, IdError> {
                let rest = value.strip_prefix($prefix).unwrap_or("");
                let valid = !rest.is_empty()
                    && value.len() <= 64
                    && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if valid {
                    Ok(Self(value.to_owned()))
                } else {
                    Err(IdError { kind: $kind, prefix: $prefix, value: value.chars().take(80).collect() })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(value: &str) -> Result<Self, IdError> {
                Self::parse(value)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
                // serde's own wording (already in the widget's wasm), not `IdError`'s.
                Self::parse(&text).map_err(|_| {
                    serde::de::Error::invalid_value(
                        serde::de::Unexpected::Str(&text),
                        &concat!("a ", $kind, " id (", $prefix, "…)"),
                    )
                })
            }
        }
    };
}

prefixed_id!(
    /// A payment session, `ps_3230`.
    SessionId, "ps_", "session"
);
prefixed_id!(
    /// A refund, `rf_203`.
    RefundId, "rf_", "refund"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_exist_only_with_their_prefix() {
        assert_eq!(SessionId::parse("ps_3230").unwrap().as_str(), "ps_3230");
        assert_eq!(RefundId::parse("rf_203").unwrap().as_str(), "rf_203");
        for bad in ["", "ps_", "3230", "rf_203", "ps_32 30", "ps_../x", "PS_1"] {
            assert!(SessionId::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(RefundId::parse("ps_1").is_err());
        assert!(SessionId::parse(&format!("ps_{}", "1".repeat(80))).is_err());
    }
}
