//! Fault injection: kill -9 of the coordinator at every step of a deploy and at
//! random moments, then a restart. After every run the deployment ends on its
//! own, no instance is orphaned or launched twice, the load balancer never took
//! an instance that failed its health check, nothing acknowledged is lost, and a
//! continuous HTTP load never sees a failed request. Promotions are killed the
//! same way: the restarted coordinator finishes a stored one, DNS always agrees
//! with the stored record, and traffic through the public name never fails.
//!
//! With two coordinators on PostgreSQL (feature `postgres`), the kill is of the
//! leader at each step of a healthy deploy, of a rollback and of a migration,
//! and a standby takes over instead of a restart, under the same checks.
//!
//! CI runs every fault point once and a few random kills. The stress mode runs
//! more random kills: `SLIPWAY_FAULT_RUNS=200 cargo nextest run -p slipway-tests
//! --test faults` (figures in docs/faults.md). `SLIPWAY_FAULT_SEED` replays the
//! random moments of an earlier run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::Value;
use slipway_coordinator::deploy::machine::{InstanceState, MemberState};
use slipway_coordinator::sample::SAMPLE_FLEET;
use slipway_tests::Coordinator;
use slipway_tests::cloud::CloudView;
use slipway_tests::load::Load;

/// Where a healthy release can be killed: after each phase is stored, and after
/// each effect on the cloud or an agent, before the next decision is stored.
const HEALTHY_POINTS: &[&str] = &[
    "launching/entered",
    "launching/launched",
    "booting/entered",
    "configuring/entered",
    "configuring/configured",
    "ready/entered",
    "attaching/entered",
    "attaching/registered",
    "draining/entered",
    "draining/deregistered",
    "retiring/entered",
    "retiring/terminated",
    "succeeded/entered",
];

/// Where a migration can be killed, with how its deployment may end: a run
/// stored but not yet sent is failed, never sent again (it rolls back); one
/// killed just after sending ends either way, by whether the agent got it.
const MIGRATION_POINTS: &[(&str, &[&str])] = &[
    ("migrating/entered", &["succeeded"]),
    ("migrating/stored", &["rolled_back"]),
    ("migrating/sent", &["succeeded", "rolled_back"]),
    ("migrating/ended", &["succeeded"]),
];

/// Where a release that never gets healthy can be killed on its way back.
const ROLLBACK_POINTS: &[&str] = &[
    "launching/launched",
    "ready/entered",
    "rolling_back/entered",
    "rolling_back/terminated",
    "rolled_back/entered",
];

/// Where a healthy release cancelled after the load balancer took its new
/// instances can be killed on its way back.
const CANCEL_POINTS: &[&str] = &[
    "rolling_back/entered",
    "rolling_back/deregistered",
    "rolling_back/terminated",
];

/// With `keep_previous`: a healthy release killed while it watches, and one
/// rolled back to its standby (`slipway rollback`) killed on its way back.
const WATCH_POINTS: &[&str] = &["watching/entered"];
const STANDBY_POINTS: &[&str] = &[
    "rolling_back/entered",
    "rolling_back/registered",
    "rolling_back/deregistered",
    "rolling_back/terminated",
];

const INSTANCES: usize = 2;
const LOAD_BALANCER: &str = "slipway-hello-staging";
/// The HTTP load covers a whole run, stress runs of an hour or more included.
const LOAD_LIMIT: Duration = Duration::from_secs(6 * 3600);
/// Random kills in CI; `SLIPWAY_FAULT_RUNS` asks for more.
const CI_RANDOM_RUNS: usize = 4;

/// The sample fleet with two staging instances and a short ready deadline, so
/// the broken release rolls back in seconds.
fn fleet() -> String {
    let fleet = SAMPLE_FLEET
        .replace(
            "[environments.staging]\ninstances = 1",
            "[environments.staging]\ninstances = 2",
        )
        .replace("ready = \"10s\"", "ready = \"3s\"");
    assert!(fleet.contains("instances = 2") && fleet.contains("ready = \"3s\""));
    fleet
}

