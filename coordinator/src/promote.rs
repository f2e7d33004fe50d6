//! Public records: which production cluster a project's public DNS name points at.
//!
//! A promotion is stored as `pending` before DNS is touched and marked done once
//! DNS points at the new cluster. A coordinator that dies in between finds the
//! pending record on its next start, looks at what DNS points at now, and
//! finishes the change; so does one whose DNS call failed, retrying until it
//! works. A newer promotion replaces a pending one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::audit::{About, AuditLog};
use crate::clock::Millis;
use crate::cloud::Dns;
use crate::cloud::{CloudError, load_balancer_name};
use crate::events::{Event, Events};
use crate::faults;
use crate::fleets::Fleets;
use crate::store::Db;
use crate::store::{Changes, Record, StoreError, Table};

/// Who the audit log names for a promotion finished after a restart or a retry.
pub const FINISHER: &str = "slipway (pending promotion)";

const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// The stored state of a project's public record; the previous target is kept
/// so flipping back is one command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordState {
    pub project: String,
    pub name: String,
    pub environment: String,
    pub previous_environment: Option<String>,
    pub updated_at: Millis,
    pub updated_by: String,
    /// Stored before DNS changes; false once DNS points at `environment`.
    /// Records written before promotions could be pending read as done.
    #[serde(default)]
    pub pending: bool,
}

impl Record for RecordState {
    const TABLE: Table = Table::Records;
    fn key(&self) -> String {
        self.project.clone()
    }
}

/// A promotion asked for where the environment requires an approval: it
/// happens when another deployer of that environment asks for the same one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromotionRequest {
    pub project: String,
    pub environment: String,
    pub requested_by: String,
    pub requested_at: Millis,
}

impl Record for PromotionRequest {
    const TABLE: Table = Table::PromotionRequests;
    fn key(&self) -> String {
        PromotionRequest::key_of(&self.project, &self.environment)
    }
}

impl PromotionRequest {
    pub fn key_of(project: &str, environment: &str) -> String {
        format!("{project}/{environment}")
    }
}

/// How long a promotion request waits for its approval: an approval days
/// later would approve a situation nobody remembers.
pub const REQUEST_LIFETIME: Duration = Duration::from_secs(3600);

/// What asking for a promotion that needs an approval came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asked {
    /// Another deployer had asked for the same within the hour: it goes ahead.
    Approved { requested_by: String },
    /// It waits for someone other than `requested_by` to ask for it too.
    Waiting { requested_by: String },
}

impl RecordState {
    pub fn load_balancer(&self) -> String {
        load_balancer_name(&self.project, &self.environment)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    #[error(transparent)]
    Cloud(#[from] CloudError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl crate::error::Coded for PromoteError {
    fn code(&self) -> crate::error::Code {
        match self {
            PromoteError::Cloud(e) => e.code(),
            PromoteError::Store(e) => e.code(),
        }
    }
}

/// The public records table, DNS, and the lock per project that keeps two
/// promotions of a project from interleaving.
pub struct Promotions {
    db: Db,
    dns: Arc<dyn Dns>,
    fleets: Arc<Fleets>,
    audit: Arc<AuditLog>,
    events: Arc<Events>,
    /// One lock per project, held while a promotion reads and changes its
    /// public record and DNS.
    locks: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Wakes the task that finishes pending promotions (`start_finisher`).
    pending: tokio::sync::Notify,
    /// What DNS last said of each record, and when: `status` asks DNS at most
    /// once per record in `observed::MAX_AGE`, and again after a promotion.
    endpoints: std::sync::Mutex<std::collections::HashMap<String, (Instant, Option<String>)>>,
}

impl std::fmt::Debug for Promotions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Promotions")
    }
}

impl Promotions {
    pub fn new(
        db: Db,
        dns: Arc<dyn Dns>,
        fleets: Arc<Fleets>,
        audit: Arc<AuditLog>,
        events: Arc<Events>,
    ) -> Promotions {
        Promotions {
            db,
            dns,
            fleets,
            audit,
            events,
            locks: Default::default(),
            pending: tokio::sync::Notify::new(),
            endpoints: Default::default(),
        }
    }

