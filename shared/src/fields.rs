//! The refund submission's own fields, each valid once it exists: an [`IdempotencyKey`],
//! an [`AttemptId`], a [`Note`]. Read from JSON, a field that breaks its rule fails the whole
//! request with a [`FieldError`] naming the rule's [`ErrorCode`], so the proxy answers with
//! that code and nothing downstream checks the field again.

use serde::{Deserialize, Deserializer, Serialize};

use crate::api::ErrorCode;

/// Longest note an agent may attach to a refund, in characters.
pub const NOTE_MAX_CHARS: usize = 500;

/// A field that breaks its rule. Its text carries the code in brackets
/// (`[invalid_idempotency_key] …`): JSON errors can only carry text, and
/// [`FieldError::code_in`] reads it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldError(pub ErrorCode);

/// The codes a field can fail with.
const FIELD_CODES: [ErrorCode; 4] = [
    ErrorCode::InvalidIdempotencyKey,
    ErrorCode::NoteTooLong,
    ErrorCode::NoteRequired,
    ErrorCode::InvalidRequest,
];

impl FieldError {
    /// The code a JSON error's own message carries, if a field of ours failed: the message
    /// starts with it. (Only at the start: elsewhere it could be the input itself, echoed in
    /// a message such as "unknown variant `[note_too_long]`".)
    pub fn code_in(message: &str) -> Option<ErrorCode> {
        FIELD_CODES
            .into_iter()
            .find(|code| message.starts_with(&format!("[{}] ", code.name())))
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rule = match self.0 {
            ErrorCode::InvalidIdempotencyKey => "16 to 64 letters, digits, `-` or `_`",
            ErrorCode::NoteTooLong => "a note has at most 500 characters",
            ErrorCode::NoteRequired => "reason `other` needs a note",
            _ => "invalid",
        };
        write!(f, "[{}] {rule}", self.0.name())
    }
}

impl std::error::Error for FieldError {}

/// Deserialises `T` from a string through its checked constructor.
fn checked<'de, D, T>(
    deserializer: D,
    parse: fn(&str) -> Result<T, FieldError>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
    parse(&text).map_err(serde::de::Error::custom)
}

/// The key the widget makes when the agent opens the confirmation: the same key means the
/// same intent. 16 to 64 of `A-Z a-z 0-9 - _`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// A fresh key from 128 random bits, as 32 hex digits.
    pub fn from_random(bits: u128) -> Self {
        Self(format!("{bits:032x}"))
    }

    pub fn parse(text: &str) -> Result<Self, FieldError> {
        let valid = (16..=64).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(FieldError(ErrorCode::InvalidIdempotencyKey))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for IdempotencyKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        checked(deserializer, Self::parse)
    }
}

impl std::fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The proxy's id for one refund attempt, `att_` and 32 hex digits; Smart Glocal sees it in
/// the refund's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct AttemptId(String);

impl<'de> Deserialize<'de> for AttemptId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        checked_attempt_id(&text)
    }
}

fn checked_attempt_id<E: serde::de::Error>(text: &str) -> Result<AttemptId, E> {
    AttemptId::parse(text)
        .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(text), &"an attempt id (att_…)"))
}

impl AttemptId {
    pub const PREFIX: &'static str = "att_";

    /// A fresh id from 128 random bits, as hex.
    pub fn from_random(bits: u128) -> Self {
        Self(format!("{}{bits:032x}", Self::PREFIX))
    }

