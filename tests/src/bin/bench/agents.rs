//! `slipway-bench agents [AGENTS]`: AGENTS (10,000) agents on one coordinator.
//!
//! A dev coordinator runs the sample fleet plus an environment `hollow` where
//! projects `hollow-0`… run 1,000 instances each (the most one target may
//! have) of images without an agent: the local cloud boots nothing for them,
//! and `slipway_tests::hollow` plays each agent in this process (its own key,
//! certificate from its real join token, mTLS stream from its own address,
//! heartbeats at the interval the coordinator asks for). Measured, in order:
//!
//! 1. one-instance deploys of `hello` to staging (real agent, real service)
//!    on the idle coordinator;
//! 2. every hollow project deployed, one after another (1,000 instances
//!    each), until all agents are connected;
//! 3. at rest: the coordinator's RSS and CPU, and how long after it was sent
//!    each agent's heartbeat was taken in (its `last_seen` from `agents`);
//! 4. the one-instance deploys again, with every agent connected;
//! 5. one agent falls silent (stream open, no heartbeat): time to its
//!    `agent.lost` event;
//! 6. kill -9 of the coordinator and a restart: time until every agent has
//!    a new stream.
//!
//! This process and the coordinator share the machine's cores: the played
//! agents' TLS and heartbeats are CPU the coordinator does not get.

use std::time::{Duration, Instant};

use serde_json::Value;
use slipway_tests::cloud::CloudView;
use slipway_tests::hollow::{self, Hollow};
use slipway_tests::{Coordinator, eventually};

/// The most instances one project may run in one environment.
const PER_TARGET: usize = 1000;
const DEPLOYS: usize = 5;

fn fleet(projects: usize, per_project: usize) -> String {
    let deadlines = "launch = \"30m\"\nboot = \"30m\"\nconfigure = \"30m\"\n\
                     ready = \"30m\"\nattach = \"30m\"\ndrain = \"1m\"";
    (0..projects).fold(hollow::sample_fleet(), |fleet, p| {
        fleet + &hollow::project(&format!("hollow-{p}"), per_project, deadlines)
    })
}

/// As many open files as the kernel allows this process (root may raise its
/// hard limit): 10,000 streams and as many health ports. Inherited by the
/// coordinator and its local cloud.
fn raise_open_files() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let want = 200_000;
    if setrlimit(Resource::RLIMIT_NOFILE, want, want).is_err() {
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
    getrlimit(Resource::RLIMIT_NOFILE).unwrap().0
}

