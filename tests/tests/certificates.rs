//! Certificates over time: agents renew theirs before expiry without dropping
//! their services; revocation cuts an operator or an agent off at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use slipway_coordinator::sample::SAMPLE_FLEET;
use slipway_tests::processes::instance_processes;
use slipway_tests::{Coordinator, TempDir, eventually};

fn staging_instance(c: &Coordinator) -> String {
    c.environment("staging")["instances"][0]["instance_id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn connected(c: &Coordinator, instance: &str) -> bool {
    let agents = c.ok(&["agents", "--output", "json"]).json();
    agents
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["instance_id"] == instance && a["agent"] == "connected")
}

fn audited(c: &Coordinator, action: &str, target: &str) -> usize {
    let log = c.ok(&["audit", "--output", "json"]).json();
    log.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == action && e["target"] == target && e["result"] == "ok")
        .count()
}

#[test]
fn agents_renew_their_certificates_before_expiry_without_dropping_services() {
    let fleet = SAMPLE_FLEET.replace(
        "[coordinator]\n",
        "[coordinator]\nagent_certificate_lifetime = \"6s\"\n",
    );
    let mut c = Coordinator::start_dev_with_fleet(&fleet);
    c.ok(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);
    let instance = staging_instance(&c);
    let cert_file = c
        .data_dir()
        .join("cloud/instances")
        .join(&instance)
        .join("agent/agent.pem");
    let first = std::fs::read_to_string(&cert_file).unwrap();
    let services: BTreeSet<u32> = instance_processes(&instance).into_iter().collect();

    // Two renewals: the first certificate (6 s) has expired by the second.
    eventually("two renewals", Duration::from_secs(30), || {
        (audited(&c, "renew", &instance) >= 2).then_some(())
    });
    assert_ne!(
        std::fs::read_to_string(&cert_file).unwrap(),
        first,
        "the stored certificate is the renewed one"
    );
    assert!(connected(&c, &instance));

    // A new connection must use the renewed certificate: restart the coordinator.
    c.crash_and_restart();
    eventually("the agent to reconnect", Duration::from_secs(20), || {
        connected(&c, &instance).then_some(())
    });
    let now: BTreeSet<u32> = instance_processes(&instance).into_iter().collect();
    assert!(
        services.is_subset(&now),
        "renewal must not restart the agent or its services: {services:?} vs {now:?}"
    );
    // Readiness comes right after the hello on the new stream.
    eventually(
        "the agent to report ready again",
        Duration::from_secs(10),
        || (c.environment("staging")["instances"][0]["ready"] == true).then_some(()),
    );
}

#[test]
fn a_revoked_operator_and_agent_are_cut_off_at_once() {
    let c = Coordinator::start();
    c.ok(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);
    let dir = TempDir::new("revoke");
    let bob = dir.path().join("bob");
    c.ok(&[
        "cert",
        "issue",
        "--name",
        "bob",
        "--role",
        "viewer",
        "--out",
        bob.to_str().unwrap(),
    ]);
    let bob = bob.join("profile.toml");
    assert!(c.cli_as(&bob, &["status"]).success);

    c.ok(&["revoke", "bob"]);
    let refused = c.cli_as(&bob, &["status"]);
    assert!(
        !refused.success,
        "a revoked certificate must get no answer: {}",
        refused.stdout
    );
    eventually("the refusal to be logged", Duration::from_secs(10), || {
        c.log()
            .contains("tls handshake refused: certificate revoked")
            .then_some(())
    });
    // Refused handshakes are audited, one entry per name a minute.
    for _ in 0..3 {
        assert!(!c.cli_as(&bob, &["status"]).success);
    }
    let revoked_handshakes = |c: &Coordinator| -> Vec<serde_json::Value> {
        c.ok(&["audit", "--output", "json"])
            .json()
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "handshake" && e["who"] == "bob" && e["role"] == "revoked")
            .cloned()
            .collect()
    };
    let entries = eventually("the refusal to be audited", Duration::from_secs(10), || {
        Some(revoked_handshakes(&c)).filter(|e| !e.is_empty())
    });
    assert_eq!(entries.len(), 1, "rate-limited: {entries:?}");
    assert_eq!(entries[0]["result"], "refused: certificate revoked");

    let instance = staging_instance(&c);
    assert!(connected(&c, &instance));
    let revoked = c.ok(&["revoke", &instance]);
    assert!(
        revoked.stdout.contains("its open stream was closed"),
        "{}",
        revoked.stdout
    );
    assert!(
        !connected(&c, &instance),
        "the agent's stream must close at once"
    );
    // Its reconnects are refused at the handshake.
    eventually(
        "the agent's reconnect to be refused",
        Duration::from_secs(15),
        || {
            c.log()
                .lines()
                .any(|l| {
                    l.contains("certificate revoked") && l.contains(&format!("name={instance}"))
                })
                .then_some(())
        },
    );
    assert!(!connected(&c, &instance));

    let own = c.cli(&["revoke", "admin"]);
    assert!(
        !own.success
            && own
                .stderr
                .contains("refusing to revoke your own certificate"),
        "{}",
        own.stderr
    );
    assert_eq!(audited(&c, "revoke", "bob"), 1);
    assert_eq!(audited(&c, "revoke", &instance), 1);
}

#[test]
fn a_coordinator_started_with_a_fleet_file_leaves_no_admin_key_on_its_host() {
    let dir = TempDir::new("fleet");
    let fleet = dir.path().join("fleet.toml");
    std::fs::write(&fleet, SAMPLE_FLEET).unwrap();
    // The harness then issues the first admin's certificate as README says.
    let c = Coordinator::start_with(Some(fleet), Vec::new());
    let log = c.log();
    assert!(
        log.contains("ca issue --name NAME --role admin --out DIR"),
        "the start says how to get the first certificate:\n{log}"
    );
    assert!(
        !c.data_dir().join("operators").exists(),
        "no admin certificate or key written by the start itself"
    );
    let address = std::fs::read_to_string(c.data_dir().join("coordinator.address")).unwrap();
    assert!(
        address.trim().starts_with("https://127.0.0.1:"),
        "{address}"
    );
    // The issued profile works, against the address the start recorded.
    let status = c.ok(&["status", "--output", "json"]).json();
    assert_eq!(status[0]["name"], "hello");
}
