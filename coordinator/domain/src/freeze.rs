//! Freeze windows: when an environment takes no deployment and no promotion.
//! A freeze is a gate (DESIGN.md, settled questions): a deployment queued in
//! one waits, saying until when, and starts by itself at the window's end.
//! Rollbacks pass it; an admin may pass one deployment through (audited).
//!
//! Windows are written in the team's own time zone and kept in it, daylight
//! saving included: "Fri 16:00 - Mon 08:00 Europe/Lisbon" ends at 08:00 in
//! Lisbon in winter and in summer. The tz database is compiled in, so a window
//! means the same on every machine.

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use serde::Deserialize;

use crate::clock::Millis;

/// A freeze window as the fleet file writes it:
///
/// ```toml
/// [environments.prod1]
/// freeze = [
///   { every = "Fri 16:00 - Mon 08:00", zone = "Europe/Lisbon", name = "weekend" },
///   { from = "2026-12-24 00:00", until = "2026-12-27 08:00", zone = "Europe/Lisbon" },
/// ]
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Written {
    every: Option<String>,
    from: Option<String>,
    until: Option<String>,
    zone: Option<String>,
    name: Option<String>,
}

/// One freeze window, checked when the fleet file is read.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "Written")]
pub struct Freeze {
    /// What operators see beside the end: "weekend", "Christmas".
    pub name: Option<String>,
    zone: TimeZone,
    when: When,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    /// Every week, from one weekday and time to another (shorter than a week).
    Weekly {
        start: (Weekday, Time),
        end: (Weekday, Time),
    },
    /// Once, between two instants.
    Once { from: Timestamp, until: Timestamp },
}

/// An environment frozen now: until when, and what to tell operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frozen {
    pub until: Millis,
    /// "frozen until Mon 08:00 WET (weekend)".
    pub said: String,
}

const EXAMPLE: &str = "write it like \"Fri 16:00 - Mon 08:00\"";

impl TryFrom<Written> for Freeze {
    type Error = String;

    fn try_from(w: Written) -> Result<Freeze, String> {
        let zone_name = w.zone.as_deref().unwrap_or("UTC");
        let zone = TimeZone::get(zone_name).map_err(|_| {
            format!("unknown time zone {zone_name:?}: name one like \"Europe/Lisbon\" or \"UTC\"")
        })?;
        if let Some(name) = &w.name
            && (name.is_empty() || name.len() > 64 || name.chars().any(char::is_control))
        {
            return Err(format!(
                "freeze name {name:?}: give 1 to 64 printable characters"
            ));
        }
        let when = match (&w.every, &w.from, &w.until) {
            (Some(every), None, None) => weekly(every)?,
            (None, Some(from), Some(until)) => {
                let from = instant(from, &zone)?;
                let until = instant(until, &zone)?;
                if until <= from {
                    return Err(format!(
                        "freeze until {} is not after from {}: a window must end after it starts",
                        w.until.as_deref().unwrap_or_default(),
                        w.from.as_deref().unwrap_or_default()
                    ));
                }
                When::Once { from, until }
            }
            _ => {
                return Err(
                    "a freeze window has either `every` (\"Fri 16:00 - Mon 08:00\") or both `from` and `until` (\"2026-12-24 00:00\")"
                        .to_string(),
                );
            }
        };
        Ok(Freeze {
            name: w.name,
            zone,
            when,
        })
    }
}

/// "Fri 16:00 - Mon 08:00" (a hyphen or an en dash).
fn weekly(text: &str) -> Result<When, String> {
    let (start, end) = text
        .split_once(" - ")
        .or_else(|| text.split_once(" – "))
        .ok_or_else(|| format!("freeze every {text:?}: {EXAMPLE}"))?;
    let point = |part: &str| -> Result<(Weekday, Time), String> {
        let (day, time) = part
            .trim()
            .split_once(' ')
            .ok_or_else(|| format!("freeze every {text:?}: {EXAMPLE}"))?;
        Ok((weekday(day, text)?, clock_time(time.trim(), text)?))
    };
    let (start, end) = (point(start)?, point(end)?);
    if start == end {
        return Err(format!(
            "freeze every {text:?} ends when it starts: a window that never ends is not a window"
        ));
    }
    Ok(When::Weekly { start, end })
}

fn weekday(day: &str, text: &str) -> Result<Weekday, String> {
    const DAYS: [(&str, Weekday); 7] = [
        ("mon", Weekday::Monday),
        ("tue", Weekday::Tuesday),
        ("wed", Weekday::Wednesday),
        ("thu", Weekday::Thursday),
        ("fri", Weekday::Friday),
        ("sat", Weekday::Saturday),
        ("sun", Weekday::Sunday),
    ];
    // "Fri" or "Friday", any case; "Frisbee" is no day.
    let lower = day.to_ascii_lowercase();
    DAYS.iter()
        .find(|(short, d)| lower == *short || lower == format!("{d:?}").to_ascii_lowercase())
        .map(|(_, d)| *d)
        .ok_or_else(|| format!("freeze every {text:?}: {day:?} is not a weekday (Mon … Sun)"))
}

