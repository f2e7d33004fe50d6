//! Notifications reach real receivers: signed webhooks and Slack lines, at
//! least once and in order, across receivers that fail and a coordinator
//! killed while deliveries are pending; one never acknowledged is given up,
//! listed and audited.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use slipway_coordinator::sample::SAMPLE_FLEET;
use slipway_tests::receiver::Receiver;
use slipway_tests::{Coordinator, eventually};

const KEY: &str = "signing-key-3f9a";

/// The events a receiver acknowledged (answered 200), by delivery id, in order.
fn acknowledged(receiver: &Receiver) -> Vec<(String, Value)> {
    receiver
        .requests()
        .into_iter()
        .filter(|r| r["status"] == 200)
        .map(|r| {
            let body: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
            (
                r["headers"]["x-slipway-delivery"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                body,
            )
        })
        .collect()
}

/// Waits for every notification to have started. Each starts after the
/// newest event it finds, so an event is made first: each is past it then,
/// whichever side of it it started on.
fn sinks_started(c: &Coordinator) {
    let image = c.ok(&["release", "list", "hello", "-o", "json"]).json()[0]["image_id"]
        .as_str()
        .unwrap()
        .to_string();
    c.ok(&["release", "add", "hello", "v9", "--image", &image]);
    eventually(
        "the notifications to start",
        Duration::from_secs(20),
        || {
            let listed = c.ok(&["notifications", "-o", "json"]).json();
            (listed["notifications"]
                .as_array()
                .unwrap()
                .iter()
                .all(|n| n["cursor"].as_u64() > Some(0)))
            .then_some(())
        },
    );
}

/// One notification's state, as `slipway notifications -o json` lists it.
fn sink(c: &Coordinator, name: &str) -> Value {
    let listed = c.ok(&["notifications", "-o", "json"]).json();
    listed["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no notification {name}: {listed}"))
}

