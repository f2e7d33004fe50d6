//! Roles: viewer reads, deployer deploys (optionally in named environments only),
//! admin manages infrastructure and certificates. Refusals say which role is needed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use slipway_tests::{Coordinator, TempDir, binary};

#[test]
fn each_role_does_what_it_may_and_is_told_what_it_lacks() {
    let c = Coordinator::start();
    let dir = TempDir::new("roles");
    let out = |name: &str| dir.path().join(name);
    let viewer = out("vera").join("profile.toml");
    let ci = out("ci").join("profile.toml");
    c.ok(&[
        "cert",
        "issue",
        "--name",
        "vera",
        "--role",
        "viewer",
        "--out",
        out("vera").to_str().unwrap(),
    ]);
    c.ok(&[
        "cert",
        "issue",
        "--name",
        "ci-staging",
        "--role",
        "deployer",
        "--env",
        "staging",
        "--days",
        "7",
        "--out",
        out("ci").to_str().unwrap(),
    ]);
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(out("ci").join("key.pem"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(key_mode & 0o777, 0o600, "the key stays owner-only");

    // The viewer reads, and is refused with the role it lacks.
    assert!(c.cli_as(&viewer, &["status"]).success);
    let refused = c.cli_as(&viewer, &["deploy", "hello", "v1", "--env", "staging"]);
    assert!(
        !refused.success
            && refused
                .stderr
                .contains("vera (viewer) may not do this: it needs the deployer role"),
        "{}",
        refused.stderr
    );

    // The CI deployer deploys to staging only.
    assert!(
        c.cli_as(
            &ci,
            &["deploy", "hello", "v1", "--env", "staging", "--wait"]
        )
        .success
    );
    let prod = c.cli_as(&ci, &["deploy", "hello", "v1", "--env", "prod1"]);
    assert!(
        !prod.success && prod.stderr.contains("may act on staging only, not prod1"),
        "{}",
        prod.stderr
    );
    let infra = c.cli_as(&ci, &["infra", "plan"]);
    assert!(
        !infra.success && infra.stderr.contains("needs the admin role"),
        "{}",
        infra.stderr
    );
    let fleet_file = c.data_dir().join("fleet.toml");
    let apply = c.cli_as(&ci, &["fleet", "apply", fleet_file.to_str().unwrap()]);
    assert!(
        apply.code == Some(4) && apply.stderr.contains("needs the admin role"),
        "{}",
        apply.stderr
    );
    let issue = c.cli_as(
        &ci,
        &[
            "cert",
            "issue",
            "--name",
            "x",
            "--role",
            "admin",
            "--out",
            out("x").to_str().unwrap(),
        ],
    );
    assert!(
        !issue.success && issue.stderr.contains("needs the admin role"),
        "{}",
        issue.stderr
    );

    // Nobody issues agent certificates, and a typo in a role is named.
    let agent = c.cli(&[
        "cert",
        "issue",
        "--name",
        "i-fake",
        "--role",
        "agent",
        "--out",
        out("fake").to_str().unwrap(),
    ]);
    assert!(
        !agent.success && agent.stderr.contains("come from join tokens"),
        "{}",
        agent.stderr
    );
    let typo = c.cli(&[
        "cert",
        "issue",
        "--name",
        "bob",
        "--role",
        "root",
        "--out",
        out("bob").to_str().unwrap(),
    ]);
    assert!(
        !typo.success && typo.stderr.contains("\"root\" is not a role"),
        "{}",
        typo.stderr
    );

    // On the coordinator host, the CA issues certificates offline too.
    let offline = Command::new(binary("slipway-coordinator"))
        .arg("--data-dir")
        .arg(c.data_dir())
        .args(["ca", "issue", "--name", "olga", "--role", "admin", "--out"])
        .arg(out("olga"))
        .output()
        .unwrap();
    assert!(
        offline.status.success(),
        "{}",
        String::from_utf8_lossy(&offline.stderr)
    );
    assert!(
        c.cli_as(&out("olga").join("profile.toml"), &["infra", "plan"])
            .success
    );

    // Refusals are audited with who tried.
    let log = c.ok(&["audit", "--output", "json"]).json();
    let denied = log
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["who"] == "vera" && e["role"] == "viewer" && e["action"] == "deploy")
        .unwrap();
    assert!(
        denied["result"]
            .as_str()
            .unwrap()
            .starts_with("PermissionDenied"),
        "{denied}"
    );
}
