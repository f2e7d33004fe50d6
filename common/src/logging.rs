//! Logging for the coordinator and the local cloud (one module, so both read
//! the same variables the same way): `SLIPWAY_LOG` is the filter
//! (default `info`), `SLIPWAY_LOG_FORMAT` is `plain` (default) or `json`.

use tracing_subscriber::EnvFilter;

pub fn init() -> Result<(), String> {
    let filter = EnvFilter::try_from_env("SLIPWAY_LOG")
        .or_else(|_| EnvFilter::try_new("info,h2=warn,tower=warn,hyper=warn"))
        .map_err(|e| format!("SLIPWAY_LOG is not a log filter: {e}"))?;
    // Colours only on a terminal: log files and collectors get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match std::env::var("SLIPWAY_LOG_FORMAT").as_deref() {
        Ok("json") => builder.json().init(),
        Ok("plain") | Err(_) => builder.init(),
        Ok(other) => return Err(format!("SLIPWAY_LOG_FORMAT={other:?}: use plain or json")),
    }
    Ok(())
}
