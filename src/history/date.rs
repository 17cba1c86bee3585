//! `--since DATE` values: seconds since the epoch, `YYYY-MM-DD` (midnight UTC) or
//! `YYYY-MM-DDTHH:MM:SS[Z]` (UTC). A small parser instead of a date crate: these three forms are
//! all git-baton accepts, and all of them are UTC, so no time-zone database is involved.
//! `send --not-before` also takes `now` and `in N UNIT` ([`parse_when`]), relative to a `now`
//! the caller passes in.

/// Why a date was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid date {0:?}: expected seconds since the epoch, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ")]
pub struct InvalidDate(pub String);

/// Parse a `--since` value into seconds since the epoch (UTC).
pub fn parse_date(text: &str) -> Result<i64, InvalidDate> {
    let bad = || InvalidDate(text.to_owned());
    let s = text.trim();
    let digits = s.strip_prefix('@').unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()) {
        return digits.parse().map_err(|_| bad());
    }
    let (date, time) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let [y, m, d] = numbers::<3>(date, '-', &[4, 2, 2]).ok_or_else(bad)?;
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return Err(bad());
    }
    let seconds = match time {
        None => 0,
        Some(t) => {
            let t = t.strip_suffix(['Z', 'z']).unwrap_or(t);
            let [h, min, sec] = numbers::<3>(t, ':', &[2, 2, 2]).ok_or_else(bad)?;
            if h > 23 || min > 59 || sec > 60 {
                return Err(bad());
            }
            h * 3600 + min * 60 + sec
        }
    };
    Ok(days_from_civil(y, m, d) * 86400 + seconds)
}

/// Why a `--not-before` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid time {0:?}: expected seconds since the epoch, YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ, or `in N seconds|minutes|hours|days` (also `in 30m`)"
)]
pub struct InvalidWhen(pub String);

/// Parse a point in time: anything [`parse_date`] accepts, `now`, or a time relative to `now`:
/// `in N UNIT` with UNIT one of `s`/`sec`/`second`, `m`/`min`/`minute`, `h`/`hour`, `d`/`day`,
/// `w`/`week` (plural forms too), or `in 30m` (the policy's duration syntax). Case-insensitive.
pub fn parse_when(text: &str, now: i64) -> Result<i64, InvalidWhen> {
    let bad = || InvalidWhen(text.to_owned());
    let s = text.trim();
    if s.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    let lower = s.to_ascii_lowercase();
    let Some(rest) = lower.strip_prefix("in ") else {
        return parse_date(s).map_err(|_| bad());
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

/// `N` fields of exactly the given widths, all ASCII digits, joined by `sep`.
fn numbers<const N: usize>(s: &str, sep: char, widths: &[usize; N]) -> Option<[i64; N]> {
    let mut out = [0i64; N];
    let mut parts = s.split(sep);
    for (slot, &width) in out.iter_mut().zip(widths) {
        let p = parts.next()?;
        if p.len() != width || !p.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        *slot = p.parse().ok()?;
    }
    parts.next().is_none().then_some(out)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`, the
/// inverse of `runner::clock::iso_utc`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::clock::iso_utc;

    #[test]
    fn accepted_forms() {
        assert_eq!(parse_date("1700000000"), Ok(1_700_000_000));
        assert_eq!(parse_date("@42"), Ok(42));
        assert_eq!(parse_date("1970-01-01"), Ok(0));
        assert_eq!(parse_date("2005-04-07T22:13:13Z"), Ok(1_112_911_993));
        assert_eq!(parse_date("2005-04-07T22:13:13"), Ok(1_112_911_993));
        assert_eq!(parse_date("2024-02-29"), Ok(1_709_164_800));
    }

    #[test]
    fn round_trips_with_iso_utc() {
        for t in [0, 951_782_400, 1_112_911_993, 1_700_000_000, 4_102_444_799] {
            assert_eq!(parse_date(&iso_utc(t)), Ok(t), "{}", iso_utc(t));
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
            "yesterday",
            "2023-13-01",
            "2023-02-29",
            "2023-1-01",
            "2023-01-01T25:00:00Z",
            "2023-01-01T10:00Z",
            "2023-01-01T10:00:00+02:00",
            "-5",
            "99999999999999999999999",
        ] {
            assert!(parse_date(s).is_err(), "{s:?}");
        }
    }
}
