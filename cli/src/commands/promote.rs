//! `slipway promote PROJECT --to ENV`.

use crate::client::Client;
use crate::failure::{Exit, Failure};
use crate::render::{Output, print, text};

pub async fn promote(
    client: &mut Client,
    output: Output,
    project: String,
    to: String,
    override_freeze: Option<String>,
) -> Result<(), Failure> {
    let record = client.promote(project, to, override_freeze).await?;
    if output.structured() {
        print(output, &record)?;
    }
    // Held by the approval gate: CI must not take it for done.
    if let Some(waiting) = &record.awaiting_approval {
        return Err(Failure::new(
            format!("not promoted yet: {}", text(waiting)),
            Exit::Refused,
        ));
    }
    if output.structured() {
        return Ok(());
    }
    println!(
        "{} -> {} ({})",
        record.name,
        record.environment.as_deref().unwrap_or("-"),
        record.endpoint.as_deref().unwrap_or("endpoint unknown")
    );
    if let Some(previous) = &record.previous_environment {
        println!(
            "flip back with: slipway promote {} --to {previous}",
            record.project
        );
    }
    Ok(())
}
