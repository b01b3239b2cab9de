//! Parsing what agents type, formatting for display, and the round trip between them.

use proptest::prelude::*;
use shared::money::{from_stored, to_stored, MAX_MINOR_UNITS};
use shared::{AmountError, Currency, Locale, Money};

fn currency(code: &str) -> Currency {
    Currency::parse(code).unwrap()
}

fn parse(text: &str, code: &str, locale: Locale) -> Result<u64, AmountError> {
    Money::parse(text, currency(code), locale).map(|m| m.amount)
}

#[test]
fn amounts_are_read_the_way_agents_type_them() {
    let cases = [
        ("10", "usd", Locale::En, 1000),
        ("10.5", "usd", Locale::En, 1050),
        ("10.50", "usd", Locale::En, 1050),
        ("10,50", "rub", Locale::Ru, 1050),
        ("10.50", "rub", Locale::Ru, 1050),
        ("1 000,00", "rub", Locale::Ru, 100_000),
        ("1\u{a0}000,5", "eur", Locale::Ru, 100_050),
        ("1,000.00", "usd", Locale::En, 100_000),
        ("1 000.00", "usd", Locale::En, 100_000),
        ("  42  ", "usd", Locale::En, 4200),
        ("0.01", "usd", Locale::En, 1),
        (".5", "usd", Locale::En, 50),
        ("1000", "jpy", Locale::En, 1000),
        ("1,000", "jpy", Locale::En, 1000),
        ("1.234", "kwd", Locale::En, 1234),
        // A comma that cannot be a thousands separator is the decimal one, in English too.
        ("12,50", "eur", Locale::En, 1250),
        ("0,5", "usd", Locale::En, 50),
        ("1,5", "kwd", Locale::Ru, 1500),
        // The currency's symbol or code around the number, as agents copy it from a receipt.
        ("$100.00", "usd", Locale::En, 10_000),
        ("100 USD", "usd", Locale::En, 10_000),
        ("usd 100", "usd", Locale::En, 10_000),
        ("¥1,000", "jpy", Locale::En, 1000),
        ("KWD 12.500", "kwd", Locale::En, 12_500),
        // Unambiguous with the dot, or with more groups; and for two-decimal currencies.
        ("1,250.000", "kwd", Locale::En, 1_250_000),
        ("1,250,000", "kwd", Locale::En, 1_250_000_000),
        ("1,250", "usd", Locale::En, 125_000),
        ("1,250", "kwd", Locale::Ru, 1_250),
        ("100,00 $", "usd", Locale::Ru, 10_000),
        ("12 000 ¥", "jpy", Locale::Ru, 12_000),
        ("1 000,50 ₽", "rub", Locale::Ru, 100_050),
    ];
    for (text, code, locale, expected) in cases {
        assert_eq!(
            parse(text, code, locale),
            Ok(expected),
            "{text:?} {code} {locale:?}"
        );
    }
}

