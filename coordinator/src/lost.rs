//! Lost instances in steady state: a serving instance whose agent went silent
//! is shown `lost` by `status`; if its project sets `replace_lost_instances`, a
//! replacement deployment of the serving release launches fresh instances,
//! attaches them, then drains and terminates only the lost ones.

use std::collections::BTreeSet;
use std::sync::Arc;

use tracing::{error, info, warn};

use crate::agents::AgentHub;
use crate::agents::AgentRecords;
use crate::agents::REDIAL_GRACE;
use crate::audit::AuditLog;
use crate::clock::Clock;
use crate::clock::Millis;
use crate::cloud::LoadBalancer;
use crate::cloud::{CloudError, load_balancer_name};
use crate::deploy::machine::MemberState;
use crate::deployments::Deployments;
use crate::events::{Event, Events};
use crate::fleets::Fleets;
use crate::releases::Releases;
use crate::revocation::Revocations;
use crate::stopping::Stopping;
use crate::store::StoreError;

/// Who the audit log and `deployments` name for replacements.
pub const REPLACER: &str = "slipway (lost instance replacement)";

/// What watching for lost instances takes.
pub struct LostWatch {
    pub fleets: Arc<Fleets>,
    pub deployments: Arc<Deployments>,
    pub releases: Arc<Releases>,
    pub load_balancer: Arc<dyn LoadBalancer>,
    pub agents: Arc<AgentHub>,
    /// Whose instance a lost agent's is, for its event.
    pub records: AgentRecords,
    /// Instances Slipway terminated: their agents go silent, and are not lost.
    pub revocations: Arc<Revocations>,
    pub events: Arc<Events>,
    pub audit: Arc<AuditLog>,
    pub clock: Arc<dyn Clock>,
    pub stopping: Stopping,
}

/// Checks every target of every project that asks for replacement (in the
/// fleet in force: `fleet apply` may ask for it later), once per heartbeat
/// interval, for as long as the coordinator runs.
pub fn start_watch(coordinator: Arc<LostWatch>) -> tokio::task::JoinHandle<()> {
    let started = coordinator.clock.now();
    // `[coordinator]` changes only at a start.
    let settings = coordinator.fleets.current().fleet.coordinator.clone();
    tokio::spawn(async move {
        let every = settings.heartbeat_interval;
        // After a start, an agent not heard from is not lost before it had
        // the time to redial, nor before the fleet's own limit.
        let grace = settings.agent_lost_after.max(REDIAL_GRACE);
        // Attempted once each: a replacement that rolls back is left to operators.
        let mut attempted: BTreeSet<String> = BTreeSet::new();
        // Told once each while lost; told again if it comes back and is lost again.
        let mut told: BTreeSet<String> = BTreeSet::new();
        loop {
            tokio::time::sleep(every).await;
            if coordinator.stopping.is_asked() {
                return;
            }
            if coordinator.clock.now() - started < crate::clock::millis(grace) {
                continue;
            }
            if let Err(e) = tell_lost(&coordinator, &mut told).await {
                error!(error = %e, "telling of lost agents failed; retrying");
            }
            if let Err(e) = replace_lost(&coordinator, &mut attempted).await {
                error!(error = %e, "checking for lost instances failed; retrying");
            }
        }
    })
}

#[derive(Debug, thiserror::Error)]
enum LostError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Cloud(#[from] CloudError),
    #[error("release {project}@{version} serves {environment} but is no longer registered")]
    ReleaseGone {
        project: String,
        version: String,
        environment: String,
    },
}

/// Tells an `agent.lost` event for each agent that went silent past
/// `agent_lost_after` (from what the hub last observed: no cloud call),
/// unless Slipway terminated its instance.
async fn tell_lost(c: &LostWatch, told: &mut BTreeSet<String>) -> Result<(), LostError> {
    let lost_after = c
        .fleets
        .current()
        .fleet
        .coordinator
        .agent_lost_after
        .as_millis() as Millis;
    let now = c.clock.now();
    let lost = c.agents.lost(now, lost_after);
    // One that is back is told again if it is lost again.
    told.retain(|id| lost.iter().any(|(lost, _)| lost == id));
    for (id, last_seen) in lost {
        if told.contains(&id) || c.revocations.is_revoked(&id) {
            continue;
        }
        told.insert(id.clone());
        let record = c.records.get(&id).await?;
        let silent = (now - last_seen) as f64 / 1000.0;
        let (project, environment, deployment) = match record {
            Some(r) => (Some(r.project), Some(r.environment), Some(r.deployment_id)),
            None => (None, None, None),
        };
        let whose = match (&project, &environment) {
            (Some(p), Some(e)) => format!(" ({p} on {e})"),
            _ => String::new(),
        };
        warn!(instance = %id, silent, "agent lost");
        c.events
            .tell(vec![Event {
                about: crate::audit::About {
                    project,
                    environment,
                    deployment,
                    version: None,
                },
                ..Event::new(
                    "agent.lost",
                    format!("the agent of {id}{whose} is lost: silent for {silent:.1}s"),
                )
            }])
            .await?;
    }
    Ok(())
}

async fn replace_lost(c: &LostWatch, attempted: &mut BTreeSet<String>) -> Result<(), LostError> {
    let fleet = c.fleets.current().fleet;
    if !fleet.projects.values().any(|p| p.replace_lost_instances) {
        return Ok(());
    }
    let heads = c.deployments.heads().await?;
    let lost_after = fleet.coordinator.agent_lost_after.as_millis() as Millis;
    for (project, settings) in &fleet.projects {
        if !settings.replace_lost_instances {
            continue;
        }
        for environment in fleet.environments.keys() {
            // A deployment in flight or queued replaces or retires instances itself.
            let busy = heads
                .iter()
                .any(|h| h.project == *project && h.environment == *environment);
            if busy {
                continue;
            }
            let Some(serving) = c.deployments.serving(project, environment).await? else {
                continue;
            };
            let members = c
                .load_balancer
                .members(&load_balancer_name(project, environment))
                .await?;
            let now = c.clock.now();
            let lost: Vec<String> = members
                .iter()
                .filter(|(_, m)| **m == MemberState::InService)
                .map(|(id, _)| id.clone())
                .filter(|id| !attempted.contains(id))
                .filter(|id| {
                    c.agents
                        .view(id)
                        .is_none_or(|v| !v.connected || now - v.last_seen > lost_after)
                })
                .collect();
            if lost.is_empty() {
                continue;
            }
            let release = c
                .releases
                .get(project, &serving.version)
                .await?
                .ok_or_else(|| LostError::ReleaseGone {
                    project: project.clone(),
                    version: serving.version.clone(),
                    environment: environment.clone(),
                })?;
            warn!(%project, %environment, lost = ?lost, "instances lost: launching replacements");
            let desired = lost.len() as u32;
            let replacement = c
                .deployments
                .enqueue(
                    REPLACER.to_string(),
                    &release,
                    environment,
                    desired,
                    |d| d.replaces = lost.clone(),
                    None,
                )
                .await?;
            attempted.extend(lost.iter().cloned());
            let target = format!("{project}/{environment} ({})", lost.join(", "));
            let about = crate::audit::About {
                project: Some(project.clone()),
                environment: Some(environment.clone()),
                version: Some(replacement.version.clone()),
                deployment: Some(replacement.id.clone()),
            };
            c.audit
                .append_about(
                    REPLACER,
                    "",
                    "replace-lost",
                    &target,
                    &replacement.id,
                    &about,
                )
                .await?;
            info!(deployment_id = %replacement.id, "replacement queued");
        }
    }
    Ok(())
}
