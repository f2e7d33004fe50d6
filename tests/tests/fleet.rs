//! The original team's fleet, whole: nine projects in four environments on
//! the local cloud, one real agent and service per target (36 instances),
//! every target deployed at once under HTTP load on every endpoint.
//!
//! It runs in a test group of its own (`.config/nextest.toml`): 36 agents,
//! their services and 36 loads want the machine to themselves.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use slipway_tests::cloud::CloudView;
use slipway_tests::load::Load;
use slipway_tests::{Coordinator, entered, finished_at};

const PROJECTS: [&str; 9] = [
    "web", "api", "admin", "ops", "reports", "billing", "search", "mailer", "jobs",
];
const ENVIRONMENTS: [&str; 4] = ["staging", "qaprod1", "prod1", "prod2"];
/// The project whose second-round release answers 500 on its health check.
const BROKEN: &str = "billing";
/// Generous: 36 deployments share two cores with their agents and loads.
const ROUND: Duration = Duration::from_secs(300);

/// Every project like the sample's `hello`, without a data store; one
/// instance per environment, agents lost after 15 s (DESIGN.md, settled).
fn fleet() -> String {
    let mut fleet =
        String::from("[coordinator]\nheartbeat_interval = \"1s\"\nagent_lost_after = \"15s\"\n");
    for env in ENVIRONMENTS {
        fleet += &format!(
            "\n[environments.{env}]\ninstances = 1\nvariables = {{ GREETING = \"hello from {env}\" }}\n"
        );
    }
    for project in PROJECTS {
        fleet += &format!(
            r#"
[projects.{project}]
instance_port = 8080
services = [{{ name = "web", command = "bin/slipway-sample-app" }}]

[projects.{project}.health_check]
path = "/health"
port = 8080
interval = "200ms"
timeout = "1s"
healthy_threshold = 2
unhealthy_threshold = 2

[projects.{project}.deadlines]
launch = "120s"
boot = "120s"
configure = "120s"
ready = "20s"
attach = "120s"
drain = "10s"
"#
        );
    }
    fleet
}

/// Queues `project@version` onto `env`; its id.
fn enqueue(dev: &Coordinator, project: &str, version: &str, env: &str) -> String {
    dev.ok(&["deploy", project, version, "--env", env, "-o", "json"])
        .json()["id"]
        .as_str()
        .expect("id")
        .to_string()
}

/// Waits for every deployment of `ids` to finish; each one's document.
fn finished(dev: &Coordinator, ids: &[String]) -> Vec<Value> {
    ids.iter().map(|id| dev.wait_finished(id, ROUND)).collect()
}

/// One load per endpoint, paced so 36 fit on a small machine.
fn loads(dev: &Coordinator) -> BTreeMap<(String, String), Load> {
    let status = dev.ok(&["status", "-o", "json"]).json();
    let mut loads = BTreeMap::new();
    for project in status.as_array().expect("projects") {
        for env in project["environments"].as_array().expect("environments") {
            let endpoint = env["endpoint"].as_str().expect("an endpoint");
            let load = Load::start_paced(endpoint, ROUND * 3, Duration::from_millis(100));
            loads.insert(
                (
                    project["name"].as_str().unwrap().to_string(),
                    env["name"].as_str().unwrap().to_string(),
                ),
                load,
            );
        }
    }
    for load in loads.values() {
        load.wait_for_requests(3);
    }
    loads
}

#[test]
fn the_original_teams_fleet_deploys_everywhere_at_once_and_only_a_broken_project_rolls_back() {
    let dev = Coordinator::start_dev_with_fleet(&fleet());
    let cloud = CloudView::new(dev.data_dir());
    for project in PROJECTS {
        for version in ["v1", "v2", "v3", "v4"] {
            let healthy = !(project == BROKEN && version == "v4");
            cloud.bake(project, version, healthy);
            dev.ok(&["release", "add", project, version]);
        }
    }

    // The first release everywhere: nothing serves yet, so no load.
    let first: Vec<String> = targets().map(|(p, e)| enqueue(&dev, p, "v1", e)).collect();
    for d in finished(&dev, &first) {
        assert_eq!(d["phase"], "succeeded", "{d}");
    }
    let instances: usize = dev
        .ok(&["status", "-o", "json"])
        .json()
        .as_array()
        .map(|projects| {
            projects
                .iter()
                .flat_map(|p| p["environments"].as_array().cloned().unwrap_or_default())
                .map(|e| e["instances"].as_array().map_or(0, Vec::len))
                .sum()
        })
        .unwrap_or(0);
    assert_eq!(instances, 36, "one instance per target, each in service");

    // Round one, under load everywhere: two releases queued on every target
    // at once; each target runs them in the order they came.
    let mut loads = loads(&dev);
    let mut round: Vec<(String, String)> = Vec::new();
    for (project, env) in targets() {
        round.push((
            enqueue(&dev, project, "v2", env),
            enqueue(&dev, project, "v3", env),
        ));
    }
    for (v2, v3) in &round {
        let (v2, v3) = (dev.wait_finished(v2, ROUND), dev.wait_finished(v3, ROUND));
        assert_eq!(
            (&v2["phase"], &v3["phase"]),
            (&"succeeded".into(), &"succeeded".into())
        );
        let v3_left_the_queue = entered(&v3, "launching").expect("v3 launched");
        assert!(
            finished_at(&v2) <= v3_left_the_queue,
            "FIFO: {} finished at {}, {} launched at {v3_left_the_queue}",
            v2["id"],
            finished_at(&v2),
            v3["id"]
        );
    }

    // Round two: a new release everywhere; BROKEN's fails its health checks.
    let second: Vec<(String, String, String)> = targets()
        .map(|(p, e)| (p.to_string(), e.to_string(), enqueue(&dev, p, "v4", e)))
        .collect();
    for (project, env, id) in &second {
        let d = dev.wait_finished(id, ROUND);
        let expected = if project == BROKEN {
            "rolled_back"
        } else {
            "succeeded"
        };
        assert_eq!(d["phase"], expected, "{project} on {env}: {d}");
    }
    for ((project, env), load) in std::mem::take(&mut loads) {
        let report = load.finish();
        report.assert_no_failures();
        let serving = if project == BROKEN { "v3" } else { "v4" };
        assert!(
            report.last_body().contains(serving),
            "{project} on {env} ends serving {serving}: {}",
            report.last_body()
        );
    }
    let status = dev.ok(&["status", "-o", "json"]).json();
    for project in status.as_array().expect("projects") {
        for env in project["environments"].as_array().expect("environments") {
            let serving = if project["name"] == BROKEN {
                "v3"
            } else {
                "v4"
            };
            assert_eq!(env["active_version"], serving, "{project}");
        }
    }
}

fn targets() -> impl Iterator<Item = (&'static str, &'static str)> {
    PROJECTS
        .into_iter()
        .flat_map(|p| ENVIRONMENTS.into_iter().map(move |e| (p, e)))
}
