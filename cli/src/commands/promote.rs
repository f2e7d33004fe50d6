//! `slipway promote PROJECT --to ENV`.

use slipway_proto::v1::PromoteRequest;

use crate::client::Client;
use crate::failure::Failure;
use crate::render::{Output, print_json};

pub async fn promote(
    client: &mut Client,
    output: Output,
    project: String,
    to: String,
) -> Result<(), Failure> {
    let request = PromoteRequest {
        project,
        environment: to,
    };
    let answer = client.api.promote(request).await;
    let record = client.answer(answer)?;
    if output == Output::Json {
        return print_json(&record);
    }
    println!(
        "{} -> {} ({})",
        record.name, record.environment, record.endpoint
    );
    if !record.previous_environment.is_empty() {
        println!(
            "flip back with: slipway promote {} --to {}",
            record.project, record.previous_environment
        );
    }
    Ok(())
}
