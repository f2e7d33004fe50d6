//! The sample fleet `slipway-coordinator --dev` writes on first start, and
//! the fleet the domain's own tests plan against.

/// The sample fleet written to `DIR/fleet.toml` on first start; edit it freely.
pub const SAMPLE_FLEET: &str = r#"# Slipway's sample fleet. Edit it, then `slipway fleet apply` it (or restart
# the coordinator, which takes this file if it changed).

[coordinator]
heartbeat_interval = "1s"
# A new instance whose agent is silent this long is lost: the deploy rolls back.
agent_lost_after = "4s"

[environments.staging]
instances = 1
variables = { GREETING = "hello from staging" }

[environments.qaprod1]
instances = 1
variables = { GREETING = "hello from qaprod1" }

[environments.prod1]
instances = 2
variables = { GREETING = "hello from prod1" }

[environments.prod2]
instances = 2
variables = { GREETING = "hello from prod2" }

# Data stores and the environments that use them: qaprod1 runs on production's.
# In the local cloud a store is a plain file; a relative path resolves against
# the image root, so these land in DIR/cloud/stores/.
[data_stores.hello-db]
environments = ["qaprod1", "prod1", "prod2"]
variables = { HELLO_DB = "../../stores/hello-db" }

[data_stores.hello-db-staging]
environments = ["staging"]
variables = { HELLO_DB = "../../stores/hello-db-staging" }

[projects.hello]
instance_port = 8080
services = [{ name = "web", command = "bin/slipway-sample-app" }]
data_stores = ["hello-db", "hello-db-staging"]

[projects.hello.health_check]
path = "/health"
port = 8080
interval = "200ms"
timeout = "1s"
healthy_threshold = 2
unhealthy_threshold = 2

[projects.hello.deadlines]
launch = "30s"
boot = "30s"
configure = "20s"
ready = "10s"
attach = "20s"
drain = "10s"

# Optional: how services are restarted (the defaults shown), and whether a
# serving instance whose agent goes silent is replaced.
# [projects.hello.restart]
# when = "always"        # or "on-failure", "never"
# limit = 5              # restarts within window before the service is failed
# window = "60s"
# and, under [projects.hello]: replace_lost_instances = true

# The schema change each release runs once per data store, on one new instance,
# before any of them takes traffic. Keep it backward compatible (expand, then
# contract in a later release): the old instances keep serving meanwhile.
[projects.hello.migration]
command = "bin/slipway-sample-app"
args = ["migrate"]
timeout = "30s"

[projects.hello.public]
name = "hello.example.com"
environments = ["prod1", "prod2"]
"#;
