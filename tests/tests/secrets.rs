//! Secrets: encrypted at rest, delivered only to their environment's services,
//! and never in a log, a store file, CLI output or the audit log.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use slipway_tests::Coordinator;
use slipway_tests::processes::instance_processes;

const CANARY: &str = "canary-5e1f0c9a-do-not-leak";

/// The environment of an instance's service processes (not its agent).
fn service_environment(instance: &str) -> String {
    instance_processes(instance)
        .into_iter()
        .map(|pid| {
            String::from_utf8_lossy(
                &std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default(),
            )
            .into_owned()
        })
        .filter(|env| env.contains("SLIPWAY_PRIVATE_IP="))
        .collect()
}

/// Every file under `dir` that contains `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|w| w == needle)
        {
            found.push(path.display().to_string());
        }
    }
    found
}

fn instance_of(c: &Coordinator, env: &str) -> String {
    c.environment(env)["instances"][0]["instance_id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_canary_secret_reaches_only_its_environment_and_nowhere_else() {
    // Debug logging everywhere: a secret must not leak even then.
    let c = Coordinator::start_with(None, vec![("SLIPWAY_LOG".into(), "debug".into())]);
    let set = c.cli_with_stdin(
        &["secret", "set", "staging", "DB_PASSWORD"],
        &format!("{CANARY}\n"),
    );
    assert!(set.success, "{}", set.stderr);
    let empty = c.cli_with_stdin(&["secret", "set", "staging", "EMPTY"], "");
    assert!(
        !empty.success && empty.stderr.contains("no value given"),
        "{}",
        empty.stderr
    );
    let bad = c.cli_with_stdin(&["secret", "set", "staging", "db-password"], "x");
    assert!(
        !bad.success && bad.stderr.contains("is not a secret name"),
        "{}",
        bad.stderr
    );

    c.ok(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);
    c.ok(&["deploy", "hello", "v1", "--env", "qaprod1", "--wait"]);
    let staging = service_environment(&instance_of(&c, "staging"));
    assert!(
        staging.contains(&format!("DB_PASSWORD={CANARY}")),
        "staging's service must get its secret"
    );
    let qaprod = service_environment(&instance_of(&c, "qaprod1"));
    assert!(
        !qaprod.is_empty() && !qaprod.contains(CANARY),
        "another environment must not get it"
    );

    let listed = c.ok(&["secret", "list", "--output", "json"]).json();
    assert_eq!(listed[0]["key"], "DB_PASSWORD");
    assert!(
        listed[0].get("value").is_none() && !listed.to_string().contains(CANARY),
        "a secret is its environment, project and key, never a value: {listed}"
    );
    let mut outputs = vec![set.stdout, set.stderr];
    for args in [
        vec!["secret", "list"],
        vec!["status"],
        vec!["status", "hello", "--output", "json"],
        vec!["deployments", "--output", "json"],
        vec!["agents", "--output", "json"],
        vec!["audit", "--output", "json"],
        vec!["audit"],
    ] {
        let run = c.ok(&args);
        outputs.push(run.stdout);
        outputs.push(run.stderr);
    }
    for output in &outputs {
        assert!(
            !output.contains(CANARY),
            "the canary leaked into CLI output: {output}"
        );
    }
    let audit = c.ok(&["audit", "--output", "json"]).json();
    let entry = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "secret set" && e["result"] == "ok")
        .unwrap();
    assert_eq!(entry["target"], "staging/DB_PASSWORD");

    let leaks = files_containing(c.data_dir(), CANARY.as_bytes());
    assert!(leaks.is_empty(), "the canary is in files: {leaks:?}");
    assert!(
        c.log().contains("DEBUG"),
        "the coordinator really logged at debug level"
    );
}

