//! The clouds Slipway drives, behind three narrow traits the coordinator owns.
//! Orchestration code sees only these; the coordinator's `cloud::local` plays
//! AWS's part on one machine and `cloud::aws` drives AWS.

pub mod tags;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

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

/// Where an instance runs (AWS; the local cloud ignores it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Placement {
    pub instance_type: String,
    pub subnet: Option<String>,
    pub security_groups: Vec<String>,
    pub instance_profile: Option<String>,
}

/// What a launch needs; `client_token` makes a retried launch return the same instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchRequest {
    pub image_id: String,
    pub client_token: String,
    /// What the agent reads at boot: never a private key.
    pub user_data: String,
    pub tags: BTreeMap<String, String>,
    pub placement: Placement,
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
    /// Ok if `image_id` exists and this fleet may launch it: on AWS, an image
    /// of the fleet's own account, never one someone else shared or made
    /// public. Answers its owning account (where the cloud has accounts) and tags.
    async fn check_image(&self, image_id: &str) -> Result<ImageFacts, CloudError>;
    async fn launch(&self, request: LaunchRequest) -> Result<Instance, CloudError>;
    /// The instances among `ids` the cloud knows; unknown ones are left out.
    async fn describe(&self, ids: &[String]) -> Result<Vec<Instance>, CloudError>;
    async fn terminate(&self, ids: &[String]) -> Result<(), CloudError>;
    /// The live (not terminated) instances carrying every one of `tags`: how a
    /// resumed deployment finds what it launched, even what it never recorded.
    async fn find_instances(
        &self,
        tags: &BTreeMap<String, String>,
    ) -> Result<Vec<Instance>, CloudError>;
}

/// What the cloud says about an image a release names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageFacts {
    /// The account that owns it, where the cloud has accounts.
    pub owner_account: Option<String>,
    /// Its tags (`slipway:commit`, ...: where it came from).
    pub tags: BTreeMap<String, String>,
}

/// How a load balancer listens, checks instances and drains them: what
/// `infra apply` makes true, and what `infra plan` compares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadBalancerSettings {
    pub listener_port: u16,
    pub instance_port: u16,
    /// ELB's form: `HTTP:8080/health`.
    pub health_target: String,
    pub health_interval_secs: u32,
    pub health_timeout_secs: u32,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    pub draining_timeout_secs: u32,
}

/// A project's load balancer in one environment, as the fleet file wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadBalancerSpec {
    pub name: String,
    pub settings: LoadBalancerSettings,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
}

/// A load balancer as the cloud has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadBalancerState {
    /// Where clients reach it: host:port locally, the DNS name on AWS.
    pub endpoint: String,
    pub settings: LoadBalancerSettings,
}

#[async_trait]
pub trait LoadBalancer: Send + Sync {
    async fn describe(&self, name: &str) -> Result<Option<LoadBalancerState>, CloudError>;
    async fn create(&self, spec: &LoadBalancerSpec) -> Result<(), CloudError>;
    /// Sets the health check and connection draining; idempotent.
    async fn configure(&self, spec: &LoadBalancerSpec) -> Result<(), CloudError>;
    async fn register(&self, name: &str, ids: &[String]) -> Result<(), CloudError>;
    /// Stops new connections to `ids`; open ones may finish (connection draining).
    async fn deregister(&self, name: &str, ids: &[String]) -> Result<(), CloudError>;
    /// Members by instance id. Where `reports_draining`, deregistered instances
    /// with open connections are listed as draining until those close.
    async fn members(&self, name: &str) -> Result<BTreeMap<String, MemberState>, CloudError>;
    /// Whether `members` shows instances still draining. Classic ELB does not:
    /// the whole draining timeout is waited out instead.
    fn reports_draining(&self) -> bool;
}

#[async_trait]
pub trait Dns: Send + Sync {
    /// Points `record` at a load balancer, and returns once the change is live.
    async fn upsert(&self, record: &str, load_balancer: &str) -> Result<(), CloudError>;
    /// The load balancer `record` points at, if the record exists.
    async fn target(&self, record: &str) -> Result<Option<String>, CloudError>;
    /// Where users reach `record` (host:port locally, the name itself on AWS).
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
