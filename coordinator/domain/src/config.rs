//! The fleet file: projects, their services and health checks, environments with
//! their variables and instance counts, and the deadlines of every deploy phase.
//!
//! One TOML file, typed with serde and `deny_unknown_fields`, validated on load so
//! that a mistake is named with its file, key and fix before anything runs.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A fleet file that cannot be used, with where and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read fleet file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: {key}: {message}")]
    Invalid {
        path: String,
        key: String,
        message: String,
    },
}

/// Everything the coordinator knows about what it deploys and where.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Fleet {
    #[serde(default)]
    pub coordinator: CoordinatorSettings,
    /// Which cloud to drive; the embedded local cloud unless told otherwise.
    #[serde(default)]
    pub cloud: CloudSettings,
    pub environments: BTreeMap<String, Environment>,
    pub projects: BTreeMap<String, Project>,
    /// Databases and the like, each used by the environments it names:
    /// qaprod1, prod1 and prod2 may share one.
    #[serde(default)]
    pub data_stores: BTreeMap<String, DataStore>,
    /// Where events are told: `[notifications.NAME]`, each delivered at
    /// least once, in order, from an outbox of its own.
    #[serde(default)]
    pub notifications: BTreeMap<String, Notification>,
}

/// What a notification delivers to.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// A JSON POST of the event, signed with HMAC-SHA256.
    Webhook,
    /// Slack's incoming-webhook format: one line a person reads.
    Slack,
    /// A message over SMTP (STARTTLS required) to a list of addresses.
    Email,
}

impl SinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Webhook => "webhook",
            SinkKind::Slack => "slack",
            SinkKind::Email => "email",
        }
    }
}

/// The kinds of events there are; a filter names some (or `PREFIX.*`).
pub const EVENT_KINDS: &[&str] = &[
    "deployment.queued",
    "deployment.launching",
    "deployment.booting",
    "deployment.configuring",
    "deployment.ready",
    "deployment.migrating",
    "deployment.attaching",
    "deployment.draining",
    "deployment.watching",
    "deployment.retiring",
    "deployment.succeeded",
    "deployment.rolling_back",
    "deployment.rolled_back",
    "deployment.cancelled",
    "deployment.cancel_requested",
    "deployment.rollback_requested",
    "migration.finished",
    "release.registered",
    "release.checked",
    "deployment.approved",
    "deployment.freeze_overridden",
    "promotion.requested",
    "promotion.approved",
    "promotion.started",
    "promotion.finished",
    "fleet.applied",
    "certificate.revoked",
    "agent.lost",
];

/// A sink for events: `[notifications.NAME]`. Its secrets (`secret set NAME
/// KEY`) are its own: a signing key, a token for a header, a URL that is a
/// secret itself (Slack's).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Notification {
    pub kind: SinkKind,
    /// Webhook, Slack: where to POST: https, or http to this machine only.
    /// Or `url_secret`.
    pub url: Option<String>,
    /// The name of this sink's secret that holds the URL (Slack's carry a token).
    pub url_secret: Option<String>,
    /// The name of this sink's secret the body is signed with (webhook):
    /// `X-Slipway-Signature: sha256=HMAC-SHA256(secret, body)`.
    pub signing_secret: Option<String>,
    /// Extra headers, as given.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Extra headers whose values are this sink's secrets (header → secret
    /// name): an issue tracker's token, say.
    #[serde(default)]
    pub secret_headers: BTreeMap<String, String>,
    /// Only events about these projects (empty: any).
    #[serde(default)]
    pub projects: Vec<String>,
    /// Only events about these environments (empty: any).
    #[serde(default)]
    pub environments: Vec<String>,
    /// Only these kinds, e.g. "deployment.rolled_back", or "deployment.*"
    /// (empty: any).
    #[serde(default)]
    pub events: Vec<String>,
    /// Email: the SMTP server, `HOST:PORT` (587, say); STARTTLS is required.
    pub smtp: Option<String>,
    /// Email: the sender, and the recipients (a change-management mailbox).
    pub from: Option<String>,
    #[serde(default)]
    pub to: Vec<String>,
    /// Email: the login, its password in this sink's secret `password_secret`.
    pub username: Option<String>,
    pub password_secret: Option<String>,
    /// Email: a PEM CA certificate to trust for the SMTP server, besides the
    /// system's (a company's own CA, say).
    pub ca_file: Option<std::path::PathBuf>,
    /// How long to keep retrying an event before it is given up (audited).
    #[serde(deserialize_with = "duration", default = "default_give_up_after")]
    pub give_up_after: Duration,
}

fn default_give_up_after() -> Duration {
    Duration::from_secs(24 * 3600)
}

impl Notification {
    /// Whether an event of `kind` about `project` in `environment` is for it.
    pub fn wants(&self, kind: &str, project: Option<&str>, environment: Option<&str>) -> bool {
        let named = |list: &[String], value: Option<&str>| {
            list.is_empty() || value.is_some_and(|v| list.iter().any(|l| l == v))
        };
        let kinds = self.events.is_empty()
            || self.events.iter().any(|k| match k.strip_suffix('*') {
                Some(prefix) => kind.starts_with(prefix),
                None => k == kind,
            });
        kinds && named(&self.projects, project) && named(&self.environments, environment)
    }
}

/// A data store (a database) some environments share: `[data_stores.NAME]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataStore {
    /// The environments whose projects use this store.
    pub environments: Vec<String>,
    /// How to connect, pushed to every project that uses the store in one of
    /// its environments (over the environment's variables, under the project's).
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
}

/// A project's schema change, run once per release and data store, on one
/// new instance, before any of them takes traffic: `[projects.NAME.migration]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Migration {
    /// A command in the image; relative paths resolve against the image root.
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    /// How long the command may run before it counts as failed.
    #[serde(deserialize_with = "duration", default = "default_migration_timeout")]
    pub timeout: Duration,
    /// How long a deployment may wait for another's migration of the same
    /// store (the lock) before it rolls back; not counted in `timeout`.
    #[serde(deserialize_with = "duration", default = "default_lock_wait")]
    pub lock_wait: Duration,
}

