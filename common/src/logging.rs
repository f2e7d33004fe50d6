//! Logging for the coordinator, the agent and the local cloud (one module, so
//! all read the same settings the same way): `SLIPWAY_LOG` is the filter
//! (default `info`); the format is `plain` (default) or `json` (one object
//! per line, for log shippers), from `--log-format` or `SLIPWAY_LOG_FORMAT`.

use tracing_subscriber::EnvFilter;

/// `format` is the `--log-format` flag, if given; it wins over the variable.
pub fn init(format: Option<&str>) -> Result<(), String> {
    let filter = EnvFilter::try_from_env("SLIPWAY_LOG")
        .or_else(|_| EnvFilter::try_new("info,h2=warn,tower=warn,hyper=warn"))
        .map_err(|e| format!("SLIPWAY_LOG is not a log filter: {e}"))?;
    // Colours only on a terminal: log files and collectors get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let from_env = std::env::var("SLIPWAY_LOG_FORMAT").ok();
    match format.or(from_env.as_deref()) {
        Some("json") => builder.json().init(),
        Some("plain") | None => builder.init(),
        Some(other) => {
            return Err(format!(
                "log format {other:?} (--log-format or SLIPWAY_LOG_FORMAT): use plain or json"
            ));
        }
    }
    Ok(())
}
