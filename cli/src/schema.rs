//! The objects the CLI prints, one type per object wherever it appears, so
//! `-o json` and `-o yaml` give scripts one shape to learn. `cli/schema.json`
//! describes them (JSON Schema); the suite holds every command's output to it.
//!
//! Rules: an instance is `instance_id` everywhere; an agent's connection is
//! `agent` (`connected`, `lost`, `never`) everywhere; an absent value is `null`,
//! never `""` or `0`; every time is RFC 3339 (`…_at`) beside its unix
//! milliseconds (`…_at_ms`).

use serde::Serialize;

/// A time as both RFC 3339 UTC text and unix milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0).unsigned_abs());
    humantime::format_rfc3339_millis(at).to_string()
}

#[derive(Debug, Clone, Serialize)]
pub struct Release {
    pub project: String,
    pub version: String,
    pub image_id: String,
    pub registered_at: String,
    pub registered_at_ms: i64,
    pub registered_by: String,
    /// On AWS, the account owning the image; null elsewhere.
    pub owner_account: Option<String>,
    /// The checks recorded on it (each its latest result).
    pub checks: Vec<ReleaseCheck>,
    /// Where it came from; null when nothing is recorded.
    pub provenance: Option<Provenance>,
}

/// Where a release came from: its image's tags, or what `release add` was
/// given. Each part null when unknown.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Provenance {
    pub commit: Option<String>,
    pub repository: Option<String>,
    pub build_url: Option<String>,
    pub built_by: Option<String>,
}

impl Provenance {
    /// "commit 3f2c1ab of https://…", "build https://…", "built by ci": the
    /// parts known, one line each, for people.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(commit) = &self.commit {
            lines.push(match &self.repository {
                Some(repo) => format!("commit {commit} of {repo}"),
                None => format!("commit {commit}"),
            });
        } else if let Some(repo) = &self.repository {
            lines.push(format!("from {repo}"));
        }
        if let Some(build) = &self.build_url {
            lines.push(format!("build {build}"));
        }
        if let Some(by) = &self.built_by {
            lines.push(format!("built by {by}"));
        }
        lines.iter().map(|l| crate::render::text(l)).collect()
    }
}

/// A check's result on a release: `release check`, and in `release list`.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseCheck {
    pub project: String,
    pub version: String,
    pub name: String,
    pub passed: bool,
    pub url: Option<String>,
    pub by: String,
    pub at: String,
    pub at_ms: i64,
}

/// A read-only dashboard token; `url` only when it was just minted.
#[derive(Debug, Clone, Serialize)]
pub struct DashboardToken {
    pub id: String,
    pub name: String,
    pub url: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub created_at_ms: i64,
    pub revoked: bool,
}

