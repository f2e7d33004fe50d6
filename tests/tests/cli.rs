//! The CLI as scripts and people meet it: every `-o json` document held to
//! `cli/schema.json` by a maintained validator, every exit code produced by
//! the situation it names, re-attaching to a deployment, tables and colour,
//! profiles with inline certificates, shell completion and versions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use slipway_coordinator::sample::SAMPLE_FLEET;
use slipway_tests::{CliRun, Coordinator, TempDir, binary, eventually, json_lines, phases};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Documents to validate: (schema command, JSON text, YAML text if asked).
#[derive(Default)]
struct Documents(Vec<(String, String, Option<String>)>);

impl Documents {
    /// Runs a command that changes nothing, as JSON and as YAML. The YAML is
    /// kept to compare only if the JSON read before and after it agree (an
    /// agent's `last_seen` moves with every heartbeat).
    fn read(&mut self, dev: &Coordinator, command: &str, args: &[&str]) -> Value {
        for _ in 0..10 {
            let json = dev.ok(&[args, &["-o", "json"]].concat());
            let yaml = dev.ok(&[args, &["-o", "yaml"]].concat());
            let again = dev.ok(&[args, &["-o", "json"]].concat());
            if again.stdout == json.stdout {
                self.0
                    .push((command.into(), json.stdout.clone(), Some(yaml.stdout)));
                return json.json();
            }
        }
        // An agent's `last_seen` moves with every heartbeat: on a busy machine
        // three runs may never fit between two. Then the JSON is still held
        // to the schema, if the runs differ in nothing else.
        let json = dev.ok(&[args, &["-o", "json"]].concat());
        let again = dev.ok(&[args, &["-o", "json"]].concat());
        let steady = |run: &CliRun| {
            let mut doc = run.json();
            forget_last_seen(&mut doc);
            doc
        };
        assert_eq!(
            steady(&json),
            steady(&again),
            "`{}` never answered the same twice in a row",
            args.join(" ")
        );
        self.0.push((command.into(), json.stdout.clone(), None));
        json.json()
    }

    /// Keeps the JSON a command (run once, it acts) printed.
    fn acted(&mut self, command: &str, run: &CliRun) -> Value {
        self.0.push((command.into(), run.stdout.clone(), None));
        run.json()
    }

    /// Validates them all in one run of the validator; fails naming each problem.
    fn check(&self) {
        slipway_tests::check_documents(&self.0);
    }
}

/// `doc` without the fields that move on their own (an agent's last heartbeat).
fn forget_last_seen(doc: &mut Value) {
    match doc {
        Value::Object(map) => {
            map.remove("last_seen");
            map.remove("last_seen_ms");
            map.values_mut().for_each(forget_last_seen);
        }
        Value::Array(items) => items.iter_mut().for_each(forget_last_seen),
        _ => {}
    }
}

/// Issues a certificate with `role` and returns its profile.
fn issue(dev: &Coordinator, dir: &TempDir, name: &str, role: &str) -> (PathBuf, CliRun) {
    let out = dir.path().join(name);
    let run = dev.ok(&[
        "cert",
        "issue",
        "--name",
        name,
        "--role",
        role,
        "--out",
        out.to_str().unwrap(),
        "-o",
        "json",
    ]);
    (out.join("profile.toml"), run)
}