enum Kill {
    /// When the coordinator reports it reached this fault point.
    At(&'static str),
    /// This long after the deployment was acknowledged.
    After(Duration),
}

struct Harness {
    /// The coordinator that leads (with `failover`, the process changes).
    dev: Coordinator,
    /// Set when two coordinators share PostgreSQL: a kill is then of the
    /// leader, and the standby takes over rather than a restart.
    failover: Option<Failover>,
    cloud: CloudView,
    releases: Value,
    /// Every deployment the CLI got an id for.
    acknowledged: Vec<String>,
    /// The deployment whose instances serve staging.
    serving: String,
    runs: usize,
    violations: Vec<String>,
}

impl Harness {
    fn start() -> Harness {
        Harness::start_with(Coordinator::start_dev_with_fleet(&fleet()), None)
    }

    fn start_with(dev: Coordinator, failover: Option<Failover>) -> Harness {
        let cloud = CloudView::new(dev.data_dir());
        let first = dev.enqueue("v1", "staging");
        let done = dev.wait_finished(&first, Duration::from_secs(60));
        assert_eq!(done["phase"], "succeeded", "{done}");
        let releases = dev.ok(&["release", "list", "--output", "json"]).json();
        Harness {
            dev,
            failover,
            cloud,
            releases,
            acknowledged: vec![first.clone()],
            serving: first,
            runs: 0,
            violations: Vec::new(),
        }
    }

    /// One deploy of `version`, killed once as `kill` says, then left to finish.
    fn run(&mut self, version: &str, kill: Kill) {
        let expected = if version == "broken" {
            "rolled_back"
        } else {
            "succeeded"
        };
        self.run_expecting(version, kill, &[expected]);
    }

    fn run_expecting(&mut self, version: &str, kill: Kill, expected: &[&str]) {
        self.runs += 1;
        let label = match &kill {
            Kill::At(point) => format!("run {} ({version}, kill at {point})", self.runs),
            Kill::After(delay) => format!("run {} ({version}, kill after {delay:?})", self.runs),
        };
        let id = match kill {
            Kill::At(point) => self.pause_at(point, |dev| dev.enqueue(version, "staging")),
            Kill::After(delay) => {
                let id = self.dev.enqueue(version, "staging");
                std::thread::sleep(delay);
                id
            }
        };
        self.acknowledged.push(id.clone());
        self.crash();
        self.settle(&label, &id, expected);
    }

    /// Makes the coordinator that will act pause at `point`, then does `start`
    /// and waits until it got there.
    fn pause_at<T>(&mut self, point: &str, start: impl FnOnce(&Coordinator) -> T) -> T {
        match &mut self.failover {
            None => self.dev.pause_at(point, start),
            Some(failover) => failover.pause_at(&mut self.dev, point, start),
        }
    }

    /// kill -9 of the coordinator that acts; then a restart, or the standby
    /// taking over.
    fn crash(&mut self) {
        match &mut self.failover {
            None => self.dev.crash_and_restart(),
            Some(failover) => failover.kill_leader(&mut self.dev),
        }
    }

    /// A deploy of `version` cancelled once the load balancer has its new
    /// instances, killed at `point` on its way back: the rollback must take
    /// them out again while the old ones serve on.
    fn run_cancelled_after_registration(&mut self, version: &str, point: &'static str) {
        self.runs += 1;
        let label = format!(
            "run {} ({version} cancelled after registration, kill at {point})",
            self.runs
        );
        let id = self.pause_at("attaching/registered", |dev| {
            dev.enqueue(version, "staging")
        });
        self.acknowledged.push(id.clone());
        self.dev.ok(&["cancel", &id]);
        self.pause_at(point, |_| ());
        self.crash();
        self.settle(&label, &id, &["rolled_back"]);
    }

    /// From now on the old instances stay on standby for `window` after
    /// each switch; the fleet file in the data dir says so too, so a restart
    /// keeps it.
    fn keep_previous(&mut self, window: &str) {
        let fleet = fleet().replace(
            "[environments.staging]\n",
            &format!("[environments.staging]\nkeep_previous = \"{window}\"\n"),
        );
        self.dev.apply_fleet("fleet.toml", &fleet);
    }

    /// A deploy of `version` paused as it starts watching, rolled back to its
    /// standby by an operator, and killed at `point` on its way back: the
    /// standby must serve again and the new instances go.
    fn run_rolled_back_to_standby(&mut self, version: &str, point: &'static str) {
        self.runs += 1;
        let label = format!(
            "run {} ({version} rolled back to its standby, kill at {point})",
            self.runs
        );
        let id = self.pause_at("watching/entered", |dev| dev.enqueue(version, "staging"));
        self.acknowledged.push(id.clone());
        self.dev.ok(&["rollback", "hello", "--env", "staging"]);
        self.pause_at(point, |_| ());
        self.crash();
        self.settle(&label, &id, &["rolled_back"]);
    }