fn default_migration_timeout() -> Duration {
    Duration::from_secs(600)
}

fn default_lock_wait() -> Duration {
    Duration::from_secs(1800)
}

/// Settings of the coordinator itself.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CoordinatorSettings {
    /// How often agents heartbeat.
    #[serde(deserialize_with = "duration")]
    pub heartbeat_interval: Duration,
    /// A new instance whose agent is silent this long is lost: the deploy rolls back.
    #[serde(deserialize_with = "duration")]
    pub agent_lost_after: Duration,
    /// How long an agent certificate lives; agents renew at two thirds of it.
    #[serde(deserialize_with = "duration")]
    pub agent_certificate_lifetime: Duration,
    /// Finished deployments, events, undelivered notifications, fleet files
    /// and request answers older than this are compacted (counts kept; the
    /// audit log never).
    #[serde(deserialize_with = "duration")]
    pub keep: Duration,
}

impl Default for CoordinatorSettings {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(1),
            agent_lost_after: Duration::from_secs(5),
            agent_certificate_lifetime: Duration::from_secs(24 * 3600),
            keep: Duration::from_secs(90 * 24 * 3600),
        }
    }
}

/// Which cloud the coordinator drives.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    #[default]
    Local,
    Aws,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CloudSettings {
    #[serde(default)]
    pub provider: Provider,
    /// AWS region; default: the standard aws-config chain (AWS_REGION, profile...).
    pub region: Option<String>,
    /// An AWS-compatible endpoint instead of AWS's own (a moto server, say).
    pub endpoint: Option<String>,
}

/// Where and how an environment's instances and load balancers run on AWS.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AwsPlacement {
    pub instance_type: String,
    /// Instances spread over these in turn; the load balancer spans them.
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub load_balancer_security_groups: Vec<String>,
    /// The instance profile (role) instances run with.
    pub instance_profile: Option<String>,
}

impl Default for AwsPlacement {
    fn default() -> Self {
        Self {
            instance_type: "t3.micro".into(),
            subnets: vec![],
            security_groups: vec![],
            load_balancer_security_groups: vec![],
            instance_profile: None,
        }
    }
}

/// One environment (staging, qaprod1, prod1, ...): one cluster per project.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// How many instances each project runs here, unless the project overrides it.
    pub instances: u32,
    /// Variables every service of this environment sees, over those of the
    /// environment it inherits from.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// Another environment whose variables this one starts from (qaprod1
    /// from prod1), overriding some.
    pub inherits: Option<String>,
    /// Checks (`slipway release check`) a release must have passed before it
    /// is deployed here: `["unit", "integration"]` for production, say.
    #[serde(default)]
    pub requires_checks: Vec<String>,
    /// Environments a release must have succeeded in first (prod1 and prod2
    /// after qaprod1; qaprod1 after staging).
    #[serde(default)]
    pub requires_success_in: Vec<String>,
    /// A deployment here waits for an approval (`slipway approve ID`) by a
    /// deployer or admin of this environment other than its requester.
    #[serde(default)]
    pub requires_approval: bool,
    /// How long, after a switch, the previous instances stay running out of
    /// the load balancer (standby) while the new ones are watched: a failure
    /// or `slipway rollback` within it re-attaches them in seconds. "0s"
    /// (the default) terminates them once drained.
    #[serde(default, deserialize_with = "duration")]
    pub keep_previous: Duration,
    /// Windows in which nothing is deployed or promoted here: a deployment
    /// queued in one waits for its end (rollbacks pass; an admin may pass
    /// one through with `slipway override-freeze`).
    #[serde(default)]
    pub freeze: Vec<crate::freeze::Freeze>,
    #[serde(default)]
    pub aws: AwsPlacement,
}

/// An application Slipway deploys.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Project {
    /// The port the load balancer forwards to on each instance.
    pub instance_port: u16,
    /// The port the load balancer listens on (AWS; the local cloud picks a free one).
    #[serde(default = "default_listener_port")]
    pub listener_port: u16,
    /// The commands the agent starts and supervises, as systemd would.
    pub services: Vec<Service>,
    pub health_check: HealthCheck,
    /// Per-environment instance counts that override the environment's.
    #[serde(default)]
    pub instances: BTreeMap<String, u32>,
    /// Variables for this project's services, over the environment's.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    #[serde(default)]
    pub deadlines: Deadlines,
    /// When the agent restarts a service that exits.
    #[serde(default)]
    pub restart: Restart,
    /// Replace a serving instance whose agent is lost (silent past
    /// `agent_lost_after`) with a fresh one of the same release.
    #[serde(default)]
    pub replace_lost_instances: bool,
    /// The public DNS record that promotion moves between production clusters.
    pub public: Option<PublicRecord>,
    /// The data stores this project uses (`[data_stores.NAME]`), each in the
    /// environments it names.
    #[serde(default)]
    pub data_stores: Vec<String>,
    /// The schema change each release runs before it takes traffic.
    pub migration: Option<Migration>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub name: String,
    /// Relative paths resolve against the image root.
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
}

/// When the agent restarts a service that exited (systemd's `Restart=`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RestartWhen {
    #[default]
    Always,
    OnFailure,
    Never,
}

/// A project's restart policy: `[projects.NAME.restart]`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Restart {
    pub when: RestartWhen,
    /// More restarts than this within `window` and the agent gives up on the
    /// service, reporting it failed (systemd's `StartLimitBurst=`).
    pub limit: u32,
    #[serde(deserialize_with = "duration")]
    pub window: Duration,
}

impl Default for Restart {
    fn default() -> Self {
        Restart {
            when: RestartWhen::Always,
            limit: 5,
            window: Duration::from_secs(60),
        }
    }
}

