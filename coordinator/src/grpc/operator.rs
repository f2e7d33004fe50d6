//! The operator service: what the CLI and CI call. Each RPC checks the caller's
//! role, converts the request, and calls the coordinator's operations. Every
//! mutating RPC, allowed or not, succeeded or not, goes into the audit log.

use std::sync::Arc;

use slipway_domain::agent::Closing;
use slipway_proto::v1::operator_service_server::OperatorService;
use slipway_proto::v1::*;
use tonic::{Request, Response, Status};
use tracing::{error, info, warn};

use super::auth::{self, Caller};
use super::convert;
use crate::agents::AgentHub;
use crate::audit::{About, Anchor, AuditLog};
use crate::coordinator::Coordinator;
use crate::grpc::events::{EventStream, Filter, Watchers};
use crate::notify::Notifier;
use crate::operations::Operations;
use crate::pki::Role;
use crate::revocation::Revocations;
use crate::secrets::{MASK, Scope};

/// Most audit entries one answer carries: with fields of at most 512
/// characters, a page stays far below the 4 MB message limit.
const AUDIT_PAGE: usize = 500;

/// Most deployments one answer carries (each well under 4 KB, as every field
/// is bounded).
const DEPLOYMENTS_PAGE: usize = 200;

/// The largest fleet file accepted, in bytes.
const MAX_FLEET_FILE: usize = 1024 * 1024;

/// Most releases one answer carries.
const RELEASES_PAGE: usize = 1000;

#[derive(Debug)]
pub struct OperatorApi {
    operations: Arc<Operations>,
    audit: Arc<AuditLog>,
    revocations: Arc<Revocations>,
    agents: Arc<AgentHub>,
    watchers: Watchers,
    notifier: Arc<Notifier>,
    dashboard: Arc<crate::dashboard::access::DashboardAccess>,
    dashboard_address: Option<String>,
    stopping: crate::stopping::Stopping,
    requests: Arc<crate::requests::Requests>,
    snapshots: Option<Arc<crate::store::Gated>>,
    ca_rotation: Arc<crate::ca_rotation::CaRotation>,
}

impl OperatorApi {
    pub fn new(coordinator: &Coordinator) -> Self {
        OperatorApi {
            operations: coordinator.operations.clone(),
            requests: coordinator.requests.clone(),
            snapshots: coordinator.snapshots.clone(),
            ca_rotation: coordinator.ca_rotation.clone(),
            audit: coordinator.audit.clone(),
            revocations: coordinator.revocations.clone(),
            agents: coordinator.agents.clone(),
            watchers: Watchers::new(coordinator.events.clone(), coordinator.stopping.clone()),
            notifier: coordinator.notifier.clone(),
            dashboard: coordinator.dashboard_access.clone(),
            dashboard_address: coordinator.dashboard_address.clone(),
            stopping: coordinator.stopping.clone(),
        }
    }

    /// `act`, once per request id: a call carrying `REQUEST_ID_METADATA`
    /// gets the first answer given to the same caller, action and id within
    /// a day (`requests`), without acting again; a call without one acts.
    async fn once<T, F>(
        &self,
        asked: &tonic::metadata::MetadataMap,
        caller: &Caller,
        action: &str,
        act: F,
    ) -> Result<T, Status>
    where
        T: prost::Message + Default,
        F: std::future::Future<Output = Result<T, Status>>,
    {
        let key = request_key(asked, caller, action)?;
        self.once_keyed(key, caller, action, act, |_| async {
            Err(Status::internal(
                "this action makes no deployment to answer with",
            ))
        })
        .await
    }

    /// `once` for a `key` the action also claims with the deployment it
    /// makes (`requests::claim`): a retry after a stop that lost the answer
    /// gets that deployment (`recover`).
    async fn once_keyed<T, F, R>(
        &self,
        key: Option<crate::requests::RequestKey>,
        caller: &Caller,
        action: &str,
        act: F,
        recover: impl FnOnce(String) -> R,
    ) -> Result<T, Status>
    where
        T: prost::Message + Default,
        F: std::future::Future<Output = Result<T, Status>>,
        R: std::future::Future<Output = Result<T, Status>>,
    {
        let Some(key) = key else {
            return act.await;
        };
        let held = self.requests.hold(key).await;
        let before = self
            .requests
            .answered(&held)
            .await
            .map_err(|e| super::status::of(&e))?;
        let answer = match before {
            Some(crate::requests::Before::Answer(answer)) => {
                info!(who = %caller, %action, request = ?self.requests.key(&held), "a repeated request: its first answer is given again");
                return T::decode(answer.as_slice()).map_err(|e| {
                    Status::internal(format!(
                        "the first answer to this request id is unreadable: {e}"
                    ))
                });
            }
            Some(crate::requests::Before::Deployment(id)) => {
                info!(who = %caller, %action, deployment_id = %id, "a repeated request whose answer a stop lost: its deployment is given again");
                recover(id).await?
            }
            None => act.await?,
        };
        // The harness stops the coordinator here: acted, the answer not kept.
        crate::faults::pause_at("request/acted").await;
        if let Err(e) = self.requests.remember(&held, answer.encode_to_vec()).await {
            warn!(error = %e, "cannot keep the answer: a retry with this request id acts again");
        }
        drop(held);
        // The harness loses this answer here (the CLI is killed while it waits).
        crate::faults::pause_at("request/answered").await;
        Ok(answer)
    }

    /// The answer a deploy or rollback gives with deployment `id`.
    async fn deployment_answer(&self, id: String) -> Result<Deployment, Status> {
        let deployment = self
            .operations
            .deployments
            .get(&id)
            .await
            .map_err(|e| super::status::of(&e))?
            .ok_or_else(|| Status::internal(format!("{id}, made for this request id, is gone")))?;
        Ok(convert::bare_deployment(deployment))
    }