    /// Each migrating point with a release of its own, so its migration runs.
    fn run_migration_points(&mut self) {
        let releases = self
            .dev
            .ok(&["release", "list", "hello", "-o", "json"])
            .json();
        let image = releases
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["version"] == "v2")
            .map(|r| r["image_id"].as_str().unwrap().to_string())
            .unwrap();
        for (n, (point, expected)) in MIGRATION_POINTS.iter().enumerate() {
            let version = format!("m{n}");
            self.dev
                .ok(&["release", "add", "hello", &version, "--image", &image]);
            self.releases = self.dev.ok(&["release", "list", "-o", "json"]).json();
            self.run_expecting(&version, Kill::At(point), expected);
        }
        let runs = slipway_tests::migration_runs(&self.dev, "hello-db-staging");
        assert!(!runs.is_empty(), "no migration ran");
    }

    /// Waits for deployment `id` to end, checks it ended `expected`, and audits.
    fn settle(&mut self, label: &str, id: &str, expected: &[&str]) {
        let done = self.dev.wait_finished(id, Duration::from_secs(120));
        if !expected.iter().any(|e| done["phase"] == *e) {
            self.violations.push(format!(
                "{label}: ended {} instead of {}: {done}",
                done["phase"],
                expected.join(" or ")
            ));
        }
        if done["phase"] == "succeeded" {
            self.serving = id.to_string();
        }
        self.audit(label);
    }

    /// The next healthy version: always a change from what serves.
    fn next_healthy(&self) -> &'static str {
        if self.dev.deployment(&self.serving)["version"] == "v1" {
            "v2"
        } else {
            "v1"
        }
    }

    fn audit(&mut self, label: &str) {
        let all = self.cloud.instances("hello", "staging");
        let mut launched_by: BTreeMap<String, usize> = BTreeMap::new();
        for instance in &all {
            *launched_by
                .entry(instance.tags["slipway:deployment"].clone())
                .or_default() += 1;
        }
        for (deployment, count) in &launched_by {
            if *count > INSTANCES {
                self.violations.push(format!(
                    "{label}: deployment {deployment} launched {count} instances for {INSTANCES} slots"
                ));
            }
        }
        let live: Vec<_> = all
            .iter()
            .filter(|i| i.state != InstanceState::Gone)
            .collect();
        let live_ids: BTreeSet<String> = live.iter().map(|i| i.id.clone()).collect();
        let slots: BTreeSet<&str> = live
            .iter()
            .filter(|i| i.tags["slipway:deployment"] == self.serving)
            .map(|i| i.tags["slipway:slot"].as_str())
            .collect();
        if live.len() != INSTANCES || slots.len() != INSTANCES {
            let described: Vec<String> = live
                .iter()
                .map(|i| format!("{} of {}", i.id, i.tags["slipway:deployment"]))
                .collect();
            self.violations.push(format!(
                "{label}: live instances are {described:?}, expected {INSTANCES} of {}",
                self.serving
            ));
        }
        let members = self.cloud.members(LOAD_BALANCER);
        let in_service: BTreeSet<String> = members
            .iter()
            .filter(|(_, m)| **m == MemberState::InService)
            .map(|(id, _)| id.clone())
            .collect();
        if in_service != live_ids || members.len() != in_service.len() {
            self.violations.push(format!(
                "{label}: the load balancer holds {members:?}, the live instances are {live_ids:?}"
            ));
        }
        for registration in self.cloud.registrations() {
            if let Some(why) = &registration.unhealthy {
                let violation = format!(
                    "the load balancer took {} while its health check failed: {why}",
                    registration.instance
                );
                if !self.violations.iter().any(|v| v.ends_with(&violation)) {
                    self.violations.push(format!("{label}: {violation}"));
                }
            }
        }
        let history = self
            .dev
            .ok(&["deployments", "--limit", "1000", "--output", "json"])
            .json();
        let stored: BTreeMap<&str, &Value> = history
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (d["id"].as_str().unwrap(), d))
            .collect();
        for id in &self.acknowledged {
            match stored.get(id.as_str()) {
                None => self
                    .violations
                    .push(format!("{label}: acknowledged deployment {id} is gone")),
                Some(d) if d["finished"] != true => self
                    .violations
                    .push(format!("{label}: deployment {id} is still {}", d["phase"])),
                Some(_) => {}
            }
        }
        let releases = self.dev.ok(&["release", "list", "--output", "json"]).json();
        if releases != self.releases {
            self.violations
                .push(format!("{label}: releases changed to {releases}"));
        }
    }
}

