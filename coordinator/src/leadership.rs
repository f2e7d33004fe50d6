//! One coordinator acts at a time when several share a PostgreSQL store.
//!
//! A starting coordinator waits as a standby until it holds the store's lease
//! (`Leases`), then acts with the lease's epoch: the store refuses the writes
//! of any earlier holder. The store fences writes; the cloud carries no epoch,
//! so the clock fences it (DESIGN.md, settled questions):
//! - the leader's `Tenure` ends at the start of its last successful renewal
//!   plus the lease, less a margin, by its own monotonic clock; every cloud
//!   mutation checks it first (`fenced_cloud`), and `keep` returns (the process
//!   then exits) once it has ended;
//! - a new leader takes the lease only once it lapsed by the database's clock,
//!   and waits the margin more before acting.
//!
//! The residual risk: a leader paused (not cut off) between its tenure check
//! and the cloud call it guards, for longer than the margin, acts late.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tracing::{info, warn};

use crate::cloud::{
    Cloud, CloudError, Compute, Dns, ImageFacts, Instance, LaunchRequest, LoadBalancer,
    LoadBalancerSpec, LoadBalancerState,
};
use crate::deploy::machine::MemberState;
use crate::store::{Lease, Leases, StoreError};

/// How long the lease lasts and how it is kept.
#[derive(Debug, Clone, Copy)]
pub struct LeaseTerms {
    pub length: Duration,
}

impl LeaseTerms {
    /// How much earlier than the lease the leader stops acting, and how long
    /// a new leader waits after taking it.
    pub fn margin(&self) -> Duration {
        self.length / 6
    }

    /// How often the leader renews and a standby asks.
    pub fn every(&self) -> Duration {
        self.length / 3
    }
}

/// Until when this coordinator may act, by its monotonic clock.
#[derive(Debug)]
pub struct Tenure {
    base: Instant,
    /// Milliseconds after `base`.
    until: AtomicU64,
}

impl Tenure {
    fn until(deadline: Instant) -> Tenure {
        let base = Instant::now();
        let tenure = Tenure {
            base,
            until: AtomicU64::new(0),
        };
        tenure.extend_to(deadline);
        tenure
    }

    /// A tenure that never ends: the only coordinator of an embedded store.
    pub fn sole() -> Arc<Tenure> {
        Arc::new(Tenure {
            base: Instant::now(),
            until: AtomicU64::new(u64::MAX),
        })
    }

    /// A tenure over before it began: a standby's, which may not act at all.
    pub fn none() -> Arc<Tenure> {
        Arc::new(Tenure {
            base: Instant::now(),
            until: AtomicU64::new(0),
        })
    }

    fn extend_to(&self, deadline: Instant) {
        let ms = deadline.saturating_duration_since(self.base).as_millis() as u64;
        self.until.fetch_max(ms, Ordering::SeqCst);
    }

    /// When it ends, as things stand.
    fn deadline(&self) -> Instant {
        self.base + Duration::from_millis(self.until.load(Ordering::SeqCst))
    }

    pub fn acting(&self) -> bool {
        (self.base.elapsed().as_millis() as u64) < self.until.load(Ordering::SeqCst)
    }

    fn check(&self) -> Result<(), CloudError> {
        match self.acting() {
            true => Ok(()),
            false => Err(CloudError::Unavailable(
                "this coordinator's lease ended: another coordinator acts now".into(),
            )),
        }
    }
}

/// Waits as a standby until `holder` holds the lease; returns it and the
/// tenure it starts. Meanwhile `leader` says where the coordinator that holds
/// it takes calls (None while nobody does), for the standby to redirect to.
pub async fn wait_for_lease(
    leases: &dyn Leases,
    holder: &str,
    address: &str,
    terms: LeaseTerms,
    leader: &tokio::sync::watch::Sender<Option<String>>,
) -> Result<(Lease, Arc<Tenure>), StoreError> {
    let mut told = None;
    loop {
        let asked = Instant::now();
        let lease = match leases.take_lease(holder, address, terms.length).await {
            Ok(lease) => lease,
            // A standby outlives a store that is away for a while: it keeps
            // answering what it can and asks again.
            Err(e) => {
                warn!(error = %e, "standby: cannot reach the store's lease; asking again");
                leader.send_replace(None);
                tokio::time::sleep(terms.every()).await;
                continue;
            }
        };
        if lease.holder == holder {
            leader.send_replace(None);
            // The previous holder's tenure ended by its own clock before the
            // lease lapsed by the database's; the margin covers clocks that
            // run at different rates.
            tokio::time::sleep(terms.margin()).await;
            info!(
                epoch = lease.epoch,
                "this coordinator holds the lease and acts"
            );
            let tenure = Tenure::until(asked + terms.length - terms.margin());
            return Ok((lease, Arc::new(tenure)));
        }
        leader.send_replace(Some(lease.address.clone()));
        if told.as_ref() != Some(&lease.holder) {
            info!(leader = %lease.address, epoch = lease.epoch, "standby: another coordinator leads; waiting for its lease");
            told = Some(lease.holder.clone());
        }
        tokio::time::sleep(
            terms
                .every()
                .min(lease.remaining + Duration::from_millis(50)),
        )
        .await;
    }
}

/// Why a leader stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lost {
    /// Another coordinator holds the lease now.
    TakenBy { address: String, epoch: u64 },
    /// No renewal got through before the tenure ended (the store unreachable).
    Lapsed { last_error: String },
}

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lost::TakenBy { address, epoch } => write!(
                f,
                "the coordinator at {address} took the lease (epoch {epoch})"
            ),
            Lost::Lapsed { last_error } => write!(
                f,
                "the lease could not be renewed before it ran out ({last_error})"
            ),
        }
    }
}

