//! `slipway release add|list|check`.

use crate::client::Client;
use crate::failure::Failure;
use crate::render::{Output, Table, age, or_dash, print, text};
pub use crate::schema::Provenance;

pub async fn add(
    client: &mut Client,
    output: Output,
    project: String,
    version: String,
    image: Option<String>,
    provenance: Provenance,
) -> Result<(), Failure> {
    let release = client
        .register_release(project, version, image, provenance)
        .await?;
    if output.structured() {
        return print(output, &release);
    }
    println!(
        "registered {}@{} (image {})",
        release.project, release.version, release.image_id
    );
    if let Some(p) = &release.provenance {
        for line in p.lines() {
            println!("  {line}");
        }
    }
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
    let mut table = Table::new([
        "PROJECT", "VERSION", "IMAGE", "COMMIT", "AGE", "BY", "CHECKS",
    ]);
    for r in releases {
        let checks = r
            .checks
            .iter()
            .map(|c| format!("{} {}", c.name, if c.passed { "passed" } else { "failed" }))
            .collect::<Vec<_>>()
            .join(", ");
        let commit = r.provenance.as_ref().and_then(|p| p.commit.as_deref());
        table.row([
            r.project,
            r.version,
            r.image_id,
            // Short, as git shows it; `-o json` has the whole hash.
            or_dash(
                commit
                    .map(|c| text(&c.chars().take(12).collect::<String>()))
                    .as_deref(),
            ),
            age(r.registered_at_ms),
            r.registered_by,
            if checks.is_empty() {
                "-".into()
            } else {
                checks
            },
        ]);
    }
    table.print(output.layout());
    Ok(())
}

/// Records a check's result on a release.
pub async fn check(
    client: &mut Client,
    output: Output,
    project: String,
    version: String,
    name: String,
    passed: bool,
    url: Option<String>,
) -> Result<(), Failure> {
    let check = client
        .check_release(project, version, name, passed, url)
        .await?;
    if output.structured() {
        return print(output, &check);
    }
    println!(
        "{}@{}: {} {}",
        check.project,
        check.version,
        check.name,
        if check.passed { "passed" } else { "failed" }
    );
    Ok(())
}
