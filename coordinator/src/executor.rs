//! Performs the state machine's actions against the cloud and the agents.
//!
//! Each tick: reload the deployment, observe the world, ask `machine` for the next
//! action, store the decision, then carry it out. Every cloud mutation is
//! idempotent (launches carry a client token per slot), so a resumed deployment
//! simply runs the same loop again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use slipway_common::user_data::UserData;
use slipway_domain::agent::{Closing, Configuration, MigrationCommand};
use tracing::{Instrument, error, info, info_span, warn};

use crate::agents::AgentHub;
use crate::agents::{AgentRecord, AgentRecords};
use crate::clock::Clock;
use crate::clock::Millis;
use crate::cloud::Cloud;
use crate::cloud::{CloudError, Instance, LaunchRequest, Placement, load_balancer_name, tags};
use crate::config::Fleet;
use crate::deploy::machine::{
    Action, InstanceState, Limits, MigrationFacts, MigrationLimits, Observed, next_action,
};
use crate::deploy::{Deployment, LaunchedInstance, MigrationOutcome, MigrationRun, Phase};
use crate::deployments::Deployments;
use crate::faults;
use crate::fleets::{Fleets, Generation};
use crate::migrations::{MigrationDone, Migrations};
use crate::revocation::Revocations;
use crate::secrets::Secrets;
use crate::stopping::Stopping;
use crate::store::Changes;
use crate::tokens::JoinTokens;

/// What a launch tells the agent about the coordinator: where it is and how to
/// recognise it (the CA certificate, never its key).
#[derive(Debug, Clone)]
pub struct LaunchTemplate {
    /// `https://host:port`.
    pub coordinator: String,
    /// The other coordinators on the same store, which agents try in turn.
    pub other_coordinators: Vec<String>,
    pub server_name: String,
    /// The CA that signs when the instance launches: a launch during a CA
    /// rotation carries the new one.
    pub ca: Arc<crate::pki::Ca>,
}

/// What carrying out deployments takes, and nothing more.
pub struct Executor {
    pub deployments: Arc<Deployments>,
    pub migrations: Arc<Migrations>,
    pub agents: Arc<AgentHub>,
    pub tokens: Arc<JoinTokens>,
    pub secrets: Arc<Secrets>,
    /// Terminated instances' agents are revoked.
    pub revocations: Arc<Revocations>,
    pub cloud: Cloud,
    /// Told of every step that may have changed a target's load balancer.
    pub observer: Arc<crate::observed::Observer>,
    /// The fleet each deployment started with.
    pub fleets: Arc<Fleets>,
    pub launch: LaunchTemplate,
    pub clock: Arc<dyn Clock>,
    pub stopping: Stopping,
    /// When this process started (wall clock, as phases are stamped).
    pub started_at: Millis,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Executor")
    }
}

/// Longest pause between ticks when nothing wakes the executor.
const TICK: Duration = Duration::from_millis(500);
/// Pause after a failed cloud call before retrying.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Drives deployment `id` until it is finished or a stop is asked for.
pub async fn run(coordinator: Arc<Executor>, id: &str) {
    let span = info_span!("deployment", deployment_id = %id);
    async {
        loop {
            // A graceful stop lets the step in progress finish (its outcome is
            // stored) and starts no other; a restart resumes from the store.
            if coordinator.stopping.is_asked() {
                info!("stopped between steps");
                return;
            }
            let notified = coordinator.agents.changed.notified();
            let pause = match tick(&coordinator, id).await {
                Ok(Step::Finished) => {
                    if coordinator.stopping.is_asked() {
                        info!("stopped between steps: the last one finished the deployment");
                    }
                    return;
                }
                Ok(Step::Continue) => continue,
                Ok(Step::Wait) => TICK,
                Err(e) => {
                    error!(error = %e, "deployment step failed; retrying");
                    coordinator
                        .deployments
                        .set_waiting_on(id, Some(format!("retrying after: {e}")));
                    RETRY_PAUSE
                }
            };
            tokio::select! {
                _ = tokio::time::timeout(pause, notified) => {}
                _ = coordinator.stopping.asked() => {}
            }
        }
    }
    .instrument(span)
    .await
}