/// Two coordinators on one PostgreSQL and one data directory, each on a port
/// of its own: the leader, and a standby started for each kill. A kill -9 of
/// the leader hands its deployment to the standby rather than to a restart.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
struct Failover {
    #[cfg(feature = "postgres")]
    _server: slipway_tests::postgres::Postgres,
    /// The two processes' `host:port`; the leader listens on `listens[leading]`.
    listens: [String; 2],
    leading: usize,
    standby: Option<std::process::Child>,
}

#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
impl Failover {
    fn other(&self) -> usize {
        1 - self.leading
    }

    /// A standby on the port the leader does not use, which pauses at
    /// `pause_at` (if any) once it leads.
    fn start_standby(&mut self, dev: &Coordinator, pause_at: Option<&str>) {
        use slipway_coordinator::faults::PAUSE_AT;
        let listen = self.listens[self.other()].clone();
        let peer = format!("https://{}", self.listens[self.leading]);
        // Empty: no point has an empty name.
        let env = [
            ("SLIPWAY_PEERS", peer.as_str()),
            (PAUSE_AT, pause_at.unwrap_or("")),
        ];
        let from = dev.log_len();
        self.standby = Some(dev.start_standby(&listen, &env));
        dev.wait_for_log(from, "standby serving reads", Duration::from_secs(60));
    }

    /// The standby leads once the process before it is gone: `dev` holds it
    /// and calls it from then on.
    fn take_over(&mut self, dev: &mut Coordinator, from: usize) {
        dev.adopt(self.standby.take().expect("a standby"));
        dev.wait_for_log(from, "coordinator serving", Duration::from_secs(60));
        self.leading = self.other();
        dev.learn_address();
    }

    /// The leader hands over (a graceful stop gives the lease up) to a
    /// coordinator that pauses at `point`; a standby waits behind that one.
    fn pause_at<T>(
        &mut self,
        dev: &mut Coordinator,
        point: &str,
        start: impl FnOnce(&Coordinator) -> T,
    ) -> T {
        // Before the handover: a deployment it resumes may get there at once.
        let before = dev.log_len();
        self.start_standby(dev, Some(point));
        let from = dev.log_len();
        dev.terminate(Duration::from_secs(60));
        self.take_over(dev, from);
        self.start_standby(dev, None);
        let started = start(dev);
        dev.wait_for_log(
            before,
            &format!("fault point reached: {point};"),
            Duration::from_secs(60),
        );
        started
    }

    fn kill_leader(&mut self, dev: &mut Coordinator) {
        let from = dev.log_len();
        dev.kill();
        self.take_over(dev, from);
    }
}

impl Drop for Failover {
    fn drop(&mut self) {
        if let Some(mut standby) = self.standby.take() {
            let _ = standby.kill();
            let _ = standby.wait();
        }
    }
}