#[test]
fn webhooks_and_slack_get_each_event_at_least_once_in_order_through_failures_and_a_kill_9() {
    // The first three requests are answered 500.
    let hook = Receiver::start(KEY, 3);
    let chat = Receiver::start("", 0);
    let fleet = format!(
        r#"{SAMPLE_FLEET}
[notifications.ops]
kind = "webhook"
url = "{}"
signing_secret = "SIGNING_KEY"
events = ["deployment.succeeded", "deployment.rolled_back"]
headers = {{ X-Team = "ops" }}
secret_headers = {{ Authorization = "TRACKER_TOKEN" }}

[notifications.chat]
kind = "slack"
url_secret = "SLACK_URL"
events = ["deployment.rolled_back"]
environments = ["staging"]

[notifications.void]
kind = "webhook"
url = "http://127.0.0.1:1/never"
events = ["deployment.succeeded"]
give_up_after = "3s"
"#,
        hook.url("/hook")
    );
    let mut c = Coordinator::start_dev_with_fleet(&fleet);
    for (sink, key, value) in [
        ("ops", "SIGNING_KEY", KEY.to_string()),
        ("ops", "TRACKER_TOKEN", "Bearer tr4cker".to_string()),
        ("chat", "SLACK_URL", chat.url("/slack")),
    ] {
        let set = c.cli_with_stdin(&["secret", "set", sink, key], &value);
        assert!(set.success, "{}", set.stderr);
    }
    sinks_started(&c);

    let good = c
        .ok(&[
            "deploy", "hello", "v1", "--env", "staging", "--wait", "-o", "json",
        ])
        .json();
    let bad = c.cli(&[
        "deploy", "hello", "broken", "--env", "staging", "--wait", "-o", "json",
    ]);
    assert_eq!(bad.code, Some(3), "{}", bad.stderr);
    let bad = bad.json();

    // Three 500s, retried with backoff (1s, 2s, 4s), then both, in order.
    let delivered = eventually("both events acknowledged", Duration::from_secs(60), || {
        let got = acknowledged(&hook);
        (got.len() >= 2).then_some(got)
    });
    let events: Vec<(String, String)> = delivered
        .iter()
        .map(|(_, b)| {
            (
                b["event"]["deployment"].as_str().unwrap().to_string(),
                b["event"]["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            (
                good["id"].as_str().unwrap().to_string(),
                "deployment.succeeded".to_string()
            ),
            (
                bad["id"].as_str().unwrap().to_string(),
                "deployment.rolled_back".to_string()
            ),
        ]
    );
    let requests = hook.requests();
    let first_id = requests[0]["headers"]["x-slipway-delivery"].clone();
    assert!(
        requests[..4]
            .iter()
            .all(|r| r["headers"]["x-slipway-delivery"] == first_id),
        "retries carry the same delivery id: {requests:?}"
    );
    assert_eq!(
        requests
            .iter()
            .map(|r| r["status"].as_i64().unwrap())
            .take(4)
            .collect::<Vec<_>>(),
        [500, 500, 500, 200]
    );
    for r in &requests {
        assert_eq!(r["signed"], true, "a valid signature: {r}");
        assert_eq!(r["headers"]["x-team"], "ops");
        assert_eq!(r["headers"]["authorization"], "Bearer tr4cker");
        assert_eq!(r["headers"]["content-type"], "application/json");
    }
    let reason = delivered[1].1["event"]["reason"].as_str().unwrap();
    assert!(!reason.is_empty(), "the rollback's reason rides along");
    // Each attempt and how it went, as `notifications` lists them.
    let ops = sink(&c, "ops");
    let recent: Vec<(String, Value)> = ops["recent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["delivery"].as_str().unwrap().to_string(),
                a["error"].clone(),
            )
        })
        .collect();
    assert_eq!(recent.len(), 5, "{ops}");
    assert!(
        recent[..3]
            .iter()
            .all(|(id, e)| *id == first_id && e.as_str().unwrap().contains("answered 500")),
        "{ops}"
    );
    assert_eq!(
        recent[3],
        (first_id.as_str().unwrap().to_string(), Value::Null),
        "{ops}"
    );
    assert_eq!(ops["delivered"], 2, "{ops}");

    // Slack: one line a person reads.
    let slack = eventually("the chat line", Duration::from_secs(20), || {
        chat.requests().into_iter().next()
    });
    let text = serde_json::from_str::<Value>(slack["body"].as_str().unwrap()).unwrap()["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        text.starts_with(&format!(
            "hello broken → staging ({}): rolled back: ",
            bad["id"].as_str().unwrap()
        )),
        "{text}"
    );
    assert_eq!(chat.requests().len(), 1, "only what it asked for");

    // A receiver that fails while the coordinator is killed: nothing lost.
    hook.fail(true);
    // v2's image again, registered by CI with where it came from.
    let v2 = c.ok(&["release", "list", "hello", "-o", "json"]).json();
    let v2_image = v2
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["version"] == "v2")
        .unwrap()["image_id"]
        .as_str()
        .unwrap()
        .to_string();
    c.ok(&[
        "release",
        "add",
        "hello",
        "v2-ci",
        "--image",
        &v2_image,
        "--commit",
        "9d8e7f6a5b4c",
        "--build-url",
        "https://ci.example.com/jobs/7",
    ]);
    let third = c
        .ok(&[
            "deploy", "hello", "v2-ci", "--env", "staging", "--wait", "-o", "json",
        ])
        .json();
    eventually(
        "a failing attempt at the third",
        Duration::from_secs(20),
        || {
            let ops = sink(&c, "ops");
            (ops["attempts"].as_u64() > Some(0)
                && ops["last_error"]
                    .as_str()
                    .unwrap_or("")
                    .contains("answered 500")
                && ops["pending"] == 1
                && ops["next"][0]["kind"] == "deployment.succeeded"
                && ops["next"][0]["summary"]
                    .as_str()
                    .unwrap_or("")
                    .contains(third["id"].as_str().unwrap()))
            .then_some(())
        },
    );
    c.crash_and_restart();
    hook.fail(false);
    let all = eventually(
        "the third acknowledged after the restart",
        Duration::from_secs(60),
        || {
            let got = acknowledged(&hook);
            (got.len() >= 3).then_some(got)
        },
    );
    assert_eq!(all[2].1["event"]["deployment"], third["id"]);
    let provenance = &all[2].1["event"]["provenance"];
    assert_eq!(provenance["commit"], "9d8e7f6a5b4c", "{provenance}");
    assert_eq!(provenance["build_url"], "https://ci.example.com/jobs/7");
    assert_eq!(all[0].1["event"]["provenance"], Value::Null);
    let ids: Vec<&String> = all.iter().map(|(id, _)| id).collect();
    let unique: BTreeSet<&String> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "acknowledged once each: {ids:?}");

    // The sink that never answers gave up, listed and audited.
    let listed = eventually("void to give up", Duration::from_secs(30), || {
        let listed = c.ok(&["notifications", "-o", "json"]).json();
        (!listed["undelivered"].as_array().unwrap().is_empty()).then_some(listed)
    });
    let given_up = &listed["undelivered"][0];
    assert_eq!(given_up["notification"], "void", "{listed}");
    assert_eq!(given_up["kind"], "deployment.succeeded", "{listed}");
    // The wall screen shows it: the target's cell is red, naming the sink.
    let (_, token) = c.dashboard_url("wall");
    eventually(
        "the board to show the failure",
        Duration::from_secs(10),
        || {
            let board = c.board(&token);
            board["cells"]
                .as_array()
                .unwrap()
                .iter()
                .any(|cell| {
                    cell["alarm"].as_str().is_some_and(|a| {
                        a.starts_with("notification to void failed (deployment.succeeded)")
                    })
                })
                .then_some(())
        },
    );
    let audit = c
        .ok(&[
            "audit",
            "--action",
            "notification undelivered",
            "-o",
            "json",
        ])
        .json();
    assert!(!audit.as_array().unwrap().is_empty(), "{audit}");
    let text = c.ok(&["notifications"]).stdout;
    assert!(text.contains("ops") && text.contains("given up:"), "{text}");
    // With attempts, failures and a given-up event in it, the document still
    // holds to the schema (the CLI's own test sees only empty lists).
    let document = c.ok(&["notifications", "-o", "json"]).stdout;
    slipway_tests::check_documents(&[("notifications".into(), document, None)]);
}