    async fn audited<T: Outcome>(
        &self,
        caller: &Caller,
        action: &str,
        (target, asked): (&str, About),
        outcome: Result<T, Status>,
    ) -> Result<T, Status> {
        let (result, about) = match &outcome {
            Ok(answer) => (answer.outcome(), answer.about().unwrap_or(asked)),
            Err(status) => (format!("{:?}: {}", status.code(), status.message()), asked),
        };
        let who = caller.to_string();
        if let Err(e) = self
            .audit
            .append_about(&who, &caller.certificate, action, target, &result, &about)
            .await
        {
            error!(error = %e, %action, %who, "cannot write the audit log");
            return Err(super::status::audit_unwritable(&e));
        }
        outcome
    }
}

/// What an answered action says in the audit log's result column: `ok`,
/// unless the answer says more (a deploy is accepted, not yet succeeded, so its
/// entry names the deployment it queued: `queued d-12`).
trait Outcome {
    fn outcome(&self) -> String {
        "ok".to_string()
    }

    /// What the answer says the action was about, when it knows better than
    /// the request (a deployment knows its id).
    fn about(&self) -> Option<About> {
        None
    }
}

/// The request id a call carries (`REQUEST_ID_METADATA`), as a key of its
/// caller's and action's; None: the call carries none.
fn request_key(
    asked: &tonic::metadata::MetadataMap,
    caller: &Caller,
    action: &str,
) -> Result<Option<crate::requests::RequestKey>, Status> {
    let Some(id) = asked.get(slipway_common::REQUEST_ID_METADATA) else {
        return Ok(None);
    };
    let id = id
        .to_str()
        .map_err(|_| Status::invalid_argument("the request id must be plain text"))?;
    crate::requests::RequestKey::new(&caller.identity.name, action, id)
        .map(Some)
        .map_err(Status::invalid_argument)
}

/// What a request is about, before it is answered.
fn about(project: &str, environment: &str, version: &str) -> About {
    let field = |text: &str| (!text.is_empty()).then(|| text.to_string());
    About {
        project: field(project),
        environment: field(environment),
        version: field(version),
        deployment: None,
    }
}

impl Outcome for Deployment {
    fn about(&self) -> Option<About> {
        Some(About {
            deployment: Some(self.id.clone()),
            ..about(&self.project, &self.environment, &self.version)
        })
    }

    fn outcome(&self) -> String {
        match self.phase() {
            Phase::Queued => format!("queued {}", self.id),
            Phase::Cancelled => format!("cancelled {}", self.id),
            _ if self.cancel_requested => format!("cancel requested: {} rolls back", self.id),
            _ if !self.rollback_requested_by.is_empty() => {
                format!("{} goes back to its standby instances", self.id)
            }
            phase => format!(
                "{} {}",
                self.id,
                phase
                    .as_str_name()
                    .trim_start_matches("PHASE_")
                    .to_ascii_lowercase()
            ),
        }
    }
}

impl Outcome for Release {}
/// A promotion's answer, with the reason an admin gave to pass a freeze.
struct Promoted {
    record: PublicRecord,
    freeze_overridden: Option<String>,
}

impl Outcome for Promoted {
    fn outcome(&self) -> String {
        if !self.record.awaiting_approval.is_empty() {
            return "waits for an approval".to_string();
        }
        match &self.freeze_overridden {
            Some(reason) => format!("promoted past a freeze: {reason}"),
            None => "ok".to_string(),
        }
    }
}

impl Outcome for PublicRecord {}
impl Outcome for InfraChanges {}

impl Outcome for SecretsKeyRotated {
    fn outcome(&self) -> String {
        format!(
            "re-sealed {} secrets: key {} -> {}",
            self.resealed, self.from_key, self.to_key
        )
    }
}

/// A snapshot taken for a backup: its document, and how many entries.
struct BackedUp {
    document: Vec<u8>,
    entries: usize,
}

impl Outcome for BackedUp {
    fn outcome(&self) -> String {
        format!("{} entries, {} bytes", self.entries, self.document.len())
    }
}

/// Chunks of a backup's document: each well under a message's 4 MiB limit.
const BACKUP_CHUNK: usize = 1 << 20;

impl Outcome for InfraOrphansResponse {
    fn outcome(&self) -> String {
        let ids: Vec<&str> = self
            .orphans
            .iter()
            .map(|o| o.instance_id.as_str())
            .collect();
        format!(
            "terminated {}",
            if ids.is_empty() {
                "none".to_string()
            } else {
                ids.join(" ")
            }
        )
    }
}

impl Outcome for FleetApplied {
    /// The generation and what changed: the audit log keeps the history of
    /// the fleet file.
    fn outcome(&self) -> String {
        const SHOWN: usize = 10;
        if self.changes.is_empty() {
            return format!("no changes: generation {} stays", self.generation);
        }
        let mut said = self.changes[..self.changes.len().min(SHOWN)].join("; ");
        if self.changes.len() > SHOWN {
            said.push_str(&format!("; and {} more", self.changes.len() - SHOWN));
        }
        format!("generation {}: {said}", self.generation)
    }
}
impl Outcome for IssueCertificateResponse {}
impl Outcome for CaRotation {
    /// Which CA signs and which one is still trusted: the audit entry names both.
    fn outcome(&self) -> String {
        match self.previous.as_str() {
            "" => format!("ok: {} signs, alone", self.signing),
            previous => format!("ok: {} signs, {previous} still trusted", self.signing),
        }
    }
}
impl Outcome for Secret {}
impl Outcome for RevokeResponse {}
/// An approval's answer: the audit log says "approved d-12", not "queued".
struct Approved(Deployment);

/// A deployment let through a freeze, with the admin's reason for the audit.
struct FreezeOverridden(Deployment);

impl Outcome for FreezeOverridden {
    fn outcome(&self) -> String {
        format!("{} passes: {}", self.0.id, self.0.passes_freeze)
    }

    fn about(&self) -> Option<About> {
        self.0.about()
    }
}

impl Outcome for Approved {
    fn outcome(&self) -> String {
        format!("approved {}", self.0.id)
    }

    fn about(&self) -> Option<About> {
        self.0.about()
    }
}

