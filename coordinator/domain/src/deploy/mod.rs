//! Deployments: one release onto one environment, moved through the phases of
//! DESIGN.md by a pure state machine (`machine`); the coordinator's executor
//! performs its actions against the cloud.

pub mod index;
pub mod machine;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::release::Release;
use crate::store::{Record, Table};

/// Where a deployment is. Every phase change is stored before its effect starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Queued,
    Launching,
    Booting,
    Configuring,
    Ready,
    /// Running the project's migration on one new instance (or waiting for
    /// another deployment's migration of the same data store).
    Migrating,
    Attaching,
    Draining,
    /// The new instances serve; the old ones wait out of the load balancer
    /// (standby) for the environment's `keep_previous`, so a failure or a
    /// `rollback` re-attaches them in seconds.
    Watching,
    Retiring,
    Succeeded,
    RollingBack,
    RolledBack,
    Cancelled,
}

impl Phase {
    pub const ALL: [Phase; 14] = [
        Phase::Queued,
        Phase::Launching,
        Phase::Booting,
        Phase::Configuring,
        Phase::Ready,
        Phase::Migrating,
        Phase::Attaching,
        Phase::Draining,
        Phase::Watching,
        Phase::Retiring,
        Phase::Succeeded,
        Phase::RollingBack,
        Phase::RolledBack,
        Phase::Cancelled,
    ];

    /// The phase named `name` (`as_str`'s inverse).
    pub fn parse(name: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Queued => "queued",
            Phase::Launching => "launching",
            Phase::Booting => "booting",
            Phase::Configuring => "configuring",
            Phase::Ready => "ready",
            Phase::Migrating => "migrating",
            Phase::Attaching => "attaching",
            Phase::Draining => "draining",
            Phase::Watching => "watching",
            Phase::Retiring => "retiring",
            Phase::Succeeded => "succeeded",
            Phase::RollingBack => "rolling_back",
            Phase::RolledBack => "rolled_back",
            Phase::Cancelled => "cancelled",
        }
    }

    /// Nothing more will happen to a deployment in this phase.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            Phase::Succeeded | Phase::RolledBack | Phase::Cancelled
        )
    }

    /// Running on its target (holding the target's one slot).
    pub fn is_active(self) -> bool {
        !self.is_finished() && self != Phase::Queued
    }

    /// The new instances serve traffic from here on: a cancel no longer rolls
    /// back, and failures roll back only while watching (to the standby).
    pub fn is_past_point_of_no_return(self) -> bool {
        matches!(
            self,
            Phase::Draining | Phase::Watching | Phase::Retiring | Phase::Succeeded
        )
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When a deployment entered a phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseEntry {
    pub phase: Phase,
    pub at: Millis,
}

/// An instance this deployment launched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchedInstance {
    /// Which of the `desired` instances this is; launches are idempotent per slot.
    pub slot: u32,
    pub id: String,
}

/// One release onto one environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    pub id: String,
    /// Order of arrival; the queue is FIFO on it.
    pub seq: u64,
    pub project: String,
    pub version: String,
    pub image_id: String,
    pub environment: String,
    pub requested_by: String,
    pub requested_at: Millis,
    pub phase: Phase,
    pub history: Vec<PhaseEntry>,
    /// Why it rolled back or was cancelled.
    pub reason: Option<String>,
    /// How many new instances to launch.
    pub desired: u32,
    pub launched: Vec<LaunchedInstance>,
    /// What the load balancer served before this deployment attached; recorded
    /// before attaching so a resumed deployment drains the right ones.
    pub old_instances: Vec<String>,
    pub cancel_requested_by: Option<String>,
    /// Who asked, while it was watching, to go back to the standby instances.
    #[serde(default)]
    pub rollback_requested_by: Option<String>,
    /// Who approved it, where its environment requires an approval.
    #[serde(default)]
    pub approved_by: Option<String>,
    /// Why it passes its environment's freeze windows: a rollback, or an
    /// admin's override with the reason they gave.
    #[serde(default)]
    pub passes_freeze: Option<String>,
    /// The admin who let it through a freeze window.
    #[serde(default)]
    pub freeze_overridden_by: Option<String>,
    /// The end of the freeze the override was given for: a later window
    /// holds it again. None with `passes_freeze`: a rollback, which passes all.
    #[serde(default)]
    pub freeze_override_until: Option<Millis>,
    /// Its release's provenance, copied when queued (releases are immutable).
    #[serde(default)]
    pub provenance: Option<crate::release::Provenance>,
    /// Stored before the first launch request: from then on the cloud may hold
    /// instances of this deployment that `launched` does not list yet.
    #[serde(default)]
    pub launch_attempted: bool,
    /// When instances were last taken out of the load balancer, stored just
    /// before the request: their drain is counted from here, so neither a late
    /// deregistration nor a restart cuts it short.
    #[serde(default)]
    pub drain_from: Option<Millis>,
    /// A replacement of lost instances: only these are retired, not every
    /// instance the load balancer serves.
    #[serde(default)]
    pub replaces: Vec<String>,
    /// The migration, once the deployment reached `migrating`.
    #[serde(default)]
    pub migration: Option<MigrationRun>,
    /// The configuration it pushed to its instances, stored when first pushed.
    #[serde(default)]
    pub config: Option<PushedConfig>,
    /// The fleet generation it started with, stored as it leaves the queue;
    /// it keeps that fleet to its end, whatever `fleet apply` takes meanwhile.
    #[serde(default)]
    pub fleet_generation: Option<u64>,
}