/// How a tick ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// It acted (or lost a race): decide again at once.
    Continue,
    /// Nothing to do until something changes.
    Wait,
    /// The deployment is finished.
    Finished,
}

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Cloud(#[from] CloudError),
    #[error("deployment vanished from the store")]
    Vanished,
    /// Someone else (a cancel) changed the deployment since this tick read it.
    #[error("deployment changed underneath; re-reading it")]
    Conflict,
}

/// Reads the deployment, observes, decides and acts once. A failed step is
/// retried by the caller; what it stored stays.
pub async fn tick(c: &Executor, id: &str) -> Result<Step, StepError> {
    let mut d = c.deployments.get(id).await?.ok_or(StepError::Vanished)?;
    if d.phase.is_finished() {
        return Ok(Step::Finished);
    }
    // The fleet it started with (the one in force while queued).
    let fleet = c.fleets.generation(d.fleet_generation).await;
    let Some(project) = fleet.fleet.project(&d.project) else {
        let reason = format!("project {} left the fleet file", d.project);
        enter(c, &mut d, Phase::RollingBack, Some(reason)).await?;
        return Ok(Step::Continue);
    };
    let limits = Limits {
        keep_previous: fleet
            .fleet
            .environments
            .get(&d.environment)
            .map(|e| e.keep_previous)
            .unwrap_or_default(),
        deadlines: project.deadlines,
        agent_lost_after: fleet.fleet.coordinator.agent_lost_after,
        migration: fleet
            .fleet
            .migration_of(&d.project, &d.environment)
            .map(|(m, _)| MigrationLimits {
                timeout: m.timeout,
                lock_wait: m.lock_wait,
            }),
    };
    let result = step(c, &mut d, &limits, &fleet).await;
    match result {
        Ok(step) => Ok(step),
        Err(StepError::Conflict) => Ok(Step::Continue),
        // A refused cloud request will be refused again, and a cloud that stays
        // unreachable past the phase's deadline will not come back in time: roll
        // back with its message while the old instances still serve. Past the point
        // of no return, and while rolling back, keep retrying.
        Err(StepError::Cloud(e)) if rolls_back(&d, &e, &limits, c.clock.now()) => {
            let reason = format!("{} failed: {e}", d.phase);
            enter(c, &mut d, Phase::RollingBack, Some(reason)).await?;
            Ok(Step::Continue)
        }
        // Cleanup that the cloud keeps refusing past its deadline ends anyway, so
        // no deployment stays in progress forever; the reason says what is left.
        Err(StepError::Cloud(e)) if let Some(end) = cleanup_end(&d, &limits, c.clock.now()) => {
            let note = format!(
                "{} gave up after {}: {e}; {} may be left: check by hand",
                d.phase,
                humantime::format_duration(limits.deadlines.cleanup),
                cleaned_up(&d).join(", ")
            );
            let reason = with_note(&d, &note);
            warn!(%reason, "giving up on cleanup");
            enter(c, &mut d, end, Some(reason)).await?;
            Ok(Step::Finished)
        }
        Err(e) => Err(e),
    }
}

/// The phase a cleanup phase ends in once it is past its deadline.
fn cleanup_end(d: &Deployment, limits: &Limits, now: Millis) -> Option<Phase> {
    let end = match d.phase {
        Phase::Draining | Phase::Retiring => Phase::Succeeded,
        Phase::RollingBack => Phase::RolledBack,
        _ => return None,
    };
    let overdue = d.overdue(now, limits.deadlines.cleanup);
    overdue.then_some(end)
}

/// The instances a cleanup phase deregisters and terminates.
fn cleaned_up(d: &Deployment) -> Vec<String> {
    match d.phase {
        Phase::RollingBack => d.new_instance_ids(),
        _ => d.old_instances.clone(),
    }
}

/// The deployment's reason (why it rolled back, say) with `note` added.
fn with_note(d: &Deployment, note: &str) -> String {
    match &d.reason {
        Some(reason) => format!("{reason}; {note}"),
        None => note.to_string(),
    }
}

fn rolls_back(d: &Deployment, e: &CloudError, limits: &Limits, now: Millis) -> bool {
    if d.phase.is_past_point_of_no_return()
        || d.phase == Phase::RollingBack
        || d.phase.is_finished()
    {
        return false;
    }
    let overdue = limits
        .deadline(d.phase)
        .is_some_and(|deadline| d.overdue(now, deadline));
    !e.is_retryable() || overdue
}