impl Outcome for ReleaseCheck {
    fn outcome(&self) -> String {
        match self.passed {
            true => format!("{} passed", self.name),
            false => format!("{} failed", self.name),
        }
    }
}
impl Outcome for DashboardToken {
    fn outcome(&self) -> String {
        format!("minted token {}", self.id)
    }
}
impl Outcome for RevokeDashboardResponse {
    fn outcome(&self) -> String {
        match self.revoked.is_empty() {
            true => "none revoked (already were)".to_string(),
            false => format!("revoked {}", self.revoked.join(", ")),
        }
    }
}

/// The page size a caller asked for: 0 means the server's, and no more than it.
fn page_size(asked: u32, max: usize) -> usize {
    match usize::try_from(asked) {
        Ok(0) | Err(_) => max,
        Ok(n) => n.min(max),
    }
}

/// A page token as this server hands them out (a number); empty: the first page.
fn page_token(token: &str) -> Result<Option<u64>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    token.parse().map(Some).map_err(|_| {
        Status::invalid_argument(
            "page_token is not one this coordinator handed out: start from an empty one",
        )
    })
}

fn check_fleet_size(text: &str) -> Result<(), Status> {
    if text.len() > MAX_FLEET_FILE {
        return Err(Status::invalid_argument(format!(
            "the fleet file is {} bytes: at most {MAX_FLEET_FILE}",
            text.len()
        )));
    }
    Ok(())
}

/// A secret as answers show it: its name, never its value.
fn masked(scope: &Scope, key: &str) -> Secret {
    let mut secret = Secret {
        key: key.to_string(),
        value: MASK.to_string(),
        ..Secret::default()
    };
    match scope {
        Scope::Environment {
            environment,
            project,
        } => {
            secret.environment = environment.clone();
            secret.project = project.clone().unwrap_or_default();
        }
        Scope::Store(store) => secret.data_store = store.clone(),
        Scope::Sink(sink) => secret.notification = sink.clone(),
    }
    secret
}

/// A secret as the audit log names it: `ENV/KEY`, `ENV/PROJECT/KEY` or
/// `STORE/KEY`.
fn secret_target(environment: &str, project: &str, key: &str) -> String {
    if project.is_empty() {
        format!("{environment}/{key}")
    } else {
        format!("{environment}/{project}/{key}")
    }
}

/// Longest identifier field accepted (a project, a version, an image id, an
/// environment): checked before the value is used, logged or audited, so no
/// caller's megabytes travel on into messages and the log.
const MAX_FIELD: usize = 256;

/// Empty means "not given" on the wire.
fn optional<'a>(field: &str, text: &'a str) -> Result<Option<&'a str>, Status> {
    if text.len() > MAX_FIELD {
        return Err(Status::invalid_argument(format!(
            "{field} is {} bytes long: at most {MAX_FIELD}",
            text.len()
        )));
    }
    Ok(Some(text).filter(|t| !t.is_empty()))
}

fn required<'a>(field: &str, text: &'a str) -> Result<&'a str, Status> {
    optional(field, text)?.ok_or_else(|| Status::invalid_argument(format!("{field} is required")))
}

#[tonic::async_trait]
impl OperatorService for OperatorApi {
    async fn register_release(
        &self,
        request: Request<RegisterReleaseRequest>,
    ) -> Result<Response<Release>, Status> {
        let caller = auth::caller(&request, &self.revocations)?;
        let asked = request.metadata().clone();
        let r = request.into_inner();
        let target = format!("{}@{}", r.project, r.version);
        let act = async {
            let outcome = async {
            caller.require(Role::Deployer)?;
            let release = self
                .operations
                .register_release(
                    &caller.identity,
                    required("project", &r.project)?,
                    required("version", &r.version)?,
                    optional("image_id", &r.image_id)?,
                    &convert::provenance_from(r.provenance.clone()),
                )
                .await?;
            info!(who = %caller, project = %release.project, version = %release.version, image = %release.image_id, "release registered");
            let checks = self
                .operations
                .release_checks(&release.project, &release.version)
                .await?;
            Ok(convert::release(release, checks))
        }
        .await;
            self.audited(
                &caller,
                "release add",
                (&target, about(&r.project, "", &r.version)),
                outcome,
            )
            .await
        };
        self.once(&asked, &caller, "release add", act)
            .await
            .map(Response::new)
    }

    async fn list_releases(
        &self,
        request: Request<ListReleasesRequest>,
    ) -> Result<Response<ListReleasesResponse>, Status> {
        auth::require(&request, &self.revocations, Role::Viewer)?;
        let r = request.get_ref();
        let from = page_token(&r.page_token)?.unwrap_or(0);
        let (releases, next) = self
            .operations
            .releases(
                optional("project", &r.project)?,
                usize::try_from(from).unwrap_or(usize::MAX),
                page_size(r.limit, RELEASES_PAGE),
            )
            .await?;
        Ok(Response::new(ListReleasesResponse {
            releases: releases
                .into_iter()
                .map(|(release, checks)| convert::release(release, checks))
                .collect(),
            next_page_token: next.map(|n| n.to_string()).unwrap_or_default(),
        }))
    }

    async fn deploy(
        &self,
        request: Request<DeployRequest>,
    ) -> Result<Response<Deployment>, Status> {
        let caller = auth::caller(&request, &self.revocations)?;
        let asked = request.metadata().clone();
        let r = request.into_inner();
        let target = format!("{}@{} -> {}", r.project, r.version, r.environment);
        let key = request_key(&asked, &caller, "deploy")?;
        let act = async {
            let outcome = async {
            caller.require(Role::Deployer)?;
            let deployment = self.operations.deploy(
                &caller.identity,
                required("project", &r.project)?,
                required("version", &r.version)?,
                required("environment", &r.environment)?,
                key.as_ref(),
            ).await?;
            info!(who = %caller, deployment_id = %deployment.id, target = %deployment.target(), version = %deployment.version, "deployment queued");
            Ok(convert::bare_deployment(deployment))
        }
        .await;
            self.audited(
                &caller,
                "deploy",
                (&target, about(&r.project, &r.environment, &r.version)),
                outcome,
            )
            .await
        };
        self.once_keyed(key.clone(), &caller, "deploy", act, |id| {
            self.deployment_answer(id)
        })
        .await
        .map(Response::new)
    }

