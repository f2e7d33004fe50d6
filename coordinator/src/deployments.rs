//! The deployments table and the queue it makes: enqueueing, reading, changing
//! one deployment at a time, and what each waits on. The executor, the
//! scheduler, operations and the lost-instance watch all go through here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::clock::Clock;
use crate::deploy::{self, Deployment};
use crate::release::Release;
use crate::store::{Changes, Db, StoreError};

pub struct Deployments {
    db: Db,
    clock: Arc<dyn Clock>,
    /// Serializes changes to stored deployments (see `update`).
    writes: tokio::sync::Mutex<()>,
    /// What each running deployment waits on, for operators.
    waiting_on: Mutex<HashMap<String, String>>,
    /// Woken whenever the queue may have changed.
    queue_changed: Notify,
}

impl std::fmt::Debug for Deployments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Deployments")
    }
}

impl Deployments {
    pub fn new(db: Db, clock: Arc<dyn Clock>) -> Deployments {
        Deployments {
            db,
            clock,
            writes: tokio::sync::Mutex::new(()),
            waiting_on: Mutex::default(),
            queue_changed: Notify::new(),
        }
    }

    pub async fn get(&self, id: &str) -> Result<Option<Deployment>, StoreError> {
        self.db.get(id).await
    }

    /// Every deployment, oldest first.
    pub async fn history(&self) -> Result<Vec<Deployment>, StoreError> {
        deploy::history(&self.db).await
    }

    /// Stores a new queued deployment of `release` onto `environment`, changed
    /// by `shape` before it is stored (a replacement of some instances, say):
    /// the scheduler never sees it unshaped.
    pub async fn enqueue(
        &self,
        requested_by: String,
        release: &Release,
        environment: &str,
        desired: u32,
        shape: impl FnOnce(&mut Deployment),
    ) -> Result<Deployment, StoreError> {
        let seq = self.db.next_id().await?;
        let now = self.clock.now();
        let mut deployment =
            Deployment::queued(seq, release, environment, requested_by, desired, now);
        shape(&mut deployment);
        self.db.put(&deployment).await?;
        self.queue_changed.notify_one();
        Ok(deployment)
    }

    /// Changes a stored deployment on its freshest state, one change at a time, so
    /// the executor and an operator's cancel never overwrite each other. Returns
    /// the stored result, or None if there is no such deployment.
    pub async fn update<T, E: From<StoreError>>(
        &self,
        id: &str,
        change: impl FnOnce(&mut Deployment) -> Result<T, E>,
    ) -> Result<Option<(Deployment, T)>, E> {
        self.update_with(id, Changes::default(), change).await
    }

    /// As `update`, committing `also` in the same batch.
    pub async fn update_with<T, E: From<StoreError>>(
        &self,
        id: &str,
        mut also: Changes,
        change: impl FnOnce(&mut Deployment) -> Result<T, E>,
    ) -> Result<Option<(Deployment, T)>, E> {
        let _one_at_a_time = self.writes.lock().await;
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

    /// Tells the scheduler the queue may have changed.
    pub fn queue_changed(&self) {
        self.queue_changed.notify_one();
    }

    /// Resolves at the next `queue_changed` (one made before this was called counts).
    pub fn queue_notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.queue_changed.notified()
    }
}
