//! The deploy state machine: a pure function from a stored deployment and what was
//! just observed of the world to the one next action. No I/O here, so every path
//! (including every rollback) is unit-tested.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Deployment, MigrationOutcome, Phase};
use crate::clock::Millis;
use crate::config::Deadlines;
use crate::service::{MigrationState, ServiceState};

/// How long after a coordinator start its agents may take to be back: they
/// redial with backoff of at most 5 s, jittered up to 7.5 s, plus the
/// handshake. Until then a missing agent says nothing about its instance.
pub const REDIAL_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// What the cloud says about an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceState {
    Pending,
    Running,
    /// Terminated, or unknown to the cloud.
    Gone,
}

/// A load balancer's view of one registered instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    InService,
    OutOfService,
    /// Deregistered, finishing `connections` open connections.
    Draining {
        connections: u32,
    },
}

/// The coordinator's live view of one agent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentView {
    pub connected: bool,
    pub last_seen: Millis,
    /// The highest configuration version sent on the current stream.
    pub config_sent: u64,
    /// The configuration version its services were started with.
    pub config_applied: u64,
    pub services_running: bool,
    /// Set when a service keeps exiting.
    pub failing_service: Option<String>,
    pub ready: bool,
    pub ready_detail: String,
    /// Whether `ready` was reported on the current stream (it follows the
    /// hello, so for a moment after a reconnect it is not).
    pub reported: bool,
    /// Restarts per service, as last reported.
    pub restarts: BTreeMap<String, u32>,
    /// The services as last reported, for operators.
    pub services: Vec<ServiceState>,
    /// The migration runs it knows, as last reported.
    pub migrations: Vec<MigrationState>,
    /// Whether it reported its migration runs on the current stream.
    pub migrations_reported: bool,
    /// The migration runs sent down the current stream: the agent gets them
    /// (a stream is ordered), so one it does not list yet is on its way. A
    /// run it does not list and that this stream never carried, it never got.
    pub migrations_sent: Vec<String>,
}

/// An agent's connection as operators see it: the one answer `status` and
/// `agents` both give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// Streaming, and heard from within `agent_lost_after`.
    Connected,
    /// Disconnected, or silent longer than `agent_lost_after` (a frozen
    /// process keeps its stream open).
    Lost,
    /// Not seen since the coordinator started.
    Never,
}

impl Connection {
    pub fn of(view: Option<&AgentView>, now: Millis, lost_after: Millis) -> Connection {
        match view {
            Some(v) if v.connected && now - v.last_seen <= lost_after => Connection::Connected,
            Some(_) => Connection::Lost,
            None => Connection::Never,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Connection::Connected => "connected",
            Connection::Lost => "lost",
            Connection::Never => "never",
        }
    }
}

/// Everything the machine needs to know about the world, gathered by the executor.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub now: Millis,
    /// New and old instances of this deployment, by id.
    pub instances: BTreeMap<String, InstanceState>,
    pub agents: BTreeMap<String, AgentView>,
    /// The environment's load balancer membership, by instance id.
    pub members: BTreeMap<String, MemberState>,
    /// Whether `members` shows deregistered instances still draining, with
    /// their open connections (the local cloud does; classic ELB does not).
    pub drains_visible: bool,
    /// When the coordinator process started.
    pub coordinator_started: Millis,
    /// The deployment's data store, while migrating.
    pub migration: MigrationFacts,
}

/// What the store says about the data store a deployment migrates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationFacts {
    /// The deployment holding the store's migration lock.
    pub lock_holder: Option<String>,
    /// The deployment that already ran this release's migration on the store.
    pub ran_in: Option<String>,
}

/// The limits a deployment runs under.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub deadlines: Deadlines,
    pub agent_lost_after: Duration,
    /// Set when the project migrates a data store before attaching.
    pub migration: Option<MigrationLimits>,
    /// How long the old instances stay on standby while the new ones are
    /// watched (the environment's `keep_previous`); zero skips watching.
    pub keep_previous: Duration,
}

/// How long a migration may run, and wait for another's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationLimits {
    pub timeout: Duration,
    pub lock_wait: Duration,
}

/// Past a migration's timeout, how long the coordinator still waits for its
/// agent to report the end (the agent kills the command at the timeout).
pub const MIGRATION_REPORT_GRACE: Duration = Duration::from_secs(30);

impl Limits {
    /// How long `phase` may last; None for phases that must run to their end.
    pub fn deadline(&self, phase: Phase) -> Option<Duration> {
        let d = &self.deadlines;
        match phase {
            Phase::Launching => Some(d.launch),
            Phase::Booting => Some(d.boot),
            Phase::Configuring => Some(d.configure),
            Phase::Ready => Some(d.ready),
            Phase::Attaching => Some(d.attach),
            _ => None,
        }
    }
}

/// The one next thing to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do until the world changes; the text says on what it waits.
    Wait(String),
    Advance(Phase),
    Launch {
        slots: Vec<u32>,
    },
    /// Push the environment's configuration and start the services.
    Configure {
        instances: Vec<String>,
    },
    /// Ready: record what the load balancer serves now, then attach.
    BeginAttach {
        old: Vec<String>,
    },
    /// Ready, with a migration to run first: enter `migrating`.
    BeginMigration,
    /// Take the data store's migration lock.
    LockMigration,
    /// Store that the migration runs on `instance`, then send it there.
    StartMigration {
        instance: String,
    },
    /// Store how the migration ended (and free the lock).
    EndMigration {
        outcome: MigrationOutcome,
        output: Vec<String>,
    },
    Register {
        instances: Vec<String>,
    },
    Deregister {
        instances: Vec<String>,
    },
    Terminate {
        instances: Vec<String>,
    },
    RollBack {
        reason: String,
    },
    /// Done; with a note when cleanup was given up on.
    Finish {
        phase: Phase,
        note: Option<String>,
    },
}

