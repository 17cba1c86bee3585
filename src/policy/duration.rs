//! The two value syntaxes of the policy file besides names: durations (`"30s"`, `"5m"`, `"2h"`,
//! `"7d"`: an integer and exactly one unit, nothing else) and byte sizes (an integer, or a string
//! `"100B"`, `"512KiB"`, `"10MiB"`, `"1GiB"`). Both are strict on purpose: a policy decides how long
//! a handler may run, so `"1.5h"`, `"90 m"` or `"5x"` are errors rather than guesses. Zero is an
//! error too (a zero timeout or log cap is never what anyone means).

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A duration in whole seconds, written `"<n>s|m|h|d"` in the policy file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seconds(pub u64);

/// A size in bytes, written as an integer or `"<n>B|KiB|MiB|GiB"` in the policy file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

const DURATION_UNITS: [(char, u64); 4] = [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];
const SIZE_UNITS: [(&str, u64); 4] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("B", 1)];

/// `"90m"` → 5400, `"0s"` → 0: a whole number and one unit (`s`, `m`, `h`, `d`), nothing else.
/// The one duration syntax of git-baton (policy values, `gc --older-than`); the error says what
/// is wrong, for the caller to prefix.
pub fn parse_seconds(s: &str) -> Result<u64, String> {
    let bad = || "use a number followed by s, m, h or d".to_owned();
    let unit = s.chars().last().ok_or_else(bad)?;
    let factor = DURATION_UNITS.iter().find(|(u, _)| *u == unit).map(|(_, f)| *f).ok_or_else(bad)?;
    let n = parse_digits(&s[..s.len() - 1]).ok_or_else(bad)?;
    n.checked_mul(factor).ok_or_else(|| "too large".to_owned())
}

/// `"90m"` → 5400. The error text is the whole explanation, ready to follow `key: `.
pub fn parse_duration(s: &str) -> Result<Seconds, String> {
    let secs = parse_seconds(s).map_err(|e| format!("invalid duration {s:?}: {e}"))?;
    if secs == 0 {
        return Err(format!("invalid duration {s:?}: must be more than zero"));
    }
    Ok(Seconds(secs))
}

/// `"10MiB"` → 10485760. Only binary units: `KB` would be ambiguous between 1000 and 1024.
pub fn parse_size(s: &str) -> Result<ByteSize, String> {
    let bad = || format!("invalid size {s:?}: use a number of bytes, or a number followed by B, KiB, MiB or GiB");
    let (unit, factor) = SIZE_UNITS.iter().find(|(u, _)| s.ends_with(u)).ok_or_else(bad)?;
    let n = parse_digits(&s[..s.len() - unit.len()]).ok_or_else(bad)?;
    let bytes = n.checked_mul(*factor).ok_or_else(|| format!("invalid size {s:?}: too large"))?;
    if bytes == 0 {
        return Err(format!("invalid size {s:?}: must be more than zero"));
    }
    Ok(ByteSize(bytes))
}

/// ASCII digits only (no sign, no spaces, no `_`), at least one.
fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The shortest exact spelling: 7200 → `2h`, 90 → `90s`.
pub fn format_duration(secs: u64) -> String {
    let (unit, factor) =
        DURATION_UNITS.iter().find(|(_, f)| secs != 0 && secs.is_multiple_of(*f)).copied().unwrap_or(('s', 1));
    format!("{}{unit}", secs / factor)
}

/// The shortest exact spelling: 10485760 → `10MiB`, 1000 → `1000B`.
pub fn format_size(bytes: u64) -> String {
    let (unit, factor) =
        SIZE_UNITS.iter().find(|(_, f)| bytes != 0 && bytes.is_multiple_of(*f)).copied().unwrap_or(("B", 1));
    format!("{}{unit}", bytes / factor)
}

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_size(self.0))
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Seconds;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a duration string such as "30s", "5m", "2h" or "7d""#)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Seconds, E> {
                parse_duration(s).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a number of bytes or a string such as "512KiB" or "10MiB""#)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ByteSize, E> {
                parse_size(s).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<ByteSize, E> {
                match u64::try_from(n) {
                    Ok(n) if n > 0 => Ok(ByteSize(n)),
                    _ => Err(E::custom(format!("invalid size {n}: must be more than zero"))),
                }
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<ByteSize, E> {
                self.visit_i64(i64::try_from(n).unwrap_or(i64::MAX))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = [("30s", 30), ("5m", 300), ("2h", 7200), ("7d", 604_800), ("1s", 1), ("007m", 420)];
        for (s, want) in ok {
            assert_eq!(parse_duration(s), Ok(Seconds(want)), "{s}");
        }
        for s in ["", "s", "5", "5x", "1.5h", "5 m", " 5m", "-5m", "+5m", "5mm", "5M", "1_0s", "5ms", "m5"] {
            let e = parse_duration(s).unwrap_err();
            assert!(e.contains("use a number followed by s, m, h or d"), "{s}: {e}");
        }
        assert!(parse_duration("0s").unwrap_err().contains("more than zero"));
        assert!(parse_duration("0d").unwrap_err().contains("more than zero"));
        assert!(parse_duration("99999999999999999999d").is_err());
        assert!(parse_duration("999999999999999999d").unwrap_err().contains("too large"));
    }

    #[test]
    fn sizes() {
        let ok = [("100B", 100), ("512KiB", 512 << 10), ("10MiB", 10 << 20), ("1GiB", 1 << 30)];
        for (s, want) in ok {
            assert_eq!(parse_size(s), Ok(ByteSize(want)), "{s}");
        }
        for s in ["", "B", "10", "10MB", "10mib", "10 MiB", "1.5GiB", "-1B", "10KB", "MiB"] {
            let e = parse_size(s).unwrap_err();
            assert!(e.contains("invalid size"), "{s}: {e}");
        }
        assert!(parse_size("0MiB").unwrap_err().contains("more than zero"));
        assert!(parse_size("99999999999GiB").unwrap_err().contains("too large"));
    }

    #[test]
    fn formatting_is_the_shortest_exact_spelling() {
        assert_eq!(format_duration(7200), "2h");
        assert_eq!(format_duration(90), "90s");
        assert_eq!(format_duration(604_800), "7d");
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_size(10 << 20), "10MiB");
        assert_eq!(format_size(1000), "1000B");
        assert_eq!(format_size(1536), "1536B");
        assert_eq!(format_size(2048), "2KiB");
    }
}
