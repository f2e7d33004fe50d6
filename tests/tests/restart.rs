//! A coordinator crash keeps releases, queue and history, and the local cloud
//! keeps serving traffic through it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use slipway_coordinator::sample::SAMPLE_FLEET;
use slipway_tests::load::Load;
use slipway_tests::processes::{agent_pid, freeze, thaw};
use slipway_tests::{Coordinator, TempDir, binary, unix_ms};

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

/// How many kills the store test makes; `SLIPWAY_STORE_KILLS` asks for more.
const STORE_KILLS: usize = 8;
const CLIENTS: usize = 4;

#[test]
fn every_acknowledged_enqueue_survives_a_kill_right_after_it() {
    use std::process::{Command, Stdio};

    let mut dev = Coordinator::start();
    let kills = std::env::var("SLIPWAY_STORE_KILLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(STORE_KILLS);
    let mut acknowledged: Vec<String> = Vec::new();
    let mut refused = 0;
    for _ in 0..kills {
        // Several clients enqueue at once; the coordinator dies the moment the
        // first one is acknowledged, with the others mid-request.
        let mut clients: Vec<std::process::Child> = (0..CLIENTS)
            .map(|_| {
                Command::new(slipway_tests::binary("slipway"))
                    .arg("--profile")
                    .arg(dev.profile())
                    .args([
                        "deploy", "hello", "v1", "--env", "qaprod1", "--output", "json",
                    ])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("run slipway")
            })
            .collect();
        slipway_tests::eventually("a first acknowledgement", Duration::from_secs(30), || {
            clients
                .iter_mut()
                .any(|c| matches!(c.try_wait(), Ok(Some(_))))
                .then_some(())
        });
        dev.kill();
        for client in clients {
            let output = client.wait_with_output().expect("slipway output");
            if !output.status.success() {
                refused += 1;
                continue;
            }
            let queued: serde_json::Value =
                serde_json::from_slice(&output.stdout).expect("deploy answers JSON");
            acknowledged.push(queued["id"].as_str().expect("id").to_string());
        }
        dev.crash_and_restart();
        let stored = dev
            .ok(&[
                "deployments",
                "--env",
                "qaprod1",
                "--limit",
                "10000",
                "--output",
                "json",
            ])
            .json();
        let ids: Vec<&str> = stored
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap())
            .collect();
        let lost: Vec<&String> = acknowledged
            .iter()
            .filter(|id| !ids.contains(&id.as_str()))
            .collect();
        assert!(
            lost.is_empty(),
            "acknowledged but lost after kill -9: {lost:?}"
        );
    }
    println!(
        "{kills} kills: {} enqueues acknowledged and all found again; {refused} cut off before their answer",
        acknowledged.len()
    );
    assert!(
        acknowledged.len() >= kills,
        "each kill followed an acknowledgement"
    );
}

#[test]
fn sigterm_finishes_the_current_step_and_agents_reconnect_after_a_restart() {
    let mut dev = Coordinator::start();
    dev.ok(&["deploy", "hello", "v1", "--env", "prod1", "--wait"]);
    let load = Load::start(&dev.endpoint("prod1"));
    load.wait_for_requests(20);
    let id = dev.enqueue("v2", "prod1");
    slipway_tests::eventually(
        "the new instances to exist",
        Duration::from_secs(30),
        || {
            let d = dev.deployment(&id);
            (d["phase"] != "queued" && d["phase"] != "launching").then_some(())
        },
    );

    let signalled_at = unix_ms();
    let status = dev.terminate(Duration::from_secs(40));
    assert!(
        status.success(),
        "exit after SIGTERM: {status}\n{}",
        dev.log()
    );
    let log = dev.log();
    assert!(
        log.contains("coordinator stopped: every deployment's state is stored"),
        "{log}"
    );

    dev.crash_and_restart();
    let done = dev.wait_finished(&id, Duration::from_secs(90));
    assert_eq!(done["phase"], "succeeded", "{done}");
    // Unless the deploy ended before the signal, its executor stopped on a step
    // boundary and the restarted coordinator took it from there.
    assert!(
        slipway_tests::finished_at(&done) < signalled_at || log.contains("stopped between steps"),
        "the executor stopped on a step boundary:\n{log}"
    );
    // The serving instances' agents are connected to the new process.
    let cloud = slipway_tests::cloud::CloudView::new(dev.data_dir());
    let live: Vec<String> = cloud
        .instances("hello", "prod1")
        .into_iter()
        .filter(|i| i.state != slipway_coordinator::deploy::machine::InstanceState::Gone)
        .map(|i| i.id)
        .collect();
    assert_eq!(live.len(), 2, "{live:?}");
    slipway_tests::eventually("the agents to reconnect", Duration::from_secs(30), || {
        let agents = dev.ok(&["agents", "--output", "json"]).json();
        live.iter()
            .all(|id| {
                agents
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|a| a["instance_id"] == id.as_str() && a["agent"] == "connected")
            })
            .then_some(())
    });
    load.finish().assert_no_failures();
}