    async fn cancel(
        &self,
        request: Request<CancelRequest>,
    ) -> Result<Response<Deployment>, Status> {
        let caller = auth::caller(&request, &self.revocations)?;
        let asked = request.metadata().clone();
        let id = request.get_ref().id.clone();
        let act = async {
            let outcome = async {
                caller.require(Role::Deployer)?;
                let deployment = self
                    .operations
                    .cancel(&caller.identity, required("id", &id)?)
                    .await?;
                info!(who = %caller, deployment_id = %deployment.id, "cancel requested");
                Ok(convert::bare_deployment(deployment))
            }
            .await;
            self.audited(
                &caller,
                "cancel",
                (
                    &id,
                    About {
                        deployment: Some(id.clone()),
                        ..About::default()
                    },
                ),
                outcome,
            )
            .await
        };
        self.once(&asked, &caller, "cancel", act)
            .await
            .map(Response::new)
    }

    async fn get_deployment(
        &self,
        request: Request<GetDeploymentRequest>,
    ) -> Result<Response<Deployment>, Status> {
        auth::require(&request, &self.revocations, Role::Viewer)?;
        let view = self
            .operations
            .deployment(required("id", &request.get_ref().id)?)
            .await?;
        Ok(Response::new(convert::deployment(view)))
    }

