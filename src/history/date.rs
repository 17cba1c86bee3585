//! `--since DATE` values: every date git reads, through gix's port of git's date parser
//! (`gix::date::parse`): `2026-11-23`, `2026-11-23T09:00:00Z`, `2026-11-23 09:00:00 +0200`, RFC
//! 2822, `@1700000000` (and bare epoch seconds from 100000000 on, as git), and git's relative
//! forms `2.weeks.ago`, `2 weeks ago`, `yesterday`, `now`, computed from a `now` the caller
//! passes in (UTC calendar; a date without an offset is UTC).
//!
//! `send --not-before` also takes `in N UNIT` ([`parse_when`]): git has no way to name a future
//! time (`1 hour from now` is an hour in the past to it), so that one form stays here.

use gix::date::Zoned;

/// Why a date was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid date {0:?}: expected a date git reads, such as 2026-11-23, 2026-11-23T09:00:00Z, @1700000000, 2.weeks.ago or \"2 weeks ago\""
)]
pub struct InvalidDate(pub String);

/// `now` (epoch seconds) as the UTC time relative dates count back from.
fn zoned(now: i64) -> Option<Zoned> {
    Some(jiff::Timestamp::from_second(now).ok()?.to_zoned(jiff::tz::TimeZone::UTC))
}

/// Parse a `--since` value into seconds since the epoch, relative forms counted back from `now`.
pub fn parse_date(text: &str, now: i64) -> Result<i64, InvalidDate> {
    let bad = || InvalidDate(text.to_owned());
    let s = text.trim();
    if s.is_empty() {
        return Err(bad());
    }
    gix::date::parse(s, Some(zoned(now).ok_or_else(bad)?)).map(|t| t.seconds).map_err(|_| bad())
}

/// Why a `--not-before` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid time {0:?}: expected `now`, `in N seconds|minutes|hours|days|weeks` (also `in 30m`), or a date such as 2026-11-23T09:00:00Z or @1700000000 (git's relative forms like `2.weeks.ago` name the past)"
)]
pub struct InvalidWhen(pub String);

