//! Steady state after a deploy: services that crash are restarted as the
//! project's restart policy says and reported; an instance whose agent goes
//! silent is shown lost within seconds and, if the project asks, replaced.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::Value;
use slipway_coordinator::sample::SAMPLE_FLEET;
use slipway_tests::load::Load;
use slipway_tests::processes::{agent_pid, freeze, kill9, service_pids};
use slipway_tests::{Coordinator, eventually};

/// The staging instance rows of `status hello`.
fn staging_instances(dev: &Coordinator) -> Vec<Value> {
    dev.environment("staging")["instances"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Each service of an instance row as (name, state, restarts).
fn services(row: &Value) -> Vec<(String, String, u64)> {
    row["services"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_string(),
                s["state"].as_str().unwrap_or_default().to_string(),
                s["restarts"].as_u64().unwrap_or(u64::MAX),
            )
        })
        .collect()
}

fn instance_row(dev: &Coordinator, id: &str) -> Option<Value> {
    staging_instances(dev)
        .into_iter()
        .find(|i| i["instance_id"] == id)
}

#[test]
fn a_crashing_service_is_restarted_up_to_the_policy_limit_and_reported() {
    let fleet = SAMPLE_FLEET.replace(
        "[projects.hello.health_check]",
        "[projects.hello.restart]\nwhen = \"on-failure\"\nlimit = 2\nwindow = \"60s\"\n\n[projects.hello.health_check]",
    );
    assert!(fleet.contains("limit = 2"));
    let dev = Coordinator::start_dev_with_fleet(&fleet);
    dev.ok(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);
    let instance = staging_instances(&dev)[0]["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        services(&instance_row(&dev, &instance).unwrap()),
        [("web".to_string(), "running".to_string(), 0)]
    );

    // Two crashes (kill -9 is a failure) are within the limit: restarted, counted.
    for restarts in 1..=2 {
        let before = service_pids(&instance);
        assert_eq!(before.len(), 1, "one service process: {before:?}");
        kill9(before[0]);
        let expected = [("web".to_string(), "running".to_string(), restarts)];
        eventually(&format!("{expected:?}"), Duration::from_secs(20), || {
            let row = instance_row(&dev, &instance)?;
            let pids = service_pids(&instance);
            (services(&row) == expected && pids.len() == 1 && pids != before).then_some(())
        });
    }
    // The third within the window is one too many: the agent gives up and says so.
    kill9(service_pids(&instance)[0]);
    eventually(
        "the service to be reported failed",
        Duration::from_secs(20),
        || {
            let row = instance_row(&dev, &instance)?;
            (services(&row) == [("web".to_string(), "failed".to_string(), 2)]).then_some(())
        },
    );
    assert!(
        service_pids(&instance).is_empty(),
        "no restart past the limit"
    );
    assert!(
        dev.log().contains("service exited on its instance"),
        "the coordinator logs each report:\n{}",
        dev.log()
    );
}

#[test]
fn a_silent_agent_is_shown_lost_within_seconds_and_its_instance_replaced() {
    let fleet = SAMPLE_FLEET
        .replace(
            "[environments.staging]\ninstances = 1",
            "[environments.staging]\ninstances = 2",
        )
        .replace(
            "[projects.hello]\n",
            "[projects.hello]\nreplace_lost_instances = true\n",
        );
    assert!(fleet.contains("replace_lost_instances = true") && fleet.contains("instances = 2"));
    let dev = Coordinator::start_dev_with_fleet(&fleet);
    dev.ok(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);
    let before: Vec<String> = staging_instances(&dev)
        .iter()
        .map(|i| i["instance_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(before.len(), 2);
    let load = Load::start(&dev.endpoint("staging"));
    load.wait_for_requests(20);

    // The agent freezes; its service keeps answering, but nobody can vouch for it.
    let (silent, healthy) = (&before[0], &before[1]);
    freeze(agent_pid(silent).expect("agent process"));
    let frozen_at = Instant::now();
    // Measured to the start of the status call that showed it, so a slow
    // CLI run on a busy machine does not count.
    let noticed = eventually(
        "status to show the agent lost",
        Duration::from_secs(15),
        || {
            let asked = frozen_at.elapsed();
            (instance_row(&dev, silent)?["agent"] == "lost").then_some(asked)
        },
    );
    // agent_lost_after is 4 s in the sample fleet; heartbeats and polls add a little.
    assert!(
        noticed < Duration::from_secs(8),
        "lost shown after {noticed:?}"
    );
    // The wall screen names it in staging's cell.
    let (_, token) = dev.dashboard_url("wall");
    eventually(
        "the board to show the lost agent",
        Duration::from_secs(10),
        || {
            let cell = dev.cell(&token, "hello", "staging");
            (cell["lost_agents"] == serde_json::json!([silent])).then_some(())
        },
    );

    let replacement = eventually("a replacement deployment", Duration::from_secs(30), || {
        let history = dev.ok(&["deployments", "--output", "json"]).json();
        history
            .as_array()?
            .iter()
            .find(|d| d["requested_by"] == slipway_coordinator::lost::REPLACER)
            .cloned()
    });
    let id = replacement["id"].as_str().unwrap();
    let done = dev.wait_finished(id, Duration::from_secs(60));
    assert_eq!(done["phase"], "succeeded", "{done}");

    let after: Vec<String> = staging_instances(&dev)
        .iter()
        .map(|i| i["instance_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(
        !after.contains(silent),
        "the lost instance was retired: {after:?}"
    );
    assert!(
        after.contains(healthy),
        "the healthy instance kept serving: {after:?}"
    );
    eventually(
        "the lost instance's processes to end",
        Duration::from_secs(10),
        || {
            slipway_tests::processes::instance_processes(silent)
                .is_empty()
                .then_some(())
        },
    );
    // Told as events: the agent lost (once, and only that one: the instance
    // the replacement retired went silent too, but Slipway terminated it),
    // then the replacement.
    let events = slipway_tests::json_lines(&dev.ok(&["events", "-o", "json"]).stdout);
    let lost: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "agent.lost")
        .collect();
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert!(
        lost[0]["summary"].as_str().unwrap().starts_with(&format!(
            "the agent of {silent} (hello on staging) is lost: silent for"
        )),
        "{lost:?}"
    );
    assert!(
        events.iter().any(|e| e["deployment"] == id
            && e["kind"] == "deployment.queued"
            && e["summary"]
                .as_str()
                .unwrap()
                .contains(&format!("queued to replace lost {silent}"))),
        "{events:?}"
    );
    let audit = dev.ok(&["audit", "--output", "json"]).json();
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "replace-lost"
                && e["target"].as_str().unwrap().contains(silent.as_str())),
        "the replacement is audited: {audit}"
    );
    load.finish().assert_no_failures();
}

