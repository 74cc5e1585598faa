//! Durations written as text in the configuration: `250ms`, `30s`, `5m`, `1h` (architecture §5).
//!
//! One whole number and one unit, nothing else: no fractions, no sign, no compound forms such as
//! `1h30m` (write `90m`). [`format`] writes a duration back in the largest exact unit, so
//! `hycod check` prints `1h` for a TTL of 3600 seconds.

use std::fmt;
use std::time::Duration;

/// The units, largest first, with their length in milliseconds.
const UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

/// Why a duration text was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurationError {
    /// The text is empty or only whitespace.
    Empty,
    /// The text does not start with a digit (e.g. `-5s`, `s`).
    NoNumber,
    /// A number without a unit (e.g. `30`).
    NoUnit,
    /// A fractional number (e.g. `1.5h`).
    Fraction,
    /// A unit other than `ms`, `s`, `m` or `h`.
    UnknownUnit { unit: String },
    /// The number does not fit (more than about 584 million years).
    TooLarge,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the duration is empty"),
            Self::NoNumber => f.write_str("a duration starts with a whole number"),
            Self::NoUnit => f.write_str("the number has no unit; add ms, s, m or h"),
            Self::Fraction => f.write_str("fractions are not supported; use a smaller unit"),
            Self::UnknownUnit { unit } => {
                write!(f, "unknown unit {unit:?}; use ms, s, m or h")
            }
            Self::TooLarge => f.write_str("the duration is too large"),
        }
    }
}

impl std::error::Error for DurationError {}

/// Parses `<whole number><unit>` with unit `ms`, `s`, `m` or `h`; surrounding whitespace is ignored.
pub(crate) fn parse(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    if digits.is_empty() {
        return Err(DurationError::NoNumber);
    }
    if unit.is_empty() {
        return Err(DurationError::NoUnit);
    }
    if unit.starts_with('.') {
        return Err(DurationError::Fraction);
    }
    let unit_millis = UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|(_, millis)| *millis)
        .ok_or_else(|| DurationError::UnknownUnit {
            unit: unit.to_owned(),
        })?;
    let number: u64 = digits.parse().map_err(|_| DurationError::TooLarge)?;
    let millis = number
        .checked_mul(unit_millis)
        .ok_or(DurationError::TooLarge)?;
    Ok(Duration::from_millis(millis))
}

/// Writes `duration` in the largest unit that represents it exactly (`0s` for zero).
///
/// Sub-millisecond parts cannot come from [`parse`]; they are dropped.
pub(crate) fn format(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis == 0 {
        return "0s".to_owned();
    }
    for (name, unit_millis) in UNITS {
        let unit_millis = u128::from(unit_millis);
        if millis.is_multiple_of(unit_millis) {
            return format!("{}{name}", millis / unit_millis);
        }
    }
    format!("{millis}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn ignores_surrounding_whitespace() {
        assert_eq!(parse("  30s\n"), Ok(Duration::from_secs(30)));
    }

    #[test]
    fn rejects_empty_text() {
        assert_eq!(parse(""), Err(DurationError::Empty));
        assert_eq!(parse("   "), Err(DurationError::Empty));
    }

    #[test]
    fn rejects_text_without_a_leading_number() {
        assert_eq!(parse("-5s"), Err(DurationError::NoNumber));
        assert_eq!(parse("s"), Err(DurationError::NoNumber));
        assert_eq!(parse("+5s"), Err(DurationError::NoNumber));
    }

    #[test]
    fn rejects_a_number_without_unit() {
        assert_eq!(parse("30"), Err(DurationError::NoUnit));
    }

    #[test]
    fn rejects_fractions() {
        assert_eq!(parse("1.5h"), Err(DurationError::Fraction));
    }

    #[test]
    fn rejects_unknown_and_compound_units() {
        assert_eq!(
            parse("3d"),
            Err(DurationError::UnknownUnit { unit: "d".into() })
        );
        assert_eq!(
            parse("1h30m"),
            Err(DurationError::UnknownUnit {
                unit: "h30m".into()
            })
        );
        assert_eq!(
            parse("30 s"),
            Err(DurationError::UnknownUnit { unit: " s".into() })
        );
        assert_eq!(
            parse("30S"),
            Err(DurationError::UnknownUnit { unit: "S".into() })
        );
    }

    #[test]
    fn rejects_overflow() {
        assert_eq!(parse("99999999999999999999s"), Err(DurationError::TooLarge));
        assert_eq!(parse("18446744073709551615h"), Err(DurationError::TooLarge));
    }

    #[test]
    fn formats_in_the_largest_exact_unit() {
        assert_eq!(format(Duration::ZERO), "0s");
        assert_eq!(format(Duration::from_millis(250)), "250ms");
        assert_eq!(format(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format(Duration::from_secs(30)), "30s");
        assert_eq!(format(Duration::from_secs(90)), "90s");
        assert_eq!(format(Duration::from_secs(300)), "5m");
        assert_eq!(format(Duration::from_secs(3600)), "1h");
        assert_eq!(format(Duration::from_secs(5400)), "90m");
    }

    #[test]
    fn format_round_trips_through_parse() {
        for text in ["250ms", "1500ms", "30s", "90s", "5m", "1h", "25h"] {
            assert_eq!(parse(text).map(format).as_deref(), Ok(text));
        }
    }

    #[test]
    fn error_messages_name_the_problem() {
        assert!(DurationError::NoUnit.to_string().contains("no unit"));
        assert!(DurationError::UnknownUnit { unit: "d".into() }
            .to_string()
            .contains("\"d\""));
    }
}