/// The HTTP check the agent runs on its own instance: readiness comes from here,
/// never from the load balancer's view.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    pub path: String,
    pub port: u16,
    #[serde(deserialize_with = "duration", default = "default_check_interval")]
    pub interval: Duration,
    #[serde(deserialize_with = "duration", default = "default_check_timeout")]
    pub timeout: Duration,
    /// Consecutive passes before an instance counts as ready.
    #[serde(default = "default_threshold")]
    pub healthy_threshold: u32,
    /// Consecutive failures before a ready instance counts as failing.
    #[serde(default = "default_threshold")]
    pub unhealthy_threshold: u32,
}

fn default_listener_port() -> u16 {
    80
}

fn default_check_interval() -> Duration {
    Duration::from_millis(500)
}
fn default_check_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_threshold() -> u32 {
    2
}

/// How long each phase of a deploy may take before it rolls back.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Deadlines {
    #[serde(deserialize_with = "duration")]
    pub launch: Duration,
    /// From launch until every new agent has said hello.
    #[serde(deserialize_with = "duration")]
    pub boot: Duration,
    /// Until every new instance runs its services with the pushed config.
    #[serde(deserialize_with = "duration")]
    pub configure: Duration,
    /// Until every new instance passes its health check.
    #[serde(deserialize_with = "duration")]
    pub ready: Duration,
    /// Until the load balancer has every new instance in service.
    #[serde(deserialize_with = "duration")]
    pub attach: Duration,
    /// The longest old instances get to finish open connections.
    #[serde(deserialize_with = "duration")]
    pub drain: Duration,
    /// Cleanup (draining, retiring, rolling back) that the cloud keeps refusing
    /// this long ends anyway: the deployment finishes and names what is left.
    #[serde(deserialize_with = "duration")]
    pub cleanup: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            launch: Duration::from_secs(60),
            boot: Duration::from_secs(120),
            configure: Duration::from_secs(60),
            ready: Duration::from_secs(120),
            attach: Duration::from_secs(120),
            drain: Duration::from_secs(30),
            cleanup: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PublicRecord {
    /// The DNS name users reach the project at, e.g. `www.example.com`.
    pub name: String,
    /// The hosted zone the records live in; default: `name` without its first label.
    pub zone: Option<String>,
    /// The production clusters promotion moves the record between.
    pub environments: Vec<String>,
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "{text:?} is not a duration ({e}): write it like \"500ms\", \"5s\" or \"2m\""
        ))
    })
}