    /// Asks, as `who` at `now`, for `project`'s record to point at
    /// `environment` where that needs an approval: a live request of someone
    /// else's for the same is approved (and used up); otherwise the request is
    /// `who`'s, stored and told, or an earlier one of theirs kept.
    pub async fn ask(
        &self,
        project: &str,
        environment: &str,
        who: &str,
        now: Millis,
    ) -> Result<Asked, StoreError> {
        let lifetime = REQUEST_LIFETIME.as_millis() as Millis;
        let key = PromotionRequest::key_of(project, environment);
        let stored: Option<PromotionRequest> = self.db.get(&key).await?;
        let live = stored.filter(|r| now - r.requested_at < lifetime);
        let about = About {
            project: Some(project.to_string()),
            environment: Some(environment.to_string()),
            ..Default::default()
        };
        let mut changes = Changes::default();
        let (asked, told) = match live {
            Some(r) if r.requested_by != who => {
                changes.delete::<PromotionRequest>(&key);
                let said = format!(
                    "{project} → {environment}: {}'s promotion approved by {who}",
                    r.requested_by
                );
                (
                    Asked::Approved {
                        requested_by: r.requested_by,
                    },
                    Event::new("promotion.approved", said),
                )
            }
            Some(r) => {
                return Ok(Asked::Waiting {
                    requested_by: r.requested_by,
                });
            }
            None => {
                changes.put(&PromotionRequest {
                    project: project.to_string(),
                    environment: environment.to_string(),
                    requested_by: who.to_string(),
                    requested_at: now,
                })?;
                let said = format!(
                    "{project} → {environment}: promotion asked by {who}, waiting for an approval"
                );
                (
                    Asked::Waiting {
                        requested_by: who.to_string(),
                    },
                    Event::new("promotion.requested", said),
                )
            }
        };
        let told = Event {
            about,
            who: Some(who.to_string()),
            ..told
        };
        self.events.commit(changes, vec![told]).await?;
        Ok(asked)
    }

    /// Serializes promotions of `project`; other projects' go on meanwhile (a
    /// Route53 change can take minutes to be in sync).
    pub async fn lock(&self, project: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self
            .locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(project.to_string())
            .or_default()
            .clone();
        lock.lock_owned().await
    }

    /// The stored public record of `project`.
    pub async fn record(&self, project: &str) -> Result<Option<RecordState>, StoreError> {
        self.db.get(project).await
    }

    /// Where DNS sends `record`'s users, as last seen.
    pub async fn endpoint(&self, record: &str) -> Result<Option<String>, CloudError> {
        let seen = self.seen_endpoints().get(record).cloned();
        if let Some((at, endpoint)) = seen
            && at.elapsed() < crate::observed::MAX_AGE
        {
            return Ok(endpoint);
        }
        let endpoint = self.dns.endpoint(record).await?;
        self.seen_endpoints()
            .insert(record.to_string(), (Instant::now(), endpoint.clone()));
        Ok(endpoint)
    }

