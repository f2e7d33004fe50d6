//! `slipway infra plan|apply` and `slipway fleet diff`.

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

/// What a new fleet file would change.
pub async fn fleet_diff(
    client: &mut Client,
    output: Output,
    file: std::path::PathBuf,
) -> Result<(), Failure> {
    let text = std::fs::read_to_string(&file).map_err(|e| {
        Failure::usage(format!(
            "cannot read the fleet file {}: {e}",
            file.display()
        ))
    })?;
    let changes = client.fleet_diff(text).await?;
    if output.structured() {
        return print(output, &changes);
    }
    if changes.is_empty() {
        println!(
            "no changes: {} is the fleet the coordinator runs",
            file.display()
        );
    }
    for change in &changes {
        println!("{}", crate::render::text(change));
    }
    Ok(())
}
