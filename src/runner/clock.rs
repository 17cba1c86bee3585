//! The clock, read at the edges only and passed into pure code as `now`.

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// The time to stamp a commit with: `GIT_COMMITTER_DATE` when it is a plain
/// `<seconds> [<offset>]` or `@<seconds>` value (as tests and scripts set it), otherwise now.
pub fn commit_time() -> i64 {
    std::env::var("GIT_COMMITTER_DATE")
        .ok()
        .and_then(|v| v.trim().trim_start_matches('@').split_whitespace().next().and_then(|s| s.parse().ok()))
        .unwrap_or_else(now)
}

/// `42s`, `5m`, `3h`, `2d`.
pub fn human_age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// A time still to come, to the nearest unit: `12s`, `5m`, `2h` (7199 s), `3d`.
pub fn human_left(secs: i64) -> String {
    let s = secs.max(0);
    let near = |unit: i64| (s + unit / 2) / unit;
    match s {
        0..60 => format!("{s}s"),
        60..3570 => format!("{}m", near(60)),
        3570..84_600 => format!("{}h", near(3600)),
        _ => format!("{}d", near(86_400)),
    }
}

/// A duration for people: `42s`, `3m05s`, `2h04m`, `3d02h` (`log`, `metrics` and the report).
pub fn human_duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// `2026-11-23T09:00:00Z` for seconds since the epoch (UTC, RFC 3339, by jiff). Outside jiff's
/// range (years -9999 to 9999: only a corrupt or hostile commit date gets there) the seconds
/// themselves, as `@<seconds>`, which `--since` reads back.
pub fn iso_utc(secs: i64) -> String {
    match jiff::Timestamp::from_second(secs) {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => format!("@{secs}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn iso() {
        assert_eq!(super::iso_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::iso_utc(1_112_911_993), "2005-04-07T22:13:13Z");
        assert_eq!(super::iso_utc(1_795_000_000), "2026-11-18T11:06:40Z");
        assert_eq!(super::iso_utc(-1), "1969-12-31T23:59:59Z");
        assert_eq!(super::iso_utc(99_999_999_999_999), "@99999999999999");
    }

    #[test]
    fn ages() {
        assert_eq!(super::human_age(5), "5s");
        assert_eq!(super::human_age(125), "2m");
        assert_eq!(super::human_age(7300), "2h");
        assert_eq!(super::human_age(200000), "2d");
    }

    #[test]
    fn time_left_rounds_to_the_nearest_unit() {
        let table = [
            (-5, "0s"),
            (12, "12s"),
            (59, "59s"),
            (60, "1m"),
            (89, "1m"),
            (90, "2m"),
            (3569, "59m"),
            (3570, "1h"),
            (7199, "2h"),
            (5399, "1h"),
            (84_599, "23h"),
            (84_600, "1d"),
            (129_600, "2d"),
        ];
        for (secs, want) in table {
            assert_eq!(super::human_left(secs), want, "{secs}");
        }
    }
}
