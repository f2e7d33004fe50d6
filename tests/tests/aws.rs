//! The same deploy and promote flows through the `aws` cloud: the real SDK
//! clients against a moto server, with a boot simulator starting an agent for each
//! instance moto launches. After each step, assertions read moto back through the
//! SDK: load balancer membership, instance states and tags, record targets.

#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use slipway_coordinator::cloud::aws::AwsCloud;
use slipway_coordinator::cloud::{Compute, LaunchRequest, Placement};
use slipway_tests::aws::{
    AccessKey, BootSimulator, Moto, assert_launches_hardened, bake, fleet, register_ami, running,
    slipway_instances,
};
use slipway_tests::{
    Coordinator, TempDir, entered, eventually, migration_runs_of, strings, unix_ms,
};

/// A coordinator driving moto, with its fleet file in `dir`.
fn coordinator(dir: &TempDir, endpoint: &str) -> Coordinator {
    coordinator_with(dir, endpoint, Moto::coordinator_env())
}

fn coordinator_with(dir: &TempDir, endpoint: &str, env: Vec<(String, String)>) -> Coordinator {
    coordinator_with_fleet(dir, &fleet(endpoint), env)
}

fn coordinator_with_fleet(dir: &TempDir, fleet: &str, env: Vec<(String, String)>) -> Coordinator {
    let path: PathBuf = dir.path().join("fleet.toml");
    std::fs::write(&path, fleet).unwrap();
    Coordinator::start_with(Some(path), env)
}

const POLICY: &str = include_str!("../../docs/aws-iam-policy.json");

async fn create_zone(sdk: &aws_config::SdkConfig, caller_reference: &str) {
    let route53 = aws_sdk_route53::Client::new(sdk);
    route53
        .create_hosted_zone()
        .name("example.com")
        .caller_reference(caller_reference)
        .send()
        .await
        .unwrap();
}

/// Waits for the coordinator to finish hello's pending promotion.
fn wait_until_promoted(c: &Coordinator) {
    eventually(
        "the pending promotion to finish",
        Duration::from_secs(60),
        || {
            let status = c.ok(&["status", "hello", "--output", "json"]).json();
            (status["public_record"]["pending"] == false).then_some(())
        },
    );
}

