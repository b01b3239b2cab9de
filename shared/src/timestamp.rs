//! Smart Glocal's timestamps: RFC 3339 in UTC with microseconds, `2024-05-27T02:03:00.000000Z`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

/// An instant, written the way Smart Glocal writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    pub fn from_offset_date_time(at: OffsetDateTime) -> Self {
        Self(at.to_offset(UtcOffset::UTC))
    }

    /// Milliseconds since the Unix epoch (out of `time`'s range: the epoch itself).
    pub fn from_unix_millis(millis: i64) -> Self {
        let nanos = i128::from(millis) * 1_000_000;
        Self(OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH))
    }

    pub fn unix_millis(&self) -> i64 {
        // `time` keeps years within ±9999, whose milliseconds fit an i64 many times over.
        i64::try_from(self.0.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
    }

    pub fn as_offset_date_time(&self) -> OffsetDateTime {
        self.0
    }

    pub fn parse(text: &str) -> Result<Self, time::error::Parse> {
        OffsetDateTime::parse(text, &Rfc3339).map(Self::from_offset_date_time)
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let format = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
        );
        let text = self.0.format(&format).map_err(|_| std::fmt::Error)?;
        f.write_str(&text)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        // A fixed message: `time`'s own parse errors would carry their formatting code into
        // the widget's wasm for an answer the proxy never sends.
        Self::parse(&text).map_err(|_| serde::de::Error::custom("not an RFC 3339 timestamp"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smart_glocal_timestamps_round_trip_with_microseconds() {
        let at = Timestamp::parse("2024-05-27T02:03:00.000000Z").unwrap();
        assert_eq!(at.to_string(), "2024-05-27T02:03:00.000000Z");
        let later = Timestamp::parse("2024-05-27T02:03:00.123456Z").unwrap();
        assert!(later > at);
        assert_eq!(later.to_string(), "2024-05-27T02:03:00.123456Z");
    }
}
