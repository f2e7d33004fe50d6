//! A blocking view into a dev coordinator's local cloud, through the same client
//! the coordinator uses: what the fault harness audits after every run.

use std::collections::BTreeMap;
use std::path::Path;

use slipway_coordinator::cloud::local::LocalCloud;
use slipway_coordinator::cloud::local::protocol::Registration;
use slipway_coordinator::cloud::{Dns, Instance, LoadBalancer};
use slipway_coordinator::deploy::machine::MemberState;

pub struct CloudView {
    cloud: LocalCloud,
    runtime: tokio::runtime::Runtime,
}

impl CloudView {
    /// The local cloud of the coordinator whose data dir is `data_dir`.
    pub fn new(data_dir: &Path) -> CloudView {
        CloudView {
            cloud: LocalCloud::new(&data_dir.join("cloud")),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
        }
    }

    /// Every instance of a project in an environment, terminated ones too.
    pub fn instances(&self, project: &str, environment: &str) -> Vec<Instance> {
        let tags = BTreeMap::from([
            ("slipway:project".to_string(), project.to_string()),
            ("slipway:env".to_string(), environment.to_string()),
        ]);
        self.runtime
            .block_on(self.cloud.all_instances(&tags))
            .expect("list the local cloud's instances")
    }

    pub fn members(&self, load_balancer: &str) -> BTreeMap<String, MemberState> {
        self.runtime
            .block_on(self.cloud.members(load_balancer))
            .expect("load balancer members")
    }

    /// The load balancer a public record points at.
    pub fn record_target(&self, record: &str) -> Option<String> {
        self.runtime
            .block_on(self.cloud.target(record))
            .expect("record target")
    }

    pub fn registrations(&self) -> Vec<Registration> {
        self.runtime
            .block_on(self.cloud.registrations())
            .expect("registrations")
    }
}