/// An agent that cannot close its stream (frozen: its socket open, its process
/// silent) must not hold up a SIGTERM: the coordinator stores everything, gives
/// open calls a few seconds, and exits; the agent reconnects once it runs again.
#[test]
fn sigterm_exits_promptly_even_when_an_agent_cannot_close_its_stream() {
    let mut dev = Coordinator::start();
    dev.ok(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);
    let instance = dev.environment("staging")["instances"][0]["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    let agent = agent_pid(&instance).expect("the agent's process");
    freeze(agent);

    let signalled = Instant::now();
    let exit = dev.terminate(Duration::from_secs(30));
    let took = signalled.elapsed();
    thaw(agent);
    assert!(exit.success(), "exit after SIGTERM: {exit}\n{}", dev.log());
    // The cap, not a stream that happened to close, ended the wait.
    assert!(
        dev.log()
            .contains("open calls did not end after the stop; exiting without them"),
        "{}",
        dev.log()
    );
    assert!(
        took < Duration::from_secs(12),
        "SIGTERM took {took:?} to end the coordinator:\n{}",
        dev.log()
    );
    assert!(
        dev.log()
            .contains("coordinator stopped: every deployment's state is stored"),
        "{}",
        dev.log()
    );

    dev.crash_and_restart();
    slipway_tests::eventually("the agent to reconnect", Duration::from_secs(30), || {
        let agents = dev.ok(&["agents", "--output", "json"]).json();
        agents
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["instance_id"] == instance.as_str() && a["agent"] == "connected")
            .then_some(())
    });
}

/// A coordinator down for longer than a phase's deadline does not roll back a
/// healthy deploy when it returns: its agents get the time to reconnect first.
#[test]
fn an_outage_longer_than_a_deadline_does_not_roll_back_a_healthy_deploy() {
    let fleet = SAMPLE_FLEET.replace("ready = \"10s\"", "ready = \"3s\"");
    assert!(fleet.contains("ready = \"3s\""));
    let mut dev = Coordinator::start_dev_with_fleet(&fleet);
    let id = dev.pause_at("ready/entered", |c| c.enqueue("v1", "staging"));
    dev.kill();
    // Past the 3 s ready deadline, and long enough for the agents' backoff
    // to grow.
    std::thread::sleep(Duration::from_secs(5));
    dev.crash_and_restart();
    let done = dev.wait_finished(&id, Duration::from_secs(60));
    assert_eq!(done["phase"], "succeeded", "{done}");
    assert_eq!(dev.environment("staging")["active_version"], "v1");
}