/// Wall times (ms) of one-instance deploys of `hello` to staging.
fn deploy_walls(dev: &Coordinator) -> Vec<f64> {
    (0..DEPLOYS)
        .map(|i| {
            let version = if i % 2 == 0 { "v2" } else { "v1" };
            let started = Instant::now();
            dev.ok(&["deploy", "hello", version, "--env", "staging", "--wait"]);
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect()
}

/// utime + stime of `pid`, in clock ticks (100 a second).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| {
        fields
            .get(n)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat; 12 and 13 after the name.
    field(11) + field(12)
}

fn percentile(sorted: &[f64], p: usize) -> f64 {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

pub fn run(agents: usize) {
    let open_files = raise_open_files();
    let projects = agents.div_ceil(PER_TARGET);
    let per_project = agents / projects;
    let agents = per_project * projects;
    println!(
        "{agents} agents: {projects} projects × {per_project} instances; open-file limit {open_files}\n"
    );
    let mut dev = Coordinator::start_dev_with_fleet(&fleet(projects, per_project));
    let cloud = CloudView::new(dev.data_dir());
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };

    // 1. Idle.
    dev.ok(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);
    let idle = median(deploy_walls(&dev));
    let idle_rss = dev.pid().map(crate::rss_kib).unwrap_or(0);

    // 2. The hollow fleet.
    let names: Vec<String> = (0..projects).map(|p| format!("hollow-{p}")).collect();
    for project in &names {
        cloud.bake_hollow(project, "v1");
        dev.ok(&["release", "add", project, "v1"]);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let hollow = {
        let _inside = runtime.enter();
        Hollow::start(dev.data_dir(), &names, 8080)
    };
    // One project after another: a played instance listens for its health
    // check until its target attaches it, and the open-file limit would not
    // hold 10,000 listeners beside 10,000 streams.
    let started = Instant::now();
    for p in 0..projects {
        let project = format!("hollow-{p}");
        let finished = dev
            .ok(&[
                "deploy", &project, "v1", "--env", "hollow", "--wait", "-o", "json",
            ])
            .json();
        assert_eq!(finished["phase"], "succeeded", "{finished}");
    }
    let deployed = started.elapsed();
    eventually(
        "every hollow agent to be connected",
        Duration::from_secs(600),
        || (hollow.connected() == agents).then_some(()),
    );
    println!(
        "deployed {projects} × {per_project} instances, one target after another: {:.0} s",
        deployed.as_secs_f64()
    );

    // 3. At rest.
    std::thread::sleep(Duration::from_secs(10));
    let pid = dev.pid().unwrap();
    let (ticks, at) = (cpu_ticks(pid), Instant::now());
    let mut delays = Vec::new();
    while at.elapsed() < Duration::from_secs(30) {
        let listed = dev.ok(&["agents", "-o", "json"]).json();
        for agent in listed.as_array().unwrap() {
            let id = agent["instance_id"].as_str().unwrap();
            let last_seen = agent["last_seen_ms"].as_i64().unwrap_or(0);
            if let Some(delay) = hollow
                .agent(id)
                .and_then(|a| a.heartbeat_delay_ms(last_seen))
            {
                delays.push(delay);
            }
        }
        std::thread::sleep(Duration::from_secs(3));
    }
    let cpu = (cpu_ticks(pid) - ticks) as f64 / at.elapsed().as_secs_f64();
    let rss = crate::rss_kib(pid);
    delays.sort_by(f64::total_cmp);

    // 4. A deploy with every agent connected.
    let loaded = median(deploy_walls(&dev));

    // 5. One silent agent.
    let silent = hollow.agents().into_iter().next().unwrap();
    let project = dev
        .ok(&["agents", "-o", "json"])
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["instance_id"] == silent.instance_id.as_str())
        .map(|a| a["project"].as_str().unwrap().to_string())
        .unwrap();
    let last = silent.fall_silent().unwrap();
    let noticed_at = eventually(
        "the silent agent's agent.lost event",
        Duration::from_secs(120),
        || {
            let events = dev.ok(&["events", "--project", &project, "-o", "json"]);
            slipway_tests::json_lines(&events.stdout)
                .iter()
                .find(|e: &&Value| {
                    e["kind"] == "agent.lost" && e.to_string().contains(&silent.instance_id)
                })
                .and_then(|e| e["at_ms"].as_i64())
        },
    );

    // 6. kill -9 and a restart.
    let before: Vec<(String, u64)> = hollow
        .agents()
        .iter()
        .filter(|a| a.instance_id != silent.instance_id)
        .map(|a| (a.instance_id.clone(), a.sessions()))
        .collect();
    let killed = Instant::now();
    dev.crash_and_restart();
    let restarted = killed.elapsed();
    eventually(
        "every agent to have a new stream",
        Duration::from_secs(600),
        || {
            before
                .iter()
                .all(|(id, sessions)| {
                    hollow
                        .agent(id)
                        .is_some_and(|a| a.is_connected() && a.sessions() > *sessions)
                })
                .then_some(())
        },
    );
    let reconnected = killed.elapsed();

    println!("\n| what | figure |\n|---|---|");
    println!(
        "| coordinator RSS, idle (sample fleet only) / {agents} agents at rest | {:.1} / {:.1} MiB |",
        idle_rss as f64 / 1024.0,
        rss as f64 / 1024.0
    );
    println!("| coordinator CPU at rest | {cpu:.0} % of one core |");
    println!(
        "| heartbeat taken in after it was sent (sampled: {}), p50 / p99 / max | {:.1} / {:.1} / {:.1} ms |",
        delays.len(),
        percentile(&delays, 50),
        percentile(&delays, 99),
        delays.last().copied().unwrap_or(0.0)
    );
    println!(
        "| one-instance deploy, median of {DEPLOYS}: idle / {agents} agents connected | {idle:.0} / {loaded:.0} ms |"
    );
    println!(
        "| silent agent: last heartbeat to its `agent.lost` event | {:.1} s |",
        (noticed_at - last) as f64 / 1000.0
    );
    println!(
        "| kill -9 to every agent on a new stream (restart itself: {:.1} s) | {:.1} s |",
        restarted.as_secs_f64(),
        reconnected.as_secs_f64()
    );
}
