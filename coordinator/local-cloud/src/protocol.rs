//! Requests and responses between the coordinator and the local cloud: one JSON
//! line each way per connection.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use slipway_domain::cloud::LoadBalancerSettings;

/// Longest request or response line accepted, so a bad peer cannot exhaust memory.
pub const MAX_LINE: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Ping,
    /// Bakes a directory into an immutable image (the local stand-in for an AMI build).
    ImportImage {
        source: PathBuf,
        tags: BTreeMap<String, String>,
    },
    FindImages {
        tags: BTreeMap<String, String>,
    },
    /// An image's tags, if it exists (answered with `Image`).
    DescribeImage {
        image_id: String,
    },
    Launch {
        image_id: String,
        client_token: String,
        user_data: String,
        tags: BTreeMap<String, String>,
    },
    Describe {
        ids: Vec<String>,
    },
    /// Every instance (running or terminated) carrying all of `tags`.
    FindInstances {
        tags: BTreeMap<String, String>,
    },
    Terminate {
        ids: Vec<String>,
    },
    CreateLoadBalancer {
        name: String,
        settings: LoadBalancerSettings,
    },
    ConfigureLoadBalancer {
        name: String,
        settings: LoadBalancerSettings,
    },
    DescribeLoadBalancer {
        name: String,
    },
    Register {
        name: String,
        ids: Vec<String>,
    },
    Deregister {
        name: String,
        ids: Vec<String>,
    },
    Members {
        name: String,
    },
    UpsertRecord {
        record: String,
        load_balancer: String,
    },
    /// Where the record is reached and which load balancer it points at.
    DescribeRecord {
        record: String,
    },
    /// Every registration so far, with whether the instance passed the load
    /// balancer's health check at that moment: what the fault harness audits.
    Registrations,
    /// Terminates every instance and exits.
    Shutdown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceStatus {
    Running,
    Terminated,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceInfo {
    pub id: String,
    pub image_id: String,
    pub private_ip: String,
    pub status: InstanceStatus,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadBalancerInfo {
    pub endpoint: String,
    pub settings: LoadBalancerSettings,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordInfo {
    pub endpoint: String,
    pub load_balancer: String,
}

/// One registration of an instance with a load balancer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub at_ms: i64,
    pub load_balancer: String,
    pub instance: String,
    /// Its health check, probed just before it was added: None if it passed.
    pub unhealthy: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberInfo {
    InService,
    Draining { connections: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    NotFound,
    Invalid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Ok,
    Images {
        ids: Vec<String>,
    },
    /// An image's tags; None when there is no such image.
    Image {
        tags: Option<BTreeMap<String, String>>,
    },
    Instance {
        instance: InstanceInfo,
    },
    Instances {
        instances: Vec<InstanceInfo>,
    },
    LoadBalancer {
        found: Option<LoadBalancerInfo>,
    },
    Record {
        found: Option<RecordInfo>,
    },
    Members {
        members: BTreeMap<String, MemberInfo>,
    },
    Registrations {
        registrations: Vec<Registration>,
    },
    Error {
        kind: ErrorKind,
        message: String,
    },
}