pub fn next_action(d: &Deployment, o: &Observed, limits: &Limits) -> Action {
    let new = d.new_instance_ids();
    match d.phase {
        Phase::Queued => Action::Advance(Phase::Launching),
        Phase::Succeeded | Phase::RolledBack | Phase::Cancelled => Action::Wait("finished".into()),
        Phase::Launching
        | Phase::Booting
        | Phase::Configuring
        | Phase::Ready
        | Phase::Migrating
        | Phase::Attaching => {
            if let Some(by) = &d.cancel_requested_by {
                return Action::RollBack {
                    reason: format!("cancelled by {by}"),
                };
            }
            if let Some(reason) = failed_instance(d, o, limits) {
                return Action::RollBack { reason };
            }
            let action = progress(d, o, &new, limits);
            if let (Action::Wait(waiting), Some(deadline)) = (&action, limits.deadline(d.phase))
                && past_deadline(d, o, deadline)
            {
                return Action::RollBack {
                    reason: format!(
                        "{} did not finish within {}: {waiting}",
                        d.phase,
                        humantime::format_duration(deadline)
                    ),
                };
            }
            action
        }
        Phase::Draining => {
            let to_deregister = filter(&d.old_instances, |id| {
                matches!(
                    o.members.get(id),
                    Some(MemberState::InService | MemberState::OutOfService)
                )
            });
            if !to_deregister.is_empty() {
                return Action::Deregister {
                    instances: to_deregister,
                };
            }
            match wait_for_drain(d, o, limits, &d.old_instances) {
                Some(waiting) => Action::Wait(waiting),
                // A replacement's old instances are lost ones: nothing to go back to.
                None if !limits.keep_previous.is_zero() && d.replaces.is_empty() => {
                    Action::Advance(Phase::Watching)
                }
                None => Action::Advance(Phase::Retiring),
            }
        }
        Phase::Watching => watching(d, o, &new, limits),
        Phase::Retiring => {
            let alive = filter(&d.old_instances, |id| is_alive(o, id));
            if let Some(note) = cleanup_overdue(d, o, limits, &alive, "terminate them") {
                return Action::Finish {
                    phase: Phase::Succeeded,
                    note: Some(note),
                };
            }
            if alive.is_empty() {
                Action::Finish {
                    phase: Phase::Succeeded,
                    note: None,
                }
            } else {
                Action::Terminate { instances: alive }
            }
        }
        Phase::RollingBack => {
            let registered = filter(&new, |id| {
                matches!(
                    o.members.get(id),
                    Some(MemberState::InService | MemberState::OutOfService)
                )
            });
            let left: Vec<String> = filter(&new, |id| is_alive(o, id) || registered.contains(id));
            if let Some(note) =
                cleanup_overdue(d, o, limits, &left, "deregister and terminate them")
            {
                return Action::Finish {
                    phase: Phase::RolledBack,
                    note: Some(note),
                };
            }
            if d.watched()
                && let Some(restoring) = restore_standby(d, o)
            {
                return restoring;
            }
            if !registered.is_empty() {
                return Action::Deregister {
                    instances: registered,
                };
            }
            if let Some(waiting) = wait_for_drain(d, o, limits, &new) {
                return Action::Wait(waiting);
            }
            let alive = filter(&new, |id| is_alive(o, id));
            if alive.is_empty() {
                Action::Finish {
                    phase: Phase::RolledBack,
                    note: None,
                }
            } else {
                Action::Terminate { instances: alive }
            }
        }
    }
}

/// Watching: the new instances serve, the old ones wait on standby. A
/// rollback asked for, or a new instance failing, goes back to the standby;
/// the window's end retires them.
fn watching(d: &Deployment, o: &Observed, new: &[String], limits: &Limits) -> Action {
    let standby = filter(&d.old_instances, |id| is_alive(o, id));
    let trouble = match &d.rollback_requested_by {
        Some(by) => Some(format!("rolled back by {by} while watching")),
        None => unwell(d, o, new, limits).map(|why| format!("{why} while watching")),
    };
    if let Some(reason) = &trouble
        && !standby.is_empty()
    {
        return Action::RollBack {
            reason: reason.clone(),
        };
    }
    let window = limits.keep_previous.as_millis() as Millis;
    let left = window - (o.now - d.entered_at());
    if left <= 0 {
        return Action::Advance(Phase::Retiring);
    }
    Action::Wait(match trouble {
        // Going back would leave nothing serving.
        Some(reason) => format!("{reason}, but no standby instance is left to go back to"),
        None => format!(
            "watching {} for {:.0}s more; standby: {}",
            new.join(", "),
            left as f64 / 1000.0,
            standby.join(", ")
        ),
    })
}

/// Why a serving new instance is failing: gone, agent lost, a service that
/// keeps exiting, its health check failing, or out of the load balancer's service.
fn unwell(d: &Deployment, o: &Observed, new: &[String], limits: &Limits) -> Option<String> {
    if let Some(reason) = failed_instance(d, o, limits) {
        return Some(reason);
    }
    new.iter().find_map(|id| {
        let agent = o.agents.get(id);
        if let Some(a) = agent.filter(|a| a.reported && !a.ready) {
            let detail = match a.ready_detail.as_str() {
                "" => String::new(),
                detail => format!(" ({detail})"),
            };
            return Some(format!("instance {id} failed its health check{detail}"));
        }
        (o.members.get(id) == Some(&MemberState::OutOfService))
            .then(|| format!("the load balancer took instance {id} out of service"))
    })
}

/// Rolling back from watching: the standby instances back in the load
/// balancer and in service before any new one leaves it, so no request finds
/// it empty. None once they are (or none is left alive).
fn restore_standby(d: &Deployment, o: &Observed) -> Option<Action> {
    let standby = filter(&d.old_instances, |id| is_alive(o, id));
    let detached = filter(&standby, |id| {
        !matches!(
            o.members.get(id),
            Some(MemberState::InService | MemberState::OutOfService)
        )
    });
    if !detached.is_empty() {
        return Some(Action::Register {
            instances: detached,
        });
    }
    let out = filter(&standby, |id| {
        o.members.get(id) != Some(&MemberState::InService)
    });
    (!out.is_empty()).then(|| {
        Action::Wait(format!(
            "waiting for the load balancer to put standby {} back in service",
            out.join(", ")
        ))
    })
}

/// Whether the phase has run past `deadline`. The deadline counts from the
/// stored phase entry, downtime included; so a phase an earlier coordinator
/// process entered is not past it while agents may still be redialling this
/// one: until every new instance's agent is back, for at most `REDIAL_GRACE`.
/// Otherwise a restart after a long outage would roll back deploys whose
/// instances are fine but whose agents had not reconnected yet.
fn past_deadline(d: &Deployment, o: &Observed, deadline: Duration) -> bool {
    let resumed = d.entered_at() < o.coordinator_started;
    let all_back = d
        .new_instance_ids()
        .iter()
        .all(|id| o.agents.get(id).is_some_and(|a| a.connected && a.reported));
    let redialling =
        !all_back && o.now - o.coordinator_started < REDIAL_GRACE.as_millis() as Millis;
    d.overdue(o.now, deadline) && !(resumed && redialling)
}

/// Why `deregistered` may still be finishing open connections, or None once
/// they are done, the drain timeout has passed, or this phase took nothing out
/// of the load balancer. A load balancer that does not report draining
/// (classic ELB) gets the whole timeout; as it counts from the stored
/// `drain_from`, a restarted coordinator waits only what is left of it.
fn wait_for_drain(
    d: &Deployment,
    o: &Observed,
    limits: &Limits,
    deregistered: &[String],
) -> Option<String> {
    // A drain_from older than this phase belongs to an earlier one.
    let from = d.drain_from.filter(|at| *at >= d.entered_at())?;
    let drain_for = limits.deadlines.drain.as_millis() as Millis;
    // Clamped: a clock that stepped back must not lengthen the drain.
    let left = (drain_for - (o.now - from)).min(drain_for);
    if deregistered.is_empty() || left <= 0 {
        return None;
    }
    if !o.drains_visible {
        return Some(format!(
            "giving {} {:.1}s more to finish open connections (the load balancer does not report them)",
            deregistered.join(", "),
            left as f64 / 1000.0
        ));
    }
    let busy = filter(
        deregistered,
        |id| matches!(o.members.get(id), Some(MemberState::Draining { connections }) if *connections > 0),
    );
    (!busy.is_empty())
        .then(|| format!("waiting for {} to finish open connections", busy.join(", ")))
}