/// A deployment keeps the configuration it pushed, secret values masked, with
/// a digest that tells two configurations apart without showing either.
#[test]
fn a_deployment_shows_the_configuration_it_pushed_with_secrets_masked() {
    let c = Coordinator::start();
    c.cli_with_stdin(&["secret", "set", "prod1", "DB_PASSWORD"], CANARY);
    let deploy = |version: &str| -> serde_json::Value {
        c.ok(&[
            "deploy", "hello", version, "--env", "prod1", "--wait", "-o", "json",
        ])
        .json()
    };
    let first = deploy("v1");
    let config = &first["config"];
    assert_eq!(config["variables"]["DB_PASSWORD"], "***", "{config}");
    assert_eq!(config["variables"]["HELLO_DB"], "../../stores/hello-db");
    assert_eq!(config["variables"]["GREETING"], "hello from prod1");
    assert_eq!(config["secrets"], serde_json::json!(["DB_PASSWORD"]));
    let shown = c.ok(&["show", first["id"].as_str().unwrap()]).stdout;
    assert!(
        shown.contains("DB_PASSWORD=***") && !shown.contains(CANARY),
        "{shown}"
    );

    // The same values, the same digest; a changed secret, another digest.
    let again = deploy("v1");
    let digest = |d: &serde_json::Value| d["config"]["digest"].as_str().unwrap().to_string();
    assert_eq!(
        digest(&first),
        digest(&again),
        "the same configuration (SLIPWAY_* aside), the same digest"
    );
    c.cli_with_stdin(&["secret", "set", "prod1", "DB_PASSWORD"], "another-value");
    let changed = deploy("v1");
    assert_eq!(
        changed["config"]["variables"],
        {
            let mut v = again["config"]["variables"].clone();
            v["SLIPWAY_DEPLOYMENT"] = changed["id"].clone();
            v
        },
        "only the deployment id differs in what is shown"
    );
    assert_ne!(
        digest(&changed),
        digest(&again),
        "the secret's new value shows in the digest"
    );

    // `diff` says the same, in words and in JSON.
    let id = |d: &serde_json::Value| d["id"].as_str().unwrap().to_string();
    let same = c.ok(&["diff", &id(&first), &id(&again)]).stdout;
    assert!(same.contains("pushed the same configuration"), "{same}");
    let differ = c
        .ok(&["diff", &id(&again), &id(&changed), "-o", "json"])
        .json();
    assert_eq!(differ["secrets_differ"], true, "{differ}");
    assert_eq!(differ["changed"], serde_json::json!({}), "{differ}");
    let words = c.ok(&["diff", &id(&again), &id(&changed)]).stdout;
    assert!(
        words.contains("a secret's value differs") && !words.contains(CANARY),
        "{words}"
    );
}

