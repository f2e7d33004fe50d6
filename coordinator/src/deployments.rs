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
use crate::deploy::index::{self, Indexed};
use crate::deploy::{Deployment, MigrationOutcome, Phase};
use crate::events::{Event, Events};
use crate::release::Release;
use crate::store::{Changes, Db, Range, StoreError};

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

    /// Indexes every deployment of a store written before the index (one
    /// pass, once): from then on every read below is a short range.
    pub async fn build_index(&self) -> Result<(), StoreError> {
        if self.db.get::<Indexed>(index::BUILT).await?.is_some() {
            return Ok(());
        }
        let all: Vec<Deployment> = self.db.all().await?;
        for chunk in all.chunks(500) {
            let mut changes = Changes::default();
            for d in chunk {
                indexed(&mut changes, None, d)?;
            }
            self.db.commit(changes).await?;
        }
        self.db
            .put(&Indexed {
                key: index::BUILT.into(),
                id: String::new(),
                version: String::new(),
            })
            .await
    }

    /// The queue: every deployment not finished, oldest first.
    pub async fn unfinished(&self) -> Result<Vec<Deployment>, StoreError> {
        self.pointed(Range::prefix(index::UNFINISHED)).await
    }

    /// The head of every target's line: the deployment running there, or
    /// the first waiting. One short read per target, whatever the queue's length.
    pub async fn heads(&self) -> Result<Vec<Deployment>, StoreError> {
        let mut heads = Vec::new();
        let mut next = index::QUEUE.to_string();
        loop {
            let Some(entry) = self
                .db
                .range::<Indexed>(Range::prefix(index::QUEUE).from(next).limit(1))
                .await?
                .pop()
            else {
                return Ok(heads);
            };
            // Past this target's entries: its prefix, then a byte above every digit.
            let target = entry.key.rsplit_once('/').map_or("", |(t, _)| t);
            next = format!("{target}/~");
            if let Some(d) = self.db.get(&entry.id).await? {
                heads.push(d);
            }
        }
    }

    /// How many deployments the target's line holds, the running one included
    /// (its entries are counted, the deployments not read).
    pub async fn line_len(&self, project: &str, environment: &str) -> Result<usize, StoreError> {
        Ok(self
            .db
            .range::<Indexed>(Range::prefix(index::queue(project, environment)))
            .await?
            .len())
    }

    /// Who is ahead of queued `d` on its target: how many, and the nearest.
    pub async fn ahead_of(
        &self,
        d: &Deployment,
    ) -> Result<(usize, Option<Deployment>), StoreError> {
        let prefix = index::queue(&d.project, &d.environment);
        let Some(below) = d.seq.checked_sub(1) else {
            return Ok((0, None));
        };
        let ahead: Vec<Indexed> = self
            .db
            .range(
                Range::prefix(prefix.clone())
                    .from(index::at(&prefix, below))
                    .newest_first(),
            )
            .await?;
        let nearest = match ahead.first() {
            Some(entry) => self.db.get(&entry.id).await?,
            None => None,
        };
        Ok((ahead.len(), nearest))
    }

    /// What serves the target: its latest successful deployment.
    pub async fn serving(
        &self,
        project: &str,
        environment: &str,
    ) -> Result<Option<Deployment>, StoreError> {
        self.latest(index::succeeded(project, environment)).await
    }

    /// The target's latest deployment that succeeded or rolled back.
    pub async fn latest_outcome(
        &self,
        project: &str,
        environment: &str,
    ) -> Result<Option<Deployment>, StoreError> {
        self.latest(index::outcome(project, environment)).await
    }

    /// Whether `project@version` ever succeeded in `environment`.
    pub async fn succeeded_in(
        &self,
        project: &str,
        version: &str,
        environment: &str,
    ) -> Result<bool, StoreError> {
        let prefix = index::release(project, version, environment);
        Ok(!self
            .db
            .range::<Indexed>(Range::prefix(prefix).limit(1))
            .await?
            .is_empty())
    }

    /// The newest version that served the target before, other than `current`.
    pub async fn served_before(
        &self,
        project: &str,
        environment: &str,
        current: &str,
    ) -> Result<Option<String>, StoreError> {
        let prefix = index::succeeded(project, environment);
        let mut range = Range::prefix(prefix.clone()).newest_first().limit(64);
        loop {
            let page: Vec<Indexed> = self.db.range(range.clone()).await?;
            if let Some(found) = page.iter().find(|e| e.version != current) {
                return Ok(Some(found.version.clone()));
            }
            // Redeploys of one version: read on below the last one seen.
            let Some(last) = page.last().filter(|_| page.len() == 64) else {
                return Ok(None);
            };
            let Some(below) = seq_of(&last.key).checked_sub(1) else {
                return Ok(None);
            };
            range = range.from(index::at(&prefix, below));
        }
    }

    /// History, newest first: at most `limit` deployments of the project (and
    /// environment) if given, older than sequence number `before` if given.
    pub async fn page(
        &self,
        project: Option<&str>,
        environment: Option<&str>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Deployment>, StoreError> {
        let prefix = match (project, environment) {
            (Some(p), Some(e)) => index::target(p, e),
            (Some(p), None) => index::project(p),
            (None, None) => index::ALL.to_string(),
            // No index by environment alone: the newest of each project's
            // target there, merged (a bounded number of targets).
            (None, Some(e)) => {
                let mut merged = Vec::new();
                for p in self.projects_in(e).await? {
                    let prefix = index::target(&p, e);
                    merged.extend(self.newest(prefix, before, limit).await?);
                }
                merged.sort_by_key(|d| std::cmp::Reverse(d.seq));
                merged.truncate(limit);
                return Ok(merged);
            }
        };
        self.newest(prefix, before, limit).await
    }

    /// The newest `limit` deployments of index `prefix` older than `before`.
    async fn newest(
        &self,
        prefix: String,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Deployment>, StoreError> {
        let mut range = Range::prefix(prefix.clone()).newest_first().limit(limit);
        if let Some(before) = before {
            match before.checked_sub(1) {
                Some(below) => range = range.from(index::at(&prefix, below)),
                None => return Ok(vec![]),
            }
        }
        self.pointed(range).await
    }

    /// The projects that ever deployed to `environment`.
    async fn projects_in(&self, environment: &str) -> Result<Vec<String>, StoreError> {
        let mut projects = Vec::new();
        let mut next = "target/".to_string();
        // One short read per project: skip to the key after each project's entries.
        loop {
            let Some(entry) = self
                .db
                .range::<Indexed>(Range::prefix("target/").from(next.clone()).limit(1))
                .await?
                .pop()
            else {
                return Ok(projects);
            };
            let project = entry.key["target/".len()..]
                .split('/')
                .next()
                .unwrap_or_default()
                .to_string();
            next = format!("target/{project}0");
            if !self
                .db
                .range::<Indexed>(Range::prefix(index::target(&project, environment)).limit(1))
                .await?
                .is_empty()
            {
                projects.push(project);
            }
        }
    }

    /// The deployment the newest entry of `prefix` points to.
    async fn latest(&self, prefix: String) -> Result<Option<Deployment>, StoreError> {
        Ok(self
            .pointed(Range::prefix(prefix).newest_first().limit(1))
            .await?
            .pop())
    }

    /// The deployments the index entries of `range` point to, in its order.
    async fn pointed(&self, range: Range) -> Result<Vec<Deployment>, StoreError> {
        let entries: Vec<Indexed> = self.db.range(range).await?;
        let mut found = Vec::with_capacity(entries.len());
        for entry in entries {
            // Written in one batch with its entries: it is there.
            if let Some(d) = self.db.get(&entry.id).await? {
                found.push(d);
            }
        }
        Ok(found)
    }

    /// Stores a new queued deployment of `release` onto `environment`, changed
    /// by `shape` before it is stored (a replacement of some instances, say):
    /// the scheduler never sees it unshaped. A request id (`claim`) is
    /// claimed for it in the same batch (`requests::claim`).
    pub async fn enqueue(
        &self,
        requested_by: String,
        release: &Release,
        environment: &str,
        desired: u32,
        shape: impl FnOnce(&mut Deployment),
        claim: Option<&crate::requests::RequestKey>,
    ) -> Result<Deployment, StoreError> {
        let seq = self.db.next_id().await?;
        let now = self.clock.now();
        let mut deployment =
            Deployment::queued(seq, release, environment, requested_by, desired, now);
        shape(&mut deployment);
        let mut changes = Changes::default();
        changes.put(&deployment)?;
        if let Some(key) = claim {
            crate::requests::claim(&mut changes, key, &deployment.id, now)?;
        }
        indexed(&mut changes, None, &deployment)?;
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
        indexed(&mut also, Some(&before), &deployment)?;
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

/// Adds the index changes of `before` (None: new) becoming `after`.
fn indexed(
    changes: &mut Changes,
    before: Option<&Deployment>,
    after: &Deployment,
) -> Result<(), StoreError> {
    let (gone, added) = index::changes(before, after);
    for key in gone {
        changes.delete::<Indexed>(&key);
    }
    for entry in &added {
        changes.put(entry)?;
    }
    Ok(())
}

/// The sequence number an index key ends in.
fn seq_of(key: &str) -> u64 {
    key.rsplit('/')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_default()
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
            .enqueue("ci".into(), &release, "prod1", 2, |_| {}, None)
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

#[cfg(test)]
mod index_tests {
    use super::*;
    use crate::clock::ManualClock;

    fn deployments(db: Db) -> Deployments {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::at(0));
        let events = Arc::new(Events::new(db.clone(), clock.clone()));
        Deployments::new(db, clock, events)
    }

    fn release(project: &str, version: &str) -> Release {
        Release {
            project: project.into(),
            version: version.into(),
            image_id: "ami-12345678".into(),
            registered_at: 0,
            registered_by: "ci".into(),
            owner_account: None,
            provenance: Default::default(),
        }
    }

    /// Enqueues `project@version` onto `environment` and moves it to `phase`.
    async fn deploy(
        ds: &Deployments,
        project: &str,
        version: &str,
        environment: &str,
        phase: Phase,
    ) -> Deployment {
        let d = ds
            .enqueue(
                "ci".into(),
                &release(project, version),
                environment,
                1,
                |_| {},
                None,
            )
            .await
            .unwrap();
        ds.update(&d.id, |d| {
            d.phase = phase;
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap()
        .unwrap()
        .0
    }

    fn ids(list: &[Deployment]) -> Vec<&str> {
        list.iter().map(|d| d.id.as_str()).collect()
    }

    #[tokio::test]
    async fn what_serves_what_waits_and_what_succeeded_where() {
        let ds = deployments(Db::memory());
        let v1 = deploy(&ds, "hello", "v1", "staging", Phase::Succeeded).await;
        deploy(&ds, "hello", "v2", "staging", Phase::RolledBack).await;
        let running = deploy(&ds, "hello", "v3", "staging", Phase::Booting).await;
        let queued = deploy(&ds, "hello", "v4", "staging", Phase::Queued).await;
        deploy(&ds, "other", "v9", "staging", Phase::Succeeded).await;

        let serving = ds.serving("hello", "staging").await.unwrap().unwrap();
        assert_eq!(
            serving.id, v1.id,
            "the latest success, not the rollback after it"
        );
        let outcome = ds
            .latest_outcome("hello", "staging")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(outcome.version, "v2");
        assert_eq!(
            ids(&ds.unfinished().await.unwrap()),
            [&running.id, &queued.id]
        );
        assert!(ds.succeeded_in("hello", "v1", "staging").await.unwrap());
        assert!(!ds.succeeded_in("hello", "v2", "staging").await.unwrap());
        assert!(!ds.succeeded_in("hello", "v1", "prod1").await.unwrap());
        assert_eq!(ds.serving("hello", "prod1").await.unwrap(), None);

        // Each target's line: its head (the running one), its length, who is ahead.
        let web = deploy(&ds, "web", "v1", "prod1", Phase::Queued).await;
        let admin = deploy(&ds, "web-admin", "v1", "prod1", Phase::Queued).await;
        let web_next = deploy(&ds, "web", "v2", "prod1", Phase::Queued).await;
        let heads = ds.heads().await.unwrap();
        let mut head_ids = ids(&heads);
        head_ids.sort();
        let mut expected = vec![running.id.as_str(), web.id.as_str(), admin.id.as_str()];
        expected.sort();
        assert_eq!(
            head_ids, expected,
            "one head per target, 'web' and 'web-admin' apart"
        );
        assert_eq!(ds.line_len("hello", "staging").await.unwrap(), 2);
        assert_eq!(ds.line_len("web", "prod1").await.unwrap(), 2);
        assert_eq!(ds.line_len("web", "staging").await.unwrap(), 0);
        let (count, nearest) = ds.ahead_of(&queued).await.unwrap();
        assert_eq!(
            (count, nearest.map(|d| d.id)),
            (1, Some(running.id.clone()))
        );
        let (count, nearest) = ds.ahead_of(&web_next).await.unwrap();
        assert_eq!((count, nearest.map(|d| d.id)), (1, Some(web.id.clone())));
        assert_eq!(ds.ahead_of(&web).await.unwrap().0, 0);

        // Finishing leaves the queue.
        ds.update(&running.id, |d| {
            d.phase = Phase::Succeeded;
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
        assert_eq!(
            ids(&ds.unfinished().await.unwrap()),
            [&queued.id, &web.id, &admin.id, &web_next.id]
        );
        assert!(ids(&ds.heads().await.unwrap()).contains(&queued.id.as_str()));
        assert_eq!(
            ds.serving("hello", "staging")
                .await
                .unwrap()
                .unwrap()
                .version,
            "v3"
        );
    }

    #[tokio::test]
    async fn the_version_before_is_found_past_many_redeploys_of_the_current_one() {
        let ds = deployments(Db::memory());
        deploy(&ds, "hello", "v1", "staging", Phase::Succeeded).await;
        for _ in 0..70 {
            deploy(&ds, "hello", "v2", "staging", Phase::Succeeded).await;
        }
        let before = ds.served_before("hello", "staging", "v2").await.unwrap();
        assert_eq!(before.as_deref(), Some("v1"));
        assert_eq!(
            ds.served_before("hello", "staging", "v3")
                .await
                .unwrap()
                .as_deref(),
            Some("v2"),
            "a switched deployment's version is not stored as succeeded yet"
        );
        assert_eq!(
            ds.served_before("hello", "prod1", "v2").await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn history_pages_by_project_target_and_environment() {
        let ds = deployments(Db::memory());
        let mut made = Vec::new();
        for (project, environment) in [
            ("hello", "staging"),
            ("web", "staging"),
            ("hello", "prod1"),
            ("web-admin", "staging"),
            ("hello", "staging"),
        ] {
            made.push(deploy(&ds, project, "v1", environment, Phase::Succeeded).await);
        }
        let id = |i: usize| made[i].id.as_str();
        let page = |p, e, before, limit| ds.page(p, e, before, limit);
        assert_eq!(
            ids(&page(None, None, None, 2).await.unwrap()),
            [id(4), id(3)]
        );
        assert_eq!(
            ids(&page(None, None, Some(made[3].seq), 10).await.unwrap()),
            [id(2), id(1), id(0)],
            "older than a sequence number"
        );
        assert_eq!(
            ids(&page(Some("hello"), None, None, 10).await.unwrap()),
            [id(4), id(2), id(0)]
        );
        assert_eq!(
            ids(&page(Some("hello"), Some("staging"), None, 10)
                .await
                .unwrap()),
            [id(4), id(0)]
        );
        assert_eq!(
            ids(&page(None, Some("staging"), None, 3).await.unwrap()),
            [id(4), id(3), id(1)],
            "an environment across projects, 'web' and 'web-admin' apart"
        );
        assert_eq!(
            ids(&page(None, Some("staging"), Some(made[1].seq), 10)
                .await
                .unwrap()),
            [id(0)]
        );
        assert!(page(None, None, Some(0), 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_store_from_before_the_index_is_indexed_once_at_start() {
        let db = Db::memory();
        let ds = deployments(db.clone());
        // Written as an older coordinator did: the deployment alone.
        let mut old = Deployment::queued(3, &release("hello", "v1"), "staging", "ci".into(), 1, 0);
        old.phase = Phase::Succeeded;
        db.put(&old).await.unwrap();
        let mut waiting =
            Deployment::queued(4, &release("hello", "v2"), "staging", "ci".into(), 1, 0);
        waiting.phase = Phase::Queued;
        db.put(&waiting).await.unwrap();
        assert_eq!(ds.serving("hello", "staging").await.unwrap(), None);

        ds.build_index().await.unwrap();
        assert_eq!(
            ds.serving("hello", "staging").await.unwrap().unwrap().id,
            old.id
        );
        assert_eq!(ids(&ds.unfinished().await.unwrap()), [&waiting.id]);

        // Built once: a later start leaves a deleted entry deleted.
        let mut changes = Changes::default();
        changes.delete::<Indexed>(&index::at(index::UNFINISHED, 4));
        db.commit(changes).await.unwrap();
        ds.build_index().await.unwrap();
        assert!(ds.unfinished().await.unwrap().is_empty());
    }
}