/// Observes, decides and acts once.
async fn step(
    c: &Executor,
    d: &mut Deployment,
    limits: &Limits,
    fleet: &Generation,
) -> Result<Step, StepError> {
    let id = d.id.clone();
    let id = id.as_str();
    let observed = observe(c, &mut *d).await?;
    let action = next_action(d, &observed, limits);
    let lb = load_balancer_name(&d.project, &d.environment);
    let phase = d.phase;
    let result = match &action {
        Action::Wait(what) => {
            c.deployments.set_waiting_on(id, Some(what.clone()));
            return Ok(Step::Wait);
        }
        Action::Advance(Phase::Draining) => switch(c, d, &observed, limits, &lb).await,
        Action::Advance(phase) => {
            // Leaving the queue, it takes the fleet in force for good.
            let generation = fleet.number;
            enter_with(c, d, *phase, None, |fresh, _| {
                fresh.fleet_generation.get_or_insert(generation);
            })
            .await?;
            faults::point(d.phase, "entered").await;
            Ok(())
        }
        Action::Finish { phase, note } => {
            let reason = note.as_ref().map(|note| with_note(d, note));
            enter(c, d, *phase, reason).await?;
            // A lock a finished deployment still holds counts as free anyway
            // (`migration_facts`); this only tidies the table.
            if let Some(run) = &d.migration {
                c.migrations.release(&run.store, &d.id).await?;
            }
            info!(phase = %phase, reason = d.reason.as_deref().unwrap_or(""), "deployment finished");
            faults::point(*phase, "entered").await;
            return Ok(Step::Finished);
        }
        Action::RollBack { reason } => {
            warn!(%reason, "rolling back");
            enter(c, d, Phase::RollingBack, Some(reason.clone())).await
        }
        Action::BeginAttach { old } => {
            let old = old.clone();
            enter_with(c, d, Phase::Attaching, None, |fresh, _| {
                fresh.old_instances = old
            })
            .await
        }
        Action::BeginMigration => {
            let store = fleet
                .fleet
                .migration_of(&d.project, &d.environment)
                .map(|(_, store)| store.to_string())
                .unwrap_or_default();
            enter_with(c, d, Phase::Migrating, None, |fresh, _| {
                fresh.migration = Some(MigrationRun::of(&store))
            })
            .await
        }
        Action::LockMigration => lock_migration(c, d, &observed.migration).await,
        Action::StartMigration { instance } => start_migration(c, d, instance, &fleet.fleet).await,
        Action::EndMigration { outcome, output } => {
            end_migration(c, d, outcome.clone(), output.clone()).await
        }
        Action::Launch { slots } => launch(c, d, slots, &fleet.fleet).await,
        Action::Configure { instances } => {
            configure(c, d, instances, &fleet.fleet).await;
            Ok(())
        }
        Action::Register { instances } => {
            c.cloud.load_balancer.register(&lb, instances).await?;
            faults::point(phase, "registered").await;
            // Switch at once if the balancer already has them in service: every
            // moment both releases serve, a user can see v2 and then v1 again.
            let mut now = observed.clone();
            now.members = c.cloud.load_balancer.members(&lb).await?;
            if next_action(d, &now, limits) == Action::Advance(Phase::Draining) {
                switch(c, d, &now, limits, &lb).await?;
            }
            Ok(())
        }
        Action::Deregister { instances } => deregister(c, d, &lb, instances).await,
        Action::Terminate { instances } => terminate(c, instances).await,
    };
    // Launched, registered, deregistered or terminated (or half of it):
    // operators' reads look at the target again.
    c.observer.changed(&lb);
    result?;
    match action {
        Action::RollBack { .. } | Action::BeginAttach { .. } | Action::BeginMigration => {
            faults::point(d.phase, "entered").await
        }
        Action::Configure { .. } => faults::point(phase, "configured").await,
        Action::Deregister { .. } => faults::point(phase, "deregistered").await,
        Action::Terminate { .. } => faults::point(phase, "terminated").await,
        _ => {}
    }
    Ok(Step::Continue)
}

