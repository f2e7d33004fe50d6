//! How answers are printed: JSON for scripts, aligned tables and plain lines
//! for people, and times a person can read.

use anyhow::Context;

use crate::failure::Failure;
pub use crate::table::Table;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

pub fn print_json<T: serde::Serialize>(value: &T) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value).context("cannot print JSON")?;
    println!("{text}");
    Ok(())
}

/// A time for a table cell: the time of day for today (UTC), the date too for
/// anything older or newer, so last month's release does not read as today's.
pub fn when(ms: i64) -> String {
    crate::time_text::when(ms, now_ms())
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Free text from the coordinator (a reason, a cloud's message) as a line a
/// terminal shows as written: control characters escaped, cut at 4,096.
pub fn text(text: &str) -> String {
    crate::table::printable(text, 4096)
}

pub fn yes(flag: bool) -> String {
    if flag { "yes".into() } else { "no".into() }
}