#[test]
fn a_store_written_by_the_previous_layout_opens_upgrades_and_deploys_on() {
    // The fixture: what the coordinator released before the layout carried a
    // number left on disk (tests/fixtures/README.md says how it was made).
    let dir = TempDir::new("upgrade");
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/store-layout-1");
    let store = dir.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    for file in ["conf", "db"] {
        std::fs::copy(fixture.join(file), store.join(file)).unwrap();
    }
    let mut dev = Coordinator::start_in(dir, SAMPLE_FLEET);
    let log = dev.log();
    assert!(
        log.contains("store layout upgraded") && log.contains("from=1 to=2"),
        "{log}"
    );

    // What it held reads as it was written, the audit chain included.
    let old = dev.ok(&["deployments", "-o", "json"]).json();
    let phase_of = |id: &str| {
        old.as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == id)
            .map(|d| d["phase"].clone())
    };
    assert_eq!(phase_of("d-1"), Some("succeeded".into()), "{old}");
    assert_eq!(phase_of("d-2"), Some("rolled_back".into()), "{old}");
    dev.ok(&["audit", "verify"]);

    // Deployments go on, with ids after the old ones.
    let new = dev
        .ok(&["deploy", "hello", "v2", "--env", "prod1", "-o", "json"])
        .json();
    let id = new["id"].as_str().unwrap().to_string();
    let number: u64 = id.trim_start_matches("d-").parse().unwrap();
    assert!(number > 2, "{id} repeats an old id");
    dev.ok(&["show", &id, "--follow"]);

    // Upgraded once: a restart finds the current layout.
    let from = dev.log_len();
    dev.crash_and_restart();
    assert!(!dev.log()[from..].contains("store layout upgraded"));
    dev.ok(&["audit", "verify"]);

    // A store a newer coordinator wrote is refused, naming both layouts,
    // and left as it was.
    dev.kill();
    let newer = {
        let db = sled::open(dev.data_dir().join("store")).unwrap();
        let layout = db.open_tree("meta").unwrap();
        layout.insert("layout", &7u64.to_be_bytes()).unwrap();
        db.flush().unwrap();
        7
    };
    let refused = std::process::Command::new(binary("slipway-coordinator"))
        .args(["--dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dev.data_dir())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "its layout is version {newer}, newer than this coordinator's 2"
        )),
        "{stderr}"
    );
}

#[test]
fn instances_a_restored_older_store_does_not_know_are_listed_and_terminated_only_when_asked() {
    let mut dev = Coordinator::start();
    // An older copy of the store, taken while the coordinator was down.
    dev.kill();
    let store = dev.data_dir().join("store");
    let older = dev.data_dir().join("store.older");
    let copy = |from: &std::path::Path, to: &std::path::Path| {
        let _ = std::fs::remove_dir_all(to);
        let copied = std::process::Command::new("cp")
            .arg("-a")
            .arg(from)
            .arg(to)
            .status()
            .unwrap();
        assert!(copied.success());
    };
    copy(&store, &older);
    dev.crash_and_restart();
    let deployed = dev
        .ok(&[
            "deploy", "hello", "v1", "--env", "staging", "--wait", "-o", "json",
        ])
        .json();
    let launched = slipway_tests::strings(&deployed["new_instances"]);
    assert_eq!(launched.len(), 1, "{deployed}");

    // The older copy comes back: the cloud keeps what d-1 launched, which
    // no deployment in this store knows.
    dev.kill();
    copy(&older, &store);
    dev.crash_and_restart();
    let listed_run = dev.ok(&["infra", "orphans", "-o", "json"]);
    let listed = listed_run.json();
    assert_eq!(listed["terminated"], false, "{listed}");
    let orphans = listed["orphans"].as_array().unwrap();
    assert_eq!(orphans.len(), 1, "{listed}");
    assert_eq!(orphans[0]["instance_id"], launched[0].as_str());
    assert_eq!(orphans[0]["deployment"], deployed["id"]);
    assert_eq!(orphans[0]["environment"], "staging");
    assert_eq!(orphans[0]["release"], "hello@v1");
    let table = dev.ok(&["infra", "orphans"]).stdout;
    assert!(
        table.contains(&launched[0]) && table.contains("left running"),
        "{table}"
    );
    let cloud = slipway_tests::cloud::CloudView::new(dev.data_dir());
    let running = |cloud: &slipway_tests::cloud::CloudView| -> Vec<String> {
        cloud
            .instances("hello", "staging")
            .into_iter()
            .filter(|i| i.state != slipway_coordinator::deploy::machine::InstanceState::Gone)
            .map(|i| i.id)
            .collect()
    };
    assert_eq!(running(&cloud), launched, "listing touches nothing");

    // Only an admin may, and only when asked.
    let keys = slipway_tests::TempDir::new("orphans-keys");
    let deployer = dev.issue(keys.path(), "ci", "deployer", &["staging"]);
    let refused = dev.cli_as(&deployer, &["infra", "orphans", "--terminate"]);
    assert_eq!(refused.code, Some(4), "{}", refused.stderr);
    assert_eq!(running(&cloud), launched);

    let terminated_run = dev.ok(&["infra", "orphans", "--terminate", "-o", "json"]);
    let terminated = terminated_run.json();
    slipway_tests::check_documents(&[
        ("infra orphans".into(), listed_run.stdout.clone(), None),
        ("infra orphans".into(), terminated_run.stdout.clone(), None),
    ]);
    assert_eq!(terminated["terminated"], true, "{terminated}");
    assert_eq!(terminated["orphans"], listed["orphans"]);
    slipway_tests::eventually("the orphan to be gone", Duration::from_secs(10), || {
        running(&cloud).is_empty().then_some(())
    });
    let audit = dev.ok(&["audit", "-o", "json"]).json();
    let entry = audit
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e["action"] == "infra orphans --terminate")
        .cloned()
        .unwrap_or_else(|| panic!("not audited: {audit}"));
    assert_eq!(
        entry["result"],
        format!("terminated {}", launched[0]),
        "{entry}"
    );
    let none = dev.ok(&["infra", "orphans"]).stdout;
    assert!(none.contains("no orphans"), "{none}");
}

