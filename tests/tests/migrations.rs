//! Migrations run once per release and data store, on one instance, under the
//! store's lock, before any new instance takes traffic; a failed one rolls
//! back while the old instances serve on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::Value;
use slipway_coordinator::sample::SAMPLE_FLEET;
use slipway_tests::load::{Load, get};
use slipway_tests::{Coordinator, eventually, migration_runs};

const DEPLOY: Duration = Duration::from_secs(60);

fn migration(d: &Value) -> &Value {
    &d["migration"]
}

#[test]
fn a_shared_store_is_migrated_once_and_a_deployment_at_the_same_moment_waits_then_skips() {
    // A slow migration, so the second deployment is seen waiting for the lock.
    let fleet = SAMPLE_FLEET.replace(
        "data_stores = [\"hello-db\", \"hello-db-staging\"]",
        "data_stores = [\"hello-db\", \"hello-db-staging\"]\nvariables = { SAMPLE_MIGRATION_SECONDS = \"3\" }",
    );
    assert!(fleet.contains("SAMPLE_MIGRATION_SECONDS"));
    let dev = Coordinator::start_dev_with_fleet(&fleet);

    // qaprod1 and prod1 share hello-db: v2 to both at the same moment.
    let first = dev.enqueue("v2", "qaprod1");
    let second = dev.enqueue("v2", "prod1");
    let (runner, waiter) = eventually(
        "one deployment to wait for the other's migration",
        DEPLOY,
        || {
            [(&first, &second), (&second, &first)]
                .into_iter()
                .find_map(|(a, b)| {
                    let waiting = dev.deployment(b)["waiting_on"]
                        .as_str()
                        .map(str::to_string)?;
                    (waiting == format!("waiting for {a}'s migration of hello-db"))
                        .then(|| (a.clone(), b.clone()))
                })
        },
    );
    let ran = dev.wait_finished(&runner, DEPLOY);
    let skipped = dev.wait_finished(&waiter, DEPLOY);
    assert_eq!(
        (&ran["phase"], &skipped["phase"]),
        (&"succeeded".into(), &"succeeded".into())
    );
    assert_eq!(migration(&ran)["state"], "succeeded", "{ran}");
    assert!(
        migration(&ran)["output"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l == "schema is now 2"),
        "its output is kept: {ran}"
    );
    assert_eq!(migration(&skipped)["state"], "skipped", "{skipped}");
    assert_eq!(
        migration(&skipped)["detail"],
        format!("already ran in {runner}"),
        "the deployment says the migration had already run"
    );
    assert_eq!(
        migration(&skipped)["instance_id"],
        Value::Null,
        "it ran nowhere"
    );

    // Then prod2, on the same store: not run again either.
    let third = dev.enqueue("v2", "prod2");
    let third = dev.wait_finished(&third, DEPLOY);
    assert_eq!(migration(&third)["state"], "skipped", "{third}");
    assert_eq!(
        migration_runs(&dev, "hello-db").len(),
        1,
        "one run of v2's migration on hello-db"
    );

    // Every environment on the store answers with the new schema.
    for env in ["qaprod1", "prod1", "prod2"] {
        let body = get(&dev.endpoint(env), "/").unwrap();
        assert!(
            body.contains("v2") && body.contains("(schema 2)"),
            "{env}: {body}"
        );
    }
    // `show` prints the migration and its output.
    let shown = dev.ok(&["show", &runner]).stdout;
    assert!(
        shown.contains("migration of hello-db on i-") && shown.contains("| schema is now 2"),
        "{shown}"
    );
}

#[test]
fn a_failed_migration_rolls_back_with_its_exit_status_and_output_while_the_old_release_serves() {
    let dev = Coordinator::start();
    dev.ok(&["deploy", "hello", "v2", "--env", "staging", "--wait"]);
    let load = Load::start(&dev.endpoint("staging"));
    load.wait_for_requests(20);

    let failed = dev.exits(
        3,
        &[
            "deploy",
            "hello",
            "v3-bad-migration",
            "--env",
            "staging",
            "--wait",
        ],
    );
    assert!(
        failed.stderr.contains("exit status: 3")
            && failed
                .stderr
                .contains("column \"greeting_style\" of relation \"greetings\" already exists"),
        "the reason has the exit status and the output: {}",
        failed.stderr
    );
    let history = dev
        .ok(&["deployments", "--limit", "1", "-o", "json"])
        .json();
    let d = &history[0];
    assert_eq!(d["phase"], "rolled_back");
    assert!(
        !d["phases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["phase"] == "attaching"),
        "no new instance took traffic: {d}"
    );
    assert_eq!(migration(d)["state"], "failed");

    let report = load.finish();
    report.assert_no_failures();
    assert!(report.last_body().contains("v2"), "{}", report.last_body());
    let body = get(&dev.endpoint("staging"), "/").unwrap();
    assert!(body.contains("v2") && body.contains("(schema 2)"), "{body}");
    assert_eq!(
        migration_runs(&dev, "hello-db-staging").len(),
        2,
        "v2's and the failed one"
    );

    // The lock went with the failure: the next release migrates at once.
    let next = dev
        .ok(&[
            "deploy", "hello", "v1", "--env", "staging", "--wait", "-o", "json",
        ])
        .json();
    assert_eq!(next["phase"], "succeeded", "{next}");
}
