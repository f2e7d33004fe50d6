//! Blue/green deploys on the embedded local cloud, end to end: the README's first
//! command, zero-downtime switches, rollbacks of bad releases and lost agents.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::time::Duration;

use slipway_coordinator::sample::SAMPLE_FLEET;
use slipway_tests::load::{Load, get};
use slipway_tests::processes::{agent_pid, instance_processes, kill9};
use slipway_tests::{Coordinator, entered, eventually, strings, unix_ms};

const DEPLOY: Duration = Duration::from_secs(60);

#[test]
fn the_readme_walkthrough_deploys_v1_to_staging() {
    let dev = Coordinator::start();
    let run = dev.ok(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);
    for phase in [
        "launching",
        "booting",
        "configuring",
        "ready",
        "attaching",
        "succeeded",
    ] {
        assert!(
            run.stdout.contains(phase),
            "--wait must show phase {phase}:\n{}",
            run.stdout
        );
    }
    // A first deploy has nothing to drain or retire, and says nothing about it.
    for phase in ["draining", "retiring"] {
        assert!(
            !run.stdout.contains(phase),
            "{phase} shown:\n{}",
            run.stdout
        );
    }
    let staging = dev.environment("staging");
    assert_eq!(staging["active_version"], "v1");
    let endpoint = staging["endpoint"].as_str().unwrap();
    let body = get(endpoint, "/").unwrap();
    assert!(body.contains("v1"), "staging answered {body:?}");
    let instances = staging["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 1, "{staging}");
    assert_eq!(instances[0]["in_service"], true);
    assert_eq!(instances[0]["agent"], "connected");
}

#[test]
fn deploying_v2_under_load_fails_no_request_and_retires_the_old_instances() {
    let dev = Coordinator::start();
    dev.ok(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);
    let old: Vec<String> = dev.environment("staging")["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["instance_id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        old.iter().all(|id| !instance_processes(id).is_empty()),
        "old instances should run"
    );

    let load = Load::start(&dev.endpoint("staging"));
    load.wait_for_requests(20);
    dev.ok(&["deploy", "hello", "v2", "--env", "staging", "--wait"]);
    load.wait_for_requests(50);
    let report = load.finish();

    report.assert_no_failures();
    assert!(
        report.first_body().contains("v1"),
        "{}",
        report.first_body()
    );
    assert!(report.last_body().contains("v2"), "{}", report.last_body());
    // Between registering v2 and deregistering v1 the load balancer has both,
    // as a classic ELB does, so answers may mix for that moment. Once the old
    // instances are out (the deploy went on to retire them), none may answer.
    let deployed = &dev.ok(&["deployments", "--output", "json"]).json()[0];
    assert_eq!(deployed["version"], "v2", "{deployed}");
    let retiring = entered(deployed, "retiring").expect("a retiring phase");
    let after = report.answers_sent_after(retiring);
    assert!(!after.is_empty(), "no request after the switch: {deployed}");
    assert!(
        after.iter().all(|b| b.contains("v2")),
        "v1 answered after its instances left the load balancer: {after:?}"
    );
    for id in &old {
        assert!(
            instance_processes(id).is_empty(),
            "old instance {id} still has processes"
        );
    }
    assert_eq!(dev.environment("staging")["active_version"], "v2");
}

/// A request still open on an old instance when v2 takes over is answered by
/// it: the old instance leaves the load balancer, drains, and only then is
/// terminated. The deployment says what it waits for meanwhile.
#[test]
fn a_request_in_flight_on_an_old_instance_is_answered_before_it_retires() {
    // A drain timeout far longer than the test: the drain must end because
    // the connection closed.
    let fleet = SAMPLE_FLEET.replace("drain = \"10s\"", "drain = \"120s\"");
    assert!(fleet.contains("drain = \"120s\""));
    let dev = Coordinator::start_dev_with_fleet(&fleet);
    dev.ok(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);
    // Headers not finished: the old instance waits for the rest, holding the
    // connection open through the switch.
    let mut held = dev.hold_request("staging");
    held.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();

    let id = dev.enqueue("v2", "staging");
    eventually("v2 to drain the old instances", DEPLOY, || {
        let d = dev.deployment(&id);
        assert_ne!(d["phase"], "retiring", "retired with a request open: {d}");
        assert_ne!(d["finished"], true, "finished with a request open: {d}");
        (d["phase"] == "draining"
            && d["waiting_on"]
                .as_str()
                .unwrap_or("")
                .contains("open connections"))
        .then_some(())
    });
    assert!(
        get(&dev.endpoint("staging"), "/").unwrap().contains("v2"),
        "new requests go to v2 while the old instance drains"
    );

    write!(held, "\r\n").unwrap();
    let mut answer = String::new();
    held.read_to_string(&mut answer).unwrap();
    drop(held); // as a client does once the answer said Connection: close
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("from v1"), "{answer}");
    let done = dev.wait_finished(&id, DEPLOY);
    assert_eq!(done["phase"], "succeeded", "{done}");
    // It waited for the connection, not the whole drain timeout.
    let drained_for = entered(&done, "retiring").unwrap() - entered(&done, "draining").unwrap();
    assert!(
        drained_for < 120_000,
        "drained for {drained_for} ms: {done}"
    );
}

