//! Sizes (`10M`) and durations (`20m`) as postern.toml writes them, and
//! durations as people read them.

use serde::Deserialize;

/// Reads a size such as `52428800`, `512k`, `10M`, `2G` or `1T` (binary
/// multiples, any case, an optional trailing `B`).
pub fn parse_size(text: &str) -> Option<u64> {
    parse_size_with_unit(text, 1)
}

/// Like [`parse_size`], but a bare number counts in `unit` bytes (Dovecot's
/// `storage=` is in kilobytes unless a suffix says otherwise).
pub(crate) fn parse_size_with_unit(text: &str, unit: u64) -> Option<u64> {
    let (number, suffix) = number_and_suffix(text)?;
    let suffix = suffix.to_ascii_lowercase();
    let suffix = suffix
        .strip_suffix('b')
        .filter(|s| !s.is_empty())
        .unwrap_or(&suffix);
    let multiplier: u64 = match suffix {
        "" => unit,
        "b" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return None,
    };
    number.checked_mul(multiplier)
}

/// A size setting, a number of octets or text such as `10M`.
pub(crate) fn size<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Number(u64),
        Text(String),
    }
    match Size::deserialize(deserializer)? {
        Size::Number(n) => Ok(n),
        Size::Text(text) => parse_size(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("{text:?} is not a size (like 512k, 10M, 2G)"))
        }),
    }
}

/// A duration setting, seconds or text such as `20m`.
pub(crate) fn duration<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Duration {
        Number(u64),
        Text(String),
    }
    match Duration::deserialize(deserializer)? {
        Duration::Number(n) => Ok(n),
        Duration::Text(text) => parse_duration(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{text:?} is not a duration (like 300, 90s, 20m, 4h, 5d)"
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("10M"), Some(10 << 20));
        assert_eq!(parse_size("10mb"), Some(10 << 20));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("5b"), Some(5));
        assert_eq!(parse_size_with_unit("100", 1024), Some(102400));
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("M"), None);
        assert_eq!(parse_size("10X"), None);
        assert_eq!(parse_size("99999999999999999999"), None);
        assert_eq!(parse_size("18446744073709551615k"), None);
    }
}

/// The leading digits of `text` as a number, and the trimmed rest.
fn number_and_suffix(text: &str) -> Option<(u64, &str)> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    if digits_end == 0 {
        return None;
    }
    Some((text[..digits_end].parse().ok()?, text[digits_end..].trim()))
}

/// Reads a duration in seconds: `300`, `90s`, `20m`, `4h` or `5d`.
pub fn parse_duration(text: &str) -> Option<u64> {
    let (number, suffix) = number_and_suffix(text)?;
    let multiplier: u64 = match suffix {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        "w" => 7 * 86400,
        _ => return None,
    };
    number.checked_mul(multiplier)
}

/// A duration as people say it: `5 days`, `4 hours`, `90 seconds`.
pub fn span(seconds: u64) -> String {
    let (n, unit) = match seconds {
        s if s >= 86400 && s % 86400 == 0 => (s / 86400, "day"),
        s if s >= 3600 && s % 3600 == 0 => (s / 3600, "hour"),
        s if s >= 60 && s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod duration_tests {
    use super::{parse_duration, span};

    #[test]
    fn spans() {
        assert_eq!(span(5 * 86400), "5 days");
        assert_eq!(span(3600), "1 hour");
        assert_eq!(span(90), "90 seconds");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("300"), Some(300));
        assert_eq!(parse_duration("4h"), Some(14400));
        assert_eq!(parse_duration("5d"), Some(432000));
        assert_eq!(parse_duration("20 m"), Some(1200));
        assert_eq!(parse_duration("h"), None);
        assert_eq!(parse_duration("5y"), None);
    }
}
