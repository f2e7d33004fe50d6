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
    /// The local cloud's own directory (DATA_DIR/cloud).
    dir: std::path::PathBuf,
    runtime: tokio::runtime::Runtime,
}

impl CloudView {
    /// The local cloud of the coordinator whose data dir is `data_dir`.
    pub fn new(data_dir: &Path) -> CloudView {
        CloudView {
            cloud: LocalCloud::new(&data_dir.join("cloud")),
            dir: data_dir.join("cloud"),
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

    /// Bakes an image of the sample app as `project` at `version` (healthy or
    /// answering 500 on its health check), from the agent and app binaries of
    /// a sample image the dev coordinator baked; returns its id. What CI's
    /// image build does, on the local cloud.
    pub fn bake(&self, project: &str, version: &str, healthy: bool) -> String {
        let images = self.dir.join("images");
        let sample = std::fs::read_dir(&images)
            .expect("the local cloud's images")
            .flatten()
            .map(|e| e.path())
            .find(|p| p.join("bin/slipway-sample-app").exists())
            .expect("a sample image baked by the dev coordinator");
        self.bake_from(
            project,
            version,
            &format!(
                "version = \"{version}\"\nhealthy = {healthy}\nschema = 1\nmigration = \"ok\"\n"
            ),
            |source| {
                std::fs::create_dir_all(source.join("bin")).expect("bake dir");
                for binary in ["slipway-agent", "slipway-sample-app"] {
                    std::fs::copy(
                        sample.join("bin").join(binary),
                        source.join("bin").join(binary),
                    )
                    .expect("copy a sample binary");
                }
            },
        )
    }

    /// Bakes an image with no agent in it (the local cloud boots nothing
    /// for its instances: `hollow` plays their agents) as `project` at
    /// `version`; returns its id.
    pub fn bake_hollow(&self, project: &str, version: &str) -> String {
        self.bake_from(
            project,
            version,
            &format!("version = \"{version}\"\nagent = \"none\"\n"),
            |_| {},
        )
    }

    /// An image of `app_toml` and what `fill` puts beside it, tagged as
    /// `project`'s release `version`; its id.
    fn bake_from(
        &self,
        project: &str,
        version: &str,
        app_toml: &str,
        fill: impl FnOnce(&Path),
    ) -> String {
        let source = self.dir.join(format!("bake-{project}-{version}"));
        let _ = std::fs::remove_dir_all(&source);
        std::fs::create_dir_all(&source).expect("bake dir");
        fill(&source);
        std::fs::write(source.join("app.toml"), app_toml).expect("app.toml");
        let tags = BTreeMap::from([
            ("slipway:project".to_string(), project.to_string()),
            ("slipway:version".to_string(), version.to_string()),
        ]);
        let id = self
            .runtime
            .block_on(self.cloud.import_image(&source, tags))
            .expect("import the image");
        let _ = std::fs::remove_dir_all(&source);
        id
    }

    pub fn registrations(&self) -> Vec<Registration> {
        self.runtime
            .block_on(self.cloud.registrations())
            .expect("registrations")
    }
}