/// New instances serve: store `draining`, then take the old instances out of the
/// load balancer in the same step, as the machine decides on `observed`.
async fn switch(
    c: &Executor,
    d: &mut Deployment,
    observed: &Observed,
    limits: &Limits,
    lb: &str,
) -> Result<(), StepError> {
    // One write for both: every moment between storing draining and the
    // deregistration, old and new releases both serve. The drain starts at the
    // phase's own entry time: one read later, a clock tick would make it look
    // older than the phase, and the machine would skip the drain.
    enter_with(c, d, Phase::Draining, None, |fresh, at| {
        fresh.drain_from = Some(at)
    })
    .await?;
    faults::point(d.phase, "entered").await;
    if let Action::Deregister { instances } = next_action(d, observed, limits) {
        c.cloud.load_balancer.deregister(lb, &instances).await?;
        faults::point(d.phase, "deregistered").await;
    }
    Ok(())
}

/// Who the revocations of terminated instances name.
pub const TERMINATOR: &str = "slipway (instance terminated)";

/// Ends `instances` and their agents' identities: an identity ends with its
/// instance, so a key copied off it is worth nothing afterwards. Revoked
/// first: a crash between the two repeats the termination, and the revocation
/// is already stored.
async fn terminate(c: &Executor, instances: &[String]) -> Result<(), StepError> {
    for id in instances {
        c.revocations.revoke(id, TERMINATOR).await?;
        c.agents.kick(id, Closing::Revoked { name: id.clone() });
    }
    c.cloud.compute.terminate(instances).await?;
    Ok(())
}

/// Stores when the drain of `instances` starts, then takes them out of the
/// load balancer.
async fn deregister(
    c: &Executor,
    d: &mut Deployment,
    lb: &str,
    instances: &[String],
) -> Result<(), StepError> {
    let now = c.clock.now();
    let stored = c
        .deployments
        .update(&d.id, |fresh| {
            fresh.drain_from = Some(now);
            Ok::<_, StepError>(())
        })
        .await?;
    *d = stored.ok_or(StepError::Vanished)?.0;
    c.cloud.load_balancer.deregister(lb, instances).await?;
    Ok(())
}

/// Moves the deployment to `phase`, on its freshest stored state.
async fn enter(
    c: &Executor,
    d: &mut Deployment,
    phase: Phase,
    reason: Option<String>,
) -> Result<(), StepError> {
    enter_with(c, d, phase, reason, |_, _| {}).await
}

/// As `enter`, applying `also` in the same stored change; `also` is given the
/// phase's entry time. Refuses (Conflict) if the stored phase is no longer the
/// one this tick decided from.
async fn enter_with(
    c: &Executor,
    d: &mut Deployment,
    phase: Phase,
    reason: Option<String>,
    also: impl FnOnce(&mut Deployment, Millis),
) -> Result<(), StepError> {
    let from = d.phase;
    let at = c.clock.now();
    let stored = c
        .deployments
        .update(&d.id, |fresh| {
            // A rollback asked for since this tick read it (watching ends,
            // say, as someone asks to go back): decide again, or it is lost.
            if fresh.phase != from || fresh.rollback_requested_by != d.rollback_requested_by {
                return Err(StepError::Conflict);
            }
            if reason.is_some() {
                fresh.reason = reason;
            }
            also(fresh, at);
            fresh.enter(phase, at);
            Ok(())
        })
        .await?;
    *d = stored.ok_or(StepError::Vanished)?.0;
    info!(phase = %phase, "phase");
    c.deployments.set_waiting_on(&d.id, None);
    Ok(())
}

async fn observe(c: &Executor, d: &mut Deployment) -> Result<Observed, StepError> {
    // Only a launch can make an instance the store does not know yet (the process
    // died between the cloud's answer and the write); adopt it before deciding, so
    // it is neither launched twice nor left behind by a rollback.
    if d.launch_attempted && matches!(d.phase, Phase::Launching | Phase::RollingBack) {
        adopt_unrecorded(c, d).await?;
    }
    let new = d.new_instance_ids();
    let mut ids: Vec<String> = new.iter().chain(&d.old_instances).cloned().collect();
    ids.dedup();
    let mut instances: BTreeMap<String, InstanceState> = ids
        .iter()
        .map(|id| (id.clone(), InstanceState::Gone))
        .collect();
    if !ids.is_empty() {
        for instance in c.cloud.compute.describe(&ids).await? {
            instances.insert(instance.id, instance.state);
        }
    }
    let agents = new
        .iter()
        .filter_map(|id| c.agents.view(id).map(|view| (id.clone(), view)))
        .collect();
    // Read with the agents' views: read after the load balancer call, agents
    // would look silent for as long as that call took.
    let now = c.clock.now();
    // Before the first launch nothing of this deployment can be in the load
    // balancer, and a missing one is caught by the launch itself.
    let members = if d.launched.is_empty() {
        BTreeMap::new()
    } else {
        c.cloud
            .load_balancer
            .members(&load_balancer_name(&d.project, &d.environment))
            .await?
    };
    Ok(Observed {
        now,
        instances,
        agents,
        members,
        drains_visible: c.cloud.load_balancer.reports_draining(),
        coordinator_started: c.started_at,
        migration: migration_facts(c, d).await?,
    })
}

