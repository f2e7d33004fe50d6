//! Times as the CLI's tables print them (UTC).

const MS_PER_DAY: i64 = 86_400_000;

/// `HH:MM:SSZ` when `ms` falls on the same UTC day as `now_ms`, else
/// `YYYY-MM-DD HH:MM:SSZ`.
pub fn when(ms: i64, now_ms: i64) -> String {
    let (day, in_day) = (ms.div_euclid(MS_PER_DAY), ms.rem_euclid(MS_PER_DAY) / 1000);
    let clock = format!(
        "{:02}:{:02}:{:02}Z",
        in_day / 3600,
        (in_day / 60) % 60,
        in_day % 60
    );
    if day == now_ms.div_euclid(MS_PER_DAY) {
        return clock;
    }
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02} {clock}")
}

/// How long ago `ms` was, as a table prints it: `45s`, `3m`, `5h`, `12d`;
/// a time still ahead reads `in 89d`.
pub fn age(ms: i64, now_ms: i64) -> String {
    let span = |secs: i64| match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    };
    if ms > now_ms {
        format!("in {}", span((ms - now_ms) / 1000))
    } else {
        span((now_ms - ms) / 1000)
    }
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`), to avoid a date crate for one column.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-30T12:00:00Z.
    const NOON: i64 = 1_796_040_000_000;

    #[test]
    fn a_time_from_today_shows_only_the_time_of_day() {
        assert_eq!(when(NOON - 3_600_000, NOON), "11:00:00Z");
    }

    #[test]
    fn a_time_from_last_month_shows_its_date() {
        // 2026-10-30T04:33:21Z
        let last_month = NOON - 31 * MS_PER_DAY - (7 * 3600 + 26 * 60 + 39) * 1000;
        assert_eq!(when(last_month, NOON), "2026-10-30 04:33:21Z");
    }

    #[test]
    fn yesterday_just_before_midnight_is_not_today() {
        let before_midnight = NOON - 12 * 3_600_000 - 1000;
        assert_eq!(when(before_midnight, NOON), "2026-11-29 23:59:59Z");
    }

    #[test]
    fn ages_read_in_the_largest_whole_unit() {
        assert_eq!(age(NOON - 45_000, NOON), "45s");
        assert_eq!(age(NOON - 3 * 60_000 - 59_000, NOON), "3m");
        assert_eq!(age(NOON - 5 * 3_600_000, NOON), "5h");
        assert_eq!(age(NOON - 12 * MS_PER_DAY, NOON), "12d");
        assert_eq!(age(NOON + 89 * MS_PER_DAY + 1000, NOON), "in 89d");
    }

    #[test]
    fn dates_around_leap_days_and_the_epoch_are_right() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        // 2024-02-29 is day 19782; 2000-03-01 is day 11017.
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }
}