/// Parse a point in time: `now`, a time relative to `now` — `in N UNIT` with UNIT one of
/// `s`/`sec`/`second`, `m`/`min`/`minute`, `h`/`hour`, `d`/`day`, `w`/`week` (plural forms too), or
/// `in 30m` (the policy's duration syntax), case-insensitive — or an absolute date
/// [`parse_date`] accepts. git's relative forms (`2 hours`, `yesterday`) are refused here: they
/// name the past, and a schedule in the past is almost surely a typo for `in 2 hours`.
pub fn parse_when(text: &str, now: i64) -> Result<i64, InvalidWhen> {
    let bad = || InvalidWhen(text.to_owned());
    let s = text.trim();
    if s.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    let lower = s.to_ascii_lowercase();
    let Some(rest) = lower.strip_prefix("in ") else {
        // Absolute means: the same answer whatever `now` is.
        let at = parse_date(s, now).map_err(|_| bad())?;
        let elsewhere = parse_date(s, now.wrapping_sub(7 * 86_400)).map_err(|_| bad())?;
        return if at == elsewhere { Ok(at) } else { Err(bad()) };
    };
    let rest = rest.trim();
    let (number, unit) = match rest.split_once(char::is_whitespace) {
        Some((n, u)) => (n, u.trim()),
        None => {
            // `in 30m`: digits then the unit, no space.
            let at = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
            rest.split_at(at)
        }
    };
    if number.is_empty() || !number.bytes().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let n: i64 = number.parse().map_err(|_| bad())?;
    let factor = match unit {
        "s" | "sec" | "secs" | "second" | "seconds" => 1,
        "m" | "min" | "mins" | "minute" | "minutes" => 60,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        "w" | "week" | "weeks" => 604_800,
        _ => return Err(bad()),
    };
    n.checked_mul(factor).and_then(|secs| now.checked_add(secs)).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::clock::iso_utc;

    const NOW: i64 = 1_700_000_000; // 2023-11-14T22:13:20Z

    #[test]
    fn accepted_forms() {
        let table: &[(&str, i64)] = &[
            ("1700000000", 1_700_000_000),
            ("@42", 42),
            ("1970-01-01", 0),
            ("2005-04-07T22:13:13Z", 1_112_911_993),
            ("2005-04-07T22:13:13", 1_112_911_993),
            ("2005-04-07 22:13:13 +0200", 1_112_911_993 - 7200),
            ("2023-01-01T10:00:00+02:00", 1_672_560_000),
            ("Thu, 07 Apr 2005 22:13:13 +0000", 1_112_911_993),
            ("2024-02-29", 1_709_164_800),
            // git's relative forms, counted back from NOW.
            ("2 weeks ago", NOW - 14 * 86_400),
            ("2.weeks.ago", NOW - 14 * 86_400),
            ("  2 weeks ago ", NOW - 14 * 86_400),
            ("3.days.2.hours.ago", NOW - 3 * 86_400 - 7200),
            ("yesterday", NOW - 86_400),
            ("now", NOW),
            ("1.month.ago", 1_697_321_600), // the calendar month: 2023-10-14T22:13:20Z
        ];
        for (text, want) in table {
            assert_eq!(parse_date(text, NOW), Ok(*want), "{text:?}");
        }
    }

    #[test]
    fn round_trips_with_iso_utc() {
        for t in [0, 951_782_400, 1_112_911_993, 1_700_000_000, 4_102_444_799] {
            assert_eq!(parse_date(&iso_utc(t), NOW), Ok(t), "{}", iso_utc(t));
        }
    }

    #[test]
    fn when_forms() {
        let now = 1_700_000_000;
        let table: &[(&str, i64)] = &[
            ("in 2 hours", now + 7200),
            ("in 1 hour", now + 3600),
            ("In 2 Hours", now + 7200),
            ("  in   2   hours ", now + 7200),
            ("in 30 seconds", now + 30),
            ("in 1 second", now + 1),
            ("in 45s", now + 45),
            ("in 5 minutes", now + 300),
            ("in 5 min", now + 300),
            ("in 30m", now + 1800),
            ("in 2h", now + 7200),
            ("in 3 days", now + 3 * 86_400),
            ("in 1d", now + 86_400),
            ("in 2 weeks", now + 14 * 86_400),
            ("in 0 seconds", now),
            ("now", now),
            ("NOW", now),
            ("2001-01-01", 978_307_200),
            ("2005-04-07T22:13:13Z", 1_112_911_993),
            ("@42", 42),
            ("1800000000", 1_800_000_000),
        ];
        for (text, want) in table {
            assert_eq!(parse_when(text, now), Ok(*want), "{text:?}");
        }
    }

    #[test]
    fn refused_when_forms() {
        for s in [
            "",
            "in",
            "in ",
            "in hours",
            "in 2",
            "in 2 fortnights",
            "in -2 hours",
            "in +2 hours",
            "in 2.5 hours",
            "in 2 hours ago",
            "2 hours",
            "2 hours ago",
            "yesterday",
            "tomorrow",
            "in 99999999999999999999 seconds",
            "in 9999999999999999 weeks",
            "2023-13-01",
        ] {
            assert!(parse_when(s, 1_700_000_000).is_err(), "{s:?}");
        }
    }

    #[test]
    fn refused_forms() {
        for s in [
            "",
            "   ",
            "tomorrow",
            "garbage",
            "2023-13-01",
            "2023-02-29",
            "2023-01-01T25:00:00Z",
            "-5",
            "42", // git reads bare numbers below 100000000 as no date; `@42` is epoch seconds
            "99999999999999999999999",
        ] {
            assert!(parse_date(s, NOW).is_err(), "{s:?}");
        }
    }
}
