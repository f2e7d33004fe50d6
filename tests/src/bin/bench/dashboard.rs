//! `slipway-bench dashboard [CLIENTS] [DEPLOYS]`: the dashboard under a wall
//! of screens (DESIGN.md: 200 event-stream clients stand for 200 browsers).
//!
//! 1. The latency of the board page, its JSON and `/metrics` (50 requests
//!    each, a fresh TLS connection per request, as a scraper opens one) with
//!    no stream open.
//! 2. CLIENTS event streams opened and held: the coordinator's RSS before and
//!    after, and the same latencies again while they are open.
//! 3. DEPLOYS deploys while they are open: how long after a phase was stored
//!    each client received it (every client, every phase).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use slipway_tests::Coordinator;
use slipway_tests::web::{self, SseStream};

use crate::rss_kib;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let i = ((values.len() as f64 - 1.0) * p).round() as usize;
    values.get(i).copied().unwrap_or(f64::NAN)
}

fn latencies(base: &str, tls: &Arc<rustls::ClientConfig>, bearer: &str) {
    for path in ["/", "/board.json", "/metrics"] {
        let mut took = Vec::new();
        for _ in 0..50 {
            let started = Instant::now();
            let reply = web::get(&format!("{base}{path}"), tls, &[("Authorization", bearer)]);
            assert_eq!(reply.status, 200, "{path}");
            took.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        println!(
            "  GET {path:<12} p50 {:.1} ms  p99 {:.1} ms",
            percentile(&mut took, 0.5),
            percentile(&mut took, 0.99)
        );
    }
}

pub fn run(clients: usize, deploys: usize) {
    let dev = Coordinator::start();
    dev.ok(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);
    let (_, token) = dev.dashboard_url("bench");
    let bearer = format!("Bearer {token}");
    let base = dev.dashboard();
    let tls = web::tls_config(&dev.ca_pem());
    let pid = dev.pid().expect("coordinator pid");

    println!(
        "dashboard with no stream open (coordinator RSS {} KiB):",
        rss_kib(pid)
    );
    latencies(&base, &tls, &bearer);

    // Each client records, for every event it receives, how long after the
    // event's stored time it arrived.
    let lags: Arc<Mutex<Vec<f64>>> = Arc::default();
    let opened = Instant::now();
    let mut readers = Vec::new();
    for _ in 0..clients {
        let mut stream = SseStream::open(
            &format!("{base}/stream"),
            &tls,
            &[("Authorization", &bearer)],
        )
        .expect("open a stream");
        assert_eq!(stream.status, 200);
        assert_eq!(stream.next().expect("the board").event, "board");
        let lags = lags.clone();
        readers.push(std::thread::spawn(move || {
            for message in stream {
                if message.event != "update" {
                    continue;
                }
                let received = now_ms();
                let update = message.json();
                for event in update["events"].as_array().into_iter().flatten() {
                    let at = event["at"].as_i64().unwrap_or(received);
                    lags.lock().unwrap().push((received - at) as f64);
                }
            }
        }));
    }
    println!(
        "{clients} streams open in {:.1} s (coordinator RSS {} KiB):",
        opened.elapsed().as_secs_f64(),
        rss_kib(pid)
    );
    latencies(&base, &tls, &bearer);

    let started = Instant::now();
    for i in 0..deploys {
        let version = if i % 2 == 0 { "v2" } else { "v1" };
        dev.ok(&["deploy", "hello", version, "--env", "staging", "--wait"]);
    }
    let wall = started.elapsed();
    std::thread::sleep(Duration::from_secs(3));
    let mut lags = lags.lock().unwrap().clone();
    println!(
        "{deploys} deploys in {:.1} s with {clients} streams open; {} deliveries of events to clients:",
        wall.as_secs_f64(),
        lags.len()
    );
    println!(
        "  stored → received: p50 {:.0} ms  p99 {:.0} ms  max {:.0} ms (coordinator RSS {} KiB)",
        percentile(&mut lags, 0.5),
        percentile(&mut lags, 0.99),
        percentile(&mut lags, 1.0),
        rss_kib(pid)
    );
    drop(dev);
    for reader in readers {
        let _ = reader.join();
    }
}