/// Renews the lease until it is lost; then the holder must stop acting (its
/// tenure has ended or is no longer its own).
pub async fn keep(
    leases: Arc<dyn Leases>,
    holder: String,
    address: String,
    terms: LeaseTerms,
    tenure: Arc<Tenure>,
) -> Lost {
    let mut last_error = String::from("the store did not answer in time");
    loop {
        // Whatever it waits for, it returns the moment the tenure ends: a
        // renewal hung on a cut network must not keep the leader acting.
        let ended = tokio::time::sleep_until(tenure.deadline().into());
        tokio::select! {
            () = tokio::time::sleep(terms.every()) => {}
            () = ended => return Lost::Lapsed { last_error },
        }
        let asked = Instant::now();
        let renewal = leases.take_lease(&holder, &address, terms.length);
        let ended = tokio::time::sleep_until(tenure.deadline().into());
        tokio::select! {
            renewed = renewal => match renewed {
                Ok(lease) if lease.holder == holder => {
                    tenure.extend_to(asked + terms.length - terms.margin());
                }
                Ok(lease) => {
                    return Lost::TakenBy {
                        address: lease.address,
                        epoch: lease.epoch,
                    };
                }
                Err(e) => {
                    warn!(error = %e, "cannot renew the lease; retrying until it runs out");
                    last_error = e.to_string();
                }
            },
            () = ended => return Lost::Lapsed { last_error },
        }
    }
}

/// `cloud` with every mutation (launch, terminate, load balancer and DNS
/// changes) refused once `tenure` has ended; reads pass.
pub fn fenced_cloud(cloud: Cloud, tenure: Arc<Tenure>) -> Cloud {
    Cloud {
        compute: Arc::new(FencedCompute(cloud.compute, tenure.clone())),
        load_balancer: Arc::new(FencedLoadBalancer(cloud.load_balancer, tenure.clone())),
        dns: Arc::new(FencedDns(cloud.dns, tenure)),
    }
}

struct FencedCompute(Arc<dyn Compute>, Arc<Tenure>);
struct FencedLoadBalancer(Arc<dyn LoadBalancer>, Arc<Tenure>);
struct FencedDns(Arc<dyn Dns>, Arc<Tenure>);

#[async_trait]
impl Compute for FencedCompute {
    async fn find_image(&self, project: &str, version: &str) -> Result<String, CloudError> {
        self.0.find_image(project, version).await
    }
    async fn check_image(&self, image_id: &str) -> Result<ImageFacts, CloudError> {
        self.0.check_image(image_id).await
    }
    async fn launch(&self, request: LaunchRequest) -> Result<Instance, CloudError> {
        self.1.check()?;
        self.0.launch(request).await
    }
    async fn describe(&self, ids: &[String]) -> Result<Vec<Instance>, CloudError> {
        self.0.describe(ids).await
    }
    async fn terminate(&self, ids: &[String]) -> Result<(), CloudError> {
        self.1.check()?;
        self.0.terminate(ids).await
    }
    async fn find_instances(
        &self,
        tags: &BTreeMap<String, String>,
    ) -> Result<Vec<Instance>, CloudError> {
        self.0.find_instances(tags).await
    }
}

#[async_trait]
impl LoadBalancer for FencedLoadBalancer {
    async fn describe(&self, name: &str) -> Result<Option<LoadBalancerState>, CloudError> {
        self.0.describe(name).await
    }
    async fn create(&self, spec: &LoadBalancerSpec) -> Result<(), CloudError> {
        self.1.check()?;
        self.0.create(spec).await
    }
    async fn configure(&self, spec: &LoadBalancerSpec) -> Result<(), CloudError> {
        self.1.check()?;
        self.0.configure(spec).await
    }
    async fn register(&self, name: &str, ids: &[String]) -> Result<(), CloudError> {
        self.1.check()?;
        self.0.register(name, ids).await
    }
    async fn deregister(&self, name: &str, ids: &[String]) -> Result<(), CloudError> {
        self.1.check()?;
        self.0.deregister(name, ids).await
    }
    async fn members(&self, name: &str) -> Result<BTreeMap<String, MemberState>, CloudError> {
        self.0.members(name).await
    }
    fn reports_draining(&self) -> bool {
        self.0.reports_draining()
    }
}

#[async_trait]
impl Dns for FencedDns {
    async fn upsert(&self, record: &str, load_balancer: &str) -> Result<(), CloudError> {
        self.1.check()?;
        self.0.upsert(record, load_balancer).await
    }
    async fn target(&self, record: &str) -> Result<Option<String>, CloudError> {
        self.0.target(record).await
    }
    async fn endpoint(&self, record: &str) -> Result<Option<String>, CloudError> {
        self.0.endpoint(record).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenure_ends_at_its_deadline_and_only_grows() {
        let tenure = Tenure::until(Instant::now() + Duration::from_millis(200));
        assert!(tenure.acting());
        tenure.extend_to(Instant::now());
        assert!(tenure.acting(), "an earlier deadline never shortens it");
        std::thread::sleep(Duration::from_millis(250));
        assert!(!tenure.acting());
        assert!(tenure.check().is_err());
        assert!(Tenure::sole().acting());
    }

    #[test]
    fn the_margin_and_the_renewal_pace_follow_the_lease() {
        let terms = LeaseTerms {
            length: Duration::from_secs(6),
        };
        assert_eq!(terms.margin(), Duration::from_secs(1));
        assert_eq!(terms.every(), Duration::from_secs(2));
    }
}
