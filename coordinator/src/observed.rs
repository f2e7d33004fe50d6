//! What the coordinator last saw of the cloud, for operators' reads: each
//! target's load balancer (its address, its members' health) and the
//! instances in it. `status` reads this instead of asking the cloud per
//! request, so it costs no call at rest and does not grow with projects
//! (DESIGN.md, settled).
//!
//! A target is looked at again when it was never seen, when a deployment step
//! changed it (`changed`, from the executor), when a standby instance it must
//! show is not among what was seen, or when what was seen is older than
//! `MAX_AGE`; the background refresh keeps every target younger than that.
//! One look at N targets costs N member calls (ELB health is one call per load
//! balancer), one description of all their instances (which the AWS adapter
//! sends 200 ids to a call), and, the
//! first time only, one description of each load balancer (its address never
//! changes).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::task::JoinHandle;
use tracing::warn;

use crate::clock::{Clock, Millis};
use crate::cloud::{Cloud, CloudError, Instance, load_balancer_name};
use crate::deploy::machine::MemberState;
use crate::fleets::Fleets;

/// How often the background refresh looks at every target.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5);
/// What was seen longer ago than this is looked at again before it is shown.
pub const MAX_AGE: Duration = Duration::from_secs(15);

/// One target's load balancer as last seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    /// None: the load balancer does not exist (yet).
    pub endpoint: Option<String>,
    pub members: BTreeMap<String, MemberState>,
    /// The members' instances, and the standby ones asked about.
    pub instances: BTreeMap<String, Instance>,
    pub at: Millis,
}

pub struct Observer {
    cloud: Cloud,
    fleets: Arc<Fleets>,
    clock: Arc<dyn Clock>,
    seen: RwLock<BTreeMap<String, Seen>>,
    /// Load balancers a deployment step changed since they were last seen.
    changed: Mutex<BTreeSet<String>>,
    /// One look at a time: concurrent readers of a stale target wait for the
    /// look in progress instead of making their own calls.
    looking: tokio::sync::Mutex<()>,
    /// Cloud calls made, for the benchmark's count.
    calls: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observer")
    }
}

impl Observer {
    pub fn new(cloud: Cloud, fleets: Arc<Fleets>, clock: Arc<dyn Clock>) -> Observer {
        Observer {
            cloud,
            fleets,
            clock,
            seen: RwLock::default(),
            changed: Mutex::default(),
            looking: tokio::sync::Mutex::new(()),
            calls: Default::default(),
        }
    }

    /// Tells the observer `lb` changed: it is looked at again before it is shown.
    pub fn changed(&self, lb: &str) {
        self.lock_changed().insert(lb.to_string());
    }

    /// The cloud calls made so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// What was seen of each of `wanted` (a load balancer and the standby
    /// instances it must also show), looking again first at those stale.
    pub async fn seen(
        &self,
        wanted: &[(String, Vec<String>)],
    ) -> Result<BTreeMap<String, Seen>, CloudError> {
        if !self.stale(wanted).is_empty() {
            let _one_look = self.looking.lock().await;
            // Another reader may have looked while this one waited.
            let stale = self.stale(wanted);
            if !stale.is_empty() {
                self.look(&stale).await?;
            }
        }
        let seen = self.read_seen();
        Ok(wanted
            .iter()
            .filter_map(|(lb, _)| Some((lb.clone(), seen.get(lb)?.clone())))
            .collect())
    }