/// `status` and `agents` give one answer for an agent's state: a frozen agent
/// (SIGSTOP keeps its stream open) is `lost` in both, not `connected` in one.
#[test]
fn status_and_agents_agree_that_a_frozen_agent_is_lost() {
    let dev = Coordinator::start();
    dev.ok(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);
    let instance = staging_instances(&dev)[0]["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    freeze(agent_pid(&instance).expect("agent process"));
    eventually(
        "status to show the agent lost",
        Duration::from_secs(15),
        || (instance_row(&dev, &instance)?["agent"] == "lost").then_some(()),
    );
    let agents = dev.ok(&["agents", "hello", "-o", "json"]).json();
    let listed = agents
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["instance_id"] == instance.as_str())
        .unwrap_or_else(|| panic!("{instance} not in {agents}"));
    assert_eq!(listed["agent"], "lost", "{listed}");
}

#[test]
fn logs_show_each_instance_s_output_and_follow_new_lines() {
    use slipway_tests::json_lines;
    use slipway_tests::load::get;
    let dev = Coordinator::start();
    dev.ok(&["deploy", "hello", "v1", "--env", "prod1", "--wait"]);
    let endpoint = dev.endpoint("prod1");
    get(&endpoint, "/first").unwrap();
    let shown = eventually("the request in the logs", Duration::from_secs(20), || {
        let out = dev.ok(&["logs", "hello", "--env", "prod1"]).stdout;
        out.contains("v1 /first 200").then_some(out)
    });
    let instances: Vec<String> = dev.environment("prod1")["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["instance_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(instances.len(), 2);
    for id in &instances {
        assert!(
            shown.contains(&format!("{id} web | slipway-sample-app v1 listening on")),
            "each instance's output, with its id: {shown}"
        );
    }
    let one = json_lines(
        &dev.ok(&[
            "logs",
            "hello",
            "--env",
            "prod1",
            "--instance",
            &instances[0],
            "--lines",
            "1",
            "-o",
            "json",
        ])
        .stdout,
    );
    assert_eq!(one.len(), 1, "{one:?}");
    assert_eq!(one[0]["instance_id"], instances[0].as_str());
    assert_eq!(one[0]["service"], "web");

    // Following: a request made after it started shows up.
    let follower = dev.cli_in_background(&["logs", "hello", "--env", "prod1", "--follow"]);
    std::thread::sleep(Duration::from_secs(1));
    get(&endpoint, "/second").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let followed = follower.interrupt();
    assert_eq!(followed.code, Some(0), "{}", followed.stderr);
    assert!(
        followed.stdout.contains("v1 /second 200"),
        "{}",
        followed.stdout
    );

    // Bad input: named, nothing asked of any agent.
    let stranger = dev.exits(
        5,
        &[
            "logs",
            "hello",
            "--env",
            "prod1",
            "--instance",
            "i-0123456789abcdef0",
        ],
    );
    assert!(
        stranger.stderr.contains("running are"),
        "{}",
        stranger.stderr
    );
    dev.exits(5, &["logs", "helo", "--env", "prod1"]);
    dev.exits(5, &["logs", "hello", "--env", "prod9"]);
    dev.exits(4, &["logs", "hello", "--env", "prod1", "--lines", "20000"]);
    let nope = dev
        .ok(&["logs", "hello", "--env", "prod1", "--service", "nope"])
        .stdout;
    assert!(
        nope.contains("no output kept for service \"nope\""),
        "{nope}"
    );
}