/// Cleanup past its deadline with instances still left: what to tell operators.
pub fn cleanup_overdue(
    d: &Deployment,
    o: &Observed,
    limits: &Limits,
    left: &[String],
    what_to_do: &str,
) -> Option<String> {
    let overdue = d.overdue(o.now, limits.deadlines.cleanup);
    (overdue && !left.is_empty()).then(|| {
        format!(
            "{} did not finish within {}: {} left; {what_to_do} by hand",
            d.phase,
            humantime::format_duration(limits.deadlines.cleanup),
            left.join(", ")
        )
    })
}

/// What the load balancer serves that this deployment replaces.
fn serving_before(d: &Deployment, o: &Observed, new: &[String]) -> Vec<String> {
    o.members
        .keys()
        .filter(|id| !new.contains(id))
        .filter(|id| d.replaces.is_empty() || d.replaces.contains(id))
        .cloned()
        .collect()
}

/// Migrating: once per release and data store, on one new instance, under the
/// store's lock, before any new instance takes traffic.
fn migrating(d: &Deployment, o: &Observed, new: &[String], limits: &Limits) -> Action {
    let (Some(run), Some(m)) = (&d.migration, limits.migration) else {
        // The project stopped migrating since this deployment started.
        return Action::BeginAttach {
            old: serving_before(d, o, new),
        };
    };
    match &run.outcome {
        Some(MigrationOutcome::Failed { reason }) => {
            return Action::RollBack {
                reason: reason.clone(),
            };
        }
        Some(_) => {
            return Action::BeginAttach {
                old: serving_before(d, o, new),
            };
        }
        None => {}
    }
    let store = &run.store;
    let (Some(run_id), Some(instance), Some(started_at)) =
        (&run.run_id, &run.instance, run.started_at)
    else {
        // Not started: whoever ran it first for this release, it is not run again.
        if let Some(ran_in) = &o.migration.ran_in {
            return Action::EndMigration {
                outcome: MigrationOutcome::Skipped {
                    ran_in: ran_in.clone(),
                },
                output: Vec::new(),
            };
        }
        let waiting = match &o.migration.lock_holder {
            None => return Action::LockMigration,
            Some(holder) if *holder != d.id => {
                format!("waiting for {holder}'s migration of {store}")
            }
            // On an instance whose agent listens now and has said what it
            // runs (an agent too old to report migrations never does).
            Some(_) => match new.iter().find(|id| {
                o.agents
                    .get(*id)
                    .is_some_and(|a| a.connected && a.migrations_reported)
            }) {
                Some(instance) => {
                    return Action::StartMigration {
                        instance: instance.clone(),
                    };
                }
                None => format!(
                    "waiting for an agent of {} to migrate {store} on",
                    new.join(", ")
                ),
            },
        };
        // Either wait has the lock's deadline, not the migration's timeout.
        return if past_deadline(d, o, m.lock_wait) {
            Action::RollBack {
                reason: format!(
                    "migrating did not start within {} (lock_wait): {waiting}",
                    humantime::format_duration(m.lock_wait)
                ),
            }
        } else {
            Action::Wait(waiting)
        };
    };
    let overdue = o.now - started_at > (m.timeout + MIGRATION_REPORT_GRACE).as_millis() as Millis;
    let failed = |why: String, output: Vec<String>| Action::EndMigration {
        outcome: MigrationOutcome::Failed {
            reason: format!(
                "the migration of {store} on {instance} {why}{}",
                tail(&output)
            ),
        },
        output,
    };
    let view = o.agents.get(instance);
    match view.and_then(|v| v.migrations.iter().find(|r| &r.run_id == run_id)) {
        Some(state) if state.finished && state.succeeded => Action::EndMigration {
            outcome: MigrationOutcome::Succeeded,
            output: state.output.clone(),
        },
        Some(state) if state.finished => {
            failed(format!("failed ({})", state.detail), state.output.clone())
        }
        Some(state) if overdue => failed(
            format!(
                "did not end within its timeout of {}",
                humantime::format_duration(m.timeout)
            ),
            state.output.clone(),
        ),
        Some(state) => Action::Wait(format!(
            "migrating {store} on {instance}{}",
            state
                .output
                .last()
                .map(|line| format!(": {line}"))
                .unwrap_or_default()
        )),
        None if view.is_some_and(|v| {
            v.connected && v.migrations_reported && !v.migrations_sent.contains(run_id)
        }) =>
        {
            failed(
                "never started: its agent does not know the run (the coordinator stopped before sending it); treated as failed, not run again".into(),
                Vec::new(),
            )
        }
        None if overdue => failed(
            "was never reported by its agent; treated as failed".into(),
            Vec::new(),
        ),
        None => Action::Wait(format!(
            "waiting for {instance}'s agent to report the migration of {store}"
        )),
    }
}

/// The last lines of a migration's output, for a reason.
fn tail(output: &[String]) -> String {
    let last: Vec<&str> = output
        .iter()
        .rev()
        .take(5)
        .rev()
        .map(String::as_str)
        .collect();
    if last.is_empty() {
        String::new()
    } else {
        format!("; output ends: {}", last.join(" | "))
    }
}

/// The step within a phase that is still before the point of no return.
fn progress(d: &Deployment, o: &Observed, new: &[String], limits: &Limits) -> Action {
    match d.phase {
        Phase::Launching => {
            let slots: Vec<u32> = (0..d.desired)
                .filter(|slot| !d.launched.iter().any(|i| i.slot == *slot))
                .collect();
            if slots.is_empty() {
                Action::Advance(Phase::Booting)
            } else {
                Action::Launch { slots }
            }
        }
        Phase::Booting => {
            let silent = filter(new, |id| !o.agents.contains_key(id));
            if silent.is_empty() {
                Action::Advance(Phase::Configuring)
            } else {
                Action::Wait(format!(
                    "waiting for the agents of {} to connect",
                    silent.join(", ")
                ))
            }
        }
        Phase::Configuring => {
            let version = d.config_version();
            let unsent = filter(new, |id| {
                o.agents
                    .get(id)
                    .is_some_and(|a| a.connected && a.config_sent < version)
            });
            if !unsent.is_empty() {
                return Action::Configure { instances: unsent };
            }
            let starting = filter(new, |id| {
                o.agents
                    .get(id)
                    .is_none_or(|a| a.config_applied != version || !a.services_running)
            });
            if starting.is_empty() {
                Action::Advance(Phase::Ready)
            } else {
                Action::Wait(format!(
                    "waiting for {} to start its services",
                    starting.join(", ")
                ))
            }
        }
        Phase::Ready => {
            let unready: Vec<String> = new
                .iter()
                .filter_map(|id| match o.agents.get(id) {
                    Some(a) if a.ready => None,
                    Some(a) if !a.ready_detail.is_empty() => {
                        Some(format!("{id} ({})", a.ready_detail))
                    }
                    _ => Some(id.clone()),
                })
                .collect();
            if unready.is_empty() && limits.migration.is_some() {
                Action::BeginMigration
            } else if unready.is_empty() {
                Action::BeginAttach {
                    old: serving_before(d, o, new),
                }
            } else {
                Action::Wait(format!(
                    "waiting for health checks to pass on {}",
                    unready.join(", ")
                ))
            }
        }
        Phase::Migrating => migrating(d, o, new, limits),
        Phase::Attaching => {
            let unregistered = filter(new, |id| !o.members.contains_key(id));
            if !unregistered.is_empty() {
                return Action::Register {
                    instances: unregistered,
                };
            }
            let out = filter(new, |id| o.members.get(id) != Some(&MemberState::InService));
            if out.is_empty() && d.old_instances.is_empty() {
                // A first deploy: nothing to drain or retire, so none is shown.
                Action::Finish {
                    phase: Phase::Succeeded,
                    note: None,
                }
            } else if out.is_empty() {
                Action::Advance(Phase::Draining)
            } else {
                Action::Wait(format!(
                    "waiting for the load balancer to put {} in service",
                    out.join(", ")
                ))
            }
        }
        _ => Action::Wait(format!("no progress step for {}", d.phase)),
    }
}