    /// An id as written by [`AttemptId::from_random`], or `None`.
    pub fn parse(text: &str) -> Option<Self> {
        let hex = text.strip_prefix(Self::PREFIX)?;
        (hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for AttemptId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The agent's note: trimmed, at most [`NOTE_MAX_CHARS`] characters, no control characters
/// but line breaks and tabs, never empty (an empty note is no note: `Option<Note>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Note(String);

impl Note {
    /// `None` for an empty (or blank) note, else the trimmed note if it is short enough and
    /// holds no control character but `\n`, `\r` and `\t`. (A NUL, which PostgreSQL's text
    /// cannot hold, would fail the refund's commit there after SQLite took it.)
    pub fn parse(text: &str) -> Result<Option<Self>, FieldError> {
        let text = text.trim();
        if text.chars().count() > NOTE_MAX_CHARS {
            return Err(FieldError(ErrorCode::NoteTooLong));
        }
        if has_control(text) {
            return Err(FieldError(ErrorCode::InvalidRequest));
        }
        Ok((!text.is_empty()).then(|| Self(text.to_owned())))
    }

    /// A note as an agent typed it in the widget: the control characters a paste can bring
    /// along (and nobody sees) are left out rather than refused, then [`Note::parse`].
    pub fn typed(text: &str) -> Result<Option<Self>, FieldError> {
        Self::parse(&text.replace(stray, ""))
    }

    /// A note as the ledger holds it, kept as it was written: one taken before notes
    /// refused control characters still reads (and its export escapes them).
    pub fn recorded(text: &str) -> Option<Self> {
        (!text.is_empty()).then(|| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `text` holds a control character (`char::is_control`) other than `\t`, `\n`, `\r`.
/// (Not inlined: one copy serves every note the widget checks.)
#[inline(never)]
fn has_control(text: &str) -> bool {
    text.contains(stray)
}

/// A control character other than `\t`, `\n` or `\r`.
fn stray(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

/// Reads `"note"`: a blank note is no note, a long one fails the request.
pub(crate) fn optional_note<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Note>, D::Error> {
    match Option::<std::borrow::Cow<'de, str>>::deserialize(deserializer)? {
        None => Ok(None),
        Some(text) => Note::parse(&text).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_follow_their_rule() {
        let fresh = IdempotencyKey::from_random(u128::MAX);
        assert_eq!(IdempotencyKey::parse(fresh.as_str()), Ok(fresh));
        assert!(IdempotencyKey::parse(IdempotencyKey::from_random(0).as_str()).is_ok());
        assert!(IdempotencyKey::parse("0123456789abcdef").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(64)).is_ok());
        for bad in [
            "",
            "short",
            "0123456789abcde",
            "0123456789abcdef!",
            "ключ-ключ-ключ-ключ",
        ] {
            assert_eq!(
                IdempotencyKey::parse(bad),
                Err(FieldError(ErrorCode::InvalidIdempotencyKey)),
                "{bad:?}"
            );
        }
        assert!(IdempotencyKey::parse(&"k".repeat(65)).is_err());
    }

    #[test]
    fn notes_are_trimmed_bounded_and_blank_is_none() {
        assert_eq!(Note::parse("  hi \n").unwrap().unwrap().as_str(), "hi");
        assert_eq!(Note::parse(" \t ").unwrap(), None);
        assert!(Note::parse(&"é".repeat(NOTE_MAX_CHARS)).unwrap().is_some());
        assert!(Note::parse("line one\r\n\tline two").unwrap().is_some());
        // Typed: what a paste brought along is left out, the rest kept.
        assert_eq!(
            Note::typed("\u{1b}[31mcharged\0 twice\u{b}\n\tsee 42")
                .unwrap()
                .unwrap()
                .as_str(),
            "[31mcharged twice\n\tsee 42"
        );
        assert_eq!(Note::typed("\u{7}\u{0}"), Ok(None));
        for control in ['\0', '\u{7}', '\u{1b}', '\u{7f}', '\u{85}'] {
            assert_eq!(
                Note::parse(&format!("bad {control} note")),
                Err(FieldError(ErrorCode::InvalidRequest)),
                "{control:?}"
            );
        }
        assert_eq!(
            Note::parse(&"é".repeat(NOTE_MAX_CHARS + 1)),
            Err(FieldError(ErrorCode::NoteTooLong))
        );
    }

    #[test]
    fn attempt_ids_round_trip() {
        let id = AttemptId::from_random(0xabc);
        assert_eq!(id.as_str(), "att_00000000000000000000000000000abc");
        assert_eq!(AttemptId::parse(id.as_str()), Some(id));
        for bad in ["att_", "att_xyz", "rf_00000000000000000000000000000abc", ""] {
            assert_eq!(AttemptId::parse(bad), None, "{bad:?}");
        }
    }

    /// The code survives the trip through a JSON error's text.
    #[test]
    fn a_field_error_names_its_code_through_json() {
        let error = serde_json::from_str::<IdempotencyKey>("\"nope\"").unwrap_err();
        assert_eq!(
            FieldError::code_in(&error.to_string()),
            Some(ErrorCode::InvalidIdempotencyKey)
        );
        assert_eq!(FieldError::code_in("expected a string at line 1"), None);
        // A body that names a code where serde echoes it claims nothing.
        let echoed =
            serde_json::from_str::<crate::api::RefundReason>("\"[note_too_long] x\"").unwrap_err();
        assert_eq!(FieldError::code_in(&echoed.to_string()), None, "{echoed}");
    }
}