impl Fleet {
    /// Reads and validates a fleet file.
    pub fn load(path: &Path) -> Result<Fleet, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Fleet::parse(&text, &path.display().to_string())
    }

    /// Parses and validates fleet TOML; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Fleet, ConfigError> {
        let fleet: Fleet = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        fleet
            .validate()
            .map_err(|(key, message)| ConfigError::Invalid {
                path: origin.to_string(),
                key,
                message,
            })?;
        Ok(fleet)
    }

    fn validate(&self) -> Result<(), (String, String)> {
        let fail = |key: String, message: String| Err((key, message));
        if self.cloud.provider == Provider::Local
            && (self.cloud.region.is_some() || self.cloud.endpoint.is_some())
        {
            return fail(
                "cloud".into(),
                "region and endpoint apply to provider = \"aws\" only".into(),
            );
        }
        if let Some(endpoint) = &self.cloud.endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return fail(
                "cloud.endpoint".into(),
                format!("{endpoint:?} must be a URL, e.g. \"http://127.0.0.1:5000\""),
            );
        }
        if self.coordinator.agent_certificate_lifetime < Duration::from_secs(5) {
            return fail(
                "coordinator.agent_certificate_lifetime".into(),
                "under 5s leaves agents no time to renew: use e.g. \"24h\"".into(),
            );
        }
        if self.environments.is_empty() {
            return fail(
                "environments".into(),
                "no environment: add one, e.g. [environments.staging] with instances = 1".into(),
            );
        }
        if self.projects.is_empty() {
            return fail(
                "projects".into(),
                "no project: add one, e.g. [projects.web] with services and a health_check".into(),
            );
        }
        if self.coordinator.heartbeat_interval.is_zero() {
            return fail(
                "coordinator.heartbeat_interval".into(),
                "must be more than zero".into(),
            );
        }
        if self.coordinator.keep < Duration::from_secs(24 * 3600) {
            return fail(
                "coordinator.keep".into(),
                "must be a day or more (\"90d\" by default): a shorter one drops what operators still read".into(),
            );
        }
        if self.coordinator.agent_lost_after <= self.coordinator.heartbeat_interval {
            return fail(
                "coordinator.agent_lost_after".into(),
                "must be longer than heartbeat_interval, or every agent looks lost".into(),
            );
        }
        for (name, env) in &self.environments {
            check_name(&format!("environments.{name}"), name)?;
            check_count(&format!("environments.{name}.instances"), env.instances)?;
            // Follow the chain: every step must exist, and it must end.
            let mut seen = vec![name.as_str()];
            let mut next = env.inherits.as_deref();
            while let Some(parent) = next {
                let key = format!("environments.{name}.inherits");
                let Some(found) = self.environments.get(parent) else {
                    return fail(
                        key,
                        format!("no environment {parent:?}: define [environments.{parent}]"),
                    );
                };
                if seen.contains(&parent) {
                    return fail(
                        key,
                        format!(
                            "inheritance goes round in a circle: {} -> {parent}",
                            seen.join(" -> ")
                        ),
                    );
                }
                seen.push(parent);
                next = found.inherits.as_deref();
            }
            for check in &env.requires_checks {
                check_name(&format!("environments.{name}.requires_checks"), check)?;
            }
            for first in &env.requires_success_in {
                let key = format!("environments.{name}.requires_success_in");
                if first == name {
                    return fail(key, "an environment cannot come before itself".into());
                }
                if !self.environments.contains_key(first) {
                    return fail(
                        key,
                        format!("no environment {first:?}: define [environments.{first}]"),
                    );
                }
            }
        }
        // A circle of `requires_success_in` would hold every release forever.
        for (name, env) in &self.environments {
            let mut pending: Vec<&str> =
                env.requires_success_in.iter().map(String::as_str).collect();
            let mut seen = std::collections::BTreeSet::new();
            while let Some(first) = pending.pop() {
                if first == name {
                    return fail(
                        format!("environments.{name}.requires_success_in"),
                        format!("{name} would have to succeed before itself: break the circle"),
                    );
                }
                if seen.insert(first)
                    && let Some(found) = self.environments.get(first)
                {
                    pending.extend(found.requires_success_in.iter().map(String::as_str));
                }
            }
        }
        for (name, store) in &self.data_stores {
            let key = format!("data_stores.{name}");
            check_name(&key, name)?;
            // `slipway secret set NAME ...` names an environment or a store.
            if self.environments.contains_key(name) {
                return fail(
                    key,
                    format!("{name:?} is also an environment: give the data store another name"),
                );
            }
            if store.environments.is_empty() {
                return fail(
                    format!("{key}.environments"),
                    "name the environments that use it, e.g. [\"prod1\", \"prod2\"]".into(),
                );
            }
            for env in &store.environments {
                if !self.environments.contains_key(env) {
                    return fail(
                        format!("{key}.environments"),
                        format!("no environment {env:?}: define [environments.{env}]"),
                    );
                }
            }
        }
        for (name, sink) in &self.notifications {
            self.check_notification(name, sink)?;
        }
        for (name, project) in &self.projects {
            let key = format!("projects.{name}");
            check_name(&key, name)?;
            check_port(&format!("{key}.instance_port"), project.instance_port)?;
            check_port(&format!("{key}.listener_port"), project.listener_port)?;
            if project.services.is_empty() {
                return fail(
                    format!("{key}.services"),
                    "no service: add [[projects.NAME.services]] with name and command".into(),
                );
            }
            for (i, service) in project.services.iter().enumerate() {
                let skey = format!("{key}.services[{i}]");
                check_name(&format!("{skey}.name"), &service.name)?;
                if service.command.trim().is_empty() {
                    return fail(format!("{skey}.command"), "empty command".into());
                }
                if project.services[..i].iter().any(|s| s.name == service.name) {
                    return fail(
                        format!("{skey}.name"),
                        format!(
                            "service {:?} is named twice: names must be unique",
                            service.name
                        ),
                    );
                }
            }
            let check = &project.health_check;
            let hkey = format!("{key}.health_check");
            if !check.path.starts_with('/') {
                return fail(
                    format!("{hkey}.path"),
                    format!("{:?} must start with '/', e.g. \"/health\"", check.path),
                );
            }
            check_port(&format!("{hkey}.port"), check.port)?;
            for (field, value) in [("interval", check.interval), ("timeout", check.timeout)] {
                if value.is_zero() {
                    return fail(format!("{hkey}.{field}"), "must be more than zero".into());
                }
            }
            for (field, value) in [
                ("healthy_threshold", check.healthy_threshold),
                ("unhealthy_threshold", check.unhealthy_threshold),
            ] {
                if !(1..=100).contains(&value) {
                    return fail(
                        format!("{hkey}.{field}"),
                        format!("{value} is out of range: use 1-100"),
                    );
                }
            }
            for (env, count) in &project.instances {
                let ikey = format!("{key}.instances.{env}");
                if !self.environments.contains_key(env) {
                    return fail(
                        ikey,
                        format!("no environment {env:?}: define [environments.{env}]"),
                    );
                }
                check_count(&ikey, *count)?;
            }
            let d = &project.deadlines;
            for (field, value) in [
                ("launch", d.launch),
                ("boot", d.boot),
                ("configure", d.configure),
                ("ready", d.ready),
                ("attach", d.attach),
                ("drain", d.drain),
                ("cleanup", d.cleanup),
            ] {
                if value.is_zero() {
                    return fail(
                        format!("{key}.deadlines.{field}"),
                        "must be more than zero".into(),
                    );
                }
            }
            if project.restart.limit == 0 {
                return fail(
                    format!("{key}.restart.limit"),
                    "must be at least 1; for no restarts, set when = \"never\"".into(),
                );
            }
            if project.restart.window.is_zero() {
                return fail(
                    format!("{key}.restart.window"),
                    "must be more than zero".into(),
                );
            }
            for store in &project.data_stores {
                if !self.data_stores.contains_key(store) {
                    return fail(
                        format!("{key}.data_stores"),
                        format!("no data store {store:?}: define [data_stores.{store}]"),
                    );
                }
            }
            if let Some(migration) = &project.migration {
                let mkey = format!("{key}.migration");
                if migration.command.trim().is_empty() {
                    return fail(format!("{mkey}.command"), "empty command".into());
                }
                for (field, value) in [
                    ("timeout", migration.timeout),
                    ("lock_wait", migration.lock_wait),
                ] {
                    if value.is_zero() {
                        return fail(format!("{mkey}.{field}"), "must be more than zero".into());
                    }
                }
                // The store a migration changes is the project's store in the
                // target environment: exactly one, or which one is unclear.
                for env in self.environments.keys() {
                    let stores: Vec<&String> = project
                        .data_stores
                        .iter()
                        .filter(|s| self.data_stores[*s].environments.contains(env))
                        .collect();
                    if stores.len() != 1 {
                        return fail(
                            format!("{key}.data_stores"),
                            format!(
                                "a project with a migration uses exactly one data store in each environment; in {env} it uses {}: list one store that names {env}",
                                if stores.is_empty() {
                                    "none".to_string()
                                } else {
                                    stores
                                        .iter()
                                        .map(|s| s.as_str())
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                }
                            ),
                        );
                    }
                }
            }
            if let Some(public) = &project.public {
                if public.name.trim().is_empty() {
                    return fail(format!("{key}.public.name"), "empty record name".into());
                }
                if public.environments.is_empty() {
                    return fail(
                        format!("{key}.public.environments"),
                        "name the production environments the record can point at".into(),
                    );
                }
                for env in &public.environments {
                    if !self.environments.contains_key(env) {
                        return fail(
                            format!("{key}.public.environments"),
                            format!("no environment {env:?}: define [environments.{env}]"),
                        );
                    }
                }
            }
        }
        Ok(())
    }

    pub fn project(&self, name: &str) -> Option<&Project> {
        self.projects.get(name)
    }

    /// How many instances `project` runs in `environment`.
    pub fn instance_count(&self, project: &str, environment: &str) -> Option<u32> {
        let env = self.environments.get(environment)?;
        let project = self.projects.get(project)?;
        Some(
            project
                .instances
                .get(environment)
                .copied()
                .unwrap_or(env.instances),
        )
    }

    /// The hosted zone of a public record name.
    pub fn zone_of(public: &PublicRecord) -> String {
        public.zone.clone().unwrap_or_else(|| {
            public
                .name
                .split_once('.')
                .map_or(public.name.clone(), |(_, rest)| rest.to_string())
        })
    }

    /// The variables a project's services see in an environment: the
    /// environment's (over those it inherits), then its data stores' there,
    /// then the project's own.
    pub fn variables(&self, project: &str, environment: &str) -> BTreeMap<String, String> {
        let mut vars = BTreeMap::new();
        // The farthest ancestor first, so each nearer environment overrides it.
        let mut chain = Vec::new();
        let mut next = self.environments.get(environment);
        while let Some(env) = next.filter(|_| chain.len() <= self.environments.len()) {
            chain.push(env);
            next = env
                .inherits
                .as_deref()
                .and_then(|p| self.environments.get(p));
        }
        for env in chain.into_iter().rev() {
            vars.extend(env.variables.clone());
        }
        for (_, store) in self.data_stores_of(project, environment) {
            vars.extend(store.variables.clone());
        }
        if let Some(project) = self.projects.get(project) {
            vars.extend(project.variables.clone());
        }
        vars
    }

    /// The data stores `project` uses in `environment`, by name.
    pub fn data_stores_of<'a>(
        &'a self,
        project: &str,
        environment: &str,
    ) -> Vec<(&'a str, &'a DataStore)> {
        let Some(project) = self.projects.get(project) else {
            return Vec::new();
        };
        project
            .data_stores
            .iter()
            .filter_map(|name| Some((name.as_str(), self.data_stores.get(name)?)))
            .filter(|(_, store)| store.environments.iter().any(|e| e == environment))
            .collect()
    }

    /// What a deployment of `project` onto `environment` migrates: the command
    /// and the one store it changes there. None: no migration.
    pub fn migration_of(&self, project: &str, environment: &str) -> Option<(&Migration, &str)> {
        let migration = self.projects.get(project)?.migration.as_ref()?;
        let stores = self.data_stores_of(project, environment);
        match stores.as_slice() {
            [(store, _)] => Some((migration, store)),
            _ => None,
        }
    }
}

