//! Promotion: the public record moves between the production clusters, and back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use slipway_tests::Coordinator;
use slipway_tests::load::get;

#[test]
fn promote_to_prod2_and_back_switches_the_public_port() {
    let dev = Coordinator::start();
    let refused = dev.cli(&["promote", "hello", "--to", "prod2"]);
    assert!(
        !refused.success && refused.stderr.contains("prod2 runs no release of hello"),
        "{}",
        refused.stderr
    );
    dev.ok(&["deploy", "hello", "v1", "--env", "prod1", "--wait"]);
    dev.ok(&["deploy", "hello", "v2", "--env", "prod2", "--wait"]);

    let record = dev
        .ok(&["promote", "hello", "--to", "prod1", "--output", "json"])
        .json();
    let public = record["endpoint"].as_str().unwrap().to_string();
    assert_eq!(record["environment"], "prod1");
    let body = get(&public, "/").unwrap();
    assert!(body.contains("prod1") && body.contains("v1"), "{body}");

    let record = dev
        .ok(&["promote", "hello", "--to", "prod2", "--output", "json"])
        .json();
    assert_eq!(record["previous_environment"], "prod1");
    for _ in 0..5 {
        let body = get(&public, "/").unwrap();
        assert!(body.contains("prod2") && body.contains("v2"), "{body}");
    }
    dev.ok(&["promote", "hello", "--to", "prod1"]);
    let body = get(&public, "/").unwrap();
    assert!(
        body.contains("prod1") && body.contains("v1"),
        "flipping back must be immediate: {body}"
    );
    let status = dev.ok(&["status", "hello", "--output", "json"]).json();
    assert_eq!(status["public_record"]["environment"], "prod1");

    let staging = dev.cli(&["promote", "hello", "--to", "staging"]);
    assert!(
        !staging.success && staging.stderr.contains("prod1 or prod2 only"),
        "{}",
        staging.stderr
    );
}

/// A promotion left pending by a crash is finished on the next start only if
/// the fleet file still allows it; one it no longer allows is left, pending and
/// visible, for an operator, and DNS stays where it was.
#[test]
fn a_pending_promotion_the_edited_fleet_file_no_longer_allows_is_not_finished() {
    let mut dev = Coordinator::start();
    dev.ok(&["deploy", "hello", "v1", "--env", "prod1", "--wait"]);
    dev.ok(&["deploy", "hello", "v2", "--env", "prod2", "--wait"]);
    let public = dev
        .ok(&["promote", "hello", "--to", "prod1", "--output", "json"])
        .json()["endpoint"]
        .as_str()
        .unwrap()
        .to_string();
    let cli = dev.pause_at("promoting/recorded", |dev| {
        dev.cli_in_background(&["promote", "hello", "--to", "prod2"])
    });
    let fleet_file = dev.data_dir().join("fleet.toml");
    let fleet = std::fs::read_to_string(&fleet_file).unwrap();
    let edited = fleet.replace(
        "environments = [\"prod1\", \"prod2\"]",
        "environments = [\"prod1\"]",
    );
    assert_ne!(fleet, edited);
    std::fs::write(&fleet_file, edited).unwrap();
    let from = dev.log_len();
    dev.crash_and_restart();
    assert!(!cli.finish().success);

    dev.wait_for_log(
        from,
        "not finishing a pending promotion",
        std::time::Duration::from_secs(30),
    );
    let record = &dev.ok(&["status", "hello", "--output", "json"]).json()["public_record"];
    assert_eq!(record["environment"], "prod2", "{record}");
    assert_eq!(record["pending"], true, "{record}");
    let body = get(&public, "/").unwrap();
    assert!(body.contains("prod1"), "DNS must stay on prod1: {body}");

    let record = dev
        .ok(&["promote", "hello", "--to", "prod1", "--output", "json"])
        .json();
    assert_eq!(record["pending"], false, "{record}");
    assert_eq!(record["environment"], "prod1", "{record}");
}
