//! Money: an integer number of minor units plus an ISO 4217 currency. Never a float.
//!
//! The minor-unit exponent comes from `iso_currency`'s maintained table, so JPY takes no
//! decimals and KWD takes three. [`Money::parse`] reads what an agent types, per locale;
//! [`Money::format`] writes it back the same way, and the two round-trip. `format` is the one
//! formatter of money on screen: `$100.00`, `¥12,000`, `KWD 12.500` in English (the symbol
//! first, as English-speaking hosts and Stripe write it); `100,00 $`, `12 000 ¥` in Russian.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The largest amount we accept: it must fit SQLite's signed 64-bit integers.
pub const MAX_MINOR_UNITS: u64 = i64::MAX.unsigned_abs();

/// An amount as the ledger stores it (a signed 64-bit integer), or `None` when it does not
/// fit: the one checked door from the wire's `u64` into storage.
pub fn to_stored(amount: u64) -> Option<i64> {
    i64::try_from(amount).ok()
}

/// An amount read back from storage, or `None` for a negative value (never written by us:
/// only a hand-edited file or a bug could hold one).
pub fn from_stored(stored: i64) -> Option<u64> {
    u64::try_from(stored).ok()
}

/// An ISO 4217 currency, lower-case on the wire (`"usd"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency(iso_currency::Currency);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an ISO 4217 currency code")]
pub struct UnknownCurrency(pub String);

impl Currency {
    pub fn parse(code: &str) -> Result<Self, UnknownCurrency> {
        let code = code.trim();
        // Walked, not `from_code`: its string match costs the widget's wasm 5 KB.
        <iso_currency::Currency as iso_currency::IntoEnumIterator>::iter()
            .find(|currency| currency.code().eq_ignore_ascii_case(code))
            .map(Self)
            .ok_or_else(|| UnknownCurrency(code.chars().take(16).collect()))
    }

    /// Lower-case code, as Smart Glocal writes it: `usd`.
    pub fn code(&self) -> String {
        self.0.code().to_ascii_lowercase()
    }

    /// Digits after the decimal point: 2 for USD, 0 for JPY, 3 for KWD.
    pub fn exponent(&self) -> u32 {
        // Funds and metals have no minor unit in the table; they are never payment currencies,
        // and treating them as whole units is the safe reading.
        self.0.exponent().map(u32::from).unwrap_or(0)
    }

    /// What a person reads next to an amount: a symbol where one is unambiguous, else the code.
    pub fn symbol(&self) -> String {
        match self.0.code() {
            "USD" => "$".into(),
            "EUR" => "€".into(),
            "GBP" => "£".into(),
            "JPY" => "¥".into(),
            "RUB" => "₽".into(),
            other => other.into(),
        }
    }

    /// The symbol English writes before the number with no space (`$100.00`); other
    /// currencies are written with their code (`KWD 12.500`), which no reader mistakes.
    fn en_prefix(&self) -> Option<&'static str> {
        match self.0.code() {
            "USD" => Some("$"),
            "EUR" => Some("€"),
            "GBP" => Some("£"),
            "JPY" => Some("¥"),
            _ => None,
        }
    }

    /// An example amount valid in this currency (`10.50`, `10`, `10.500`), for hints.
    pub fn example(&self, locale: Locale) -> String {
        let exponent = self.exponent();
        let half = if exponent > 0 {
            5 * 10u64.pow(exponent - 1)
        } else {
            0
        };
        Money::new(10 * 10u64.pow(exponent) + half, *self).format_number(locale)
    }

    /// Strips this currency's symbol or code from either end of typed text, so `$10`,
    /// `10 USD` and `usd 10` read as `10`. Another currency's sign is left, and refused later.
    fn strip_affixes<'a>(&self, text: &'a str) -> &'a str {
        let symbol = self.symbol();
        let mut text = text;
        for sign in [symbol.as_str(), self.0.code()] {
            if let Some(rest) = strip_prefix_ignore_case(text, sign) {
                text = rest;
            }
            if let Some(rest) = strip_suffix_ignore_case(text, sign) {
                text = rest;
            }
            text = text.trim_matches(|c: char| c.is_whitespace() || SPACES.contains(&c));
        }
        text
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