fn clock_time(time: &str, text: &str) -> Result<Time, String> {
    Time::strptime("%H:%M", time)
        .map_err(|_| format!("freeze {text:?}: {time:?} is not a time like 16:00"))
}

/// "2026-12-24 00:00" in `zone`.
fn instant(text: &str, zone: &TimeZone) -> Result<Timestamp, String> {
    let civil = DateTime::strptime("%Y-%m-%d %H:%M", text)
        .map_err(|_| format!("freeze {text:?}: write it like \"2026-12-24 00:00\""))?;
    civil
        .to_zoned(zone.clone())
        .map(|z| z.timestamp())
        .map_err(|e| format!("freeze {text:?}: {e}"))
}

fn zoned(at: Timestamp, zone: &TimeZone) -> Zoned {
    at.to_zoned(zone.clone())
}

/// `date` at `time` in `zone`; a time skipped by a clock change is taken
/// after the change, as people read it.
fn on(date: Date, time: Time, zone: &TimeZone) -> Option<Timestamp> {
    date.to_datetime(time)
        .to_zoned(zone.clone())
        .ok()
        .map(|z| z.timestamp())
}

impl Freeze {
    /// The end of this window if `at` falls inside it.
    fn end_if_within(&self, at: Timestamp) -> Option<Timestamp> {
        match self.when {
            When::Once { from, until } => (from <= at && at < until).then_some(until),
            When::Weekly { start, end } => {
                // The latest start at or before `at`: on one of the last 8 days.
                let mut day = zoned(at, &self.zone).date();
                for _ in 0..8 {
                    if day.weekday() == start.0
                        && let Some(started) = on(day, start.1, &self.zone)
                        && started <= at
                    {
                        let mut ahead = start.0.until(end.0);
                        if ahead == 0 && end.1 <= start.1 {
                            ahead = 7;
                        }
                        let mut end_day = day;
                        for _ in 0..ahead {
                            end_day = end_day.tomorrow().ok()?;
                        }
                        let ends = on(end_day, end.1, &self.zone)?;
                        return (at < ends).then_some(ends);
                    }
                    day = day.yesterday().ok()?;
                }
                None
            }
        }
    }
}

