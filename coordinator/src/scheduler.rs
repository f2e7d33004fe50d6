//! The scheduler: resumes active deployments (after a restart too) and starts
//! the head of every idle target's queue, one executor per deployment. It owns
//! its executors (a `JoinSet`): one that ends, or panics, is released so its
//! target's queue moves on, and a graceful stop waits for them.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::{JoinHandle, JoinSet};
use tracing::{error, info};

use crate::deploy::{Deployment, Phase};
use crate::executor::{self, Executor};
use crate::releases::Releases;
use crate::store::StoreError;

/// Longest pause between two looks at the queue when nothing wakes the scheduler.
const EVERY: Duration = Duration::from_secs(1);

pub struct Scheduler {
    executor: Arc<Executor>,
    /// The checks each release passed, which environments' gates ask for.
    releases: Arc<Releases>,
    /// Deployments with a running executor.
    running: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scheduler")
    }
}

impl Scheduler {
    pub fn new(executor: Arc<Executor>, releases: Arc<Releases>) -> Arc<Scheduler> {
        Arc::new(Scheduler {
            executor,
            releases,
            running: Mutex::default(),
        })
    }

    /// How many deployments have an executor running.
    pub fn busy(&self) -> usize {
        self.running().len()
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the scheduler; it ends once a stop was asked for and every executor ended.
    pub fn start(self: &Arc<Self>) -> JoinHandle<()> {
        tokio::spawn(self.clone().run())
    }

    async fn run(self: Arc<Self>) {
        let x = &self.executor;
        let mut executors = JoinSet::new();
        let mut deployments: HashMap<tokio::task::Id, String> = HashMap::new();
        loop {
            let notified = x.deployments.queue_notified();
            if !x.stopping.is_asked()
                && let Err(e) = self.start_startable(&mut executors, &mut deployments).await
            {
                error!(error = %e, "scheduling failed; retrying");
            }
            if x.stopping.is_asked() && executors.is_empty() {
                return;
            }
            tokio::select! {
                _ = tokio::time::timeout(EVERY, notified) => {}
                Some(ended) = executors.join_next_with_id() => {
                    let task = match &ended {
                        Ok((task, ())) => *task,
                        Err(e) => e.id(),
                    };
                    let id = deployments.remove(&task).unwrap_or_default();
                    if let Err(e) = ended {
                        error!(deployment_id = %id, error = %e, "an executor panicked; the scheduler restarts it");
                    }
                    self.running().remove(&id);
                    x.deployments.set_waiting_on(&id, None);
                    x.deployments.queue_changed();
                }
            }
        }
    }

    async fn start_startable(
        &self,
        executors: &mut JoinSet<()>,
        deployments: &mut HashMap<tokio::task::Id, String>,
    ) -> Result<(), StoreError> {
        for deployment in self.runnable().await? {
            if !self.running().insert(deployment.id.clone()) {
                continue;
            }
            info!(deployment_id = %deployment.id, target = %deployment.target(), phase = %deployment.phase, "starting executor");
            let executor = self.executor.clone();
            let id = deployment.id.clone();
            let task = executors.spawn(async move { executor::run(executor, &id).await });
            deployments.insert(task.id(), deployment.id.clone());
        }
        Ok(())
    }

    /// The deployments that may run now: the active ones, and the head of
    /// every idle target's queue whose gates are open. A closed gate holds
    /// its head, saying why; the gates are asked again on every look.
    pub async fn runnable(&self) -> Result<Vec<Deployment>, StoreError> {
        // Only a line's head ever starts, so the running deployment is its
        // head: one read per target, however long the lines.
        let mut runnable = Vec::new();
        for head in self.executor.deployments.heads().await? {
            if head.phase == Phase::Queued {
                let held = self.gate(&head).await?;
                let opens = held.is_none();
                self.executor.deployments.set_waiting_on(&head.id, held);
                if !opens {
                    continue;
                }
            }
            runnable.push(head);
        }
        Ok(runnable)
    }

    /// Why `d` may not leave the queue yet (the gates of its environment in
    /// the fleet in force), or None.
    async fn gate(&self, d: &Deployment) -> Result<Option<String>, StoreError> {
        let fleet = self.executor.fleets.current().fleet;
        let Some(environment) = fleet.environments.get(&d.environment) else {
            return Ok(None);
        };
        // Replacing lost instances with the release already serving there
        // passed its gates once: self-healing waits for no one.
        if !d.replaces.is_empty() {
            return Ok(None);
        }
        if environment.requires_checks.is_empty()
            && environment.requires_success_in.is_empty()
            && !environment.requires_approval
            && environment.freeze.is_empty()
        {
            return Ok(None);
        }
        let checks = self.releases.check_results(&d.project, &d.version).await?;
        let mut succeeded = Vec::new();
        for env in &environment.requires_success_in {
            if self
                .executor
                .deployments
                .succeeded_in(&d.project, &d.version, env)
                .await?
            {
                succeeded.push(env.as_str());
            }
        }
        let succeeded_in = |env: &str| succeeded.contains(&env);
        let now = self.executor.clock.now();
        Ok(crate::gates::closed(
            environment,
            d,
            &checks,
            succeeded_in,
            now,
        ))
    }
}
