//! What the wall screen shows: one cell per project and environment (the
//! release running there and since when, the deployment in flight and its
//! phase, how many wait behind it, lost agents, and whether something went
//! wrong), which production cluster each public record points at, and the
//! latest events.
//!
//! One task computes the board from the store and the agent hub after every
//! event (and every `REFRESH`, for what tells no event: an agent coming back)
//! and broadcasts the cells that changed; every open page gets the same
//! update, so 200 screens cost one computation. Reads come from what the
//! coordinator observed, never from the cloud.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::broadcast;
use tracing::warn;

use crate::agents::{AgentHub, AgentRecords};
use crate::clock::{Clock, Millis};
use crate::deploy::machine::Connection;
use crate::deploy::{Deployment, Phase};
use crate::deployments::Deployments;
use crate::events::{Event, Events};
use crate::fleets::Fleets;
use crate::notify::Notifier;
use crate::promote::Promotions;
use crate::queue::ReleaseQueue;
use crate::revocation::Revocations;
use crate::stopping::Stopping;
use crate::store::StoreError;

/// How often the board is recomputed when no event comes.
const REFRESH: Duration = Duration::from_secs(2);
/// Events shown at the foot of the page.
pub const RECENT: usize = 12;
/// Updates kept for pages that are behind; one further behind gets the whole board.
const UPDATES: usize = 256;

/// One project in one environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cell {
    pub project: String,
    pub environment: String,
    /// The release that last succeeded here, and when it did.
    pub release: Option<String>,
    /// The commit it was built from, where recorded.
    pub commit: Option<String>,
    pub release_since_ms: Option<Millis>,
    pub in_flight: Option<Flight>,
    /// Deployments queued behind the one in flight.
    pub queued: usize,
    /// Instances whose agent went silent.
    pub lost_agents: Vec<String>,
    /// Why the cell is red, until the next success here: a rollback, or a
    /// notification about this target that failed.
    pub alarm: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flight {
    pub id: String,
    pub version: String,
    pub phase: String,
    pub phase_since_ms: Millis,
    pub requested_at_ms: Millis,
    pub requested_by: String,
}

/// Where a project's public record points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Public {
    pub project: String,
    pub record: String,
    pub environment: Option<String>,
    pub pending: bool,
}

/// The whole board, as a page first draws it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// The newest event it reflects.
    pub seq: u64,
    pub at_ms: Millis,
    pub projects: Vec<String>,
    pub environments: Vec<String>,
    pub cells: Vec<Cell>,
    pub public: Vec<Public>,
    /// The latest events, newest last.
    pub recent: Vec<Event>,
}

/// What changed since the previous update.
#[derive(Debug, Clone, Serialize)]
pub struct Update {
    pub seq: u64,
    pub at_ms: Millis,
    pub events: Vec<Event>,
    pub cells: Vec<Cell>,
    pub public: Vec<Public>,
    /// The fleet's projects or environments changed: draw the whole board again.
    pub layout_changed: bool,
}

/// A failed notification about an event, as a cell's alarm sees it.
#[derive(Debug, Clone)]
pub struct FailedNotification {
    pub sink: String,
    pub at: Millis,
    pub event: Event,
    pub error: String,
}

/// How many deployments each target's line holds, the running one included.
pub type Lines = BTreeMap<(String, String), usize>;

