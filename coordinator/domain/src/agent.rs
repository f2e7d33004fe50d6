//! What passes between the coordinator and an instance's agent, in domain terms:
//! the configuration an instance runs, the commands down its stream, and the
//! service reports up. The wire (`slipway_proto::convert`) maps these to and
//! from protobuf at the two ends; the coordinator's hub and executor and the
//! agent's supervisor see only these.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::{Fleet, HealthCheck, Restart, Service};
use crate::deploy::Deployment;
use crate::deploy::machine::AgentView;
pub use crate::service::{
    MIGRATION_OUTPUT_LINES, MigrationCommand, MigrationState, RESTARTS_BEFORE_FAILING,
    ServiceReport, ServiceState, ServiceStatus,
};

/// Everything an instance needs to run one deployment's release.
#[derive(Debug, Clone, PartialEq)]
pub struct Configuration {
    /// Unique per deployment: the agent starts a version once.
    pub version: u64,
    pub project: String,
    pub environment: String,
    pub release_version: String,
    /// Environment variables of every service, secrets included.
    pub variables: BTreeMap<String, String>,
    pub services: Vec<Service>,
    pub health_check: HealthCheck,
    pub restart: Restart,
}

impl Configuration {
    /// The configuration a deployment's new instances receive, `secrets` (the
    /// environment's, in the clear) included. None if its project left the fleet.
    ///
    /// Precedence, lowest first: the environment's variables, the project's,
    /// the environment's secrets, then what Slipway sets (`SLIPWAY_*`, `PORT`),
    /// which no variable or secret can override.
    pub fn for_deployment(
        fleet: &Fleet,
        d: &Deployment,
        secrets: BTreeMap<String, String>,
    ) -> Option<Configuration> {
        let project = fleet.project(&d.project)?;
        let mut variables = fleet.variables(&d.project, &d.environment);
        variables.extend(secrets);
        variables.insert("SLIPWAY_PROJECT".into(), d.project.clone());
        variables.insert("SLIPWAY_ENV".into(), d.environment.clone());
        variables.insert("SLIPWAY_VERSION".into(), d.version.clone());
        variables.insert("SLIPWAY_DEPLOYMENT".into(), d.id.clone());
        variables.insert("PORT".into(), project.instance_port.to_string());
        Some(Configuration {
            version: d.config_version(),
            project: d.project.clone(),
            environment: d.environment.clone(),
            release_version: d.version.clone(),
            variables,
            services: project.services.clone(),
            health_check: project.health_check.clone(),
            restart: project.restart,
        })
    }
}

/// What the coordinator tells an agent on its stream.
#[derive(Debug, Clone, PartialEq)]
pub enum ToAgent {
    /// How often to heartbeat: the first message of every stream.
    Welcome { heartbeat_interval: Duration },
    /// Run this configuration (replacing what runs, if it is another version).
    Run(Box<Configuration>),
    /// Run a migration command once, with the running configuration's variables.
    Migrate(MigrationCommand),
    /// Send a service's output: its last lines, then (following) new ones.
    Tail(TailAsk),
    /// Stop following request N.
    StopTail(u64),
    /// The stream ends; the agent redials unless its certificate was revoked.
    Close(Closing),
}

/// Which output an operator asked an agent for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailAsk {
    pub request: u64,
    /// None: every service's.
    pub service: Option<String>,
    pub lines: u32,
    pub follow: bool,
}

/// Lines of a service's output, in answer to a `TailAsk`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogChunk {
    pub request: u64,
    pub service: String,
    pub lines: Vec<String>,
    /// The answer is complete (not following, or stopped).
    pub done: bool,
    pub error: Option<String>,
}

/// Most lines an operator may ask for at once.
pub const MAX_TAIL_LINES: u32 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closing {
    /// The coordinator is stopping: reconnect shortly.
    Stopping,
    /// The agent's certificates were revoked.
    Revoked { name: String },
}

