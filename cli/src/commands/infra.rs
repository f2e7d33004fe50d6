//! `slipway infra plan|apply`.

use crate::client::Client;
use crate::failure::Failure;
use crate::render::{Output, print};

/// With `apply`, makes the changes; else only lists them.
pub async fn run(client: &mut Client, output: Output, apply: bool) -> Result<(), Failure> {
    let changes = client.infra(apply).await?;
    if output.structured() {
        return print(output, &changes);
    }
    if changes.is_empty() {
        println!("no changes: the infrastructure matches the fleet file");
    }
    for change in &changes {
        println!("{} {change}", if apply { "done:" } else { "plan:" });
    }
    Ok(())
}
