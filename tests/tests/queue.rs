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

#[test]
fn a_gated_deployment_waits_at_the_head_saying_why_and_starts_once_the_gates_open() {
    let fleet = slipway_coordinator::sample::SAMPLE_FLEET.replace(
        "[environments.prod1]\n",
        "[environments.prod1]\nrequires_checks = [\"unit\", \"integration\"]\nrequires_success_in = [\"qaprod1\"]\n",
    );
    assert!(fleet.contains("requires_success_in"));
    let dev = Coordinator::start_dev_with_fleet(&fleet);
    let gated = dev.enqueue("v2", "prod1");
    let reason = |dev: &Coordinator| {
        dev.deployment(&gated)["waiting_on"]
            .as_str()
            .map(str::to_string)
    };
    let both = "checks required on hello@v2: unit not reported, integration not reported; hello@v2 has not succeeded in qaprod1 yet";
    eventually("the gates to be named", Duration::from_secs(10), || {
        (reason(&dev).as_deref() == Some(both)).then_some(())
    });
    // `queue` says the same, and the deploy behind it is queued behind it.
    let behind = dev.enqueue("v1", "prod1");
    let queue = dev.ok(&["queue", "-o", "json"]).json();
    let prod1 = queue
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["environment"] == "prod1")
        .unwrap()
        .clone();
    assert_eq!(prod1["waiting"][0]["waiting_on"], both, "{prod1}");
    assert_eq!(
        prod1["waiting"][1]["waiting_on"],
        format!("queued behind {gated} (hello@v2, queued)"),
        "{prod1}"
    );
    // A wait on it times out (exit 7) saying which gate holds it; it stays queued.
    let timed_out = dev.cli(&["show", &gated, "--follow", "--timeout", "3s"]);
    assert_eq!(timed_out.code, Some(7), "{timed_out:?}");
    assert!(
        timed_out.stdout.contains("unit not reported"),
        "{}",
        timed_out.stdout
    );
    assert_eq!(dev.deployment(&gated)["phase"], "queued");

    // A deployer limited to staging may not open production's gates.
    let dir = slipway_tests::TempDir::new("gates");
    let scoped = dev.issue(dir.path(), "ci-staging", "deployer", &["staging"]);
    let refused = dev.cli_as(
        &scoped,
        &[
            "release", "check", "hello", "v2", "--name", "unit", "--passed",
        ],
    );
    assert_eq!(refused.code, Some(4), "{refused:?}");

    // CI reports: a failure is named as such, then both pass.
    dev.ok(&[
        "release", "check", "hello", "v2", "--name", "unit", "--failed",
    ]);
    eventually(
        "the failed check to be named",
        Duration::from_secs(10),
        || {
            reason(&dev)
                .filter(|r| r.contains("unit failed, integration not reported"))
                .map(|_| ())
        },
    );
    let check = dev
        .ok(&[
            "release",
            "check",
            "hello",
            "v2",
            "--name",
            "unit",
            "--passed",
            "--url",
            "https://ci.example.com/jobs/41",
            "-o",
            "json",
        ])
        .json();
    assert_eq!(check["passed"], true);
    dev.ok(&[
        "release",
        "check",
        "hello",
        "v2",
        "--name",
        "integration",
        "--passed",
    ]);
    eventually(
        "only the lifecycle gate left",
        Duration::from_secs(10),
        || {
            (reason(&dev).as_deref() == Some("hello@v2 has not succeeded in qaprod1 yet"))
                .then_some(())
        },
    );
    let listed = dev.ok(&["release", "list", "hello", "-o", "json"]).json();
    let v2 = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["version"] == "v2")
        .unwrap()
        .clone();
    let names: Vec<(&str, bool)> = v2["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["passed"].as_bool().unwrap()))
        .collect();
    assert_eq!(names, [("integration", true), ("unit", true)], "{v2}");
    assert_eq!(dev.deployment(&gated)["phase"], "queued");

    // v2 succeeds in qaprod1: the prod1 deployment starts by itself, and the
    // one behind it follows.
    dev.ok(&["deploy", "hello", "v2", "--env", "qaprod1", "--wait"]);
    let done = dev.wait_finished(&gated, DEADLINE);
    assert_eq!(done["phase"], "succeeded", "{done}");
    // v1 never passed its checks: it waits in turn, saying so.
    eventually(
        "v1 to be held by the gates",
        Duration::from_secs(10),
        || {
            dev.deployment(&behind)["waiting_on"]
                .as_str()
                .filter(|r| r.starts_with("checks required on hello@v1"))
                .map(|_| ())
        },
    );
    // Cancelled, it is held by nothing any more.
    dev.ok(&["cancel", &behind]);
    let cancelled = dev.deployment(&behind);
    assert_eq!(cancelled["phase"], "cancelled");
    assert_eq!(
        cancelled["waiting_on"],
        serde_json::Value::Null,
        "{cancelled}"
    );
    // Every check is in the audit log.
    let audit = dev
        .ok(&["audit", "--action", "release check", "-o", "json"])
        .json();
    assert_eq!(audit.as_array().unwrap().len(), 4, "{audit}");
}