/// While migrating: who holds the store's lock, and whether this release's
/// migration already ran there. A finished deployment's lock is free (it
/// may have ended between finishing and letting go).
async fn migration_facts(c: &Executor, d: &Deployment) -> Result<MigrationFacts, StepError> {
    let Some(run) = d.migration.as_ref().filter(|_| d.phase == Phase::Migrating) else {
        return Ok(MigrationFacts::default());
    };
    let mut lock_holder = c.migrations.holder(&run.store).await?;
    if let Some(holder) = lock_holder.as_deref()
        && holder != d.id
        && c.deployments
            .get(holder)
            .await?
            .is_none_or(|h| h.phase.is_finished())
    {
        lock_holder = None;
    }
    Ok(MigrationFacts {
        lock_holder,
        ran_in: c
            .migrations
            .ran_in(&run.store, &d.project, &d.version)
            .await?,
    })
}

/// Takes the store's lock (or learns who holds it); a finished holder's lock
/// (which `facts`, as observed this tick, counts as free) is taken over.
async fn lock_migration(
    c: &Executor,
    d: &Deployment,
    facts: &MigrationFacts,
) -> Result<(), StepError> {
    let Some(run) = &d.migration else {
        return Ok(());
    };
    if facts.lock_holder.is_none() {
        c.migrations.release_stale(&run.store, &d.id).await?;
    }
    let holder = c.migrations.lock(&run.store, &d.id, c.clock.now()).await?;
    info!(store = %run.store, %holder, "migration lock");
    Ok(())
}

/// Stores where the migration runs before sending it, so it is never sent
/// twice, even across a restart; then sends it to that instance's agent.
async fn start_migration(
    c: &Executor,
    d: &mut Deployment,
    instance: &str,
    fleet: &Fleet,
) -> Result<(), StepError> {
    let Some((migration, store)) = fleet.migration_of(&d.project, &d.environment) else {
        return Ok(());
    };
    let run_id = format!("{}/{store}", d.id);
    let now = c.clock.now();
    let stored = c
        .deployments
        .update(&d.id, |fresh| {
            let run = fresh.migration.as_mut().ok_or(StepError::Conflict)?;
            if fresh.phase != Phase::Migrating || run.run_id.is_some() {
                return Err(StepError::Conflict);
            }
            run.run_id = Some(run_id.clone());
            run.instance = Some(instance.to_string());
            run.started_at = Some(now);
            Ok(())
        })
        .await?;
    *d = stored.ok_or(StepError::Vanished)?.0;
    faults::point(Phase::Migrating, "stored").await;
    let command = MigrationCommand {
        run_id,
        command: migration.command.clone(),
        args: migration.args.clone(),
        timeout: migration.timeout,
    };
    if !c.agents.send_migration(instance, &command) {
        // Never handed to any stream: safe to forget, and choose again.
        warn!(%instance, "the agent's stream closed before the migration was sent; choosing again");
        let stored = c
            .deployments
            .update(&d.id, |fresh| {
                if let Some(run) = fresh.migration.as_mut() {
                    run.run_id = None;
                    run.instance = None;
                    run.started_at = None;
                }
                Ok::<_, StepError>(())
            })
            .await?;
        *d = stored.ok_or(StepError::Vanished)?.0;
        return Ok(());
    }
    info!(%instance, %store, "migration started");
    faults::point(Phase::Migrating, "sent").await;
    Ok(())
}