    /// Looks at every target of the fleet in force.
    pub async fn refresh(&self) -> Result<(), CloudError> {
        let fleet = self.fleets.current().fleet;
        let mut wanted = Vec::new();
        for project in fleet.projects.keys() {
            for environment in fleet.environments.keys() {
                let lb = load_balancer_name(project, environment);
                // Keep asking about the standby instances shown last time.
                let standby = self
                    .read_seen()
                    .get(&lb)
                    .map(|s| {
                        s.instances
                            .keys()
                            .filter(|id| !s.members.contains_key(*id))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                wanted.push((lb, standby));
            }
        }
        let _one_look = self.looking.lock().await;
        self.look(&wanted).await
    }

    /// The ones of `wanted` to look at again.
    fn stale(&self, wanted: &[(String, Vec<String>)]) -> Vec<(String, Vec<String>)> {
        let now = self.clock.now();
        let max_age = MAX_AGE.as_millis() as Millis;
        let changed = self.lock_changed().clone();
        let seen = self.read_seen();
        wanted
            .iter()
            .filter(|(lb, standby)| match seen.get(lb) {
                None => true,
                Some(s) => {
                    changed.contains(lb)
                        || now - s.at > max_age
                        || standby.iter().any(|id| !s.instances.contains_key(id))
                }
            })
            .cloned()
            .collect()
    }

    /// Asks the cloud about `wanted` and keeps what it says.
    async fn look(&self, wanted: &[(String, Vec<String>)]) -> Result<(), CloudError> {
        // A change made while this look runs is looked at again next time.
        {
            let mut changed = self.lock_changed();
            for (lb, _) in wanted {
                changed.remove(lb);
            }
        }
        let at = self.clock.now();
        let known: BTreeMap<String, String> = self
            .read_seen()
            .iter()
            .filter_map(|(lb, s)| Some((lb.clone(), s.endpoint.clone()?)))
            .collect();
        let mut looked: Vec<(String, Seen)> = Vec::new();
        let mut ids: BTreeSet<String> = BTreeSet::new();
        for (lb, standby) in wanted {
            let endpoint = match known.get(lb) {
                Some(endpoint) => Some(endpoint.clone()),
                None => {
                    self.count();
                    self.cloud
                        .load_balancer
                        .describe(lb)
                        .await?
                        .map(|state| state.endpoint)
                }
            };
            let members = match endpoint {
                Some(_) => {
                    self.count();
                    self.cloud.load_balancer.members(lb).await?
                }
                None => BTreeMap::new(),
            };
            ids.extend(members.keys().cloned());
            ids.extend(standby.iter().cloned());
            looked.push((
                lb.clone(),
                Seen {
                    endpoint,
                    members,
                    instances: standby.iter().map(|id| (id.clone(), gone(id))).collect(),
                    at,
                },
            ));
        }
        let ids: Vec<String> = ids.into_iter().collect();
        let described = if ids.is_empty() {
            Vec::new()
        } else {
            self.count();
            self.cloud.compute.describe(&ids).await?
        };
        // Each target takes its own instances from what was described: a
        // lookup per instance, not a pass over the whole fleet per target.
        let described: BTreeMap<&str, &Instance> =
            described.iter().map(|i| (i.id.as_str(), i)).collect();
        let mut seen = self.seen.write().unwrap_or_else(|e| e.into_inner());
        for (lb, mut target) in looked {
            let ids: BTreeSet<String> = target
                .members
                .keys()
                .chain(target.instances.keys())
                .cloned()
                .collect();
            for id in ids {
                let instance = described
                    .get(id.as_str())
                    .map(|i| (*i).clone())
                    .unwrap_or_else(|| gone(&id));
                target.instances.insert(id, instance);
            }
            seen.insert(lb, target);
        }
        Ok(())
    }

    fn count(&self) {
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn read_seen(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Seen>> {
        self.seen.read().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_changed(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.changed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An instance the cloud no longer describes.
fn gone(id: &str) -> Instance {
    Instance {
        id: id.to_string(),
        private_ip: String::new(),
        image_id: String::new(),
        state: crate::deploy::machine::InstanceState::Gone,
        tags: BTreeMap::new(),
    }
}

/// Looks at every target every `REFRESH_EVERY`, until the process ends.
pub fn start(observer: Arc<Observer>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(REFRESH_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if let Err(e) = observer.refresh().await {
                warn!(error = %e, "cannot look at the load balancers now; status shows what was seen before");
            }
        }
    })
}