    fn seen_endpoints(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (Instant, Option<String>)>>
    {
        self.endpoints.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Has the finisher retry pending promotions now.
    pub fn retry_pending(&self) {
        self.pending.notify_one();
    }
}

/// Stores the decision to point the record (pending) at its environment,
/// before DNS is touched. The caller holds the project's promotion lock until
/// `carry_out` ends, so two promotions of a project never interleave.
pub async fn store_intent(
    coordinator: &Promotions,
    record: &RecordState,
) -> Result<(), StoreError> {
    debug_assert!(record.pending, "an intent is stored pending");
    let said = format!(
        "{} → {}: promotion started (asked by {})",
        record.name, record.environment, record.updated_by
    );
    store_telling(coordinator, record, "promotion.started", said).await?;
    faults::pause_at("promoting/recorded").await;
    Ok(())
}

/// Points DNS at the record's cluster and stores the record done.
pub async fn carry_out(
    coordinator: &Promotions,
    record: RecordState,
) -> Result<RecordState, PromoteError> {
    point_dns(coordinator, &record).await?;
    Ok(mark_done(coordinator, record).await?)
}

/// Points DNS at the record's cluster unless it already does. Safe to repeat:
/// a change that landed before a crash is only seen, not made again.
async fn point_dns(coordinator: &Promotions, record: &RecordState) -> Result<(), CloudError> {
    let load_balancer = record.load_balancer();
    let dns = &coordinator.dns;
    if dns.target(&record.name).await?.as_deref() != Some(load_balancer.as_str()) {
        // Whatever the answer, DNS may have changed: look again when asked.
        coordinator.seen_endpoints().remove(&record.name);
        dns.upsert(&record.name, &load_balancer).await?;
        coordinator.seen_endpoints().remove(&record.name);
        faults::pause_at("promoting/changed").await;
    }
    Ok(())
}

async fn mark_done(
    coordinator: &Promotions,
    mut record: RecordState,
) -> Result<RecordState, StoreError> {
    record.pending = false;
    let said = format!(
        "{} → {}: promotion finished, DNS points there",
        record.name, record.environment
    );
    store_telling(coordinator, &record, "promotion.finished", said).await?;
    Ok(record)
}

/// Stores `record` and its event together.
async fn store_telling(
    coordinator: &Promotions,
    record: &RecordState,
    kind: &str,
    summary: String,
) -> Result<(), StoreError> {
    let mut changes = Changes::default();
    changes.put(record)?;
    let told = Event {
        about: About {
            project: Some(record.project.clone()),
            environment: Some(record.environment.clone()),
            ..About::default()
        },
        who: Some(record.updated_by.clone()),
        ..Event::new(kind, summary)
    };
    coordinator.events.commit(changes, vec![told]).await
}

/// Starts the task that finishes pending promotions: those a crash left (at
/// once) and those whose DNS change failed (`Promotions::retry_pending`
/// wakes it), retrying with backoff until each is done or replaced.
pub fn start_finisher(coordinator: &Arc<Promotions>) -> tokio::task::JoinHandle<()> {
    let coordinator = coordinator.clone();
    tokio::spawn(async move {
        let mut wait = RETRY_FIRST;
        loop {
            let woken = coordinator.pending.notified();
            match finish_pending(&coordinator).await {
                Ok(()) => {
                    wait = RETRY_FIRST;
                    woken.await;
                }
                Err(e) => {
                    warn!(error = %e, retry_in = ?wait, "a pending promotion failed");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(RETRY_MAX);
                }
            }
        }
    })
}

/// Tries every pending promotion once; the first error, if any failed.
async fn finish_pending(coordinator: &Promotions) -> Result<(), PromoteError> {
    let mut first_error = None;
    for record in coordinator.db.all::<RecordState>().await? {
        if record.pending
            && let Err(e) = finish(coordinator, &record.project).await
        {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

async fn finish(coordinator: &Promotions, project: &str) -> Result<(), PromoteError> {
    let _one_at_a_time = coordinator.lock(project).await;
    // A newer promotion may have finished or replaced this one meanwhile.
    let Some(record) = coordinator
        .db
        .get::<RecordState>(project)
        .await?
        .filter(|r| r.pending)
    else {
        return Ok(());
    };
    if let Some(why) = outdated(coordinator, &record) {
        warn!(%project, to = %record.environment, %why, "not finishing a pending promotion: promote again");
        return Ok(());
    }
    info!(%project, to = %record.environment, "finishing a pending promotion");
    point_dns(coordinator, &record).await?;
    // Audited before it is stored done: a crash in between audits it twice
    // rather than not at all.
    let target = format!("{project} -> {}", record.environment);
    let result = format!("ok: finished the promotion {} asked for", record.updated_by);
    coordinator
        .audit
        .append_about(
            FINISHER,
            "",
            "promote",
            &target,
            &result,
            &crate::audit::About {
                project: Some(project.to_string()),
                environment: Some(record.environment.clone()),
                ..Default::default()
            },
        )
        .await?;
    mark_done(coordinator, record).await?;
    Ok(())
}

/// Why the fleet file, edited since, no longer allows this promotion.
fn outdated(coordinator: &Promotions, record: &RecordState) -> Option<String> {
    let fleet = coordinator.fleets.current().fleet;
    let Some(public) = fleet
        .project(&record.project)
        .and_then(|p| p.public.as_ref())
    else {
        return Some("the fleet file no longer gives the project a public record".into());
    };
    if public.name != record.name {
        return Some(format!(
            "the public record is now {}, not {}",
            public.name, record.name
        ));
    }
    if !public.environments.contains(&record.environment) {
        return Some(format!(
            "{} is no longer one of its environments",
            record.environment
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_stored_before_pending_existed_reads_as_done() {
        let stored = br#"{"project":"hello","name":"hello.example.com","environment":"prod2",
            "previous_environment":"prod1","updated_at":1,"updated_by":"admin"}"#;
        let record: RecordState = serde_json::from_slice(stored).unwrap();
        assert!(!record.pending);
        assert_eq!(record.load_balancer(), "slipway-hello-prod2");
    }
}
