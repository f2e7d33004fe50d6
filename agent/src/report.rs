//! What the agent reports upstream: its services, its readiness and its
//! migration runs, published by the supervisor and the migration runner and
//! sent by the session whenever it changes.

use slipway_domain::agent::{MigrationState, ServiceState};

/// What the agent reports upstream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub config_version: u64,
    pub services: Vec<ServiceState>,
    pub ready: bool,
    pub ready_detail: String,
    /// Every migration run this agent got, with its output.
    pub migrations: Vec<MigrationState>,
}
