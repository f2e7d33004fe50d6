//! The release queue: FIFO per target, one active deployment per target, targets
//! in parallel, cancel of a queued deployment.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use slipway_tests::{Coordinator, entered, eventually, finished_at};

const DEADLINE: Duration = Duration::from_secs(120);

#[test]
fn deploys_to_one_environment_run_one_at_a_time_in_order() {
    let dev = Coordinator::start();
    let ids: Vec<String> = ["v1", "v2", "v1"]
        .iter()
        .map(|v| dev.enqueue(v, "staging"))
        .collect();
    let queue = dev.ok(&["queue", "--output", "json"]).json();
    let line = &queue[0];
    let queued: Vec<&str> = line["waiting"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    let active = line["active"]["id"].as_str();
    let mut listed: Vec<&str> = active.into_iter().collect();
    listed.extend(queued);
    // On a slow machine the first deploy may be over before the listing; the
    // ones still there are the last ones enqueued, in order.
    let ids_str: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert!(
        !listed.is_empty() && ids_str.ends_with(&listed),
        "queue order: listed {listed:?}, enqueued {ids_str:?}"
    );

    let done: Vec<_> = ids
        .iter()
        .map(|id| dev.wait_finished(id, DEADLINE))
        .collect();
    for d in &done {
        assert_eq!(d["phase"], "succeeded", "{d}");
    }
    for pair in done.windows(2) {
        let started = entered(&pair[1], "launching").unwrap();
        assert!(
            started >= finished_at(&pair[0]),
            "{} launched before {} finished",
            pair[1]["id"],
            pair[0]["id"]
        );
    }
    assert_eq!(dev.environment("staging")["active_version"], "v1");
}

#[test]
fn deploys_to_two_environments_run_in_parallel() {
    let dev = Coordinator::start();
    // `broken` spends its whole ready deadline (10 s) in flight: long enough to overlap.
    let staging = dev.enqueue("broken", "staging");
    let qaprod = dev.enqueue("broken", "qaprod1");
    let a = dev.wait_finished(&staging, DEADLINE);
    let b = dev.wait_finished(&qaprod, DEADLINE);
    let (a_start, b_start) = (
        entered(&a, "launching").unwrap(),
        entered(&b, "launching").unwrap(),
    );
    assert!(
        b_start < finished_at(&a) && a_start < finished_at(&b),
        "the two targets did not overlap: {a}\n{b}"
    );
}

#[test]
fn cancel_removes_a_queued_deployment() {
    let dev = Coordinator::start();
    let active = dev.enqueue("broken", "staging");
    let queued = dev.enqueue("v1", "staging");
    let run = dev.ok(&["cancel", &queued]);
    assert!(run.stdout.contains("cancelled"), "{}", run.stdout);

    let d = dev.deployment(&queued);
    assert_eq!(d["phase"], "cancelled");
    assert!(
        d["reason"].as_str().unwrap().contains("cancelled by admin"),
        "{d}"
    );
    let queue = dev.ok(&["queue", "--output", "json"]).json();
    assert!(
        !queue.to_string().contains(&format!("\"{queued}\"")),
        "cancelled deployment still queued: {queue}"
    );
    dev.wait_finished(&active, DEADLINE);
    let d = dev.deployment(&queued);
    assert_eq!(
        entered(&d, "launching"),
        None,
        "a cancelled deployment must never launch"
    );
    let again = dev.cli(&["cancel", &queued]);
    assert!(
        !again.success && again.stderr.contains("already finished"),
        "{}",
        again.stderr
    );
}

#[test]
fn cancelling_an_active_deployment_rolls_it_back() {
    let dev = Coordinator::start();
    let id = dev.enqueue("broken", "staging");
    eventually("the deployment to launch", DEADLINE, || {
        (!dev.deployment(&id)["new_instances"]
            .as_array()
            .unwrap()
            .is_empty())
        .then_some(())
    });
    dev.ok(&["cancel", &id]);
    let d = dev.wait_finished(&id, DEADLINE);
    assert_eq!(d["phase"], "rolled_back");
    assert!(
        d["reason"].as_str().unwrap().contains("cancelled by admin"),
        "{d}"
    );
}
