//! The PostgreSQL store against a real server of the test's own (Debian's
//! PostgreSQL in a temporary directory on a free port; `tests/src/postgres.rs`).

#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::Value;
use slipway_coordinator::store::{
    Batch, POSTGRES_SCHEMA_VERSION, PostgresStore, Store, Table, Target, Write,
};
use slipway_tests::load::Load;
use slipway_tests::postgres::Postgres;
use slipway_tests::{Coordinator, binary};

async fn open(url: &str) -> PostgresStore {
    PostgresStore::open(Target::parse(url, None).unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_engine_passes_the_engine_suite_and_keeps_it_across_a_server_restart() {
    let mut server = Postgres::start();
    let url = server.database("suite");
    let store = open(&url).await;
    slipway_coordinator::store::suite::check_engine(&store).await;
    let epoch = store.claim_epoch().await.unwrap();
    let id = store.next_id().await.unwrap();

    // A crash of the server (immediate stop, no checkpoint) loses nothing
    // that was acknowledged; the pool's broken connections are replaced.
    server.stop();
    let down = store
        .get(Table::Releases, "b")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        down.contains("127.0.0.1") || down.contains("connection"),
        "a store that is down says so: {down}"
    );
    server.start_again();
    assert_eq!(
        store.get(Table::Releases, "b").await.unwrap(),
        Some(b"6".to_vec()),
        "an acknowledged write survives the crash\n{}",
        server.log()
    );
    assert!(
        store.claim_epoch().await.unwrap() > epoch,
        "epochs keep increasing"
    );
    assert_eq!(store.next_id().await.unwrap(), id + 1, "ids stay dense");

    // A second coordinator's store on the same database sees the same state.
    let other = open(&url).await;
    assert_eq!(
        other.get(Table::Releases, "b").await.unwrap(),
        Some(b"6".to_vec())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinators_starting_together_create_the_schema_once_and_a_newer_one_is_refused() {
    let server = Postgres::start();
    let url = server.database("schema");
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PostgresStore::open(Target::parse(&url, None)?).await })
        })
        .collect();
    for open in opens {
        open.await
            .unwrap()
            .expect("every start finds or makes the schema");
    }
    assert_eq!(
        server.psql("schema", "SELECT version FROM slipway_schema"),
        POSTGRES_SCHEMA_VERSION.to_string(),
        "one row, at this build's version"
    );

    // A store the release before the lease left (version 1) is brought up to date.
    server.psql(
        "schema",
        "DROP TABLE slipway_lease; UPDATE slipway_schema SET version = 1",
    );
    let upgraded = open(&url).await;
    assert_eq!(
        server.psql("schema", "SELECT version FROM slipway_schema"),
        POSTGRES_SCHEMA_VERSION.to_string()
    );
    use slipway_coordinator::store::Leases;
    upgraded
        .take_lease("after-upgrade", "https://a:7443", Duration::from_secs(5))
        .await
        .expect("the upgraded store has the lease table");

    let newer = POSTGRES_SCHEMA_VERSION + 1;
    server.psql(
        "schema",
        &format!("UPDATE slipway_schema SET version = {newer}"),
    );
    let err = PostgresStore::open(Target::parse(&url, None).unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("schema is version {newer}"))
            && err.contains(&format!("this coordinator's {POSTGRES_SCHEMA_VERSION}")),
        "names both versions: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_fails_midway_commits_nothing() {
    let server = Postgres::start();
    let store = open(&server.database("atomic")).await;
    let epoch = store.claim_epoch().await.unwrap();
    // PostgreSQL refuses a NUL in text: the second write fails in the server,
    // after the first was applied inside the transaction.
    let failed = store
        .write(Batch {
            epoch,
            writes: vec![
                Write::Put {
                    table: Table::Releases,
                    key: "kept-out".into(),
                    value: b"1".to_vec(),
                },
                Write::Put {
                    table: Table::Releases,
                    key: "nul\0key".into(),
                    value: b"2".to_vec(),
                },
            ],
        })
        .await;
    assert!(failed.is_err(), "{failed:?}");
    assert_eq!(store.get(Table::Releases, "kept-out").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_verified_against_the_store_ca_and_bad_addresses_say_what_is_wrong() {
    let server = Postgres::start_tls();
    server.psql("postgres", "CREATE DATABASE secure");
    let ca = std::fs::read_to_string(server.ca_file.as_ref().unwrap()).unwrap();

    let store =
        PostgresStore::open(Target::parse(&server.url("secure", "require"), Some(&ca)).unwrap())
            .await
            .expect("TLS verified against the given CA");
    let epoch = store.claim_epoch().await.unwrap();
    store
        .write(Batch {
            epoch,
            writes: vec![Write::Put {
                table: Table::Releases,
                key: "over-tls".into(),
                value: b"1".to_vec(),
            }],
        })
        .await
        .unwrap();
    assert_eq!(
        server.psql(
            "secure",
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE s.ssl AND a.datname = 'secure' AND pid <> pg_backend_pid()"
        ),
        "1",
        "the store's connection is encrypted"
    );

    // The system's roots do not know the server's CA.
    let err = PostgresStore::open(Target::parse(&server.url("secure", "require"), None).unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("certificate") && err.contains("127.0.0.1"),
        "an untrusted server certificate is refused: {err}"
    );

    // A database that is not there, and a port nobody listens on.
    let err = PostgresStore::open(Target::parse(&server.url("nope", "disable"), None).unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"nope\" does not exist"), "{err}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = PostgresStore::open(
        Target::parse(
            &format!("postgres://slipway:secret@127.0.0.1:{closed}/x?sslmode=disable"),
            None,
        )
        .unwrap(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(&format!("127.0.0.1:{closed}")) && !err.contains("secret"),
        "names the address, never the password: {err}"
    );
}

/// What operators read back from a coordinator and a copy must keep:
/// releases; each deployment's id, version and target; the queued ids; the
/// audit log. (Phases are left out: what was in flight moves on meanwhile.)
fn history(dev: &Coordinator) -> (Value, Vec<Value>, Vec<Value>, Vec<Value>) {
    let json = |args: &[&str]| {
        let mut args = args.to_vec();
        args.extend(["--output", "json"]);
        dev.ok(&args).json()
    };
    let fields = |list: Value, keys: &[&str]| -> Vec<Value> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|item| keys.iter().map(|k| item[*k].clone()).collect())
            .collect()
    };
    // Each target's line: the active deployment, then those waiting.
    let queue: Vec<Value> = json(&["queue"])
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|line| {
            let waiting = line["waiting"].as_array().unwrap().iter();
            std::iter::once(&line["active"])
                .chain(waiting)
                .map(|d| d["id"].clone())
                .filter(|id| !id.is_null())
                .collect::<Vec<_>>()
        })
        .collect();
    (
        json(&["release", "list"]),
        fields(
            json(&["deployments"]),
            &["id", "version", "project", "environment"],
        ),
        queue,
        json(&["audit"]).as_array().unwrap().clone(),
    )
}

