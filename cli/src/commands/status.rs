//! `slipway status [PROJECT]`: environments, versions, what is in flight, load
//! balancers and instances.

use crate::client::Client;
use crate::failure::Failure;
use crate::render::{Output, Table, age, or_dash, print, state, text, yes};
use crate::schema::{Environment, Instance, Project, PublicRecord, Service};

pub async fn show(
    client: &mut Client,
    output: Output,
    project: Option<String>,
) -> Result<(), Failure> {
    let projects = client.status(project.clone()).await?;
    if output.structured() {
        return match (project, projects.as_slice()) {
            (Some(_), [one]) => print(output, one),
            _ => print(output, &projects),
        };
    }
    for p in &projects {
        print_project(output, p);
    }
    Ok(())
}

fn print_public(r: &PublicRecord) {
    let to = r.environment.as_deref().unwrap_or("nowhere yet");
    let endpoint = r
        .endpoint
        .as_deref()
        .map(|e| format!(" ({e})"))
        .unwrap_or_default();
    let pending = if r.pending {
        " [promotion pending: DNS not yet confirmed, the coordinator is finishing it]"
    } else {
        ""
    };
    println!("  public {} -> {to}{endpoint}{pending}", r.name);
    if let Some(error) = &r.dns_error {
        println!("  cannot read DNS: {}", text(error));
    }
}

/// `web: running (2 restarts)`, one per service.
fn services(services: &[Service]) -> String {
    let each: Vec<String> = services
        .iter()
        .map(|s| match s.restarts {
            0 => format!("{}: {}", s.name, s.state),
            1 => format!("{}: {} (1 restart)", s.name, s.state),
            n => format!("{}: {} ({n} restarts)", s.name, s.state),
        })
        .collect();
    if each.is_empty() {
        "-".into()
    } else {
        each.join(", ")
    }
}

/// The deployment in flight and the queue behind it, for the DEPLOYING column.
fn in_flight(e: &Environment) -> String {
    let behind = match e.queued {
        0 => String::new(),
        n => format!(" +{n} queued"),
    };
    match &e.in_flight {
        Some(d) => format!("{} {} {}{behind}", d.id, d.version, d.phase),
        None if e.queued > 0 => format!("{} queued", e.queued),
        None => "-".into(),
    }
}

fn print_project(output: Output, p: &Project) {
    println!("{}", p.name);
    if let Some(r) = &p.public_record {
        print_public(r);
    }
    let mut table = Table::new([
        "ENV",
        "VERSION",
        "DEPLOYING",
        "ENDPOINT",
        "INSTANCE",
        "IP",
        "STATE",
        "AGENT",
        "READY",
        "IN LB",
        "SERVICES",
    ])
    .states(6)
    .states(7);
    for e in &p.environments {
        let head = [
            e.name.clone(),
            // With its commit, short as git shows it: what source serves here.
            match (
                &e.active_version,
                e.active_provenance.as_ref().and_then(|p| p.commit.as_ref()),
            ) {
                (Some(version), Some(commit)) => text(&format!(
                    "{version} {}",
                    commit.chars().take(7).collect::<String>()
                )),
                (version, _) => or_dash(version.as_deref()),
            },
            in_flight(e),
            or_dash(e.endpoint.as_deref()),
        ];
        if e.instances.is_empty() {
            let mut row: [String; 11] = Default::default();
            row[..4].clone_from_slice(&head);
            row[4] = "-".into();
            table.row(row);
        }
        for (i, inst) in e.instances.iter().enumerate() {
            let head = if i == 0 {
                head.clone()
            } else {
                Default::default()
            };
            table.row(instance_row(head, inst));
        }
    }
    table.print(output.layout());
    for e in &p.environments {
        if let Some(d) = &e.in_flight {
            println!(
                "  {}: {} {} for {}{}",
                e.name,
                d.id,
                state(output, &d.phase),
                age(d.requested_at_ms),
                d.waiting_on
                    .as_deref()
                    .map(|w| format!(" ({})", text(w)))
                    .unwrap_or_default()
            );
        }
    }
}

fn instance_row(head: [String; 4], inst: &Instance) -> [String; 11] {
    let [env, version, deploying, endpoint] = head;
    [
        env,
        version,
        deploying,
        endpoint,
        inst.instance_id.clone(),
        or_dash(inst.private_ip.as_deref()),
        inst.state.clone(),
        inst.agent.clone(),
        yes(inst.ready),
        // Out of the balancer on purpose: `rollback` puts it back.
        if inst.standby {
            "standby".to_string()
        } else {
            yes(inst.in_service)
        },
        services(&inst.services),
    ]
}
