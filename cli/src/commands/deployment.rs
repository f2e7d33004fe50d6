//! Deployments: `deploy`, `rollback` (both with `--wait`), `cancel`, `show`
//! (with `--follow`), `deployments` and `queue`.

use std::time::{Duration, Instant};

use crate::client::Client;
use crate::failure::{Exit, Failure};
use crate::render::{self, Output, Table, age, or_dash, print, state, text};
use crate::schema::Deployment;

/// How long to keep trying a coordinator that went away mid-wait.
const REACH_FOR: Duration = Duration::from_secs(30);

/// How often a follower asks for the deployment when no event woke it.
const POLL: Duration = Duration::from_secs(1);

/// A silent wait prints a line this often, so a person sees it is alive.
const TICK: Duration = Duration::from_secs(15);

/// Whether and how long to follow a deployment after queueing it.
#[derive(Debug, Clone, Copy)]
pub struct Wait {
    pub wait: bool,
    pub timeout: Option<Duration>,
}

/// What `deploy` was asked for.
#[derive(Debug)]
pub struct Deploy {
    pub project: String,
    pub version: String,
    pub environment: String,
    pub wait: Wait,
}

pub async fn deploy(client: &mut Client, output: Output, asked: Deploy) -> Result<(), Failure> {
    let deployment = client
        .deploy(asked.project, asked.version, asked.environment)
        .await?;
    queued(client, output, deployment, asked.wait).await
}

pub async fn rollback(
    client: &mut Client,
    output: Output,
    project: String,
    environment: String,
    wait: Wait,
) -> Result<(), Failure> {
    let deployment = client.rollback(project, environment).await?;
    if deployment.rollback_requested_by.is_none() {
        // No standby to go back to: a redeploy of the previous release.
        return queued(client, output, deployment, wait).await;
    }
    // The deployment watching its new instances goes back to its standby ones:
    // for this command, ending rolled back is the success.
    if !wait.wait {
        if output.structured() {
            return print(output, &deployment);
        }
        println!(
            "{}: going back to its standby instances (follow it: slipway show {} --follow)",
            deployment.id, deployment.id
        );
        return Ok(());
    }
    if !output.structured() {
        println!(
            "{}: going back to its standby instances on {}",
            deployment.id, deployment.environment
        );
    }
    follow(client, output, deployment, wait.timeout, Goal::Standby).await
}

/// How a followed deployment should end for the command to succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Goal {
    /// Succeeded: the release serves.
    Serve,
    /// Rolled back to the standby instances, as `rollback` asked.
    Standby,
}

pub async fn cancel(client: &mut Client, output: Output, id: String) -> Result<(), Failure> {
    let deployment = client.cancel(id).await?;
    if output.structured() {
        return print(output, &deployment);
    }
    if deployment.phase == "cancelled" {
        println!("{}: cancelled (removed from the queue)", deployment.id);
    } else {
        println!(
            "{}: cancel requested; it rolls back from {} (follow it: slipway show {} --follow)",
            deployment.id, deployment.phase, deployment.id
        );
    }
    Ok(())
}

/// Approves a queued deployment its environment's gate holds.
pub async fn approve(client: &mut Client, output: Output, id: String) -> Result<(), Failure> {
    let deployment = client.approve(id).await?;
    if output.structured() {
        return print(output, &deployment);
    }
    println!(
        "{}: approved by {}; {}",
        deployment.id,
        deployment.approved_by.as_deref().unwrap_or("you"),
        after_gate(&deployment)
    );
    Ok(())
}

/// Lets a queued deployment through its environment's freeze window.
pub async fn override_freeze(
    client: &mut Client,
    output: Output,
    id: String,
    reason: String,
) -> Result<(), Failure> {
    let deployment = client.override_freeze(id, reason).await?;
    if output.structured() {
        return print(output, &deployment);
    }
    println!(
        "{}: {}; {}",
        deployment.id,
        text(
            deployment
                .passes_freeze
                .as_deref()
                .unwrap_or("passes the freeze")
        ),
        after_gate(&deployment)
    );
    Ok(())
}

/// What a deployment whose gate just opened does next.
fn after_gate(deployment: &Deployment) -> String {
    match &deployment.waiting_on {
        Some(waiting) => format!("still waiting: {}", text(waiting)),
        None => "it leaves the queue at its turn, once any other gate is open".to_string(),
    }
}

