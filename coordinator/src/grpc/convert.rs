//! Conversions between wire types and domain types, at the edge only.

use std::collections::BTreeMap;

use slipway_proto::v1 as pb;
use slipway_proto::v1::coordinator_message::Body;

use crate::config::{Fleet, RestartWhen};
use crate::deploy::Deployment;
use crate::operations::{AgentStatus, DeploymentView, ProjectStatus, PublicRecordView, QueueLine};
use crate::release::Release;

pub fn release(r: Release) -> pb::Release {
    pb::Release {
        project: r.project,
        version: r.version,
        image_id: r.image_id,
        registered_at_ms: r.registered_at,
        registered_by: r.registered_by,
    }
}

pub fn deployment(view: DeploymentView) -> pb::Deployment {
    let d = view.deployment;
    pb::Deployment {
        finished: d.phase.is_finished(),
        new_instances: d.new_instance_ids(),
        id: d.id,
        project: d.project,
        version: d.version,
        image_id: d.image_id,
        environment: d.environment,
        phase: d.phase.as_str().to_string(),
        requested_by: d.requested_by,
        requested_at_ms: d.requested_at,
        phases: d
            .history
            .iter()
            .map(|e| pb::PhaseTime {
                phase: e.phase.as_str().to_string(),
                at_ms: e.at,
            })
            .collect(),
        reason: d.reason.unwrap_or_default(),
        old_instances: d.old_instances,
        cancel_requested: d.cancel_requested_by.is_some(),
        waiting_on: view.waiting_on.unwrap_or_default(),
    }
}

pub fn bare_deployment(d: Deployment) -> pb::Deployment {
    deployment(DeploymentView {
        deployment: d,
        waiting_on: None,
    })
}

pub fn queue_line(line: QueueLine) -> pb::TargetQueue {
    pb::TargetQueue {
        project: line.project,
        environment: line.environment,
        active: line.active.map(deployment),
        waiting: line.waiting.into_iter().map(deployment).collect(),
    }
}

pub fn public_record(r: PublicRecordView) -> pb::PublicRecord {
    pb::PublicRecord {
        project: r.project,
        name: r.name,
        environment: r.environment.unwrap_or_default(),
        endpoint: r.endpoint.unwrap_or_default(),
        previous_environment: r.previous_environment.unwrap_or_default(),
        pending: r.pending,
        dns_error: r.dns_error.unwrap_or_default(),
    }
}

pub fn project_status(p: ProjectStatus) -> pb::ProjectStatus {
    pb::ProjectStatus {
        name: p.name,
        environments: p
            .environments
            .into_iter()
            .map(|e| pb::EnvironmentStatus {
                name: e.name,
                active_version: e.active_version.unwrap_or_default(),
                load_balancer: e.load_balancer,
                endpoint: e.endpoint.unwrap_or_default(),
                instances: e
                    .instances
                    .into_iter()
                    .map(|i| pb::InstanceStatus {
                        id: i.id,
                        private_ip: i.private_ip,
                        state: i.state.to_string(),
                        agent: i.agent.to_string(),
                        ready: i.ready,
                        in_service: i.in_service,
                        services: i.services,
                    })
                    .collect(),
            })
            .collect(),
        public_record: p.public.map(public_record),
    }
}

pub fn agent(a: AgentStatus) -> pb::Agent {
    pb::Agent {
        instance_id: a.record.instance_id,
        project: a.record.project,
        environment: a.record.environment,
        deployment_id: a.record.deployment_id,
        connected: a.connected,
        last_seen_ms: a.last_seen,
        ready: a.ready,
        agent_version: a.agent_version,
        image_id: a.record.image_id,
        private_ip: a.record.private_ip,
    }
}

/// The configuration and start command a deployment's new instances receive;
/// `secrets` are the environment's, in the clear, and go nowhere else.
pub fn configure_messages(
    fleet: &Fleet,
    d: &Deployment,
    secrets: BTreeMap<String, String>,
) -> Option<Vec<pb::CoordinatorMessage>> {
    let project = fleet.project(&d.project)?;
    let mut variables = fleet.variables(&d.project, &d.environment);
    variables.extend(secrets);
    variables.insert("SLIPWAY_PROJECT".into(), d.project.clone());
    variables.insert("SLIPWAY_ENV".into(), d.environment.clone());
    variables.insert("SLIPWAY_VERSION".into(), d.version.clone());
    variables.insert("SLIPWAY_DEPLOYMENT".into(), d.id.clone());
    variables.insert("PORT".into(), project.instance_port.to_string());
    let check = &project.health_check;
    let configure = pb::Configure {
        version: d.config_version(),
        project: d.project.clone(),
        environment: d.environment.clone(),
        release_version: d.version.clone(),
        variables: variables.into_iter().collect(),
        services: project
            .services
            .iter()
            .map(|s| pb::ServiceSpec {
                name: s.name.clone(),
                command: s.command.clone(),
                args: s.args.clone(),
            })
            .collect(),
        health_check: Some(pb::HealthCheck {
            path: check.path.clone(),
            port: u32::from(check.port),
            interval_ms: check.interval.as_millis() as u32,
            timeout_ms: check.timeout.as_millis() as u32,
            healthy_threshold: check.healthy_threshold,
            unhealthy_threshold: check.unhealthy_threshold,
        }),
        restart: Some(pb::RestartPolicy {
            when: match project.restart.when {
                RestartWhen::Always => pb::restart_policy::When::Always,
                RestartWhen::OnFailure => pb::restart_policy::When::OnFailure,
                RestartWhen::Never => pb::restart_policy::When::Never,
            } as i32,
            limit: project.restart.limit,
            window_ms: project.restart.window.as_millis() as u32,
        }),
    };
    Some(vec![
        pb::CoordinatorMessage {
            body: Some(Body::Configure(configure)),
        },
        pb::CoordinatorMessage {
            body: Some(Body::Start(pb::StartServices {
                config_version: d.config_version(),
            })),
        },
    ])
}

pub fn audit_entry(e: crate::audit::AuditEntry) -> pb::AuditEntry {
    pb::AuditEntry {
        seq: e.seq,
        at_ms: e.at,
        who: e.who,
        certificate: e.certificate,
        action: e.action,
        target: e.target,
        result: e.result,
        hash: e.hash,
    }
}
