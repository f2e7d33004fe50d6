//! A coordinator crash keeps releases, queue and history, and the local cloud
//! keeps serving traffic through it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use slipway_tests::Coordinator;
use slipway_tests::load::Load;

#[test]
fn a_coordinator_crash_loses_nothing_and_traffic_keeps_flowing() {
    let mut dev = Coordinator::start();
    dev.ok(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);
    let releases_before = dev.ok(&["release", "list", "--output", "json"]).json();
    // An active deployment (broken stays in flight for 10 s) and one queued behind it.
    let active = dev.enqueue("broken", "staging");
    let queued = dev.enqueue("v2", "staging");
    let load = Load::start(&dev.endpoint("staging"));
    load.wait_for_requests(20);

    dev.crash_and_restart();

    assert_eq!(
        dev.ok(&["release", "list", "--output", "json"]).json(),
        releases_before
    );
    let history = dev.ok(&["deployments", "--output", "json"]).json();
    let ids: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&active.as_str()) && ids.contains(&queued.as_str()),
        "history lost entries: {ids:?}"
    );
    assert_eq!(
        history.as_array().unwrap().last().unwrap()["phase"],
        "succeeded",
        "the first deploy's record"
    );

    // The resumed deployments run to their ends in order.
    let broken = dev.wait_finished(&active, Duration::from_secs(120));
    assert_eq!(broken["phase"], "rolled_back", "{broken}");
    let v2 = dev.wait_finished(&queued, Duration::from_secs(120));
    assert_eq!(v2["phase"], "succeeded", "{v2}");
    let report = load.finish();
    report.assert_no_failures();
    assert!(report.last_body().contains("v2"), "{}", report.last_body());
}
