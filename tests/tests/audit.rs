//! The audit log: every mutating action with who, which certificate, what, when
//! and how it ended; a hash chain that names the first edited entry.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::Value;
use slipway_coordinator::store::{Batch, SledStore, Store, Table, Write};
use slipway_tests::{Coordinator, eventually};

#[test]
fn every_mutating_action_is_audited_and_an_edited_entry_is_named() {
    let mut c = Coordinator::start();
    let id = c.enqueue("v1", "staging");
    c.ok(&["show", &id, "--follow"]);
    assert!(
        !c.cli(&["deploy", "hello", "v9", "--env", "staging"])
            .success
    );
    c.ok(&["release", "add", "hello", "v2"]);

    let log = c.ok(&["audit", "--output", "json"]).json();
    let entries = log.as_array().unwrap();
    let find = |action: &str, target: &str| {
        entries
            .iter()
            .find(|e| e["action"] == action && e["target"] == target)
            .unwrap_or_else(|| panic!("no {action} {target} in {log}"))
    };
    let deploy = find("deploy", "hello@v1 -> staging");
    assert_eq!(
        (&deploy["who"], &deploy["role"]),
        (&"admin".into(), &"admin".into())
    );
    assert_eq!(
        [
            &deploy["project"],
            &deploy["environment"],
            &deploy["version"],
            &deploy["deployment"]
        ],
        [
            &Value::from("hello"),
            &"staging".into(),
            &"v1".into(),
            &Value::from(id.as_str())
        ],
        "an entry says what it is about field by field: {deploy}"
    );
    assert_eq!(
        deploy["result"],
        format!("queued {id}"),
        "a deploy's entry says it was accepted, and as which deployment"
    );
    let by_target = c.ok(&["audit", "--target", &id, "--output", "json"]).json();
    assert_eq!(
        by_target.as_array().unwrap().len(),
        1,
        "--target finds the entry that names the deployment: {by_target}"
    );
    assert_eq!(by_target[0]["action"], "deploy");
    let by_who = c
        .ok(&[
            "audit", "--who", "admin", "--action", "deploy", "-o", "json",
        ])
        .json();
    assert!(
        !by_who.as_array().unwrap().is_empty()
            && by_who
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["action"] == "deploy"),
        "{by_who}"
    );
    assert!(
        deploy["certificate"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    let refused = find("deploy", "hello@v9 -> staging");
    assert!(
        refused["result"]
            .as_str()
            .unwrap()
            .contains("NotFound: no release hello@v9"),
        "{refused}"
    );
    assert_eq!(find("release add", "hello@v2")["result"], "ok");
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "bootstrap" && e["result"] == "ok"),
        "agent bootstraps are audited: {log}"
    );
    let recent = c.ok(&["audit", "--since", "1h", "--output", "json"]).json();
    assert_eq!(recent.as_array().unwrap().len(), entries.len());
    assert!(
        c.ok(&["audit", "verify"])
            .stdout
            .contains(&format!("intact: {} entries", entries.len()))
    );

    // An anchor kept elsewhere, then checked.
    let anchor = c.ok(&["audit", "anchor"]).stdout.trim().to_string();
    let (count, hash) = anchor.split_once(':').expect("COUNT:HASH");
    assert!(count.parse::<usize>().unwrap() >= entries.len(), "{anchor}");
    assert_eq!(hash.len(), 64, "{anchor}");
    assert!(
        c.ok(&["audit", "verify", "--anchor", &anchor])
            .stdout
            .contains("matching the anchor")
    );
    let wrong = format!("{count}:{}", "0".repeat(64));
    let refused = c.cli(&["audit", "verify", "--anchor", &wrong]);
    assert!(!refused.success);
    assert!(
        refused.stderr.contains("does not match the anchor"),
        "{}",
        refused.stderr
    );
    let garbage = c.cli(&["audit", "verify", "--anchor", "yesterday"]);
    assert!(!garbage.success);
    assert!(
        garbage.stderr.contains("is not an anchor"),
        "{}",
        garbage.stderr
    );

    // Someone with access to the store rewrites history.
    c.kill();
    let store_dir = c.data_dir().join("store");
    let store = eventually("the store lock to be free", Duration::from_secs(10), || {
        SledStore::open(&store_dir).ok()
    });
    let key = format!("{:020}", 2);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let stored = store.get(Table::Audit, &key).await.unwrap().unwrap();
        let mut entry: serde_json::Value = serde_json::from_slice(&stored).unwrap();
        entry["target"] = "hello@v1 -> prod1".into();
        let epoch = store.claim_epoch().await.unwrap();
        let writes = vec![Write::Put {
            table: Table::Audit,
            key: key.clone(),
            value: entry.to_string().into_bytes(),
        }];
        store.write(Batch { epoch, writes }).await.unwrap();
    });
    drop(store);

    c.crash_and_restart();
    let verify = c.cli(&["audit", "verify"]);
    assert!(!verify.success);
    assert!(
        verify
            .stderr
            .contains("audit entry 2 is broken: its content does not match its hash"),
        "{}",
        verify.stderr
    );
}

/// An HTTP receiver on loopback answering `status` to every request; the
/// bodies it got come out of the channel.
fn receiver(status: &'static str) -> (String, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/anchors", listener.local_addr().unwrap());
    let (sent, bodies) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let _ = sent.send(String::from_utf8_lossy(&body).into_owned());
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (url, bodies)
}

#[test]
fn the_anchor_goes_to_a_webhook_and_a_refusing_one_is_a_failure() {
    let c = Coordinator::start();
    c.ok(&["deploy", "hello", "v1", "--env", "staging"]);
    let (url, bodies) = receiver("204 No Content");
    let printed = c.ok(&["audit", "anchor", "--webhook", &url]).stdout;
    let body: Value =
        serde_json::from_str(&bodies.recv_timeout(Duration::from_secs(5)).unwrap()).unwrap();
    assert_eq!(
        format!("{}:{}", body["entries"], body["hash"].as_str().unwrap()),
        printed.trim(),
        "the webhook got the anchor printed"
    );
    c.ok(&["audit", "verify", "--anchor", printed.trim()]);

    let (refusing, _) = receiver("500 Internal Server Error");
    let refused = c.exits(1, &["audit", "anchor", "--webhook", &refusing]);
    assert!(
        refused.stderr.contains("answered 500"),
        "{}",
        refused.stderr
    );
    let plain = c.exits(
        2,
        &[
            "audit",
            "anchor",
            "--webhook",
            "http://anchors.example.com/a",
        ],
    );
    assert!(plain.stderr.contains("use https"), "{}", plain.stderr);
}
