//! `slipway infra plan|apply` and `slipway fleet diff|apply`.

use crate::client::Client;
use crate::failure::Failure;
use crate::render::{Output, Table, or_dash, print};

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

/// Instances no deployment knows about; with `terminate`, terminated.
pub async fn orphans(client: &mut Client, output: Output, terminate: bool) -> Result<(), Failure> {
    let found = client.infra_orphans(terminate).await?;
    if output.structured() {
        return print(output, &found);
    }
    if found.orphans.is_empty() {
        println!("no orphans: every instance Slipway tagged belongs to a deployment it knows");
        return Ok(());
    }
    let mut table = Table::new(["INSTANCE", "PROJECT", "ENV", "DEPLOYMENT", "RELEASE", "IP"]);
    for o in &found.orphans {
        table.row([
            o.instance_id.clone(),
            o.project.clone(),
            o.environment.clone(),
            o.deployment.clone(),
            o.release.clone(),
            or_dash(o.private_ip.as_deref()),
        ]);
    }
    table.print(output.layout());
    if found.terminated {
        println!("terminated {} orphan(s)", found.orphans.len());
    } else {
        println!(
            "left running: check none serves, then `slipway infra orphans --terminate` terminates them"
        );
    }
    Ok(())
}

/// What a new fleet file would change.
pub async fn fleet_diff(
    client: &mut Client,
    output: Output,
    file: std::path::PathBuf,
) -> Result<(), Failure> {
    let changes = client.fleet_diff(read(&file)?).await?;
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

/// Takes a new fleet file, saying what changed and what infrastructure it
/// still lacks.
pub async fn fleet_apply(
    client: &mut Client,
    output: Output,
    file: std::path::PathBuf,
) -> Result<(), Failure> {
    let applied = client.fleet_apply(read(&file)?).await?;
    if output.structured() {
        return print(output, &applied);
    }
    if applied.changes.is_empty() {
        println!(
            "no changes: {} is the fleet the coordinator runs (generation {})",
            file.display(),
            applied.generation
        );
        return Ok(());
    }
    for change in &applied.changes {
        println!("{}", crate::render::text(change));
    }
    println!(
        "fleet generation {} in force: deployments from now on take it; those in progress keep theirs",
        applied.generation
    );
    if !applied.infra.is_empty() {
        println!("the cloud lacks what it needs; `slipway infra apply` makes it:");
        for change in &applied.infra {
            println!("  {change}");
        }
    }
    Ok(())
}

fn read(file: &std::path::Path) -> Result<String, Failure> {
    std::fs::read_to_string(file).map_err(|e| {
        Failure::usage(format!(
            "cannot read the fleet file {}: {e}",
            file.display()
        ))
    })
}
