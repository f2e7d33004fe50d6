//! The scheduler: resumes active deployments (after a restart too) and starts
//! the head of every idle target's queue, one executor per deployment. It owns
//! its executors (a `JoinSet`): one that ends, or panics, is released so its
//! target's queue moves on, and a graceful stop waits for them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::{JoinHandle, JoinSet};
use tracing::{error, info};

use crate::coordinator::Coordinator;
use crate::deploy::{self, Deployment};
use crate::executor;
use crate::queue::ReleaseQueue;
use crate::store::StoreError;

/// Longest pause between two looks at the queue when nothing wakes the scheduler.
const EVERY: Duration = Duration::from_secs(1);

/// Starts the scheduler; it ends once a stop was asked for and every executor ended.
pub fn start(coordinator: Arc<Coordinator>) -> JoinHandle<()> {
    tokio::spawn(run(coordinator))
}

async fn run(c: Arc<Coordinator>) {
    let mut executors = JoinSet::new();
    let mut deployments: HashMap<tokio::task::Id, String> = HashMap::new();
    loop {
        let notified = c.queue_changed.notified();
        if !c.is_stopping()
            && let Err(e) = start_startable(&c, &mut executors, &mut deployments).await
        {
            error!(error = %e, "scheduling failed; retrying");
        }
        if c.is_stopping() && executors.is_empty() {
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
                c.release_executor(&id);
            }
        }
    }
}

async fn start_startable(
    c: &Arc<Coordinator>,
    executors: &mut JoinSet<()>,
    deployments: &mut HashMap<tokio::task::Id, String>,
) -> Result<(), StoreError> {
    let history = deploy::history(&c.db).await?;
    let queue = ReleaseQueue::new(&history);
    let mut to_start: Vec<&Deployment> = queue.targets().filter_map(|t| t.active).collect();
    to_start.extend(queue.startable());
    for deployment in to_start {
        if !c.claim_executor(&deployment.id) {
            continue;
        }
        info!(deployment_id = %deployment.id, target = %deployment.target(), phase = %deployment.phase, "starting executor");
        let coordinator = c.clone();
        let id = deployment.id.clone();
        let task = executors.spawn(async move { executor::run(coordinator, &id).await });
        deployments.insert(task.id(), deployment.id.clone());
    }
    Ok(())
}