/// A deployment's resolved configuration as operators may see it: every
/// variable, secret values masked, and a keyed digest of the real values, so
/// two deployments' configurations compare equal exactly when they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushedConfig {
    /// Secret values are `***`.
    pub variables: BTreeMap<String, String>,
    /// Which variables are secrets.
    pub secrets: Vec<String>,
    /// HMAC-SHA256 (keyed with the coordinator's secrets key) of every
    /// variable and real value.
    pub digest: String,
}

/// A deployment's migration as it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationRun {
    /// The data store it changes.
    pub store: String,
    /// Stored with `instance` and `started_at` before the command is sent:
    /// from then on it may run there, so it is never sent anywhere again.
    pub run_id: Option<String>,
    pub instance: Option<String>,
    pub started_at: Option<Millis>,
    pub outcome: Option<MigrationOutcome>,
    /// The command's last lines of output.
    #[serde(default)]
    pub output: Vec<String>,
}

impl MigrationRun {
    pub fn of(store: &str) -> MigrationRun {
        MigrationRun {
            store: store.to_string(),
            run_id: None,
            instance: None,
            started_at: None,
            outcome: None,
            output: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "result")]
pub enum MigrationOutcome {
    Succeeded,
    /// Rolled the deployment back; the reason has the exit status and output.
    Failed {
        reason: String,
    },
    /// This release's migration of the store had already run, in `ran_in`.
    Skipped {
        ran_in: String,
    },
}

/// The certificate name of who asked for `d`: `requested_by` may say more
/// ("alice (rollback from v3)"); certificate names hold no space.
pub fn requester(d: &Deployment) -> &str {
    d.requested_by.split(' ').next().unwrap_or_default()
}

/// A deployment of `hello@v2` to staging (2 instances), `d-7`, in `phase`
/// since `at`, with `launched` filling slots 0, 1, ...: for tests.
#[cfg(test)]
pub(crate) fn test_deployment(phase: Phase, at: Millis, launched: &[&str]) -> Deployment {
    let release = Release {
        project: "hello".into(),
        version: "v2".into(),
        image_id: "ami-2".into(),
        registered_at: 0,
        registered_by: "ci".into(),
        owner_account: None,
        provenance: Default::default(),
    };
    let mut d = Deployment::queued(7, &release, "staging", "admin".into(), 2, at);
    d.phase = phase;
    d.history = vec![PhaseEntry { phase, at }];
    d.launched = launched
        .iter()
        .enumerate()
        .map(|(slot, id)| LaunchedInstance {
            slot: slot as u32,
            id: id.to_string(),
        })
        .collect();
    d
}

impl Record for Deployment {
    const TABLE: Table = Table::Deployments;
    fn key(&self) -> String {
        self.id.clone()
    }
}

impl Deployment {
    /// A new deployment `d-SEQ` of `release` onto `environment`, queued at `at`.
    pub fn queued(
        seq: u64,
        release: &Release,
        environment: &str,
        requested_by: String,
        desired: u32,
        at: Millis,
    ) -> Deployment {
        Deployment {
            id: format!("d-{seq}"),
            seq,
            project: release.project.clone(),
            version: release.version.clone(),
            image_id: release.image_id.clone(),
            environment: environment.to_string(),
            requested_by,
            requested_at: at,
            phase: Phase::Queued,
            history: vec![PhaseEntry {
                phase: Phase::Queued,
                at,
            }],
            reason: None,
            desired,
            launched: vec![],
            old_instances: vec![],
            cancel_requested_by: None,
            rollback_requested_by: None,
            approved_by: None,
            passes_freeze: None,
            freeze_overridden_by: None,
            freeze_override_until: None,
            provenance: (!release.provenance.is_empty()).then(|| release.provenance.clone()),
            replaces: vec![],
            migration: None,
            config: None,
            fleet_generation: None,
            launch_attempted: false,
            drain_from: None,
        }
    }

    pub fn target(&self) -> Target {
        Target {
            project: self.project.clone(),
            environment: self.environment.clone(),
        }
    }

    /// When the current phase started.
    pub fn entered_at(&self) -> Millis {
        self.history.last().map_or(self.requested_at, |e| e.at)
    }

    /// Whether, at `now`, the current phase has lasted longer than `limit`: the
    /// one test behind every deadline.
    pub fn overdue(&self, now: Millis, limit: std::time::Duration) -> bool {
        now - self.entered_at() > limit.as_millis() as Millis
    }

    /// Whether it watched its new instances with the old ones on standby: a
    /// rollback from there re-attaches those first.
    pub fn watched(&self) -> bool {
        self.history.iter().any(|e| e.phase == Phase::Watching)
    }

    pub fn new_instance_ids(&self) -> Vec<String> {
        self.launched.iter().map(|i| i.id.clone()).collect()
    }

    /// The configuration version the new instances run with: unique per deployment.
    pub fn config_version(&self) -> u64 {
        self.seq
    }

    /// Moves to `phase` and records when.
    pub fn enter(&mut self, phase: Phase, at: Millis) {
        self.phase = phase;
        self.history.push(PhaseEntry { phase, at });
    }
}

/// Where deployments go: one queue and at most one active deployment per target.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Target {
    pub project: String,
    pub environment: String,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.project, self.environment)
    }
}
