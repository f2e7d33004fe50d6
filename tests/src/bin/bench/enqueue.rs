//! `slipway-bench enqueue [CLIENTS] [SECONDS]`: durable enqueue throughput.
//!
//! CLIENTS long-lived mTLS clients (a connection each, as CI runners keeping
//! a client would) send `Deploy` one after another for SECONDS; each answer
//! comes once the deployment, its event and its audit entry are flushed.
//! prod2 requires an approval, so every deployment stays queued and the
//! figure is the enqueue alone. Prints acknowledged enqueues per second and
//! the latency spread.
//!
//! `enqueue CLIENTS SECONDS postgres` runs the coordinator on a PostgreSQL
//! server of its own (Debian's, as the tests start it) instead of the
//! embedded store: build the benchmark and the coordinator with
//! `--features postgres` for it.

use std::time::{Duration, Instant};

use slipway_proto::v1::DeployRequest;
use slipway_proto::v1::operator_service_client::OperatorServiceClient;
use slipway_tests::{Coordinator, TempDir};

pub fn run(clients: usize, seconds: u64, store: Option<&str>) {
    let (_server, env) = match store {
        None => (None, Vec::new()),
        Some("postgres") => postgres(),
        Some(other) => panic!("the store is postgres or left out, not {other:?}"),
    };
    let dev =
        Coordinator::start_in_with(TempDir::new("bench-enqueue"), &crate::history::fleet(), env);
    println!("store: {}", store.unwrap_or("embedded (sled)"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (acknowledged, mut latencies, took) = runtime.block_on(async {
        let until = Instant::now() + Duration::from_secs(seconds);
        let started = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                let mut client = OperatorServiceClient::new(dev.admin_channel());
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    while Instant::now() < until {
                        let at = Instant::now();
                        client
                            .deploy(DeployRequest {
                                project: "hello".into(),
                                version: "v1".into(),
                                environment: "prod2".into(),
                            })
                            .await
                            .unwrap();
                        latencies.push(at.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        (all.len(), all, started.elapsed())
    });
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{clients} clients, {:.1} s: {acknowledged} enqueues acknowledged, {:.0} a second; \
         latency median {:.1} ms, p99 {:.1} ms",
        took.as_secs_f64(),
        acknowledged as f64 / took.as_secs_f64(),
        ms(latencies[latencies.len() / 2]),
        ms(latencies[latencies.len() * 99 / 100]),
    );
    let queued = dev.ok(&["queue", "--output", "json"]).json();
    let waiting = queued
        .as_array()
        .map(|lines| {
            lines
                .iter()
                .map(|l| l["waiting"].as_array().map_or(0, Vec::len))
                .sum::<usize>()
        })
        .unwrap_or(0);
    println!("queued afterwards: {waiting} (every acknowledged enqueue is there)");
}

/// A PostgreSQL server of the benchmark's own, and the coordinator's
/// environment that points at it.
#[cfg(feature = "postgres")]
fn postgres() -> (
    Option<slipway_tests::postgres::Postgres>,
    Vec<(String, String)>,
) {
    let server = slipway_tests::postgres::Postgres::start();
    let url = server.database("bench");
    (Some(server), vec![("SLIPWAY_STORE".into(), url)])
}

#[cfg(not(feature = "postgres"))]
fn postgres() -> (Option<()>, Vec<(String, String)>) {
    panic!(
        "build with --features postgres: cargo build --release -p slipway-tests --features postgres --bins"
    )
}
