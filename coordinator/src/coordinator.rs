//! The coordinator's shared state: store, fleet, cloud, agents and trust.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tracing::info;

use crate::agents::AgentHub;
use crate::audit::AuditLog;
use crate::clock::{Clock, Millis};
use crate::cloud::Cloud;
use crate::config::Fleet;
use crate::deploy::Deployment;
use crate::pki::Ca;
use crate::revocation::Revocations;
use crate::secrets::Secrets;
use crate::store::{Changes, Db, StoreError};
use crate::tokens::JoinTokens;

/// How long a join token stays usable after its launch.
pub const JOIN_TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// Where agents reach the coordinator, as written into every launch.
#[derive(Debug, Clone)]
pub struct Advertised {
    /// `https://host:port`.
    pub address: String,
    pub server_name: String,
}

pub struct Coordinator {
    pub db: Db,
    pub clock: Arc<dyn Clock>,
    pub fleet: Fleet,
    pub cloud: Cloud,
    pub agents: Arc<AgentHub>,
    pub tokens: JoinTokens,
    pub audit: AuditLog,
    pub secrets: Secrets,
    pub revocations: Revocations,
    pub ca: Ca,
    pub advertised: Advertised,
    /// Woken whenever the queue may have changed.
    pub queue_changed: Notify,
    /// Deployments with a running executor.
    running: Mutex<HashSet<String>>,
    /// What each running deployment waits on, for operators.
    waiting_on: Mutex<HashMap<String, String>>,
    /// Serializes changes to stored deployments (see `update_deployment`).
    deployment_writes: tokio::sync::Mutex<()>,
    /// Set on SIGTERM: executors finish their current step and stop.
    stopping: watch::Sender<bool>,
    /// One lock per project, held while a promotion reads and changes its
    /// public record and DNS (see `promotion_lock`).
    promotions: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Wakes the task that finishes pending promotions (`promote::start_finisher`).
    pub promotion_pending: Notify,
    /// When this process started (wall clock, as phases are stamped).
    pub started_at: Millis,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Coordinator")
    }
}

/// What a coordinator is made of; the rest it makes itself.
#[derive(Debug)]
pub struct Parts {
    pub db: Db,
    pub fleet: Fleet,
    pub cloud: Cloud,
    pub ca: Ca,
    pub secrets: Secrets,
    pub revocations: Revocations,
    pub advertised: Advertised,
    pub clock: Arc<dyn Clock>,
}

impl Coordinator {
    pub fn new(parts: Parts) -> Arc<Self> {
        let Parts {
            db,
            fleet,
            cloud,
            ca,
            secrets,
            revocations,
            advertised,
            clock,
        } = parts;
        Arc::new(Coordinator {
            tokens: JoinTokens::new(db.clone(), clock.clone(), JOIN_TOKEN_LIFETIME),
            audit: AuditLog::new(db.clone(), clock.clone()),
            agents: Arc::new(AgentHub::new(clock.clone())),
            started_at: clock.now(),
            clock,
            secrets,
            revocations,
            db,
            fleet,
            cloud,
            ca,
            advertised,
            queue_changed: Notify::new(),
            running: Mutex::new(HashSet::new()),
            waiting_on: Mutex::new(HashMap::new()),
            deployment_writes: tokio::sync::Mutex::new(()),
            stopping: watch::channel(false).0,
            promotions: Mutex::new(HashMap::new()),
            promotion_pending: Notify::new(),
        })
    }

    /// Changes a stored deployment on its freshest state, one change at a time, so
    /// the executor and an operator's cancel never overwrite each other. Returns
    /// the stored result, or None if there is no such deployment.
    pub async fn update_deployment<T, E: From<StoreError>>(
        &self,
        id: &str,
        change: impl FnOnce(&mut Deployment) -> Result<T, E>,
    ) -> Result<Option<(Deployment, T)>, E> {
        self.update_deployment_with(id, Changes::default(), change)
            .await
    }

    /// As `update_deployment`, committing `also` in the same batch.
    pub async fn update_deployment_with<T, E: From<StoreError>>(
        &self,
        id: &str,
        mut also: Changes,
        change: impl FnOnce(&mut Deployment) -> Result<T, E>,
    ) -> Result<Option<(Deployment, T)>, E> {
        let _one_at_a_time = self.deployment_writes.lock().await;
        let Some(mut deployment) = self.db.get::<Deployment>(id).await? else {
            return Ok(None);
        };
        let value = change(&mut deployment)?;
        also.put(&deployment)?;
        self.db.commit(also).await?;
        Ok(Some((deployment, value)))
    }

    pub fn set_waiting_on(&self, id: &str, what: Option<String>) {
        let mut waiting = self.waiting_on.lock().unwrap_or_else(|e| e.into_inner());
        match what {
            Some(what) => waiting.insert(id.to_string(), what),
            None => waiting.remove(id),
        };
    }

    pub fn waiting_on(&self, id: &str) -> Option<String> {
        self.waiting_on
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// Serializes promotions of `project`; other projects' go on meanwhile (a
    /// Route53 change can take minutes to be in sync).
    pub async fn promotion_lock(&self, project: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self
            .promotions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(project.to_string())
            .or_default()
            .clone();
        lock.lock_owned().await
    }

    /// Resolves once a graceful stop was asked for (at once if it already was).
    pub async fn stop_requested(&self) {
        let mut stopping = self.stopping.subscribe();
        let _ = stopping.wait_for(|stop| *stop).await;
    }

    pub fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// Graceful stop: no executor starts a new step, each finishes the one it is
    /// in (its outcome stored), then agent streams are closed so agents go on
    /// reconnecting. Returns how many executors were still busy after `grace`.
    pub async fn stop(&self, grace: Duration) -> usize {
        self.stopping.send_replace(true);
        let busy = || self.running.lock().unwrap_or_else(|e| e.into_inner()).len();
        info!(
            deployments = busy(),
            "stopping: finishing the current step of each deployment"
        );
        let deadline = tokio::time::Instant::now() + grace;
        while busy() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.agents.close_all();
        busy()
    }

    /// Marks `id` as having a running executor; false if it already has one.
    pub fn claim_executor(&self, id: &str) -> bool {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string())
    }

    /// `id`'s executor ended: the scheduler may start the next deployment.
    pub fn release_executor(&self, id: &str) {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        self.set_waiting_on(id, None);
        self.queue_changed.notify_one();
    }
}
