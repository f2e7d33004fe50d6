//! Promotion: the public record moves between the production clusters, and back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use slipway_coordinator::sample::SAMPLE_FLEET;
use slipway_tests::load::get;
use slipway_tests::{Coordinator, TempDir};

/// A dev coordinator with v1 on prod1, v2 on prod2 and the public record on
/// prod1; and the public endpoint.
fn v1_public_v2_ready() -> (Coordinator, String) {
    let dev = Coordinator::start();
    dev.ok(&["deploy", "hello", "v1", "--env", "prod1", "--wait"]);
    dev.ok(&["deploy", "hello", "v2", "--env", "prod2", "--wait"]);
    let public = dev
        .ok(&["promote", "hello", "--to", "prod1", "-o", "json"])
        .json()["endpoint"]
        .as_str()
        .unwrap()
        .to_string();
    (dev, public)
}

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
    let (mut dev, public) = v1_public_v2_ready();
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

#[test]
fn approvals_and_freezes_gate_promotion_and_an_admin_passes_a_freeze_saying_why() {
    let (dev, public) = v1_public_v2_ready();
    let approving = SAMPLE_FLEET.replace(
        "[environments.prod2]\n",
        "[environments.prod2]\nrequires_approval = true\n",
    );
    assert_ne!(approving, SAMPLE_FLEET);
    dev.apply_fleet("approving.toml", &approving);
    let dir = TempDir::new("promotions");
    let alice = dev.issue(dir.path(), "alice", "deployer", &["prod1", "prod2"]);
    let bob = dev.issue(dir.path(), "bob", "deployer", &["prod1", "prod2"]);

    // Asked for by alice, it waits; asking again changes nothing.
    for _ in 0..2 {
        let asked = dev.cli_as(&alice, &["promote", "hello", "--to", "prod2"]);
        assert_eq!(asked.code, Some(4), "held by the approval gate: {asked:?}");
        assert!(
            asked.stderr.contains(
                "not promoted yet: prod2 requires an approval: hello is promoted when a deployer of prod2 other than alice runs `slipway promote hello --to prod2`"
            ),
            "{}",
            asked.stderr
        );
        assert!(get(&public, "/").unwrap().contains("prod1"));
    }
    // Bob asking for the same is the approval: it happens.
    let approved = dev.cli_as(&bob, &["promote", "hello", "--to", "prod2", "-o", "json"]);
    assert!(approved.success, "{approved:?}");
    assert_eq!(approved.json()["environment"], "prod2");
    assert_eq!(
        approved.json()["awaiting_approval"],
        serde_json::Value::Null
    );
    assert!(get(&public, "/").unwrap().contains("prod2"));
    let events = dev
        .ok(&["events", "--project", "hello", "-o", "json"])
        .stdout;
    assert!(
        events.contains("\"promotion.requested\"") && events.contains("\"promotion.approved\""),
        "{events}"
    );

    // prod1 frozen: no promotion either way, unless an admin says why.
    let frozen = approving.replace(
        "[environments.prod1]\n",
        "[environments.prod1]\nfreeze = [{ from = \"2020-01-01 00:00\", until = \"2099-01-01 00:00\", name = \"code freeze\" }]\n",
    );
    dev.apply_fleet("frozen.toml", &frozen);
    let held = dev.cli_as(&bob, &["promote", "hello", "--to", "prod1"]);
    assert_eq!(held.code, Some(4), "{held:?}");
    assert!(
        held.stderr.contains(
            "prod1 is frozen until 2099-01-01 00:00 UTC (code freeze): hello is not promoted until then"
        ),
        "{}",
        held.stderr
    );
    let not_admin = dev.cli_as(
        &bob,
        &[
            "promote",
            "hello",
            "--to",
            "prod1",
            "--override-freeze",
            "incident 7",
        ],
    );
    assert_eq!(not_admin.code, Some(4), "{not_admin:?}");
    assert!(
        not_admin.stderr.contains("may not override a freeze"),
        "{}",
        not_admin.stderr
    );
    let no_reason = dev.cli(&[
        "promote",
        "hello",
        "--to",
        "prod1",
        "--override-freeze",
        " ",
    ]);
    assert_eq!(no_reason.code, Some(4), "{no_reason:?}");
    assert!(get(&public, "/").unwrap().contains("prod2"));
    dev.ok(&[
        "promote",
        "hello",
        "--to",
        "prod1",
        "--override-freeze",
        "incident 7",
    ]);
    assert!(get(&public, "/").unwrap().contains("prod1"));

    let results = dev.audit_results("promote");
    for expected in [
        ("alice", "waits for an approval"),
        ("bob", "ok"),
        ("admin", "promoted past a freeze: incident 7"),
    ] {
        assert!(
            results
                .iter()
                .any(|(w, r)| w == expected.0 && r == expected.1),
            "{expected:?} in {results:?}"
        );
    }
    dev.ok(&["audit", "verify"]);
}