/// How many random kills: `SLIPWAY_FAULT_RUNS`, or CI's few.
fn random_runs() -> usize {
    std::env::var("SLIPWAY_FAULT_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CI_RANDOM_RUNS)
}

/// A small xorshift: the moments to kill at, reproducible from the seed.
struct Moments(u64);

impl Moments {
    /// Seeded from `SLIPWAY_FAULT_SEED`, or the clock (and the seed printed).
    fn from_env() -> Moments {
        let seed = std::env::var("SLIPWAY_FAULT_SEED")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64 | 1)
            });
        println!("random kill moments from SLIPWAY_FAULT_SEED={seed}");
        Moments(seed)
    }

    fn next_ms(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

#[test]
fn kill_9_at_every_step_and_at_random_moments_loses_nothing() {
    let started = Instant::now();
    let mut harness = Harness::start();
    let load = Load::start_for(&harness.dev.endpoint("staging"), LOAD_LIMIT);
    load.wait_for_requests(20);

    for point in HEALTHY_POINTS {
        let version = harness.next_healthy();
        harness.run(version, Kill::At(point));
    }
    for point in ROLLBACK_POINTS {
        harness.run("broken", Kill::At(point));
    }
    harness.run_migration_points();
    for point in CANCEL_POINTS {
        let version = harness.next_healthy();
        harness.run_cancelled_after_registration(version, point);
    }
    let random_runs = random_runs();
    let mut moments = Moments::from_env();
    for run in 0..random_runs {
        let version = if run % 5 == 4 {
            "broken"
        } else {
            harness.next_healthy()
        };
        // A healthy deploy of two instances takes about 1.5 s here; a broken one 3 s.
        let delay = Duration::from_millis(moments.next_ms(3_500));
        harness.run(version, Kill::After(delay));
    }

    harness.keep_previous("3s");
    for point in WATCH_POINTS {
        let version = harness.next_healthy();
        harness.run(version, Kill::At(point));
    }
    for point in STANDBY_POINTS {
        let version = harness.next_healthy();
        harness.run_rolled_back_to_standby(version, point);
    }

    let report = load.finish();
    let points = HEALTHY_POINTS.len()
        + ROLLBACK_POINTS.len()
        + CANCEL_POINTS.len()
        + MIGRATION_POINTS.len()
        + WATCH_POINTS.len()
        + STANDBY_POINTS.len();
    println!(
        "fault harness: {} runs ({points} fault points, {random_runs} random kills), {} violations, {} requests with {} failures, {:.0} s",
        harness.runs,
        harness.violations.len(),
        report.requests,
        report.failures.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        harness.violations.is_empty(),
        "{} violations:\n{}",
        harness.violations.len(),
        harness.violations.join("\n")
    );
    report.assert_no_failures();
    let last = harness.dev.deployment(&harness.serving);
    assert!(
        report
            .last_body()
            .contains(last["version"].as_str().unwrap()),
        "traffic ends on {}: {}",
        last["version"],
        report.last_body()
    );
}

/// Where a promotion can be killed: after its decision is stored, and after
/// DNS changed but before that is stored.
const PROMOTE_POINTS: &[&str] = &["promoting/recorded", "promoting/changed"];
const PUBLIC_RECORD: &str = "hello.example.com";

/// The public record as `status` shows it, once no promotion is pending.
fn settled_record(dev: &Coordinator) -> Value {
    slipway_tests::eventually(
        "the public record to settle",
        Duration::from_secs(30),
        || {
            let status = dev.ok(&["status", "hello", "--output", "json"]).json();
            let record = status["public_record"].clone();
            (record["pending"] == false).then_some(record)
        },
    )
}

#[test]
fn kill_9_during_a_promotion_finishes_or_keeps_it_and_traffic_never_fails() {
    let started = Instant::now();
    let mut dev = Coordinator::start();
    let cloud = CloudView::new(dev.data_dir());
    dev.ok(&["deploy", "hello", "v1", "--env", "prod1", "--wait"]);
    dev.ok(&["deploy", "hello", "v2", "--env", "prod2", "--wait"]);
    let first = dev
        .ok(&["promote", "hello", "--to", "prod1", "--output", "json"])
        .json();
    let load = Load::start_for(first["endpoint"].as_str().unwrap(), LOAD_LIMIT);
    load.wait_for_requests(20);
    let other = |env: &str| if env == "prod1" { "prod2" } else { "prod1" };
    let mut current = "prod1".to_string();
    let mut violations = Vec::new();
    let mut check =
        |dev: &Coordinator, label: &str, expected: Option<&str>, current: &mut String| {
            let record = settled_record(dev);
            let stored = record["environment"].as_str().unwrap().to_string();
            if let Some(expected) = expected
                && stored != expected
            {
                violations.push(format!(
                    "{label}: the record points at {stored}, not {expected}"
                ));
            }
            let target = cloud.record_target(PUBLIC_RECORD);
            if target.as_deref() != Some(format!("slipway-hello-{stored}").as_str()) {
                violations.push(format!(
                    "{label}: stored {stored} but DNS points at {target:?}"
                ));
            }
            *current = stored;
        };

    // At each point, in both directions: the restarted coordinator finishes it,
    // and audits it once.
    let finisher_entries = |dev: &Coordinator, to: &str| {
        let audit = dev.ok(&["audit", "--output", "json"]).json();
        audit
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                format!(
                    "{} ({})",
                    e["who"].as_str().unwrap_or(""),
                    e["role"].as_str().unwrap_or("")
                ) == slipway_coordinator::promote::FINISHER
                    && e["target"] == format!("hello -> {to}").as_str()
            })
            .count()
    };
    for point in PROMOTE_POINTS.iter().chain(PROMOTE_POINTS) {
        let to = other(&current);
        let audited_before = finisher_entries(&dev, to);
        let cli = dev.pause_at(point, |dev| {
            dev.cli_in_background(&["promote", "hello", "--to", to])
        });
        dev.crash_and_restart();
        let answered = cli.finish();
        assert!(
            !answered.success,
            "the CLI cannot have had an answer: {}",
            answered.stdout
        );
        check(
            &dev,
            &format!("kill at {point} promoting to {to}"),
            Some(to),
            &mut current,
        );
        let audited = finisher_entries(&dev, to) - audited_before;
        assert_eq!(
            audited, 1,
            "the promotion to {to} finished after a kill at {point} is audited once"
        );
    }

    // At random moments: an acknowledged promotion holds; any other either
    // happened or did not, and DNS agrees with what is stored.
    let mut moments = Moments::from_env();
    let random_runs = random_runs();
    let (mut acknowledged, mut moved) = (0, 0);
    for run in 0..random_runs {
        let to = other(&current);
        let cli = dev.cli_in_background(&["promote", "hello", "--to", to]);
        let delay = moments.next_ms(300);
        std::thread::sleep(Duration::from_millis(delay));
        dev.crash_and_restart();
        let answered = cli.finish();
        let label = format!("random run {run}: kill {delay} ms into promoting to {to}");
        check(&dev, &label, answered.success.then_some(to), &mut current);
        acknowledged += usize::from(answered.success);
        moved += usize::from(current == to);
    }

    let report = load.finish();
    println!(
        "promotion faults: {} kills at {} points, {random_runs} random ({acknowledged} acknowledged before the kill, {moved} moved the record), {} violations, {} requests with {} failures, {:.0} s",
        PROMOTE_POINTS.len() * 2,
        PROMOTE_POINTS.len(),
        violations.len(),
        report.requests,
        report.failures.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    report.assert_no_failures();
    assert!(
        report.last_body().contains(&current),
        "traffic ends on {current}: {}",
        report.last_body()
    );
}