/// Names become tags, load balancer names and file names: keep them plain.
pub fn check_name(key: &str, name: &str) -> Result<(), (String, String)> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err((
            key.to_string(),
            format!("{name:?} is not a valid name: use 1-32 of a-z, 0-9 and '-'"),
        ))
    }
}

impl Fleet {
    fn check_notification(&self, name: &str, sink: &Notification) -> Result<(), (String, String)> {
        let key = format!("notifications.{name}");
        check_name(&key, name)?;
        // `slipway secret set NAME ...` names an environment, a store or a sink.
        if self.environments.contains_key(name) || self.data_stores.contains_key(name) {
            return Err((
                key,
                format!(
                    "{name:?} is also an environment or data store: give the notification another name"
                ),
            ));
        }
        match sink.kind {
            SinkKind::Email => check_email(&key, sink)?,
            SinkKind::Webhook | SinkKind::Slack => {
                let email_only = [
                    ("smtp", sink.smtp.is_some()),
                    ("from", sink.from.is_some()),
                    ("to", !sink.to.is_empty()),
                    ("username", sink.username.is_some()),
                    ("password_secret", sink.password_secret.is_some()),
                    ("ca_file", sink.ca_file.is_some()),
                ];
                if let Some((field, _)) = email_only.iter().find(|(_, given)| *given) {
                    return Err((
                        format!("{key}.{field}"),
                        format!("is for kind = \"email\", not {:?}", sink.kind.as_str()),
                    ));
                }
                match (&sink.url, &sink.url_secret) {
                    (Some(url), None) => check_url(&format!("{key}.url"), url)?,
                    (None, Some(secret)) => {
                        check_secret_name(&format!("{key}.url_secret"), secret)?
                    }
                    _ => {
                        return Err((
                            key,
                            "give url, or url_secret (the name of its secret holding the URL)"
                                .into(),
                        ));
                    }
                }
            }
        }
        if let Some(secret) = &sink.signing_secret {
            check_secret_name(&format!("{key}.signing_secret"), secret)?;
        }
        for secret in sink.secret_headers.values() {
            check_secret_name(&format!("{key}.secret_headers"), secret)?;
        }
        for header in sink.headers.keys().chain(sink.secret_headers.keys()) {
            let ok = !header.is_empty()
                && header
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !header.to_ascii_lowercase().starts_with("x-slipway-")
                && !header.eq_ignore_ascii_case("content-type");
            if !ok {
                return Err((
                    format!("{key}.headers"),
                    format!(
                        "{header:?} is not a header it may set: letters, digits and '-', not X-Slipway-* or Content-Type"
                    ),
                ));
            }
        }
        for project in &sink.projects {
            if !self.projects.contains_key(project) {
                return Err((format!("{key}.projects"), format!("no project {project:?}")));
            }
        }
        for env in &sink.environments {
            if !self.environments.contains_key(env) {
                return Err((
                    format!("{key}.environments"),
                    format!("no environment {env:?}"),
                ));
            }
        }
        for kind in &sink.events {
            let known = match kind.strip_suffix('*') {
                Some(prefix) => EVENT_KINDS.iter().any(|k| k.starts_with(prefix)),
                None => EVENT_KINDS.contains(&kind.as_str()),
            };
            if !known {
                return Err((
                    format!("{key}.events"),
                    format!(
                        "no event kind {kind:?}: use e.g. \"deployment.rolled_back\" or \"deployment.*\""
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// An email sink: a server, a sender, recipients, a whole login or none.
fn check_email(key: &str, sink: &Notification) -> Result<(), (String, String)> {
    if sink.url.is_some() || sink.url_secret.is_some() || sink.signing_secret.is_some() {
        return Err((
            key.to_string(),
            "url, url_secret and signing_secret are for webhooks; email takes smtp, from and to"
                .into(),
        ));
    }
    let server = sink.smtp.as_deref().unwrap_or_default();
    let port = server.rsplit_once(':').and_then(|(host, port)| {
        (!host.is_empty()).then_some(())?;
        port.parse::<u16>().ok().filter(|p| *p > 0)
    });
    if port.is_none() {
        return Err((
            format!("{key}.smtp"),
            format!("{server:?} is not HOST:PORT, e.g. \"smtp.example.com:587\""),
        ));
    }
    let address = |field: &str, a: &str| {
        let ok = a.split_once('@').is_some_and(|(user, domain)| {
            !user.is_empty() && !domain.is_empty() && !a.contains(char::is_whitespace)
        });
        match ok {
            true => Ok(()),
            false => Err((
                format!("{key}.{field}"),
                format!("{a:?} is not an email address"),
            )),
        }
    };
    address("from", sink.from.as_deref().unwrap_or_default())?;
    if sink.to.is_empty() {
        return Err((format!("{key}.to"), "name at least one recipient".into()));
    }
    for to in &sink.to {
        address("to", to)?;
    }
    match (&sink.username, &sink.password_secret) {
        (Some(_), Some(secret)) => check_secret_name(&format!("{key}.password_secret"), secret),
        (None, None) => Ok(()),
        _ => Err((
            key.to_string(),
            "give username and password_secret together, or neither".into(),
        )),
    }
}

/// A URL events may go to: https anywhere, plain http to this machine only
/// (an event may carry a reason, an environment's name, a who).
fn check_url(key: &str, url: &str) -> Result<(), (String, String)> {
    let host = |rest: &str| {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default().to_string(),
            None => authority.split(':').next().unwrap_or_default().to_string(),
        }
    };
    let ok = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) => !host(rest).is_empty(),
        (None, Some(rest)) => {
            let host = host(rest);
            host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err((
            key.to_string(),
            format!("{url:?} must be an https:// URL (plain http only to this machine)"),
        ))
    }
}

/// A secret's name, as `secret set` takes it: an environment variable's.
fn check_secret_name(key: &str, name: &str) -> Result<(), (String, String)> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err((
            key.to_string(),
            format!("{name:?} is not a secret name: A-Z, 0-9 and '_'"),
        ))
    }
}

fn check_port(key: &str, port: u16) -> Result<(), (String, String)> {
    if port == 0 {
        Err((key.to_string(), "0 is not a port: use 1-65535".into()))
    } else {
        Ok(())
    }
}

fn check_count(key: &str, count: u32) -> Result<(), (String, String)> {
    if (1..=1000).contains(&count) {
        Ok(())
    } else {
        Err((
            key.to_string(),
            format!("{count} instances is out of range: use 1-1000"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLEET: &str = r#"
        [environments.staging]
        instances = 1
        variables = { GREETING = "hi" }
        [environments.prod1]
        instances = 2

        [projects.hello]
        instance_port = 8080
        instances = { prod1 = 3 }
        services = [{ name = "web", command = "bin/app" }]
        health_check = { path = "/health", port = 8080, interval = "250ms" }
        public = { name = "hello.example.com", environments = ["prod1"] }
    "#;

    fn error(text: &str) -> String {
        Fleet::parse(text, "fleet.toml").unwrap_err().to_string()
    }

    #[test]
    fn a_valid_fleet_loads_with_defaults_filled_in() {
        let fleet = Fleet::parse(FLEET, "fleet.toml").unwrap();
        let hello = fleet.project("hello").unwrap();
        assert_eq!(hello.health_check.interval, Duration::from_millis(250));
        assert_eq!(hello.health_check.healthy_threshold, 2);
        assert_eq!(hello.deadlines.drain, Duration::from_secs(30));
        assert_eq!(fleet.coordinator.agent_lost_after, Duration::from_secs(5));
        assert_eq!(fleet.instance_count("hello", "staging"), Some(1));
        assert_eq!(fleet.instance_count("hello", "prod1"), Some(3));
        assert_eq!(fleet.instance_count("hello", "nowhere"), None);
        assert_eq!(fleet.variables("hello", "staging")["GREETING"], "hi");
    }

    #[test]
    fn an_unknown_key_is_refused_with_file_and_key() {
        let message = error(&FLEET.replace("instance_port", "instance_prot"));
        assert!(message.starts_with("fleet.toml:"), "{message}");
        assert!(message.contains("instance_prot"), "{message}");
    }

    #[test]
    fn a_bad_duration_names_the_format() {
        let message = error(&FLEET.replace("\"250ms\"", "\"soon\""));
        assert!(message.contains("\"soon\" is not a duration"), "{message}");
        assert!(message.contains("\"500ms\""), "{message}");
    }

    #[test]
    fn a_zero_port_is_refused_with_key_and_fix() {
        let message = error(&FLEET.replace("port = 8080,", "port = 0,"));
        assert_eq!(
            message,
            "fleet.toml: projects.hello.health_check.port: 0 is not a port: use 1-65535"
        );
    }

    #[test]
    fn a_restart_policy_parses_and_a_zero_limit_is_refused_with_the_fix() {
        let with = |restart: &str| {
            FLEET.replace(
                "services = [",
                &format!("restart = {{ {restart} }}\n        services = ["),
            )
        };
        let fleet = Fleet::parse(
            &with("when = \"on-failure\", limit = 2, window = \"10s\""),
            "fleet.toml",
        )
        .expect("valid restart policy");
        let restart = fleet.projects["hello"].restart;
        assert_eq!(restart.when, RestartWhen::OnFailure);
        assert_eq!(
            (restart.limit, restart.window),
            (2, Duration::from_secs(10))
        );
        let message = error(&with("limit = 0"));
        assert!(
            message.contains("projects.hello.restart.limit: must be at least 1; for no restarts, set when = \"never\""),
            "{message}"
        );
        let message = error(&with("when = \"sometimes\""));
        assert!(message.contains("sometimes"), "{message}");
    }

    #[test]
    fn zero_instances_are_refused() {
        let message = error(&FLEET.replace("instances = 2", "instances = 0"));
        assert!(
            message.contains("environments.prod1.instances: 0 instances is out of range"),
            "{message}"
        );
    }

    #[test]
    fn an_override_for_an_unknown_environment_is_refused() {
        let message = error(&FLEET.replace("{ prod1 = 3 }", "{ prod9 = 3 }"));
        assert!(
            message.contains("projects.hello.instances.prod9: no environment \"prod9\""),
            "{message}"
        );
    }

    #[test]
    fn a_public_record_must_point_at_known_environments() {
        let message =
            error(&FLEET.replace("environments = [\"prod1\"]", "environments = [\"prod7\"]"));
        assert!(
            message.contains("projects.hello.public.environments"),
            "{message}"
        );
    }

    #[test]
    fn a_health_path_must_be_absolute() {
        let message = error(&FLEET.replace("\"/health\"", "\"health\""));
        assert!(message.contains("must start with '/'"), "{message}");
    }

    #[test]
    fn names_are_restricted_to_what_tags_and_files_accept() {
        let message = error(&FLEET.replace("[projects.hello]", "[projects.\"Hello World\"]"));
        assert!(message.contains("is not a valid name"), "{message}");
    }

    #[test]
    fn aws_settings_load_and_local_refuses_them() {
        let aws = format!(
            "[cloud]\nprovider = \"aws\"\nregion = \"eu-west-1\"\nendpoint = \"http://127.0.0.1:5000\"\n{FLEET}"
        );
        let fleet = Fleet::parse(&aws, "fleet.toml").unwrap();
        assert_eq!(fleet.cloud.provider, Provider::Aws);
        assert_eq!(fleet.environments["staging"].aws.instance_type, "t3.micro");
        assert_eq!(fleet.projects["hello"].listener_port, 80);
        let local = format!("[cloud]\nregion = \"eu-west-1\"\n{FLEET}");
        assert!(
            error(&local).contains("cloud: region and endpoint apply to provider = \"aws\" only")
        );
        let bad = aws.replace("http://127.0.0.1:5000", "127.0.0.1:5000");
        assert!(error(&bad).contains("cloud.endpoint"));
        let typo = aws.replace("provider = \"aws\"", "provider = \"gcp\"");
        assert!(
            error(&typo).contains("unknown variant `gcp`"),
            "{}",
            error(&typo)
        );
    }

    #[test]
    fn the_zone_defaults_to_the_name_without_its_first_label() {
        let fleet = Fleet::parse(FLEET, "fleet.toml").unwrap();
        let public = fleet.projects["hello"].public.as_ref().unwrap();
        assert_eq!(Fleet::zone_of(public), "example.com");
    }

    #[test]
    fn gates_name_known_environments_and_no_circle() {
        let gated = sample().replace(
            "[environments.prod1]\n",
            "[environments.prod1]\nrequires_checks = [\"unit\", \"integration\"]\nrequires_success_in = [\"qaprod1\"]\n",
        );
        let fleet = Fleet::parse(&gated, "fleet.toml").unwrap();
        assert_eq!(fleet.environments["prod1"].requires_success_in, ["qaprod1"]);
        let unknown = gated.replace(
            "requires_success_in = [\"qaprod1\"]",
            "requires_success_in = [\"qaprod9\"]",
        );
        let err = error(&unknown);
        assert!(
            err.contains("environments.prod1.requires_success_in") && err.contains("qaprod9"),
            "{err}"
        );
        let itself = gated.replace(
            "requires_success_in = [\"qaprod1\"]",
            "requires_success_in = [\"prod1\"]",
        );
        assert!(error(&itself).contains("cannot come before itself"));
        let circle = gated.replace(
            "[environments.qaprod1]\n",
            "[environments.qaprod1]\nrequires_success_in = [\"prod1\"]\n",
        );
        let err = error(&circle);
        assert!(
            err.contains("requires_success_in") && err.contains("break the circle"),
            "{err}"
        );
        let bad_check = gated.replace("\"integration\"", "\"in tegration\"");
        assert!(error(&bad_check).contains("environments.prod1.requires_checks"));
    }

    #[test]
    fn lost_after_must_exceed_the_heartbeat() {
        let text = format!(
            "[coordinator]\nheartbeat_interval = \"5s\"\nagent_lost_after = \"2s\"\n{FLEET}"
        );
        assert!(error(&text).contains("coordinator.agent_lost_after"));
    }

    #[test]
    fn keep_is_ninety_days_unless_set_and_never_under_a_day() {
        let fleet = Fleet::parse(FLEET, "test").unwrap();
        assert_eq!(fleet.coordinator.keep, Duration::from_secs(90 * 24 * 3600));
        let set = format!("[coordinator]\nkeep = \"30d\"\n{FLEET}");
        let fleet = Fleet::parse(&set, "test").unwrap();
        assert_eq!(fleet.coordinator.keep, Duration::from_secs(30 * 24 * 3600));
        let short = format!("[coordinator]\nkeep = \"2h\"\n{FLEET}");
        assert!(
            error(&short).contains("coordinator.keep"),
            "{}",
            error(&short)
        );
    }

    /// The sample fleet, which has data stores and a migration.
    fn sample() -> String {
        crate::sample::SAMPLE_FLEET.to_string()
    }

    #[test]
    fn data_store_variables_reach_the_environments_that_share_the_store() {
        let fleet = Fleet::parse(&sample(), "fleet.toml").unwrap();
        let of = |env: &str| fleet.variables("hello", env)["HELLO_DB"].clone();
        assert_eq!(
            of("qaprod1"),
            of("prod1"),
            "qaprod1 runs on production's store"
        );
        assert_eq!(of("prod1"), "../../stores/hello-db");
        assert_eq!(of("staging"), "../../stores/hello-db-staging");
        assert_eq!(
            fleet.migration_of("hello", "prod2").map(|(_, s)| s),
            Some("hello-db")
        );
    }

    #[test]
    fn an_environment_inherits_another_s_variables_and_overrides_some() {
        let text = sample()
            .replace(
                "[environments.qaprod1]\ninstances = 1\nvariables = { GREETING = \"hello from qaprod1\" }",
                "[environments.qaprod1]\ninstances = 1\ninherits = \"prod1\"\nvariables = { GREETING = \"hello from qaprod1\" }",
            )
            .replace(
                "variables = { GREETING = \"hello from prod1\" }",
                "variables = { GREETING = \"hello from prod1\", FEATURE = \"on\" }",
            );
        assert!(text.contains("inherits"));
        let fleet = Fleet::parse(&text, "fleet.toml").unwrap();
        let vars = fleet.variables("hello", "qaprod1");
        assert_eq!(vars["FEATURE"], "on", "inherited from prod1");
        assert_eq!(vars["GREETING"], "hello from qaprod1", "its own wins");
        let circle = text.replace(
            "[environments.prod1]\ninstances = 2",
            "[environments.prod1]\ninstances = 2\ninherits = \"qaprod1\"",
        );
        let message = error(&circle);
        assert!(message.contains("goes round in a circle"), "{message}");
        let nowhere = text.replace("inherits = \"prod1\"", "inherits = \"prod9\"");
        assert!(error(&nowhere).contains("no environment \"prod9\""));
    }

    #[test]
    fn a_migration_needs_one_data_store_in_every_environment() {
        let message = error(&sample().replace(
            "data_stores = [\"hello-db\", \"hello-db-staging\"]",
            "data_stores = [\"hello-db\"]",
        ));
        assert!(
            message.contains("projects.hello.data_stores")
                && message.contains("in staging it uses none"),
            "{message}"
        );
        let message = error(&sample().replace(
            "environments = [\"qaprod1\", \"prod1\", \"prod2\"]",
            "environments = [\"qaprod1\", \"prod1\", \"prod3\"]",
        ));
        assert!(
            message.contains("data_stores.hello-db.environments"),
            "{message}"
        );
    }

    #[test]
    fn notifications_are_checked_and_filter_what_they_get() {
        let with = |sink: &str| format!("{}\n[notifications.ops]\n{sink}\n", sample());
        let fleet = Fleet::parse(
            &with("kind = \"webhook\"\nurl = \"https://hooks.example.com/x\"\nevents = [\"deployment.*\"]\nenvironments = [\"prod1\"]"),
            "fleet.toml",
        )
        .unwrap();
        let ops = &fleet.notifications["ops"];
        assert!(ops.wants("deployment.rolled_back", Some("hello"), Some("prod1")));
        assert!(!ops.wants("deployment.rolled_back", Some("hello"), Some("staging")));
        assert!(!ops.wants("release.registered", Some("hello"), Some("prod1")));
        assert!(
            !ops.wants("deployment.succeeded", None, None),
            "no environment: not prod1's"
        );
        for (sink, named) in [
            (
                "kind = \"webhook\"\nurl = \"http://hooks.example.com/x\"",
                "plain http only to this machine",
            ),
            ("kind = \"webhook\"", "give url, or url_secret"),
            (
                "kind = \"slack\"\nurl_secret = \"slack-url\"",
                "not a secret name",
            ),
            (
                "kind = \"webhook\"\nurl = \"https://x.example\"\nevents = [\"deployment.exploded\"]",
                "no event kind",
            ),
            (
                "kind = \"webhook\"\nurl = \"https://x.example\"\nheaders = { X-Slipway-Delivery = \"1\" }",
                "not a header it may set",
            ),
            (
                "kind = \"email\"\nurl = \"https://x.example\"",
                "are for webhooks",
            ),
            (
                "kind = \"email\"\nsmtp = \"mail.example.com\"\nfrom = \"a@b.c\"\nto = [\"d@e.f\"]",
                "is not HOST:PORT",
            ),
            (
                "kind = \"email\"\nsmtp = \"mail.example.com:587\"\nfrom = \"a@b.c\"",
                "at least one recipient",
            ),
            (
                "kind = \"email\"\nsmtp = \"mail.example.com:587\"\nfrom = \"a@b.c\"\nto = [\"d@e.f\"]\nusername = \"u\"",
                "together",
            ),
            (
                "kind = \"slack\"\nurl = \"https://x.example\"\nto = [\"d@e.f\"]",
                "is for kind = \"email\"",
            ),
        ] {
            let message = error(&with(sink));
            assert!(message.contains(named), "{sink}: {message}");
        }
        let clash = format!(
            "{}\n[notifications.staging]\nkind = \"slack\"\nurl = \"https://x.example\"\n",
            sample()
        );
        assert!(error(&clash).contains("also an environment or data store"));
    }

    #[test]
    fn the_readme_s_notifications_are_a_valid_fleet_file_part() {
        let readme = include_str!("../../../README.md");
        let start = readme
            .find("[notifications.change-mgmt]")
            .expect("README example");
        let block = &readme[start..];
        let block = &block[..block.find("```").expect("end of the example")];
        // Its projects and environments are the sample's (prod1, prod2).
        let fleet = Fleet::parse(&format!("{}\n{block}", sample()), "README.md").unwrap();
        assert_eq!(fleet.notifications.len(), 3);
    }

    #[test]
    fn a_data_store_is_not_named_like_an_environment() {
        // `slipway secret set NAME KEY` takes either: they must not clash.
        let text = sample()
            .replace("[data_stores.hello-db-staging]", "[data_stores.staging]")
            .replace("\"hello-db-staging\"]", "\"staging\"]");
        let message = error(&text);
        assert!(
            message.contains("data_stores.staging") && message.contains("is also an environment"),
            "{message}"
        );
    }
}
