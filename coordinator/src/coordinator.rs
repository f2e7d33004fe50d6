//! The wiring: the one module that sees every part of the coordinator. It
//! builds each subsystem with only the dependencies it takes (the executor gets
//! the CA's certificate, not its key; operations get no join tokens), and the
//! start-up code and the gRPC edge pick what they serve from here. Nothing
//! below reaches back through it.

use std::sync::Arc;
use std::time::Duration;

use tracing::info;

use crate::agents::{AgentHub, AgentRecords};
use crate::audit::AuditLog;
use crate::clock::Clock;
use crate::cloud::Cloud;
use crate::dashboard::access::DashboardAccess;
use crate::deployments::Deployments;
use crate::events::Events;
use crate::executor::{Executor, LaunchTemplate};
use crate::fleets::Fleets;
use crate::lost::LostWatch;
use crate::metrics::Metrics;
use crate::migrations::Migrations;
use crate::notify::Notifier;
use crate::observed::Observer;
use crate::operations::Operations;
use crate::pki::Ca;
use crate::promote::Promotions;
use crate::releases::Releases;
use crate::requests::Requests;
use crate::revocation::Revocations;
use crate::scheduler::Scheduler;
use crate::secrets::Secrets;
use crate::stopping::Stopping;
use crate::store::Db;
use crate::tokens::JoinTokens;

/// How long a join token stays usable after its launch.
pub const JOIN_TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// Where agents reach the coordinator, as written into every launch.
#[derive(Debug, Clone)]
pub struct Advertised {
    /// `https://host:port`.
    pub address: String,
    /// The other coordinators on the same store (`--peer`), which agents try
    /// in turn when this one does not answer.
    pub others: Vec<String>,
    pub server_name: String,
}

/// What a coordinator is made of; the rest it makes itself.
#[derive(Debug)]
pub struct Parts {
    pub db: Db,
    /// The fleet in force, taken at the start (`Fleets::open`).
    pub fleets: Arc<Fleets>,
    /// What happened; the subsystems built before this one tell it too.
    pub events: Arc<Events>,
    pub cloud: Cloud,
    pub ca: Arc<Ca>,
    pub secrets: Secrets,
    pub revocations: Revocations,
    pub advertised: Advertised,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub dashboard_access: Arc<DashboardAccess>,
    /// Where the dashboard is served (`https://host:port`), if it is.
    pub dashboard_address: Option<String>,
    /// The store behind its snapshot gate, for backups; none where the
    /// store was not opened through one (tests of other things).
    pub snapshots: Option<Arc<crate::store::Gated>>,
}

/// Every subsystem, built once.
pub struct Coordinator {
    pub fleets: Arc<Fleets>,
    pub events: Arc<Events>,
    /// The agents table, which the agent service checks a stream against.
    pub agent_records: AgentRecords,
    pub agents: Arc<AgentHub>,
    pub tokens: Arc<JoinTokens>,
    /// The first answers to requests made with a request id.
    pub requests: Arc<Requests>,
    pub audit: Arc<AuditLog>,
    pub revocations: Arc<Revocations>,
    pub ca: Arc<Ca>,
    pub deployments: Arc<Deployments>,
    pub releases: Arc<Releases>,
    pub promotions: Arc<Promotions>,
    pub operations: Arc<Operations>,
    pub executor: Arc<Executor>,
    pub scheduler: Arc<Scheduler>,
    pub lost: Arc<LostWatch>,
    pub observer: Arc<Observer>,
    pub notifier: Arc<Notifier>,
    pub metrics: Arc<Metrics>,
    pub dashboard_access: Arc<DashboardAccess>,
    pub dashboard_address: Option<String>,
    pub stopping: Stopping,
    /// The store's snapshot gate, for backups (the leader's only).
    pub snapshots: Option<Arc<crate::store::Gated>>,
    /// The hourly compaction (`retention::start`).
    pub retention: Arc<crate::retention::Retention>,
    /// CA rotation steps, and standbys following them.
    pub ca_rotation: Arc<crate::ca_rotation::CaRotation>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Coordinator")
    }
}

