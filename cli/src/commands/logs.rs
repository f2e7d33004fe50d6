//! `slipway logs`: services' output from the running instances of a project
//! in an environment, each line with its instance and service; `--follow`
//! for new lines as they are written.

use std::io::Write;

use crate::api::{Broke, LogsAsked};
use crate::client::Client;
use crate::failure::Failure;
use crate::render::{Output, text};

pub async fn run(client: &mut Client, output: Output, asked: LogsAsked) -> Result<(), Failure> {
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let shown = async {
        let mut feed = client.logs(&asked).await?;
        while let Some(line) = feed.next().await? {
            let said = match output {
                Output::Json => serde_json::to_string(&line).unwrap_or_default(),
                Output::Yaml => {
                    let json = serde_json::to_value(&line).unwrap_or_default();
                    format!("---\n{}", crate::yaml::to_yaml(&json).trim_end())
                }
                Output::Text | Output::Wide => {
                    format!(
                        "{} {} | {}",
                        line.instance_id,
                        line.service,
                        text(&line.line)
                    )
                }
            };
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{said}");
            let _ = out.flush();
        }
        Ok::<(), Broke>(())
    };
    tokio::select! {
        // Stopping a follow is how it ends: not a failure.
        _ = &mut interrupted => Ok(()),
        shown = shown => shown.map_err(|(Broke::Opening(status) | Broke::Reading(status))| client.failure(&status)),
    }
}
