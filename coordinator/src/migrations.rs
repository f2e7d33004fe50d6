//! Migrations' two tables: the lock each data store's migrations take (one at
//! a time per store, whichever environments the deployments target) and the
//! record of which release's migration ran on which store (so it runs once).
//! Both are stored, so a coordinator killed mid-migration finds them again.

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::clock::Millis;
use crate::store::{Changes, Db, Record, StoreError, Table};

/// A data store's migration lock, held by one deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationLock {
    pub store: String,
    pub deployment: String,
    pub since: Millis,
}

impl Record for MigrationLock {
    const TABLE: Table = Table::MigrationLocks;
    fn key(&self) -> String {
        self.store.clone()
    }
}

/// A release's migration that ran on a data store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationDone {
    pub store: String,
    pub project: String,
    pub version: String,
    /// The deployment it ran in.
    pub deployment: String,
    pub at: Millis,
}

impl MigrationDone {
    pub fn key_of(store: &str, project: &str, version: &str) -> String {
        format!("{store}/{project}/{version}")
    }
}

impl Record for MigrationDone {
    const TABLE: Table = Table::Migrations;
    fn key(&self) -> String {
        MigrationDone::key_of(&self.store, &self.project, &self.version)
    }
}

#[derive(Debug)]
pub struct Migrations {
    db: Db,
    /// Taking a lock is read-then-write: one at a time, so two deployments
    /// never both find it free.
    taking: Mutex<()>,
}

impl Migrations {
    pub fn new(db: Db) -> Migrations {
        Migrations {
            db,
            taking: Mutex::new(()),
        }
    }

    /// Who holds `store`'s lock.
    pub async fn holder(&self, store: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .db
            .get::<MigrationLock>(store)
            .await?
            .map(|l| l.deployment))
    }

    /// Takes `store`'s lock for `deployment` if it is free; returns the holder.
    pub async fn lock(
        &self,
        store: &str,
        deployment: &str,
        now: Millis,
    ) -> Result<String, StoreError> {
        let _one_at_a_time = self.taking.lock().await;
        if let Some(holder) = self.holder(store).await? {
            return Ok(holder);
        }
        self.db
            .put(&MigrationLock {
                store: store.to_string(),
                deployment: deployment.to_string(),
                since: now,
            })
            .await?;
        Ok(deployment.to_string())
    }

    /// Lets go of `store`'s lock if `deployment` holds it.
    pub async fn release(&self, store: &str, deployment: &str) -> Result<(), StoreError> {
        let mut changes = Changes::default();
        self.end(&mut changes, store, deployment, None).await?;
        self.db.commit(changes).await
    }

    /// Deletes `store`'s lock when its holder is finished (the caller checked),
    /// so `lock` can take it for `deployment`.
    pub async fn release_stale(&self, store: &str, deployment: &str) -> Result<(), StoreError> {
        let _one_at_a_time = self.taking.lock().await;
        if let Some(holder) = self.holder(store).await?
            && holder != deployment
        {
            let mut changes = Changes::default();
            changes.delete::<MigrationLock>(store);
            self.db.commit(changes).await?;
        }
        Ok(())
    }

    /// The deployment that already ran `project@version`'s migration on `store`.
    pub async fn ran_in(
        &self,
        store: &str,
        project: &str,
        version: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .db
            .get::<MigrationDone>(&MigrationDone::key_of(store, project, version))
            .await?
            .map(|d| d.deployment))
    }

    /// Adds to a batch: the release's migration ran (when `done` is given),
    /// and `deployment` lets go of `store`'s lock if it holds it.
    pub async fn end(
        &self,
        changes: &mut Changes,
        store: &str,
        deployment: &str,
        done: Option<MigrationDone>,
    ) -> Result<(), StoreError> {
        if let Some(done) = done {
            changes.put(&done)?;
        }
        if self.holder(store).await?.as_deref() == Some(deployment) {
            changes.delete::<MigrationLock>(store);
        }
        Ok(())
    }
}