fn strip_suffix_ignore_case<'a>(text: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = text.len().checked_sub(suffix.len())?;
    let tail = text.get(cut..)?;
    tail.eq_ignore_ascii_case(suffix).then(|| &text[..cut])
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.code())
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        // serde's own wording (already in the widget's wasm), not our error's formatting.
        Self::parse(&text).map_err(|_| {
            serde::de::Error::invalid_value(
                serde::de::Unexpected::Str(&text),
                &"an ISO 4217 currency code",
            )
        })
    }
}

/// How numbers are written: `1,000.50` (en) or `1 000,50` (ru).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    #[default]
    En,
    Ru,
}

impl Locale {
    /// `ru`, `ru-RU`, `RU` → Russian; anything else → English.
    pub fn from_tag(tag: &str) -> Self {
        let primary = tag.trim().split(['-', '_']).next().unwrap_or("");
        if primary.eq_ignore_ascii_case("ru") {
            Locale::Ru
        } else {
            Locale::En
        }
    }

    fn decimal_separator(self) -> char {
        match self {
            Locale::En => '.',
            Locale::Ru => ',',
        }
    }

    fn group_separator(self) -> char {
        match self {
            Locale::En => ',',
            Locale::Ru => '\u{a0}',
        }
    }
}

/// Why typed text is not an amount. Each maps to its own error code in the API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("enter an amount")]
    Empty,
    #[error("not a number")]
    NotANumber,
    #[error("the amount must be greater than zero")]
    NotPositive,
    #[error("{currency} takes at most {max} decimal places")]
    TooManyDecimals { currency: Currency, max: u32 },
    #[error("the amount is too large")]
    Overflow,
}

/// An amount in a currency's minor units (`1050` usd = 10.50 USD). Unknown fields are refused:
/// it is ours on every wire (Smart Glocal's own shape is `AmountDetails`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Money {
    pub amount: u64,
    pub currency: Currency,
}

const SPACES: [char; 4] = [' ', '\u{a0}', '\u{202f}', '\u{2009}'];

impl Money {
    pub fn new(amount: u64, currency: Currency) -> Self {
        Self { amount, currency }
    }

    /// Parses what an agent typed: `10`, `10.5`, `10,50` (ru, and en where a comma cannot be
    /// a thousands separator), `1 000,00`, `1,000.00` (en), with the payment currency's
    /// symbol or code before or after (`$10`, `10 USD`), surrounded by spaces or not. The
    /// result is always greater than zero.
    pub fn parse(input: &str, currency: Currency, locale: Locale) -> Result<Self, AmountError> {
        let text = input.trim_matches(|c: char| c.is_whitespace() || SPACES.contains(&c));
        if text.is_empty() {
            return Err(AmountError::Empty);
        }
        let text = currency.strip_affixes(text);
        let (negative, text) = match text.strip_prefix(['-', '\u{2212}']) {
            Some(rest) => (true, currency.strip_affixes(rest)),
            None => (false, text),
        };

        if ambiguous_comma(text, currency, locale) {
            return Err(AmountError::NotANumber);
        }
        let (integer, fraction) = split_decimal(text, locale)?;
        let integer = strip_groups(integer, locale)?;
        if integer.is_empty() && fraction.is_empty() {
            return Err(AmountError::NotANumber);
        }
        if !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AmountError::NotANumber);
        }
        let exponent = currency.exponent();
        if fraction.len() > exponent as usize {
            return Err(AmountError::TooManyDecimals {
                currency,
                max: exponent,
            });
        }

        let mut minor: u64 = 0;
        let padded = fraction
            .chars()
            .chain(std::iter::repeat('0'))
            .take(exponent as usize);
        for digit in integer.chars().chain(padded) {
            let digit = u64::from(digit.to_digit(10).ok_or(AmountError::NotANumber)?);
            minor = minor
                .checked_mul(10)
                .and_then(|m| m.checked_add(digit))
                .ok_or(AmountError::Overflow)?;
        }
        if minor > MAX_MINOR_UNITS {
            return Err(AmountError::Overflow);
        }
        if negative || minor == 0 {
            return Err(AmountError::NotPositive);
        }
        Ok(Self {
            amount: minor,
            currency,
        })
    }

    /// The number alone, grouped for the locale: `1,000.50` or `1 000,50`.
    pub fn format_number(&self, locale: Locale) -> String {
        let exponent = self.currency.exponent();
        let divisor = 10u64.pow(exponent);
        let whole = (self.amount / divisor).to_string();
        let mut out = String::with_capacity(whole.len() + 8);
        for (i, digit) in whole.chars().enumerate() {
            if i > 0 && (whole.len() - i).is_multiple_of(3) {
                out.push(locale.group_separator());
            }
            out.push(digit);
        }
        if exponent > 0 {
            out.push(locale.decimal_separator());
            let fraction = self.amount % divisor;
            out.push_str(&format!("{fraction:0width$}", width = exponent as usize));
        }
        out
    }

    /// The amount with its currency, for display. en: `$1,000.00`, `¥1,000`, `KWD 1.250`;
    /// ru: `1 000,00 $`, `10,50 ₽`, `1,250 KWD`, with no-break spaces so it never wraps.
    pub fn format(&self, locale: Locale) -> String {
        let number = self.format_number(locale);
        match (locale, self.currency.en_prefix()) {
            (Locale::En, Some(symbol)) => format!("{symbol}{number}"),
            (Locale::En, None) => format!("{}\u{a0}{number}", self.currency.0.code()),
            (Locale::Ru, _) => format!("{number}\u{a0}{}", self.currency.symbol()),
        }
    }
}