impl Coordinator {
    pub fn new(parts: Parts) -> Arc<Self> {
        let Parts {
            db,
            fleets,
            events,
            cloud,
            ca,
            secrets,
            revocations,
            advertised,
            clock,
            metrics,
            dashboard_access,
            dashboard_address,
            snapshots,
        } = parts;
        let secrets = Arc::new(secrets);
        let revocations = Arc::new(revocations);
        let stopping = Stopping::default();
        let agents = Arc::new(AgentHub::new(clock.clone()));
        let tokens = Arc::new(JoinTokens::new(
            db.clone(),
            clock.clone(),
            JOIN_TOKEN_LIFETIME,
        ));
        let audit = Arc::new(AuditLog::new(db.clone(), clock.clone()));
        let requests = Arc::new(Requests::new(db.clone(), clock.clone()));
        let deployments = Arc::new(Deployments::new(db.clone(), clock.clone(), events.clone()));
        let releases = Arc::new(Releases::new(
            db.clone(),
            clock.clone(),
            cloud.compute.clone(),
            events.clone(),
        ));
        let promotions = Arc::new(Promotions::new(
            db.clone(),
            cloud.dns.clone(),
            fleets.clone(),
            audit.clone(),
            events.clone(),
        ));
        let observer = Arc::new(Observer::new(cloud.clone(), fleets.clone(), clock.clone()));
        let executor = Arc::new(Executor {
            deployments: deployments.clone(),
            migrations: Arc::new(Migrations::new(db.clone())),
            agents: agents.clone(),
            tokens: tokens.clone(),
            secrets: secrets.clone(),
            revocations: revocations.clone(),
            cloud: cloud.clone(),
            observer: observer.clone(),
            fleets: fleets.clone(),
            launch: LaunchTemplate {
                coordinator: advertised.address,
                other_coordinators: advertised.others,
                server_name: advertised.server_name,
                ca: ca.clone(),
            },
            started_at: clock.now(),
            clock: clock.clone(),
            stopping: stopping.clone(),
        });
        let lost = Arc::new(LostWatch {
            fleets: fleets.clone(),
            deployments: deployments.clone(),
            releases: releases.clone(),
            load_balancer: cloud.load_balancer.clone(),
            agents: agents.clone(),
            records: AgentRecords::new(db.clone()),
            revocations: revocations.clone(),
            events: events.clone(),
            audit: audit.clone(),
            clock: clock.clone(),
            stopping: stopping.clone(),
        });
        let notifier = Arc::new(Notifier {
            db: db.clone(),
            events: events.clone(),
            fleets: fleets.clone(),
            secrets: secrets.clone(),
            audit: audit.clone(),
            clock: clock.clone(),
            stopping: stopping.clone(),
            metrics: metrics.clone(),
        });
        let retention = Arc::new(crate::retention::Retention {
            db: db.clone(),
            clock: clock.clone(),
            requests: requests.clone(),
            deployments: deployments.clone(),
            audit: audit.clone(),
            fleets: fleets.clone(),
        });
        let ca_rotation = Arc::new(crate::ca_rotation::CaRotation::new(
            ca.clone(),
            agents.clone(),
            db.clone(),
        ));
        let operations = Arc::new(Operations {
            fleets: fleets.clone(),
            clock,
            releases: releases.clone(),
            deployments: deployments.clone(),
            promotions: promotions.clone(),
            cloud,
            agents: agents.clone(),
            ca: ca.clone(),
            secrets,
            agent_records: AgentRecords::new(db.clone()),
            revocations: revocations.clone(),
            observer: observer.clone(),
        });
        Arc::new(Coordinator {
            fleets,
            events,
            agent_records: AgentRecords::new(db),
            agents,
            tokens,
            requests,
            audit,
            revocations,
            ca,
            ca_rotation,
            deployments,
            releases: releases.clone(),
            promotions,
            operations,
            scheduler: Scheduler::new(executor.clone(), releases.clone()),
            executor,
            lost,
            observer,
            notifier,
            metrics,
            dashboard_access,
            dashboard_address,
            stopping,
            snapshots,
            retention,
        })
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.is_asked()
    }

    /// Graceful stop: no executor starts a new step, each finishes the one it is
    /// in (its outcome stored), then agent streams are closed so agents go on
    /// reconnecting. Returns how many executors were still busy after `grace`.
    pub async fn stop(&self, grace: Duration) -> usize {
        self.stopping.ask();
        info!(
            deployments = self.scheduler.busy(),
            "stopping: finishing the current step of each deployment"
        );
        let deadline = tokio::time::Instant::now() + grace;
        while self.scheduler.busy() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.agents.close_all();
        self.scheduler.busy()
    }
}