/// One deployment with its phase times; with `follow`, to its end.
pub async fn show(
    client: &mut Client,
    output: Output,
    id: String,
    follow_it: Option<Option<Duration>>,
) -> Result<(), Failure> {
    let d = client.deployment(&id).await?;
    if let Some(timeout) = follow_it {
        if !output.structured() {
            header(output, &d);
        }
        return follow(client, output, d, timeout, Goal::Serve).await;
    }
    if output.structured() {
        return print(output, &d);
    }
    header(output, &d);
    for line in d.provenance.iter().flat_map(|p| p.lines()) {
        println!("  {line}");
    }
    if let Some(passes) = &d.passes_freeze {
        println!("  passes freezes: {}", text(passes));
    }
    for p in &d.phases {
        println!(
            "  {:>8} {}",
            format!("+{:.1}s", (p.at_ms - d.requested_at_ms) as f64 / 1000.0),
            state(output, &p.phase)
        );
    }
    if let Some(m) = &d.migration {
        let on = m
            .instance_id
            .as_deref()
            .map(|i| format!(" on {i}"))
            .unwrap_or_default();
        println!(
            "  migration of {}{on}: {}",
            m.store,
            state(output, &m.state)
        );
        if let Some(detail) = m.detail.as_deref().filter(|_| m.state != "failed") {
            println!("    {}", text(detail));
        }
        for line in m.output.iter().rev().take(10).rev() {
            println!("    | {}", text(line));
        }
    }
    if let Some(config) = &d.config {
        let fleet = d
            .fleet_generation
            .map(|g| format!(", fleet generation {g}"))
            .unwrap_or_default();
        println!(
            "  config (digest {}{fleet}):",
            &config.digest[..config.digest.len().min(16)]
        );
        for (key, value) in &config.variables {
            println!("    {key}={}", text(value));
        }
    }
    if let Some(reason) = &d.reason {
        println!("  reason: {}", text(reason));
    }
    if let Some(waiting_on) = &d.waiting_on {
        println!("  now: {}", text(waiting_on));
    }
    Ok(())
}

fn header(output: Output, d: &Deployment) {
    println!(
        "{} {}@{} -> {} ({}), requested by {} {} ago",
        d.id,
        d.project,
        d.version,
        d.environment,
        state(output, &d.phase),
        d.requested_by,
        age(d.requested_at_ms)
    );
}

