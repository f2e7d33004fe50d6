//! What operators and CI can ask of the coordinator, in domain terms. The gRPC
//! layer converts wire types to these calls and their errors to status codes.

use std::sync::Arc;

use crate::agents::{AgentHub, AgentRecord, AgentRecords};
use crate::clock::Clock;
use crate::cloud::{Cloud, CloudError, load_balancer_name};
use crate::config::Fleet;
use crate::deploy::machine::{Connection, InstanceState, MemberState};
use crate::deploy::{Deployment, Phase};
use crate::deployments::Deployments;
use crate::error::{Code, Coded};
use crate::fleets::Fleets;
use crate::pki::{Ca, Identity};
use crate::promote::{self, Promotions, RecordState};
use crate::queue::ReleaseQueue;
use crate::release::{Release, check_version};
use crate::releases::{ReleaseCheck, Releases};
use crate::requests::RequestKey;
use crate::secrets::{Scope, Secrets};
use crate::store::StoreError;
use slipway_domain::agent::ServiceState;

#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Slipway failed itself (signing a certificate, say).
    #[error("{0}")]
    Internal(String),
}

impl Coded for OperationError {
    fn code(&self) -> Code {
        match self {
            OperationError::NotFound(_) => Code::NotFound,
            OperationError::Invalid(_) => Code::Invalid,
            OperationError::FailedPrecondition(_) => Code::FailedPrecondition,
            OperationError::Unavailable(_) => Code::Unavailable,
            OperationError::PermissionDenied(_) => Code::PermissionDenied,
            OperationError::Store(e) => e.code(),
            OperationError::Internal(_) => Code::Internal,
        }
    }
}

impl OperationError {
    /// `e` as an operation error of its own kind, with its message.
    pub fn of(e: impl Coded) -> OperationError {
        let message = e.to_string();
        match e.code() {
            Code::NotFound => OperationError::NotFound(message),
            Code::Invalid => OperationError::Invalid(message),
            Code::FailedPrecondition => OperationError::FailedPrecondition(message),
            Code::PermissionDenied | Code::Unauthenticated => {
                OperationError::PermissionDenied(message)
            }
            Code::Unavailable => OperationError::Unavailable(message),
            Code::Internal => OperationError::Internal(message),
        }
    }
}

impl From<crate::orphans::OrphanError> for OperationError {
    fn from(e: crate::orphans::OrphanError) -> Self {
        match e {
            crate::orphans::OrphanError::Cloud(e) => e.into(),
            crate::orphans::OrphanError::Store(e) => e.into(),
        }
    }
}

impl From<CloudError> for OperationError {
    fn from(e: CloudError) -> Self {
        OperationError::of(e)
    }
}

type Result<T> = std::result::Result<T, OperationError>;

/// A deployment with what it waits on right now.
#[derive(Debug, Clone)]
pub struct DeploymentView {
    pub deployment: Deployment,
    pub waiting_on: Option<String>,
}

/// One target's line in the queue.
#[derive(Debug, Clone)]
pub struct QueueLine {
    pub project: String,
    pub environment: String,
    pub active: Option<DeploymentView>,
    pub waiting: Vec<DeploymentView>,
}

#[derive(Debug, Clone)]
pub struct InstanceStatus {
    pub instance_id: String,
    pub private_ip: String,
    pub state: &'static str,
    pub agent: Connection,
    pub ready: bool,
    pub in_service: bool,
    /// Out of the load balancer, kept running while a deployment watches its
    /// successors: `rollback` re-attaches it.
    pub standby: bool,
    pub services: Vec<ServiceState>,
}

#[derive(Debug, Clone)]
pub struct EnvironmentStatus {
    pub name: String,
    pub active_version: Option<String>,
    /// Where the active release came from, where recorded.
    pub active_provenance: Option<crate::release::Provenance>,
    pub load_balancer: String,
    pub endpoint: Option<String>,
    pub instances: Vec<InstanceStatus>,
    /// The deployment running on this target now, and how many wait behind it.
    pub in_flight: Option<DeploymentView>,
    pub queued: usize,
}

#[derive(Debug, Clone)]
pub struct PublicRecordView {
    pub project: String,
    pub name: String,
    pub environment: Option<String>,
    pub endpoint: Option<String>,
    pub previous_environment: Option<String>,
    /// Stored, but DNS not yet confirmed to point there (see `promote`).
    pub pending: bool,
    /// A promotion asked for that waits for another deployer's approval.
    pub awaiting_approval: Option<String>,
    /// The admin's reason, where this promotion passed a freeze.
    pub freeze_overridden: Option<String>,
    /// Why DNS could not be read, if it could not.
    pub dns_error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ProjectStatus {
    pub name: String,
    pub environments: Vec<EnvironmentStatus>,
    pub public: Option<PublicRecordView>,
}

#[derive(Debug, Clone)]
pub struct AgentStatus {
    pub record: AgentRecord,
    pub connection: Connection,
    pub last_seen: i64,
    pub ready: bool,
    pub agent_version: String,
    /// 0: not connected since the coordinator started.
    pub agent_protocol: u32,
}

/// What operators can ask, and what answering takes.
pub struct Operations {
    pub fleets: Arc<Fleets>,
    pub clock: Arc<dyn Clock>,
    pub releases: Arc<Releases>,
    pub deployments: Arc<Deployments>,
    pub promotions: Arc<Promotions>,
    pub cloud: Cloud,
    pub agents: Arc<AgentHub>,
    pub ca: Arc<Ca>,
    pub secrets: Arc<Secrets>,
    pub agent_records: AgentRecords,
    pub revocations: Arc<crate::revocation::Revocations>,
    /// What was last seen of the load balancers: `status` asks no cloud per request.
    pub observer: Arc<crate::observed::Observer>,
}

impl std::fmt::Debug for Operations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Operations")
    }
}

