//! `slipway infra plan|apply`.

use slipway_proto::v1::InfraRequest;

use crate::client::Client;
use crate::failure::Failure;
use crate::render::{Output, print_json};

/// With `apply`, makes the changes; else only lists them.
pub async fn run(client: &mut Client, output: Output, apply: bool) -> Result<(), Failure> {
    let answer = if apply {
        client.api.infra_apply(InfraRequest {}).await
    } else {
        client.api.infra_plan(InfraRequest {}).await
    };
    let changes = client.answer(answer)?.changes;
    if output == Output::Json {
        return print_json(&changes);
    }
    if changes.is_empty() {
        println!("no changes: the infrastructure matches the fleet file");
    }
    for change in &changes {
        println!("{} {change}", if apply { "done:" } else { "plan:" });
    }
    Ok(())
}
