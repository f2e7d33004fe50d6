//! Instances of an image without an agent, and the agents the 10,000-agent
//! benchmark plays for them (`slipway_tests::hollow`): the local cloud boots
//! no agent for such an image, as EC2 would not, so a deploy of it rolls back
//! when nobody plays its agents; played ones bootstrap with the instance's
//! real join token, deploy like real agents and go lost like them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use serde_json::Value;
use slipway_common::protocol::AGENT_PROTOCOL;
use slipway_coordinator::cloud::local::{INSTANCES, USER_DATA};
use slipway_tests::cloud::CloudView;
use slipway_tests::hollow::{self, Hollow};
use slipway_tests::processes::agent_pid;
use slipway_tests::{Coordinator, eventually, strings};

const PLAYED: usize = 12;

fn fleet() -> String {
    hollow::sample_fleet()
        + &hollow::project("played", PLAYED, "boot = \"60s\"")
        + &hollow::project("unplayed", 1, "boot = \"3s\"")
}

#[test]
fn an_image_without_an_agent_boots_none_and_played_agents_deploy_and_go_lost_like_real_ones() {
    let dev = Coordinator::start_dev_with_fleet(&fleet());
    let cloud = CloudView::new(dev.data_dir());
    let played = cloud.bake_hollow("played", "v1");
    let unplayed = cloud.bake_hollow("unplayed", "v1");
    assert_ne!(played, unplayed, "two releases, two images");
    for project in ["played", "unplayed"] {
        dev.ok(&["release", "add", project, "v1"]);
    }

    // Nobody plays this one: its instance runs no process, its user-data
    // waits for an agent (owner-only), and the deploy rolls back at the boot
    // deadline, naming the instance.
    let rolled = dev
        .cli(&[
            "deploy", "unplayed", "v1", "--env", "hollow", "--wait", "-o", "json",
        ])
        .json();
    assert_eq!(rolled["phase"], "rolled_back", "{rolled}");
    let instance = strings(&rolled["new_instances"]).remove(0);
    let reason = rolled["reason"].as_str().unwrap();
    assert!(
        reason.contains("booting did not finish within 3s") && reason.contains(&instance),
        "{reason}"
    );
    let user_data = dev
        .data_dir()
        .join("cloud")
        .join(INSTANCES)
        .join(&instance)
        .join(USER_DATA);
    let mode = std::fs::metadata(&user_data).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", user_data.display());
    assert!(
        std::fs::read_to_string(&user_data)
            .unwrap()
            .contains("join_token"),
        "the join token is in the user-data"
    );
    assert_eq!(
        agent_pid(&instance),
        None,
        "no agent process for {instance}"
    );

    // Played: every agent bootstraps with its own token and connects; the
    // deploy succeeds and the load balancer holds them all.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let hollow = {
        let _inside = runtime.enter();
        Hollow::start(dev.data_dir(), &["played".into(), "unplayed".into()], 8080)
    };
    let deployed = dev
        .ok(&[
            "deploy", "played", "v1", "--env", "hollow", "--wait", "-o", "json",
        ])
        .json();
    assert_eq!(deployed["phase"], "succeeded", "{deployed}");
    let instances = strings(&deployed["new_instances"]);
    assert_eq!(instances.len(), PLAYED);
    assert_eq!(hollow.connected(), PLAYED);
    assert!(
        hollow.agent(&instance).is_none(),
        "a terminated instance is not played"
    );
    let members = cloud.members(&slipway_coordinator::cloud::load_balancer_name(
        "played", "hollow",
    ));
    assert_eq!(members.len(), PLAYED, "{members:?}");
    for id in &instances {
        assert_eq!(agent_pid(id), None, "{id} is played, not run");
    }

    // As the coordinator sees them: connected, and each heartbeat matched
    // to one the player sent (what the benchmark's latency figure reads).
    let agents = dev.ok(&["agents", "played", "-o", "json"]).json();
    let agents = agents.as_array().unwrap();
    assert_eq!(agents.len(), PLAYED);
    for agent in agents {
        assert_eq!(agent["agent"], "connected", "{agent}");
        assert_eq!(agent["agent_version"], "hollow", "{agent}");
        let id = agent["instance_id"].as_str().unwrap();
        let delay = hollow
            .agent(id)
            .unwrap()
            .heartbeat_delay_ms(agent["last_seen_ms"].as_i64().unwrap())
            .unwrap_or_else(|| panic!("no heartbeat of {id} sent before {agent}"));
        assert!(delay < 1000.0, "{id}: {delay} ms");
    }

    // One falls silent with its stream open: lost after agent_lost_after
    // (4 s in the sample fleet), the others stay connected.
    let silent = hollow.agent(&instances[0]).unwrap();
    silent.fall_silent();
    let quiet = Instant::now();
    eventually(
        "the silent agent to show lost",
        Duration::from_secs(20),
        || {
            let agents = dev.ok(&["agents", "played", "-o", "json"]).json();
            let states: Vec<(String, String)> = agents
                .as_array()
                .unwrap()
                .iter()
                .map(|a| {
                    (
                        a["instance_id"].as_str().unwrap().to_string(),
                        a["agent"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            let lost: Vec<&String> = states
                .iter()
                .filter(|(_, state)| state == "lost")
                .map(|(id, _)| id)
                .collect();
            (lost == [&instances[0]]).then_some(())
        },
    );
    assert!(
        quiet.elapsed() >= Duration::from_secs(3),
        "lost after {:?}, before agent_lost_after",
        quiet.elapsed()
    );
}

#[test]
fn an_agent_of_the_previous_protocol_deploys_and_a_newer_one_is_refused_naming_both() {
    let fleet = hollow::sample_fleet()
        + &hollow::project("lastyear", 2, "boot = \"60s\"")
        + &hollow::project("nextyear", 1, "boot = \"3s\"");
    let dev = Coordinator::start_dev_with_fleet(&fleet);
    let cloud = CloudView::new(dev.data_dir());
    for project in ["lastyear", "nextyear"] {
        cloud.bake_hollow(project, "v1");
        dev.ok(&["release", "add", project, "v1"]);
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (_last_year, next_year) = {
        let _inside = runtime.enter();
        (
            // The hello of an agent baked before it carried a version.
            Hollow::start_speaking(dev.data_dir(), &["lastyear".into()], 8080, 0),
            Hollow::start_speaking(
                dev.data_dir(),
                &["nextyear".into()],
                8080,
                AGENT_PROTOCOL + 1,
            ),
        )
    };

    // Last year's agents deploy as today's do, and show the version they speak.
    let deployed = dev
        .ok(&[
            "deploy", "lastyear", "v1", "--env", "hollow", "--wait", "-o", "json",
        ])
        .json();
    assert_eq!(deployed["phase"], "succeeded", "{deployed}");
    dev.ok(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);
    let protocols = |project: &str| -> Vec<Value> {
        let agents = dev.ok(&["agents", project, "-o", "json"]).json();
        agents
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["agent_protocol"].clone())
            .collect()
    };
    assert_eq!(protocols("lastyear"), [Value::from(1), Value::from(1)]);
    // The real agent speaks today's version.
    assert_eq!(protocols("hello"), [Value::from(AGENT_PROTOCOL)]);
    let table = dev.ok(&["agents", "lastyear"]).stdout;
    assert!(
        table.lines().next().unwrap().contains("PROTOCOL"),
        "{table}"
    );

    // An agent newer than the coordinator is refused, and told why; its
    // deployment rolls back at the boot deadline.
    let queued = dev
        .ok(&["deploy", "nextyear", "v1", "--env", "hollow", "-o", "json"])
        .json();
    let said = format!(
        "the agent speaks protocol version {}; this coordinator takes versions {} and {}: \
         upgrade the coordinator first",
        AGENT_PROTOCOL + 1,
        AGENT_PROTOCOL - 1,
        AGENT_PROTOCOL
    );
    eventually(
        "the refusal to reach the agent",
        Duration::from_secs(20),
        || {
            let told: Vec<Option<String>> = next_year.agents().iter().map(|a| a.ended()).collect();
            (!told.is_empty() && told.iter().all(|t| t.as_deref() == Some(said.as_str())))
                .then_some(())
        },
    );
    assert!(dev.log().contains(&said), "the coordinator logs it too");
    let id = queued["id"].as_str().unwrap();
    let ended = dev.cli(&["show", id, "--follow", "-o", "json"]).json();
    assert_eq!(ended["phase"], "rolled_back", "{ended}");
}
