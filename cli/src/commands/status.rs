//! `slipway status [PROJECT]`: environments, versions, load balancers, instances.

use slipway_proto::v1::{ProjectStatus, PublicRecord, StatusRequest};

use crate::client::Client;
use crate::failure::Failure;
use crate::render::{Output, Table, print_json, text, yes};

pub async fn show(
    client: &mut Client,
    output: Output,
    project: Option<String>,
) -> Result<(), Failure> {
    let request = StatusRequest {
        project: project.clone().unwrap_or_default(),
    };
    let answer = client.api.status(request).await;
    let status = client.answer(answer)?;
    if output == Output::Json {
        return match (project, status.projects.as_slice()) {
            (Some(_), [one]) => print_json(one),
            _ => print_json(&status.projects),
        };
    }
    for p in status.projects {
        print_project(p);
    }
    Ok(())
}

fn print_public(r: &PublicRecord) {
    let to = if r.environment.is_empty() {
        "nowhere yet"
    } else {
        &r.environment
    };
    let endpoint = if r.endpoint.is_empty() {
        String::new()
    } else {
        format!(" ({})", r.endpoint)
    };
    let pending = if r.pending {
        " [promotion pending: DNS not yet confirmed, the coordinator is finishing it]"
    } else {
        ""
    };
    println!("  public {} -> {to}{endpoint}{pending}", r.name);
    if !r.dns_error.is_empty() {
        println!("  cannot read DNS: {}", text(&r.dns_error));
    }
}

fn print_project(p: ProjectStatus) {
    println!("{}", p.name);
    if let Some(r) = &p.public_record {
        print_public(r);
    }
    let mut table = Table::new([
        "ENV",
        "VERSION",
        "ENDPOINT",
        "INSTANCE",
        "IP",
        "STATE",
        "AGENT",
        "READY",
        "IN SERVICE",
        "SERVICES",
    ]);
    for e in p.environments {
        let version = if e.active_version.is_empty() {
            "-".to_string()
        } else {
            e.active_version.clone()
        };
        if e.instances.is_empty() {
            let mut row: [String; 10] = Default::default();
            row[0] = e.name.clone();
            row[1] = version.clone();
            row[2] = e.endpoint.clone();
            row[3] = "-".into();
            table.row(row);
        }
        for (i, inst) in e.instances.iter().enumerate() {
            let (name, version, endpoint) = if i == 0 {
                (e.name.clone(), version.clone(), e.endpoint.clone())
            } else {
                Default::default()
            };
            table.row([
                name,
                version,
                endpoint,
                inst.id.clone(),
                inst.private_ip.clone(),
                inst.state.clone(),
                inst.agent.clone(),
                yes(inst.ready),
                yes(inst.in_service),
                inst.services.clone(),
            ]);
        }
    }
    table.print();
}