#[test]
fn a_service_that_keeps_exiting_rolls_back_with_its_last_lines() {
    let fleet = SAMPLE_FLEET.replace(
        "variables = { GREETING = \"hello from staging\" }",
        "variables = { GREETING = \"hello from staging\", SAMPLE_EXIT = \"no database at HELLO_DB\" }",
    );
    assert!(fleet.contains("SAMPLE_EXIT"));
    let dev = Coordinator::start_dev_with_fleet(&fleet);
    let run = dev.cli(&[
        "deploy", "hello", "v1", "--env", "staging", "--wait", "-o", "json",
    ]);
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    let d = run.json();
    let reason = d["reason"].as_str().unwrap();
    assert!(
        reason.contains("service web keeps exiting")
            && reason.contains(
                "last output: slipway-sample-app: starting | slipway-sample-app: cannot start: no database at HELLO_DB"
            ),
        "{reason}"
    );
    // `show` prints it for a person.
    let shown = dev.ok(&["show", d["id"].as_str().unwrap()]).stdout;
    assert!(
        shown.contains("cannot start: no database at HELLO_DB"),
        "{shown}"
    );
}

#[test]
fn a_broken_release_rolls_back_and_staging_keeps_serving() {
    let dev = Coordinator::start();
    dev.ok(&["deploy", "hello", "v2", "--env", "staging", "--wait"]);
    let load = Load::start(&dev.endpoint("staging"));
    load.wait_for_requests(20);

    let run = dev.cli(&["deploy", "hello", "broken", "--env", "staging", "--wait"]);
    assert!(
        !run.success,
        "deploying broken must exit non-zero:\n{}",
        run.stdout
    );
    assert!(run.stderr.contains("rolled_back"), "{}", run.stderr);
    assert!(
        run.stderr.contains("health checks") && run.stderr.contains("answered 500"),
        "reason must say why: {}",
        run.stderr
    );
    let report = load.finish();

    let history = dev.ok(&["deployments", "--output", "json"]).json();
    let broken = &history[0];
    assert_eq!(broken["version"], "broken");
    assert_eq!(broken["phase"], "rolled_back");
    assert!(
        broken["reason"].as_str().unwrap().contains("answered 500"),
        "{broken}"
    );
    for id in strings(&broken["new_instances"]) {
        assert!(
            instance_processes(&id).is_empty(),
            "broken instance {id} left running"
        );
    }
    report.assert_no_failures();
    assert!(
        report.bodies.iter().all(|b| b.contains("v2")),
        "staging must keep answering v2"
    );
    assert_eq!(dev.environment("staging")["active_version"], "v2");
}

