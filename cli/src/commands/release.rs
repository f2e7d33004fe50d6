//! `slipway release add|list`.

use crate::client::Client;
use crate::failure::Failure;
use crate::render::{Output, Table, age, print};

pub async fn add(
    client: &mut Client,
    output: Output,
    project: String,
    version: String,
    image: Option<String>,
) -> Result<(), Failure> {
    let release = client.register_release(project, version, image).await?;
    if output.structured() {
        return print(output, &release);
    }
    println!(
        "registered {}@{} (image {})",
        release.project, release.version, release.image_id
    );
    Ok(())
}

pub async fn list(
    client: &mut Client,
    output: Output,
    project: Option<String>,
) -> Result<(), Failure> {
    let releases = client.releases(project).await?;
    if output.structured() {
        return print(output, &releases);
    }
    let mut table = Table::new(["PROJECT", "VERSION", "IMAGE", "AGE", "BY"]);
    for r in releases {
        table.row([
            r.project,
            r.version,
            r.image_id,
            age(r.registered_at_ms),
            r.registered_by,
        ]);
    }
    table.print(output.layout());
    Ok(())
}