/// An admin's reason for passing a freeze, as `flag` gave it: it goes in
/// the audit log, so it must say something, on one line.
fn override_reason<'a>(reason: &'a str, flag: &str) -> Result<&'a str> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 200 || reason.chars().any(char::is_control) {
        return Err(OperationError::Invalid(format!(
            "say why the freeze is overridden ({flag}, 1 to 200 printable characters): it goes in the audit log"
        )));
    }
    Ok(reason)
}

/// No deployment `id`: what to tell the caller.
fn no_deployment(id: &str) -> OperationError {
    OperationError::NotFound(format!(
        "no deployment {id:?}: list them with `slipway deployments`"
    ))
}

impl Operations {
    /// The fleet in force: what operators ask about and new deployments take.
    fn fleet(&self) -> Arc<Fleet> {
        self.fleets.current().fleet
    }

    fn check_project(&self, project: &str) -> Result<()> {
        if self.fleet().project(project).is_none() {
            return Err(OperationError::NotFound(format!(
                "no project {project:?} in the fleet file: known are {}",
                self.fleet()
                    .projects
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(())
    }

    /// Filters a caller gave (`events --project … --env … --deployment …`)
    /// name what exists: a typo is NotFound, naming what is known, not an
    /// empty answer.
    pub async fn check_filters(
        &self,
        project: Option<&str>,
        environment: Option<&str>,
        deployment: Option<&str>,
    ) -> Result<()> {
        if let Some(project) = project {
            self.check_project(project)?;
        }
        if let Some(environment) = environment {
            self.check_environment(environment)?;
        }
        if let Some(id) = deployment
            && self.deployments.get(id).await?.is_none()
        {
            return Err(no_deployment(id));
        }
        Ok(())
    }

    /// Deployers limited to some environments may change only those.
    fn check_may_act(who: &Identity, environment: &str) -> Result<()> {
        if who.may_act_on(environment) {
            Ok(())
        } else {
            Err(OperationError::PermissionDenied(format!(
                "{who} may act on {} only, not {environment}: ask an admin for a certificate that covers it",
                who.environments.join(", ")
            )))
        }
    }

    fn check_environment(&self, environment: &str) -> Result<()> {
        if !self.fleet().environments.contains_key(environment) {
            return Err(OperationError::NotFound(format!(
                "no environment {environment:?} in the fleet file: known are {}",
                self.fleet()
                    .environments
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(())
    }

    pub async fn register_release(
        &self,
        who: &Identity,
        project: &str,
        version: &str,
        image_id: Option<&str>,
        provenance: &crate::release::Provenance,
    ) -> Result<Release> {
        // A release runs wherever it is deployed later, prod included: a
        // deployer limited to some environments may deploy, not register.
        if !who.environments.is_empty() {
            return Err(OperationError::PermissionDenied(format!(
                "{who} may deploy to {} only, so may not register releases (they run anywhere): CI registers them with a deployer certificate that names no environment",
                who.environments.join(", ")
            )));
        }
        self.check_project(project)?;
        self.releases
            .register(&who.name, project, version, image_id, provenance)
            .await
            .map_err(OperationError::of)
    }

    /// Attaches a check's result (CI's `unit`, `integration`) to a release;
    /// a deployment a gate held on it is looked at again at once.
    pub async fn record_check(
        &self,
        who: &Identity,
        project: &str,
        version: &str,
        name: &str,
        passed: bool,
        url: Option<&str>,
    ) -> Result<ReleaseCheck> {
        // What opens production's gates is CI's word, as a release is.
        if !who.environments.is_empty() {
            return Err(OperationError::PermissionDenied(format!(
                "{who} may deploy to {} only, so may not record checks (they open every environment's gates): CI records them with a deployer certificate that names no environment",
                who.environments.join(", ")
            )));
        }
        self.check_project(project)?;
        crate::config::check_name("name", name).map_err(|(_, why)| OperationError::Invalid(why))?;
        if let Some(url) = url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(OperationError::Invalid(format!(
                "--url {url:?} is not a web address: give the CI job's http(s) URL"
            )));
        }
        let check = ReleaseCheck {
            project: project.to_string(),
            version: version.to_string(),
            name: name.to_string(),
            passed,
            url: url.map(str::to_string),
            by: who.name.clone(),
            at: self.clock.now(),
        };
        let recorded = self
            .releases
            .record_check(check)
            .await
            .map_err(OperationError::of)?;
        self.deployments.queue_changed();
        Ok(recorded)
    }

    /// The checks recorded on a release.
    pub async fn release_checks(&self, project: &str, version: &str) -> Result<Vec<ReleaseCheck>> {
        Ok(self.releases.checks(project, version).await?)
    }

    async fn stored_release(&self, project: &str, version: &str) -> Result<Option<Release>> {
        Ok(self.releases.get(project, version).await?)
    }

    /// Registered releases, by project and then in the order they were registered.
    /// Registered releases by project, then in registration order: a page of
    /// at most `limit` from position `from`, and where the next one starts.
    pub async fn releases(
        &self,
        project: Option<&str>,
        from: usize,
        limit: usize,
    ) -> Result<(Vec<(Release, Vec<ReleaseCheck>)>, Option<usize>)> {
        if let Some(project) = project {
            self.check_project(project)?;
        }
        let all = self.releases.list(project).await?;
        let mut checks = self.releases.checks_by_release(project).await?;
        let page: Vec<(Release, Vec<ReleaseCheck>)> = all
            .iter()
            .skip(from)
            .take(limit)
            .map(|r| {
                let of = checks
                    .remove(&(r.project.clone(), r.version.clone()))
                    .unwrap_or_default();
                (r.clone(), of)
            })
            .collect();
        let next = (from + page.len() < all.len()).then_some(from + page.len());
        Ok((page, next))
    }

    /// Enqueues a deployment; returns once it is stored durably.
    /// Enqueues `project@version` onto `environment`; `request`, if given, is
    /// claimed for the deployment in the batch that stores it.
    pub async fn deploy(
        &self,
        who: &Identity,
        project: &str,
        version: &str,
        environment: &str,
        request: Option<&RequestKey>,
    ) -> Result<Deployment> {
        self.check_project(project)?;
        self.check_environment(environment)?;
        Self::check_may_act(who, environment)?;
        check_version(version).map_err(OperationError::Invalid)?;
        let Some(release) = self.stored_release(project, version).await? else {
            return Err(self.no_release(project, version).await?);
        };
        self.enqueue(who.name.clone(), &release, environment, |_| {}, request)
            .await
    }

    /// Names the newest known versions, so a typo reads as one; registering
    /// is the hint only when there is nothing close.
    async fn no_release(&self, project: &str, version: &str) -> Result<OperationError> {
        let known: Vec<String> = self
            .releases
            .list(Some(project))
            .await?
            .into_iter()
            .rev()
            .take(10)
            .map(|r| r.version)
            .collect();
        let known = if known.is_empty() {
            format!("{project} has no releases yet")
        } else {
            format!(
                "known versions of {project} (newest first): {}",
                known.join(", ")
            )
        };
        Ok(OperationError::NotFound(format!(
            "no release {project}@{version}; {known}. A new build is registered with `slipway release add {project} VERSION`"
        )))
    }

    async fn enqueue(
        &self,
        requested_by: String,
        release: &Release,
        environment: &str,
        shape: impl FnOnce(&mut Deployment),
        request: Option<&RequestKey>,
    ) -> Result<Deployment> {
        let desired = self
            .fleet()
            .instance_count(&release.project, environment)
            .ok_or_else(|| OperationError::NotFound(format!("no environment {environment:?}")))?;
        Ok(self
            .deployments
            .enqueue(requested_by, release, environment, desired, shape, request)
            .await?)
    }

    pub async fn deployment(&self, id: &str) -> Result<DeploymentView> {
        let deployment = self
            .deployments
            .get(id)
            .await?
            .ok_or_else(|| no_deployment(id))?;
        self.view_alone(deployment).await
    }

    /// `deployment` with what it waits on, reading its own target's line only.
    async fn view_alone(&self, deployment: Deployment) -> Result<DeploymentView> {
        let (count, nearest) = match deployment.phase {
            Phase::Queued => self.deployments.ahead_of(&deployment).await?,
            _ => (0, None),
        };
        Ok(self.view(deployment, (count, nearest.as_ref())))
    }

    /// `deployment` with what it waits on; `ahead`: for a queued one, how
    /// many are ahead of it on its target, and the nearest.
    fn view(&self, deployment: Deployment, ahead: (usize, Option<&Deployment>)) -> DeploymentView {
        let waiting_on = if deployment.phase == Phase::Queued {
            let (count, nearest) = ahead;
            nearest
                .map(|next| {
                    format!(
                        "queued behind {} ({}@{}, {}){}",
                        next.id,
                        next.project,
                        next.version,
                        next.phase,
                        if count > 1 {
                            format!(" and {} more", count - 1)
                        } else {
                            String::new()
                        }
                    )
                })
                // At the head of its queue: a gate may hold it.
                .or_else(|| self.deployments.waiting_on(&deployment.id))
        } else if deployment.phase.is_finished() {
            None
        } else {
            self.deployments.waiting_on(&deployment.id)
        };
        DeploymentView {
            deployment,
            waiting_on,
        }
    }

    /// Cancels a queued deployment, or rolls back an active one that does not serve yet.
    pub async fn cancel(&self, who: &Identity, id: &str) -> Result<Deployment> {
        let now = self.clock.now();
        let cancelled = self.deployments.update(id, |deployment| {
            Self::check_may_act(who, &deployment.environment)?;
            match deployment.phase {
                Phase::Queued => {
                    deployment.reason = Some(format!("cancelled by {}", who.name));
                    deployment.enter(Phase::Cancelled, now);
                }
                phase if phase.is_finished() => {
                    return Err(OperationError::FailedPrecondition(format!(
                        "deployment {id} already finished ({phase})"
                    )));
                }
                phase if phase.is_past_point_of_no_return() => {
                    return Err(OperationError::FailedPrecondition(format!(
                        "deployment {id} already serves traffic ({phase}): use `slipway rollback {} --env {}`",
                        deployment.project, deployment.environment
                    )));
                }
                _ => deployment.cancel_requested_by = Some(who.name.clone()),
            }
            Ok(())
        }).await?;
        let (deployment, ()) = cancelled.ok_or_else(|| no_deployment(id))?;
        if deployment.phase.is_finished() {
            // A gate that held it holds nothing now.
            self.deployments.set_waiting_on(id, None);
        }
        self.deployments.queue_changed();
        self.agents.changed.notify_waiters();
        Ok(deployment)
    }

    /// Approves a queued deployment whose environment requires it: by a
    /// deployer or admin who may act on that environment and did not ask for
    /// it. The scheduler looks at the queue again at once.
    pub async fn approve(&self, who: &Identity, id: &str) -> Result<Deployment> {
        let fleet = self.fleet();
        self.open_gate(id, |d| {
            Self::check_may_act(who, &d.environment)?;
            if crate::deploy::requester(d) == who.name {
                return Err(OperationError::PermissionDenied(format!(
                    "{} asked for {id}, so may not approve it: another deployer of {} must",
                    who.name, d.environment
                )));
            }
            if !fleet
                .environments
                .get(&d.environment)
                .is_some_and(|e| e.requires_approval)
            {
                return Err(OperationError::FailedPrecondition(format!(
                    "{} requires no approval: add requires_approval = true to [environments.{}]",
                    d.environment, d.environment
                )));
            }
            if d.phase != Phase::Queued {
                return Err(OperationError::FailedPrecondition(format!(
                    "deployment {id} has left the queue ({}): there is nothing to approve",
                    d.phase
                )));
            }
            if let Some(by) = &d.approved_by {
                return Err(OperationError::FailedPrecondition(format!(
                    "deployment {id} was already approved by {by}"
                )));
            }
            d.approved_by = Some(who.name.clone());
            Ok(())
        })
        .await
    }

    /// Changes queued deployment `id` so that one of its gates opens; the
    /// gate's reason goes now, and the scheduler, woken, names any other
    /// gate still closed.
    async fn open_gate(
        &self,
        id: &str,
        change: impl FnOnce(&mut Deployment) -> Result<()>,
    ) -> Result<Deployment> {
        let changed = self.deployments.update(id, change).await?;
        let (deployment, ()) = changed.ok_or_else(|| no_deployment(id))?;
        self.deployments.set_waiting_on(id, None);
        self.deployments.queue_changed();
        Ok(deployment)
    }

    /// Lets one queued deployment through its environment's freeze window
    /// now, by an admin who says why (the RPC checks the role and audits it).
    pub async fn override_freeze(
        &self,
        who: &Identity,
        id: &str,
        reason: &str,
    ) -> Result<Deployment> {
        let reason = override_reason(reason, "--reason")?;
        let fleet = self.fleet();
        let now = self.clock.now();
        self.open_gate(id, |d| {
            if d.phase != Phase::Queued {
                return Err(OperationError::FailedPrecondition(format!(
                    "deployment {id} has left the queue ({}): no freeze holds it",
                    d.phase
                )));
            }
            let frozen = fleet
                .environments
                .get(&d.environment)
                .and_then(|e| crate::freeze::frozen(&e.freeze, now));
            let Some(frozen) = frozen else {
                return Err(OperationError::FailedPrecondition(format!(
                    "{} is not frozen now: there is no freeze to override",
                    d.environment
                )));
            };
            if crate::gates::passes_freeze(d, frozen.until) {
                return Err(OperationError::FailedPrecondition(format!(
                    "deployment {id} already passes this freeze: {}",
                    d.passes_freeze.as_deref().unwrap_or_default()
                )));
            }
            d.passes_freeze = Some(format!("freeze overridden by {}: {reason}", who.name));
            d.freeze_overridden_by = Some(who.name.clone());
            d.freeze_override_until = Some(frozen.until);
            Ok(())
        })
        .await
    }

    pub async fn queue(&self) -> Result<Vec<QueueLine>> {
        let unfinished = self.deployments.unfinished().await?;
        let queue = ReleaseQueue::new(&unfinished);
        Ok(queue
            .targets()
            .map(|line| QueueLine {
                project: line.target.project.clone(),
                environment: line.target.environment.clone(),
                active: line.active.map(|d| self.view(d.clone(), (0, None))),
                waiting: line
                    .waiting
                    .iter()
                    .map(|d| {
                        let ahead = queue.ahead_of(&d.id);
                        self.view((*d).clone(), (ahead.len(), ahead.first().copied()))
                    })
                    .collect(),
            })
            .collect())
    }

    /// History, newest first: one page of at most `limit` deployments older
    /// than `before` (a deployment's sequence number; None: the newest), and
    /// the sequence number the next page starts before, if there is one.
    pub async fn deployments(
        &self,
        project: Option<&str>,
        environment: Option<&str>,
        limit: usize,
        before: Option<u64>,
    ) -> Result<(Vec<DeploymentView>, Option<u64>)> {
        if let Some(project) = project {
            self.check_project(project)?;
        }
        if let Some(environment) = environment {
            self.check_environment(environment)?;
        }
        let mut page = self
            .deployments
            .page(project, environment, before, limit + 1)
            .await?;
        let next = if page.len() > limit {
            page.truncate(limit);
            page.last().map(|d| d.seq)
        } else {
            None
        };
        let mut views = Vec::with_capacity(page.len());
        for d in page {
            views.push(self.view_alone(d).await?);
        }
        Ok((views, next))
    }

    pub async fn status(&self, project: Option<&str>) -> Result<Vec<ProjectStatus>> {
        if let Some(project) = project {
            self.check_project(project)?;
        }
        // Each target's head (the running deployment, if any) and line length:
        // bounded by targets, not by how many wait.
        let heads = self.deployments.heads().await?;
        let fleet = self.fleet();
        let names: Vec<&String> = fleet
            .projects
            .keys()
            .filter(|n| project.is_none_or(|p| *n == p))
            .collect();
        let running = |name: &str, env: &str| {
            heads
                .iter()
                .find(|d| d.project == name && d.environment == env && d.phase.is_active())
        };
        let standby = |name: &str, env: &str| {
            running(name, env)
                .filter(|d| d.phase == Phase::Watching)
                .map_or(vec![], |d| d.old_instances.clone())
        };
        // Every load balancer shown, from what was last seen of them all.
        let wanted: Vec<(String, Vec<String>)> = names
            .iter()
            .flat_map(|name| {
                fleet
                    .environments
                    .keys()
                    .map(|env| (load_balancer_name(name, env), standby(name, env)))
            })
            .collect();
        let seen = self.observer.seen(&wanted).await?;
        let mut projects = Vec::new();
        for name in names {
            let mut environments = Vec::new();
            for env in fleet.environments.keys() {
                let active = self.deployments.serving(name, env).await?;
                let lb = load_balancer_name(name, env);
                let mut status = self.environment_status(
                    env,
                    lb.clone(),
                    &standby(name, env),
                    active.as_ref(),
                    seen.get(&lb).cloned().unwrap_or_default(),
                );
                if heads
                    .iter()
                    .any(|d| d.project == *name && d.environment == *env)
                {
                    let running = running(name, env);
                    status.in_flight = running.map(|d| self.view(d.clone(), (0, None)));
                    status.queued = self.deployments.line_len(name, env).await?
                        - usize::from(running.is_some());
                }
                environments.push(status);
            }
            let public = match fleet.projects[name].public.is_some() {
                true => Some(self.public_record(name).await?),
                false => None,
            };
            projects.push(ProjectStatus {
                name: name.clone(),
                environments,
                public,
            });
        }
        Ok(projects)
    }

    /// One environment of a project: `seen` of its load balancer `lb`, its
    /// agents as they are now.
    fn environment_status(
        &self,
        environment: &str,
        lb: String,
        standby: &[String],
        active: Option<&Deployment>,
        seen: crate::observed::Seen,
    ) -> EnvironmentStatus {
        let crate::observed::Seen {
            endpoint,
            members,
            instances: described,
            ..
        } = seen;
        let mut ids: Vec<String> = members.keys().cloned().collect();
        ids.extend(
            standby
                .iter()
                .filter(|id| !members.contains_key(*id))
                .cloned(),
        );
        // An agent that stopped heartbeating is lost even while its stream stays open.
        let now = self.clock.now();
        let lost_after =
            self.fleet().coordinator.agent_lost_after.as_millis() as crate::clock::Millis;
        let instances = ids
            .iter()
            .map(|id| {
                let cloud = described.get(id);
                let view = self.agents.view(id);
                InstanceStatus {
                    instance_id: id.clone(),
                    private_ip: cloud.map(|i| i.private_ip.clone()).unwrap_or_default(),
                    state: match cloud.map(|i| i.state) {
                        Some(InstanceState::Running) => "running",
                        Some(InstanceState::Pending) => "pending",
                        _ => "terminated",
                    },
                    agent: Connection::of(view.as_ref(), now, lost_after),
                    services: view
                        .as_ref()
                        .map(|v| v.services.clone())
                        .unwrap_or_default(),
                    ready: view.is_some_and(|v| v.ready),
                    in_service: members.get(id) == Some(&MemberState::InService),
                    standby: standby.contains(id) && !members.contains_key(id),
                }
            })
            .collect();
        EnvironmentStatus {
            name: environment.to_string(),
            active_version: active.map(|d| d.version.clone()),
            active_provenance: active.and_then(|d| d.provenance.clone()),
            load_balancer: lb,
            endpoint,
            instances,
            in_flight: None,
            queued: 0,
        }
    }

    /// The fleet file's public record of `project`.
    fn public_config(&self, project: &str) -> Result<crate::config::PublicRecord> {
        self.fleet()
            .project(project)
            .and_then(|p| p.public.clone())
            .ok_or_else(|| {
                OperationError::FailedPrecondition(format!(
                    "project {project} has no public record: add [projects.{project}.public] to the fleet file"
                ))
            })
    }

    async fn public_record(&self, project: &str) -> Result<PublicRecordView> {
        let public = self.public_config(project)?;
        let stored = self.promotions.record(project).await?;
        // Status must answer when DNS cannot: that is when operators ask.
        let (endpoint, dns_error) = match self.promotions.endpoint(&public.name).await {
            Ok(endpoint) => (endpoint, None),
            Err(e) => (None, Some(e.to_string())),
        };
        Ok(PublicRecordView {
            project: project.to_string(),
            name: public.name.clone(),
            environment: stored.as_ref().map(|r| r.environment.clone()),
            endpoint,
            dns_error,
            pending: stored.as_ref().is_some_and(|r| r.pending),
            previous_environment: stored.and_then(|r| r.previous_environment),
            awaiting_approval: None,
            freeze_overridden: None,
        })
    }

    /// Points the project's public record at `environment`'s cluster.
    /// Freeze windows hold a promotion when either environment of the
    /// record is frozen (an admin may pass one, saying why: with two clusters
    /// every promotion is a flip back, so none is exempt). Where the
    /// environment requires an approval, the promotion waits for another of
    /// its deployers to ask for the same one.
    pub async fn promote(
        &self,
        who: &Identity,
        project: &str,
        environment: &str,
        override_freeze: Option<&str>,
    ) -> Result<PublicRecordView> {
        self.check_project(project)?;
        self.check_environment(environment)?;
        Self::check_may_act(who, environment)?;
        let public = self.public_config(project)?;
        if !public.environments.iter().any(|e| e == environment) {
            return Err(OperationError::FailedPrecondition(format!(
                "{project}'s public record can point at {} only, not {environment}",
                public.environments.join(" or ")
            )));
        }
        if self
            .deployments
            .serving(project, environment)
            .await?
            .is_none()
        {
            return Err(OperationError::FailedPrecondition(format!(
                "{environment} runs no release of {project}: deploy one there first"
            )));
        }
        let _one_at_a_time = self.promotions.lock(project).await;
        let stored = self.promotions.record(project).await?;
        let passed_freeze = self.check_promotion_freeze(
            who,
            project,
            environment,
            &public.environments,
            override_freeze,
        )?;
        if let Some(waiting) = self.promotion_approval(who, project, environment).await? {
            let mut view = self.public_record(project).await?;
            view.awaiting_approval = Some(waiting);
            return Ok(view);
        }
        // Where DNS last surely pointed: a pending promotion never confirmed its
        // environment, so its previous one is it.
        let (confirmed, earlier) = match &stored {
            Some(r) if r.pending => (r.previous_environment.clone(), None),
            Some(r) => (Some(r.environment.clone()), r.previous_environment.clone()),
            None => (None, None),
        };
        let other = |e: &String| e != environment;
        let record = RecordState {
            project: project.to_string(),
            name: public.name.clone(),
            environment: environment.to_string(),
            previous_environment: confirmed.clone().filter(other).or(earlier.filter(other)),
            updated_at: self.clock.now(),
            updated_by: who.name.clone(),
            pending: true,
        };
        promote::store_intent(&self.promotions, &record).await?;
        if let Err(e) = promote::carry_out(&self.promotions, record).await {
            // Stored as pending: the finisher retries it until DNS takes it.
            self.promotions.retry_pending();
            let back = confirmed.filter(other).map_or(String::new(), |live| {
                format!("; `slipway promote {project} --to {live}` takes it back")
            });
            return Err(OperationError::Unavailable(format!(
                "{e}: the promotion to {environment} is stored and the coordinator retries it until it is done (`slipway status {project}` shows it pending){back}"
            )));
        }
        let mut view = self.public_record(project).await?;
        view.freeze_overridden = passed_freeze;
        Ok(view)
    }

    /// Refuses a promotion while a freeze window holds any environment of the
    /// public record, unless an admin gives a reason to pass it; answers the
    /// reason when a freeze was passed.
    fn check_promotion_freeze(
        &self,
        who: &Identity,
        project: &str,
        environment: &str,
        environments: &[String],
        override_freeze: Option<&str>,
    ) -> Result<Option<String>> {
        // Asked to override, an admin must ask, saying why, frozen or not.
        let reason = match override_freeze {
            Some(_) if who.role != crate::pki::Role::Admin => {
                return Err(OperationError::PermissionDenied(format!(
                    "{who} may not override a freeze: an admin may"
                )));
            }
            Some(reason) => Some(override_reason(reason, "--override-freeze REASON")?),
            None => None,
        };
        let fleet = self.fleet();
        let now = self.clock.now();
        let Some((frozen_env, frozen)) = environments.iter().find_map(|e| {
            let env = fleet.environments.get(e)?;
            crate::freeze::frozen(&env.freeze, now).map(|f| (e, f))
        }) else {
            return Ok(None);
        };
        match reason {
            Some(reason) => Ok(Some(reason.to_string())),
            None => Err(OperationError::FailedPrecondition(format!(
                "{frozen_env} is {}: {project} is not promoted until then; an admin may pass it with `slipway promote {project} --to {environment} --override-freeze REASON`",
                frozen.said
            ))),
        }
    }

    /// Where `environment` requires an approval: None once another of its
    /// deployers asked for the same promotion within the hour (the request is
    /// then used up), else what the promotion waits for (the request stored).
    async fn promotion_approval(
        &self,
        who: &Identity,
        project: &str,
        environment: &str,
    ) -> Result<Option<String>> {
        let required = self
            .fleet()
            .environments
            .get(environment)
            .is_some_and(|e| e.requires_approval);
        if !required {
            return Ok(None);
        }
        let asked = self
            .promotions
            .ask(project, environment, &who.name, self.clock.now())
            .await?;
        Ok(match asked {
            promote::Asked::Approved { .. } => None,
            promote::Asked::Waiting { requested_by } => Some(format!(
                "{environment} requires an approval: {project} is promoted when a deployer of {environment} other than {requested_by} runs `slipway promote {project} --to {environment}` (within an hour)"
            )),
        })
    }

    /// Enqueues the release that ran on the target before the current one
    /// (`request` claimed as in `deploy`).
    pub async fn rollback(
        &self,
        who: &Identity,
        project: &str,
        environment: &str,
        request: Option<&RequestKey>,
    ) -> Result<Deployment> {
        self.check_project(project)?;
        self.check_environment(environment)?;
        Self::check_may_act(who, environment)?;
        let heads = self.deployments.heads().await?;
        let active = heads
            .iter()
            .find(|d| d.project == project && d.environment == environment && d.phase.is_active());
        if let Some(active) = active
            && let Some(back) = self.roll_back_to_standby(who, active).await?
        {
            return Ok(back);
        }
        // What serves: a deployment that switched already serves.
        let switched = active
            .filter(|d| d.phase.is_past_point_of_no_return())
            .map(|d| d.version.clone());
        let serving = self
            .deployments
            .serving(project, environment)
            .await?
            .map(|d| d.version);
        let current = switched.or(serving).ok_or_else(|| {
            OperationError::FailedPrecondition(format!(
                "{project} never deployed to {environment}: nothing to roll back"
            ))
        })?;
        let served_before = self
            .deployments
            .served_before(project, environment, &current)
            .await?;
        let previous = served_before.ok_or_else(|| {
            OperationError::FailedPrecondition(format!(
                "{project} on {environment} has run only {current}: there is no earlier release to go back to"
            ))
        })?;
        let release = self
            .stored_release(project, &previous)
            .await?
            .ok_or_else(|| {
                OperationError::NotFound(format!(
                    "release {project}@{previous} is no longer registered"
                ))
            })?;
        // A rollback passes freeze windows (DESIGN.md): the rollback RPC's
        // audit entry records it.
        self.enqueue(
            format!("{} (rollback from {current})", who.name),
            &release,
            environment,
            |d| d.passes_freeze = Some(format!("a rollback by {}", who.name)),
            request,
        )
        .await
    }

    /// `active`, the deployment running on the target, asked to go back to
    /// its standby instances: a rollback in seconds, with no launch. One
    /// watching goes back now; one draining into a watch, once it watches;
    /// one already going back to them is this rollback. None when it has no
    /// standby to go back to (then the previous release is redeployed).
    async fn roll_back_to_standby(
        &self,
        who: &Identity,
        active: &Deployment,
    ) -> Result<Option<Deployment>> {
        let keeps = self
            .fleet()
            .environments
            .get(&active.environment)
            .is_some_and(|e| !e.keep_previous.is_zero());
        let goes_back = match active.phase {
            Phase::Watching => true,
            Phase::Draining => keeps && active.replaces.is_empty(),
            Phase::RollingBack => active.watched(),
            _ => false,
        };
        if !goes_back {
            return Ok(None);
        }
        // With no standby left, going back would leave nothing serving.
        if active.phase != Phase::RollingBack {
            let standby = self.cloud.compute.describe(&active.old_instances).await?;
            if standby.iter().all(|i| i.state == InstanceState::Gone) {
                return Ok(None);
            }
        }
        let asked = self
            .deployments
            .update(&active.id, |d| {
                // It may have moved on since it was read.
                if d.phase != active.phase {
                    return Err(OperationError::FailedPrecondition(format!(
                        "deployment {} moved on to {} as the rollback arrived: see `slipway show {}` before rolling back again",
                        d.id, d.phase, d.id
                    )));
                }
                d.rollback_requested_by.get_or_insert_with(|| who.name.clone());
                Ok(())
            })
            .await?;
        self.agents.changed.notify_waiters();
        Ok(asked.map(|(d, ())| d))
    }

    /// Agents of instances that still exist; terminated ones are history.
    pub async fn agent_list(&self, project: Option<&str>) -> Result<Vec<AgentStatus>> {
        if let Some(project) = project {
            self.check_project(project)?;
        }
        let mut records: Vec<AgentRecord> = self.agent_records.all().await?;
        // Slipway revokes what it terminates: only the others are asked about.
        records.retain(|r| {
            project.is_none_or(|p| r.project == p) && !self.revocations.is_revoked(&r.instance_id)
        });
        let ids: Vec<String> = records.iter().map(|r| r.instance_id.clone()).collect();
        // A set: looked up once per record, of which there may be 10,000.
        let alive: std::collections::HashSet<String> = if ids.is_empty() {
            Default::default()
        } else {
            self.cloud
                .compute
                .describe(&ids)
                .await?
                .into_iter()
                .filter(|i| i.state != InstanceState::Gone)
                .map(|i| i.id)
                .collect()
        };
        let now = self.clock.now();
        let lost_after =
            self.fleet().coordinator.agent_lost_after.as_millis() as crate::clock::Millis;
        Ok(records
            .into_iter()
            .filter(|record| alive.contains(&record.instance_id))
            .map(|record| {
                let view = self.agents.view(&record.instance_id);
                let hello = self.agents.hello(&record.instance_id);
                AgentStatus {
                    connection: Connection::of(view.as_ref(), now, lost_after),
                    last_seen: view.as_ref().map_or(0, |v| v.last_seen),
                    ready: view.is_some_and(|v| v.ready),
                    agent_protocol: hello.as_ref().map_or(0, |h| h.protocol),
                    agent_version: hello.map(|h| h.agent_version).unwrap_or_default(),
                    record,
                }
            })
            .collect())
    }

    /// The instances whose agents `logs` asks: those of `project` on
    /// `environment` that are connected, or the one named.
    pub async fn log_sources(
        &self,
        project: &str,
        environment: &str,
        instance: Option<&str>,
    ) -> Result<Vec<String>> {
        self.check_environment(environment)?;
        let running: Vec<String> = self
            .agent_list(Some(project))
            .await?
            .into_iter()
            .filter(|a| {
                a.record.environment == environment && a.connection == Connection::Connected
            })
            .map(|a| a.record.instance_id)
            .collect();
        match instance {
            None if running.is_empty() => Err(OperationError::NotFound(format!(
                "no running instance of {project} on {environment} to read logs from"
            ))),
            None => Ok(running),
            Some(id) if running.iter().any(|r| r == id) => Ok(vec![id.to_string()]),
            Some(id) => Err(OperationError::NotFound(format!(
                "no running instance {id} of {project} on {environment}: running are {}",
                match running.is_empty() {
                    true => "none".to_string(),
                    false => running.join(", "),
                }
            ))),
        }
    }

    /// What `text`, a new fleet file, would change; refused whole, naming
    /// the key, if it is not valid.
    pub fn fleet_diff(&self, text: &str) -> Result<Vec<String>> {
        let new = Fleet::parse(text, "the new fleet file")
            .map_err(|e| OperationError::Invalid(e.to_string()))?;
        Ok(crate::config_diff::diff(&self.fleet(), &new))
    }

    /// Takes `text` as the fleet in force (see `Fleets::apply`); returns the
    /// generation now in force, what changed, and the infrastructure it
    /// lacks (made by `infra apply`, as at a start).
    pub async fn fleet_apply(
        &self,
        who: &Identity,
        text: &str,
    ) -> Result<(u64, Vec<String>, Vec<String>)> {
        let busy: Vec<String> = self
            .deployments
            .heads()
            .await?
            .iter()
            .map(|d| format!("{}/{}", d.project, d.environment))
            .collect();
        let (generation, changes) = self
            .fleets
            .apply(text, &who.to_string(), &busy)
            .await
            .map_err(|e| match e {
                crate::fleets::FleetError::Invalid(message) => OperationError::Invalid(message),
                crate::fleets::FleetError::Store(e) => e.into(),
            })?;
        // Taken already: a cloud that cannot be read now only leaves the
        // comparison to `infra plan`.
        let infra = match crate::infra::plan(&generation.fleet, &self.cloud).await {
            Ok(infra) => infra.iter().map(ToString::to_string).collect(),
            Err(e) => vec![format!(
                "cannot compare with the cloud now ({e}): run `slipway infra plan`"
            )],
        };
        Ok((generation.number, changes, infra))
    }

    /// What infrastructure is missing or drifted; changes nothing.
    pub async fn infra_plan(&self) -> Result<Vec<crate::infra::Change>> {
        Ok(crate::infra::plan(&self.fleet(), &self.cloud).await?)
    }

    /// Makes the infrastructure match the fleet file; returns what it changed.
    pub async fn infra_apply(&self) -> Result<Vec<crate::infra::Change>> {
        let changes = crate::infra::plan(&self.fleet(), &self.cloud).await?;
        crate::infra::apply(&self.cloud, &changes).await?;
        Ok(changes)
    }

    /// Live instances Slipway tagged that no stored deployment knows about.
    pub async fn orphans(&self) -> Result<Vec<crate::orphans::Orphan>> {
        Ok(crate::orphans::find(&self.deployments, self.cloud.compute.as_ref()).await?)
    }

    /// Terminates the orphans found now (a list shown earlier may be stale:
    /// only what is still an orphan goes); returns them.
    pub async fn terminate_orphans(&self) -> Result<Vec<crate::orphans::Orphan>> {
        let orphans = self.orphans().await?;
        let ids: Vec<String> = orphans.iter().map(|o| o.instance_id.clone()).collect();
        if !ids.is_empty() {
            self.cloud.compute.terminate(&ids).await?;
        }
        Ok(orphans)
    }

    /// Signs an operator CSR with a role; agents get theirs from join tokens only.
    pub fn issue_certificate(
        &self,
        name: &str,
        role: &str,
        environments: &[String],
        days: u32,
        csr_pem: &str,
    ) -> Result<(String, i64)> {
        let identity = self.operator_identity(name, role, environments)?;
        let days = if days == 0 {
            DEFAULT_OPERATOR_DAYS
        } else {
            days
        };
        if days > 365 {
            return Err(OperationError::Invalid(format!(
                "{days} days is too long for a certificate: use 1-365"
            )));
        }
        self.ca
            .sign_csr(
                csr_pem,
                &identity,
                std::time::Duration::from_secs(u64::from(days) * 24 * 3600),
            )
            .map_err(OperationError::of)
    }

    /// Signs `csr_pem` for `identity` as it is (its own name, role and
    /// environments), from the CA that signs now, for `lifetime` at most a year.
    pub fn renew_certificate(
        &self,
        identity: &Identity,
        lifetime: std::time::Duration,
        csr_pem: &str,
    ) -> Result<(String, i64)> {
        let year = std::time::Duration::from_secs(365 * 24 * 3600);
        self.ca
            .sign_csr(csr_pem, identity, lifetime.min(year))
            .map_err(OperationError::of)
    }

    /// Checks what an operator certificate would say.
    pub fn operator_identity(
        &self,
        name: &str,
        role: &str,
        environments: &[String],
    ) -> Result<Identity> {
        let identity =
            Identity::operator(name, role, environments).map_err(OperationError::Invalid)?;
        for env in environments {
            self.check_environment(env)?;
        }
        Ok(identity)
    }

    /// Where a secret goes: an environment (one project there, or all), or a
    /// data store (every project that uses it).
    fn secret_scope(&self, place: &str, project: Option<&str>) -> Result<Scope> {
        let fleet = self.fleet();
        let (scope, what) = if fleet.data_stores.contains_key(place) {
            (
                Scope::Store(place.to_string()),
                "a data store: its secrets go to every project that uses it",
            )
        } else if fleet.notifications.contains_key(place) {
            (
                Scope::Sink(place.to_string()),
                "a notification: its secrets are its own",
            )
        } else {
            self.check_place(place)?;
            if let Some(project) = project {
                self.check_project(project)?;
            }
            return Ok(Scope::Environment {
                environment: place.to_string(),
                project: project.map(str::to_string),
            });
        };
        if project.is_some() {
            return Err(OperationError::Invalid(format!(
                "{place} is {what}; drop --project"
            )));
        }
        Ok(scope)
    }

    /// `place` is an environment (else: what it could have been).
    fn check_place(&self, place: &str) -> Result<()> {
        let fleet = self.fleet();
        if fleet.environments.contains_key(place) {
            return Ok(());
        }
        let known = |names: Vec<&String>| match names.is_empty() {
            true => "none".to_string(),
            false => names.into_iter().cloned().collect::<Vec<_>>().join(", "),
        };
        Err(OperationError::NotFound(format!(
            "no environment, data store or notification {place:?} in the fleet file: environments are {}; data stores are {}; notifications are {}",
            known(fleet.environments.keys().collect()),
            known(fleet.data_stores.keys().collect()),
            known(fleet.notifications.keys().collect()),
        )))
    }

    /// Stores a secret of `place`, an environment (for `project` only, if
    /// given) or a data store; the value is encrypted before it is stored.
    pub async fn set_secret(
        &self,
        place: &str,
        project: Option<&str>,
        key: &str,
        value: &str,
    ) -> Result<Scope> {
        let scope = self.secret_scope(place, project)?;
        self.secrets
            .set(&scope, key, value)
            .await
            .map_err(OperationError::of)?;
        Ok(scope)
    }

    /// Removes a secret of `place` (of `project` only, if given).
    pub async fn delete_secret(
        &self,
        place: &str,
        project: Option<&str>,
        key: &str,
    ) -> Result<Scope> {
        let scope = self.secret_scope(place, project)?;
        self.secrets
            .delete(&scope, key)
            .await
            .map_err(OperationError::of)?;
        Ok(scope)
    }

    /// Replaces the secrets key, re-sealing every secret.
    pub async fn rotate_secrets_key(&self) -> Result<crate::secrets::Rotated> {
        self.secrets.rotate().await.map_err(OperationError::of)
    }

    /// Secret names with their scope, of an environment or data store, or
    /// of all; values are never returned.
    pub async fn secret_names(&self, place: Option<&str>) -> Result<Vec<(Scope, String)>> {
        let scope = place.map(|p| self.secret_scope(p, None)).transpose()?;
        self.secrets
            .names(scope.as_ref())
            .await
            .map_err(OperationError::of)
    }
}

/// Operator certificates expire too: 90 days unless asked otherwise.
pub const DEFAULT_OPERATOR_DAYS: u32 = 90;