#[test]
fn every_rejection_has_its_own_error() {
    let usd = currency("usd");
    let cases = [
        ("", "usd", Locale::En, AmountError::Empty),
        ("   ", "usd", Locale::En, AmountError::Empty),
        ("abc", "usd", Locale::En, AmountError::NotANumber),
        ("10€", "usd", Locale::En, AmountError::NotANumber),
        ("$", "usd", Locale::En, AmountError::NotANumber),
        ("-$5", "usd", Locale::En, AmountError::NotPositive),
        ("1.2.3", "usd", Locale::En, AmountError::NotANumber),
        ("1,00,0", "usd", Locale::En, AmountError::NotANumber),
        // A comma before three digits, for a currency with three decimals: 1,250 or 1.250?
        ("1,250", "kwd", Locale::En, AmountError::NotANumber),
        ("KWD 12,500", "kwd", Locale::En, AmountError::NotANumber),
        ("10 00", "rub", Locale::Ru, AmountError::NotANumber),
        // No number starts with a thousands group of 0: read as grouped, `0,125` would be
        // 125.00, a thousand times what was probably meant (0.125).
        ("0,125", "usd", Locale::En, AmountError::NotANumber),
        ("0 125", "rub", Locale::Ru, AmountError::NotANumber),
        ("00,125", "usd", Locale::En, AmountError::NotANumber),
        ("1e3", "usd", Locale::En, AmountError::NotANumber),
        ("+5", "usd", Locale::En, AmountError::NotANumber),
        (".", "usd", Locale::En, AmountError::NotANumber),
        ("0", "usd", Locale::En, AmountError::NotPositive),
        ("0.00", "usd", Locale::En, AmountError::NotPositive),
        ("-5", "usd", Locale::En, AmountError::NotPositive),
        (
            "1.5",
            "jpy",
            Locale::En,
            AmountError::TooManyDecimals {
                currency: currency("jpy"),
                max: 0,
            },
        ),
        (
            "1.2345",
            "kwd",
            Locale::En,
            AmountError::TooManyDecimals {
                currency: currency("kwd"),
                max: 3,
            },
        ),
        (
            "1.001",
            "usd",
            Locale::En,
            AmountError::TooManyDecimals {
                currency: usd,
                max: 2,
            },
        ),
        (
            "99999999999999999999",
            "usd",
            Locale::En,
            AmountError::Overflow,
        ),
        (
            "92233720368547758.08",
            "usd",
            Locale::En,
            AmountError::Overflow,
        ),
    ];
    for (text, code, locale, expected) in cases {
        assert_eq!(
            parse(text, code, locale),
            Err(expected),
            "{text:?} {code} {locale:?}"
        );
    }
    assert_eq!(
        parse("92233720368547758.07", "usd", Locale::En),
        Ok(MAX_MINOR_UNITS)
    );
}

#[test]
fn display_uses_the_currency_exponent_and_the_locale() {
    let money = |amount, code| Money::new(amount, currency(code));
    assert_eq!(money(100_000, "jpy").format(Locale::En), "¥100,000");
    assert_eq!(money(1000, "jpy").format(Locale::En), "¥1,000");
    assert_eq!(money(1250, "kwd").format_number(Locale::En), "1.250");
    assert_eq!(
        money(12_345_678, "usd").format_number(Locale::En),
        "123,456.78"
    );
    assert_eq!(
        money(12_345_678, "rub").format(Locale::Ru),
        "123\u{a0}456,78\u{a0}₽"
    );
    assert_eq!(money(1250, "kwd").format(Locale::En), "KWD\u{a0}1.250");
    assert_eq!(money(5, "usd").format_number(Locale::En), "0.05");
}

#[test]
fn one_formatter_writes_money_per_currency_and_locale() {
    let money = |amount, code| Money::new(amount, currency(code));
    let cases = [
        (money(10_000, "usd"), Locale::En, "$100.00"),
        (money(4_990, "eur"), Locale::En, "€49.90"),
        (money(12_000, "jpy"), Locale::En, "¥12,000"),
        (money(12_500, "kwd"), Locale::En, "KWD 12.500"),
        (money(2_500, "gbp"), Locale::En, "£25.00"),
        (money(150_000, "rub"), Locale::En, "RUB 1,500.00"),
        (money(10_000, "usd"), Locale::Ru, "100,00 $"),
        (money(4_990, "eur"), Locale::Ru, "49,90 €"),
        (money(12_000, "jpy"), Locale::Ru, "12 000 ¥"),
        (money(12_500, "kwd"), Locale::Ru, "12,500 KWD"),
        (money(150_000, "rub"), Locale::Ru, "1 500,00 ₽"),
    ];
    for (money, locale, expected) in cases {
        // No-break spaces on screen, so an amount never wraps; compared as plain spaces here.
        assert_eq!(
            money.format(locale).replace('\u{a0}', " "),
            expected,
            "{money:?} {locale:?}"
        );
    }
}

#[test]
fn examples_in_hints_are_valid_for_their_currency() {
    for code in ["usd", "jpy", "kwd", "rub"] {
        for locale in [Locale::En, Locale::Ru] {
            let example = currency(code).example(locale);
            assert!(
                Money::parse(&example, currency(code), locale).is_ok(),
                "{example:?} {code} {locale:?}"
            );
        }
    }
    assert_eq!(currency("jpy").example(Locale::En), "10");
    assert_eq!(currency("kwd").example(Locale::En), "10.500");
    assert_eq!(currency("usd").example(Locale::Ru), "10,50");
}