#[test]
fn a_backup_taken_mid_deploy_restores_into_a_fresh_data_dir_and_the_deploy_finishes() {
    let mut dev = Coordinator::start();
    dev.cli_with_stdin(&["secret", "set", "staging", "TOKEN"], "restored-3b7e");
    // A deployment held as it enters attaching; the coordinator answers all else.
    let id = dev.pause_at("attaching/entered", |dev| dev.enqueue("v1", "staging"));
    let keys = TempDir::new("backup-keys");
    let passphrase = keys.path().join("passphrase");
    std::fs::write(&passphrase, "correct horse battery staple\n").unwrap();
    let file = keys.path().join("slipway.backup");
    let coordinator = |args: &[&str]| {
        std::process::Command::new(binary("slipway-coordinator"))
            .args(args)
            .output()
            .unwrap()
    };
    let data_dir = dev.data_dir().to_str().unwrap().to_string();
    let taken = coordinator(&[
        "backup",
        "--data-dir",
        &data_dir,
        "--out",
        file.to_str().unwrap(),
        "--with-keys",
        "--passphrase-file",
        passphrase.to_str().unwrap(),
    ]);
    let said = String::from_utf8_lossy(&taken.stdout).to_string();
    assert!(
        taken.status.success() && said.contains("with the CA and secrets keys"),
        "{said}{}",
        String::from_utf8_lossy(&taken.stderr)
    );
    let sealed = std::fs::read(&file).unwrap();
    assert!(sealed.starts_with(b"slipway backup 1\npassphrase "));
    assert!(!sealed.windows(13).any(|w| w == b"restored-3b7e"));
    let audit = dev.ok(&["audit", "-o", "json"]).json();
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "backup" && e["who"].as_str().unwrap().starts_with("backup")),
        "the backup is audited: {audit}"
    );

    // The host is lost; the cloud (and the instances it runs) is not.
    dev.kill();
    let fresh = TempDir::new("restored");
    let wrong = keys.path().join("wrong");
    std::fs::write(&wrong, "not the passphrase at all\n").unwrap();
    let restore = |with: &std::path::Path| {
        coordinator(&[
            "restore",
            "--data-dir",
            fresh.path().to_str().unwrap(),
            "--from",
            file.to_str().unwrap(),
            "--passphrase-file",
            with.to_str().unwrap(),
        ])
    };
    let refused = restore(&wrong);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("does not open"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let restored = restore(&passphrase);
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    let again = restore(&passphrase);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("holds a store already"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(fresh.path().join("ca/ca.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let back = dev.start_as_new_host(fresh, Vec::new());
    let finished = back.cli(&["show", &id, "--follow", "-o", "json"]).json();
    assert_eq!(finished["phase"], "succeeded", "{finished}");
    back.ok(&["audit", "verify"]);
    // Its secret came back with the key that opens it.
    back.ok(&["deploy", "hello", "v2", "--env", "staging", "--wait"]);
}

/// An upgrade is a stop, a new binary, a start. The binary here is the same
/// one (no earlier release is built in the suite): what this holds is the
/// stop and start under a serving fleet, and CI's retries across the gap.
#[test]
fn a_restart_for_an_upgrade_under_a_serving_fleet_fails_no_request_and_ci_retries_act_once() {
    let mut dev = Coordinator::start();
    dev.ok(&["deploy", "hello", "v1", "--env", "prod1", "--wait"]);
    let load = Load::start(&dev.endpoint("prod1"));
    load.wait_for_requests(20);
    let status = dev.terminate(Duration::from_secs(40));
    assert!(status.success(), "{status}\n{}", dev.log());

    // CI's step while the coordinator is down: unreachable (8); it retries
    // with the same request id.
    let deploy = [
        "deploy",
        "hello",
        "v2",
        "--env",
        "prod1",
        "--request-id",
        "ci-upgrade-1",
        "-o",
        "json",
    ];
    let down = dev.cli(&deploy);
    assert_eq!(down.code, Some(8), "{}", down.stderr);
    dev.crash_and_restart();
    let first = dev.ok(&deploy).json();
    let again = dev.ok(&deploy).json();
    assert_eq!(first["id"], again["id"], "{first} {again}");
    let id = first["id"].as_str().unwrap();
    let done = dev.wait_finished(id, Duration::from_secs(90));
    assert_eq!(done["phase"], "succeeded", "{done}");
    let of_v2 = dev
        .ok(&["deployments", "-o", "json"])
        .json()
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["version"] == "v2")
        .count();
    assert_eq!(of_v2, 1, "the retries made one deployment");
    load.wait_for_requests(20);
    load.finish().assert_no_failures();
}

#[test]
fn a_stopped_coordinator_s_store_backs_up_to_a_public_key_that_only_its_identity_opens() {
    let mut dev = Coordinator::start();
    dev.ok(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);
    let before = dev.ok(&["deployments", "-o", "json"]).json();
    assert!(dev.terminate(Duration::from_secs(40)).success());
    let coordinator = |args: &[&str]| {
        let out = std::process::Command::new(binary("slipway-coordinator"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let keys = TempDir::new("backup-identity");
    let identity = keys.path().join("backup.id");
    let recipient = keys.path().join("backup.id.pub");
    let file = keys.path().join("slipway.backup");
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let (made, _, err) = coordinator(&["backup-key", "--out", &path(&identity)]);
    assert!(made, "{err}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&identity).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let data_dir = path(dev.data_dir());
    let (taken, said, err) = coordinator(&[
        "backup",
        "--data-dir",
        &data_dir,
        "--out",
        &path(&file),
        "--recipient",
        &path(&recipient),
    ]);
    assert!(
        taken && said.contains("sealed to a public key"),
        "{said}{err}"
    );
    assert!(!said.contains("keys"), "no keys unless asked: {said}");
    // Sealed neither way at all, or both: refused before anything is read.
    let (neither, _, err) = coordinator(&["backup", "--data-dir", &data_dir, "--out", "x"]);
    assert!(!neither && err.contains("one of them"), "{err}");

    let fresh = TempDir::new("restored-by-identity");
    let restore = |with: &[&str]| {
        let mut args = vec![
            "restore",
            "--data-dir",
            fresh.path().to_str().unwrap(),
            "--from",
            file.to_str().unwrap(),
        ];
        args.extend_from_slice(with);
        coordinator(&args)
    };
    let passphrase = keys.path().join("passphrase");
    std::fs::write(&passphrase, "correct horse battery staple\n").unwrap();
    let (opened, _, err) = restore(&["--passphrase-file", passphrase.to_str().unwrap()]);
    assert!(!opened && err.contains("give --identity"), "{err}");
    let (restored, said, err) = restore(&["--identity", identity.to_str().unwrap()]);
    assert!(restored && said.contains("holds no keys"), "{said}{err}");

    // As README says: the keys from their own backup, then start.
    std::fs::create_dir_all(fresh.path().join("ca")).unwrap();
    for file in ["ca/ca.pem", "ca/ca.key", "secrets.key"] {
        std::fs::copy(dev.data_dir().join(file), fresh.path().join(file)).unwrap();
    }
    let back = dev.start_as_new_host(fresh, Vec::new());
    let after = back.ok(&["deployments", "-o", "json"]).json();
    let ids = |list: &serde_json::Value| -> Vec<(String, String)> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|d| (d["id"].to_string(), d["phase"].to_string()))
            .collect()
    };
    assert_eq!(ids(&after), ids(&before));
    back.ok(&["audit", "verify"]);
}
