//! `slipway-bench`: the figures in BENCHMARKS.md. A benchmark, not a test: it
//! measures and prints, it asserts nothing about speed.
//!
//!     cargo build --release --workspace --bins
//!     cargo run --release -p slipway-tests --bin slipway-bench -- [DEPLOYS]
//!     cargo run --release -p slipway-tests --bin slipway-bench -- events [WATCHERS] [DEPLOYS]
//!     cargo run --release -p slipway-tests --bin slipway-bench -- dashboard [CLIENTS] [DEPLOYS]
//!     cargo run --release -p slipway-tests --bin slipway-bench -- history [DEPLOYMENTS] [AUDIT]
//!     cargo run --release -p slipway-tests --bin slipway-bench -- enqueue [CLIENTS] [SECONDS] [postgres]
//!     cargo run --release -p slipway-tests --bin slipway-bench -- agents [AGENTS]
//!     cargo run --release -p slipway-tests --bin slipway-bench -- agent-life [CYCLES] [AGENT] [WHAT]
//!
//! Measures the agent binary's size, idle RSS of an agent, the coordinator and
//! the local cloud, and the wall time of one-instance deploys on the local cloud
//! with the time spent in each phase. `events`: see `bench/events.rs`;
//! `dashboard`: see `bench/dashboard.rs`; `history`: see `bench/history.rs`;
//! `enqueue`: see `bench/enqueue.rs`; `agents`: see `bench/agents.rs`;
//! `agent-life`: see `bench/agent_life.rs`.

#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[path = "bench/agent_life.rs"]
mod agent_life;
#[path = "bench/agents.rs"]
mod agents;
#[path = "bench/dashboard.rs"]
mod dashboard;
#[path = "bench/enqueue.rs"]
mod enqueue;
#[path = "bench/events.rs"]
mod events;
#[path = "bench/history.rs"]
mod history;

use slipway_tests::processes::agent_pid;
use slipway_tests::{Coordinator, bin_dir, phases, strings};

fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// A KiB figure of `/proc/PID/status` (`VmRSS:`, `RssAnon:`, ...); 0 if absent.
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn local_cloud_pid(dev: &Coordinator) -> Option<u32> {
    let dir = dev.data_dir().join("cloud");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let text = String::from_utf8_lossy(&cmdline);
        (text.contains("slipway-local-cloud") && text.contains(dir.to_str()?)).then_some(pid)
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("events") {
        let number =
            |i: usize, default| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
        return events::run(number(2, 1000), number(3, 10));
    }
    if args.get(1).map(String::as_str) == Some("enqueue") {
        let number =
            |i: usize, default| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
        return enqueue::run(
            number(2, 50),
            number(3, 10) as u64,
            args.get(4).map(String::as_str),
        );
    }
    if args.get(1).map(String::as_str) == Some("history") {
        let number =
            |i: usize, default| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
        return history::run(number(2, 100_000), number(3, 1_000_000));
    }
    if args.get(1).map(String::as_str) == Some("agents") {
        return agents::run(args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10_000));
    }
    if args.get(1).map(String::as_str) == Some("agent-life") {
        let cycles = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1000);
        return agent_life::run(
            cycles,
            args.get(3).map(Into::into),
            args.get(4).map(String::as_str),
        );
    }
    if args.get(1).map(String::as_str) == Some("dashboard") {
        let number =
            |i: usize, default| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
        return dashboard::run(number(2, 200), number(3, 10));
    }
    let deploys: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10);
    let profile = if bin_dir().ends_with("release") {
        "release"
    } else {
        "debug"
    };
    let agent_size = std::fs::metadata(bin_dir().join("slipway-agent"))
        .map(|m| m.len())
        .unwrap_or(0);
    let dev = Coordinator::start();

    let mut walls = Vec::new();
    let mut per_phase: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for i in 0..deploys {
        let version = if i % 2 == 0 { "v1" } else { "v2" };
        let started = Instant::now();
        dev.ok(&["deploy", "hello", version, "--env", "staging", "--wait"]);
        walls.push(started.elapsed().as_secs_f64() * 1000.0);
        let history = dev
            .ok(&["deployments", "--limit", "1", "--output", "json"])
            .json();
        let list = phases(&history[0]);
        for pair in list.windows(2) {
            per_phase
                .entry(pair[0].0.clone())
                .or_default()
                .push((pair[1].1 - pair[0].1) as f64);
        }
    }
    std::thread::sleep(Duration::from_secs(3));
    let history = dev
        .ok(&["deployments", "--limit", "1", "--output", "json"])
        .json();
    let instance = strings(&history[0]["new_instances"]).remove(0);
    let agent = agent_pid(&instance).map(rss_kib).unwrap_or(0);
    let coordinator = dev.pid().map(rss_kib).unwrap_or(0);
    let cloud = local_cloud_pid(&dev).map(rss_kib).unwrap_or(0);

    println!(
        "profile: {profile}, {deploys} one-instance deploys to staging (v1 and v2 alternating)\n"
    );
    println!("| what | figure |\n|---|---|");
    println!(
        "| slipway-agent binary | {:.1} MiB |",
        agent_size as f64 / 1048576.0
    );
    println!(
        "| agent idle RSS (services running, connected) | {:.1} MiB |",
        agent as f64 / 1024.0
    );
    println!(
        "| coordinator idle RSS (after the deploys) | {:.1} MiB |",
        coordinator as f64 / 1024.0
    );
    println!("| local cloud RSS | {:.1} MiB |", cloud as f64 / 1024.0);
    println!(
        "| deploy wall time, CLI `--wait`, median | {:.0} ms |",
        median(walls.clone())
    );
    println!(
        "| deploy wall time, min / max | {:.0} / {:.0} ms |",
        walls.iter().cloned().fold(f64::MAX, f64::min),
        walls.iter().cloned().fold(0.0, f64::max)
    );
    println!("\n| phase (time spent in it) | median ms |\n|---|---|");
    let order = [
        "queued",
        "launching",
        "booting",
        "configuring",
        "ready",
        "attaching",
        "draining",
        "retiring",
    ];
    for phase in order {
        if let Some(values) = per_phase.get(phase) {
            println!("| {phase} | {:.0} |", median(values.clone()));
        }
    }
}
