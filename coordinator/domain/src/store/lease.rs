//! Who acts when several coordinators share one store: one holds the lease
//! at a time, under an epoch of its own. Taking the lease from another holder
//! claims a new epoch, so the store refuses every later batch of the previous
//! holder (`StoreError::Fenced`) even if it still believes it leads (a pause,
//! a cut network). Lease time is the database's clock, so coordinators whose
//! clocks disagree agree on when a lease lapsed.

use std::time::Duration;

use async_trait::async_trait;

use super::{Epoch, StoreError};

/// The lease as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Which coordinator process holds it (one id per start: a restarted
    /// coordinator is a new holder).
    pub holder: String,
    /// Where the holder takes operators' calls.
    pub address: String,
    /// The epoch its writes carry.
    pub epoch: Epoch,
    /// How long it has left, by the store's clock, when it was read.
    pub remaining: Duration,
}

#[async_trait]
pub trait Leases: Send + Sync + std::fmt::Debug {
    /// Takes the lease for `holder` for `length` if nobody holds it or it
    /// lapsed, or renews it if `holder` holds it. Returns the lease as it
    /// stands after: another holder's, if that one still holds it. A change
    /// of hands claims a new epoch.
    async fn take_lease(
        &self,
        holder: &str,
        address: &str,
        length: Duration,
    ) -> Result<Lease, StoreError>;

    /// Gives the lease up if `holder` still holds it (a graceful stop), so a
    /// standby takes over at once rather than when it lapses.
    async fn release_lease(&self, holder: &str) -> Result<(), StoreError>;
}