/// Empties and deletes every hosted zone, as an operator cleaning up Route53 might.
async fn delete_zones(sdk: &aws_config::SdkConfig) {
    use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, RrType};
    let route53 = aws_sdk_route53::Client::new(sdk);
    for zone in route53
        .list_hosted_zones()
        .send()
        .await
        .unwrap()
        .hosted_zones()
    {
        let sets = route53
            .list_resource_record_sets()
            .hosted_zone_id(zone.id())
            .send()
            .await
            .unwrap();
        let changes: Vec<Change> = sets
            .resource_record_sets()
            .iter()
            .filter(|s| !matches!(s.r#type(), RrType::Soa | RrType::Ns))
            .map(|s| {
                Change::builder()
                    .action(ChangeAction::Delete)
                    .resource_record_set(s.clone())
                    .build()
                    .unwrap()
            })
            .collect();
        if !changes.is_empty() {
            let batch = ChangeBatch::builder()
                .set_changes(Some(changes))
                .build()
                .unwrap();
            route53
                .change_resource_record_sets()
                .hosted_zone_id(zone.id())
                .change_batch(batch)
                .send()
                .await
                .unwrap();
        }
        route53
            .delete_hosted_zone()
            .id(zone.id())
            .send()
            .await
            .unwrap();
    }
}

/// Instance ids registered with a load balancer, as ELB reports them.
async fn members(elb: &aws_sdk_elasticloadbalancing::Client, name: &str) -> BTreeSet<String> {
    let health = elb
        .describe_instance_health()
        .load_balancer_name(name)
        .send()
        .await
        .unwrap();
    health
        .instance_states()
        .iter()
        .filter_map(|s| s.instance_id().map(str::to_string))
        .collect()
}

async fn lb_dns(elb: &aws_sdk_elasticloadbalancing::Client, name: &str) -> String {
    let out = elb
        .describe_load_balancers()
        .load_balancer_names(name)
        .send()
        .await
        .unwrap();
    out.load_balancer_descriptions()[0]
        .dns_name()
        .unwrap()
        .to_string()
}

/// The value a record points at (CNAME value or alias DNS name).
async fn record(sdk: &aws_config::SdkConfig, name: &str) -> Option<String> {
    let route53 = aws_sdk_route53::Client::new(sdk);
    let zones = route53.list_hosted_zones().send().await.unwrap();
    let zone = zones.hosted_zones()[0].id().to_string();
    let sets = route53
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .send()
        .await
        .unwrap();
    sets.resource_record_sets()
        .iter()
        .find(|s| s.name().trim_end_matches('.') == name)
        .and_then(|s| match s.alias_target() {
            Some(alias) => Some(alias.dns_name().trim_end_matches('.').to_string()),
            None => s
                .resource_records()
                .first()
                .map(|r| r.value().trim_end_matches('.').to_string()),
        })
}

#[tokio::test(flavor = "multi_thread")]
async fn infra_apply_creates_what_is_missing_and_a_second_run_changes_nothing() {
    let moto = Moto::start();
    let sdk = moto.sdk().await;
    create_zone(&sdk, "infra").await;
    let dir = TempDir::new("aws-infra");
    let c = coordinator(&dir, &moto.endpoint);
    let elb = aws_sdk_elasticloadbalancing::Client::new(&sdk);

    let plan = strings(&c.ok(&["infra", "plan", "--output", "json"]).json());
    assert_eq!(
        plan.len(),
        6,
        "3 load balancers and 3 environment records: {plan:?}"
    );
    assert!(
        plan.iter()
            .any(|p| p.starts_with("create load balancer slipway-hello-staging")),
        "{plan:?}"
    );
    let existing = elb.describe_load_balancers().send().await.unwrap();
    assert!(
        existing.load_balancer_descriptions().is_empty(),
        "plan must change nothing"
    );

    let applied = strings(&c.ok(&["infra", "apply", "--output", "json"]).json());
    assert_eq!(applied, plan);
    for env in ["staging", "prod1", "prod2"] {
        let name = format!("slipway-hello-{env}");
        let out = elb
            .describe_load_balancers()
            .load_balancer_names(&name)
            .send()
            .await
            .unwrap();
        let lb = &out.load_balancer_descriptions()[0];
        assert_eq!(lb.health_check().unwrap().target(), "HTTP:8080/health");
        let listener = lb.listener_descriptions()[0].listener().unwrap();
        assert_eq!(
            (listener.load_balancer_port(), listener.instance_port()),
            (80, 8080)
        );
        let attributes = elb
            .describe_load_balancer_attributes()
            .load_balancer_name(&name)
            .send()
            .await
            .unwrap();
        let draining = attributes
            .load_balancer_attributes()
            .unwrap()
            .connection_draining()
            .unwrap();
        assert!(draining.enabled());
        assert_eq!(draining.timeout(), Some(1));
        assert_eq!(
            record(&sdk, &format!("{env}.hello.example.com")).await,
            Some(lb_dns(&elb, &name).await)
        );
    }

    let again = c.ok(&["infra", "apply"]);
    assert!(again.stdout.contains("no changes"), "{}", again.stdout);
    assert!(strings(&c.ok(&["infra", "plan", "--output", "json"]).json()).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn deploys_promotion_and_rollback_run_through_aws_on_moto() {
    let moto = Moto::start();
    let sdk = moto.sdk().await;
    create_zone(&sdk, "first").await;
    let (ec2, elb) = (
        aws_sdk_ec2::Client::new(&sdk),
        aws_sdk_elasticloadbalancing::Client::new(&sdk),
    );
    let dir = TempDir::new("aws-flow");
    let mut images = HashMap::new();
    let mut amis = HashMap::new();
    for (version, healthy) in [("v1", true), ("v2", true), ("broken", false)] {
        let ami = register_ami(&ec2, "hello", version).await;
        images.insert(ami.clone(), bake(dir.path(), version, healthy));
        amis.insert(version, ami);
    }
    // CI tags v2's image with where it came from; `release add` reads it.
    let provenance = [
        ("slipway:commit", "3f2c1ab9d0e4"),
        ("slipway:repository", "https://git.example.com/team/hello"),
        ("slipway:build-url", "https://ci.example.com/jobs/41"),
        ("slipway:built-by", "ci"),
    ];
    let mut tagging = ec2.create_tags().resources(&amis["v2"]);
    for (key, value) in provenance {
        tagging = tagging.tags(
            aws_sdk_ec2::types::Tag::builder()
                .key(key)
                .value(value)
                .build(),
        );
    }
    tagging.send().await.expect("CreateTags");
    let _boot = BootSimulator::start(&moto.endpoint, images);
    let c = coordinator(&dir, &moto.endpoint);
    c.ok(&["infra", "apply"]);
    // Given provenance the image's tags contradict is refused, naming both.
    let contradicted = c.exits(
        4,
        &["release", "add", "hello", "v2", "--commit", "9d8e7f6a5b4c"],
    );
    assert!(
        contradicted
            .stderr
            .contains("is tagged slipway:commit=3f2c1ab9d0e4 but --commit 9d8e7f6a5b4c was given"),
        "{}",
        contradicted.stderr
    );
    for version in ["v1", "v2", "broken"] {
        let release = c
            .ok(&["release", "add", "hello", version, "--output", "json"])
            .json();
        assert_eq!(
            release["image_id"],
            amis[version].as_str(),
            "the AMI is found by its tags"
        );
        // moto's account: the image's owner, recorded with the release.
        assert_eq!(release["owner_account"], "123456789012", "{release}");
        if version == "v2" {
            let p = &release["provenance"];
            assert_eq!(p["commit"], "3f2c1ab9d0e4", "{release}");
            assert_eq!(p["repository"], "https://git.example.com/team/hello");
            assert_eq!(p["build_url"], "https://ci.example.com/jobs/41");
            assert_eq!(p["built_by"], "ci");
        } else {
            assert_eq!(release["provenance"], serde_json::Value::Null);
        }
    }

    // v1, then v2, to staging: the ELB holds exactly the new instance each time.
    c.ok(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);
    let v1 = members(&elb, "slipway-hello-staging").await;
    assert_eq!(v1.len(), 1);
    let (id, state, tags) = slipway_instances(&ec2)
        .await
        .into_iter()
        .find(|(id, _, _)| v1.contains(id))
        .unwrap();
    assert_eq!(state, "running");
    assert_eq!(tags["slipway:project"], "hello");
    assert_eq!(tags["slipway:env"], "staging");
    assert_eq!(tags["slipway:release"], "hello@v1");
    assert!(tags["slipway:deployment"].starts_with("d-"), "{tags:?}");
    assert_eq!(tags["Name"], "hello-staging-v1");
    let attribute = ec2
        .describe_instance_attribute()
        .instance_id(&id)
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
        .send()
        .await
        .unwrap();
    use base64::Engine;
    let user_data = base64::engine::general_purpose::STANDARD
        .decode(attribute.user_data().unwrap().value().unwrap())
        .unwrap();
    let user_data = String::from_utf8(user_data).unwrap();
    assert!(
        user_data.contains("join_token = ") && user_data.contains("ca_fingerprint = \"sha256:"),
        "{user_data}"
    );
    assert!(
        !user_data.contains("PRIVATE KEY"),
        "user-data must never carry a key"
    );

    c.ok(&["deploy", "hello", "v2", "--env", "staging", "--wait"]);
    let v2 = members(&elb, "slipway-hello-staging").await;
    assert_eq!(v2.len(), 1);
    assert!(
        v2.is_disjoint(&v1),
        "v2 must replace v1 in the load balancer"
    );
    let states: HashMap<String, String> = slipway_instances(&ec2)
        .await
        .into_iter()
        .map(|(i, s, _)| (i, s))
        .collect();
    assert_eq!(states[&id], "terminated", "the old instance is terminated");

    // The production clusters, and promotion between them.
    c.ok(&["deploy", "hello", "v1", "--env", "prod1", "--wait"]);
    c.ok(&["deploy", "hello", "v2", "--env", "prod2", "--wait"]);
    assert_eq!(members(&elb, "slipway-hello-prod1").await.len(), 2);
    assert_eq!(members(&elb, "slipway-hello-prod2").await.len(), 2);

    // The zone is gone (deleted by hand, say): status still answers and says
    // why; a promotion is stored, shown pending, and finished by the
    // coordinator once the zone is back.
    delete_zones(&sdk).await;
    let failed = c.cli(&["promote", "hello", "--to", "prod2"]);
    assert!(
        !failed.success
            && failed
                .stderr
                .contains("no Route53 hosted zone holds hello.example.com.")
            && failed
                .stderr
                .contains("the promotion to prod2 is stored and the coordinator retries it"),
        "{}",
        failed.stderr
    );
    let public = &c.ok(&["status", "hello", "--output", "json"]).json()["public_record"];
    assert_eq!(public["environment"], "prod2", "{public}");
    assert_eq!(public["pending"], true, "{public}");
    assert!(
        public["dns_error"]
            .as_str()
            .unwrap()
            .contains("no Route53 hosted zone"),
        "status answers, and says why DNS cannot be read: {public}"
    );
    create_zone(&sdk, "again").await;
    wait_until_promoted(&c);
    let audit = c.ok(&["audit", "--output", "json"]).json();
    let finished = audit.as_array().unwrap().last().unwrap();
    assert_eq!(
        (&finished["who"], &finished["role"]),
        (&"slipway".into(), &"pending promotion".into()),
        "{finished}"
    );
    assert_eq!(finished["target"], "hello -> prod2", "{finished}");
    assert!(
        finished["result"].as_str().unwrap().contains("admin"),
        "the audit log names who asked: {finished}"
    );
    assert_eq!(
        record(&sdk, "hello.example.com").await,
        Some(lb_dns(&elb, "slipway-hello-prod2").await)
    );

    // While a promotion is pending, the way back is the environment DNS last
    // surely pointed at, even when the operator asks for the pending one again.
    delete_zones(&sdk).await;
    for _ in 0..2 {
        let failed = c.cli(&["promote", "hello", "--to", "prod1"]);
        assert!(
            !failed.success
                && failed
                    .stderr
                    .contains("`slipway promote hello --to prod2` takes it back"),
            "{}",
            failed.stderr
        );
    }
    let public = &c.ok(&["status", "hello", "--output", "json"]).json()["public_record"];
    assert_eq!(public["environment"], "prod1", "{public}");
    assert_eq!(public["previous_environment"], "prod2", "{public}");
    create_zone(&sdk, "third").await;
    wait_until_promoted(&c);
    assert_eq!(
        record(&sdk, "hello.example.com").await,
        Some(lb_dns(&elb, "slipway-hello-prod1").await)
    );
    let back = c
        .ok(&["promote", "hello", "--to", "prod1", "--output", "json"])
        .json();
    assert_eq!(back["previous_environment"], "prod2");
    assert_eq!(
        record(&sdk, "hello.example.com").await,
        Some(lb_dns(&elb, "slipway-hello-prod1").await)
    );

    // A release that never passes its health check rolls back; staging keeps v2.
    let run = c.cli(&["deploy", "hello", "broken", "--env", "staging", "--wait"]);
    assert!(
        !run.success && run.stderr.contains("rolled_back") && run.stderr.contains("answered 500"),
        "{}",
        run.stderr
    );
    assert_eq!(
        members(&elb, "slipway-hello-staging").await,
        v2,
        "the ELB never took the broken instance"
    );
    let broken = &c
        .ok(&["deployments", "--limit", "1", "--output", "json"])
        .json()[0];
    let states: HashMap<String, String> = slipway_instances(&ec2)
        .await
        .into_iter()
        .map(|(i, s, _)| (i, s))
        .collect();
    for id in strings(&broken["new_instances"]) {
        assert_eq!(
            states[&id], "terminated",
            "broken instance {id} left behind"
        );
    }
    let alive: BTreeSet<String> = running(&ec2).await.into_iter().collect();
    assert_eq!(
        alive.len(),
        5,
        "staging 1 + prod1 2 + prod2 2, nothing else: {alive:?}"
    );
    assert!(assert_launches_hardened(&ec2).await >= 5);
}

/// The documented policy as moto 5.2 can evaluate it: actions only. Outside
/// S3 moto matches a statement's Resource against "*" (an ARN never matches)
/// and ignores Condition in identity policies, so widen the one and drop the
/// other; what remains proves no action the code uses is missing. `without`
/// removes actions, to see what an operator sees when one is.
fn policy_for_moto(without: &[&str]) -> String {
    let mut policy: serde_json::Value = serde_json::from_str(POLICY).unwrap();
    let statements = policy["Statement"].as_array_mut().unwrap();
    for statement in statements.iter_mut() {
        let object = statement.as_object_mut().unwrap();
        object.remove("Condition");
        object.insert("Resource".into(), "*".into());
        let actions: Vec<serde_json::Value> = match &object["Action"] {
            serde_json::Value::Array(list) => list.clone(),
            one => vec![one.clone()],
        };
        let kept: Vec<serde_json::Value> = actions
            .into_iter()
            .filter(|a| !without.contains(&a.as_str().unwrap()))
            .collect();
        object.insert("Action".into(), kept.into());
    }
    statements.retain(|s| !s["Action"].as_array().unwrap().is_empty());
    policy.to_string()
}

/// EC2 and ELB only: moto 5.2 cannot check the signature of Route53's REST
/// GETs (ListHostedZones answers SignatureDoesNotMatch to boto3 as well), so
/// this fleet has no public record and Route53's actions are held to the
/// policy by the unit tests of `cloud::aws::permissions` alone.
#[tokio::test(flavor = "multi_thread")]
async fn the_documented_iam_policy_allows_every_ec2_and_elb_call_of_deploys_and_rollbacks() {
    let admin =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    let (moto, keys) = Moto::start_enforcing_iam(&[
        ("admin", admin),
        ("slipway", &policy_for_moto(&[])),
        ("narrow", &policy_for_moto(&["ec2:RunInstances"])),
    ]);
    let [admin, slipway, narrow]: [AccessKey; 3] = keys.try_into().unwrap();
    let sdk = moto.sdk_as(&admin).await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let fleet = fleet(&moto.endpoint).replace(
        "public = { name = \"hello.example.com\", environments = [\"prod1\", \"prod2\"] }",
        "",
    );
    assert!(
        !fleet.contains("public"),
        "the fleet must drop its public record"
    );
    let dir = TempDir::new("aws-iam");
    let mut images = HashMap::new();
    for (version, healthy) in [("v1", true), ("v2", true), ("broken", false)] {
        let ami = register_ami(&ec2, "hello", version).await;
        images.insert(ami, bake(dir.path(), version, healthy));
    }
    let _boot = BootSimulator::start_as(&moto.endpoint, &admin, images);

    let c = coordinator_with_fleet(&dir, &fleet, Moto::coordinator_env_as(&slipway));
    c.ok(&["infra", "apply"]);
    for version in ["v1", "v2", "broken"] {
        c.ok(&["release", "add", "hello", version]);
    }
    c.ok(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);
    c.ok(&["deploy", "hello", "v2", "--env", "staging", "--wait"]);
    let broken = c.cli(&["deploy", "hello", "broken", "--env", "staging", "--wait"]);
    assert!(
        !broken.success && broken.stderr.contains("rolled_back"),
        "{}",
        broken.stderr
    );
    c.ok(&["deploy", "hello", "v1", "--env", "prod2", "--wait"]);
    c.ok(&["status", "hello"]);
    assert!(
        !c.log().contains("AccessDenied"),
        "a call the policy does not allow:\n{}",
        c.log()
    );
    assert!(assert_launches_hardened(&ec2).await >= 5);
    drop(c);

    // Without ec2:RunInstances: the deploy rolls back with AWS's (moto's) words.
    let dir = TempDir::new("aws-iam-narrow");
    let c = coordinator_with_fleet(&dir, &fleet, Moto::coordinator_env_as(&narrow));
    c.ok(&["release", "add", "hello", "v1"]);
    let refused = c.cli(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);
    assert!(!refused.success, "{}", refused.stdout);
    assert!(
        refused
            .stderr
            .contains("rolled_back: launching failed: RunInstances: ")
            && refused
                .stderr
                .contains("is not authorized to perform: ec2:RunInstances"),
        "the deployment's reason carries AWS's error: {}",
        refused.stderr
    );
}

/// parliament (tests/run installs it) finds nothing wrong with the policy, but
/// one finding we accept: RESOURCE_MISMATCH for the two RunInstances
/// statements, split on purpose so the tag conditions bind only the instance
/// (as in AWS's examples); accepted only while the two together name every
/// resource type parliament asks for.
#[test]
fn the_documented_iam_policy_passes_the_parliament_linter() {
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
    let lint = |file: &std::path::Path| {
        let out = std::process::Command::new(slipway_tests::python_tool("parliament"))
            .arg("--json")
            .arg("--files")
            .arg(file)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("parliament: tests/run installs it into target/py");
        let findings: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect();
        assert!(
            out.status.success() || !findings.is_empty(),
            "parliament failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        findings
    };

    // The linter is live: it flags an action that does not exist.
    let scratch = TempDir::new("parliament");
    let bad = scratch.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:RunInstancez","Resource":"*"}]}"#,
    )
    .unwrap();
    assert!(
        lint(&bad).iter().any(|f| f["issue"] == "UNKNOWN_ACTION"),
        "parliament must flag an unknown action"
    );

    let policy: serde_json::Value = serde_json::from_str(POLICY).unwrap();
    let launch_resources: Vec<String> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Action"] == "ec2:RunInstances")
        .flat_map(|s| {
            strings(&s["Resource"])
                .into_iter()
                .chain(s["Resource"].as_str().map(str::to_string))
        })
        .collect();
    let resource_type = |arn: &str| {
        arn.rsplit(':')
            .next()
            .and_then(|tail| tail.split('/').next())
            .unwrap_or_default()
            .to_string()
    };
    let covered: BTreeSet<String> = launch_resources.iter().map(|r| resource_type(r)).collect();
    let findings: Vec<serde_json::Value> = lint(&docs.join("aws-iam-policy.json"))
        .into_iter()
        .filter(|f| {
            let accepted = f["issue"] == "RESOURCE_MISMATCH"
                && f["detail"].as_array().is_some_and(|detail| {
                    detail.iter().all(|d| {
                        d["action"] == "ec2:RunInstances"
                            && covered.contains(&resource_type(
                                d["required_format"].as_str().unwrap_or(""),
                            ))
                    })
                });
            !accepted
        })
        .collect();
    assert!(findings.is_empty(), "parliament: {findings:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resumed_launch_with_the_same_client_token_makes_no_second_instance() {
    let moto = Moto::start();
    let sdk = moto.sdk().await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let ami = register_ami(&ec2, "hello", "v1").await;
    let cloud = AwsCloud::from_sdk_config(&sdk).unwrap();
    let request = LaunchRequest {
        image_id: ami,
        client_token: "d-7-slot-0".into(),
        user_data: "join_token = \"x\"".into(),
        tags: [("slipway:deployment".to_string(), "d-7".to_string())].into(),
        placement: Placement {
            instance_type: "t3.micro".into(),
            ..Placement::default()
        },
    };
    let first = cloud.launch(request.clone()).await.unwrap();
    let again = cloud.launch(request).await.unwrap();
    assert_eq!(first.id, again.id);
    assert_eq!(running(&ec2).await, vec![first.id]);
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_and_ambiguous_amis_and_a_missing_elb_are_clear_errors_that_leave_no_instance() {
    // With moto's public AMIs: images of other accounts to refuse.
    let moto = Moto::start_with(&[("MOTO_EC2_LOAD_DEFAULT_AMIS", "true")]);
    let sdk = moto.sdk().await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let dir = TempDir::new("aws-errors");
    let c = coordinator(&dir, &moto.endpoint);

    let missing = c.cli(&["release", "add", "hello", "v1"]);
    assert!(!missing.success);
    assert!(
        missing
            .stderr
            .contains("no AMI tagged slipway:project=hello slipway:version=v1"),
        "{}",
        missing.stderr
    );

    let first = register_ami(&ec2, "hello", "v2").await;
    register_ami(&ec2, "hello", "v2").await;
    let ambiguous = c.cli(&["release", "add", "hello", "v2"]);
    assert!(!ambiguous.success);
    assert!(
        ambiguous.stderr.contains("2 AMIs are tagged") && ambiguous.stderr.contains("give --image"),
        "{}",
        ambiguous.stderr
    );
    c.ok(&["release", "add", "hello", "v2", "--image", &first]);
    // An image of another account (moto's public Amazon AMIs), or none at all,
    // is refused when it is registered, not at deploy time.
    let public = ec2
        .describe_images()
        .owners("amazon")
        .send()
        .await
        .expect("DescribeImages");
    let foreign = public
        .images()
        .iter()
        .filter_map(|i| i.image_id())
        .find(|id| slipway_coordinator::release::check_image_id(id).is_ok())
        .expect("a public AMI in moto")
        .to_string();
    let refused = c.cli(&["release", "add", "hello", "v3", "--image", &foreign]);
    assert!(!refused.success);
    assert!(
        refused.stderr.contains("owned by this account"),
        "{}",
        refused.stderr
    );
    let refused = c.cli(&[
        "release",
        "add",
        "hello",
        "v3",
        "--image",
        "ami-0123456789abcdef0",
    ]);
    assert!(!refused.success);
    assert!(
        refused.stderr.contains("owned by this account"),
        "{}",
        refused.stderr
    );

    // No `infra apply`: the load balancer is missing, and nothing may be launched.
    let run = c.cli(&["deploy", "hello", "v2", "--env", "staging", "--wait"]);
    assert!(!run.success);
    assert!(
        run.stderr
            .contains("load balancer slipway-hello-staging does not exist"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("slipway infra apply"),
        "the error says what to do: {}",
        run.stderr
    );
    assert!(
        slipway_instances(&ec2).await.is_empty(),
        "no instance may be left behind"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_endpoint_and_bad_credentials_are_clear_errors() {
    // A release registered while AWS answers (registration checks the image)...
    let moto = Moto::start();
    let ec2 = aws_sdk_ec2::Client::new(&moto.sdk().await);
    let image = register_ami(&ec2, "hello", "v1").await;
    let dir = TempDir::new("aws-down");
    let c = coordinator(&dir, &moto.endpoint);
    c.ok(&["release", "add", "hello", "v1", "--image", &image]);
    // ...then nothing listens there any more: AWS "down".
    drop(moto);
    for add in [
        c.cli(&["release", "add", "hello", "v2"]),
        c.cli(&["release", "add", "hello", "v2", "--image", &image]),
    ] {
        assert!(
            !add.success && add.stderr.contains("AWS is unreachable"),
            "{}",
            add.stderr
        );
    }
    let run = c.cli(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);
    assert!(
        !run.success && run.stderr.contains("rolled_back"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("launching failed") && run.stderr.contains("AWS is unreachable"),
        "{}",
        run.stderr
    );

    // moto checking credentials: ours are unknown to it.
    let strict = Moto::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]);
    let dir = TempDir::new("aws-auth");
    let c = coordinator(&dir, &strict.endpoint);
    let add = c.cli(&["release", "add", "hello", "v1"]);
    assert!(!add.success);
    assert!(
        add.stderr.contains("DescribeImages: AuthFailure: AWS was not able to validate the provided access credentials"),
        "AWS's own words reach the user: {}",
        add.stderr
    );
    assert_eq!(add.stderr.trim().lines().count(), 1, "{}", add.stderr);
}

/// Classic ELB does not report draining: a coordinator killed while the old
/// instance drains still gives it the whole drain timeout after its restart,
/// counted from when it was deregistered, however late that was.
#[tokio::test(flavor = "multi_thread")]
async fn a_restart_while_elb_drains_still_waits_out_the_drain_timeout() {
    let moto = Moto::start();
    let sdk = moto.sdk().await;
    create_zone(&sdk, "drain").await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let dir = TempDir::new("aws-drain");
    let mut images = HashMap::new();
    for version in ["v1", "v2"] {
        let ami = register_ami(&ec2, "hello", version).await;
        images.insert(ami, bake(dir.path(), version, true));
    }
    let _boot = BootSimulator::start(&moto.endpoint, images);
    let path = dir.path().join("fleet.toml");
    let fleet = fleet(&moto.endpoint).replace("drain = \"1s\"", "drain = \"6s\"");
    assert!(fleet.contains("drain = \"6s\""));
    std::fs::write(&path, fleet).unwrap();
    let mut c = Coordinator::start_with(Some(path), Moto::coordinator_env());
    c.ok(&["infra", "apply"]);
    for version in ["v1", "v2"] {
        c.ok(&["release", "add", "hello", version]);
    }
    c.ok(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);

    // Killed right after the deregistration: the restart must not cut the drain.
    let id = c.pause_at("draining/deregistered", |c| c.enqueue("v2", "staging"));
    c.crash_and_restart();
    let done = c.wait_finished(&id, Duration::from_secs(60));
    assert_eq!(done["phase"], "succeeded", "{done}");
    let drained_for = entered(&done, "retiring").unwrap() - entered(&done, "draining").unwrap();
    assert!(
        drained_for >= 6_000,
        "the old instance was retired {drained_for} ms after draining began, not the 6 s drain"
    );

    // Killed after draining was stored but before the deregistration, and
    // restarted after the drain timeout: the deregistration it makes then
    // still gets the whole drain.
    let id = c.pause_at("draining/entered", |c| c.enqueue("v1", "staging"));
    std::thread::sleep(Duration::from_secs(7));
    let restarted_at = unix_ms();
    c.crash_and_restart();
    let done = c.wait_finished(&id, Duration::from_secs(60));
    assert_eq!(done["phase"], "succeeded", "{done}");
    let drained_for = entered(&done, "retiring").unwrap() - restarted_at;
    assert!(
        drained_for >= 6_000,
        "the old instance was retired {drained_for} ms after the restart deregistered it, not the 6 s drain"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_migration_through_aws_runs_on_one_instance_of_two() {
    let moto = Moto::start();
    let sdk = moto.sdk().await;
    let (ec2, elb) = (
        aws_sdk_ec2::Client::new(&sdk),
        aws_sdk_elasticloadbalancing::Client::new(&sdk),
    );
    create_zone(&sdk, "migration").await;
    let dir = TempDir::new("aws-migration");
    let store = dir.path().join("stores/hello-db");
    let ami = register_ami(&ec2, "hello", "v1").await;
    let images = HashMap::from([(ami, bake(dir.path(), "v1", true))]);
    let _boot = BootSimulator::start(&moto.endpoint, images);
    let with_migration = fleet(&moto.endpoint).replace(
        "[projects.hello]\n",
        &format!(
            "[data_stores.hello-db]\nenvironments = [\"staging\", \"prod1\", \"prod2\"]\nvariables = {{ HELLO_DB = \"{}\" }}\n\n[projects.hello]\ndata_stores = [\"hello-db\"]\nmigration = {{ command = \"bin/slipway-sample-app\", args = [\"migrate\"], timeout = \"20s\" }}\n",
            store.display()
        ),
    );
    assert!(with_migration.contains("migration = "));
    let c = coordinator_with_fleet(&dir, &with_migration, Moto::coordinator_env());
    c.ok(&["infra", "apply"]);
    c.ok(&["release", "add", "hello", "v1"]);

    // prod1 has two instances: the migration runs on one of them, once.
    let done = c
        .ok(&[
            "deploy", "hello", "v1", "--env", "prod1", "--wait", "-o", "json",
        ])
        .json();
    assert_eq!(done["phase"], "succeeded", "{done}");
    let migration = &done["migration"];
    assert_eq!(migration["state"], "succeeded", "{done}");
    let ran_on = migration["instance_id"].as_str().unwrap();
    let new: Vec<String> = strings(&done["new_instances"]);
    assert_eq!(new.len(), 2);
    assert!(
        new.iter().any(|i| i == ran_on),
        "{ran_on} is one of {new:?}"
    );
    assert_eq!(
        migration_runs_of(&store).len(),
        1,
        "one run, on one instance"
    );
    assert_eq!(members(&elb, "slipway-hello-prod1").await.len(), 2);
    let entered_migrating = entered(&done, "migrating").unwrap();
    let attached = entered(&done, "attaching").unwrap();
    assert!(
        entered_migrating <= attached,
        "migrated before attaching: {done}"
    );
}

/// Instances another history launched (tagged as Slipway tags, in no
/// deployment here), seen through EC2: listed, left alone, then terminated
/// only when asked; an instance without Slipway's tags is never listed.
#[tokio::test(flavor = "multi_thread")]
async fn orphans_on_ec2_are_listed_and_terminated_only_when_asked_and_others_never() {
    let moto = Moto::start();
    let sdk = moto.sdk().await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let dir = TempDir::new("aws-orphans");
    let c = coordinator(&dir, &moto.endpoint);
    let ami = register_ami(&ec2, "hello", "v1").await;
    let launch = |tags: Vec<(&'static str, &'static str)>| {
        let ec2 = ec2.clone();
        let ami = ami.clone();
        async move {
            let spec = aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
                .set_tags(Some(
                    tags.into_iter()
                        .map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build())
                        .collect(),
                ))
                .build();
            ec2.run_instances()
                .image_id(ami)
                .min_count(1)
                .max_count(1)
                .tag_specifications(spec)
                .send()
                .await
                .unwrap()
                .instances()[0]
                .instance_id()
                .unwrap()
                .to_string()
        }
    };
    let orphan = launch(vec![
        ("slipway:deployment", "d-77"),
        ("slipway:project", "hello"),
        ("slipway:env", "staging"),
        ("slipway:release", "hello@v1"),
    ])
    .await;
    let someone_elses = launch(vec![("Name", "build-box")]).await;

    let listed = c.ok(&["infra", "orphans", "-o", "json"]).json();
    let ids: Vec<&str> = listed["orphans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["instance_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [orphan.as_str()], "{listed}");
    assert_eq!(listed["orphans"][0]["deployment"], "d-77");
    let state = |id: String| {
        let ec2 = ec2.clone();
        async move {
            ec2.describe_instances()
                .instance_ids(id)
                .send()
                .await
                .unwrap()
                .reservations()[0]
                .instances()[0]
                .state()
                .and_then(|s| s.name())
                .map(|n| n.as_str().to_string())
                .unwrap_or_default()
        }
    };
    assert_eq!(
        state(orphan.clone()).await,
        "running",
        "listing touches nothing"
    );

    let terminated = c
        .ok(&["infra", "orphans", "--terminate", "-o", "json"])
        .json();
    assert_eq!(terminated["terminated"], true, "{terminated}");
    let after = state(orphan.clone()).await;
    assert!(after == "shutting-down" || after == "terminated", "{after}");
    assert_eq!(state(someone_elses).await, "running");
}