/// The lease in the failover runs: shorter than the default, so a takeover
/// (the lease and a sixth) takes about 3.5 s.
#[cfg(feature = "postgres")]
const FAILOVER_LEASE: &str = "3s";

#[cfg(feature = "postgres")]
#[test]
fn kill_9_of_the_leader_at_every_step_hands_the_deploy_to_the_standby_and_loses_nothing() {
    let started = Instant::now();
    let server = slipway_tests::postgres::Postgres::start();
    let url = server.database("faults");
    let standby_listen = format!("127.0.0.1:{}", slipway_tests::free_port());
    let dir = slipway_tests::TempDir::new("coordinator");
    let dev = Coordinator::start_in_with(
        dir,
        &fleet(),
        vec![
            ("SLIPWAY_STORE".into(), url),
            ("SLIPWAY_LEASE".into(), FAILOVER_LEASE.into()),
            ("SLIPWAY_PEERS".into(), format!("https://{standby_listen}")),
        ],
    );
    let failover = Failover {
        _server: server,
        listens: [dev.listen.clone(), standby_listen],
        leading: 0,
        standby: None,
    };
    let mut harness = Harness::start_with(dev, Some(failover));
    let load = Load::start_for(&harness.dev.endpoint("staging"), LOAD_LIMIT);
    load.wait_for_requests(20);

    for point in HEALTHY_POINTS {
        let version = harness.next_healthy();
        harness.run(version, Kill::At(point));
    }
    for point in ROLLBACK_POINTS {
        harness.run("broken", Kill::At(point));
    }
    harness.run_migration_points();

    let report = load.finish();
    println!(
        "failover fault harness: {} runs, {} violations, {} requests with {} failures, {:.0} s",
        harness.runs,
        harness.violations.len(),
        report.requests,
        report.failures.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        harness.violations.is_empty(),
        "{} violations:\n{}",
        harness.violations.len(),
        harness.violations.join("\n")
    );
    report.assert_no_failures();
}