#[test]
fn every_json_document_matches_the_schema_and_yaml_says_the_same() {
    // prod2 asks for an approval, so `approve` has something to approve.
    // prod2 is frozen for good, so `override-freeze` has something to pass.
    let gated_fleet = SAMPLE_FLEET.replace(
        "[environments.prod2]\n",
        "[environments.prod2]\nrequires_approval = true\nfreeze = [{ from = \"2020-01-01 00:00\", until = \"2099-01-01 00:00\" }]\n",
    );
    let dev = Coordinator::start_dev_with_fleet(&gated_fleet);
    let dir = TempDir::new("cli-json");
    let mut docs = Documents::default();

    let version = docs.read(&dev, "version", &["version"]);
    assert_eq!(version["client"], version["server"], "{version}");
    docs.acted(
        "release check",
        &dev.ok(&[
            "release",
            "check",
            "hello",
            "v1",
            "--name",
            "unit",
            "--passed",
            "--url",
            "https://ci.example.com/1",
            "-o",
            "json",
        ]),
    );
    let releases = docs.read(&dev, "release list", &["release", "list", "hello"]);
    let image = releases[0]["image_id"].as_str().unwrap().to_string();
    let added = docs.acted(
        "release add",
        &dev.ok(&[
            "release",
            "add",
            "hello",
            "v9",
            "--image",
            &image,
            "--commit",
            "3f2c1ab9d0e4",
            "--repository",
            "https://git.example.com/team/hello",
            "--build-url",
            "https://ci.example.com/jobs/41",
            "--built-by",
            "ci",
            "-o",
            "json",
        ]),
    );
    assert_eq!(added["provenance"]["commit"], "3f2c1ab9d0e4", "{added}");
    // A deployment of it carries where it came from.
    let v9 = dev
        .ok(&["deploy", "hello", "v9", "--env", "qaprod1", "-o", "json"])
        .json();
    assert_eq!(
        v9["provenance"]["build_url"], "https://ci.example.com/jobs/41",
        "{v9}"
    );
    dev.ok(&["cancel", v9["id"].as_str().unwrap()]);
    let deployed = docs.acted(
        "deploy",
        &dev.ok(&[
            "deploy", "hello", "v1", "--env", "staging", "--wait", "-o", "json",
        ]),
    );
    assert_eq!(deployed["phase"], "succeeded");
    assert_eq!(
        deployed["reason"],
        Value::Null,
        "absent is null: {deployed}"
    );
    let v2 = dev
        .ok(&[
            "deploy", "hello", "v2", "--env", "staging", "--wait", "-o", "json",
        ])
        .json();
    let diff = docs.read(
        &dev,
        "diff",
        &[
            "diff",
            deployed["id"].as_str().unwrap(),
            v2["id"].as_str().unwrap(),
        ],
    );
    assert_eq!(
        diff["same"], true,
        "v1 and v2 on staging push the same config: {diff}"
    );
    docs.acted(
        "rollback",
        &dev.ok(&[
            "rollback", "hello", "--env", "staging", "--wait", "-o", "json",
        ]),
    );
    dev.ok(&["deploy", "hello", "v1", "--env", "prod1", "--wait"]);
    docs.acted(
        "promote",
        &dev.ok(&[
            "promote",
            "hello",
            "--to",
            "prod1",
            // prod2, the other end of the record, is frozen.
            "--override-freeze",
            "the schema test",
            "-o",
            "json",
        ]),
    );

    // Two on qaprod1: the first in flight, the second queued behind it, as
    // `status` shows them; then the second is cancelled. A request held open
    // on qaprod1's v1 instance keeps the first draining until it closes, so
    // the second is still queued when the cancel arrives.
    dev.ok(&["deploy", "hello", "v1", "--env", "qaprod1", "--wait"]);
    let held = dev.hold_request("qaprod1");
    let first = dev.enqueue("v2", "qaprod1");
    let second = dev.enqueue("v1", "qaprod1");
    let qaprod1 = eventually(
        "status to show the deployment in flight",
        Duration::from_secs(20),
        || {
            let env = dev.environment("qaprod1");
            (env["in_flight"]["id"] == first.as_str() && env["queued"] == 1).then_some(env)
        },
    );
    assert_eq!(qaprod1["in_flight"]["environment"], "qaprod1", "{qaprod1}");
    // A deployment in flight holds to the schema too, inside `status`.
    docs.acted(
        "status PROJECT",
        &dev.ok(&["status", "hello", "-o", "json"]),
    );
    docs.read(&dev, "queue", &["queue"]);
    docs.acted("cancel", &dev.ok(&["cancel", &second, "-o", "json"]));
    drop(held);
    dev.wait_finished(&first, Duration::from_secs(60));

    docs.read(&dev, "show", &["show", &first]);
    docs.read(&dev, "deployments", &["deployments"]);
    docs.read(
        &dev,
        "deployments",
        &["deployments", "hello", "--env", "staging"],
    );
    docs.read(&dev, "status", &["status"]);
    docs.read(&dev, "status PROJECT", &["status", "hello"]);
    docs.read(&dev, "agents", &["agents", "hello"]);

    // One answer for an agent's state: `status` and `agents` agree. Each
    // reads the agent as it is at that moment, so `agents` is read between
    // two `status` runs and compared only when no agent changed state between
    // them (a CI machine once stalled an agent's heartbeats past
    // `agent_lost_after` for a moment).
    let agent_states = |status: &Value| -> Vec<(String, String)> {
        let mut states = Vec::new();
        for env in status["environments"].as_array().unwrap() {
            for instance in env["instances"].as_array().unwrap() {
                assert_eq!(instance["services"][0]["name"], "web", "{instance}");
                states.push((
                    instance["instance_id"].as_str().unwrap().to_string(),
                    instance["agent"].as_str().unwrap().to_string(),
                ));
            }
        }
        states
    };
    let (states, agents) = (0..5)
        .find_map(|_| {
            let before = agent_states(&dev.ok(&["status", "hello", "-o", "json"]).json());
            let agents = dev.ok(&["agents", "hello", "-o", "json"]).json();
            let after = agent_states(&dev.ok(&["status", "hello", "-o", "json"]).json());
            (before == after).then_some((after, agents))
        })
        .expect("an agent changed state between every two `status` runs");
    assert!(!states.is_empty(), "status shows no instance of hello");
    for (id, state) in &states {
        let agent = agents
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["instance_id"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} not in agents: {agents}"));
        assert_eq!(agent["agent"], state.as_str(), "{agent} vs {id}: {state}");
    }

    docs.read(&dev, "infra plan", &["infra", "plan"]);
    docs.read(&dev, "infra orphans", &["infra", "orphans"]);
    let new_fleet = dir.path().join("fleet.toml");
    std::fs::write(
        &new_fleet,
        gated_fleet.replace("hello from prod1", "hello again from prod1"),
    )
    .unwrap();
    let fleet_changes = docs.read(
        &dev,
        "fleet diff",
        &["fleet", "diff", new_fleet.to_str().unwrap()],
    );
    assert!(
        fleet_changes
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "hello/prod1: ~ GREETING: hello from prod1 -> hello again from prod1"),
        "{fleet_changes}"
    );
    let applied = docs.acted(
        "fleet apply",
        &dev.ok(&["fleet", "apply", new_fleet.to_str().unwrap(), "-o", "json"]),
    );
    assert_eq!(applied["generation"], 2, "{applied}");
    docs.acted("infra apply", &dev.ok(&["infra", "apply", "-o", "json"]));
    docs.acted(
        "secret set",
        &dev.cli_with_stdin(
            &["secret", "set", "staging", "TOKEN", "-o", "json"],
            "s3cret",
        ),
    );
    docs.read(&dev, "secret list", &["secret", "list", "staging"]);
    docs.acted(
        "secret delete",
        &dev.ok(&["secret", "delete", "staging", "TOKEN", "-o", "json"]),
    );
    docs.acted(
        "secret rotate-key",
        &dev.ok(&["secret", "rotate-key", "-o", "json"]),
    );
    let (_, issued) = issue(&dev, &dir, "vera", "viewer");
    docs.acted("cert issue", &issued);
    let (dora, _) = issue(&dev, &dir, "dora", "deployer");
    let gated = dev.enqueue("v1", "prod2");
    let approved = docs.acted(
        "approve",
        &dev.cli_as(&dora, &["approve", &gated, "-o", "json"]),
    );
    assert_eq!(approved["approved_by"], "dora", "{approved}");
    let passed = docs.acted(
        "override-freeze",
        &dev.ok(&[
            "override-freeze",
            &gated,
            "--reason",
            "incident 7",
            "-o",
            "json",
        ]),
    );
    assert_eq!(
        passed["passes_freeze"], "freeze overridden by admin: incident 7",
        "{passed}"
    );
    docs.acted("revoke", &dev.ok(&["revoke", "vera", "-o", "json"]));
    docs.read(&dev, "notifications", &["notifications"]);
    // `events` prints one object per line: each is a document.
    let events = dev.ok(&["events", "-o", "json"]).stdout;
    assert!(events.lines().count() > 10, "{events}");
    // Events about v9 say where it came from; the others say nothing.
    for event in json_lines(&events) {
        let about_v9 = event["version"] == "v9";
        assert_eq!(
            event["provenance"]["commit"] == "3f2c1ab9d0e4",
            about_v9,
            "{event}"
        );
    }
    for line in events.lines() {
        docs.0.push(("events".into(), line.to_string(), None));
    }
    let logs = dev
        .ok(&["logs", "hello", "--env", "staging", "-o", "json"])
        .stdout;
    assert!(logs.lines().count() >= 1, "{logs}");
    for line in logs.lines() {
        docs.0.push(("logs".into(), line.to_string(), None));
    }
    let audit = docs.read(&dev, "audit", &["audit"]);
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "secret delete" && e["target"] == "staging/TOKEN"),
        "secret delete is audited: {audit}"
    );
    docs.read(&dev, "audit verify", &["audit", "verify"]);
    docs.read(&dev, "audit anchor", &["audit", "anchor"]);
    let minted = docs.acted(
        "dashboard url",
        &dev.ok(&["dashboard", "url", "--name", "tv", "-o", "json"]),
    );
    docs.read(&dev, "dashboard tokens", &["dashboard", "tokens"]);
    docs.acted(
        "dashboard revoke",
        &dev.ok(&[
            "dashboard",
            "revoke",
            minted["id"].as_str().unwrap(),
            "-o",
            "json",
        ]),
    );
    // The CA last: once a rotation ends, a profile that did not renew is
    // refused, so the admin's renews first, as an operator's would.
    docs.read(&dev, "ca status", &["ca", "status"]);
    docs.acted("ca rotate", &dev.ok(&["ca", "rotate", "-o", "json"]));
    docs.acted("cert renew", &dev.ok(&["cert", "renew", "-o", "json"]));
    let finished = docs.acted(
        "ca finish",
        &dev.ok(&["ca", "finish", "--force", "-o", "json"]),
    );
    assert!(finished["previous"].is_null(), "{finished}");
    // The agents it was forced past still hold the old CA's certificates.
    let after = docs.read(&dev, "ca status", &["ca", "status"]);
    assert!(
        !after["agents_on_retired"].as_array().unwrap().is_empty(),
        "{after}"
    );

    // Every command the schema lists was run, and every command `--help` lists
    // prints a document the schema knows (or is one that prints none).
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("cli/schema.json")).unwrap())
            .unwrap();
    let listed: Vec<&String> = schema["$defs"]["commands"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    for command in &listed {
        assert!(
            docs.0.iter().any(|(c, ..)| c == *command),
            "no test ran `{command}` with -o json"
        );
    }
    let help = dev.ok(&["--help"]).stdout;
    let printing_none = ["completion", "help"];
    let top: Vec<&str> = help
        .split("Commands:")
        .nth(1)
        .unwrap()
        .split("Options:")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(top.len() >= 17, "{help}");
    for command in top {
        assert!(
            printing_none.contains(&command)
                || listed.iter().any(|l| l.split(' ').next() == Some(command)),
            "`slipway {command}` has no document in cli/schema.json"
        );
    }
    docs.check();
}

