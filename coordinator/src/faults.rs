//! Fault points: the steps where the fault-injection harness stops the coordinator.
//!
//! With `SLIPWAY_FAULT_PAUSE_AT=NAME` in its environment, the coordinator logs
//! `fault point reached: NAME;` when a deployment gets there and that deployment
//! goes no further, so the harness can kill -9 the process at exactly that step
//! (tests/tests/faults.rs). Names are `PHASE/EVENT`, e.g. `launching/launched`
//! (the cloud made an instance, the store does not know it yet) or
//! `attaching/entered`. Unset, as it is outside tests, a point costs one compare.

use std::sync::OnceLock;

use tracing::warn;

/// The environment variable naming the point to pause at.
pub const PAUSE_AT: &str = "SLIPWAY_FAULT_PAUSE_AT";

/// A point in a deployment's `phase`.
pub async fn point(phase: crate::deploy::Phase, event: &str) {
    if target().is_some() {
        pause_at(&format!("{phase}/{event}")).await;
    }
}

/// A point outside deployments, such as `promoting/recorded`.
pub async fn pause_at(name: &str) {
    if target() == Some(name) {
        warn!("fault point reached: {name}; pausing here until the process is killed");
        std::future::pending::<()>().await;
    }
}

fn target() -> Option<&'static str> {
    static TARGET: OnceLock<Option<String>> = OnceLock::new();
    TARGET
        .get_or_init(|| std::env::var(PAUSE_AT).ok())
        .as_deref()
}