/// Stores how the migration ended, with its output, in one batch with the
/// record that it ran (if it succeeded) and the release of the store's lock.
async fn end_migration(
    c: &Executor,
    d: &mut Deployment,
    outcome: MigrationOutcome,
    output: Vec<String>,
) -> Result<(), StepError> {
    let Some(run) = d.migration.clone() else {
        return Ok(());
    };
    let done = (outcome == MigrationOutcome::Succeeded).then(|| MigrationDone {
        store: run.store.clone(),
        project: d.project.clone(),
        version: d.version.clone(),
        deployment: d.id.clone(),
        at: c.clock.now(),
    });
    let mut changes = Changes::default();
    c.migrations
        .end(&mut changes, &run.store, &d.id, done)
        .await?;
    let stored = c
        .deployments
        .update_with(&d.id, changes, |fresh| {
            let run = fresh.migration.as_mut().ok_or(StepError::Conflict)?;
            if fresh.phase != Phase::Migrating || run.outcome.is_some() {
                return Err(StepError::Conflict);
            }
            run.outcome = Some(outcome.clone());
            run.output = output;
            Ok(())
        })
        .await?;
    *d = stored.ok_or(StepError::Vanished)?.0;
    match &outcome {
        MigrationOutcome::Failed { reason } => warn!(%reason, "migration failed"),
        MigrationOutcome::Skipped { ran_in } => {
            info!(store = %run.store, %ran_in, "migration already ran; not run again")
        }
        MigrationOutcome::Succeeded => info!(store = %run.store, "migration succeeded"),
    }
    faults::point(Phase::Migrating, "ended").await;
    Ok(())
}

/// Records instances that carry this deployment's tag but are not in its stored
/// list. One that duplicates a recorded slot never served: it is terminated.
/// Project, environment and release must match too: after a store restored
/// from an older backup, this id may have been an old deployment's, whose
/// instances (serving, maybe) are orphans to list, never to adopt or terminate.
async fn adopt_unrecorded(c: &Executor, d: &mut Deployment) -> Result<(), StepError> {
    let tags = BTreeMap::from([
        (tags::DEPLOYMENT.to_string(), d.id.clone()),
        (tags::PROJECT.to_string(), d.project.clone()),
        (tags::ENV.to_string(), d.environment.clone()),
        (
            tags::RELEASE.to_string(),
            format!("{}@{}", d.project, d.version),
        ),
    ]);
    let found = c.cloud.compute.find_instances(&tags).await?;
    for instance in found {
        if d.launched.iter().any(|i| i.id == instance.id) {
            continue;
        }
        let slot = instance
            .tags
            .get(tags::SLOT)
            .and_then(|s| s.parse::<u32>().ok());
        match slot {
            Some(slot) if slot < d.desired && !d.launched.iter().any(|i| i.slot == slot) => {
                warn!(instance = %instance.id, slot, "adopting an instance launched before a restart");
                record_launched(c, d, slot, &instance).await?;
            }
            _ => {
                warn!(instance = %instance.id, ?slot, "terminating an unrecorded duplicate instance");
                terminate(c, std::slice::from_ref(&instance.id)).await?;
            }
        }
    }
    Ok(())
}