#[test]
fn an_email_reaches_a_real_smtp_server_over_starttls_with_the_facts_in_it() {
    let server = slipway_tests::smtp::SmtpServer::start("slipway", "m4il-pass");
    let fleet = format!(
        r#"{SAMPLE_FLEET}
[notifications.changes]
kind = "email"
smtp = "127.0.0.1:{}"
from = "slipway@example.com"
to = ["changes@example.com", "ops@example.com"]
username = "slipway"
password_secret = "SMTP_PASSWORD"
ca_file = "{}"
events = ["deployment.rolled_back"]
"#,
        server.port,
        server.ca_file.display()
    );
    let c = Coordinator::start_dev_with_fleet(&fleet);
    // A wrong password first: refused, retried, and the reason shown.
    let set = c.cli_with_stdin(&["secret", "set", "changes", "SMTP_PASSWORD"], "wrong");
    assert!(set.success, "{}", set.stderr);
    sinks_started(&c);
    let bad = c.cli(&[
        "deploy", "hello", "broken", "--env", "staging", "--wait", "-o", "json",
    ]);
    assert_eq!(bad.code, Some(3), "{}", bad.stderr);
    let bad = bad.json();
    let failing = eventually("a refused login shown", Duration::from_secs(30), || {
        let listed = c.ok(&["notifications", "-o", "json"]).json();
        let sink = listed["notifications"][0].clone();
        (sink["attempts"].as_u64() > Some(0)).then_some(sink)
    });
    let error = failing["last_error"].as_str().unwrap();
    assert!(
        error.contains("smtp 127.0.0.1:") && error.to_lowercase().contains("auth"),
        "{failing}"
    );
    assert!(server.messages().is_empty());
    c.cli_with_stdin(&["secret", "set", "changes", "SMTP_PASSWORD"], "m4il-pass");
    let mail = eventually("the email", Duration::from_secs(30), || {
        server.messages().into_iter().next()
    });
    assert_eq!(mail["tls"], true, "STARTTLS before anything: {mail}");
    assert_eq!(mail["login"], "slipway", "{mail}");
    assert_eq!(mail["from"], "slipway@example.com");
    assert_eq!(
        mail["to"],
        serde_json::json!(["changes@example.com", "ops@example.com"])
    );
    let id = bad["id"].as_str().unwrap();
    let reason = bad["reason"].as_str().unwrap();
    assert_eq!(
        mail["subject"],
        format!("[slipway] hello broken → staging ({id}): rolled back: {reason}")
    );
    assert!(
        mail["message_id"]
            .as_str()
            .unwrap()
            .starts_with("<changes-"),
        "the delivery id, the same on every attempt: {mail}"
    );
    let body = mail["body"].as_str().unwrap();
    for fact in [
        format!("Deployment: {id}"),
        "Project: hello".to_string(),
        "Release: broken".to_string(),
        "Environment: staging".to_string(),
        format!("Reason: {reason}"),
    ] {
        assert!(body.contains(&fact), "{fact:?} not in:\n{body}");
    }
    assert_eq!(server.messages().len(), 1, "one event asked for, one email");
}
