//! How answers are printed: JSON or YAML for scripts (one document per
//! command), aligned tables and plain lines for people, with readable times
//! and, on a terminal only, colour.

use std::io::IsTerminal;

use anyhow::Context;

use crate::failure::Failure;
pub use crate::table::{Layout, Table};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Tables and lines for people, cut to 120 columns.
    Text,
    /// Tables as wide as their cells.
    Wide,
    /// One JSON document (cli/schema.json).
    Json,
    /// The same document as YAML.
    Yaml,
}

impl Output {
    /// JSON or YAML: print the document only, no prose.
    pub fn structured(self) -> bool {
        matches!(self, Output::Json | Output::Yaml)
    }

    /// How tables are laid out: wide or cut, coloured on a terminal unless
    /// `NO_COLOR` is set (https://no-color.org).
    pub fn layout(self) -> Layout {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Layout {
            wide: self == Output::Wide,
            colour: !no_color && std::io::stdout().is_terminal(),
        }
    }
}

/// Prints `value` as one JSON or YAML document.
pub fn print<T: serde::Serialize>(output: Output, value: &T) -> Result<(), Failure> {
    let text = if output == Output::Yaml {
        let json = serde_json::to_value(value).context("cannot print YAML")?;
        crate::yaml::to_yaml(&json)
    } else {
        let mut text = serde_json::to_string_pretty(value).context("cannot print JSON")?;
        text.push('\n');
        text
    };
    print!("{text}");
    Ok(())
}

/// A time for a table cell: the time of day for today (UTC), the date too for
/// anything older or newer, so last month's release does not read as today's.
pub fn when(ms: i64) -> String {
    crate::time_text::when(ms, now_ms())
}

/// How long ago, `3m`, or `in 89d`.
pub fn age(ms: i64) -> String {
    crate::time_text::age(ms, now_ms())
}

/// The time `text` (a duration, like 1h or 30m) ago, in ms since the epoch.
pub fn since(text: &str) -> Result<i64, Failure> {
    let back = humantime::parse_duration(text).map_err(|e| {
        Failure::usage(format!(
            "--since {text:?} is not a duration ({e}): write it like 1h or 30m"
        ))
    })?;
    let back = i64::try_from(back.as_millis()).unwrap_or(i64::MAX);
    Ok(now_ms().saturating_sub(back).max(0))
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

/// A state (phase, connection) for a line of prose, coloured like tables do.
pub fn state(output: Output, state: &str) -> String {
    match crate::table::colour_of(state).filter(|_| output.layout().colour) {
        Some(code) => format!("\u{1b}[{code}m{state}\u{1b}[0m"),
        None => state.to_string(),
    }
}

pub fn yes(flag: bool) -> String {
    if flag { "yes".into() } else { "no".into() }
}

/// An optional value for a cell: `-` when absent.
pub fn or_dash(value: Option<&str>) -> String {
    value.unwrap_or("-").to_string()
}
