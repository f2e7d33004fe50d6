//! Callers who mean harm with what they are allowed to send: a deployer who
//! names a directory as an image, a scoped deployer who registers a release
//! for production, a caller who talks to the local cloud's socket directly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use slipway_coordinator::cloud::local::LocalCloud;
use slipway_coordinator::cloud::{Compute, LaunchRequest, Placement};
use slipway_tests::{Coordinator, TempDir};

/// What the local cloud calls an image's manifest (`image.rs`).
const MANIFEST: &str = "image.toml";

/// A directory laid out as a baked image (a real image's manifest beside it)
/// whose agent, if anything ever ran it, leaves a mark.
fn evil_image(c: &Coordinator, dir: &TempDir) -> (std::path::PathBuf, std::path::PathBuf) {
    let image = dir.path().join("evil");
    let mark = dir.path().join("it-ran");
    std::fs::create_dir_all(image.join("bin")).unwrap();
    let baked = std::fs::read_dir(c.data_dir().join("cloud/images"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join(MANIFEST).exists())
        .expect("a baked sample image");
    std::fs::copy(baked.join(MANIFEST), image.join(MANIFEST)).unwrap();
    let agent = image.join("bin/slipway-agent");
    std::fs::write(&agent, format!("#!/bin/sh\ntouch {}\n", mark.display())).unwrap();
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).unwrap();
    (image, mark)
}

#[test]
fn an_image_path_from_any_caller_never_runs_and_a_scoped_deployer_cannot_register() {
    let c = Coordinator::start();
    let dir = TempDir::new("hostile-callers");
    let (image, mark) = evil_image(&c, &dir);
    let image = image.to_str().unwrap();
    let ci = dir.path().join("ci");
    c.ok(&[
        "cert",
        "issue",
        "--name",
        "ci-staging",
        "--role",
        "deployer",
        "--env",
        "staging",
        "--out",
        ci.to_str().unwrap(),
    ]);
    let ci = ci.join("profile.toml");

    // The attack as reported: a staging-only deployer registers a directory.
    let refused = c.cli_as(&ci, &["release", "add", "hello", "evil1", "--image", image]);
    assert!(!refused.success);
    assert!(
        refused.stderr.contains("may not register releases"),
        "{}",
        refused.stderr
    );
    // Not even an admin may name a path as an image.
    let refused = c.cli(&["release", "add", "hello", "evil1", "--image", image]);
    assert!(!refused.success);
    assert!(
        refused.stderr.contains("is not an image id"),
        "{}",
        refused.stderr
    );
    let releases = c.ok(&["release", "list", "--output", "json"]).stdout;
    assert!(!releases.contains("evil1"), "{releases}");
    // The scoped deployer still deploys what CI registered.
    c.cli_as(&ci, &["deploy", "hello", "v1", "--env", "staging"]);

    // Whatever reaches the local cloud's socket, a path is not an image.
    let cloud = LocalCloud::new(&c.data_dir().join("cloud"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for image_id in [
        image.to_string(),
        format!("../../{image}"),
        "ami-12345678/../../x".into(),
    ] {
        let launched = runtime.block_on(cloud.launch(LaunchRequest {
            image_id: image_id.clone(),
            client_token: format!("hostile-{}", image_id.len()),
            user_data: String::new(),
            tags: BTreeMap::new(),
            placement: Placement::default(),
        }));
        let err = launched.expect_err("a path is refused").to_string();
        assert!(err.contains("is not an image id"), "{image_id}: {err}");
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(!mark.exists(), "the directory's agent ran");
}
