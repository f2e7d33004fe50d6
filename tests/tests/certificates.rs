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
    let mut c = Coordinator::start_dev_with_fleet(&slipway_tests::fleet_renewing_agents_every_4s());
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

/// Whether Python's own TLS stack, trusting only `ca_file`, accepts the
/// coordinator at `listen` as `slipway-coordinator`: a client that shares no
/// code with Slipway.
fn python_trusts(ca_file: &std::path::Path, listen: &str) -> bool {
    let (host, port) = listen.rsplit_once(':').unwrap();
    let script = format!(
        "import socket, ssl\n\
         ctx = ssl.create_default_context(cafile={ca:?})\n\
         ctx.set_alpn_protocols(['h2'])\n\
         with socket.create_connection(({host:?}, {port})) as s:\n\
         \x20   with ctx.wrap_socket(s, server_hostname='slipway-coordinator') as t:\n\
         \x20       print(t.version())\n",
        ca = ca_file.to_str().unwrap(),
    );
    let run = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3 (tests/run puts target/py first on PATH)");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success() || stderr.contains("CERTIFICATE_VERIFY_FAILED"),
        "python failed for another reason: {stderr}"
    );
    run.status.success()
}

#[test]
fn the_ca_rotates_with_an_overlap_window_under_a_running_fleet_and_no_request_fails() {
    let mut c = Coordinator::start_dev_with_fleet(&slipway_tests::fleet_renewing_agents_every_4s());
    c.ok(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);
    let instance = staging_instance(&c);
    let services: BTreeSet<u32> = instance_processes(&instance).into_iter().collect();
    let keys = TempDir::new("ca-rotation");
    let ci = c.issue(keys.path(), "ci", "deployer", &[]);
    let stale = c.issue(keys.path(), "stale", "viewer", &[]);
    let old_ca = keys.path().join("old-ca.pem");
    std::fs::copy(c.ca_pem(), &old_ca).unwrap();
    let load = slipway_tests::load::Load::start(&c.endpoint("staging"));
    load.wait_for_requests(20);

    // An operator keeps calling through the whole rotation; every call answers.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let calls = std::thread::scope(|scope| {
        let caller = scope.spawn(|| {
            let mut calls = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let run = c.cli_as(&ci, &["status"]);
                assert!(run.success, "call {calls} failed: {}", run.stderr);
                calls += 1;
            }
            calls
        });

        let begun = c.ok(&["ca", "rotate", "-o", "json"]);
        slipway_tests::check_documents(&[("ca rotate".into(), begun.stdout.clone(), None)]);
        let begun = begun.json();
        let old_fingerprint = begun["previous"].as_str().unwrap().to_string();
        let new_fingerprint = begun["signing"].as_str().unwrap().to_string();
        assert_ne!(old_fingerprint, new_fingerprint);
        assert!(c.data_dir().join("ca/next/ca.key").exists());

        // The agent still holds its old certificate: finishing is refused, naming it.
        let early = c.cli(&["ca", "finish"]);
        assert_eq!(early.code, Some(4), "{}", early.stderr);
        assert!(early.stderr.contains(&instance), "{}", early.stderr);

        // Clients that know only the old CA still recognise the coordinator,
        // through the cross certificate: Python's TLS and a profile never renewed.
        assert!(python_trusts(&old_ca, &c.listen));
        assert!(c.cli_as(&stale, &["status"]).success);
        let viewer = c.cli_as(&stale, &["ca", "rotate"]);
        assert_eq!(
            viewer.code,
            Some(4),
            "only an admin rotates: {}",
            viewer.stderr
        );

        // The agent moves over at its next renewal.
        let status = eventually(
            "the agent to renew onto the new CA",
            Duration::from_secs(30),
            || {
                let status = c.ok(&["ca", "status", "-o", "json"]).json();
                (status["agents_on_previous"].as_array().unwrap().is_empty()
                    && status["agents_on_signing"].as_u64() >= Some(1))
                .then_some(status)
            },
        );
        assert_eq!(status["previous"], old_fingerprint.as_str(), "{status}");

        // Operators renew onto it; the admin's profile too.
        let renewed = c.cli_as(&ci, &["cert", "renew", "-o", "json"]);
        assert!(renewed.success, "{}", renewed.stderr);
        slipway_tests::check_documents(&[("cert renew".into(), renewed.stdout.clone(), None)]);
        assert_eq!(renewed.json()["profile"], ci.to_str().unwrap());
        c.ok(&["cert", "renew"]);

        let finished = c.ok(&["ca", "finish", "-o", "json"]);
        slipway_tests::check_documents(&[("ca finish".into(), finished.stdout.clone(), None)]);
        let finished = finished.json();
        assert_eq!(finished["signing"], new_fingerprint.as_str());
        assert!(finished["previous"].is_null(), "{finished}");
        // A few more calls after the old CA is gone.
        let before = std::time::Instant::now();
        while before.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(100));
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        (caller.join().unwrap(), old_fingerprint, new_fingerprint)
    });
    let (calls, old_fingerprint, new_fingerprint) = calls;
    assert!(calls >= 5, "{calls} calls");

    // The old CA is trusted no more, by the coordinator or by anyone it served.
    assert!(!python_trusts(&old_ca, &c.listen));
    assert!(python_trusts(&c.ca_pem(), &c.listen));
    let refused = c.cli_as(&stale, &["status"]);
    assert_eq!(refused.code, Some(8), "{}", refused.stderr);
    assert!(!c.data_dir().join("ca/next").exists());
    let status = c.ok(&["ca", "status", "-o", "json"]).json();
    assert_eq!(status["signing"], new_fingerprint.as_str(), "{status}");
    assert!(status["previous"].is_null(), "{status}");
    assert_ne!(
        std::fs::read(c.ca_pem()).unwrap(),
        std::fs::read(&old_ca).unwrap(),
        "ca.pem is the new CA"
    );

    // The agent's next certificate names only the new CA; a new connection
    // (the coordinator restarted) recognises it by that, not its user-data CA.
    let trust = c
        .data_dir()
        .join("cloud/instances")
        .join(&instance)
        .join("agent/coordinator-ca.pem");
    let new_ca = std::fs::read_to_string(c.ca_pem()).unwrap();
    eventually(
        "the agent to be told only the new CA",
        Duration::from_secs(30),
        || (std::fs::read_to_string(&trust).ok()? == new_ca).then_some(()),
    );
    c.crash_and_restart();
    eventually("the agent to reconnect", Duration::from_secs(20), || {
        connected(&c, &instance).then_some(())
    });
    let now: BTreeSet<u32> = instance_processes(&instance).into_iter().collect();
    assert!(services.is_subset(&now), "{services:?} vs {now:?}");
    c.ok(&["deploy", "hello", "v2", "--env", "staging", "--wait"]);
    load.wait_for_requests(20);
    load.finish().assert_no_failures();

    // Both steps audited, naming the CAs; the refused attempts too.
    let rotations = c.audit_results("ca rotate");
    assert_eq!(rotations.len(), 2, "{rotations:?}");
    assert_eq!(
        rotations[0],
        (
            "admin".to_string(),
            format!("ok: {new_fingerprint} signs, {old_fingerprint} still trusted")
        )
    );
    assert_eq!(rotations[1].0, "stale");
    assert!(
        rotations[1].1.starts_with("PermissionDenied"),
        "{rotations:?}"
    );
    let finishes = c.audit_results("ca finish");
    assert_eq!(finishes.len(), 2, "{finishes:?}");
    assert!(
        finishes[0].1.starts_with("FailedPrecondition"),
        "{finishes:?}"
    );
    assert_eq!(finishes[1].1, format!("ok: {new_fingerprint} signs, alone"));
}