impl std::fmt::Display for Closing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Closing::Stopping => f.write_str("the coordinator is stopping: reconnect shortly"),
            Closing::Revoked { name } => write!(f, "the certificates of {name} were revoked"),
        }
    }
}

impl AgentView {
    /// Takes in a service report; returns the services that exited since the
    /// last one (more restarts, or failed), for the log.
    pub fn apply_report(&mut self, report: &ServiceReport) -> Vec<ServiceState> {
        let mut exited = Vec::new();
        for service in &report.services {
            let before = self.restarts.get(&service.name).copied().unwrap_or(0);
            if service.restarts > before || service.status == ServiceStatus::Failed {
                exited.push(service.clone());
            }
            self.restarts.insert(service.name.clone(), service.restarts);
        }
        self.services = report.services.clone();
        self.config_applied = report.config_version;
        self.services_running = !report.services.is_empty()
            && report
                .services
                .iter()
                .all(|s| s.status == ServiceStatus::Running);
        self.failing_service = report.services.iter().find(|s| s.is_failing()).map(|s| {
            format!(
                "service {} keeps exiting ({}), restarted {} times",
                s.name, s.detail, s.restarts
            )
        });
        exited
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Fleet;
    use crate::deploy::Phase;
    use crate::sample::SAMPLE_FLEET;

    fn service(name: &str, status: ServiceStatus, restarts: u32) -> ServiceState {
        ServiceState {
            name: name.into(),
            status,
            restarts,
            detail: "exit status: 1".into(),
        }
    }

    #[test]
    fn what_slipway_sets_wins_over_variables_and_secrets() {
        let fleet = Fleet::parse(SAMPLE_FLEET, "sample").unwrap();
        let d = crate::deploy::test_deployment(Phase::Configuring, 0, &[]);
        let secrets = BTreeMap::from([
            ("GREETING".to_string(), "from a secret".to_string()),
            ("SLIPWAY_VERSION".to_string(), "forged".to_string()),
            ("PORT".to_string(), "1".to_string()),
        ]);
        let c = Configuration::for_deployment(&fleet, &d, secrets).unwrap();
        assert_eq!(
            c.variables["GREETING"], "from a secret",
            "a secret beats a variable"
        );
        assert_eq!(c.variables["SLIPWAY_VERSION"], "v2");
        assert_eq!(c.variables["PORT"], "8080");
        assert_eq!(c.variables["SLIPWAY_DEPLOYMENT"], "d-7");
        assert_eq!(c.version, d.config_version());
        assert_eq!(c.services[0].name, "web");
    }

    #[test]
    fn a_report_says_which_service_keeps_exiting() {
        let mut view = AgentView::default();
        let exited = view.apply_report(&ServiceReport {
            config_version: 3,
            services: vec![
                service("web", ServiceStatus::Running, 0),
                service("worker", ServiceStatus::Exited, 1),
            ],
        });
        assert_eq!(exited.len(), 1);
        let kept: Vec<_> = view
            .services
            .iter()
            .map(|s| (s.name.as_str(), s.status, s.restarts))
            .collect();
        assert_eq!(
            kept,
            [
                ("web", ServiceStatus::Running, 0),
                ("worker", ServiceStatus::Exited, 1)
            ]
        );
        assert!(!view.services_running);
        assert_eq!(view.failing_service, None, "one restart is not failing");
        let exited = view.apply_report(&ServiceReport {
            config_version: 3,
            services: vec![
                service("web", ServiceStatus::Running, 0),
                service("worker", ServiceStatus::Exited, RESTARTS_BEFORE_FAILING),
            ],
        });
        assert_eq!(exited.len(), 1);
        assert_eq!(
            view.failing_service.as_deref(),
            Some("service worker keeps exiting (exit status: 1), restarted 3 times")
        );
        let exited = view.apply_report(&ServiceReport {
            config_version: 3,
            services: vec![service("web", ServiceStatus::Running, 0)],
        });
        assert!(exited.is_empty(), "no new exit");
        assert!(view.services_running);
        assert_eq!(view.config_applied, 3);
    }
}