#[test]
fn each_exit_code_is_produced_by_what_it_names() {
    let fleet = SAMPLE_FLEET.replace("drain = \"10s\"", "drain = \"120s\"");
    assert!(fleet.contains("drain = \"120s\""));
    let dev = Coordinator::start_dev_with_fleet(&fleet);
    let dir = TempDir::new("cli-exit");

    // 2: usage.
    dev.exits(2, &["deploy", "hello"]);
    dev.exits(2, &["show", "d-1", "--timeout", "1s"]);
    dev.exits(
        2,
        &[
            "deploy",
            "hello",
            "v1",
            "--env",
            "staging",
            "--wait",
            "--timeout",
            "soon",
        ],
    );

    // 0 and 3: a waited deployment that succeeds, then one that rolls back.
    dev.exits(0, &["deploy", "hello", "v1", "--env", "staging", "--wait"]);
    let broken = dev.exits(
        3,
        &["deploy", "hello", "broken", "--env", "staging", "--wait"],
    );
    assert!(broken.stderr.contains("rolled_back"), "{}", broken.stderr);

    // 5: not found, naming what exists.
    let typo = dev.exits(5, &["deployments", "helo"]);
    assert!(typo.stderr.contains("known are hello"), "{}", typo.stderr);
    dev.exits(5, &["agents", "helo"]);
    dev.exits(5, &["status", "helo"]);
    dev.exits(5, &["secret", "list", "stagin"]);
    dev.exits(5, &["show", "d-999"]);
    dev.exits(5, &["deployments", "--env", "stagin"]);
    let events = dev.exits(5, &["events", "--project", "helo"]);
    assert!(
        events.stderr.contains("known are hello"),
        "{}",
        events.stderr
    );
    dev.exits(5, &["events", "--env", "prod3"]);
    dev.exits(5, &["events", "--deployment", "d-999"]);
    let version = dev.exits(5, &["deploy", "hello", "v22", "--env", "staging"]);
    assert!(
        version.stderr.contains("known versions of hello") && version.stderr.contains("v2"),
        "{}",
        version.stderr
    );

    // 4: refused by role, and by state (a finished deployment cannot be cancelled).
    let (viewer, _) = issue(&dev, &dir, "vera", "viewer");
    let refused = dev.cli_as(&viewer, &["deploy", "hello", "v1", "--env", "staging"]);
    assert_eq!(refused.code, Some(4), "{}", refused.stderr);
    let finished = dev
        .ok(&["deployments", "--limit", "1", "-o", "json"])
        .json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    dev.exits(4, &["cancel", &finished]);

    // A request held open on staging's v1 instance keeps the next deployment
    // there draining (the fleet's drain deadline is far away) until it closes.
    let held = dev.hold_request("staging");

    // 7: --timeout passes; the deployment goes on.
    let timed_out = dev.exits(
        7,
        &[
            "deploy",
            "hello",
            "v2",
            "--env",
            "staging",
            "--wait",
            "--timeout",
            "2s",
        ],
    );
    let id = timed_out
        .stdout
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_end_matches(':')
        .to_string();
    assert!(
        timed_out
            .stderr
            .contains(&format!("slipway show {id} --follow")),
        "{}",
        timed_out.stderr
    );
    assert_eq!(dev.deployment(&id)["finished"], false);
    // Re-attached with `show --follow`, the same timeout means the same exit.
    let again = dev.exits(7, &["show", &id, "--follow", "--timeout", "1s"]);
    assert!(
        again.stderr.contains(&format!("slipway cancel {id}")),
        "{}",
        again.stderr
    );

    // 6: a deployment a follower waits on is cancelled.
    let behind = dev.enqueue("v1", "staging");
    let follower = dev.cli_in_background(&["show", &behind, "--follow"]);
    std::thread::sleep(Duration::from_secs(1));
    dev.ok(&["cancel", &behind]);
    let cancelled = follower.finish();
    assert_eq!(
        cancelled.code,
        Some(6),
        "{}{}",
        cancelled.stdout,
        cancelled.stderr
    );

    // 9: Ctrl-C while following: the deployment goes on, and the CLI says how
    // to get back to it.
    let follower = dev.cli_in_background(&["show", &id, "--follow"]);
    std::thread::sleep(Duration::from_secs(2));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(follower.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let interrupted = follower.finish();
    assert_eq!(
        interrupted.code,
        Some(9),
        "{}{}",
        interrupted.stdout,
        interrupted.stderr
    );
    assert!(
        interrupted.stderr.contains(&format!("slipway cancel {id}")),
        "{}",
        interrupted.stderr
    );
    assert_eq!(
        dev.deployment(&id)["finished"],
        false,
        "Ctrl-C stops the watching only"
    );

    // The client goes away; `show --follow` re-attaches and sees it succeed.
    drop(held);
    let followed = dev.exits(0, &["show", &id, "--follow"]);
    assert!(followed.stdout.contains("succeeded"), "{}", followed.stdout);

    // 8: unreachable, and a coordinator this profile does not trust.
    let profile = std::fs::read_to_string(dev.profile()).unwrap();
    let absolute = profile
        .replace("= \"ca/", &format!("= \"{}/ca/", dev.data_dir().display()))
        .replace(
            "= \"operators/",
            &format!("= \"{}/operators/", dev.data_dir().display()),
        );
    let closed_port = dir.path().join("closed.toml");
    std::fs::write(&closed_port, absolute.replace(&dev.listen, "127.0.0.1:1")).unwrap();
    let away = dev.cli_as(&closed_port, &["status"]);
    assert_eq!(away.code, Some(8), "{}", away.stderr);
    assert!(away.stderr.contains("is it running"), "{}", away.stderr);
    let stranger = rcgen::generate_simple_self_signed(vec!["stranger".into()]).unwrap();
    let other_ca = dir.path().join("other-ca.toml");
    let ca_line = absolute
        .lines()
        .find(|l| l.starts_with("ca = "))
        .unwrap()
        .to_string();
    std::fs::write(
        &other_ca,
        absolute.replace(
            &ca_line,
            &format!("ca_pem = '''\n{}'''", stranger.cert.pem()),
        ),
    )
    .unwrap();
    let untrusted = dev.cli_as(&other_ca, &["status"]);
    assert_eq!(untrusted.code, Some(8), "{}", untrusted.stderr);
    assert!(
        untrusted.stderr.contains("not one this profile trusts"),
        "{}",
        untrusted.stderr
    );

    // 4: a fleet file that is not valid is refused whole, naming the key.
    let bad_fleet = dir.path().join("bad-fleet.toml");
    std::fs::write(
        &bad_fleet,
        SAMPLE_FLEET.replace("instance_port = 8080", "instance_port = 0"),
    )
    .unwrap();
    let refused = dev.exits(4, &["fleet", "diff", bad_fleet.to_str().unwrap()]);
    assert!(
        refused.stderr.contains("projects.hello.instance_port"),
        "{}",
        refused.stderr
    );

    // 1: anything else, e.g. a file that cannot be written.
    let unwritable = dir.path().join("missing/anchor.txt");
    dev.exits(
        1,
        &["audit", "anchor", "--out", unwritable.to_str().unwrap()],
    );

    // The codes are documented where a user looks.
    let help = dev.ok(&["--help"]).stdout;
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    for line in [
        "3  rolled back",
        "4  refused",
        "5  not found",
        "6  cancelled",
        "7  timed out",
        "8  unreachable",
        "9  in flight",
    ] {
        assert!(help.contains(line), "--help lacks {line:?}");
        assert!(readme.contains(line), "README lacks {line:?}");
    }
}

/// Runs `slipway ARGS` on a pseudo-terminal (util-linux `script`), with
/// `stdin` typed into it after a second; returns what the terminal showed.
fn on_terminal(dev: &Coordinator, args: &str, env: &[(&str, &str)], stdin: &str) -> String {
    let command = format!(
        "{} --profile {} {args}",
        binary("slipway").display(),
        dev.profile().display()
    );
    let typed = format!("sleep 1; printf '{stdin}'");
    let mut feeder = Command::new("sh")
        .args(["-c", &typed])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_remove("NO_COLOR")
        .envs(env.iter().copied())
        .stdin(feeder.stdout.take().unwrap())
        .output()
        .expect("run script(1)");
    feeder.wait().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn profiles_tables_colour_completion_and_secrets_behave_as_people_expect() {
    let dev = Coordinator::start();
    let dir = TempDir::new("cli-people");
    dev.exits(
        3,
        &["deploy", "hello", "broken", "--env", "staging", "--wait"],
    );

    // Tables fit 120 columns; `-o wide` shows whole cells.
    let narrow = dev.ok(&["deployments"]).stdout;
    assert!(narrow.lines().all(|l| l.chars().count() <= 120), "{narrow}");
    let wide = dev.ok(&["deployments", "-o", "wide"]).stdout;
    assert!(wide.lines().any(|l| l.chars().count() > 120), "{wide}");

    // Colour on a terminal only, and never under NO_COLOR or in a pipe.
    assert!(!narrow.contains('\u{1b}'), "{narrow}");
    let coloured = on_terminal(&dev, "deployments", &[], "");
    assert!(coloured.contains("\u{1b}[31mrolled_back"), "{coloured:?}");
    let plain = on_terminal(&dev, "deployments", &[("NO_COLOR", "1")], "");
    assert!(
        plain.contains("rolled_back") && !plain.contains('\u{1b}'),
        "{plain:?}"
    );

    // `secret set` on a terminal prompts and does not echo the value.
    let prompted = on_terminal(&dev, "secret set staging PROMPTED", &[], "hidden-value\\n");
    assert!(prompted.contains("(not shown)"), "{prompted:?}");
    assert!(
        !prompted.contains("hidden-value"),
        "the value was echoed: {prompted:?}"
    );
    let names = dev.ok(&["secret", "list", "staging"]).stdout;
    assert!(names.contains("PROMPTED"), "{names}");

    // A profile carries its certificates inline and works from anywhere; a
    // copied one with relative paths says why it broke.
    let text = std::fs::read_to_string(dev.profile()).unwrap();
    let pem = |key: &str, file: &str| {
        format!(
            "{key}_pem = '''\n{}'''\n",
            std::fs::read_to_string(dev.data_dir().join(file)).unwrap()
        )
    };
    let head: String = text
        .lines()
        .filter(|l| l.starts_with("coordinator") || l.starts_with("server_name"))
        .map(|l| format!("{l}\n"))
        .collect();
    let inline = dir.path().join("inline.toml");
    std::fs::write(
        &inline,
        format!(
            "{head}{}{}{}",
            pem("ca", "ca/ca.pem"),
            pem("certificate", "operators/admin/cert.pem"),
            pem("key", "operators/admin/key.pem")
        ),
    )
    .unwrap();
    let from_inline = dev.cli_as(&inline, &["status", "hello"]);
    assert!(from_inline.success, "{}", from_inline.stderr);
    let copied = dir.path().join("copied.toml");
    std::fs::copy(dev.profile(), &copied).unwrap();
    let broken = dev.cli_as(&copied, &["status"]);
    assert_eq!(broken.code, Some(1), "{}", broken.stderr);
    assert!(
        broken.stderr.contains("profile copied elsewhere"),
        "{}",
        broken.stderr
    );

    // Completion needs no coordinator; versions name both sides.
    let completion = Command::new(binary("slipway"))
        .args(["completion", "bash"])
        .env("SLIPWAY_PROFILE", "/nonexistent/profile.toml")
        .output()
        .unwrap();
    let script = String::from_utf8_lossy(&completion.stdout);
    assert!(
        completion.status.success()
            && script.contains("_slipway")
            && script.contains("deployments"),
        "{script}"
    );
    for (shell, says) in [("zsh", "#compdef slipway"), ("fish", "complete -c slipway")] {
        let completion = Command::new(binary("slipway"))
            .args(["completion", shell])
            .env("SLIPWAY_PROFILE", "/nonexistent/profile.toml")
            .output()
            .unwrap();
        let script = String::from_utf8_lossy(&completion.stdout);
        assert!(
            completion.status.success() && script.contains(says) && script.contains("dashboard"),
            "{shell}: {script}"
        );
    }
    let version = dev.ok(&["version"]).stdout;
    assert!(
        version.contains(&format!("client: {}", env!("CARGO_PKG_VERSION")))
            && version.contains(&format!("coordinator: {}", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
}

#[test]
fn a_restarted_dev_coordinator_keeps_its_port_its_agents_and_dense_ids() {
    let mut dev = Coordinator::start();
    let port = dev.listen.clone();
    dev.ok(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);
    let first = dev.enqueue("v2", "staging");
    dev.wait_finished(&first, Duration::from_secs(60));

    // `--listen 127.0.0.1:0` again, as README starts it: the same port, said so,
    // and the running agent reconnects to it.
    let said = dev.restart_listening("127.0.0.1:0");
    assert_eq!(dev.listen, port, "{said}");
    assert!(said.contains("keeping port"), "{said}");
    eventually("the agent to reconnect", Duration::from_secs(30), || {
        let agents = dev.ok(&["agents", "-o", "json"]).json();
        (agents[0]["agent"] == "connected").then_some(())
    });
    let next = dev.enqueue("v1", "staging");
    let number = |id: &str| id.trim_start_matches("d-").parse::<u64>().unwrap();
    assert_eq!(
        number(&next),
        number(&first) + 1,
        "ids stay dense: {first} then {next}"
    );
    dev.wait_finished(&next, Duration::from_secs(60));

    // Another explicit port is taken, with a warning about the agents.
    let said = dev.restart_listening(&format!("127.0.0.1:{}", free_port()));
    assert!(said.contains("orphaned"), "{said}");

    // `down` takes its flags after it too, and stops the coordinator as well.
    let down = Command::new(binary("slipway-coordinator"))
        .arg("down")
        .arg("--data-dir")
        .arg(dev.data_dir())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&down.stdout);
    assert!(
        down.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert!(text.contains("coordinator (pid"), "{text}");
    let pid = dev.pid().unwrap();
    eventually("the coordinator to exit", Duration::from_secs(30), || {
        (!Path::new(&format!("/proc/{pid}")).exists() || slipway_common::process::is_zombie(pid))
            .then_some(())
    });
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A dev coordinator whose staging serves v1 with a request held open on
/// it, so the next deployment there stays draining (for at most 120 s) until
/// the request is dropped.
fn staging_on_v1_held_open() -> (Coordinator, std::net::TcpStream) {
    let fleet = SAMPLE_FLEET.replace("drain = \"10s\"", "drain = \"120s\"");
    let dev = Coordinator::start_dev_with_fleet(&fleet);
    dev.ok(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);
    let held = dev.hold_request("staging");
    (dev, held)
}

#[test]
fn a_wait_says_at_once_that_the_coordinator_went_away_and_follows_on_when_it_is_back() {
    // A request held open keeps v2's deployment draining while the coordinator is away.
    let (mut dev, held) = staging_on_v1_held_open();
    let id = dev.enqueue("v2", "staging");
    eventually("v2 to drain", Duration::from_secs(30), || {
        (dev.deployment(&id)["phase"] == "draining").then_some(())
    });
    let follower = dev.cli_in_background(&["show", &id, "--follow"]);
    std::thread::sleep(Duration::from_secs(1));
    dev.kill();
    std::thread::sleep(Duration::from_secs(2));
    dev.crash_and_restart();
    drop(held);
    let followed = follower.finish();
    assert_eq!(
        followed.code,
        Some(0),
        "{}{}",
        followed.stdout,
        followed.stderr
    );
    let lost = followed
        .stdout
        .find("lost the coordinator")
        .unwrap_or_else(|| {
            panic!(
                "nothing said while the coordinator was away: {}",
                followed.stdout
            )
        });
    let back = followed.stdout.find("the coordinator is back").unwrap();
    let done = followed.stdout.find("succeeded: hello@v2").unwrap();
    assert!(lost < back && back < done, "{}", followed.stdout);
}

#[test]
fn deploy_wait_says_the_deployment_goes_on_when_interrupted_or_when_the_coordinator_stays_away() {
    let (mut dev, held) = staging_on_v1_held_open();
    // The deployment a waiting CLI queued: the unfinished one of `version`
    // (v1 also names the first, finished deploy).
    let waiting = |dev: &Coordinator, version: &str| {
        let waiter =
            dev.cli_in_background(&["deploy", "hello", version, "--env", "staging", "--wait"]);
        let id = eventually(
            "the deployment to be queued",
            Duration::from_secs(20),
            || {
                let listed = dev.ok(&["deployments", "-o", "json"]).json();
                listed
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|d| d["version"] == version && d["finished"] == false)
                    .map(|d| d["id"].as_str().unwrap().to_string())
            },
        );
        (waiter, id)
    };
    // Ctrl-C: 9, the deployment goes on, and how to follow or cancel it.
    let (waiter, first) = waiting(&dev, "v2");
    eventually("v2 to drain", Duration::from_secs(30), || {
        (dev.deployment(&first)["phase"] == "draining").then_some(())
    });
    let interrupted = waiter.interrupt();
    assert_eq!(
        interrupted.code,
        Some(9),
        "{}{}",
        interrupted.stdout,
        interrupted.stderr
    );
    for told in [
        format!("slipway show {first} --follow"),
        format!("slipway cancel {first}"),
    ] {
        assert!(interrupted.stderr.contains(&told), "{}", interrupted.stderr);
    }
    assert_eq!(dev.deployment(&first)["finished"], false);
    // The coordinator stopped (SIGTERM) and not back: said at once, then 9
    // once the CLI gives up on it, with the same two commands.
    let (waiter, second) = waiting(&dev, "v1");
    dev.terminate(Duration::from_secs(45));
    let gave_up = waiter.finish();
    assert_eq!(
        gave_up.code,
        Some(9),
        "{}{}",
        gave_up.stdout,
        gave_up.stderr
    );
    assert!(
        gave_up.stdout.contains("lost the coordinator"),
        "{}",
        gave_up.stdout
    );
    for told in [
        format!("slipway show {second} --follow"),
        format!("slipway cancel {second}"),
    ] {
        assert!(gave_up.stderr.contains(&told), "{}", gave_up.stderr);
    }
    drop(held);
}

#[test]
fn events_follow_a_deploy_phase_by_phase_and_resume_after_the_last_seen() {
    let mut dev = Coordinator::start();
    // Started before the deploy; from the first event, so none is missed
    // however long it takes to connect.
    let follower = dev.cli_in_background(&["events", "--follow", "-o", "json"]);
    let deployed = dev
        .ok(&[
            "deploy", "hello", "v1", "--env", "staging", "--wait", "-o", "json",
        ])
        .json();
    let id = deployed["id"].as_str().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let followed = follower.interrupt();
    assert_eq!(
        followed.code,
        Some(0),
        "Ctrl-C ends a follow: {}",
        followed.stderr
    );
    let events = json_lines(&followed.stdout);
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "every event once, in order: {}",
        followed.stdout
    );
    // Each phase of the deployment, in order, within a second of its stored time.
    let of_it: Vec<&Value> = events.iter().filter(|e| e["deployment"] == id).collect();
    let kinds: Vec<String> = of_it
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .filter(|k| k != "migration.finished")
        .collect();
    let stored = phases(&deployed);
    let expected: Vec<String> = stored
        .iter()
        .map(|(phase, _)| format!("deployment.{phase}"))
        .collect();
    assert_eq!(kinds, expected, "{}", followed.stdout);
    for (event, (phase, at)) in of_it
        .iter()
        .filter(|e| e["kind"] != "migration.finished")
        .zip(&stored)
    {
        let told = event["at_ms"].as_i64().unwrap();
        assert!(
            (told - at).abs() <= 1000,
            "{phase} stored at {at}, told at {told}"
        );
    }

    // Resumed after the third one it printed: the rest, none twice.
    let rest = json_lines(&dev.ok(&["events", "--since", "3", "-o", "json"]).stdout);
    assert_eq!(rest, events[3..].to_vec());

    // A follow across a kill -9 of the coordinator goes on where it was.
    let follower = dev.cli_in_background(&[
        "events",
        "--follow",
        "--since",
        &seqs.len().to_string(),
        "-o",
        "json",
    ]);
    // Connected (a CLI connects in milliseconds) before the kill.
    std::thread::sleep(Duration::from_secs(1));
    dev.crash_and_restart();
    let again = dev
        .ok(&[
            "deploy", "hello", "v2", "--env", "staging", "--wait", "-o", "json",
        ])
        .json();
    std::thread::sleep(Duration::from_millis(500));
    let followed = follower.interrupt();
    let after = json_lines(&followed.stdout);
    let first = seqs.len() as u64 + 1;
    let seqs: Vec<u64> = after.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs,
        (first..first + seqs.len() as u64).collect::<Vec<_>>(),
        "{}{}",
        followed.stdout,
        followed.stderr
    );
    assert!(
        after
            .iter()
            .any(|e| e["deployment"] == again["id"] && e["kind"] == "deployment.succeeded"),
        "{}{}",
        followed.stdout,
        followed.stderr
    );
    // Filters, and the line a person reads.
    let text = dev.ok(&["events", "--deployment", id]).stdout;
    assert_eq!(text.lines().count(), of_it.len(), "{text}");
    assert!(
        text.contains(&format!("hello v1 → staging ({id}): succeeded")),
        "{text}"
    );
}

#[test]
fn a_profile_with_several_coordinators_reaches_whichever_answers() {
    let dev = Coordinator::start();
    let closed = || {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        format!("https://127.0.0.1:{port}")
    };
    let (down, also_down) = (closed(), closed());
    let live = format!("https://{}", dev.listen);
    let profile = std::fs::read_to_string(dev.profile()).unwrap();
    let with = |name: &str, first: &str, others: &[&str]| {
        let text = profile.replace(&format!("coordinator = \"{live}\""), "")
            + &format!("coordinator = \"{first}\"\nother_coordinators = {others:?}\n");
        let path = dev.data_dir().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };

    // The first one down: the next one answers.
    let first_down = with("first-down.toml", &down, &[&live]);
    let run = dev.cli_as(&first_down, &["status", "hello", "-o", "json"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    // The other one down: the first answers, the other is never needed.
    let other_down = with("other-down.toml", &live, &[&down]);
    assert_eq!(dev.cli_as(&other_down, &["status", "hello"]).code, Some(0));
    // Every one down: unreachable (8), naming each.
    let all_down = with("all-down.toml", &down, &[&also_down]);
    let run = dev.cli_as(&all_down, &["status", "hello"]);
    assert_eq!(run.code, Some(8), "{}", run.stderr);
    assert!(
        run.stderr.contains(&down) && run.stderr.contains(&also_down),
        "{}",
        run.stderr
    );
    // A plaintext one among them is refused before any call.
    let plain = with("plain.toml", &live, &["http://127.0.0.1:1"]);
    let run = dev.cli_as(&plain, &["status", "hello"]);
    assert!(
        run.stderr.contains("must start with https://"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_deploy_retried_with_its_request_id_after_its_answer_was_lost_makes_one_deployment() {
    let mut dev = Coordinator::start();
    let deploy = |id: &'static str| {
        [
            "deploy",
            "hello",
            "v1",
            "--env",
            "staging",
            "--request-id",
            id,
            "-o",
            "json",
        ]
    };
    // The coordinator stores the deployment and its answer, then holds the
    // answer back; CI's step times out and kills the CLI.
    let first = deploy("ci-run-7");
    let waiting = dev.pause_at("request/answered", |dev| dev.cli_in_background(&first));
    let killed = waiting.kill();
    assert!(killed.stdout.is_empty(), "{}", killed.stdout);
    let of_v1 = |dev: &Coordinator| -> Vec<Value> {
        dev.ok(&["deployments", "-o", "json"])
            .json()
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| {
                d["project"] == "hello" && d["environment"] == "staging" && d["version"] == "v1"
            })
            .cloned()
            .collect()
    };
    let stored = of_v1(&dev);
    assert_eq!(stored.len(), 1, "{stored:?}");

    // The retry with the same id gets the first answer and acts no more.
    let retried = dev.ok(&first).json();
    assert_eq!(retried["id"], stored[0]["id"], "{retried}");
    assert_eq!(of_v1(&dev).len(), 1);
    // The answer is kept in the store: a coordinator restarted (it pauses
    // nowhere now) gives it again too.
    dev.crash_and_restart();
    let after_restart = dev.ok(&first).json();
    assert_eq!(after_restart["id"], stored[0]["id"], "{after_restart}");
    assert_eq!(of_v1(&dev).len(), 1);

    // Another id acts again. Without one, the CLI makes one: a quick answer
    // needs it not, and says nothing more.
    let other = dev.ok(&deploy("ci-run-8")).json();
    assert_ne!(other["id"], retried["id"]);
    let plain = dev.ok(&["deploy", "hello", "v1", "--env", "staging"]);
    assert!(!plain.stderr.contains("request id"), "{}", plain.stderr);
    assert_eq!(of_v1(&dev).len(), 3);

    // A slow answer: the CLI shows the id it made, and CI's log holds it
    // when the step is killed; a retry with it acts no more.
    let plain_deploy = ["deploy", "hello", "v1", "--env", "staging", "-o", "json"];
    let waiting = dev.pause_at("request/answered", |dev| {
        dev.cli_in_background(&plain_deploy)
    });
    // It shows it once the answer is 5 s late.
    std::thread::sleep(std::time::Duration::from_secs(7));
    let killed = waiting.kill();
    let made = request_id_in(&killed.stderr);
    assert_eq!(of_v1(&dev).len(), 4);
    dev.crash_and_restart();
    let again = dev
        .ok(&[
            "deploy",
            "hello",
            "v1",
            "--env",
            "staging",
            "--request-id",
            &made,
            "-o",
            "json",
        ])
        .json();
    assert_eq!(
        of_v1(&dev).len(),
        4,
        "the retry with the shown id acted again"
    );
    assert!(of_v1(&dev).iter().any(|d| d["id"] == again["id"]));

    // The coordinator dies under a call that acts: the outcome is unknown,
    // and the one-line failure (unreachable, 8) names the id to retry with.
    let waiting = dev.pause_at("request/answered", |dev| {
        dev.cli_in_background(&plain_deploy)
    });
    dev.kill();
    let lost = waiting.finish();
    assert_eq!(lost.code, Some(8), "{}", lost.stderr);
    assert_eq!(lost.stderr.trim().lines().count(), 1, "{}", lost.stderr);
    let named = request_id_in(&lost.stderr);
    dev.crash_and_restart();
    dev.ok(&[
        "deploy",
        "hello",
        "v1",
        "--env",
        "staging",
        "--request-id",
        &named,
    ]);
    assert_eq!(
        of_v1(&dev).len(),
        5,
        "the retry with the named id acted again"
    );

    // Killed after the deployment is stored and before its answer is: the
    // claim stored with the deployment answers the retry with it.
    let known: Vec<Value> = of_v1(&dev).iter().map(|d| d["id"].clone()).collect();
    let waiting = dev.pause_at("request/acted", |dev| {
        dev.cli_in_background(&deploy("ci-run-9"))
    });
    dev.kill();
    assert_eq!(waiting.finish().code, Some(8));
    dev.crash_and_restart();
    let made: Vec<Value> = of_v1(&dev)
        .iter()
        .map(|d| d["id"].clone())
        .filter(|id| !known.contains(id))
        .collect();
    assert_eq!(made.len(), 1, "the killed call stored its deployment");
    let retried = dev.ok(&deploy("ci-run-9")).json();
    assert_eq!(retried["id"], made[0], "{retried}");
    assert_eq!(of_v1(&dev).len(), 6, "the retry acted again");
    let rollback = [
        "rollback",
        "hello",
        "--env",
        "staging",
        "--request-id",
        "ci-back-1",
        "-o",
        "json",
    ];
    // A rollback likewise (from v2, once the queue has run to it).
    dev.ok(&["deploy", "hello", "v2", "--env", "staging", "--wait"]);
    let waiting = dev.pause_at("request/acted", |dev| dev.cli_in_background(&rollback));
    dev.kill();
    waiting.finish();
    dev.crash_and_restart();
    let count = dev
        .ok(&["deployments", "-o", "json"])
        .json()
        .as_array()
        .unwrap()
        .len();
    let back = dev.ok(&rollback).json();
    assert_eq!(
        dev.ok(&["deployments", "-o", "json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        count,
        "the rollback's retry acted again: {back}"
    );

    // An id that is not plain is refused (4), and nothing acts.
    let before_bad = of_v1(&dev).len();
    let bad = dev.cli(&[
        "deploy",
        "hello",
        "v1",
        "--env",
        "staging",
        "--request-id",
        "a b",
    ]);
    assert_eq!(bad.code, Some(4), "{}", bad.stderr);
    assert!(bad.stderr.contains("request id"), "{}", bad.stderr);
    assert_eq!(of_v1(&dev).len(), before_bad);
}

/// The request id the CLI made and showed in `stderr` (`r-` and 16 hex digits).
fn request_id_in(stderr: &str) -> String {
    stderr
        .split_whitespace()
        .find(|word| word.starts_with("r-") && word.len() == 18)
        .unwrap_or_else(|| panic!("no request id shown: {stderr}"))
        .to_string()
}