#[test]
fn an_approval_comes_from_another_deployer_of_that_environment_and_is_audited() {
    let fleet = slipway_coordinator::sample::SAMPLE_FLEET.replace(
        "[environments.prod2]\n",
        "[environments.prod2]\nrequires_approval = true\n",
    );
    let dev = Coordinator::start_dev_with_fleet(&fleet);
    let dir = slipway_tests::TempDir::new("approvals");
    let issue = |name: &str, env: &str| {
        let envs: Vec<&str> = [env].into_iter().filter(|e| !e.is_empty()).collect();
        dev.issue(dir.path(), name, "deployer", &envs)
    };
    let (alice, bob, stan, ci) = (
        issue("alice", "prod2"),
        issue("bob", "prod2"),
        issue("stan", "staging"),
        issue("ci", ""),
    );
    let asked = dev.cli_as(
        &alice,
        &["deploy", "hello", "v1", "--env", "prod2", "-o", "json"],
    );
    let id = asked.json()["id"].as_str().unwrap().to_string();
    eventually(
        "the approval gate to be named",
        Duration::from_secs(10),
        || {
            (dev.deployment(&id)["waiting_on"]
                == format!(
                    "approval by a deployer of prod2 other than alice (`slipway approve {id}`)"
                ))
            .then_some(())
        },
    );
    // Not by its requester, not by a deployer of staging only, not by a viewer.
    let own = dev.cli_as(&alice, &["approve", &id]);
    assert_eq!(own.code, Some(4), "{own:?}");
    assert!(own.stderr.contains("asked for"), "{}", own.stderr);
    let elsewhere = dev.cli_as(&stan, &["approve", &id]);
    assert_eq!(elsewhere.code, Some(4), "{elsewhere:?}");
    assert!(
        elsewhere.stderr.contains("may act on staging only"),
        "{}",
        elsewhere.stderr
    );
    assert_eq!(dev.deployment(&id)["phase"], "queued");
    // An environment without the gate has nothing to approve.
    let staging = dev.enqueue("v1", "staging");
    let needless = dev.cli_as(&ci, &["approve", &staging]);
    assert_eq!(needless.code, Some(4), "{needless:?}");
    assert!(
        needless.stderr.contains("staging requires no approval"),
        "{}",
        needless.stderr
    );
    // Another deployer of prod2 approves: it starts by itself.
    let approved = dev.cli_as(&bob, &["approve", &id]);
    assert!(approved.success, "{approved:?}");
    assert!(
        approved.stdout.contains("approved by bob"),
        "{}",
        approved.stdout
    );
    let done = dev.wait_finished(&id, DEADLINE);
    assert_eq!(done["phase"], "succeeded", "{done}");
    assert_eq!(done["approved_by"], "bob");
    let again = dev.cli_as(&bob, &["approve", &id]);
    assert_eq!(again.code, Some(4), "a finished deployment: {again:?}");
    // In the audit chain, refusals too, and told as an event.
    let results = dev.audit_results("approve");
    assert_eq!(results.len(), 5, "{results:?}");
    assert!(
        results
            .iter()
            .any(|(who, r)| who == "bob" && *r == format!("approved {id}")),
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .any(|(who, r)| who == "alice" && r.contains("PermissionDenied")),
        "{results:?}"
    );
    dev.ok(&["audit", "verify"]);
    let events = dev
        .ok(&["events", "--deployment", &id, "-o", "json"])
        .stdout;
    assert!(events.contains("\"deployment.approved\""), "{events}");
}

#[test]
fn a_freeze_holds_deploys_rollbacks_pass_it_and_an_admins_override_is_audited() {
    let dev = Coordinator::start();
    dev.ok(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);
    dev.ok(&["deploy", "hello", "v2", "--env", "staging", "--wait"]);
    let frozen = slipway_coordinator::sample::SAMPLE_FLEET.replace(
        "[environments.staging]\n",
        "[environments.staging]\nfreeze = [{ from = \"2020-01-01 00:00\", until = \"2099-01-01 00:00\", name = \"code freeze\" }]\n",
    );
    dev.apply_fleet("frozen.toml", &frozen);

    let id = dev.enqueue("v1", "staging");
    let said = "frozen until 2099-01-01 00:00 UTC (code freeze)";
    eventually("the freeze to be named", Duration::from_secs(10), || {
        (dev.deployment(&id)["waiting_on"] == said).then_some(())
    });
    let waited = dev.exits(7, &["show", &id, "--follow", "--timeout", "2s"]);
    assert!(waited.stdout.contains(said), "{}", waited.stdout);
    assert_eq!(dev.deployment(&id)["phase"], "queued");

    // Only an admin passes it, and only saying why.
    let dir = slipway_tests::TempDir::new("freeze");
    let dora = dev.issue(dir.path(), "dora", "deployer", &[]);
    let refused = dev.cli_as(&dora, &["override-freeze", &id, "--reason", "please"]);
    assert_eq!(refused.code, Some(4), "{refused:?}");
    let silent = dev.cli(&["override-freeze", &id, "--reason", ""]);
    assert_eq!(silent.code, Some(4), "{silent:?}");
    assert!(silent.stderr.contains("say why"), "{}", silent.stderr);
    let passed = dev.ok(&["override-freeze", &id, "--reason", "incident 7"]);
    assert!(
        passed
            .stdout
            .contains("freeze overridden by admin: incident 7"),
        "{}",
        passed.stdout
    );
    let done = dev.wait_finished(&id, DEADLINE);
    assert_eq!(done["phase"], "succeeded", "{done}");
    let results = dev.audit_results("override-freeze");
    assert!(
        results.contains(&(
            "admin".to_string(),
            format!("{id} passes: freeze overridden by admin: incident 7")
        )),
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .any(|(who, r)| who == "dora" && r.contains("PermissionDenied")),
        "{results:?}"
    );

    // A rollback passes the freeze by itself.
    let rolled = dev
        .ok(&[
            "rollback", "hello", "--env", "staging", "--wait", "-o", "json",
        ])
        .json();
    assert_eq!(rolled["phase"], "succeeded", "{rolled}");
    assert_eq!(rolled["version"], "v2");
    assert_eq!(rolled["passes_freeze"], "a rollback by admin");
    dev.ok(&["audit", "verify"]);
}