proptest! {
    /// Every amount the widget prints, symbol and all, reads back as the same amount when an
    /// agent pastes it into the field.
    #[test]
    fn every_formatted_amount_parses_back(
        amount in 1u64..=MAX_MINOR_UNITS,
        code in prop::sample::select(vec!["usd", "eur", "gbp", "jpy", "kwd", "rub", "chf"]),
        locale in prop::sample::select(vec![Locale::En, Locale::Ru]),
    ) {
        let money = Money::new(amount, currency(code));
        let shown = money.format(locale);
        prop_assert_eq!(Money::parse(&shown, money.currency, locale), Ok(money));
    }

    #[test]
    fn formatting_then_parsing_gives_the_amount_back(
        amount in 1u64..=MAX_MINOR_UNITS,
        code in prop::sample::select(vec!["usd", "jpy", "kwd"]),
        locale in prop::sample::select(vec![Locale::En, Locale::Ru]),
    ) {
        let money = Money::new(amount, currency(code));
        let typed = money.format_number(locale);
        prop_assert_eq!(Money::parse(&typed, money.currency, locale), Ok(money));
    }
}

/// Every ISO 4217 currency `iso_currency` knows, found by trying every three-letter code (the
/// crate's own iterator is behind a feature that pulls in another dependency).
fn all_currencies() -> Vec<Currency> {
    let letters = b'A'..=b'Z';
    let mut found = Vec::new();
    for a in letters.clone() {
        for b in letters.clone() {
            for c in letters.clone() {
                let code = String::from_utf8(vec![a, b, c]).unwrap();
                if let Ok(currency) = Currency::parse(&code) {
                    found.push(currency);
                }
            }
        }
    }
    found
}

#[test]
fn the_currency_table_has_every_exponent_the_property_tests_rely_on() {
    let mut exponents: Vec<u32> = all_currencies().iter().map(Currency::exponent).collect();
    exponents.sort_unstable();
    exponents.dedup();
    assert_eq!(exponents, vec![0, 2, 3, 4]);
}

proptest! {
    /// Over the whole `u64` range and every currency: what is formatted parses back exactly,
    /// or is refused as too large (beyond storage), never read as something else.
    #[test]
    fn any_u64_in_any_currency_round_trips_or_is_refused_as_too_large(
        amount in any::<u64>(),
        currency in prop::sample::select(all_currencies()),
        locale in prop::sample::select(vec![Locale::En, Locale::Ru]),
    ) {
        let money = Money::new(amount, currency);
        let parsed = Money::parse(&money.format_number(locale), currency, locale);
        let expected = match amount {
            0 => Err(AmountError::NotPositive),
            a if a > MAX_MINOR_UNITS => Err(AmountError::Overflow),
            _ => Ok(money),
        };
        prop_assert_eq!(parsed, expected);
    }

    /// The one door into storage: exact both ways where it opens, shut beyond `i64`.
    #[test]
    fn storage_conversion_is_exact_or_refused(amount in any::<u64>(), stored in any::<i64>()) {
        match to_stored(amount) {
            Some(s) => prop_assert_eq!(from_stored(s), Some(amount)),
            None => prop_assert!(amount > MAX_MINOR_UNITS),
        }
        prop_assert_eq!(from_stored(stored).is_some(), stored >= 0);
    }

    /// Whatever is typed, parsing answers (never panics), and an accepted amount fits storage.
    #[test]
    fn parsing_anything_never_panics_and_stays_storable(
        text in "\\PC{0,40}",
        currency in prop::sample::select(all_currencies()),
        locale in prop::sample::select(vec![Locale::En, Locale::Ru]),
    ) {
        if let Ok(money) = Money::parse(&text, currency, locale) {
            prop_assert!(to_stored(money.amount).is_some());
            prop_assert!(money.amount > 0);
        }
    }
}