/// The cells of every project in every environment: pure, from the
/// deployments (oldest first; each line's head and each target's latest
/// success and latest outcome are enough, older history changes nothing),
/// the length of each target's line, the lost agents by target and the
/// failed notifications.
pub fn cells(
    projects: &[String],
    environments: &[String],
    history: &[Deployment],
    lines: &Lines,
    lost: &BTreeMap<(String, String), Vec<String>>,
    failed: &[FailedNotification],
) -> Vec<Cell> {
    let queue = ReleaseQueue::new(history);
    // One pass over the history, not one per cell.
    let mut by_target: BTreeMap<(&str, &str), Vec<&Deployment>> = BTreeMap::new();
    for d in history {
        by_target
            .entry((d.project.as_str(), d.environment.as_str()))
            .or_default()
            .push(d);
    }
    let mut cells = Vec::new();
    for project in projects {
        for environment in environments {
            let here = by_target
                .get(&(project.as_str(), environment.as_str()))
                .map_or(&[][..], Vec::as_slice);
            let finished_at = |d: &Deployment| d.history.last().map_or(d.requested_at, |h| h.at);
            let succeeded = here.iter().rev().find(|d| d.phase == Phase::Succeeded);
            let line = queue
                .targets()
                .find(|l| l.target.project == *project && l.target.environment == *environment);
            let in_flight_here = line.is_some_and(|l| l.active.is_some());
            let in_flight = line.and_then(|l| l.active).map(|d| Flight {
                id: d.id.clone(),
                version: d.version.clone(),
                phase: d.phase.as_str().to_string(),
                phase_since_ms: finished_at(d),
                requested_at_ms: d.requested_at,
                requested_by: d.requested_by.clone(),
            });
            let last_success_at = succeeded.map(|d| finished_at(d));
            let rolled_back = here
                .iter()
                .rev()
                .find(|d| matches!(d.phase, Phase::Succeeded | Phase::RolledBack))
                .filter(|d| d.phase == Phase::RolledBack)
                .map(|d| {
                    format!(
                        "{} {} rolled back: {}",
                        d.id,
                        d.version,
                        d.reason.as_deref().unwrap_or("no reason given")
                    )
                });
            let notification = failed
                .iter()
                .filter(|f| {
                    f.event.about.project.as_deref() == Some(project)
                        && f.event.about.environment.as_deref() == Some(environment)
                        && last_success_at.is_none_or(|s| f.at > s)
                })
                .max_by_key(|f| f.at)
                .map(|f| {
                    format!(
                        "notification to {} failed ({}): {}",
                        f.sink, f.event.kind, f.error
                    )
                });
            cells.push(Cell {
                project: project.clone(),
                environment: environment.clone(),
                release: succeeded.map(|d| d.version.clone()),
                commit: succeeded.and_then(|d| d.provenance.as_ref()?.commit.clone()),
                release_since_ms: last_success_at,
                in_flight,
                // Read apart from the history: a deployment that finished
                // between the two reads is in flight here and gone from its
                // line (a coordinator taking over met it).
                queued: lines
                    .get(&(project.clone(), environment.clone()))
                    .map_or(0, |len| len.saturating_sub(usize::from(in_flight_here))),
                lost_agents: lost
                    .get(&(project.clone(), environment.clone()))
                    .cloned()
                    .unwrap_or_default(),
                alarm: rolled_back.or(notification),
            });
        }
    }
    cells
}

/// What computing the board reads.
pub struct Sources {
    pub fleets: Arc<Fleets>,
    pub deployments: Arc<Deployments>,
    pub promotions: Arc<Promotions>,
    pub notifier: Arc<Notifier>,
    pub events: Arc<Events>,
    pub agents: Arc<AgentHub>,
    pub records: AgentRecords,
    pub revocations: Arc<Revocations>,
    pub clock: Arc<dyn Clock>,
    pub stopping: Stopping,
}

/// The board as last computed, and the updates pages follow.
pub struct Board {
    sources: Sources,
    current: RwLock<Arc<Snapshot>>,
    updates: broadcast::Sender<Arc<Update>>,
}

impl std::fmt::Debug for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Board")
    }
}

impl Board {
    /// The board computed once, before any page asks.
    pub async fn open(sources: Sources) -> Result<Arc<Board>, StoreError> {
        let newest = sources.events.newest().await?;
        let first = compute(&sources, newest).await?;
        Ok(Arc::new(Board {
            sources,
            current: RwLock::new(Arc::new(first)),
            updates: broadcast::channel(UPDATES).0,
        }))
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Updates from now on. Subscribe before taking the snapshot, so none
    /// falls between the two (an update the snapshot already shows is
    /// harmless: a cell is replaced whole).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Update>> {
        self.updates.subscribe()
    }

    /// Events after `seq` (a page that reconnects tells the last it saw), at
    /// most `limit`, oldest first.
    pub async fn events_after(&self, seq: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.sources.events.after(seq, limit).await
    }

    /// Recomputes the board with `events` just told, and sends what changed.
    async fn refresh(&self, events: Vec<Event>) -> Result<(), StoreError> {
        let seq = match events.last() {
            Some(e) => e.seq,
            None => self.snapshot().seq,
        };
        let next = compute(&self.sources, seq).await?;
        let previous = self.snapshot();
        let layout_changed =
            previous.projects != next.projects || previous.environments != next.environments;
        let cells: Vec<Cell> = next
            .cells
            .iter()
            .filter(|c| !previous.cells.contains(c))
            .cloned()
            .collect();
        let public = match previous.public == next.public {
            true => vec![],
            false => next.public.clone(),
        };
        if events.is_empty() && cells.is_empty() && public.is_empty() && !layout_changed {
            return Ok(());
        }
        let update = Update {
            seq: next.seq,
            at_ms: next.at_ms,
            events,
            cells,
            public,
            layout_changed,
        };
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
        // No page listening is not an error.
        let _ = self.updates.send(Arc::new(update));
        Ok(())
    }
}

