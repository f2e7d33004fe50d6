//! The operator service: what the CLI and CI call. Each RPC checks the caller's
//! role, converts the request, and calls the coordinator's operations.

use std::sync::Arc;

use slipway_proto::v1::operator_service_server::OperatorService;
use slipway_proto::v1::*;
use tonic::{Request, Response, Status};
use tracing::info;

use super::{auth, convert};
use crate::coordinator::Coordinator;
use crate::pki::Role;

#[derive(Debug)]
pub struct OperatorApi {
    coordinator: Arc<Coordinator>,
}

impl OperatorApi {
    pub fn new(coordinator: Arc<Coordinator>) -> Self {
        OperatorApi { coordinator }
    }
}

/// Empty means "not given" on the wire.
fn optional(text: &str) -> Option<&str> {
    Some(text).filter(|t| !t.is_empty())
}

fn required<'a>(field: &str, text: &'a str) -> Result<&'a str, Status> {
    optional(text).ok_or_else(|| Status::invalid_argument(format!("{field} is required")))
}

#[tonic::async_trait]
impl OperatorService for OperatorApi {
    async fn register_release(
        &self,
        request: Request<RegisterReleaseRequest>,
    ) -> Result<Response<Release>, Status> {
        let who = auth::require(&request, Role::Deployer)?;
        let r = request.into_inner();
        let release = self
            .coordinator
            .register_release(
                &who,
                required("project", &r.project)?,
                required("version", &r.version)?,
                optional(&r.image_id),
            )
            .await?;
        info!(who = %who, project = %release.project, version = %release.version, image = %release.image_id, "release registered");
        Ok(Response::new(convert::release(release)))
    }

    async fn list_releases(
        &self,
        request: Request<ListReleasesRequest>,
    ) -> Result<Response<ListReleasesResponse>, Status> {
        auth::require(&request, Role::Viewer)?;
        let releases = self
            .coordinator
            .releases(optional(&request.get_ref().project))?;
        Ok(Response::new(ListReleasesResponse {
            releases: releases.into_iter().map(convert::release).collect(),
        }))
    }

    async fn deploy(
        &self,
        request: Request<DeployRequest>,
    ) -> Result<Response<Deployment>, Status> {
        let who = auth::require(&request, Role::Deployer)?;
        let r = request.into_inner();
        let deployment = self.coordinator.deploy(
            &who,
            required("project", &r.project)?,
            required("version", &r.version)?,
            required("environment", &r.environment)?,
        )?;
        info!(who = %who, deployment_id = %deployment.id, target = %deployment.target(), version = %deployment.version, "deployment queued");
        Ok(Response::new(convert::bare_deployment(deployment)))
    }

    async fn cancel(
        &self,
        request: Request<CancelRequest>,
    ) -> Result<Response<Deployment>, Status> {
        let who = auth::require(&request, Role::Deployer)?;
        let deployment = self
            .coordinator
            .cancel(&who, required("id", &request.get_ref().id)?)?;
        info!(who = %who, deployment_id = %deployment.id, "cancel requested");
        Ok(Response::new(convert::bare_deployment(deployment)))
    }

    async fn get_deployment(
        &self,
        request: Request<GetDeploymentRequest>,
    ) -> Result<Response<Deployment>, Status> {
        auth::require(&request, Role::Viewer)?;
        let view = self
            .coordinator
            .deployment(required("id", &request.get_ref().id)?)?;
        Ok(Response::new(convert::deployment(view)))
    }

    async fn queue(
        &self,
        request: Request<QueueRequest>,
    ) -> Result<Response<QueueResponse>, Status> {
        auth::require(&request, Role::Viewer)?;
        let lines = self.coordinator.queue()?;
        Ok(Response::new(QueueResponse {
            targets: lines.into_iter().map(convert::queue_line).collect(),
        }))
    }

    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        auth::require(&request, Role::Viewer)?;
        let projects = self
            .coordinator
            .status(optional(&request.get_ref().project))
            .await?;
        Ok(Response::new(StatusResponse {
            projects: projects.into_iter().map(convert::project_status).collect(),
        }))
    }

    async fn deployments(
        &self,
        request: Request<DeploymentsRequest>,
    ) -> Result<Response<DeploymentsResponse>, Status> {
        auth::require(&request, Role::Viewer)?;
        let r = request.get_ref();
        let list = self.coordinator.deployments(
            optional(&r.project),
            optional(&r.environment),
            r.limit as usize,
        )?;
        Ok(Response::new(DeploymentsResponse {
            deployments: list.into_iter().map(convert::deployment).collect(),
        }))
    }

    async fn agents(
        &self,
        request: Request<AgentsRequest>,
    ) -> Result<Response<AgentsResponse>, Status> {
        auth::require(&request, Role::Viewer)?;
        let agents = self.coordinator.agent_list().await?;
        Ok(Response::new(AgentsResponse {
            agents: agents.into_iter().map(convert::agent).collect(),
        }))
    }

    async fn promote(
        &self,
        request: Request<PromoteRequest>,
    ) -> Result<Response<PublicRecord>, Status> {
        let who = auth::require(&request, Role::Deployer)?;
        let r = request.into_inner();
        let record = self
            .coordinator
            .promote(
                &who,
                required("project", &r.project)?,
                required("environment", &r.environment)?,
            )
            .await?;
        info!(who = %who, project = %record.project, to = ?record.environment, "promoted");
        Ok(Response::new(convert::public_record(record)))
    }

    async fn rollback(
        &self,
        request: Request<RollbackRequest>,
    ) -> Result<Response<Deployment>, Status> {
        let who = auth::require(&request, Role::Deployer)?;
        let r = request.into_inner();
        let deployment = self.coordinator.rollback(
            &who,
            required("project", &r.project)?,
            required("environment", &r.environment)?,
        )?;
        info!(who = %who, deployment_id = %deployment.id, version = %deployment.version, "rollback queued");
        Ok(Response::new(convert::bare_deployment(deployment)))
    }

    async fn infra_plan(
        &self,
        request: Request<InfraRequest>,
    ) -> Result<Response<InfraChanges>, Status> {
        auth::require(&request, Role::Admin)?;
        let changes = self.coordinator.infra_plan().await?;
        Ok(Response::new(InfraChanges {
            changes: changes.iter().map(ToString::to_string).collect(),
        }))
    }

    async fn infra_apply(
        &self,
        request: Request<InfraRequest>,
    ) -> Result<Response<InfraChanges>, Status> {
        let who = auth::require(&request, Role::Admin)?;
        let changes = self.coordinator.infra_apply().await?;
        for change in &changes {
            info!(who = %who, %change, "infrastructure changed");
        }
        Ok(Response::new(InfraChanges {
            changes: changes.iter().map(ToString::to_string).collect(),
        }))
    }
}