/// A project's own secret reaches only that project's services; a shared one
/// reaches every project of the environment.
#[test]
fn a_project_s_secret_reaches_only_that_project_and_a_store_s_every_user_of_it() {
    let fleet = format!(
        "{}\n[projects.admin]\ninstance_port = 8080\nservices = [{{ name = \"web\", command = \"bin/slipway-sample-app\" }}]\n\n[projects.admin.health_check]\npath = \"/health\"\nport = 8080\ninterval = \"200ms\"\n",
        slipway_coordinator::sample::SAMPLE_FLEET
    );
    let c = Coordinator::start_dev_with_fleet(&fleet);
    let image = c.ok(&["release", "list", "hello", "-o", "json"]).json()[0]["image_id"]
        .as_str()
        .unwrap()
        .to_string();
    c.ok(&["release", "add", "admin", "v1", "--image", &image]);
    let set = c.cli_with_stdin(
        &[
            "secret",
            "set",
            "staging",
            "ADMIN_TOKEN",
            "--project",
            "admin",
        ],
        CANARY,
    );
    assert!(set.success, "{}", set.stderr);
    c.cli_with_stdin(&["secret", "set", "staging", "REGION"], "eu-west-1");
    let listed = c.ok(&["secret", "list", "staging", "-o", "json"]).json();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["key"] == "ADMIN_TOKEN" && s["project"] == "admin"),
        "{listed}"
    );
    c.ok(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);
    c.ok(&["deploy", "admin", "v1", "--env", "staging", "--wait"]);
    let instance = |project: &str| {
        let status = c.ok(&["status", project, "-o", "json"]).json();
        status["environments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "staging")
            .unwrap()["instances"][0]["instance_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let admin = service_environment(&instance("admin"));
    let hello = service_environment(&instance("hello"));
    assert!(
        admin.contains(&format!("ADMIN_TOKEN={CANARY}")),
        "admin gets its own"
    );
    assert!(
        !hello.is_empty() && !hello.contains(CANARY),
        "hello must not get admin's"
    );
    assert!(
        admin.contains("REGION=eu-west-1") && hello.contains("REGION=eu-west-1"),
        "a shared secret reaches both"
    );
    let unknown = c.cli_with_stdin(&["secret", "set", "staging", "X", "--project", "nope"], "x");
    assert_eq!(unknown.code, Some(5), "{}", unknown.stderr);

    // A data store's secret: hello uses hello-db on qaprod1 (and prod1,
    // prod2), hello-db-staging on staging; admin uses no store.
    const STORE_CANARY: &str = "store-canary-91c2";
    let set = c.cli_with_stdin(&["secret", "set", "hello-db", "DB_PASSWORD"], STORE_CANARY);
    assert!(set.success, "{}", set.stderr);
    let listed = c.ok(&["secret", "list", "hello-db", "-o", "json"]).json();
    assert_eq!(
        listed,
        serde_json::json!([{"environment": null, "project": null, "data_store": "hello-db", "notification": null, "key": "DB_PASSWORD"}]),
    );
    let scoped = c.cli_with_stdin(
        &["secret", "set", "hello-db", "X", "--project", "hello"],
        "x",
    );
    assert!(
        !scoped.success && scoped.stderr.contains("drop --project"),
        "{}",
        scoped.stderr
    );
    let neither = c.cli_with_stdin(&["secret", "set", "hello-dbb", "X"], "x");
    assert_eq!(neither.code, Some(5), "{}", neither.stderr);
    assert!(
        neither
            .stderr
            .contains("data stores are hello-db, hello-db-staging"),
        "{}",
        neither.stderr
    );
    let shown = c
        .ok(&[
            "deploy", "hello", "v1", "--env", "qaprod1", "--wait", "-o", "json",
        ])
        .json();
    assert_eq!(
        shown["config"]["variables"]["DB_PASSWORD"], "***",
        "{shown}"
    );
    let qaprod1 = c.environment("qaprod1")["instances"][0]["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        service_environment(&qaprod1).contains(&format!("DB_PASSWORD={STORE_CANARY}")),
        "a user of the store gets its secret"
    );
    // Deployed after the store's secret was set, neither gets it.
    for project in ["hello", "admin"] {
        let pushed = c
            .ok(&[
                "deploy", project, "v1", "--env", "staging", "--wait", "-o", "json",
            ])
            .json();
        assert_eq!(pushed["phase"], "succeeded", "{pushed}");
        assert!(
            pushed["config"]["variables"].get("DB_PASSWORD").is_none(),
            "{project} on staging: {pushed}"
        );
    }
    let staging = service_environment(&instance("hello"));
    assert!(
        !staging.is_empty() && !staging.contains(STORE_CANARY),
        "staging's hello uses another store"
    );
}

#[test]
fn a_fleet_applied_without_a_restart_is_for_the_next_deployment_and_outlives_a_restart() {
    use slipway_coordinator::sample::SAMPLE_FLEET;
    use slipway_tests::TempDir;
    use std::time::Duration;
    // A drain long enough for a held request to keep a deployment in
    // progress through a coordinator restart.
    let fleet = SAMPLE_FLEET.replace("drain = \"10s\"", "drain = \"120s\"");
    let mut c = Coordinator::start_dev_with_fleet(&fleet);
    let dir = TempDir::new("fleet-apply");
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    c.ok(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);

    // Invalid: refused whole, naming the key; a viewer may not apply at all.
    let bad = file(
        "bad.toml",
        &fleet.replace("instance_port = 8080", "instance_prot = 8080"),
    );
    let refused = c.exits(4, &["fleet", "apply", &bad]);
    assert!(
        refused.stderr.contains("instance_prot"),
        "{}",
        refused.stderr
    );
    let restart_only = file(
        "coordinator.toml",
        &fleet.replace("agent_lost_after = \"4s\"", "agent_lost_after = \"9s\""),
    );
    let refused = c.exits(4, &["fleet", "apply", &restart_only]);
    assert!(
        refused.stderr.contains("[coordinator]"),
        "{}",
        refused.stderr
    );

    // A deployment in progress (a held request keeps it draining) when a
    // fleet with another greeting for staging is applied.
    let held = c.hold_request("staging");
    let in_progress = c.enqueue("v2", "staging");
    slipway_tests::eventually("v2 to be draining", Duration::from_secs(30), || {
        (c.deployment(&in_progress)["phase"] == "draining").then_some(())
    });
    let good = file(
        "fleet.toml",
        &fleet.replace("hello from staging", "hello again from staging"),
    );
    let applied = c.ok(&["fleet", "apply", &good, "-o", "json"]).json();
    assert_eq!(applied["generation"], 2, "{applied}");
    assert!(
        applied["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l
                == "hello/staging: ~ GREETING: hello from staging -> hello again from staging"),
        "{applied}"
    );
    assert_eq!(applied["infra"], serde_json::json!([]), "{applied}");

    // A kill -9 and a start with the same start file: the applied fleet
    // stays in force, and the deployment in progress keeps its own.
    c.crash_and_restart();
    drop(held);
    let finished = c.wait_finished(&in_progress, Duration::from_secs(60));
    assert_eq!(finished["phase"], "succeeded", "{finished}");
    assert_eq!(finished["fleet_generation"], 1, "{finished}");
    assert_eq!(
        finished["config"]["variables"]["GREETING"], "hello from staging",
        "{finished}"
    );
    let next = c
        .ok(&[
            "deploy", "hello", "v1", "--env", "staging", "--wait", "-o", "json",
        ])
        .json();
    assert_eq!(next["fleet_generation"], 2, "{next}");
    assert_eq!(
        next["config"]["variables"]["GREETING"], "hello again from staging",
        "{next}"
    );
    let body = slipway_tests::load::get(&c.endpoint("staging"), "/").unwrap();
    assert!(body.contains("hello again from staging"), "{body}");

    // Audited, with what changed; the refusals too.
    let audit = c
        .ok(&["audit", "--action", "fleet apply", "-o", "json"])
        .json();
    let entries = audit.as_array().unwrap();
    assert_eq!(entries.len(), 3, "{audit}");
    assert!(
        entries
            .iter()
            .any(|e| e["result"].as_str().unwrap().contains("generation 2: ")),
        "{audit}"
    );
}

#[test]
fn the_secrets_key_rotates_under_a_running_fleet_and_no_request_fails() {
    let c = Coordinator::start();
    c.cli_with_stdin(&["secret", "set", "staging", "DB_PASSWORD"], CANARY);
    c.ok(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);
    let key_file = c.data_dir().join("secrets.key");
    let old_key = std::fs::read(&key_file).unwrap();
    let load = slipway_tests::load::Load::start(&c.endpoint("staging"));
    load.wait_for_requests(20);

    // Operators keep calling while it rotates; every call answers.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let rotated = std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut calls = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) || calls < 3 {
                c.ok(&["secret", "list", "staging"]);
                calls += 1;
            }
            calls
        });
        let rotated = c.ok(&["secret", "rotate-key", "-o", "json"]);
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(reader.join().unwrap() >= 3);
        rotated
    });
    slipway_tests::check_documents(&[("secret rotate-key".into(), rotated.stdout.clone(), None)]);
    let rotated = rotated.json();
    assert_eq!(rotated["resealed"], 1, "{rotated}");
    assert_ne!(rotated["from_key"], rotated["to_key"]);
    let new_key = std::fs::read(&key_file).unwrap();
    assert_ne!(new_key[..32], old_key[..32], "the key file holds a new key");

    // A deployment after it gets the same value, sealed with the new key.
    c.ok(&["deploy", "hello", "v2", "--env", "staging", "--wait"]);
    assert!(
        service_environment(&instance_of(&c, "staging")).contains(&format!("DB_PASSWORD={CANARY}"))
    );
    load.wait_for_requests(20);
    load.finish().assert_no_failures();

    let audit = c.ok(&["audit", "-o", "json"]).json();
    let entry = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "secret rotate-key")
        .cloned()
        .unwrap_or_else(|| panic!("not audited: {audit}"));
    assert_eq!(
        entry["result"],
        format!(
            "re-sealed 1 secrets: key {} -> {}",
            rotated["from_key"].as_str().unwrap(),
            rotated["to_key"].as_str().unwrap()
        )
    );
    // Only an admin rotates.
    let keys = slipway_tests::TempDir::new("rotate-keys");
    let deployer = c.issue(keys.path(), "ci", "deployer", &[]);
    let refused = c.cli_as(&deployer, &["secret", "rotate-key"]);
    assert_eq!(refused.code, Some(4), "{}", refused.stderr);
    assert_eq!(std::fs::read(&key_file).unwrap(), new_key);
    let leaks = files_containing(c.data_dir(), CANARY.as_bytes());
    assert!(leaks.is_empty(), "the canary is in files: {leaks:?}");
}