#[test]
fn killing_a_new_instances_agent_rolls_back_within_seconds() {
    let dev = Coordinator::start();
    dev.ok(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);
    // `broken` never becomes ready, so the deploy is reliably mid-flight when the agent dies.
    let id = dev.enqueue("broken", "staging");
    let instance = eventually("the new instance to await readiness", DEPLOY, || {
        let d = dev.deployment(&id);
        let new = strings(&d["new_instances"]);
        (d["phase"] == "ready" && !new.is_empty()).then(|| new[0].clone())
    });
    let pid = agent_pid(&instance).expect("agent process of the new instance");
    kill9(pid);
    let killed = unix_ms();
    let d = dev.wait_finished(&id, DEPLOY);
    // To the decision, not to the end of the cleanup after it.
    let took = entered(&d, "rolling_back").expect("a rolling_back phase") - killed;

    assert_eq!(d["phase"], "rolled_back");
    let reason = d["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("instance {instance} lost")),
        "reason should name the lost agent: {reason}"
    );
    assert!(
        took < 9_000,
        "the rollback began {took} ms after the agent died"
    );
    assert!(
        instance_processes(&instance).is_empty(),
        "the lost instance was not terminated"
    );
    assert!(get(&dev.endpoint("staging"), "/").unwrap().contains("v1"));
}

#[test]
fn rollback_redeploys_the_release_before_the_current_one() {
    let dev = Coordinator::start();
    let nothing = dev.cli(&["rollback", "hello", "--env", "staging"]);
    assert!(
        !nothing.success && nothing.stderr.contains("nothing to roll back"),
        "{}",
        nothing.stderr
    );
    dev.ok(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);
    dev.ok(&["deploy", "hello", "v2", "--env", "staging", "--wait"]);
    let run = dev.ok(&["rollback", "hello", "--env", "staging", "--wait"]);
    assert!(run.stdout.contains("hello@v1"), "{}", run.stdout);
    assert_eq!(dev.environment("staging")["active_version"], "v1");
    assert!(get(&dev.endpoint("staging"), "/").unwrap().contains("v1"));
    let latest = &dev
        .ok(&["deployments", "--limit", "1", "--output", "json"])
        .json()[0];
    assert!(
        latest["requested_by"]
            .as_str()
            .unwrap()
            .contains("rollback from v2"),
        "{latest}"
    );
}

#[test]
fn agents_lists_the_live_agents_of_running_instances_only() {
    let dev = Coordinator::start();
    dev.ok(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);
    dev.ok(&["deploy", "hello", "v2", "--env", "staging", "--wait"]);
    let agents = dev.ok(&["agents", "--output", "json"]).json();
    let serving = &dev.environment("staging")["instances"][0]["instance_id"];
    let list = agents.as_array().unwrap();
    assert_eq!(
        list.len(),
        1,
        "the retired v1 instance must not be listed: {agents}"
    );
    assert_eq!(&list[0]["instance_id"], serving);
    assert_eq!(list[0]["agent"], "connected");
    assert_eq!(list[0]["ready"], true);
    assert_eq!(list[0]["environment"], "staging");
}

/// The sample fleet with staging keeping its previous instances on standby
/// for a minute after each switch.
fn keeping_previous() -> String {
    let fleet = SAMPLE_FLEET.replace(
        "[environments.staging]\ninstances = 1\n",
        "[environments.staging]\ninstances = 1\nkeep_previous = \"60s\"\n",
    );
    assert!(fleet.contains("keep_previous"));
    fleet
}

fn staging_instances(dev: &Coordinator) -> Vec<serde_json::Value> {
    dev.environment("staging")["instances"]
        .as_array()
        .unwrap()
        .clone()
}

