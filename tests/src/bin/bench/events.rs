//! `slipway-bench events [WATCHERS]`: what events and notifications cost.
//!
//! 1. Deploys with a notification whose receiver accepts connections and
//!    never answers, against the same deploys without one: the per-phase
//!    times say whether delivering holds a deploy up.
//! 2. WATCHERS `WatchEvents` streams that never read while deploys make
//!    events: the coordinator's RSS before, at its peak, and after the
//!    deploys.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use slipway_coordinator::sample::SAMPLE_FLEET;
use slipway_proto::v1::WatchEventsRequest;
use slipway_proto::v1::operator_service_client::OperatorServiceClient;
use slipway_tests::{Coordinator, phases};
use tonic::transport::Channel;

use crate::{median, rss_kib};

/// Per-phase medians (ms) and the median wall time of `deploys` deploys.
fn deploy_times(dev: &Coordinator, deploys: usize) -> (BTreeMap<String, f64>, f64) {
    let mut walls = Vec::new();
    let mut per_phase: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for i in 0..deploys {
        let version = if i % 2 == 0 { "v1" } else { "v2" };
        let started = Instant::now();
        let d = dev
            .ok(&[
                "deploy", "hello", version, "--env", "staging", "--wait", "-o", "json",
            ])
            .json();
        walls.push(started.elapsed().as_secs_f64() * 1000.0);
        for pair in phases(&d).windows(2) {
            per_phase
                .entry(pair[0].0.clone())
                .or_default()
                .push((pair[1].1 - pair[0].1) as f64);
        }
    }
    let medians = per_phase
        .into_iter()
        .map(|(phase, values)| (phase, median(values)))
        .collect();
    (medians, median(walls))
}

pub fn run(watchers: usize, deploys: usize) {
    // Accepts, reads nothing, answers nothing.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming().flatten() {
            held.push(stream);
        }
    });
    let without = Coordinator::start();
    let (plain, plain_wall) = deploy_times(&without, deploys);
    drop(without);
    let fleet = format!(
        "{SAMPLE_FLEET}\n[notifications.silent]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/\"\n"
    );
    let dev = Coordinator::start_dev_with_fleet(&fleet);
    std::thread::sleep(Duration::from_secs(3));
    let (silenced, silenced_wall) = deploy_times(&dev, deploys);
    println!(
        "{deploys} one-instance deploys to staging each, without and with a notification whose receiver never answers\n"
    );
    println!("| phase | median ms without | median ms with |\n|---|---|---|");
    for (phase, ms) in &plain {
        println!(
            "| {phase} | {ms:.0} | {:.0} |",
            silenced.get(phase).copied().unwrap_or(f64::NAN)
        );
    }
    println!("| deploy wall time, CLI `--wait` | {plain_wall:.0} | {silenced_wall:.0} |");

    // Slow watchers.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let pid = dev.pid().unwrap();
    let before = rss_kib(pid);
    let channels: Vec<Channel> = (0..watchers.div_ceil(10).max(1))
        .map(|_| runtime.block_on(async { dev.admin_channel() }))
        .collect();
    let mut streams = Vec::new();
    runtime.block_on(async {
        for i in 0..watchers {
            let mut api = OperatorServiceClient::new(channels[i % channels.len()].clone());
            let request = WatchEventsRequest {
                follow: true,
                ..Default::default()
            };
            // Held, never read.
            streams.push(api.watch_events(request).await.unwrap());
        }
    });
    let opened = rss_kib(pid);
    let started = Instant::now();
    let mut peak = opened;
    let sampler = std::thread::scope(|scope| {
        let sampling = scope.spawn(|| {
            let mut peak = 0;
            while started.elapsed() < Duration::from_secs(20 + deploys as u64 * 2) {
                peak = peak.max(rss_kib(pid));
                std::thread::sleep(Duration::from_millis(200));
            }
            peak
        });
        let _ = deploy_times(&dev, deploys);
        sampling.join().unwrap()
    });
    peak = peak.max(sampler);
    let after = rss_kib(pid);
    drop(streams);
    println!(
        "\n{watchers} WatchEvents streams (follow, from the first event) that never read, over {} connections, while {deploys} more deploys made events\n",
        channels.len()
    );
    println!("| coordinator RSS | MiB |\n|---|---|");
    println!("| before the watchers | {:.1} |", before as f64 / 1024.0);
    println!("| with the watchers open | {:.1} |", opened as f64 / 1024.0);
    println!("| peak while events flowed | {:.1} |", peak as f64 / 1024.0);
    println!("| after the deploys | {:.1} |", after as f64 / 1024.0);
}
