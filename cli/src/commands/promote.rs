//! `slipway promote PROJECT --to ENV`.

use crate::client::Client;
use crate::failure::Failure;
use crate::render::{Output, print};

pub async fn promote(
    client: &mut Client,
    output: Output,
    project: String,
    to: String,
) -> Result<(), Failure> {
    let record = client.promote(project, to).await?;
    if output.structured() {
        return print(output, &record);
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
