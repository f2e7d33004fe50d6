//! A coordinator in this process: the memory store, the fake cloud and a manual
//! clock, with the real CA, secrets, tokens, audit and executor. No process, no
//! port, no sleep: a test drives the executor one tick at a time.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod fake_cloud;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use slipway_coordinator::clock::ManualClock;
use slipway_coordinator::cloud::Cloud;
use slipway_coordinator::config::Fleet;
use slipway_coordinator::coordinator::{Advertised, Coordinator, Parts};
use slipway_coordinator::deploy::{Deployment, Phase};
use slipway_coordinator::events::Events;
use slipway_coordinator::executor::{self, Step};
use slipway_coordinator::fleets::Fleets;
use slipway_coordinator::pki::{Ca, Identity, Role};
use slipway_coordinator::revocation::Revocations;
use slipway_coordinator::secrets::Secrets;
use slipway_coordinator::store::{Db, MemoryStore};
use slipway_domain::sample::SAMPLE_FLEET;

pub use fake_cloud::FakeCloud;

/// 2026-11-30T00:00:00Z: a fixed start, so nothing depends on the day the test runs.
pub const START: i64 = 1_795_996_800_000;

pub struct Sandbox {
    pub coordinator: Arc<Coordinator>,
    pub cloud: Arc<FakeCloud>,
    pub clock: Arc<ManualClock>,
    pub store: Arc<MemoryStore>,
    /// The coordinator's own handle (its epoch), to read tables directly.
    pub db: Db,
    dir: PathBuf,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn admin() -> Identity {
    Identity::new("admin", Role::Admin)
}

impl Sandbox {
    /// The sample fleet, its load balancers made, `hello v1` and `v2` registered.
    pub async fn new() -> Sandbox {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "slipway-in-process-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fleet = Fleet::parse(SAMPLE_FLEET, "the sample fleet").unwrap();
        let fake = FakeCloud::new();
        let cloud = Cloud {
            compute: fake.clone(),
            load_balancer: fake.clone(),
            dns: fake.clone(),
        };
        let changes = slipway_coordinator::infra::plan(&fleet, &cloud)
            .await
            .unwrap();
        slipway_coordinator::infra::apply(&cloud, &changes)
            .await
            .unwrap();
        let store = Arc::new(MemoryStore::default());
        let db = Db::open(store.clone()).await.unwrap();
        let clock = Arc::new(ManualClock::at(START));
        let events = Arc::new(Events::new(db.clone(), clock.clone()));
        let coordinator = Coordinator::new(Parts {
            events: events.clone(),
            secrets: Secrets::open(db.clone(), &dir.join("secrets.key"))
                .await
                .unwrap(),
            revocations: Revocations::load(db.clone(), clock.clone(), events.clone())
                .await
                .unwrap(),
            ca: Arc::new(Ca::load_or_create(&dir.join("ca"), clock.clone()).unwrap()),
            db: db.clone(),
            fleets: Arc::new(
                Fleets::open(
                    db.clone(),
                    clock.clone(),
                    events.clone(),
                    fleet,
                    SAMPLE_FLEET,
                )
                .await
                .unwrap(),
            ),
            cloud,
            advertised: Advertised {
                address: "https://127.0.0.1:7443".into(),
                others: vec![],
                server_name: "slipway-coordinator".into(),
            },
            clock: clock.clone(),
            metrics: Arc::default(),
            dashboard_access: Arc::new(
                slipway_coordinator::dashboard::access::DashboardAccess::load(
                    db.clone(),
                    clock.clone(),
                )
                .await
                .unwrap(),
            ),
            dashboard_address: None,
            snapshots: None,
        });
        for version in ["v1", "v2"] {
            coordinator
                .operations
                .register_release(&admin(), "hello", version, None, &Default::default())
                .await
                .unwrap();
        }
        Sandbox {
            coordinator,
            cloud: fake,
            clock,
            store,
            db,
            dir,
        }
    }

    /// Queues `hello VERSION` onto `environment` as the admin.
    pub async fn deploy(&self, version: &str, environment: &str) -> String {
        self.coordinator
            .operations
            .deploy(&admin(), "hello", version, environment, None)
            .await
            .unwrap()
            .id
    }

    pub async fn stored(&self, id: &str) -> Deployment {
        self.coordinator.deployments.get(id).await.unwrap().unwrap()
    }

    pub async fn tick(&self, id: &str) -> Result<Step, executor::StepError> {
        executor::tick(&self.coordinator.executor, id).await
    }

    /// Ticks until the deployment is in `phase` (or finished), at most `ticks` times;
    /// failed ticks are retried, as the executor does.
    pub async fn tick_until(&self, id: &str, phase: Phase, ticks: usize) -> Deployment {
        for _ in 0..ticks {
            let d = self.stored(id).await;
            if d.phase == phase || d.phase.is_finished() {
                return d;
            }
            let _ = self.tick(id).await;
        }
        self.stored(id).await
    }
}