async fn compute(s: &Sources, seq: u64) -> Result<Snapshot, StoreError> {
    let fleet = s.fleets.current().fleet;
    let projects: Vec<String> = fleet.projects.keys().cloned().collect();
    let environments: Vec<String> = fleet.environments.keys().cloned().collect();
    // What the cells read, not the whole history: a bounded read per target.
    let mut history = s.deployments.heads().await?;
    let mut lines = Lines::new();
    for head in &history {
        let len = s
            .deployments
            .line_len(&head.project, &head.environment)
            .await?;
        lines.insert((head.project.clone(), head.environment.clone()), len);
    }
    for project in &projects {
        for environment in &environments {
            let serving = s.deployments.serving(project, environment).await?;
            let outcome = s.deployments.latest_outcome(project, environment).await?;
            for d in serving.into_iter().chain(outcome) {
                if !history.iter().any(|h| h.seq == d.seq) {
                    history.push(d);
                }
            }
        }
    }
    history.sort_by_key(|d| d.seq);
    let now = s.clock.now();
    let lost_after = fleet.coordinator.agent_lost_after.as_millis() as Millis;
    let mut lost: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (id, view) in s.agents.views() {
        if Connection::of(Some(&view), now, lost_after) == Connection::Lost
            && !s.revocations.is_revoked(&id)
            && let Some(record) = s.records.get(&id).await?
        {
            lost.entry((record.project, record.environment))
                .or_default()
                .push(id);
        }
    }
    let failed = failed_notifications(s).await?;
    let mut public = Vec::new();
    for (name, project) in &fleet.projects {
        if let Some(record) = &project.public {
            let stored = s.promotions.record(name).await?;
            public.push(Public {
                project: name.clone(),
                record: record.name.clone(),
                environment: stored.as_ref().map(|r| r.environment.clone()),
                pending: stored.is_some_and(|r| r.pending),
            });
        }
    }
    let newest = s.events.newest().await?;
    let recent = s
        .events
        .after(newest.saturating_sub(RECENT as u64), RECENT)
        .await?;
    Ok(Snapshot {
        seq: seq.max(recent.last().map_or(0, |e| e.seq)),
        at_ms: now,
        cells: cells(&projects, &environments, &history, &lines, &lost, &failed),
        projects,
        environments,
        public,
        recent,
    })
}

/// Notifications failing now (a sink retrying an event) and given up, with
/// the event each was about.
async fn failed_notifications(s: &Sources) -> Result<Vec<FailedNotification>, StoreError> {
    let (states, given_up) = s.notifier.states().await?;
    let mut wanted: Vec<(String, u64, Millis, String)> = Vec::new();
    for state in states.iter().filter(|st| st.attempts > 0) {
        if let Some(last) = state.recent.last().filter(|a| a.error.is_some()) {
            wanted.push((
                state.name.clone(),
                last.seq,
                last.at,
                last.error.clone().unwrap_or_default(),
            ));
        }
    }
    // `states` holds the sinks of the fleet in force; a removed sink's old
    // failures no longer colour the board.
    for u in given_up
        .iter()
        .filter(|u| states.iter().any(|st| st.name == u.sink))
    {
        wanted.push((u.sink.clone(), u.seq, u.at, u.last_error.clone()));
    }
    let mut failed = Vec::new();
    let seqs: BTreeSet<u64> = wanted.iter().map(|w| w.1).collect();
    let mut events = BTreeMap::new();
    for seq in seqs {
        // Read by its own key: a sequence number stored wrong (0, or one
        // whose event is gone) names no event rather than the next one.
        if let Some(e) = s.events.get(seq).await? {
            events.insert(seq, e);
        }
    }
    for (sink, seq, at, error) in wanted {
        if let Some(event) = events.get(&seq) {
            failed.push(FailedNotification {
                sink,
                at,
                event: event.clone(),
                error,
            });
        }
    }
    Ok(failed)
}