/// A new instance that can no longer become ready: gone from the cloud, agent
/// silent past the limit, or a service that keeps exiting.
fn failed_instance(d: &Deployment, o: &Observed, limits: &Limits) -> Option<String> {
    let lost_after = limits.agent_lost_after.as_millis() as Millis;
    for id in d.new_instance_ids() {
        if o.instances.get(&id) == Some(&InstanceState::Gone) {
            return Some(format!("instance {id} terminated outside the deployment"));
        }
        if let Some(agent) = o.agents.get(&id) {
            let silent = o.now - agent.last_seen;
            if silent > lost_after {
                let how = if agent.connected {
                    "stopped heartbeating"
                } else {
                    "disconnected"
                };
                return Some(format!(
                    "instance {id} lost: its agent {how} {:.1}s ago",
                    silent as f64 / 1000.0
                ));
            }
            if let Some(service) = &agent.failing_service {
                return Some(format!("instance {id}: {service}"));
            }
        }
    }
    None
}

fn is_alive(o: &Observed, id: &str) -> bool {
    !matches!(o.instances.get(id), Some(InstanceState::Gone) | None)
}

fn filter(ids: &[String], keep: impl Fn(&String) -> bool) -> Vec<String> {
    ids.iter().filter(|id| keep(id)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::{MigrationRun, PhaseEntry};

    const T0: Millis = 1_000_000;

    fn limits() -> Limits {
        Limits {
            keep_previous: Duration::ZERO,
            deadlines: Deadlines::default(),
            agent_lost_after: Duration::from_secs(5),
            migration: None,
        }
    }

    fn migrating_limits() -> Limits {
        Limits {
            migration: Some(MigrationLimits {
                timeout: Duration::from_secs(60),
                lock_wait: Duration::from_secs(600),
            }),
            ..limits()
        }
    }

    /// `d-7` migrating `hello-db`, its instance `i-a` ready.
    fn migrating(run: impl FnOnce(&mut MigrationRun)) -> Deployment {
        let mut d = deployment(Phase::Migrating, &["i-a"]);
        let mut m = MigrationRun::of("hello-db");
        run(&mut m);
        d.migration = Some(m);
        d
    }

    fn started(m: &mut MigrationRun) {
        m.run_id = Some("d-7/hello-db".into());
        m.instance = Some("i-a".into());
        m.started_at = Some(T0);
    }

    #[test]
    fn ready_with_a_migration_goes_to_migrating_not_attaching() {
        let d = deployment(Phase::Ready, &["i-a"]);
        let o = observed(&[("i-a", agent(true))], &[]);
        assert_eq!(
            next_action(&d, &o, &migrating_limits()),
            Action::BeginMigration
        );
        assert!(matches!(
            next_action(&d, &o, &limits()),
            Action::BeginAttach { .. }
        ));
    }

    #[test]
    fn a_migration_takes_the_lock_then_runs_on_one_instance() {
        let mut d = migrating(|_| {});
        d.launched.push(crate::deploy::LaunchedInstance {
            slot: 1,
            id: "i-b".into(),
        });
        let mut silent = agent(true);
        silent.migrations_reported = false;
        let mut o = observed(&[("i-a", silent), ("i-b", agent(true))], &[]);
        assert_eq!(
            next_action(&d, &o, &migrating_limits()),
            Action::LockMigration
        );
        o.migration.lock_holder = Some("d-7".into());
        assert_eq!(
            next_action(&d, &o, &migrating_limits()),
            Action::StartMigration {
                instance: "i-b".into()
            },
            "on an agent that has said what it runs"
        );
    }

    #[test]
    fn another_deployments_lock_is_waited_for_and_then_its_run_is_not_repeated() {
        let d = migrating(|_| {});
        let mut o = observed(&[("i-a", agent(true))], &[]);
        o.migration.lock_holder = Some("d-5".into());
        assert_eq!(
            next_action(&d, &o, &migrating_limits()),
            Action::Wait("waiting for d-5's migration of hello-db".into())
        );
        o.migration.lock_holder = None;
        o.migration.ran_in = Some("d-5".into());
        assert_eq!(
            next_action(&d, &o, &migrating_limits()),
            Action::EndMigration {
                outcome: MigrationOutcome::Skipped {
                    ran_in: "d-5".into()
                },
                output: vec![]
            }
        );
        // The wait has a deadline of its own.
        let mut fresh = agent(true);
        fresh.last_seen = T0 + 601_000;
        let mut o = observed(&[("i-a", fresh)], &[]);
        o.migration.lock_holder = Some("d-5".into());
        o.now = T0 + 601_000;
        assert!(matches!(
            next_action(&d, &o, &migrating_limits()),
            Action::RollBack { reason } if reason.contains("lock_wait")
        ));
    }

    #[test]
    fn an_agent_that_never_reports_migrations_is_given_up_on_at_lock_wait() {
        let d = migrating(|_| {});
        let mut old = agent(true);
        old.migrations_reported = false;
        let mut o = observed(&[("i-a", old.clone())], &[]);
        o.migration.lock_holder = Some("d-7".into());
        assert!(matches!(
            next_action(&d, &o, &migrating_limits()),
            Action::Wait(w) if w.contains("waiting for an agent of i-a")
        ));
        old.last_seen = T0 + 601_000;
        let mut o = observed(&[("i-a", old)], &[]);
        o.migration.lock_holder = Some("d-7".into());
        o.now = T0 + 601_000;
        assert!(matches!(
            next_action(&d, &o, &migrating_limits()),
            Action::RollBack { reason } if reason.contains("lock_wait")
        ));
    }

    #[test]
    fn a_finished_run_ends_the_migration_with_its_output() {
        let d = migrating(started);
        let mut a = agent(true);
        a.migrations_reported = true;
        a.migrations = vec![MigrationState {
            run_id: "d-7/hello-db".into(),
            finished: true,
            succeeded: false,
            detail: "exit status: 3".into(),
            output: vec!["adding column".into(), "ERROR: column exists".into()],
        }];
        let o = observed(&[("i-a", a.clone())], &[]);
        let Action::EndMigration {
            outcome: MigrationOutcome::Failed { reason },
            output,
        } = next_action(&d, &o, &migrating_limits())
        else {
            panic!("not a failed end");
        };
        assert!(
            reason.contains("exit status: 3") && reason.contains("ERROR: column exists"),
            "{reason}"
        );
        assert_eq!(output.len(), 2);
        a.migrations[0].succeeded = true;
        let o = observed(&[("i-a", a)], &[]);
        assert!(matches!(
            next_action(&d, &o, &migrating_limits()),
            Action::EndMigration {
                outcome: MigrationOutcome::Succeeded,
                ..
            }
        ));
    }

    #[test]
    fn a_run_its_agent_never_got_is_failed_not_sent_again() {
        let d = migrating(started);
        let mut a = agent(true);
        a.migrations_reported = true;
        let o = observed(&[("i-a", a.clone())], &[]);
        assert!(matches!(
            next_action(&d, &o, &migrating_limits()),
            Action::EndMigration { outcome: MigrationOutcome::Failed { reason }, .. } if reason.contains("never started")
        ));
        // Sent down this stream and not listed yet: on its way, so it waits.
        a.migrations_sent = vec!["d-7/hello-db".into()];
        let o = observed(&[("i-a", a.clone())], &[]);
        assert!(matches!(
            next_action(&d, &o, &migrating_limits()),
            Action::Wait(w) if w.contains("to report the migration")
        ));
        // Before the agent has reported (just reconnected), it waits.
        a.migrations_sent.clear();
        a.migrations_reported = false;
        let o = observed(&[("i-a", a)], &[]);
        assert!(matches!(
            next_action(&d, &o, &migrating_limits()),
            Action::Wait(w) if w.contains("to report the migration")
        ));
    }

    #[test]
    fn a_running_migration_shows_its_last_line_until_its_timeout() {
        let d = migrating(started);
        let mut a = agent(true);
        a.migrations_reported = true;
        a.migrations = vec![MigrationState {
            run_id: "d-7/hello-db".into(),
            output: vec!["copying rows: 40%".into()],
            ..MigrationState::default()
        }];
        a.last_seen = T0 + 91_000;
        let mut o = observed(&[("i-a", a)], &[]);
        assert_eq!(
            next_action(&d, &o, &migrating_limits()),
            Action::Wait("migrating hello-db on i-a: copying rows: 40%".into())
        );
        o.now = T0 + 91_000;
        assert!(matches!(
            next_action(&d, &o, &migrating_limits()),
            Action::EndMigration { outcome: MigrationOutcome::Failed { reason }, .. } if reason.contains("timeout")
        ));
    }

    #[test]
    fn an_ended_migration_attaches_or_rolls_back() {
        let o = observed(&[("i-a", agent(true))], &[]);
        let done = migrating(|m| m.outcome = Some(MigrationOutcome::Succeeded));
        assert!(matches!(
            next_action(&done, &o, &migrating_limits()),
            Action::BeginAttach { .. }
        ));
        let failed = migrating(|m| {
            m.outcome = Some(MigrationOutcome::Failed {
                reason: "exit status: 3".into(),
            })
        });
        assert_eq!(
            next_action(&failed, &o, &migrating_limits()),
            Action::RollBack {
                reason: "exit status: 3".into()
            }
        );
    }

    fn deployment(phase: Phase, launched: &[&str]) -> Deployment {
        crate::deploy::test_deployment(phase, T0, launched)
    }

    fn agent(ready: bool) -> AgentView {
        AgentView {
            connected: true,
            last_seen: T0,
            config_sent: 7,
            config_applied: 7,
            services_running: true,
            failing_service: None,
            ready,
            ready_detail: String::new(),
            reported: true,
            migrations_reported: true,
            ..AgentView::default()
        }
    }

    fn observed(agents: &[(&str, AgentView)], members: &[(&str, MemberState)]) -> Observed {
        Observed {
            now: T0 + 1000,
            instances: agents
                .iter()
                .map(|(id, _)| (id.to_string(), InstanceState::Running))
                .chain(
                    members
                        .iter()
                        .map(|(id, _)| (id.to_string(), InstanceState::Running)),
                )
                .collect(),
            agents: agents
                .iter()
                .map(|(id, a)| (id.to_string(), a.clone()))
                .collect(),
            members: members.iter().map(|(id, m)| (id.to_string(), *m)).collect(),
            drains_visible: true,
            coordinator_started: 0,
            migration: MigrationFacts::default(),
        }
    }

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_queued_deployment_starts_launching() {
        let d = deployment(Phase::Queued, &[]);
        assert_eq!(
            next_action(&d, &Observed::default(), &limits()),
            Action::Advance(Phase::Launching)
        );
    }

    #[test]
    fn launching_launches_only_the_missing_slots() {
        let d = deployment(Phase::Launching, &["i-a"]);
        let o = observed(&[], &[]);
        assert_eq!(
            next_action(&d, &o, &limits()),
            Action::Launch { slots: vec![1] }
        );
        let d = deployment(Phase::Launching, &["i-a", "i-b"]);
        assert_eq!(
            next_action(&d, &o, &limits()),
            Action::Advance(Phase::Booting)
        );
    }

    #[test]
    fn booting_waits_for_every_agent_to_say_hello() {
        let d = deployment(Phase::Booting, &["i-a", "i-b"]);
        let o = observed(&[("i-a", agent(false))], &[]);
        assert!(matches!(next_action(&d, &o, &limits()), Action::Wait(w) if w.contains("i-b")));
        let o = observed(&[("i-a", agent(false)), ("i-b", agent(false))], &[]);
        assert_eq!(
            next_action(&d, &o, &limits()),
            Action::Advance(Phase::Configuring)
        );
    }

    #[test]
    fn configuring_pushes_config_once_then_waits_for_services() {
        let d = deployment(Phase::Configuring, &["i-a", "i-b"]);
        let fresh = AgentView {
            config_sent: 0,
            config_applied: 0,
            services_running: false,
            ..agent(false)
        };
        let o = observed(&[("i-a", fresh.clone()), ("i-b", agent(false))], &[]);
        assert_eq!(
            next_action(&d, &o, &limits()),
            Action::Configure {
                instances: ids(&["i-a"])
            }
        );
        let sent = AgentView {
            config_sent: 7,
            ..fresh
        };
        let o = observed(&[("i-a", sent), ("i-b", agent(false))], &[]);
        assert!(matches!(next_action(&d, &o, &limits()), Action::Wait(w) if w.contains("i-a")));
        let o = observed(&[("i-a", agent(false)), ("i-b", agent(false))], &[]);
        assert_eq!(
            next_action(&d, &o, &limits()),
            Action::Advance(Phase::Ready)
        );
    }

    #[test]
    fn ready_records_the_old_instances_before_attaching() {
        let d = deployment(Phase::Ready, &["i-a", "i-b"]);
        let o = observed(
            &[("i-a", agent(true)), ("i-b", agent(true))],
            &[("i-old", MemberState::InService)],
        );
        assert_eq!(
            next_action(&d, &o, &limits()),
            Action::BeginAttach {
                old: ids(&["i-old"])
            }
        );
    }

    #[test]
    fn an_unready_instance_is_never_attached() {
        let d = deployment(Phase::Ready, &["i-a", "i-b"]);
        let unready = AgentView {
            ready_detail: "GET /health: 500".into(),
            ..agent(false)
        };
        let o = observed(&[("i-a", agent(true)), ("i-b", unready)], &[]);
        let action = next_action(&d, &o, &limits());
        assert!(
            matches!(&action, Action::Wait(w) if w.contains("i-b (GET /health: 500)")),
            "{action:?}"
        );
    }

    #[test]
    fn a_health_check_that_never_passes_rolls_back_at_the_deadline() {
        let d = deployment(Phase::Ready, &["i-a", "i-b"]);
        let unready = AgentView {
            ready_detail: "GET /health: 500".into(),
            ..agent(false)
        };
        let mut o = observed(&[("i-a", agent(true)), ("i-b", unready)], &[]);
        o.now = T0 + Deadlines::default().ready.as_millis() as Millis + 1;
        for a in o.agents.values_mut() {
            a.last_seen = o.now;
        }
        match next_action(&d, &o, &limits()) {
            Action::RollBack { reason } => {
                assert!(
                    reason.starts_with("ready did not finish within 2m"),
                    "{reason}"
                );
                assert!(reason.contains("GET /health: 500"), "{reason}");
            }
            other => panic!("expected a rollback, got {other:?}"),
        }
    }

    #[test]
    fn a_restarted_coordinator_gives_agents_time_to_redial_before_a_deadline_ends_the_phase() {
        let grace = REDIAL_GRACE.as_millis() as Millis;
        // Ready since T0, then the coordinator was down for an hour: the
        // deadline passed while nobody watched, and no agent is back yet.
        let d = deployment(Phase::Ready, &["i-a", "i-b"]);
        let started = T0 + 3_600_000;
        let mut o = Observed {
            now: started + 1_000,
            coordinator_started: started,
            ..observed(&[], &[])
        };
        assert!(d.overdue(o.now, Deadlines::default().ready));
        assert!(matches!(next_action(&d, &o, &limits()), Action::Wait(_)));

        // Back and ready within the grace: the deploy goes on.
        let back = AgentView {
            last_seen: o.now,
            ..agent(true)
        };
        o.agents = BTreeMap::from([("i-a".into(), back.clone()), ("i-b".into(), back)]);
        assert!(matches!(
            next_action(&d, &o, &limits()),
            Action::BeginAttach { .. }
        ));
        // All back but one not ready: nothing left to wait for, the deadline
        // holds without the rest of the grace.
        o.agents.get_mut("i-b").unwrap().ready = false;
        assert!(matches!(
            next_action(&d, &o, &limits()),
            Action::RollBack { .. }
        ));
        // One back, one connected but not yet reported, or not back at all:
        // still within the grace.
        o.agents.get_mut("i-b").unwrap().reported = false;
        assert!(matches!(next_action(&d, &o, &limits()), Action::Wait(_)));
        o.agents.remove("i-b");
        assert!(matches!(next_action(&d, &o, &limits()), Action::Wait(_)));

        // Still not back when the grace ends: the deadline holds.
        o.agents.clear();
        o.now = started + grace;
        assert!(matches!(
            next_action(&d, &o, &limits()),
            Action::RollBack { reason } if reason.starts_with("ready did not finish within 2m")
        ));

        // Within the grace, a phase this process entered keeps its own
        // deadline; only one the previous process entered waits.
        let mut short = limits();
        short.deadlines.ready = Duration::from_secs(3);
        let mut fresh = deployment(Phase::Ready, &["i-a", "i-b"]);
        fresh.history[0].at = started + 1;
        o.now = started + 1 + 3_001;
        assert!(o.now - started < grace);
        assert!(matches!(
            next_action(&fresh, &o, &short),
            Action::RollBack { .. }
        ));
        assert!(matches!(next_action(&d, &o, &short), Action::Wait(_)));
    }

    #[test]
    fn an_agent_silent_past_the_limit_rolls_back_within_seconds() {
        let d = deployment(Phase::Ready, &["i-a", "i-b"]);
        let dead = AgentView {
            connected: false,
            ..agent(false)
        };
        let mut o = observed(&[("i-a", agent(true)), ("i-b", dead)], &[]);
        o.now = T0 + 5_001;
        o.agents.get_mut("i-a").unwrap().last_seen = o.now;
        assert_eq!(
            next_action(&d, &o, &limits()),
            Action::RollBack {
                reason: "instance i-b lost: its agent disconnected 5.0s ago".into()
            }
        );
        o.now = T0 + 4_000;
        assert!(matches!(next_action(&d, &o, &limits()), Action::Wait(_)));
    }

    #[test]
    fn a_vanished_instance_rolls_back() {
        let d = deployment(Phase::Booting, &["i-a", "i-b"]);
        let mut o = observed(&[("i-a", agent(false))], &[]);
        o.instances.insert("i-b".into(), InstanceState::Gone);
        assert!(
            matches!(next_action(&d, &o, &limits()), Action::RollBack { reason } if reason.contains("i-b terminated"))
        );
    }

    #[test]
    fn a_cancel_before_attaching_rolls_back() {
        let mut d = deployment(Phase::Configuring, &["i-a"]);
        d.cancel_requested_by = Some("alice".into());
        assert_eq!(
            next_action(&d, &observed(&[], &[]), &limits()),
            Action::RollBack {
                reason: "cancelled by alice".into()
            }
        );
    }

    #[test]
    fn attaching_registers_then_waits_for_in_service() {
        let mut d = deployment(Phase::Attaching, &["i-a", "i-b"]);
        d.old_instances = ids(&["i-old"]);
        let agents = [("i-a", agent(true)), ("i-b", agent(true))];
        let o = observed(&agents, &[("i-a", MemberState::InService)]);
        assert_eq!(
            next_action(&d, &o, &limits()),
            Action::Register {
                instances: ids(&["i-b"])
            }
        );
        let o = observed(
            &agents,
            &[
                ("i-a", MemberState::InService),
                ("i-b", MemberState::OutOfService),
            ],
        );
        assert!(matches!(next_action(&d, &o, &limits()), Action::Wait(_)));
        let o = observed(
            &agents,
            &[
                ("i-a", MemberState::InService),
                ("i-b", MemberState::InService),
            ],
        );
        assert_eq!(
            next_action(&d, &o, &limits()),
            Action::Advance(Phase::Draining)
        );
    }

    #[test]
    fn a_first_deploy_succeeds_once_attached_with_nothing_to_drain_or_retire() {
        let d = deployment(Phase::Attaching, &["i-a"]);
        assert!(d.old_instances.is_empty());
        let agents = [("i-a", agent(true))];
        let o = observed(&agents, &[("i-a", MemberState::InService)]);
        assert_eq!(
            next_action(&d, &o, &limits()),
            Action::Finish {
                phase: Phase::Succeeded,
                note: None
            }
        );
    }

    #[test]
    fn draining_deregisters_old_and_waits_for_open_connections() {
        let mut d = deployment(Phase::Draining, &["i-a"]);
        d.old_instances = ids(&["i-old"]);
        let o = observed(
            &[("i-a", agent(true))],
            &[
                ("i-a", MemberState::InService),
                ("i-old", MemberState::InService),
            ],
        );
        assert_eq!(
            next_action(&d, &o, &limits()),
            Action::Deregister {
                instances: ids(&["i-old"])
            }
        );
        // The executor stores when it deregisters.
        d.drain_from = Some(T0);
        let busy = MemberState::Draining { connections: 2 };
        let mut o = observed(
            &[("i-a", agent(true))],
            &[("i-a", MemberState::InService), ("i-old", busy)],
        );
        assert!(matches!(next_action(&d, &o, &limits()), Action::Wait(_)));
        o.now = T0 + Deadlines::default().drain.as_millis() as Millis;
        assert_eq!(
            next_action(&d, &o, &limits()),
            Action::Advance(Phase::Retiring)
        );
    }

    #[test]
    fn unreported_draining_is_waited_out_from_the_stored_deregistration() {
        let drain = Deadlines::default().drain.as_millis() as Millis;
        let mut d = deployment(Phase::Draining, &["i-a"]);
        d.old_instances = ids(&["i-old"]);
        d.drain_from = Some(T0);
        // ELB lists a deregistered instance no more, draining or not.
        let mut o = observed(&[("i-a", agent(true))], &[("i-a", MemberState::InService)]);
        o.drains_visible = false;
        let Action::Wait(why) = next_action(&d, &o, &limits()) else {
            panic!("must wait for the drain timeout");
        };
        assert!(
            why.contains("i-old") && why.contains("does not report"),
            "{why}"
        );
        // Counted from the stored deregistration: a restarted coordinator
        // waits only what is left, not a fresh timeout.
        o.now = T0 + drain;
        assert_eq!(
            next_action(&d, &o, &limits()),
            Action::Advance(Phase::Retiring)
        );
        // A deregistration that came late (retried, or after a restart) still
        // gets its whole drain.
        d.drain_from = Some(T0 + 50_000);
        o.now = T0 + 50_000 + drain - 1;
        assert!(matches!(next_action(&d, &o, &limits()), Action::Wait(_)));
        // A clock that stepped back does not make the drain longer than set.
        o.now = T0 + 40_000;
        let Action::Wait(why) = next_action(&d, &o, &limits()) else {
            panic!("must wait");
        };
        assert!(
            why.contains(&format!("{:.1}s", drain as f64 / 1000.0)),
            "{why}"
        );
        d.drain_from = Some(T0);
        // Reported, and nothing open: no wait at all.
        o.now = T0 + 1000;
        o.drains_visible = true;
        assert_eq!(
            next_action(&d, &o, &limits()),
            Action::Advance(Phase::Retiring)
        );
        // A first deploy deregisters nothing and has nothing to wait for.
        d.old_instances.clear();
        d.drain_from = None;
        o.drains_visible = false;
        assert_eq!(
            next_action(&d, &o, &limits()),
            Action::Advance(Phase::Retiring)
        );
    }

    #[test]
    fn a_rollback_after_attaching_lets_new_instances_drain_before_terminating_them() {
        let drain = Deadlines::default().drain.as_millis() as Millis;
        let mut d = deployment(Phase::RollingBack, &["i-a"]);
        d.history = vec![
            PhaseEntry {
                phase: Phase::Attaching,
                at: T0 - 500,
            },
            PhaseEntry {
                phase: Phase::RollingBack,
                at: T0,
            },
        ];
        d.old_instances = ids(&["i-old"]);
        d.drain_from = Some(T0);
        let busy = MemberState::Draining { connections: 3 };
        let mut o = observed(
            &[("i-a", agent(true))],
            &[("i-a", busy), ("i-old", MemberState::InService)],
        );
        let Action::Wait(why) = next_action(&d, &o, &limits()) else {
            panic!("must wait for open connections");
        };
        assert!(why.contains("i-a"), "{why}");
        o.members.remove("i-a");
        assert_eq!(
            next_action(&d, &o, &limits()),
            Action::Terminate {
                instances: ids(&["i-a"])
            }
        );
        o.drains_visible = false;
        assert!(matches!(next_action(&d, &o, &limits()), Action::Wait(_)));
        o.now = T0 + drain;
        assert_eq!(
            next_action(&d, &o, &limits()),
            Action::Terminate {
                instances: ids(&["i-a"])
            }
        );
        // A rollback that took nothing out of the load balancer (its instances
        // were never registered) terminates at once.
        o.now = T0 + 1000;
        d.drain_from = None;
        assert_eq!(
            next_action(&d, &o, &limits()),
            Action::Terminate {
                instances: ids(&["i-a"])
            }
        );
        // Nor does a deregistration of an earlier phase count.
        d.drain_from = Some(T0 - 100);
        assert_eq!(
            next_action(&d, &o, &limits()),
            Action::Terminate {
                instances: ids(&["i-a"])
            }
        );
    }

    #[test]
    fn past_the_point_of_no_return_a_lost_agent_does_not_roll_back() {
        let mut d = deployment(Phase::Draining, &["i-a"]);
        d.old_instances = ids(&["i-old"]);
        let mut o = observed(
            &[(
                "i-a",
                AgentView {
                    connected: false,
                    ..agent(true)
                },
            )],
            &[("i-a", MemberState::InService)],
        );
        o.now = T0 + 60_000;
        assert_eq!(
            next_action(&d, &o, &limits()),
            Action::Advance(Phase::Retiring)
        );
    }

    #[test]
    fn retiring_terminates_old_instances_then_succeeds() {
        let mut d = deployment(Phase::Retiring, &["i-a"]);
        d.old_instances = ids(&["i-old"]);
        let mut o = observed(
            &[("i-a", agent(true))],
            &[("i-old", MemberState::Draining { connections: 0 })],
        );
        assert_eq!(
            next_action(&d, &o, &limits()),
            Action::Terminate {
                instances: ids(&["i-old"])
            }
        );
        o.instances.insert("i-old".into(), InstanceState::Gone);
        assert_eq!(
            next_action(&d, &o, &limits()),
            Action::Finish {
                phase: Phase::Succeeded,
                note: None,
            }
        );
    }

    fn watching_limits() -> Limits {
        Limits {
            keep_previous: Duration::from_secs(60),
            ..limits()
        }
    }

    /// `d-7` watching its `i-a` since T0, `i-old` on standby out of the
    /// load balancer.
    fn watching_deployment() -> (Deployment, Observed) {
        let mut d = deployment(Phase::Watching, &["i-a"]);
        d.old_instances = ids(&["i-old"]);
        let mut o = observed(&[("i-a", agent(true))], &[("i-a", MemberState::InService)]);
        o.instances.insert("i-old".into(), InstanceState::Running);
        (d, o)
    }

    #[test]
    fn a_drained_switch_watches_with_the_old_instances_on_standby_when_kept() {
        let mut d = deployment(Phase::Draining, &["i-a"]);
        d.old_instances = ids(&["i-old"]);
        d.drain_from = Some(T0);
        let o = observed(&[("i-a", agent(true))], &[("i-a", MemberState::InService)]);
        assert_eq!(
            next_action(&d, &o, &watching_limits()),
            Action::Advance(Phase::Watching)
        );
        assert_eq!(
            next_action(&d, &o, &limits()),
            Action::Advance(Phase::Retiring),
            "keep_previous = 0 retires at once"
        );
        d.replaces = ids(&["i-old"]);
        assert_eq!(
            next_action(&d, &o, &watching_limits()),
            Action::Advance(Phase::Retiring),
            "a replacement's old instances were lost: nothing to keep"
        );
    }

    #[test]
    fn watching_waits_out_the_window_then_retires() {
        let (d, mut o) = watching_deployment();
        let Action::Wait(why) = next_action(&d, &o, &watching_limits()) else {
            panic!("watching must wait");
        };
        assert_eq!(why, "watching i-a for 59s more; standby: i-old");
        o.now = T0 + 60_000;
        o.agents.get_mut("i-a").unwrap().last_seen = o.now;
        assert_eq!(
            next_action(&d, &o, &watching_limits()),
            Action::Advance(Phase::Retiring)
        );
    }

    #[test]
    fn a_failing_health_check_while_watching_rolls_back_to_the_standby() {
        let (d, mut o) = watching_deployment();
        let mut sick = agent(false);
        sick.ready_detail = "GET /health answered 500".into();
        o.agents.insert("i-a".into(), sick);
        assert_eq!(
            next_action(&d, &o, &watching_limits()),
            Action::RollBack {
                reason:
                    "instance i-a failed its health check (GET /health answered 500) while watching"
                        .into()
            }
        );
        // Not yet reported on a fresh stream: not a failure.
        o.agents.get_mut("i-a").unwrap().reported = false;
        assert!(matches!(
            next_action(&d, &o, &watching_limits()),
            Action::Wait(_)
        ));
    }

    #[test]
    fn a_lost_agent_or_an_out_of_service_member_while_watching_rolls_back() {
        let (d, mut o) = watching_deployment();
        o.now = T0 + 6_000;
        let Action::RollBack { reason } = next_action(&d, &o, &watching_limits()) else {
            panic!("a lost agent must roll back");
        };
        assert!(reason.starts_with("instance i-a lost"), "{reason}");
        let (d, mut o) = watching_deployment();
        o.members.insert("i-a".into(), MemberState::OutOfService);
        assert_eq!(
            next_action(&d, &o, &watching_limits()),
            Action::RollBack {
                reason: "the load balancer took instance i-a out of service while watching".into()
            }
        );
    }

    #[test]
    fn an_asked_rollback_while_watching_goes_back_to_the_standby() {
        let (mut d, o) = watching_deployment();
        d.rollback_requested_by = Some("alice".into());
        assert_eq!(
            next_action(&d, &o, &watching_limits()),
            Action::RollBack {
                reason: "rolled back by alice while watching".into()
            }
        );
    }

    #[test]
    fn with_no_standby_left_a_failure_while_watching_keeps_the_new_instances() {
        let (mut d, mut o) = watching_deployment();
        d.rollback_requested_by = Some("alice".into());
        o.instances.insert("i-old".into(), InstanceState::Gone);
        let Action::Wait(why) = next_action(&d, &o, &watching_limits()) else {
            panic!("nothing to go back to: it must not roll back");
        };
        assert!(why.contains("no standby instance is left"), "{why}");
    }

    #[test]
    fn rolling_back_from_watching_puts_the_standby_in_service_before_taking_new_ones_out() {
        let (mut d, mut o) = watching_deployment();
        d.enter(Phase::RollingBack, T0 + 500);
        assert_eq!(
            next_action(&d, &o, &watching_limits()),
            Action::Register {
                instances: ids(&["i-old"])
            }
        );
        o.members.insert("i-old".into(), MemberState::OutOfService);
        let Action::Wait(why) = next_action(&d, &o, &watching_limits()) else {
            panic!("must wait for the standby to be in service");
        };
        assert!(why.contains("standby i-old"), "{why}");
        o.members.insert("i-old".into(), MemberState::InService);
        assert_eq!(
            next_action(&d, &o, &watching_limits()),
            Action::Deregister {
                instances: ids(&["i-a"])
            }
        );
        // A standby that died meanwhile is not waited for.
        o.members.remove("i-old");
        o.instances.insert("i-old".into(), InstanceState::Gone);
        assert_eq!(
            next_action(&d, &o, &watching_limits()),
            Action::Deregister {
                instances: ids(&["i-a"])
            }
        );
    }

    #[test]
    fn rolling_back_deregisters_and_terminates_only_new_instances() {
        let mut d = deployment(Phase::RollingBack, &["i-a"]);
        d.old_instances = ids(&["i-old"]);
        let members = [
            ("i-a", MemberState::InService),
            ("i-old", MemberState::InService),
        ];
        let mut o = observed(&[("i-a", agent(true))], &members);
        assert_eq!(
            next_action(&d, &o, &limits()),
            Action::Deregister {
                instances: ids(&["i-a"])
            }
        );
        o.members.remove("i-a");
        assert_eq!(
            next_action(&d, &o, &limits()),
            Action::Terminate {
                instances: ids(&["i-a"])
            }
        );
        o.instances.insert("i-a".into(), InstanceState::Gone);
        assert_eq!(
            next_action(&d, &o, &limits()),
            Action::Finish {
                phase: Phase::RolledBack,
                note: None,
            }
        );
    }

    #[test]
    fn cleanup_that_never_completes_ends_past_its_deadline_naming_what_is_left() {
        let cleanup = limits().deadlines.cleanup.as_millis() as Millis;
        let mut retiring = deployment(Phase::Retiring, &["i-a"]);
        retiring.old_instances = ids(&["i-old"]);
        let mut o = observed(&[("i-a", agent(true))], &[]);
        o.instances.insert("i-old".into(), InstanceState::Running);
        o.now = T0 + cleanup + 1;
        let Action::Finish {
            phase: Phase::Succeeded,
            note: Some(note),
        } = next_action(&retiring, &o, &limits())
        else {
            panic!("retiring past its deadline must finish");
        };
        assert!(
            note.contains("i-old left; terminate them by hand"),
            "{note}"
        );

        let rolling_back = deployment(Phase::RollingBack, &["i-a"]);
        let o = Observed {
            members: BTreeMap::from([("i-a".to_string(), MemberState::InService)]),
            ..o
        };
        let Action::Finish {
            phase: Phase::RolledBack,
            note: Some(note),
        } = next_action(&rolling_back, &o, &limits())
        else {
            panic!("rolling back past its deadline must finish");
        };
        assert!(
            note.contains("i-a left; deregister and terminate"),
            "{note}"
        );

        // Within the deadline, cleanup goes on.
        let o = Observed {
            now: T0 + 1000,
            ..o
        };
        assert_eq!(
            next_action(&rolling_back, &o, &limits()),
            Action::Deregister {
                instances: ids(&["i-a"])
            }
        );
    }

    #[test]
    fn a_replacement_retires_only_the_instances_it_replaces() {
        let mut d = deployment(Phase::Ready, &["i-new"]);
        d.desired = 1;
        d.replaces = ids(&["i-lost"]);
        let o = observed(
            &[("i-new", agent(true))],
            &[
                ("i-lost", MemberState::InService),
                ("i-fine", MemberState::InService),
            ],
        );
        assert_eq!(
            next_action(&d, &o, &limits()),
            Action::BeginAttach {
                old: ids(&["i-lost"])
            }
        );
    }
}