#[test]
fn store_copy_moves_a_coordinators_history_into_postgres_where_it_goes_on() {
    let server = Postgres::start();
    let url = server.database("grown");
    let mut dev = Coordinator::start();
    dev.ok(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);
    // One deployment in flight (broken stays in flight for 10 s), one queued.
    let active = dev.enqueue("broken", "staging");
    let queued = dev.enqueue("v2", "staging");
    let before = history(&dev);
    dev.terminate(Duration::from_secs(60));

    let copy = std::process::Command::new(binary("slipway-coordinator"))
        .args(["store", "copy", "--from"])
        .arg(dev.data_dir())
        .args(["--to", &url])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&copy.stdout).to_string();
    assert!(
        copy.status.success() && said.contains("copied") && said.contains("deployments 3"),
        "{said}{}",
        String::from_utf8_lossy(&copy.stderr)
    );
    // A second copy would merge two histories: refused.
    let again = std::process::Command::new(binary("slipway-coordinator"))
        .args(["store", "copy", "--from"])
        .arg(dev.data_dir())
        .args(["--to", &url])
        .output()
        .unwrap();
    let refused = String::from_utf8_lossy(&again.stderr);
    assert!(
        !again.status.success() && refused.contains("copy into an empty database"),
        "{refused}"
    );

    // The same data directory (its CA and secrets key), the store in PostgreSQL.
    dev.set_env("SLIPWAY_STORE", Some(&url));
    dev.crash_and_restart();
    assert!(
        dev.log().contains(&format!(
            "postgres://slipway@127.0.0.1:{}/grown",
            server.port
        )),
        "the coordinator says which store it runs on"
    );
    let after = history(&dev);
    assert_eq!(after.0, before.0, "the same releases");
    assert_eq!(after.1, before.1, "the same deployments");
    // The queue as it was, less what finished while the copy was made.
    assert!(
        !after.2.is_empty() && before.2.ends_with(&after.2),
        "the same queue: {:?} then {:?}",
        before.2,
        after.2
    );
    assert_eq!(
        after.3.get(..before.3.len()),
        Some(before.3.as_slice()),
        "the audit log goes on from the copied one"
    );
    dev.ok(&["audit", "verify"]);

    // What was in flight and queued goes on, in order, in PostgreSQL.
    let broken = dev.wait_finished(&active, Duration::from_secs(120));
    assert_eq!(broken["phase"], "rolled_back", "{broken}");
    let v2 = dev.wait_finished(&queued, Duration::from_secs(120));
    assert_eq!(v2["phase"], "succeeded", "{v2}");
    let next = dev.enqueue("v1", "staging");
    assert!(
        ![active.as_str(), queued.as_str()].contains(&next.as_str()),
        "a new id after the copied ones: {next}"
    );
    let stored = server.psql(
        "grown",
        &format!(
            "SELECT count(*) FROM slipway_entries WHERE tbl = 'deployments' AND key = '{next}'"
        ),
    );
    assert_eq!(stored, "1", "the new deployment is stored in PostgreSQL");
    dev.wait_finished(&next, Duration::from_secs(120));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_coordinator_holds_the_lease_and_a_takeover_fences_off_the_one_before() {
    use slipway_coordinator::store::{Leases, StoreError};
    let server = Postgres::start();
    let url = server.database("lease");
    let (a, b) = (open(&url).await, open(&url).await);
    let length = Duration::from_millis(1500);

    let first = a.take_lease("a#1", "https://a:7443", length).await.unwrap();
    assert_eq!(first.holder, "a#1");
    let seen = b.take_lease("b#1", "https://b:7443", length).await.unwrap();
    assert_eq!(
        (seen.holder.as_str(), seen.address.as_str(), seen.epoch),
        ("a#1", "https://a:7443", first.epoch),
        "a standby is told who leads and where"
    );
    assert!(!seen.remaining.is_zero() && seen.remaining <= length);
    let renewed = a.take_lease("a#1", "https://a:7443", length).await.unwrap();
    assert_eq!(renewed.epoch, first.epoch, "a renewal keeps the epoch");
    let write = |epoch| Batch {
        epoch,
        writes: vec![Write::Put {
            table: Table::Releases,
            key: "by-leader".into(),
            value: epoch.to_string().into_bytes(),
        }],
    };
    a.write(write(first.epoch)).await.unwrap();

    // A lapses (it stopped renewing); B takes over with a newer epoch, and
    // A's writes are refused from then on, whatever A believes.
    let lapsed = eventually_async(Duration::from_secs(10), || async {
        let lease = b.take_lease("b#1", "https://b:7443", length).await.unwrap();
        (lease.holder == "b#1").then_some(lease)
    })
    .await;
    assert!(
        lapsed.epoch > first.epoch,
        "a change of hands claims an epoch"
    );
    assert_eq!(
        a.write(write(first.epoch)).await,
        Err(StoreError::Fenced {
            epoch: first.epoch,
            current: lapsed.epoch
        })
    );
    let told = a.take_lease("a#1", "https://a:7443", length).await.unwrap();
    assert_eq!(
        told.holder, "b#1",
        "the old leader learns it lost the lease"
    );

    // A graceful stop gives the lease up: the standby need not wait it out.
    b.release_lease("b#1").await.unwrap();
    let back = a
        .take_lease("a#2", "https://a:7443", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(back.holder, "a#2");
    assert!(back.epoch > lapsed.epoch);
    a.release_lease("someone-else").await.unwrap();
    assert_eq!(
        b.take_lease("b#2", "https://b:7443", length)
            .await
            .unwrap()
            .holder,
        "a#2",
        "only the holder can give it up"
    );
}

/// Polls `check` until it gives Some, or panics after `deadline`.
async fn eventually_async<T, F: std::future::Future<Output = Option<T>>>(
    deadline: Duration,
    mut check: impl FnMut() -> F,
) -> T {
    let give_up = std::time::Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            std::time::Instant::now() < give_up,
            "not within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A leader on `leader_store` that served v1, and a standby on the same data
/// directory and `standby_store` (the same database), serving reads on a port
/// of its own. Each is given the other as `--peer`, so launches list both.
fn leader_and_standby(
    leader_store: &str,
    standby_store: &str,
) -> (Coordinator, std::process::Child, String) {
    let standby_listen = format!("127.0.0.1:{}", slipway_tests::free_port());
    let dev = Coordinator::start_with(
        None,
        vec![
            ("SLIPWAY_STORE".into(), leader_store.into()),
            ("SLIPWAY_PEERS".into(), format!("https://{standby_listen}")),
        ],
    );
    dev.ok(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);
    let from = dev.log_len();
    let leader = format!("https://{}", dev.listen);
    let standby = standby_beside(&dev, &standby_listen, standby_store, &leader);
    dev.wait_for_log(
        from,
        "standby: another coordinator leads",
        Duration::from_secs(60),
    );
    (dev, standby, format!("https://{standby_listen}"))
}

/// `leader_and_standby`, HTTP load on staging, and v2's deployment launched:
/// its id.
fn deploying_with_a_standby(
    leader_store: &str,
    standby_store: &str,
) -> (Coordinator, std::process::Child, Load, String) {
    let (dev, standby, _) = leader_and_standby(leader_store, standby_store);
    let load = Load::start(&dev.endpoint("staging"));
    load.wait_for_requests(20);
    let id = dev.enqueue("v2", "staging");
    slipway_tests::eventually("the deploy to launch", Duration::from_secs(60), || {
        let phase = dev.deployment(&id)["phase"].as_str().unwrap().to_string();
        (phase != "queued").then_some(())
    });
    (dev, standby, load, id)
}

#[test]
fn a_standby_takes_over_a_deploy_when_the_leader_is_killed_and_traffic_never_fails() {
    use slipway_coordinator::deploy::machine::InstanceState;
    use slipway_tests::cloud::CloudView;

    let server = Postgres::start();
    let url = server.database("ha");
    let (mut dev, standby, load, id) = deploying_with_a_standby(&url, &url);
    let from = dev.log_len();
    let killed = std::time::Instant::now();
    dev.kill();
    dev.adopt(standby);
    dev.wait_for_log(
        from,
        "this coordinator holds the lease and acts",
        Duration::from_secs(30),
    );
    let took_over = killed.elapsed();
    dev.wait_for_log(from, "coordinator serving", Duration::from_secs(30));
    let serving = killed.elapsed();
    dev.learn_address();
    println!("the standby acted {took_over:?} and served {serving:?} after the leader's kill");
    // A lease of 6 s and a sixth more: within 10 s here; generous for CI.
    assert!(
        serving < Duration::from_secs(20),
        "the standby took {serving:?} to take over"
    );

    let done = dev.wait_finished(&id, Duration::from_secs(120));
    assert_eq!(done["phase"], "succeeded", "{done}");
    let report = load.finish();
    report.assert_no_failures();
    assert!(report.last_body().contains("v2"), "{}", report.last_body());

    // Nothing orphaned, nothing launched twice.
    let cloud = CloudView::new(dev.data_dir());
    let instances = cloud.instances("hello", "staging");
    let live: Vec<_> = instances
        .iter()
        .filter(|i| i.state != InstanceState::Gone)
        .collect();
    let launched = instances
        .iter()
        .filter(|i| i.tags["slipway:deployment"] == id)
        .count();
    assert!(
        !live.is_empty()
            && live.iter().all(|i| i.tags["slipway:deployment"] == id)
            && launched == live.len(),
        "live: {live:?}; launched by {id}: {launched}"
    );
}

/// The log line's time (every line starts with it), for ordering what two
/// processes writing one log did.
fn logged_at(log: &str, from: usize, text: &str) -> String {
    let line = log[from..]
        .lines()
        .find(|l| l.contains(text))
        .unwrap_or_else(|| panic!("no {text:?} in the log:\n{}", &log[from..]));
    line.split(' ').next().unwrap().to_string()
}

#[test]
fn a_leader_cut_off_from_postgres_stops_acting_before_the_standby_starts() {
    use slipway_tests::postgres::Proxy;

    let server = Postgres::start();
    let direct = server.database("cut");
    let proxy = Proxy::to(&server);
    let through_proxy = format!(
        "postgres://slipway@127.0.0.1:{}/cut?sslmode=disable",
        proxy.port
    );
    let (mut dev, standby, load, id) = deploying_with_a_standby(&through_proxy, &direct);

    let from = dev.log_len();
    proxy.cut();
    // The leader cannot renew: it stops (exits) when its tenure ends, which
    // is before its lease lapses in the database.
    let status = dev.wait_exit(Duration::from_secs(30));
    assert!(!status.success());
    dev.adopt(standby);
    dev.wait_for_log(from, "coordinator serving", Duration::from_secs(30));
    dev.learn_address();
    let log = dev.log();
    let stopped = logged_at(&log, from, "stopped acting");
    let acted = logged_at(&log, from, "this coordinator holds the lease and acts");
    assert!(
        stopped < acted,
        "the old leader stopped at {stopped}, the new one acted at {acted}"
    );
    assert!(
        log[from..].contains("the lease could not be renewed"),
        "{}",
        &log[from..]
    );

    let done = dev.wait_finished(&id, Duration::from_secs(120));
    assert_eq!(done["phase"], "succeeded", "{done}");
    let report = load.finish();
    report.assert_no_failures();
    assert!(report.last_body().contains("v2"), "{}", report.last_body());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_committing_side_by_side_are_still_fenced_the_moment_an_epoch_is_claimed() {
    use slipway_coordinator::store::StoreError;
    let server = Postgres::start();
    let store = std::sync::Arc::new(open(&server.database("fence")).await);
    let old = store.claim_epoch().await.unwrap();
    let claimed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (store, claimed) = (store.clone(), claimed.clone());
            tokio::spawn(async move {
                let mut after_claim = Vec::new();
                // Until five batches each have begun after the claim.
                for i in 0.. {
                    if after_claim.len() == 5 {
                        break;
                    }
                    let started_after = claimed.load(std::sync::atomic::Ordering::SeqCst);
                    let result = store
                        .write(Batch {
                            epoch: old,
                            writes: vec![Write::Put {
                                table: Table::Events,
                                key: format!("{w}-{i}"),
                                value: b"x".to_vec(),
                            }],
                        })
                        .await;
                    if started_after {
                        after_claim.push(result);
                    }
                }
                after_claim
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let new = store.claim_epoch().await.unwrap();
    claimed.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut refused = 0;
    for writer in writers {
        for result in writer.await.unwrap() {
            assert_eq!(
                result,
                Err(StoreError::Fenced {
                    epoch: old,
                    current: new
                }),
                "a batch begun after the claim returned"
            );
            refused += 1;
        }
    }
    assert_eq!(refused, 8 * 5, "every batch begun after the claim");
}

/// A process killed when the test ends, however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A copy of `profile` (beside it, as `name`) that calls `first`, then `others`.
fn profile_calling(
    profile: &std::path::Path,
    name: &str,
    first: &str,
    others: &[&str],
) -> std::path::PathBuf {
    let text = std::fs::read_to_string(profile).unwrap();
    let kept: String = text
        .lines()
        .filter(|l| !l.starts_with("coordinator =") && !l.starts_with("other_coordinators ="))
        .map(|l| format!("{l}\n"))
        .collect();
    let path = profile.with_file_name(name);
    std::fs::write(
        &path,
        format!("coordinator = \"{first}\"\nother_coordinators = {others:?}\n{kept}"),
    )
    .unwrap();
    path
}

/// A standby of `dev`'s on `listen`, on `store`, following `leader`; once it
/// serves reads.
fn standby_beside(
    dev: &Coordinator,
    listen: &str,
    store: &str,
    leader: &str,
) -> std::process::Child {
    let from = dev.log_len();
    let standby = dev.start_standby(
        listen,
        &[("SLIPWAY_STORE", store), ("SLIPWAY_PEERS", leader)],
    );
    dev.wait_for_log(from, "standby serving reads", Duration::from_secs(60));
    standby
}

#[test]
fn a_standby_answers_reads_and_sends_writes_to_the_leader_and_the_cli_works_while_either_is_down() {
    use slipway_proto::v1::agent_service_client::AgentServiceClient;
    use slipway_proto::v1::operator_service_client::OperatorServiceClient;
    use slipway_proto::v1::{BootstrapRequest, DeployRequest, StatusRequest};

    let server = Postgres::start();
    let url = server.database("two");
    let (mut dev, mut standby, standby_address) = leader_and_standby(&url, &url);
    let leader_address = format!("https://{}", dev.listen);
    // The leader's dev profile lists the standby after it.
    let written = std::fs::read_to_string(dev.profile()).unwrap();
    assert!(
        written.contains(&format!("other_coordinators = [\"{standby_address}\"]")),
        "{written}"
    );

    // An independent gRPC client at the standby: it answers `status` from the
    // store itself, and refuses a deploy and an agent's bootstrap by naming
    // the leader.
    let standby_listen = standby_address.trim_start_matches("https://").to_string();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let channel = runtime.block_on(async { dev.admin_channel_at(&standby_listen) });
    let (status, deploy, bootstrap) = runtime.block_on(async {
        let mut operator = OperatorServiceClient::new(channel.clone());
        let status = operator
            .status(StatusRequest {
                project: "hello".into(),
            })
            .await;
        let deploy = operator
            .deploy(DeployRequest {
                project: "hello".into(),
                version: "v1".into(),
                environment: "staging".into(),
            })
            .await;
        let bootstrap = AgentServiceClient::new(channel)
            .bootstrap(BootstrapRequest::default())
            .await;
        (status, deploy, bootstrap)
    });
    let status = status.expect("the standby answers status").into_inner();
    let staging = status.projects[0]
        .environments
        .iter()
        .find(|e| e.name == "staging")
        .unwrap();
    assert_eq!(staging.active_version, "v1", "{status:?}");
    for refused in [deploy.unwrap_err(), bootstrap.unwrap_err()] {
        assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
        assert_eq!(
            refused.metadata().get("slipway-leader").unwrap(),
            leader_address.as_str(),
            "{refused:?}"
        );
    }

    // A backup asked of the standby is taken by the leader it names.
    let document = runtime.block_on(async {
        use slipway_coordinator::pki::{Ca, Identity, Role};
        let ca = Ca::load_or_create(
            &dev.data_dir().join("ca"),
            std::sync::Arc::new(slipway_coordinator::clock::SystemClock),
        )
        .unwrap();
        let admin = ca
            .issue_client(
                &Identity::new("backup", Role::Admin),
                Duration::from_secs(600),
            )
            .unwrap();
        slipway_coordinator::grpc::backup_client::fetch(&standby_address, &ca.trusted_pem(), &admin)
            .await
    });
    let document: slipway_coordinator::backup::Document =
        serde_json::from_slice(&document.expect("the leader's snapshot")).unwrap();
    assert!(document.entries() > 0);
    let backups = dev.audit_results("backup");
    assert_eq!(backups.len(), 1, "audited once, by the leader: {backups:?}");

    // The CLI at the standby first: `status` is answered there, and a deploy
    // is followed to the leader, which audits it as the caller's.
    let standby_first = profile_calling(
        &dev.profile(),
        "standby-first.toml",
        &standby_address,
        &[&leader_address],
    );
    let run = dev.cli_as(&standby_first, &["status", "hello", "-o", "json"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let run = dev.cli_as(
        &standby_first,
        &[
            "deploy", "hello", "v2", "--env", "staging", "--wait", "-o", "json",
        ],
    );
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let audit = dev
        .ok(&["audit", "--action", "deploy", "-o", "json"])
        .json();
    let entry = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["target"] == "hello@v2 -> staging")
        .unwrap_or_else(|| panic!("no deploy of v2 audited: {audit}"));
    assert_eq!(
        (&entry["who"], &entry["role"]),
        (&"admin".into(), &"admin".into())
    );

    // The standby down: the same profile goes on to the leader.
    standby.kill().unwrap();
    standby.wait().unwrap();
    let run = dev.cli_as(
        &standby_first,
        &["deploy", "hello", "v1", "--env", "staging", "--wait"],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);

    // A standby again, then the leader down: reads are answered at once (by
    // the standby, before it takes over), and writes once it has.
    let from = dev.log_len();
    let standby = standby_beside(&dev, &standby_listen, &url, &leader_address);
    dev.kill();
    dev.adopt(standby);
    let leader_first = profile_calling(
        &dev.profile(),
        "leader-first.toml",
        &leader_address,
        &[&standby_address],
    );
    let run = dev.cli_as(&leader_first, &["status", "hello", "-o", "json"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        !dev.log()[from..].contains("this coordinator holds the lease"),
        "the standby took over before the read: it was not answered by a standby"
    );
    let staging = run.json()["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "staging")
        .cloned()
        .unwrap();
    assert_eq!(staging["active_version"], "v1", "{staging}");
    // A write meanwhile: the standby names the leader, which is gone, so the
    // CLI says it cannot reach one (exit 8), and nothing is deployed.
    let run = dev.cli_as(
        &leader_first,
        &["deploy", "hello", "v2", "--env", "staging"],
    );
    if !dev.log()[from..].contains("this coordinator holds the lease") {
        assert_eq!(run.code, Some(8), "{}\n{}", run.stdout, run.stderr);
        assert!(run.stderr.contains("stands by"), "{}", run.stderr);
    }
    dev.wait_for_log(from, "coordinator serving", Duration::from_secs(30));
    let run = dev.cli_as(
        &leader_first,
        &["deploy", "hello", "v2", "--env", "staging", "--wait"],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
}

#[test]
fn an_agent_connected_to_a_standby_gets_the_leaders_commands_through_it() {
    use slipway_coordinator::clock::SystemClock;
    use slipway_coordinator::deploy::machine::InstanceState;
    use slipway_coordinator::pki::{Ca, Identity, Role};
    use slipway_proto::v1::agent_message::Body as Up;
    use slipway_proto::v1::agent_service_client::AgentServiceClient;
    use slipway_proto::v1::coordinator_message::Body as Down;
    use slipway_proto::v1::{AgentMessage, Hello, LogLines};
    use slipway_tests::cloud::CloudView;
    use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity as TlsIdentity};

    let server = Postgres::start();
    let url = server.database("relay");
    let (dev, standby, standby_address) = leader_and_standby(&url, &url);
    let _standby = Killed(standby);
    let instance = CloudView::new(dev.data_dir())
        .instances("hello", "staging")
        .into_iter()
        .find(|i| i.state != InstanceState::Gone)
        .expect("a live instance");
    // This instance's agent, as a client of our own, connects to the standby;
    // the real one is frozen, so that it does not take its session back.
    let real = slipway_tests::processes::agent_pid(&instance.id).expect("the instance's agent");
    slipway_tests::processes::freeze(real);
    let ca =
        Ca::load_or_create(&dev.data_dir().join("ca"), std::sync::Arc::new(SystemClock)).unwrap();
    let issued = ca
        .issue_client(
            &Identity::new(&instance.id, Role::Agent),
            Duration::from_secs(600),
        )
        .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (up, upward) = tokio::sync::mpsc::channel::<AgentMessage>(8);
    let mut downward = runtime.block_on(async {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca.cert_pem()))
            .identity(TlsIdentity::from_pem(&issued.cert_pem, &issued.key_pem))
            .domain_name("slipway-coordinator");
        let channel = Channel::from_shared(standby_address.clone())
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .unwrap();
        up.send(AgentMessage {
            body: Some(Up::Hello(Hello {
                instance_id: instance.id.clone(),
                image_id: instance.image_id.clone(),
                agent_version: "relay-test".into(),
                private_ip: "127.0.0.1".into(),
                protocol: slipway_common::protocol::AGENT_PROTOCOL,
            })),
        })
        .await
        .unwrap();
        let mut downward = AgentServiceClient::new(channel)
            .connect(tokio_stream::wrappers::ReceiverStream::new(upward))
            .await
            .expect("the standby takes the agent's stream")
            .into_inner();
        // The leader's welcome, through the standby.
        let first = downward.message().await.unwrap().unwrap();
        assert!(matches!(first.body, Some(Down::Welcome(_))), "{first:?}");
        downward
    });
    assert!(
        dev.log().contains("relayed by"),
        "the leader did not log the relayed stream:\n{}",
        dev.log()
    );

    // An operator asks the leader for that instance's output: the leader's
    // command reaches the agent through the standby, and its answer comes back.
    let logs = dev.cli_in_background(&[
        "logs",
        "hello",
        "--env",
        "staging",
        "--instance",
        &instance.id,
        "--lines",
        "5",
    ]);
    let answered = runtime.block_on(async {
        let tail = loop {
            let message = tokio::time::timeout(Duration::from_secs(30), downward.message()).await;
            let Ok(Ok(Some(message))) = message else {
                return Err(format!("no command; the stream gave {message:?}"));
            };
            if let Some(Down::Tail(tail)) = message.body {
                break tail;
            }
        };
        up.send(AgentMessage {
            body: Some(Up::Logs(LogLines {
                request: tail.request,
                service: "web".into(),
                lines: vec!["a line sent through the standby".into()],
                done: true,
                error: String::new(),
            })),
        })
        .await
        .unwrap();
        Ok(())
    });
    if let Err(e) = answered {
        let run = logs.interrupt();
        panic!(
            "{e}; the CLI: {}\n{}\n{}",
            run.stdout,
            run.stderr,
            dev.log()
        );
    }
    let run = logs.finish();
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout.contains("a line sent through the standby"),
        "{}",
        run.stdout
    );

    // Only a coordinator's certificate may name the agent it relays: at the
    // leader, an agent's certificate naming another instance is still only
    // itself, and an operator's is not an agent at all.
    let leader = format!("https://{}", dev.listen);
    let other = "i-0123456789abcdef0";
    let admin = runtime.block_on(async { dev.admin_channel() });
    let agent = runtime.block_on(async {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca.cert_pem()))
            .identity(TlsIdentity::from_pem(&issued.cert_pem, &issued.key_pem))
            .domain_name("slipway-coordinator");
        Channel::from_shared(leader)
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect_lazy()
    });
    for (channel, refused) in [(agent, "belongs to"), (admin, "agent")] {
        let status = runtime.block_on(async {
            let hello = AgentMessage {
                body: Some(Up::Hello(Hello {
                    instance_id: other.into(),
                    ..Default::default()
                })),
            };
            let mut request = tonic::Request::new(tokio_stream::iter(vec![hello]));
            request
                .metadata_mut()
                .insert("slipway-relayed-agent", other.parse().unwrap());
            AgentServiceClient::new(channel)
                .connect(request)
                .await
                .expect_err("a stream naming another agent")
        });
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
        assert!(status.message().contains(refused), "{status:?}");
    }
}

#[test]
fn a_rolling_upgrade_runs_through_a_mixed_version_pair_and_fails_no_request() {
    let previous = slipway_tests::previous_coordinator();
    let server = Postgres::start();
    let url = server.database("rolling");
    let second_listen = format!("127.0.0.1:{}", slipway_tests::free_port());
    let second = format!("https://{second_listen}");

    // The previous release leads, and serves v1 under load.
    let mut dev = Coordinator::start_program(
        previous,
        vec![
            ("SLIPWAY_STORE".into(), url.clone()),
            ("SLIPWAY_PEERS".into(), second.clone()),
        ],
    );
    let first_listen = dev.listen.clone();
    let first = format!("https://{first_listen}");
    dev.ok(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);
    let load = Load::start(&dev.endpoint("staging"));
    load.wait_for_requests(20);

    // Today's build stands by beside it: a mixed-version pair on one store.
    dev.set_program(None);
    let standby = standby_beside(&dev, &second_listen, &url, &first);
    // The new standby answers reads and passes a deploy to the old leader.
    let via_new = profile_calling(&dev.profile(), "via-new.toml", &second, &[&first]);
    let run = dev.cli_as(&via_new, &["status", "hello", "-o", "json"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let run = dev.cli_as(
        &via_new,
        &["deploy", "hello", "v2", "--env", "staging", "--wait"],
    );
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    // A command the old leader does not know says so.
    let run = dev.cli(&["ca", "status"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("older than this slipway"),
        "{}",
        run.stderr
    );

    // Upgrade the leader: stopped, today's standby takes over...
    let from = dev.log_len();
    dev.terminate(Duration::from_secs(30));
    dev.adopt(standby);
    dev.wait_for_log(
        from,
        "this coordinator holds the lease and acts",
        Duration::from_secs(30),
    );
    dev.wait_for_log(from, "coordinator serving", Duration::from_secs(30));
    dev.learn_address();
    assert_eq!(dev.listen, second_listen);
    // ...and the upgraded host comes back beside it as a standby.
    let mut upgraded = standby_beside(&dev, &first_listen, &url, &second);

    // Both on today's build: deploys go on, through either address. A
    // refused one names no request id: the standby's refusal acted on nothing.
    let via_upgraded = profile_calling(&dev.profile(), "via-upgraded.toml", &first, &[&second]);
    let run = dev.cli_as(
        &via_upgraded,
        &["deploy", "hello", "v3", "--env", "staging"],
    );
    assert_eq!(run.code, Some(5), "{}", run.stderr);
    assert!(!run.stderr.contains("request id"), "{}", run.stderr);
    let run = dev.cli_as(
        &via_upgraded,
        &["deploy", "hello", "v1", "--env", "staging", "--wait"],
    );
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let rotation = dev.ok(&["ca", "status", "-o", "json"]).json();
    assert!(rotation["previous"].is_null(), "{rotation}");
    let verify = dev.cli(&["audit", "verify"]);
    if !verify.success {
        let audit = dev.ok(&["audit", "-o", "json"]).json();
        panic!(
            "{}\n{}",
            verify.stderr,
            serde_json::to_string_pretty(&audit).unwrap()
        );
    }
    load.wait_for_requests(20);
    let report = load.finish();
    report.assert_no_failures();
    assert!(report.last_body().contains("v1"), "{}", report.last_body());
    upgraded.kill().unwrap();
    upgraded.wait().unwrap();
}

#[test]
fn a_standby_follows_a_ca_rotation_and_takes_over_on_the_new_ca() {
    let server = Postgres::start();
    let url = server.database("rotation");
    let standby_listen = format!("127.0.0.1:{}", slipway_tests::free_port());
    let standby_address = format!("https://{standby_listen}");
    let mut dev = Coordinator::start_in_with(
        slipway_tests::TempDir::new("coordinator"),
        &slipway_tests::fleet_renewing_agents_every_4s(),
        vec![
            ("SLIPWAY_STORE".into(), url.clone()),
            ("SLIPWAY_PEERS".into(), standby_address.clone()),
        ],
    );
    let leader_address = format!("https://{}", dev.listen);
    dev.ok(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);
    let keys = slipway_tests::TempDir::new("rotation-keys");
    let stale = dev.issue(keys.path(), "stale", "viewer", &[]);
    let standby = standby_beside(&dev, &standby_listen, &url, &leader_address);
    let load = Load::start(&dev.endpoint("staging"));
    load.wait_for_requests(20);
    let at_standby = |profile: &std::path::Path| {
        let path = profile_calling(profile, "at-standby.toml", &standby_address, &[]);
        dev.cli_as(&path, &["status"]).code
    };

    // Rotated on the leader; the admin renews onto the new CA, and the
    // standby takes the new CA up from the store's step: it accepts the
    // renewed certificate (the files are this host's: one data directory).
    let from = dev.log_len();
    dev.ok(&["ca", "rotate"]);
    dev.ok(&["cert", "renew"]);
    dev.wait_for_log(
        from,
        "standby: CA rotation step taken up",
        Duration::from_secs(30),
    );
    assert_eq!(at_standby(&dev.profile()), Some(0));
    assert_eq!(
        at_standby(&stale),
        Some(0),
        "both CAs are trusted meanwhile"
    );

    slipway_tests::eventually("the agents to renew", Duration::from_secs(30), || {
        let status = dev.ok(&["ca", "status", "-o", "json"]).json();
        status["agents_on_previous"]
            .as_array()
            .unwrap()
            .is_empty()
            .then_some(())
    });
    let from = dev.log_len();
    dev.ok(&["ca", "finish"]);
    dev.wait_for_log(
        from,
        "standby: CA rotation step taken up",
        Duration::from_secs(30),
    );
    assert_eq!(at_standby(&stale), Some(8), "the old CA is trusted nowhere");
    assert_eq!(at_standby(&dev.profile()), Some(0));

    // The leader goes; the standby leads on the new CA, the agents (told
    // only the new one by their next renewal) reconnect, and deploys go on.
    let instance = dev.environment("staging")["instances"][0]["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    let trust = dev
        .data_dir()
        .join("cloud/instances")
        .join(&instance)
        .join("agent/coordinator-ca.pem");
    let new_ca = std::fs::read_to_string(dev.ca_pem()).unwrap();
    slipway_tests::eventually(
        "the agent to be told only the new CA",
        Duration::from_secs(30),
        || (std::fs::read_to_string(&trust).ok()? == new_ca).then_some(()),
    );
    let from = dev.log_len();
    dev.kill();
    dev.adopt(standby);
    dev.wait_for_log(from, "coordinator serving", Duration::from_secs(30));
    dev.learn_address();
    let run = dev.cli(&["deploy", "hello", "v2", "--env", "staging", "--wait"]);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    dev.ok(&["audit", "verify"]);
    load.wait_for_requests(20);
    load.finish().assert_no_failures();
}

#[test]
fn a_running_postgres_coordinator_backs_up_and_restores_into_a_new_database_mid_deploy() {
    let server = Postgres::start();
    let lost_db = server.database("lost");
    let new_db = server.database("restored");
    let mut dev = Coordinator::start_with(None, vec![("SLIPWAY_STORE".into(), lost_db.clone())]);
    dev.ok(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);
    let id = dev.pause_at("attaching/entered", |dev| dev.enqueue("v2", "staging"));
    let keys = slipway_tests::TempDir::new("pg-backup");
    let passphrase = keys.path().join("passphrase");
    std::fs::write(&passphrase, "correct horse battery staple\n").unwrap();
    let file = keys.path().join("slipway.backup");
    let coordinator = |args: &[&str]| {
        let run = std::process::Command::new(binary("slipway-coordinator"))
            .args(args)
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(run.status.success(), "{args:?}: {said}");
        said
    };
    let data_dir = dev.data_dir().to_str().unwrap().to_string();
    let (out, pass) = (file.to_str().unwrap(), passphrase.to_str().unwrap());
    let said = coordinator(&[
        "backup",
        "--data-dir",
        &data_dir,
        "--out",
        out,
        "--with-keys",
        "--passphrase-file",
        pass,
    ]);
    assert!(said.contains("with the CA and secrets keys"), "{said}");

    // The host and its database are lost; restored into a new data
    // directory, copied into a new database, started there.
    dev.kill();
    let fresh = slipway_tests::TempDir::new("pg-restored");
    let fresh_dir = fresh.path().to_str().unwrap().to_string();
    coordinator(&[
        "restore",
        "--data-dir",
        &fresh_dir,
        "--from",
        out,
        "--passphrase-file",
        pass,
    ]);
    let copied = coordinator(&["store", "copy", "--from", &fresh_dir, "--to", &new_db]);
    assert!(copied.contains("copied"), "{copied}");
    std::fs::remove_dir_all(fresh.path().join("store")).unwrap();
    let back = dev.start_as_new_host(fresh, vec![("SLIPWAY_STORE".into(), new_db.clone())]);
    assert!(back.log().contains("/restored"), "runs on the new database");
    let finished = back.cli(&["show", &id, "--follow", "-o", "json"]).json();
    assert_eq!(finished["phase"], "succeeded", "{finished}");
    back.ok(&["audit", "verify"]);
    back.ok(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);
}