/// Splits at the locale's decimal separator. Russian agents type a dot as often as a comma,
/// so ru accepts both. en reads a comma as a thousands separator, except where it cannot be
/// one: a single comma, no dot, and not followed by exactly three digits (`12,50`).
fn split_decimal(text: &str, locale: Locale) -> Result<(&str, &str), AmountError> {
    let en_decimal_comma = locale == Locale::En
        && !text.contains('.')
        && text.matches(',').count() == 1
        && text.rsplit(',').next().is_some_and(|tail| tail.len() != 3);
    let separators: &[char] = match locale {
        Locale::En if en_decimal_comma => &[','],
        Locale::En => &['.'],
        Locale::Ru => &[',', '.'],
    };
    let mut parts = text.splitn(2, separators);
    let integer = parts.next().unwrap_or("");
    let fraction = parts.next().unwrap_or("");
    if fraction.contains(separators) {
        return Err(AmountError::NotANumber);
    }
    Ok((integer, fraction))
}

/// In English a single comma before exactly three digits reads as a thousands separator, and
/// for a currency with three decimals (KWD, BHD, OMR) it is just as likely a decimal one:
/// `1,250` could be 1,250 or 1.250. Neither is guessed; the agent is asked for the number
/// written unambiguously (the message's example is `10.500`).
fn ambiguous_comma(text: &str, currency: Currency, locale: Locale) -> bool {
    locale == Locale::En
        && currency.exponent() == 3
        && !text.contains('.')
        && text.matches(',').count() == 1
        && text.rsplit(',').next().is_some_and(|tail| tail.len() == 3)
}

/// Removes thousands separators, which must sit between groups of exactly three digits after
/// a first group of one to three not starting with 0, so `1,0`, `10 00` or `0,125` is refused
/// rather than silently read as something else.
fn strip_groups(integer: &str, locale: Locale) -> Result<String, AmountError> {
    let is_group = |c: char| SPACES.contains(&c) || (locale == Locale::En && c == ',');
    let groups: Vec<&str> = integer.split(is_group).collect();
    for (i, group) in groups.iter().enumerate() {
        let valid_digits = group.bytes().all(|b| b.is_ascii_digit());
        let valid_length = match (i, groups.len()) {
            (_, 1) => true,
            (0, _) => (1..=3).contains(&group.len()) && !group.starts_with('0'),
            _ => group.len() == 3,
        };
        if !valid_digits || !valid_length {
            return Err(AmountError::NotANumber);
        }
    }
    Ok(groups.concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kwd_has_three_decimals_and_jpy_none() {
        assert_eq!(Currency::parse("kwd").unwrap().exponent(), 3);
        assert_eq!(Currency::parse("jpy").unwrap().exponent(), 0);
        assert_eq!(Currency::parse("USD").unwrap().code(), "usd");
        assert!(Currency::parse("xyz").is_err());
    }
}