/// Whether `windows` freeze their environment at `now`, and until when: to
/// the end of back-to-back or overlapping windows, said in the zone of the
/// window that ends last.
pub fn frozen(windows: &[Freeze], now: Millis) -> Option<Frozen> {
    let now = Timestamp::from_millisecond(now).ok()?;
    let mut until: Option<(Timestamp, &Freeze)> = None;
    // Each pass moves the end on, to the end of a window that holds there;
    // weekly windows recur, so bound the passes, not by the window count.
    for _ in 0..64 {
        let at = until.map_or(now, |(t, _)| t);
        let later = windows
            .iter()
            .filter_map(|w| w.end_if_within(at).map(|end| (end, w)))
            .max_by_key(|(end, _)| *end);
        match later {
            Some(next) if until.is_none_or(|(t, _)| next.0 > t) => until = Some(next),
            _ => break,
        }
    }
    let (end, window) = until?;
    let local = zoned(end, &window.zone);
    // Within the coming week a weekday says it; beyond, the date.
    let format = if end.as_millisecond() - now.as_millisecond() < 6 * 24 * 3_600_000 {
        "%a %H:%M %Z"
    } else {
        "%Y-%m-%d %H:%M %Z"
    };
    let name = window
        .name
        .as_deref()
        .map(|n| format!(" ({n})"))
        .unwrap_or_default();
    Some(Frozen {
        until: end.as_millisecond(),
        said: format!("frozen until {}{name}", local.strftime(format)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(text: &str) -> Result<Freeze, String> {
        #[derive(Deserialize)]
        struct One {
            freeze: Freeze,
        }
        toml::from_str::<One>(&format!("freeze = {text}"))
            .map(|one| one.freeze)
            .map_err(|e| e.message().to_string())
    }

    /// Unix milliseconds of `text` ("2026-12-04 15:59") in `zone`.
    fn at(text: &str, zone: &str) -> Millis {
        instant(text, &TimeZone::get(zone).unwrap())
            .unwrap()
            .as_millisecond()
    }

    fn weekend() -> Freeze {
        window(r#"{ every = "Fri 16:00 - Mon 08:00", zone = "Europe/Lisbon", name = "weekend" }"#)
            .unwrap()
    }

    #[test]
    fn a_weekly_window_holds_from_its_start_to_its_end_in_its_zone() {
        let lisbon = "Europe/Lisbon";
        let w = [weekend()];
        // 2026-12-04 is a Friday; Lisbon is on WET (UTC+0) in December.
        assert_eq!(frozen(&w, at("2026-12-04 15:59", lisbon)), None);
        let friday = frozen(&w, at("2026-12-04 16:00", lisbon)).unwrap();
        assert_eq!(friday.said, "frozen until Mon 08:00 WET (weekend)");
        assert_eq!(friday.until, at("2026-12-07 08:00", lisbon));
        let sunday = frozen(&w, at("2026-12-06 23:00", lisbon)).unwrap();
        assert_eq!(sunday.until, at("2026-12-07 08:00", lisbon));
        assert_eq!(frozen(&w, at("2026-12-07 08:00", lisbon)), None);
        assert_eq!(frozen(&w, at("2026-12-09 12:00", lisbon)), None);
    }

    #[test]
    fn a_weekly_window_keeps_its_local_time_across_daylight_saving() {
        let w = [weekend()];
        // In July Lisbon is on WEST (UTC+1): 08:00 there is 07:00 UTC.
        let july = frozen(&w, at("2026-07-04 12:00", "Europe/Lisbon")).unwrap();
        assert_eq!(july.said, "frozen until Mon 08:00 WEST (weekend)");
        assert_eq!(july.until, at("2026-07-06 07:00", "UTC"));
    }

    #[test]
    fn a_window_within_one_day_and_one_that_wraps_the_week() {
        let evening = [window(r#"{ every = "Wed 18:00 - Wed 20:00" }"#).unwrap()];
        assert!(frozen(&evening, at("2026-12-02 19:00", "UTC")).is_some());
        assert_eq!(frozen(&evening, at("2026-12-02 20:30", "UTC")), None);
        // Ends at an earlier time on its own weekday: a week less two hours.
        let long = [window(r#"{ every = "Wed 20:00 - Wed 18:00" }"#).unwrap()];
        let frozen_now = frozen(&long, at("2026-12-08 12:00", "UTC")).unwrap();
        assert_eq!(frozen_now.until, at("2026-12-09 18:00", "UTC"));
        assert_eq!(frozen(&long, at("2026-12-09 19:00", "UTC")), None);
    }

    #[test]
    fn a_one_off_window_far_ahead_says_its_date_and_chains_with_the_weekend() {
        let christmas = window(
            r#"{ from = "2026-12-21 00:00", until = "2026-12-28 08:00", zone = "Europe/Lisbon", name = "Christmas" }"#,
        )
        .unwrap();
        let w = [christmas, weekend()];
        let f = frozen(&w, at("2026-12-21 09:00", "Europe/Lisbon")).unwrap();
        assert_eq!(f.said, "frozen until 2026-12-28 08:00 WET (Christmas)");
        // The weekend before it runs into it: frozen to Christmas's end.
        let f = frozen(&w, at("2026-12-19 10:00", "Europe/Lisbon")).unwrap();
        assert_eq!(f.until, at("2026-12-28 08:00", "Europe/Lisbon"));
    }

    #[test]
    fn bad_windows_are_refused_saying_how_to_write_them() {
        let cases = [
            (r#"{ every = "Fri 16:00 to Mon 08:00" }"#, "write it like"),
            (
                r#"{ every = "Fry 16:00 - Mon 08:00" }"#,
                "\"Fry\" is not a weekday",
            ),
            (
                r#"{ every = "Frisbee 16:00 - Mon 08:00" }"#,
                "\"Frisbee\" is not a weekday",
            ),
            (
                r#"{ every = "Fri 25:00 - Mon 08:00" }"#,
                "\"25:00\" is not a time",
            ),
            (r#"{ every = "Fri 16:00 - Fri 16:00" }"#, "never ends"),
            (
                r#"{ every = "Fri 16:00 - Mon 08:00", zone = "Mars/Olympus" }"#,
                "unknown time zone \"Mars/Olympus\"",
            ),
            (r#"{ from = "2026-12-24 00:00" }"#, "either `every`"),
            (
                r#"{ from = "2026-12-24", until = "2026-12-25 00:00" }"#,
                "write it like \"2026-12-24 00:00\"",
            ),
            (
                r#"{ from = "2026-12-25 00:00", until = "2026-12-24 00:00" }"#,
                "must end after it starts",
            ),
            (
                r#"{ every = "Fri 16:00 - Mon 08:00", name = "" }"#,
                "1 to 64 printable",
            ),
            (
                r#"{ every = "Fri 16:00 - Mon 08:00", when = "now" }"#,
                "unknown field `when`",
            ),
        ];
        for (text, says) in cases {
            let error = window(text).expect_err(text);
            assert!(error.contains(says), "{text}: {error}");
        }
    }
}
