//! The clouds Slipway drives, behind three narrow traits the coordinator owns.
//! Orchestration code sees only these; `local` plays AWS's part on one machine.

pub mod local;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::deploy::machine::{InstanceState, MemberState};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloudError {
    /// Something named does not exist (image, load balancer, record).
    #[error("{0}")]
    NotFound(String),
    /// The request itself is wrong; retrying will not help.
    #[error("{0}")]
    Invalid(String),
    /// The cloud could not be reached or is busy; retrying may help.
    #[error("{0}")]
    Unavailable(String),
}

impl CloudError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, CloudError::Unavailable(_))
    }
}

/// What a launch needs; `client_token` makes a retried launch return the same instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchRequest {
    pub image_id: String,
    pub client_token: String,
    /// What the agent reads at boot: never a private key.
    pub user_data: String,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    pub private_ip: String,
    pub image_id: String,
    pub state: InstanceState,
    pub tags: BTreeMap<String, String>,
}

#[async_trait]
pub trait Compute: Send + Sync {
    /// The image tagged `slipway:project` = project and `slipway:version` = version.
    async fn find_image(&self, project: &str, version: &str) -> Result<String, CloudError>;
    async fn launch(&self, request: LaunchRequest) -> Result<Instance, CloudError>;
    /// The instances among `ids` the cloud knows; unknown ones are left out.
    async fn describe(&self, ids: &[String]) -> Result<Vec<Instance>, CloudError>;
    async fn terminate(&self, ids: &[String]) -> Result<(), CloudError>;
}

/// A project's load balancer in one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadBalancerSpec {
    pub name: String,
    /// Where it forwards to on each instance.
    pub instance_port: u16,
}

#[async_trait]
pub trait LoadBalancer: Send + Sync {
    /// Creates the load balancer if missing; returns its endpoint (host:port).
    async fn ensure(&self, spec: &LoadBalancerSpec) -> Result<String, CloudError>;
    async fn endpoint(&self, name: &str) -> Result<Option<String>, CloudError>;
    async fn register(&self, name: &str, ids: &[String]) -> Result<(), CloudError>;
    /// Stops new connections to `ids`; open ones may finish (connection draining).
    async fn deregister(&self, name: &str, ids: &[String]) -> Result<(), CloudError>;
    async fn members(&self, name: &str) -> Result<BTreeMap<String, MemberState>, CloudError>;
}

#[async_trait]
pub trait Dns: Send + Sync {
    /// Points `record` at a load balancer, and returns once the change is live.
    async fn upsert(&self, record: &str, load_balancer: &str) -> Result<(), CloudError>;
    /// Where users reach `record` (host:port), if it exists.
    async fn endpoint(&self, record: &str) -> Result<Option<String>, CloudError>;
}

/// The three services, as one handle.
#[derive(Clone)]
pub struct Cloud {
    pub compute: Arc<dyn Compute>,
    pub load_balancer: Arc<dyn LoadBalancer>,
    pub dns: Arc<dyn Dns>,
}

impl std::fmt::Debug for Cloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cloud")
    }
}

/// The load balancer of a project in an environment.
pub fn load_balancer_name(project: &str, environment: &str) -> String {
    format!("slipway-{project}-{environment}")
}
