//! Retention: the store grows with every deployment, event, delivery, fleet
//! file and retried request. What is older than `[coordinator] keep` (90 days
//! by default) is compacted here, hourly, and the counts of what went are kept
//! (`Compacted`). Never dropped: the audit log (each compaction is an entry
//! in it, so the chain anchors it), the newest event (the numbering goes on
//! from it), events a notification has not dealt with yet, the fleet in
//! force and any fleet a deployment in progress runs with, deployments not
//! finished, and each target's latest success and latest outcome (what
//! serves, and the board's alarm). A finished deployment that goes keeps its
//! `succeeded/` and `release/` index entries, a few bytes each: rollbacks
//! read the versions that served before, and gates whether a release ever
//! succeeded somewhere.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::deploy::Deployment;
use crate::deploy::index::{self, Indexed};
use crate::events::Event;
use crate::fleets::TakenFleet;
use crate::notify::{SinkState, Undelivered};
use crate::requests::Requests;
use crate::store::{Changes, Db, Range, Record, StoreError, Table};

/// Entries read, and deleted in one batch, at a time.
const PAGE: usize = 500;
const TOTALS: &str = "totals";

/// What compactions removed, in all, and when the last one ran.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compacted {
    pub key: String,
    #[serde(default)]
    pub deployments: u64,
    pub events: u64,
    pub undelivered: u64,
    pub fleets: u64,
    pub requests: u64,
    pub last_at: Millis,
}

impl Record for Compacted {
    const TABLE: Table = Table::Retention;
    fn key(&self) -> String {
        self.key.clone()
    }
}

/// What one compaction removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    pub deployments: u64,
    pub events: u64,
    pub undelivered: u64,
    pub fleets: u64,
    pub requests: u64,
}

impl Removed {
    pub fn total(&self) -> u64 {
        self.deployments + self.events + self.undelivered + self.fleets + self.requests
    }
}

impl std::fmt::Display for Removed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} deployments, {} events, {} undelivered notifications, {} fleet files, {} request answers",
            self.deployments, self.events, self.undelivered, self.fleets, self.requests
        )
    }
}

/// Removes what is older than `keep` at `now`; adds it to the totals.
pub async fn compact(
    db: &Db,
    requests: &Requests,
    unfinished: &[Deployment],
    now: Millis,
    keep: Duration,
) -> Result<Removed, StoreError> {
    let cutoff = now.saturating_sub(keep.as_millis() as Millis);
    let removed = Removed {
        deployments: deployments(db, cutoff).await?,
        events: events(db, cutoff).await?,
        undelivered: delete_where(db, |u: &Undelivered| u.at < cutoff, |_, _| {}).await?,
        fleets: fleets(db, unfinished, cutoff).await?,
        requests: requests.forget_old().await?,
    };
    let mut totals = db.get::<Compacted>(TOTALS).await?.unwrap_or_default();
    totals.key = TOTALS.into();
    totals.deployments += removed.deployments;
    totals.events += removed.events;
    totals.undelivered += removed.undelivered;
    totals.fleets += removed.fleets;
    totals.requests += removed.requests;
    totals.last_at = now;
    db.put(&totals).await?;
    Ok(removed)
}

/// The totals so far, if a compaction ever ran.
pub async fn totals(db: &Db) -> Result<Option<Compacted>, StoreError> {
    db.get(TOTALS).await
}

/// Finished deployments older than `cutoff`, but each target's latest
/// success and latest outcome; with their index entries, but those rollbacks
/// and gates read.
async fn deployments(db: &Db, cutoff: Millis) -> Result<u64, StoreError> {
    let mut kept = BTreeSet::new();
    for prefix in ["succeeded/", "outcome/"] {
        // Per target, its newest entry: keys end in the zero-padded seq.
        let mut newest: BTreeMap<String, Indexed> = BTreeMap::new();
        for entry in db.range::<Indexed>(Range::prefix(prefix)).await? {
            let target = entry
                .key
                .rsplit_once('/')
                .map_or("", |(t, _)| t)
                .to_string();
            newest.insert(target, entry);
        }
        kept.extend(newest.into_values().map(|e| e.id));
    }
    let stays = |key: &str| key.starts_with("succeeded/") || key.starts_with("release/");
    let old = |d: &Deployment| {
        let ended = d.history.last().map_or(d.requested_at, |h| h.at);
        d.phase.is_finished() && ended < cutoff && !kept.contains(&d.id)
    };
    delete_where(db, old, |changes, d: &Deployment| {
        for entry in index::entries(d).iter().filter(|e| !stays(&e.key)) {
            changes.delete::<Indexed>(&entry.key);
        }
    })
    .await
}

