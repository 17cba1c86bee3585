//! `--since DATE` values: seconds since the epoch, `YYYY-MM-DD` (midnight UTC) or
//! `YYYY-MM-DDTHH:MM:SS[Z]` (UTC). A small parser instead of a date crate: these three forms are
//! all git-baton accepts, and all of them are UTC, so no time-zone database is involved.

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
