//! The deployments table and the queue it makes: enqueueing, reading, changing
//! one deployment at a time, and what each waits on. The executor, the
//! scheduler, operations and the lost-instance watch all go through here, so
//! every change's events (queued, each phase, a cancel asked for, a
//! migration's end) are stored here, in the change's own write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::audit::About;
use crate::clock::Clock;
use crate::deploy::{self, Deployment, MigrationOutcome, Phase};
use crate::events::{Event, Events};
use crate::release::Release;
use crate::store::{Changes, Db, StoreError};

pub struct Deployments {
    db: Db,
    clock: Arc<dyn Clock>,
    events: Arc<Events>,
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
    pub fn new(db: Db, clock: Arc<dyn Clock>, events: Arc<Events>) -> Deployments {
        Deployments {
            db,
            clock,
            events,
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
        let mut changes = Changes::default();
        changes.put(&deployment)?;
        self.events
            .commit(changes, events_of(None, &deployment))
            .await?;
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
        let before = deployment.clone();
        let value = change(&mut deployment)?;
        also.put(&deployment)?;
        self.events
            .commit(also, events_of(Some(&before), &deployment))
            .await?;
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

/// What a change of a deployment from `before` (None: new) to `after` tells.
fn events_of(before: Option<&Deployment>, after: &Deployment) -> Vec<Event> {
    let about = |kind: String, what: String, reason: Option<String>| Event {
        about: About {
            project: Some(after.project.clone()),
            environment: Some(after.environment.clone()),
            version: Some(after.version.clone()),
            deployment: Some(after.id.clone()),
        },
        who: Some(after.requested_by.clone()),
        reason,
        provenance: after.provenance.clone(),
        ..Event::new(
            kind,
            format!(
                "{} {} → {} ({}): {what}",
                after.project, after.version, after.environment, after.id
            ),
        )
    };
    let mut events = Vec::new();
    if before.map(|b| b.phase) != Some(after.phase) {
        let phase = after.phase.as_str();
        let said = phase.replace('_', " ");
        let (what, reason) = match (after.phase, &after.reason) {
            (Phase::Queued, _) if !after.replaces.is_empty() => (
                format!(
                    "queued to replace lost {} (asked by {})",
                    after.replaces.join(", "),
                    after.requested_by
                ),
                None,
            ),
            (Phase::Queued, _) => (format!("queued (asked by {})", after.requested_by), None),
            (Phase::RollingBack | Phase::RolledBack | Phase::Cancelled, Some(reason)) => {
                (format!("{said}: {reason}"), Some(reason.clone()))
            }
            (_, Some(note)) if after.phase.is_finished() => {
                (format!("{said}: {note}"), Some(note.clone()))
            }
            _ => (said, None),
        };
        events.push(about(format!("deployment.{phase}"), what, reason));
    }
    // Someone's act on it, told once: when the field is first set.
    type Who = fn(&Deployment) -> &Option<String>;
    let acts: [(Who, &str, &str); 4] = [
        (
            |d| &d.cancel_requested_by,
            "deployment.cancel_requested",
            "cancel requested by",
        ),
        (
            |d| &d.rollback_requested_by,
            "deployment.rollback_requested",
            "rollback to the standby requested by",
        ),
        (|d| &d.approved_by, "deployment.approved", "approved by"),
        (
            |d| &d.freeze_overridden_by,
            "deployment.freeze_overridden",
            "freeze overridden by",
        ),
    ];
    for (field, kind, said) in acts {
        if let (Some(by), true) = (field(after), before.is_some_and(|b| field(b).is_none())) {
            // An override carries the admin's reason.
            let reason = (kind == "deployment.freeze_overridden")
                .then(|| after.passes_freeze.clone())
                .flatten();
            events.push(Event {
                who: Some(by.clone()),
                ..about(kind.into(), format!("{said} {by}"), reason)
            });
        }
    }
    let outcome = |d: Option<&Deployment>| d.and_then(|d| d.migration.as_ref()?.outcome.clone());
    if let (None, Some(outcome)) = (outcome(before), outcome(Some(after))) {
        let store = after
            .migration
            .as_ref()
            .map(|m| m.store.clone())
            .unwrap_or_default();
        let (what, reason) = match outcome {
            MigrationOutcome::Succeeded => (format!("migration of {store} succeeded"), None),
            MigrationOutcome::Skipped { ran_in } => (
                format!("migration of {store} already ran in {ran_in}; not run again"),
                None,
            ),
            MigrationOutcome::Failed { reason } => (
                format!("migration of {store} failed: {reason}"),
                Some(reason),
            ),
        };
        events.push(about("migration.finished".into(), what, reason));
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::deploy::MigrationRun;

    fn queued() -> Deployment {
        let release = Release {
            project: "hello".into(),
            version: "v2".into(),
            image_id: "ami-12345678".into(),
            registered_at: 0,
            registered_by: "ci".into(),
            owner_account: None,
            provenance: Default::default(),
        };
        Deployment::queued(7, &release, "prod1", "ci".into(), 2, 0)
    }

    #[test]
    fn a_deployment_tells_its_phases_its_cancel_and_its_migration() {
        let d = queued();
        let events = events_of(None, &d);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, "deployment.queued");
        assert_eq!(
            events[0].summary,
            format!("hello v2 → prod1 ({}): queued (asked by ci)", d.id)
        );

        let mut rolled = d.clone();
        rolled.phase = Phase::RollingBack;
        rolled.reason = Some("health check answered 500".into());
        rolled.cancel_requested_by = Some("alice".into());
        let events = events_of(Some(&d), &rolled);
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["deployment.rolling_back", "deployment.cancel_requested"]
        );
        assert_eq!(
            events[0].reason.as_deref(),
            Some("health check answered 500")
        );
        assert!(
            events[0]
                .summary
                .ends_with("rolling back: health check answered 500")
        );
        assert_eq!(events[1].who.as_deref(), Some("alice"));

        let mut migrated = d.clone();
        migrated.migration = Some(MigrationRun::of("hello-db"));
        assert!(events_of(Some(&d), &migrated).is_empty(), "no outcome yet");
        let mut done = migrated.clone();
        if let Some(run) = done.migration.as_mut() {
            run.outcome = Some(MigrationOutcome::Skipped {
                ran_in: "d-3".into(),
            });
        }
        let events = events_of(Some(&migrated), &done);
        assert_eq!(events[0].kind, "migration.finished");
        assert!(
            events[0].summary.contains("already ran in d-3"),
            "{events:?}"
        );
        assert!(events_of(Some(&done), &done).is_empty(), "told once");
    }

    #[tokio::test]
    async fn the_event_is_stored_in_the_change_s_own_write() {
        let store = Arc::new(crate::store::MemoryStore::default());
        let db = Db::open(store.clone()).await.unwrap();
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::at(0));
        let events = Arc::new(Events::new(db.clone(), clock.clone()));
        let deployments = Deployments::new(db.clone(), clock, events.clone());
        let d = queued();
        let release = Release {
            project: d.project.clone(),
            version: d.version.clone(),
            image_id: d.image_id.clone(),
            registered_at: 0,
            registered_by: "ci".into(),
            owner_account: None,
            provenance: Default::default(),
        };
        let stored = deployments
            .enqueue("ci".into(), &release, "prod1", 2, |_| {})
            .await
            .unwrap();
        let launch = |d: &mut Deployment| {
            d.phase = Phase::Launching;
            Ok::<_, StoreError>(())
        };
        // A failed write stores neither the change nor its event.
        store.fail_next_writes(1);
        assert!(deployments.update(&stored.id, launch).await.is_err());
        assert_eq!(
            deployments.get(&stored.id).await.unwrap().unwrap().phase,
            Phase::Queued
        );
        deployments.update(&stored.id, launch).await.unwrap();
        let told: Vec<(u64, String)> = events
            .after(0, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.seq, e.kind))
            .collect();
        assert_eq!(
            told,
            [
                (1, "deployment.queued".into()),
                (2, "deployment.launching".into())
            ],
            "no gap where the failed write was"
        );
    }
}