/// Old events every notification has dealt with; never the newest.
async fn events(db: &Db, cutoff: Millis) -> Result<u64, StoreError> {
    let dealt_with = db
        .all::<SinkState>()
        .await?
        .iter()
        .map(|s| s.cursor)
        .min()
        .unwrap_or(u64::MAX);
    let newest = db
        .range::<Event>(Range::all().newest_first().limit(1))
        .await?
        .pop()
        .map_or(0, |e| e.seq);
    let mut removed = 0;
    loop {
        let page = db.range::<Event>(Range::all().limit(PAGE)).await?;
        let old: Vec<&Event> = page
            .iter()
            .take_while(|e| e.at < cutoff && e.seq <= dealt_with && e.seq < newest)
            .collect();
        if old.is_empty() {
            return Ok(removed);
        }
        let mut changes = Changes::default();
        for event in &old {
            changes.delete::<Event>(&event.key());
        }
        removed += old.len() as u64;
        db.commit(changes).await?;
        if old.len() < page.len() || page.len() < PAGE {
            return Ok(removed);
        }
    }
}

/// Old fleet files but the one in force and those deployments in progress run.
async fn fleets(db: &Db, unfinished: &[Deployment], cutoff: Millis) -> Result<u64, StoreError> {
    let in_force = db
        .range::<TakenFleet>(Range::all().newest_first().limit(1))
        .await?
        .pop()
        .map_or(0, |f| f.generation);
    let running: Vec<u64> = unfinished
        .iter()
        .filter_map(|d| d.fleet_generation)
        .collect();
    let old = |f: &TakenFleet| {
        f.at < cutoff && f.generation != in_force && !running.contains(&f.generation)
    };
    delete_where(db, old, |_, _| {}).await
}

/// Deletes every `T` that `old` picks, a page at a time, with what `also`
/// adds to the same batch for each (a deployment's index entries).
async fn delete_where<T: Record>(
    db: &Db,
    old: impl Fn(&T) -> bool,
    also: impl Fn(&mut Changes, &T),
) -> Result<u64, StoreError> {
    let mut removed = 0;
    let mut after: Option<String> = None;
    loop {
        let range = match &after {
            Some(key) => Range::all().from(key.clone()).limit(PAGE + 1),
            None => Range::all().limit(PAGE),
        };
        let page: Vec<T> = db
            .range::<T>(range)
            .await?
            .into_iter()
            .filter(|r| Some(r.key()) != after)
            .collect();
        let Some(last) = page.last() else {
            return Ok(removed);
        };
        after = Some(last.key());
        let mut changes = Changes::default();
        for record in page.iter().filter(|r| old(r)) {
            changes.delete::<T>(&record.key());
            also(&mut changes, record);
            removed += 1;
        }
        db.commit(changes).await?;
    }
}

/// How often compaction runs (and once at each start).
const EVERY: Duration = Duration::from_secs(3600);

/// What the hourly compaction needs.
pub struct Retention {
    pub db: Db,
    pub clock: std::sync::Arc<dyn crate::clock::Clock>,
    pub requests: std::sync::Arc<Requests>,
    pub deployments: std::sync::Arc<crate::deployments::Deployments>,
    pub audit: std::sync::Arc<crate::audit::AuditLog>,
    pub fleets: std::sync::Arc<crate::fleets::Fleets>,
}

impl Retention {
    /// One compaction, audited when it removed anything.
    pub async fn run_once(&self) -> Result<Removed, StoreError> {
        // `[coordinator]` changes only at a start.
        let keep = self.fleets.current().fleet.coordinator.keep;
        let unfinished = self.deployments.unfinished().await?;
        let now = self.clock.now();
        let removed = compact(&self.db, &self.requests, &unfinished, now, keep).await?;
        if removed.total() > 0 {
            tracing::info!(%removed, "store compacted");
            self.audit
                .append_about(
                    "slipway (retention)",
                    "",
                    "compact",
                    &format!("older than {}", humantime::format_duration(keep)),
                    &format!("removed {removed}"),
                    &crate::audit::About::default(),
                )
                .await?;
        }
        Ok(removed)
    }
}

/// Compacts now and every hour after, until the process ends.
pub fn start(retention: std::sync::Arc<Retention>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(e) = retention.run_once().await {
                tracing::warn!(error = %e, "compaction failed; it runs again in an hour");
            }
            tokio::time::sleep(EVERY).await;
        }
    })
}