/// `dashboard revoke`: the tokens revoked now.
#[derive(Debug, Clone, Serialize)]
pub struct DashboardRevoked {
    pub revoked: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PhaseTime {
    pub phase: String,
    pub at: String,
    pub at_ms: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Deployment {
    pub id: String,
    pub project: String,
    pub version: String,
    pub image_id: String,
    pub environment: String,
    /// queued, launching, booting, configuring, ready, migrating, attaching, draining,
    /// retiring, succeeded, rolling_back, rolled_back, cancelled.
    pub phase: String,
    /// Nothing more will happen to it.
    pub finished: bool,
    pub requested_by: String,
    pub requested_at: String,
    pub requested_at_ms: i64,
    pub phases: Vec<PhaseTime>,
    /// Why it rolled back or was cancelled.
    pub reason: Option<String>,
    /// What it waits on right now.
    pub waiting_on: Option<String>,
    pub new_instances: Vec<String>,
    pub old_instances: Vec<String>,
    pub cancel_requested: bool,
    /// Its migration, once it reached `migrating`; null without one.
    pub migration: Option<Migration>,
    /// The configuration it pushed; null until first pushed.
    pub config: Option<Config>,
    /// The fleet generation it started with; null while queued.
    pub fleet_generation: Option<u64>,
    /// Who approved it; null where none was needed or given yet.
    pub approved_by: Option<String>,
    /// Who asked, while it was watching, to go back to its standby
    /// instances; null if nobody did.
    pub rollback_requested_by: Option<String>,
    /// Why it passes its environment's freeze windows (a rollback, or an
    /// admin's override and its reason); null if it does not.
    pub passes_freeze: Option<String>,
    /// Its release's provenance; null when nothing is recorded.
    pub provenance: Option<Provenance>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// Every variable its services got; secret values are `***`.
    pub variables: std::collections::BTreeMap<String, String>,
    /// Which of them are secrets.
    pub secrets: Vec<String>,
    /// Equal for two deployments exactly when they pushed the same values.
    pub digest: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Migration {
    /// The data store it changes.
    pub store: String,
    /// waiting, running, succeeded, failed, skipped.
    pub state: String,
    /// The instance it runs on; null before it starts.
    pub instance_id: Option<String>,
    /// Why it failed, or where it had already run.
    pub detail: Option<String>,
    /// The command's last lines of output.
    pub output: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Service {
    pub name: String,
    /// starting, running, exited, stopped, failed, unknown.
    pub state: String,
    pub restarts: u32,
    /// The last exit status or spawn error.
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Instance {
    pub instance_id: String,
    pub private_ip: Option<String>,
    /// The cloud's view: pending, running, terminated.
    pub state: String,
    /// The agent's connection: connected, lost, never.
    pub agent: String,
    pub ready: bool,
    pub in_service: bool,
    /// Out of the load balancer, kept running while a deployment watches its
    /// successors: `slipway rollback` re-attaches it.
    pub standby: bool,
    pub services: Vec<Service>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Environment {
    pub name: String,
    pub active_version: Option<String>,
    /// Where the active release came from; null where not recorded.
    pub active_provenance: Option<Provenance>,
    pub load_balancer: String,
    pub endpoint: Option<String>,
    pub instances: Vec<Instance>,
    /// The deployment running on this target now.
    pub in_flight: Option<Deployment>,
    /// How many deployments wait behind it.
    pub queued: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct PublicRecord {
    pub project: String,
    pub name: String,
    /// The environment it points at; null before the first promotion.
    pub environment: Option<String>,
    pub endpoint: Option<String>,
    pub previous_environment: Option<String>,
    /// Stored, but DNS is not yet confirmed to point there.
    pub pending: bool,
    pub dns_error: Option<String>,
    /// A promotion asked for that waits for another deployer's approval;
    /// null when none waits.
    pub awaiting_approval: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Project {
    pub name: String,
    pub environments: Vec<Environment>,
    pub public_record: Option<PublicRecord>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Agent {
    pub instance_id: String,
    pub project: String,
    pub environment: String,
    /// The deployment that launched the instance.
    pub deployment: String,
    /// connected, lost, never: the same answer as `status` gives.
    pub agent: String,
    pub last_seen: Option<String>,
    pub last_seen_ms: Option<i64>,
    pub ready: bool,
    pub agent_version: Option<String>,
    /// The agent protocol version its stream speaks; null until it connects.
    pub agent_protocol: Option<u32>,
    pub image_id: String,
    pub private_ip: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueueTarget {
    pub project: String,
    pub environment: String,
    pub active: Option<Deployment>,
    /// In the order they will run.
    pub waiting: Vec<Deployment>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub seq: u64,
    pub at: String,
    pub at_ms: i64,
    /// The certificate's name (an operator, a CI job, an instance), or
    /// `slipway` for the coordinator's own actions.
    pub who: String,
    /// The role it acted with; for `slipway`, which part of it.
    pub role: Option<String>,
    pub certificate: Option<String>,
    pub action: String,
    /// What it acted on, as a line (`hello@v2 -> staging`).
    pub target: String,
    /// `ok`, what it did (`queued d-12`), or why it was refused.
    pub result: String,
    /// What it acted on, field by field; null when not about one (or when the
    /// entry predates these fields).
    pub project: Option<String>,
    pub environment: Option<String>,
    pub version: Option<String>,
    pub deployment: Option<String>,
    pub hash: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditVerdict {
    pub intact: bool,
    pub entries: u64,
    pub first_broken: Option<u64>,
    pub reason: Option<String>,
    pub head_hash: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Anchor {
    pub entries: u64,
    pub hash: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Secret {
    /// Null for a data store's secret.
    pub environment: Option<String>,
    /// The one project whose services get it; null: every project's there.
    pub project: Option<String>,
    /// A data store's secret goes to every project that uses the store.
    pub data_store: Option<String>,
    /// A notification's secret: only its deliveries use it.
    pub notification: Option<String>,
    pub key: String,
}

/// Something that happened: `events` prints one per line.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// 1, 2, ...: the order events were stored in.
    pub seq: u64,
    pub at: String,
    pub at_ms: i64,
    /// `deployment.PHASE`, `deployment.cancel_requested`, `migration.finished`,
    /// `release.registered`, `promotion.started`, `promotion.finished`,
    /// `fleet.applied`, `certificate.revoked`, `agent.lost`.
    pub kind: String,
    pub project: Option<String>,
    pub environment: Option<String>,
    pub version: Option<String>,
    pub deployment: Option<String>,
    pub who: Option<String>,
    pub reason: Option<String>,
    pub summary: String,
    /// Where the release it is about came from; null where not recorded.
    pub provenance: Option<Provenance>,
}

/// A line of a service's output: `logs` prints one per line.
#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    pub instance_id: String,
    pub service: String,
    pub line: String,
}

/// `notifications`: each sink's delivery, and the events given up.
#[derive(Debug, Clone, Serialize)]
pub struct Notifications {
    pub notifications: Vec<NotificationState>,
    /// The newest first.
    pub undelivered: Vec<Undelivered>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NotificationState {
    pub name: String,
    pub kind: String,
    /// The URL, or "(secret NAME)".
    pub target: String,
    /// The last event it dealt with, and the newest stored.
    pub cursor: u64,
    pub newest: u64,
    /// Wanted events after the cursor (counted up to 1,000).
    pub pending: u64,
    pub delivered: u64,
    pub attempts: u32,
    pub failing_since: Option<String>,
    pub failing_since_ms: Option<i64>,
    pub last_error: Option<String>,
    pub last_attempt: Option<String>,
    pub last_attempt_ms: Option<i64>,
    /// The latest attempts, oldest first.
    pub recent: Vec<DeliveryAttempt>,
    /// The next pending events, the next to go first.
    pub next: Vec<PendingDelivery>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeliveryAttempt {
    pub seq: u64,
    pub delivery: String,
    pub at: String,
    pub at_ms: i64,
    /// Null: delivered.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PendingDelivery {
    pub seq: u64,
    pub delivery: String,
    pub kind: String,
    pub summary: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Undelivered {
    pub notification: String,
    pub seq: u64,
    pub delivery: String,
    pub kind: String,
    pub attempts: u32,
    pub last_error: String,
    pub at: String,
    pub at_ms: i64,
}

/// `fleet apply`.
#[derive(Debug, Clone, Serialize)]
pub struct FleetApplied {
    /// The fleet generation now in force.
    pub generation: u64,
    pub changes: Vec<String>,
    /// What `infra apply` would still make for it.
    pub infra: Vec<String>,
}

/// `secret rotate-key`: how many secrets the new key re-sealed.
#[derive(Debug, Clone, Serialize)]
pub struct SecretsKeyRotated {
    pub resealed: u32,
    /// Ids of the old key and the new one (never the keys).
    pub from_key: String,
    pub to_key: String,
}

/// `ca status`, `ca rotate`, `ca finish`: where a CA rotation stands.
#[derive(Debug, Clone, Serialize)]
pub struct CaRotation {
    /// `sha256:` fingerprint of the CA that signs.
    pub signing: String,
    /// The CA still trusted during a rotation; null: none under way.
    pub previous: Option<String>,
    /// Connected agents whose certificate the previous CA signed.
    pub agents_on_previous: Vec<String>,
    pub agents_on_signing: u32,
    /// Connected through a standby: their certificate is not seen by the leader.
    pub agents_unknown: u32,
    /// Connected with a certificate of a CA no longer trusted (a forced
    /// finish): refused at their next reconnect.
    pub agents_on_retired: Vec<String>,
}

/// `infra orphans`: instances Slipway tagged that no deployment knows about.
#[derive(Debug, Clone, Serialize)]
pub struct Orphans {
    pub orphans: Vec<Orphan>,
    /// They were terminated (`--terminate`).
    pub terminated: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Orphan {
    pub instance_id: String,
    pub project: String,
    pub environment: String,
    /// The deployment its tag names.
    pub deployment: String,
    /// `project@version`.
    pub release: String,
    pub private_ip: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Revoked {
    pub name: String,
    pub stream_closed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Issued {
    pub profile: String,
    pub expires_at: String,
    pub expires_at_ms: i64,
}

/// How two deployments' configurations differ (`slipway diff A B`).
#[derive(Debug, Clone, Serialize)]
pub struct ConfigDiff {
    pub from: String,
    pub to: String,
    /// Whether every value, secrets included, is the same (by the digests).
    pub same: bool,
    /// Variables only `to` has, with its values (secrets `***`).
    pub added: std::collections::BTreeMap<String, String>,
    /// Variables only `from` has.
    pub removed: Vec<String>,
    /// Variables whose shown value differs: name to [from, to].
    pub changed: std::collections::BTreeMap<String, [String; 2]>,
    /// True when only secret values differ: the digests do, nothing shown does.
    pub secrets_differ: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Version {
    pub client: String,
    /// Null when the coordinator could not be asked.
    pub server: Option<String>,
}

impl ConfigDiff {
    /// The difference between two deployments' pushed configurations.
    /// `SLIPWAY_*` is per deployment, not configuration: left out.
    pub fn of(from: &Deployment, to: &Deployment) -> Option<ConfigDiff> {
        let (a, b) = (from.config.as_ref()?, to.config.as_ref()?);
        let shown = |c: &Config| -> std::collections::BTreeMap<String, String> {
            c.variables
                .iter()
                .filter(|(k, _)| !k.starts_with("SLIPWAY_"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        let (a_vars, b_vars) = (shown(a), shown(b));
        let added = b_vars
            .iter()
            .filter(|(k, _)| !a_vars.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<std::collections::BTreeMap<_, _>>();
        let removed: Vec<String> = a_vars
            .keys()
            .filter(|k| !b_vars.contains_key(*k))
            .cloned()
            .collect();
        let changed = a_vars
            .iter()
            .filter_map(|(k, v)| {
                let other = b_vars.get(k)?;
                (other != v).then(|| (k.clone(), [v.clone(), other.clone()]))
            })
            .collect::<std::collections::BTreeMap<_, _>>();
        let same = a.digest == b.digest;
        let shown_same = added.is_empty() && removed.is_empty() && changed.is_empty();
        Some(ConfigDiff {
            from: from.id.clone(),
            to: to.id.clone(),
            same,
            secrets_differ: !same && shown_same,
            added,
            removed,
            changed,
        })
    }
}

/// `Some(text)` unless empty.
pub fn present(text: String) -> Option<String> {
    if text.is_empty() { None } else { Some(text) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(id: &str, variables: &[(&str, &str)], digest: &str) -> Deployment {
        Deployment {
            id: id.into(),
            project: "hello".into(),
            version: "v1".into(),
            image_id: "ami-1".into(),
            environment: "staging".into(),
            phase: "succeeded".into(),
            finished: true,
            requested_by: "admin".into(),
            requested_at: rfc3339(0),
            requested_at_ms: 0,
            phases: vec![],
            reason: None,
            waiting_on: None,
            new_instances: vec![],
            old_instances: vec![],
            cancel_requested: false,
            migration: None,
            config: Some(Config {
                variables: variables
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                secrets: vec![],
                digest: digest.into(),
            }),
            fleet_generation: Some(1),
            approved_by: None,
            rollback_requested_by: None,
            passes_freeze: None,
            provenance: None,
        }
    }

    #[test]
    fn a_config_diff_names_what_was_added_removed_and_changed_but_not_slipway_s_own() {
        let a = deployment(
            "d-1",
            &[("A", "1"), ("B", "2"), ("SLIPWAY_DEPLOYMENT", "d-1")],
            "x",
        );
        let b = deployment(
            "d-2",
            &[("B", "3"), ("C", "4"), ("SLIPWAY_DEPLOYMENT", "d-2")],
            "y",
        );
        let diff = ConfigDiff::of(&a, &b).unwrap();
        assert_eq!(diff.added.keys().collect::<Vec<_>>(), ["C"]);
        assert_eq!(diff.removed, ["A"]);
        assert_eq!(diff.changed["B"], ["2".to_string(), "3".to_string()]);
        assert!(!diff.same && !diff.secrets_differ);
        let c = deployment("d-3", &[("A", "1"), ("B", "2")], "z");
        let only_secrets = ConfigDiff::of(&a, &c).unwrap();
        assert!(
            only_secrets.secrets_differ,
            "nothing shown differs, the digests do"
        );
    }

    #[test]
    fn times_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_796_040_000_123), "2026-11-30T12:00:00.123Z");
    }
}