/// How two deployments' configurations differ.
pub async fn diff(
    client: &mut Client,
    output: Output,
    from: String,
    to: String,
) -> Result<(), Failure> {
    let (a, b) = (
        client.deployment(&from).await?,
        client.deployment(&to).await?,
    );
    let Some(diff) = crate::schema::ConfigDiff::of(&a, &b) else {
        let pending = if a.config.is_none() { &a.id } else { &b.id };
        return Err(Failure::new(
            format!("{pending} has pushed no configuration yet: compare it once it is configuring"),
            Exit::Refused,
        ));
    };
    if output.structured() {
        return print(output, &diff);
    }
    if diff.same {
        println!(
            "{} and {} pushed the same configuration",
            diff.from, diff.to
        );
        return Ok(());
    }
    for (key, value) in &diff.added {
        println!("+ {key}={}", text(value));
    }
    for key in &diff.removed {
        println!("- {key}");
    }
    for (key, [was, now]) in &diff.changed {
        println!("~ {key}: {} -> {}", text(was), text(now));
    }
    if diff.secrets_differ {
        println!("~ a secret's value differs (the digests do; values are never shown)");
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
    let list = client.deployments(project, environment, limit).await?;
    if output.structured() {
        return print(output, &list);
    }
    let mut table = Table::new([
        "ID", "PROJECT", "ENV", "VERSION", "PHASE", "AGE", "BY", "WHY",
    ])
    .states(4);
    for d in list {
        let why = d.reason.clone().or(d.waiting_on.clone());
        table.row([
            d.id,
            d.project,
            d.environment,
            d.version,
            d.phase,
            age(d.requested_at_ms),
            d.requested_by,
            or_dash(why.as_deref()),
        ]);
    }
    table.print(output.layout());
    Ok(())
}

/// What runs on every target, and who waits behind it.
pub async fn queue(client: &mut Client, output: Output) -> Result<(), Failure> {
    let targets = client.queue().await?;
    if output.structured() {
        return print(output, &targets);
    }
    if targets.is_empty() {
        println!("the queue is empty");
    }
    for target in targets {
        println!("{}/{}:", target.project, target.environment);
        match target.active {
            Some(d) => println!(
                "  active   {} {} ({}){}",
                d.id,
                d.version,
                state(output, &d.phase),
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
    d.waiting_on
        .as_deref()
        .map(|w| format!(": {}", text(w)))
        .unwrap_or_default()
}

/// Prints a queued deployment; with `--wait`, follows it to the end.
async fn queued(
    client: &mut Client,
    output: Output,
    deployment: Deployment,
    wait: Wait,
) -> Result<(), Failure> {
    if !wait.wait {
        if output.structured() {
            return print(output, &deployment);
        }
        println!(
            "queued {}: {}@{} -> {} (follow it: slipway show {} --follow)",
            deployment.id,
            deployment.project,
            deployment.version,
            deployment.environment,
            deployment.id
        );
        return Ok(());
    }
    if !output.structured() {
        println!(
            "queued {}: {}@{} -> {}",
            deployment.id, deployment.project, deployment.version, deployment.environment
        );
    }
    follow(client, output, deployment, wait.timeout, Goal::Serve).await
}

/// How to get back to a deployment the wait left behind.
fn still_going(d: &Deployment) -> String {
    format!(
        "{} goes on: follow it with `slipway show {} --follow`, cancel it with `slipway cancel {}`",
        d.id, d.id, d.id
    )
}

/// Follows a deployment phase by phase until it finishes, `timeout` passes,
/// Ctrl-C, or the coordinator stays away; exits by how it ended.
async fn follow(
    client: &mut Client,
    output: Output,
    mut last: Deployment,
    timeout: Option<Duration>,
    goal: Goal,
) -> Result<(), Failure> {
    let structured = output.structured();
    let started = Instant::now();
    let mut shown = 0;
    let mut said_waiting: Option<String> = None;
    let mut last_said = Instant::now();
    let mut away_since: Option<Instant> = None;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    // Each of its events wakes the loop at once; the poll is for what is no
    // event (what it waits on) and for noticing the coordinator went away.
    let mut woken = client.wake_on_events(&last.id);
    let ended = loop {
        if !structured {
            for phase in last.phases.iter().skip(shown) {
                println!(
                    "  {:>7} {}",
                    format!("+{:.1}s", started.elapsed().as_secs_f64()),
                    state(output, &phase.phase)
                );
                last_said = Instant::now();
            }
            // What it waits on, when that changes (a migration's progress, say).
            if last.waiting_on.is_some() && last.waiting_on != said_waiting {
                println!(
                    "          ({})",
                    last.waiting_on.as_deref().map(text).unwrap_or_default()
                );
                said_waiting = last.waiting_on.clone();
                last_said = Instant::now();
            }
            if last_said.elapsed() >= TICK {
                let now = last.waiting_on.as_deref().map(text).unwrap_or_default();
                println!(
                    "  {:>7} still {} {now}",
                    format!("+{:.0}s", started.elapsed().as_secs_f64()),
                    last.phase
                );
                last_said = Instant::now();
            }
        }
        shown = last.phases.len();
        if last.finished {
            break None;
        }
        if timeout.is_some_and(|t| started.elapsed() >= t) {
            break Some(Failure::new(
                format!(
                    "timed out after {}: {} is {}; {}",
                    humantime::format_duration(timeout.unwrap_or_default()),
                    last.id,
                    last.phase,
                    still_going(&last)
                ),
                Exit::TimedOut,
            ));
        }
        tokio::select! {
            _ = &mut interrupted => {
                break Some(Failure::new(
                    format!("interrupted while {} is {}; {}", last.id, last.phase, still_going(&last)),
                    Exit::InFlight,
                ));
            }
            _ = woken.recv() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
        match client.try_deployment(&last.id).await {
            Ok(current) => {
                if away_since.take().is_some() && !structured {
                    println!("          (the coordinator is back)");
                }
                last = current;
            }
            // The coordinator may restart mid-deploy; the deployment resumes, so keep following.
            Err(status) if crate::client::is_transport(&status) => {
                let since = *away_since.get_or_insert_with(|| {
                    if !structured {
                        println!(
                            "          (lost the coordinator; trying again for {}s, the deployment goes on)",
                            REACH_FOR.as_secs()
                        );
                    }
                    Instant::now()
                });
                if since.elapsed() >= REACH_FOR {
                    let why = client.failure(&status).message;
                    break Some(Failure::new(
                        format!("{why}; {}", still_going(&last)),
                        Exit::InFlight,
                    ));
                }
            }
            Err(status) => break Some(client.failure(&status)),
        }
    };
    if structured {
        print(output, &last)?;
    }
    if let Some(failure) = ended {
        return Err(failure);
    }
    let why = last.reason.as_deref().unwrap_or("no reason recorded");
    match last.phase.as_str() {
        "rolled_back" if goal == Goal::Standby => {
            if !structured {
                println!(
                    "{} {}: its standby instances serve {} again ({})",
                    last.id,
                    state(output, "rolled_back"),
                    last.environment,
                    render::text(why)
                );
            }
            Ok(())
        }
        "succeeded" if goal == Goal::Standby => Err(Failure::new(
            format!(
                "{} succeeded before it could go back to its standby instances ({}): run `slipway rollback {} --env {}` again to redeploy the previous release",
                last.id,
                render::text(why),
                last.project,
                last.environment
            ),
            Exit::Failed,
        )),
        "succeeded" => {
            if !structured {
                println!(
                    "{} {}: {}@{} serves {}",
                    last.id,
                    state(output, "succeeded"),
                    last.project,
                    last.version,
                    last.environment
                );
            }
            Ok(())
        }
        "cancelled" => Err(Failure::new(
            format!("{} cancelled: {}", last.id, render::text(why)),
            Exit::Cancelled,
        )),
        phase => Err(Failure::new(
            format!("{} {phase}: {}", last.id, render::text(why)),
            Exit::RolledBack,
        )),
    }
}
