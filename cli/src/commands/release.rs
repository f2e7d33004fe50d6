//! `slipway release add|list`.

use slipway_proto::v1::{ListReleasesRequest, RegisterReleaseRequest};

use crate::client::Client;
use crate::failure::Failure;
use crate::render::{Output, Table, print_json, when};

pub async fn add(
    client: &mut Client,
    output: Output,
    project: String,
    version: String,
    image: Option<String>,
) -> Result<(), Failure> {
    let request = RegisterReleaseRequest {
        project,
        version,
        image_id: image.unwrap_or_default(),
    };
    let answer = client.api.register_release(request).await;
    let release = client.answer(answer)?;
    if output == Output::Json {
        return print_json(&release);
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
    let request = ListReleasesRequest {
        project: project.unwrap_or_default(),
    };
    let answer = client.api.list_releases(request).await;
    let list = client.answer(answer)?;
    if output == Output::Json {
        return print_json(&list.releases);
    }
    let mut table = Table::new(["PROJECT", "VERSION", "IMAGE", "REGISTERED", "BY"]);
    for r in list.releases {
        table.row([
            r.project,
            r.version,
            r.image_id,
            when(r.registered_at_ms),
            r.registered_by,
        ]);
    }
    table.print();
    Ok(())
}