async fn launch(
    c: &Executor,
    d: &mut Deployment,
    slots: &[u32],
    fleet: &Fleet,
) -> Result<(), StepError> {
    let lb = load_balancer_name(&d.project, &d.environment);
    if d.launched.is_empty() && c.cloud.load_balancer.describe(&lb).await?.is_none() {
        // Nothing launched yet: fail before making instances that could never serve.
        return Err(StepError::Cloud(CloudError::NotFound(format!(
            "load balancer {lb} does not exist: create it with `slipway infra apply`"
        ))));
    }
    if !d.launch_attempted {
        let stored = c
            .deployments
            .update(&d.id, |fresh| {
                fresh.launch_attempted = true;
                Ok::<_, StepError>(())
            })
            .await?;
        *d = stored.ok_or(StepError::Vanished)?.0;
    }
    let aws = fleet
        .environments
        .get(&d.environment)
        .map(|e| e.aws.clone())
        .unwrap_or_default();
    for &slot in slots {
        let token = c.tokens.issue(&d.id, slot).await?;
        let user_data = UserData {
            coordinator: c.launch.coordinator.clone(),
            server_name: c.launch.server_name.clone(),
            ca_pem: c.launch.ca.cert_pem(),
            ca_fingerprint: c.launch.ca.fingerprint(),
            join_token: token,
            other_coordinators: c.launch.other_coordinators.clone(),
        };
        let tags = BTreeMap::from([
            (
                tags::NAME.to_string(),
                format!("{}-{}-{}", d.project, d.environment, d.version),
            ),
            (tags::PROJECT.to_string(), d.project.clone()),
            (tags::ENV.to_string(), d.environment.clone()),
            (tags::DEPLOYMENT.to_string(), d.id.clone()),
            (tags::SLOT.to_string(), slot.to_string()),
            (
                tags::RELEASE.to_string(),
                format!("{}@{}", d.project, d.version),
            ),
        ]);
        let instance = c
            .cloud
            .compute
            .launch(LaunchRequest {
                image_id: d.image_id.clone(),
                // Same deployment and slot: the cloud returns the instance it already made.
                client_token: format!("{}-slot-{slot}", d.id),
                user_data: user_data.to_toml(),
                tags,
                placement: Placement {
                    instance_type: aws.instance_type.clone(),
                    // Spread over the environment's subnets (and so its zones).
                    subnet: (!aws.subnets.is_empty())
                        .then(|| aws.subnets[slot as usize % aws.subnets.len()].clone()),
                    security_groups: aws.security_groups.clone(),
                    instance_profile: aws.instance_profile.clone(),
                },
            })
            .await?;
        faults::point(d.phase, "launched").await;
        record_launched(c, d, slot, &instance).await?;
        info!(instance = %instance.id, slot, ip = %instance.private_ip, "launched");
    }
    Ok(())
}

/// Stores that `instance` fills `slot`, in one batch: its join token may now be
/// redeemed, its agent has a record, and the deployment owns it (a rollback
/// terminates it). A crash before the batch leaves none of it: the next tick
/// adopts the instance by its tags.
async fn record_launched(
    c: &Executor,
    d: &mut Deployment,
    slot: u32,
    instance: &Instance,
) -> Result<(), StepError> {
    let mut changes = Changes::default();
    c.tokens
        .bind(&mut changes, &d.id, slot, &instance.id)
        .await?;
    AgentRecords::record(
        &mut changes,
        &AgentRecord {
            instance_id: instance.id.clone(),
            project: d.project.clone(),
            environment: d.environment.clone(),
            deployment_id: d.id.clone(),
            image_id: instance.image_id.clone(),
            private_ip: instance.private_ip.clone(),
            launched_at: c.clock.now(),
        },
    )?;
    let launched = LaunchedInstance {
        slot,
        id: instance.id.clone(),
    };
    let stored = c
        .deployments
        .update_with(&d.id, changes, |fresh| {
            if !fresh.launched.iter().any(|i| i.slot == slot) {
                fresh.launched.push(launched);
            }
            Ok::<_, StepError>(())
        })
        .await?;
    *d = stored.ok_or(StepError::Vanished)?.0;
    Ok(())
}

async fn configure(c: &Executor, d: &Deployment, instances: &[String], fleet: &Fleet) {
    let stores: Vec<&str> = fleet
        .data_stores_of(&d.project, &d.environment)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let secrets = match c.secrets.reveal(&d.environment, &d.project, &stores).await {
        Ok(secrets) => secrets,
        Err(e) => {
            warn!(error = %e, "cannot read the deployment's secrets; will retry");
            return;
        }
    };
    let secret_names: Vec<String> = secrets.keys().cloned().collect();
    let Some(configuration) = Configuration::for_deployment(fleet, d, secrets) else {
        return;
    };
    // What it pushes, kept with the deployment (masked) before the first push.
    if d.config.is_none() {
        let pushed = c.secrets.pushed(&configuration.variables, &secret_names);
        let stored = c
            .deployments
            .update(&d.id, |fresh| {
                fresh.config.get_or_insert(pushed);
                Ok::<_, StepError>(())
            })
            .await;
        if let Err(e) = stored {
            warn!(error = %e, "cannot store the configuration; will retry");
            return;
        }
    }
    for id in instances {
        if !c.agents.send_config(id, &configuration) {
            warn!(instance = %id, "could not send configuration; will retry");
        }
    }
}