    async fn queue(
        &self,
        request: Request<QueueRequest>,
    ) -> Result<Response<QueueResponse>, Status> {
        auth::require(&request, &self.revocations, Role::Viewer)?;
        let lines = self.operations.queue().await?;
        Ok(Response::new(QueueResponse {
            targets: lines.into_iter().map(convert::queue_line).collect(),
        }))
    }

    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        auth::require(&request, &self.revocations, Role::Viewer)?;
        let projects = self
            .operations
            .status(optional("project", &request.get_ref().project)?)
            .await?;
        Ok(Response::new(StatusResponse {
            projects: projects.into_iter().map(convert::project_status).collect(),
        }))
    }

    async fn deployments(
        &self,
        request: Request<DeploymentsRequest>,
    ) -> Result<Response<DeploymentsResponse>, Status> {
        auth::require(&request, &self.revocations, Role::Viewer)?;
        let r = request.get_ref();
        let (list, next) = self
            .operations
            .deployments(
                optional("project", &r.project)?,
                optional("environment", &r.environment)?,
                page_size(r.limit, DEPLOYMENTS_PAGE),
                page_token(&r.page_token)?,
            )
            .await?;
        Ok(Response::new(DeploymentsResponse {
            deployments: list.into_iter().map(convert::deployment).collect(),
            next_page_token: next.map(|n| n.to_string()).unwrap_or_default(),
        }))
    }

    async fn agents(
        &self,
        request: Request<AgentsRequest>,
    ) -> Result<Response<AgentsResponse>, Status> {
        auth::require(&request, &self.revocations, Role::Viewer)?;
        let project = optional("project", &request.get_ref().project)?;
        let agents = self.operations.agent_list(project).await?;
        Ok(Response::new(AgentsResponse {
            agents: agents.into_iter().map(convert::agent).collect(),
        }))
    }

    async fn promote(
        &self,
        request: Request<PromoteRequest>,
    ) -> Result<Response<PublicRecord>, Status> {
        let caller = auth::caller(&request, &self.revocations)?;
        let asked = request.metadata().clone();
        let r = request.into_inner();
        let target = format!("{} -> {}", r.project, r.environment);
        let act = async {
            let outcome = async {
            caller.require(Role::Deployer)?;
            let record = self
                .operations
                .promote(
                    &caller.identity,
                    required("project", &r.project)?,
                    required("environment", &r.environment)?,
                    optional("override_freeze", &r.override_freeze)?,
                )
                .await?;
            if record.awaiting_approval.is_none() {
                info!(who = %caller, project = %record.project, to = ?record.environment, "promoted");
            }
            Ok(Promoted {
                freeze_overridden: record.freeze_overridden.clone(),
                record: convert::public_record(record),
            })
        }
        .await;
            self.audited(
                &caller,
                "promote",
                (&target, about(&r.project, &r.environment, "")),
                outcome,
            )
            .await
            .map(|promoted| promoted.record)
        };
        self.once(&asked, &caller, "promote", act)
            .await
            .map(Response::new)
    }

    async fn rollback(
        &self,
        request: Request<RollbackRequest>,
    ) -> Result<Response<Deployment>, Status> {
        let caller = auth::caller(&request, &self.revocations)?;
        let asked = request.metadata().clone();
        let r = request.into_inner();
        let target = format!("{} on {}", r.project, r.environment);
        let key = request_key(&asked, &caller, "rollback")?;
        let act = async {
            let outcome = async {
            caller.require(Role::Deployer)?;
            let deployment = self.operations.rollback(
                &caller.identity,
                required("project", &r.project)?,
                required("environment", &r.environment)?,
                key.as_ref(),
            ).await?;
            let how = if deployment.rollback_requested_by.is_some() { "rollback to the standby asked" } else { "rollback queued" };
            info!(who = %caller, deployment_id = %deployment.id, version = %deployment.version, "{how}");
            Ok(convert::bare_deployment(deployment))
        }
        .await;
            self.audited(
                &caller,
                "rollback",
                (&target, about(&r.project, &r.environment, "")),
                outcome,
            )
            .await
        };
        self.once_keyed(key.clone(), &caller, "rollback", act, |id| {
            self.deployment_answer(id)
        })
        .await
        .map(Response::new)
    }

    async fn infra_plan(
        &self,
        request: Request<InfraRequest>,
    ) -> Result<Response<InfraChanges>, Status> {
        auth::require(&request, &self.revocations, Role::Admin)?;
        let changes = self.operations.infra_plan().await?;
        Ok(Response::new(InfraChanges {
            changes: changes.iter().map(ToString::to_string).collect(),
        }))
    }

    async fn infra_apply(
        &self,
        request: Request<InfraRequest>,
    ) -> Result<Response<InfraChanges>, Status> {
        let caller = auth::caller(&request, &self.revocations)?;
        let outcome = async {
            caller.require(Role::Admin)?;
            let changes = self.operations.infra_apply().await?;
            for change in &changes {
                info!(who = %caller, %change, "infrastructure changed");
            }
            Ok(InfraChanges {
                changes: changes.iter().map(ToString::to_string).collect(),
            })
        }
        .await;
        let target = match &outcome {
            Ok(changes) => format!("{} changes", changes.changes.len()),
            Err(_) => String::new(),
        };
        self.audited(&caller, "infra apply", (&target, About::default()), outcome)
            .await
            .map(Response::new)
    }

    type BackupStream = tokio_stream::Iter<std::vec::IntoIter<Result<BackupChunk, Status>>>;

    async fn backup(
        &self,
        request: Request<BackupRequest>,
    ) -> Result<Response<Self::BackupStream>, Status> {
        let caller = auth::caller(&request, &self.revocations)?;
        let outcome = async {
            caller.require(Role::Admin)?;
            let gated = self.snapshots.as_ref().ok_or_else(|| {
                Status::failed_precondition("only the leading coordinator takes backups")
            })?;
            let snapshot = gated.snapshot().await.map_err(|e| super::status::of(&e))?;
            let now = self.operations.clock.now();
            let document = crate::backup::Document::of(&snapshot, now)
                .await
                .map_err(|e| super::status::of(&e))?;
            let entries = document.entries();
            let document = serde_json::to_vec(&document)
                .map_err(|e| Status::internal(format!("cannot encode the snapshot: {e}")))?;
            info!(who = %caller, entries, "backup taken");
            Ok(BackedUp { document, entries })
        }
        .await;
        let backed_up = self
            .audited(&caller, "backup", ("store", About::default()), outcome)
            .await?;
        let chunks: Vec<Result<BackupChunk, Status>> = backed_up
            .document
            .chunks(BACKUP_CHUNK)
            .map(|data| {
                Ok(BackupChunk {
                    data: data.to_vec(),
                })
            })
            .collect();
        Ok(Response::new(tokio_stream::iter(chunks)))
    }

    async fn infra_orphans(
        &self,
        request: Request<InfraOrphansRequest>,
    ) -> Result<Response<InfraOrphansResponse>, Status> {
        let caller = auth::caller(&request, &self.revocations)?;
        caller.require(Role::Admin)?;
        if !request.get_ref().terminate {
            let orphans = self.operations.orphans().await?;
            return Ok(Response::new(InfraOrphansResponse {
                orphans: orphans.into_iter().map(convert::orphan).collect(),
                terminated: false,
            }));
        }
        let outcome = async {
            let orphans = self.operations.terminate_orphans().await?;
            for orphan in &orphans {
                info!(who = %caller, instance = %orphan.instance_id, deployment = %orphan.deployment, "orphan terminated");
            }
            Ok(InfraOrphansResponse {
                orphans: orphans.into_iter().map(convert::orphan).collect(),
                terminated: true,
            })
        }
        .await;
        self.audited(
            &caller,
            "infra orphans --terminate",
            ("instances no deployment knows", About::default()),
            outcome,
        )
        .await
        .map(Response::new)
    }

    async fn audit(
        &self,
        request: Request<AuditRequest>,
    ) -> Result<Response<AuditResponse>, Status> {
        auth::require(&request, &self.revocations, Role::Viewer)?;
        let r = request.get_ref();
        let limit = page_size(r.limit, AUDIT_PAGE);
        let (entries, more) = self
            .audit
            .page(r.since_ms, r.after_seq, limit)
            .await
            .map_err(|e| super::status::of(&e))?;
        let next_after_seq = match (more, entries.last()) {
            (true, Some(last)) => last.seq,
            _ => 0,
        };
        Ok(Response::new(AuditResponse {
            entries: entries.into_iter().map(convert::audit_entry).collect(),
            next_after_seq,
        }))
    }

    async fn audit_verify(
        &self,
        request: Request<AuditVerifyRequest>,
    ) -> Result<Response<AuditVerifyResponse>, Status> {
        auth::require(&request, &self.revocations, Role::Viewer)?;
        let r = request.get_ref();
        if r.anchor_hash.len() > 128 {
            return Err(Status::invalid_argument(
                "anchor_hash is longer than a hash",
            ));
        }
        let anchor = (r.anchor_seq > 0).then(|| Anchor {
            seq: r.anchor_seq,
            hash: r.anchor_hash.clone(),
        });
        let checked = self
            .audit
            .verify(anchor.as_ref())
            .await
            .map_err(|e| super::status::of(&e))?;
        Ok(Response::new(match checked {
            Ok(head) => AuditVerifyResponse {
                intact: true,
                entries: head.entries,
                first_broken: 0,
                reason: String::new(),
                head_hash: head.hash,
            },
            Err(broken) => AuditVerifyResponse {
                intact: false,
                entries: 0,
                first_broken: broken.seq,
                reason: broken.to_string(),
                head_hash: String::new(),
            },
        }))
    }

    async fn issue_certificate(
        &self,
        request: Request<IssueCertificateRequest>,
    ) -> Result<Response<IssueCertificateResponse>, Status> {
        let caller = auth::caller(&request, &self.revocations)?;
        let r = request.into_inner();
        let target = format!("{} ({}) {}", r.name, r.role, r.environments.join(","));
        let outcome = async {
            caller.require(Role::Admin)?;
            let (certificate_pem, expires_at_ms) = self.operations.issue_certificate(
                &r.name,
                &r.role,
                &r.environments,
                r.days,
                &r.csr_pem,
            )?;
            info!(who = %caller, name = %r.name, role = %r.role, "certificate issued");
            Ok(IssueCertificateResponse {
                certificate_pem,
                ca_pem: self.operations.ca.cert_pem().to_string(),
                expires_at_ms,
            })
        }
        .await;
        self.audited(
            &caller,
            "certificate issue",
            (target.trim_end(), About::default()),
            outcome,
        )
        .await
        .map(Response::new)
    }

    async fn set_secret(
        &self,
        request: Request<SetSecretRequest>,
    ) -> Result<Response<Secret>, Status> {
        let caller = auth::caller(&request, &self.revocations)?;
        let r = request.into_inner();
        // The audit log gets the name, never the value.
        let target = secret_target(&r.environment, &r.project, &r.key);
        let outcome = async {
            caller.require(Role::Admin)?;
            let scope = self
                .operations
                .set_secret(
                    required("environment", &r.environment)?,
                    optional("project", &r.project)?,
                    required("key", &r.key)?,
                    &r.value,
                )
                .await?;
            info!(who = %caller, secret = %target, "secret set");
            Ok(masked(&scope, &r.key))
        }
        .await;
        self.audited(
            &caller,
            "secret set",
            (&target, about(&r.project, &r.environment, "")),
            outcome,
        )
        .await
        .map(Response::new)
    }

    async fn rotate_secrets_key(
        &self,
        request: Request<RotateSecretsKeyRequest>,
    ) -> Result<Response<SecretsKeyRotated>, Status> {
        let caller = auth::caller(&request, &self.revocations)?;
        let outcome = async {
            caller.require(Role::Admin)?;
            let rotated = self.operations.rotate_secrets_key().await?;
            info!(who = %caller, resealed = rotated.resealed, from = %rotated.from, to = %rotated.to, "secrets key rotated");
            Ok(SecretsKeyRotated {
                resealed: rotated.resealed as u32,
                from_key: rotated.from,
                to_key: rotated.to,
            })
        }
        .await;
        self.audited(
            &caller,
            "secret rotate-key",
            ("secrets key", About::default()),
            outcome,
        )
        .await
        .map(Response::new)
    }

    async fn rotate_ca(
        &self,
        request: Request<CaRotationRequest>,
    ) -> Result<Response<CaRotation>, Status> {
        let caller = auth::caller(&request, &self.revocations)?;
        let r = request.into_inner();
        let rotation = &self.ca_rotation;
        let action = match r.step.as_str() {
            "" => {
                caller.require(Role::Admin)?;
                return Ok(Response::new(convert::ca_rotation(rotation.view())));
            }
            "begin" => "ca rotate",
            "finish" => "ca finish",
            other => {
                return Err(Status::invalid_argument(format!(
                    "step {:?} is not one: use \"begin\", \"finish\" or \"\" (status)",
                    other.chars().take(40).collect::<String>()
                )));
            }
        };
        let outcome = async {
            caller.require(Role::Admin)?;
            let view = match r.step.as_str() {
                "begin" => rotation.begin().await?,
                _ => rotation.finish(r.force).await?,
            };
            info!(who = %caller, step = %r.step, signing = %view.signing, previous = ?view.previous, "ca rotation");
            Ok(convert::ca_rotation(view))
        }
        .await;
        self.audited(&caller, action, ("ca", About::default()), outcome)
            .await
            .map(Response::new)
    }

    async fn renew_certificate(
        &self,
        request: Request<RenewCertificateRequest>,
    ) -> Result<Response<IssueCertificateResponse>, Status> {
        let caller = auth::caller(&request, &self.revocations)?;
        let lifetime = auth::certificate_lifetime(&request)?;
        let r = request.into_inner();
        let target = caller.identity.name.clone();
        let outcome = async {
            // Operators only: agents renew theirs through the agent service.
            caller.require(Role::Viewer)?;
            let (certificate_pem, expires_at_ms) =
                self.operations
                    .renew_certificate(&caller.identity, lifetime, &r.csr_pem)?;
            info!(who = %caller, expires_at_ms, "certificate renewed");
            Ok(IssueCertificateResponse {
                certificate_pem,
                ca_pem: self.operations.ca.trusted_pem(),
                expires_at_ms,
            })
        }
        .await;
        self.audited(
            &caller,
            "certificate renew",
            (&target, About::default()),
            outcome,
        )
        .await
        .map(Response::new)
    }

    async fn delete_secret(
        &self,
        request: Request<DeleteSecretRequest>,
    ) -> Result<Response<Secret>, Status> {
        let caller = auth::caller(&request, &self.revocations)?;
        let r = request.into_inner();
        let target = secret_target(&r.environment, &r.project, &r.key);
        let outcome = async {
            caller.require(Role::Admin)?;
            let scope = self
                .operations
                .delete_secret(
                    required("environment", &r.environment)?,
                    optional("project", &r.project)?,
                    required("key", &r.key)?,
                )
                .await?;
            info!(who = %caller, secret = %target, "secret deleted");
            Ok(masked(&scope, &r.key))
        }
        .await;
        self.audited(
            &caller,
            "secret delete",
            (&target, about(&r.project, &r.environment, "")),
            outcome,
        )
        .await
        .map(Response::new)
    }

    async fn fleet_diff(
        &self,
        request: Request<FleetFile>,
    ) -> Result<Response<FleetChanges>, Status> {
        auth::require(&request, &self.revocations, Role::Viewer)?;
        let text = &request.get_ref().text;
        check_fleet_size(text)?;
        let changes = self.operations.fleet_diff(text)?;
        Ok(Response::new(FleetChanges { changes }))
    }

    async fn apply_fleet(
        &self,
        request: Request<FleetFile>,
    ) -> Result<Response<FleetApplied>, Status> {
        let caller = auth::caller(&request, &self.revocations)?;
        let text = &request.get_ref().text;
        let outcome = async {
            caller.require(Role::Admin)?;
            check_fleet_size(text)?;
            let (generation, changes, infra) =
                self.operations.fleet_apply(&caller.identity, text).await?;
            if !changes.is_empty() {
                info!(who = %caller, generation, changes = changes.len(), "fleet applied");
            }
            Ok(FleetApplied {
                generation,
                changes,
                infra,
            })
        }
        .await;
        self.audited(&caller, "fleet apply", ("fleet", About::default()), outcome)
            .await
            .map(Response::new)
    }

    async fn notifications(
        &self,
        request: Request<NotificationsRequest>,
    ) -> Result<Response<NotificationsResponse>, Status> {
        auth::require(&request, &self.revocations, Role::Viewer)?;
        let unavailable = |e: crate::store::StoreError| Status::unavailable(e.to_string());
        let (states, given_up) = self.notifier.states().await.map_err(unavailable)?;
        let newest = self.notifier.events.newest().await.map_err(unavailable)?;
        let fleet = self.notifier.fleets.current().fleet;
        let mut notifications = Vec::new();
        for (name, sink) in &fleet.notifications {
            let state = states
                .iter()
                .find(|s| &s.name == name)
                .cloned()
                .unwrap_or_default();
            let (pending, next) = match state.name.is_empty() {
                true => (0, vec![]),
                false => self
                    .notifier
                    .pending(&state, 1000, 20)
                    .await
                    .map_err(unavailable)?,
            };
            let recent = state
                .recent
                .iter()
                .map(|a| DeliveryAttempt {
                    seq: a.seq,
                    delivery: crate::notify::delivery_id(name, a.seq),
                    at_ms: a.at,
                    error: a.error.clone().unwrap_or_default(),
                })
                .collect();
            let next = next
                .into_iter()
                .map(|e| PendingDelivery {
                    seq: e.seq,
                    delivery: crate::notify::delivery_id(name, e.seq),
                    kind: e.kind,
                    summary: e.summary,
                })
                .collect();
            notifications.push(NotificationState {
                name: name.clone(),
                kind: sink.kind.as_str().to_string(),
                target: match (&sink.url, &sink.url_secret, &sink.smtp) {
                    (Some(url), _, _) => url.clone(),
                    (None, Some(key), _) => format!("(secret {key})"),
                    (None, None, Some(smtp)) => format!("{} via {smtp}", sink.to.join(", ")),
                    (None, None, None) => String::new(),
                },
                cursor: state.cursor,
                newest,
                pending: pending as u64,
                delivered: state.delivered,
                attempts: state.attempts,
                failing_since_ms: state.failing_since.unwrap_or_default(),
                last_error: state.last_error.unwrap_or_default(),
                last_attempt_ms: state.last_attempt_at.unwrap_or_default(),
                recent,
                next,
            });
        }
        let undelivered = given_up
            .into_iter()
            .map(|u| UndeliveredEvent {
                notification: u.sink,
                seq: u.seq,
                delivery: u.delivery,
                kind: u.kind,
                attempts: u.attempts,
                last_error: u.last_error,
                at_ms: u.at,
            })
            .collect();
        Ok(Response::new(NotificationsResponse {
            notifications,
            undelivered,
        }))
    }

    type LogsStream = crate::grpc::logs::LogStream;

    async fn logs(
        &self,
        request: Request<LogsRequest>,
    ) -> Result<Response<Self::LogsStream>, Status> {
        auth::require(&request, &self.revocations, Role::Viewer)?;
        let r = request.get_ref();
        if r.lines > slipway_domain::agent::MAX_TAIL_LINES {
            return Err(Status::invalid_argument(format!(
                "lines is {}: at most {}",
                r.lines,
                slipway_domain::agent::MAX_TAIL_LINES
            )));
        }
        let instances = self
            .operations
            .log_sources(
                required("project", &r.project)?,
                required("environment", &r.environment)?,
                optional("instance", &r.instance)?,
            )
            .await?;
        let asked = crate::grpc::logs::Asked {
            instances,
            service: optional("service", &r.service)?.map(str::to_string),
            lines: if r.lines == 0 { 100 } else { r.lines },
            follow: r.follow,
        };
        Ok(Response::new(crate::grpc::logs::stream(
            self.agents.clone(),
            self.stopping.clone(),
            asked,
        )))
    }

    type WatchEventsStream = EventStream;

    async fn watch_events(
        &self,
        request: Request<WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        auth::require(&request, &self.revocations, Role::Viewer)?;
        let r = request.get_ref();
        let owned = |field: &str, text: &str| optional(field, text).map(|t| t.map(str::to_string));
        let filter = Filter {
            since_ms: r.since_ms,
            project: owned("project", &r.project)?,
            environment: owned("environment", &r.environment)?,
            deployment: owned("deployment", &r.deployment)?,
        };
        self.operations
            .check_filters(
                filter.project.as_deref(),
                filter.environment.as_deref(),
                filter.deployment.as_deref(),
            )
            .await?;
        let after = (!r.from_now).then_some(r.after);
        Ok(Response::new(self.watchers.watch(after, filter, r.follow)?))
    }

    async fn version(
        &self,
        request: Request<VersionRequest>,
    ) -> Result<Response<VersionResponse>, Status> {
        auth::require(&request, &self.revocations, Role::Viewer)?;
        Ok(Response::new(VersionResponse {
            version: env!("CARGO_PKG_VERSION").to_string(),
        }))
    }

    async fn list_secrets(
        &self,
        request: Request<ListSecretsRequest>,
    ) -> Result<Response<ListSecretsResponse>, Status> {
        auth::require(&request, &self.revocations, Role::Viewer)?;
        let names = self
            .operations
            .secret_names(optional("environment", &request.get_ref().environment)?)
            .await?;
        let secrets = names
            .into_iter()
            .map(|(scope, key)| masked(&scope, &key))
            .collect();
        Ok(Response::new(ListSecretsResponse { secrets }))
    }

    async fn revoke(
        &self,
        request: Request<RevokeRequest>,
    ) -> Result<Response<RevokeResponse>, Status> {
        let caller = auth::caller(&request, &self.revocations)?;
        let name = request.into_inner().name;
        let outcome = async {
            caller.require(Role::Admin)?;
            crate::pki::check_name(&name).map_err(Status::invalid_argument)?;
            if name == caller.identity.name {
                return Err(Status::failed_precondition(
                    "refusing to revoke your own certificate: use another admin's",
                ));
            }
            self.revocations
                .revoke(&name, &caller.to_string())
                .await
                .map_err(|e| super::status::of(&e))?;
            let stream_closed = self.agents.view(&name).is_some_and(|v| v.connected);
            self.agents
                .kick(&name, Closing::Revoked { name: name.clone() });
            info!(who = %caller, %name, stream_closed, "certificates revoked");
            Ok(RevokeResponse {
                name: name.clone(),
                stream_closed,
            })
        }
        .await;
        self.audited(&caller, "revoke", (&name, About::default()), outcome)
            .await
            .map(Response::new)
    }

    async fn dashboard_url(
        &self,
        request: Request<DashboardUrlRequest>,
    ) -> Result<Response<DashboardToken>, Status> {
        let caller = auth::caller(&request, &self.revocations)?;
        let name = request.into_inner().name;
        let outcome = async {
            caller.require(Role::Admin)?;
            let name = optional("name", &name)?.unwrap_or("dashboard");
            let Some(address) = &self.dashboard_address else {
                return Err(Status::failed_precondition(
                    "this coordinator serves no dashboard: start it with --http-listen ADDR",
                ));
            };
            let (token, secret) = self
                .dashboard
                .mint(name, &caller.to_string())
                .await
                .map_err(|e| super::status::of(&e))?;
            // The token itself is never logged or audited: only its id.
            info!(who = %caller, id = %token.id, %name, "dashboard token minted");
            Ok(DashboardToken {
                url: format!("{address}/?token={secret}"),
                ..convert::dashboard_token(token)
            })
        }
        .await;
        self.audited(&caller, "dashboard url", (&name, About::default()), outcome)
            .await
            .map(Response::new)
    }

    async fn check_release(
        &self,
        request: Request<CheckReleaseRequest>,
    ) -> Result<Response<ReleaseCheck>, Status> {
        let caller = auth::caller(&request, &self.revocations)?;
        let r = request.into_inner();
        let target = format!("{}@{} {}", r.project, r.version, r.name);
        let outcome = async {
            caller.require(Role::Deployer)?;
            let check = self
                .operations
                .record_check(
                    &caller.identity,
                    required("project", &r.project)?,
                    required("version", &r.version)?,
                    required("name", &r.name)?,
                    r.passed,
                    optional("url", &r.url)?,
                )
                .await?;
            info!(who = %caller, project = %check.project, version = %check.version, name = %check.name, passed = check.passed, "release check recorded");
            Ok(convert::release_check(check))
        }
        .await;
        self.audited(
            &caller,
            "release check",
            (&target, about(&r.project, "", &r.version)),
            outcome,
        )
        .await
        .map(Response::new)
    }

    async fn approve(
        &self,
        request: Request<ApproveRequest>,
    ) -> Result<Response<Deployment>, Status> {
        let caller = auth::caller(&request, &self.revocations)?;
        let id = request.into_inner().id;
        let outcome = async {
            caller.require(Role::Deployer)?;
            let approved = self
                .operations
                .approve(&caller.identity, required("id", &id)?)
                .await?;
            info!(who = %caller, deployment_id = %approved.id, "deployment approved");
            let view = self.operations.deployment(&approved.id).await?;
            Ok(Approved(convert::deployment(view)))
        }
        .await;
        self.audited(
            &caller,
            "approve",
            (
                &id,
                About {
                    deployment: Some(id.clone()).filter(|i| !i.is_empty()),
                    ..About::default()
                },
            ),
            outcome,
        )
        .await
        .map(|approved| Response::new(approved.0))
    }

    async fn override_freeze(
        &self,
        request: Request<OverrideFreezeRequest>,
    ) -> Result<Response<Deployment>, Status> {
        let caller = auth::caller(&request, &self.revocations)?;
        let r = request.into_inner();
        let outcome = async {
            caller.require(Role::Admin)?;
            let passed = self
                .operations
                .override_freeze(&caller.identity, required("id", &r.id)?, &r.reason)
                .await?;
            warn!(who = %caller, deployment_id = %passed.id, "freeze overridden");
            let view = self.operations.deployment(&passed.id).await?;
            Ok(FreezeOverridden(convert::deployment(view)))
        }
        .await;
        self.audited(
            &caller,
            "override-freeze",
            (
                &r.id,
                About {
                    deployment: Some(r.id.clone()).filter(|i| !i.is_empty()),
                    ..About::default()
                },
            ),
            outcome,
        )
        .await
        .map(|passed| Response::new(passed.0))
    }

    async fn dashboard_tokens(
        &self,
        request: Request<DashboardTokensRequest>,
    ) -> Result<Response<DashboardTokensResponse>, Status> {
        let caller = auth::caller(&request, &self.revocations)?;
        caller.require(Role::Admin)?;
        Ok(Response::new(DashboardTokensResponse {
            tokens: self
                .dashboard
                .list()
                .into_iter()
                .map(convert::dashboard_token)
                .collect(),
        }))
    }

    async fn revoke_dashboard(
        &self,
        request: Request<RevokeDashboardRequest>,
    ) -> Result<Response<RevokeDashboardResponse>, Status> {
        let caller = auth::caller(&request, &self.revocations)?;
        let r = request.into_inner();
        let target = if r.all {
            "all".to_string()
        } else {
            r.id.clone()
        };
        let outcome = async {
            caller.require(Role::Admin)?;
            let id = match (optional("id", &r.id)?, r.all) {
                (Some(_), true) | (None, false) => {
                    return Err(Status::invalid_argument(
                        "name one token id, or ask for all of them",
                    ));
                }
                (id, _) => id,
            };
            let revoked = self
                .dashboard
                .revoke(id)
                .await
                .map_err(|e| super::status::of(&e))?
                .ok_or_else(|| {
                    Status::not_found(format!(
                        "no dashboard token {:?}: list them with `slipway dashboard tokens`",
                        r.id
                    ))
                })?;
            info!(who = %caller, ?revoked, "dashboard tokens revoked");
            Ok(RevokeDashboardResponse { revoked })
        }
        .await;
        self.audited(
            &caller,
            "dashboard revoke",
            (&target, About::default()),
            outcome,
        )
        .await
        .map(Response::new)
    }
}
