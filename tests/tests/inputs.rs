//! Bad input at the edges gets a clear, one-line error and a non-zero exit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use slipway_tests::{Coordinator, TempDir, binary};

#[test]
fn a_bad_fleet_file_stops_the_coordinator_with_file_key_and_fix() {
    let dir = TempDir::new("fleet");
    let fleet = dir.path().join("fleet.toml");
    std::fs::write(
        &fleet,
        "[environments.staging]\ninstances = 0\n[projects.web]\ninstance_port = 80\nservices = [{ name = \"web\", command = \"app\" }]\nhealth_check = { path = \"/\", port = 80 }\n",
    )
    .unwrap();
    let output = Command::new(binary("slipway-coordinator"))
        .args(["--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0", "--fleet"])
        .arg(&fleet)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains(&format!(
            "{}: environments.staging.instances: 0 instances is out of range: use 1-1000",
            fleet.display()
        )),
        "{stderr}"
    );

    std::fs::write(
        &fleet,
        "[environments.staging]\ninstances = 1\nflavour = \"large\"\n",
    )
    .unwrap();
    let output = Command::new(binary("slipway-coordinator"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--fleet")
        .arg(&fleet)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("unknown field `flavour`"),
        "{stderr}"
    );
}

#[test]
fn the_cli_without_a_profile_says_where_to_get_one() {
    let dir = TempDir::new("noprofile");
    let output = Command::new(binary("slipway"))
        .arg("status")
        .current_dir(dir.path())
        .env_remove("SLIPWAY_PROFILE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("no profile at .slipway/profile.toml") && stderr.contains("--dev"),
        "{stderr}"
    );
}

#[test]
fn the_cli_names_unknown_projects_environments_and_versions() {
    let dev = Coordinator::start();
    let cases = [
        (
            vec!["deploy", "nope", "v1", "--env", "staging"],
            "no project \"nope\" in the fleet file",
        ),
        (
            vec!["deploy", "hello", "v1", "--env", "moon"],
            "no environment \"moon\"",
        ),
        (
            vec!["deploy", "hello", "v7", "--env", "staging"],
            "no release hello@v7; known versions of hello (newest first): v3-bad-migration, broken, v2, v1",
        ),
        (
            vec!["deploy", "hello", "../v1", "--env", "staging"],
            "is not a valid version",
        ),
        (
            vec!["release", "add", "hello", "v9"],
            "no image tagged slipway:project=hello slipway:version=v9",
        ),
        (vec!["show", "d-404"], "no deployment \"d-404\""),
    ];
    for (args, expected) in cases {
        let run = dev.cli(&args);
        assert!(!run.success, "{args:?} should fail");
        assert!(run.stderr.contains(expected), "{args:?}: {}", run.stderr);
        assert_eq!(
            run.stderr.trim().lines().count(),
            1,
            "{args:?}: one line: {}",
            run.stderr
        );
    }
}

#[test]
fn a_coordinator_that_is_down_is_named_in_the_error() {
    let mut dev = Coordinator::start();
    dev.kill();
    let run = dev.cli(&["status"]);
    assert!(!run.success);
    assert!(
        run.stderr.contains(&format!(
            "cannot reach the coordinator at https://{}",
            dev.listen
        )),
        "{}",
        run.stderr
    );
}
