//! `slipway promote PROJECT --to ENV`.

use crate::client::Client;
use crate::failure::Failure;
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
        return print(output, &record);
    }
    if let Some(waiting) = &record.awaiting_approval {
        println!("not promoted yet: {}", text(waiting));
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
