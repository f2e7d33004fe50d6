//! Conversions between wire types and domain types, at the edge only.

use slipway_proto::v1 as pb;

use crate::deploy::machine::Connection;
use crate::deploy::{Deployment, MigrationOutcome, MigrationRun, Phase};
use crate::operations::{AgentStatus, DeploymentView, ProjectStatus, PublicRecordView, QueueLine};
use crate::release::{Provenance, Release};

pub fn release(r: Release, checks: Vec<crate::releases::ReleaseCheck>) -> pb::Release {
    pb::Release {
        project: r.project,
        version: r.version,
        image_id: r.image_id,
        registered_at_ms: r.registered_at,
        registered_by: r.registered_by,
        owner_account: r.owner_account.unwrap_or_default(),
        checks: checks.into_iter().map(release_check).collect(),
        provenance: provenance(r.provenance),
    }
}

/// None when nothing is recorded, so clients show nothing.
pub fn provenance(p: Provenance) -> Option<pb::Provenance> {
    (!p.is_empty()).then(|| pb::Provenance {
        commit: p.commit.unwrap_or_default(),
        repository: p.repository.unwrap_or_default(),
        build_url: p.build_url.unwrap_or_default(),
        built_by: p.built_by.unwrap_or_default(),
    })
}

/// From the wire: an empty part is no part.
pub fn provenance_from(p: Option<pb::Provenance>) -> Provenance {
    let p = p.unwrap_or_default();
    let part = |s: String| Some(s).filter(|s| !s.is_empty());
    Provenance {
        commit: part(p.commit),
        repository: part(p.repository),
        build_url: part(p.build_url),
        built_by: part(p.built_by),
    }
}

pub fn release_check(c: crate::releases::ReleaseCheck) -> pb::ReleaseCheck {
    pb::ReleaseCheck {
        project: c.project,
        version: c.version,
        name: c.name,
        passed: c.passed,
        url: c.url.unwrap_or_default(),
        by: c.by,
        at_ms: c.at,
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
        phase: phase(d.phase).into(),
        requested_by: d.requested_by,
        requested_at_ms: d.requested_at,
        phases: d
            .history
            .iter()
            .map(|e| pb::PhaseTime {
                phase: phase(e.phase).into(),
                at_ms: e.at,
            })
            .collect(),
        reason: d.reason.unwrap_or_default(),
        old_instances: d.old_instances,
        cancel_requested: d.cancel_requested_by.is_some(),
        waiting_on: view.waiting_on.unwrap_or_default(),
        migration: d.migration.map(migration),
        config: d.config.map(|c| pb::PushedConfig {
            variables: c.variables.into_iter().collect(),
            secrets: c.secrets,
            digest: c.digest,
        }),
        fleet_generation: d.fleet_generation.unwrap_or_default(),
        approved_by: d.approved_by.unwrap_or_default(),
        rollback_requested_by: d.rollback_requested_by.unwrap_or_default(),
        passes_freeze: d.passes_freeze.unwrap_or_default(),
        provenance: provenance(d.provenance.unwrap_or_default()),
    }
}

fn migration(run: MigrationRun) -> pb::Migration {
    let (state, detail) = match (&run.outcome, &run.run_id) {
        (Some(MigrationOutcome::Succeeded), _) => ("succeeded", String::new()),
        (Some(MigrationOutcome::Failed { reason }), _) => ("failed", reason.clone()),
        (Some(MigrationOutcome::Skipped { ran_in }), _) => {
            ("skipped", format!("already ran in {ran_in}"))
        }
        (None, Some(_)) => ("running", String::new()),
        (None, None) => ("waiting", String::new()),
    };
    pb::Migration {
        store: run.store,
        state: state.to_string(),
        instance: run.instance.unwrap_or_default(),
        detail,
        output: run.output,
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
        awaiting_approval: r.awaiting_approval.unwrap_or_default(),
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
                active_provenance: e.active_provenance.and_then(provenance),
                load_balancer: e.load_balancer,
                endpoint: e.endpoint.unwrap_or_default(),
                instances: e
                    .instances
                    .into_iter()
                    .map(|i| pb::InstanceStatus {
                        instance_id: i.instance_id,
                        private_ip: i.private_ip,
                        state: i.state.to_string(),
                        agent: connection(i.agent).into(),
                        ready: i.ready,
                        in_service: i.in_service,
                        standby: i.standby,
                        services: i.services.iter().map(pb::ServiceState::from).collect(),
                    })
                    .collect(),
                in_flight: e.in_flight.map(deployment),
                queued: u32::try_from(e.queued).unwrap_or(u32::MAX),
            })
            .collect(),
        public_record: p.public.map(public_record),
    }
}