/// Keeps the board current for as long as the coordinator runs.
pub fn start(board: Arc<Board>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut told = board.sources.events.subscribe();
        let mut tick = tokio::time::interval(REFRESH);
        loop {
            let mut events = Vec::new();
            tokio::select! {
                got = told.recv() => match got {
                    Ok(e) => events.push((*e).clone()),
                    // Behind: the next computation reads the store anyway.
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = tick.tick() => {}
            }
            // Events told together are drawn together.
            while let Ok(e) = told.try_recv() {
                events.push((*e).clone());
            }
            if board.sources.stopping.is_asked() {
                return;
            }
            if let Err(e) = board.refresh(events).await {
                warn!(error = %e, "the dashboard could not be recomputed; retrying");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::About;
    use crate::deploy::PhaseEntry;
    use crate::release::Release;

    fn deployment(seq: u64, env: &str, version: &str, phase: Phase, at: Millis) -> Deployment {
        let release = Release {
            project: "hello".into(),
            version: version.into(),
            image_id: "ami-00000001".into(),
            registered_at: 0,
            registered_by: "ci".into(),
            owner_account: None,
            provenance: Default::default(),
        };
        let mut d = Deployment::queued(seq, &release, env, "alice".into(), 1, at);
        d.phase = phase;
        d.history.push(PhaseEntry { phase, at: at + 10 });
        if phase == Phase::RolledBack {
            d.reason = Some("booting: service web keeps exiting".into());
        }
        d
    }

    fn board(history: &[Deployment], failed: &[FailedNotification]) -> Vec<Cell> {
        let mut lost = BTreeMap::new();
        lost.insert(("hello".into(), "prod1".into()), vec!["i-1".to_string()]);
        let mut lines = Lines::new();
        for d in history.iter().filter(|d| !d.phase.is_finished()) {
            *lines
                .entry((d.project.clone(), d.environment.clone()))
                .or_default() += 1;
        }
        cells(
            &["hello".into()],
            &["prod1".into(), "staging".into()],
            history,
            &lines,
            &lost,
            failed,
        )
    }

    #[test]
    fn a_cell_shows_what_runs_what_is_in_flight_and_what_waits() {
        let history = [
            deployment(1, "staging", "v1", Phase::Succeeded, 100),
            deployment(2, "staging", "v2", Phase::Booting, 200),
            deployment(3, "staging", "v3", Phase::Queued, 300),
        ];
        let cells = board(&history, &[]);
        let staging = &cells[1];
        assert_eq!(staging.release.as_deref(), Some("v1"));
        assert_eq!(staging.release_since_ms, Some(110));
        let flight = staging.in_flight.as_ref().unwrap();
        assert_eq!(
            (flight.id.as_str(), flight.phase.as_str()),
            ("d-2", "booting")
        );
        assert_eq!(flight.phase_since_ms, 210);
        assert_eq!(staging.queued, 1);
        assert_eq!(staging.alarm, None);
        assert_eq!(cells[0].release, None);
        assert_eq!(cells[0].lost_agents, vec!["i-1".to_string()]);
    }

    #[test]
    fn a_deployment_that_finished_between_the_two_reads_waits_for_nothing() {
        let history = [deployment(1, "staging", "v1", Phase::Retiring, 100)];
        let lines = Lines::from([(("hello".to_string(), "staging".to_string()), 0)]);
        let cells = cells(
            &["hello".into()],
            &["staging".into()],
            &history,
            &lines,
            &BTreeMap::new(),
            &[],
        );
        assert_eq!(cells[0].queued, 0);
        assert!(cells[0].in_flight.is_some());
    }

    #[test]
    fn a_rollback_is_red_until_the_next_success_and_a_cancel_does_not_clear_it() {
        let mut history = vec![
            deployment(1, "prod1", "v1", Phase::Succeeded, 100),
            deployment(2, "prod1", "v2", Phase::RolledBack, 200),
            deployment(3, "prod1", "v3", Phase::Cancelled, 300),
        ];
        let alarm = board(&history, &[])[0].alarm.clone().unwrap();
        assert!(alarm.starts_with("d-2 v2 rolled back: booting"), "{alarm}");
        history.push(deployment(4, "prod1", "v3", Phase::Succeeded, 400));
        assert_eq!(board(&history, &[])[0].alarm, None);
    }

    #[test]
    fn a_failed_notification_about_a_target_is_red_until_its_next_success() {
        let event = |env: &str| Event {
            about: About {
                project: Some("hello".into()),
                environment: Some(env.into()),
                ..About::default()
            },
            ..Event::new("deployment.succeeded", "hello v1 → staging succeeded")
        };
        let failed = [FailedNotification {
            sink: "chat".into(),
            at: 150,
            event: event("staging"),
            error: "answered 500".into(),
        }];
        let mut history = vec![deployment(1, "staging", "v1", Phase::Succeeded, 100)];
        let cells = board(&history, &failed);
        assert_eq!(
            cells[1].alarm.as_deref(),
            Some("notification to chat failed (deployment.succeeded): answered 500")
        );
        assert_eq!(cells[0].alarm, None, "another target stays calm");
        history.push(deployment(2, "staging", "v2", Phase::Succeeded, 200));
        assert_eq!(board(&history, &failed)[1].alarm, None);
    }
}