fn deployment_count(dev: &Coordinator) -> usize {
    dev.ok(&["deployments", "-o", "json"])
        .json()
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn rollback_while_watching_puts_the_standby_back_in_seconds_without_a_launch() {
    let dev = Coordinator::start_dev_with_fleet(&keeping_previous());
    dev.ok(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);
    let old: Vec<String> = staging_instances(&dev)
        .iter()
        .map(|i| i["instance_id"].as_str().unwrap().to_string())
        .collect();
    let load = Load::start(&dev.endpoint("staging"));
    load.wait_for_requests(20);
    let id = dev.enqueue("v2", "staging");
    eventually("v2 to be watched", DEPLOY, || {
        (dev.deployment(&id)["phase"] == "watching").then_some(())
    });

    // The old instance runs on, out of the load balancer, and says so.
    let standby = staging_instances(&dev)
        .into_iter()
        .find(|i| i["instance_id"] == old[0].as_str())
        .expect("status lists the standby instance");
    assert_eq!(standby["standby"], true, "{standby}");
    assert_eq!(standby["in_service"], false, "{standby}");
    let table = dev.ok(&["status", "hello"]).stdout;
    assert!(
        table
            .lines()
            .any(|l| l.contains(&old[0]) && l.contains("standby")),
        "{table}"
    );
    let mut watched = dev.deployment(&id);
    assert!(
        watched["waiting_on"]
            .as_str()
            .is_some_and(|w| w.contains(&format!("standby: {}", old[0]))),
        "{watched}"
    );
    load.wait_for_requests(20);

    let asked = unix_ms();
    let run = dev.ok(&["rollback", "hello", "--env", "staging", "--wait"]);
    assert!(
        run.stdout.contains(&id) && run.stdout.contains("standby instances serve staging again"),
        "{}",
        run.stdout
    );
    load.wait_for_requests(20);
    let report = load.finish();

    report.assert_no_failures();
    let back = report
        .sent_at
        .iter()
        .zip(&report.bodies)
        .find(|(at, body)| **at >= asked && body.contains("v1"))
        .map(|(at, _)| at - asked)
        .expect("v1 answered again");
    // The figure for BENCHMARKS.md (run with --no-capture); the bound is the issue's.
    println!("v1 answered again {back} ms after the rollback was asked");
    assert!(
        back < 2_000,
        "v1 answered again {back} ms after the rollback"
    );
    assert!(report.last_body().contains("v1"), "{}", report.last_body());
    watched = dev.deployment(&id);
    assert_eq!(watched["phase"], "rolled_back", "{watched}");
    assert_eq!(watched["rollback_requested_by"], "admin", "{watched}");
    assert_eq!(
        watched["reason"], "rolled back by admin while watching",
        "{watched}"
    );
    // No instance launched: the same one serves, and no deployment was added.
    let serving: Vec<String> = staging_instances(&dev)
        .iter()
        .filter(|i| i["in_service"] == true)
        .map(|i| i["instance_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(serving, old);
    assert_eq!(deployment_count(&dev), 2);
    assert_eq!(dev.environment("staging")["active_version"], "v1");
    let audit = dev.ok(&["audit", "-o", "json"]).json();
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "rollback"
                && e["result"] == format!("{id} goes back to its standby instances")
                && e["deployment"] == id.as_str()),
        "{audit}"
    );
}

#[test]
fn a_release_that_sickens_while_watched_goes_back_to_the_standby_by_itself() {
    let fleet = keeping_previous();
    let dev = Coordinator::start_dev_with_fleet(&fleet);
    dev.ok(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);
    let old: Vec<String> = staging_instances(&dev)
        .iter()
        .map(|i| i["instance_id"].as_str().unwrap().to_string())
        .collect();
    // Instances started from now on fail their health check 8 s in, after
    // they took traffic; their `GET /` keeps answering.
    let sickly = fleet.replace(
        "GREETING = \"hello from staging\" }",
        "GREETING = \"hello from staging\", SAMPLE_HEALTHY_FOR = \"8\" }",
    );
    assert_ne!(sickly, fleet);
    dev.apply_fleet("sickly.toml", &sickly);
    let load = Load::start(&dev.endpoint("staging"));
    load.wait_for_requests(20);

    let run = dev.exits(3, &["deploy", "hello", "v2", "--env", "staging", "--wait"]);
    load.wait_for_requests(20);
    let report = load.finish();

    report.assert_no_failures();
    assert!(
        run.stdout.contains("watching") && run.stdout.contains("rolling_back"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("failed its health check") && run.stderr.contains("while watching"),
        "the reason must say why: {}",
        run.stderr
    );
    assert!(
        report.bodies.iter().any(|b| b.contains("v2")),
        "v2 served before it sickened"
    );
    assert!(report.last_body().contains("v1"), "{}", report.last_body());
    let serving: Vec<String> = staging_instances(&dev)
        .iter()
        .filter(|i| i["in_service"] == true)
        .map(|i| i["instance_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(serving, old, "the standby serves again");
    assert_eq!(deployment_count(&dev), 2, "no deployment was added");
}