pub fn orphan(o: crate::orphans::Orphan) -> pb::Orphan {
    pb::Orphan {
        instance_id: o.instance_id,
        project: o.project,
        environment: o.environment,
        deployment_id: o.deployment,
        release: o.release,
        private_ip: o.private_ip,
    }
}

pub fn agent(a: AgentStatus) -> pb::Agent {
    pb::Agent {
        instance_id: a.record.instance_id,
        project: a.record.project,
        environment: a.record.environment,
        deployment_id: a.record.deployment_id,
        connection: connection(a.connection).into(),
        last_seen_ms: a.last_seen,
        ready: a.ready,
        agent_version: a.agent_version,
        agent_protocol: a.agent_protocol,
        image_id: a.record.image_id,
        private_ip: a.record.private_ip,
    }
}

pub fn audit_entry(e: crate::audit::AuditEntry) -> pb::AuditEntry {
    let (who, role) = who_and_role(&e.who);
    pb::AuditEntry {
        seq: e.seq,
        at_ms: e.at,
        who,
        role,
        certificate: e.certificate,
        action: e.action,
        target: e.target,
        result: e.result,
        hash: e.hash,
        project: e.about.project.unwrap_or_default(),
        environment: e.about.environment.unwrap_or_default(),
        version: e.about.version.unwrap_or_default(),
        deployment: e.about.deployment.unwrap_or_default(),
    }
}

/// The log keeps who acted as `name (role)` (the caller as it prints); the
/// wire gives name and role apart. Names are `pki::check_name`-clean, so the
/// last ` (` starts the role.
fn who_and_role(who: &str) -> (String, String) {
    match who
        .rsplit_once(" (")
        .and_then(|(name, rest)| Some((name, rest.strip_suffix(')')?)))
    {
        Some((name, role)) => (name.to_string(), role.to_string()),
        None => (who.to_string(), String::new()),
    }
}

pub fn phase(p: Phase) -> pb::Phase {
    match p {
        Phase::Queued => pb::Phase::Queued,
        Phase::Launching => pb::Phase::Launching,
        Phase::Booting => pb::Phase::Booting,
        Phase::Configuring => pb::Phase::Configuring,
        Phase::Ready => pb::Phase::Ready,
        Phase::Migrating => pb::Phase::Migrating,
        Phase::Attaching => pb::Phase::Attaching,
        Phase::Draining => pb::Phase::Draining,
        Phase::Watching => pb::Phase::Watching,
        Phase::Retiring => pb::Phase::Retiring,
        Phase::Succeeded => pb::Phase::Succeeded,
        Phase::RollingBack => pb::Phase::RollingBack,
        Phase::RolledBack => pb::Phase::RolledBack,
        Phase::Cancelled => pb::Phase::Cancelled,
    }
}

fn connection(c: Connection) -> pb::AgentConnection {
    match c {
        Connection::Connected => pb::AgentConnection::Connected,
        Connection::Lost => pb::AgentConnection::Lost,
        Connection::Never => pb::AgentConnection::Never,
    }
}

/// A dashboard token as listings show it: never its secret or its hash.
pub fn dashboard_token(t: crate::dashboard::access::DashboardToken) -> pb::DashboardToken {
    pb::DashboardToken {
        id: t.id,
        name: t.name,
        url: String::new(),
        created_by: t.created_by,
        created_at_ms: t.created_at,
        revoked: t.revoked,
    }
}

pub fn ca_rotation(view: crate::ca_rotation::RotationView) -> pb::CaRotation {
    pb::CaRotation {
        signing: view.signing,
        previous: view.previous.unwrap_or_default(),
        agents_on_previous: view.agents_on_previous,
        agents_on_signing: view.agents_on_signing as u32,
        agents_unknown: view.agents_unknown as u32,
        agents_on_retired: view.agents_on_retired,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_splits_into_name_and_role() {
        assert_eq!(
            who_and_role("alice (admin)"),
            ("alice".into(), "admin".into())
        );
        assert_eq!(
            who_and_role("i-0abc (agent)"),
            ("i-0abc".into(), "agent".into())
        );
        assert_eq!(who_and_role("slipway"), ("slipway".into(), String::new()));
    }
}
