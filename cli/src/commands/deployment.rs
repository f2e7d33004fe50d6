//! Deployments: `deploy`, `rollback` (both with `--wait`), `cancel`, `show`,
//! `deployments` and `queue`.

use std::time::{Duration, Instant};

use slipway_proto::v1::{
    CancelRequest, DeployRequest, Deployment, DeploymentsRequest, GetDeploymentRequest,
    QueueRequest, RollbackRequest,
};

use crate::client::Client;
use crate::failure::Failure;
use crate::render::{Output, Table, print_json, text, when};

/// What `deploy` was asked for.
#[derive(Debug)]
pub struct Deploy {
    pub project: String,
    pub version: String,
    pub environment: String,
    pub wait: bool,
}

pub async fn deploy(client: &mut Client, output: Output, asked: Deploy) -> Result<(), Failure> {
    let request = DeployRequest {
        project: asked.project,
        version: asked.version,
        environment: asked.environment,
    };
    let answer = client.api.deploy(request).await;
    let deployment = client.answer(answer)?;
    follow(client, output, deployment, asked.wait).await
}

pub async fn rollback(
    client: &mut Client,
    output: Output,
    project: String,
    environment: String,
    wait: bool,
) -> Result<(), Failure> {
    let request = RollbackRequest {
        project,
        environment,
    };
    let answer = client.api.rollback(request).await;
    let deployment = client.answer(answer)?;
    follow(client, output, deployment, wait).await
}

pub async fn cancel(client: &mut Client, output: Output, id: String) -> Result<(), Failure> {
    let answer = client.api.cancel(CancelRequest { id }).await;
    let deployment = client.answer(answer)?;
    if output == Output::Json {
        return print_json(&deployment);
    }
    if deployment.phase == "cancelled" {
        println!("{}: cancelled (removed from the queue)", deployment.id);
    } else {
        println!(
            "{}: cancel requested; it rolls back from {}",
            deployment.id, deployment.phase
        );
    }
    Ok(())
}

/// One deployment with its phase timestamps.
pub async fn show(client: &mut Client, output: Output, id: String) -> Result<(), Failure> {
    let answer = client.api.get_deployment(GetDeploymentRequest { id }).await;
    let d = client.answer(answer)?;
    if output == Output::Json {
        return print_json(&d);
    }
    println!(
        "{} {}@{} -> {} ({}), requested by {}",
        d.id, d.project, d.version, d.environment, d.phase, d.requested_by
    );
    let start = d.requested_at_ms;
    for p in &d.phases {
        println!(
            "  {:>8} {}",
            format!("+{:.1}s", (p.at_ms - start) as f64 / 1000.0),
            p.phase
        );
    }
    if !d.reason.is_empty() {
        println!("  reason: {}", text(&d.reason));
    }
    if !d.waiting_on.is_empty() {
        println!("  waiting: {}", text(&d.waiting_on));
    }
    Ok(())
}

/// History, newest first.
pub async fn list(
    client: &mut Client,
    output: Output,
    project: Option<String>,
    environment: Option<String>,
    limit: u32,
) -> Result<(), Failure> {
    let request = DeploymentsRequest {
        project: project.unwrap_or_default(),
        environment: environment.unwrap_or_default(),
        limit,
    };
    let answer = client.api.deployments(request).await;
    let list = client.answer(answer)?;
    if output == Output::Json {
        return print_json(&list.deployments);
    }
    let mut table = Table::new([
        "ID",
        "PROJECT",
        "ENV",
        "VERSION",
        "PHASE",
        "REQUESTED",
        "BY",
        "WHY",
    ]);
    for d in list.deployments {
        let why = if d.reason.is_empty() {
            d.waiting_on.clone()
        } else {
            d.reason.clone()
        };
        table.row([
            d.id,
            d.project,
            d.environment,
            d.version,
            d.phase,
            when(d.requested_at_ms),
            d.requested_by,
            why,
        ]);
    }
    table.print();
    Ok(())
}

/// What runs on every target, and who waits behind it.
pub async fn queue(client: &mut Client, output: Output) -> Result<(), Failure> {
    let answer = client.api.queue(QueueRequest {}).await;
    let queue = client.answer(answer)?;
    if output == Output::Json {
        return print_json(&queue.targets);
    }
    if queue.targets.is_empty() {
        println!("the queue is empty");
    }
    for target in queue.targets {
        println!("{}/{}:", target.project, target.environment);
        match target.active {
            Some(d) => println!(
                "  active   {} {} ({}){}",
                d.id,
                d.version,
                d.phase,
                waiting(&d)
            ),
            None => println!("  active   none"),
        }
        for (i, d) in target.waiting.iter().enumerate() {
            println!(
                "  #{:<7} {} {} by {}{}",
                i + 1,
                d.id,
                d.version,
                d.requested_by,
                waiting(d)
            );
        }
    }
    Ok(())
}

fn waiting(d: &Deployment) -> String {
    if d.waiting_on.is_empty() {
        String::new()
    } else {
        format!(": {}", text(&d.waiting_on))
    }
}

/// Prints a queued deployment; with `wait`, follows it phase by phase to the end.
async fn follow(
    client: &mut Client,
    output: Output,
    deployment: Deployment,
    wait: bool,
) -> Result<(), Failure> {
    let json = output == Output::Json;
    if !json {
        println!(
            "queued {}: {}@{} -> {}",
            deployment.id, deployment.project, deployment.version, deployment.environment
        );
    }
    if !wait {
        return if json {
            print_json(&deployment)
        } else {
            Ok(())
        };
    }
    let started = Instant::now();
    let mut shown = 0;
    let mut last_waiting = String::new();
    let mut failures = 0;
    let last = loop {
        let request = GetDeploymentRequest {
            id: deployment.id.clone(),
        };
        let current = match client.api.get_deployment(request).await {
            Ok(reply) => {
                failures = 0;
                reply.into_inner()
            }
            // The coordinator may restart mid-deploy; the deployment resumes, so keep following.
            Err(status) if status.code() == tonic::Code::Unavailable && failures < 60 => {
                failures += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            Err(status) => return Err(client.failure(status)),
        };
        if !json {
            for phase in current.phases.iter().skip(shown) {
                println!(
                    "  {:>7} {}",
                    format!("+{:.1}s", started.elapsed().as_secs_f64()),
                    phase.phase
                );
            }
            if current.waiting_on != last_waiting && !current.waiting_on.is_empty() {
                println!("          ({})", text(&current.waiting_on));
            }
        }
        shown = current.phases.len();
        last_waiting = current.waiting_on.clone();
        if current.finished {
            break current;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    if json {
        print_json(&last)?;
    }
    match last.phase.as_str() {
        "succeeded" => {
            if !json {
                println!(
                    "{} succeeded: {}@{} serves {}",
                    last.id, last.project, last.version, last.environment
                );
            }
            Ok(())
        }
        phase => Err(Failure::new(
            format!(
                "{} {phase}: {}",
                last.id,
                if last.reason.is_empty() {
                    "no reason recorded"
                } else {
                    &last.reason
                }
            ),
            1,
        )),
    }
}
