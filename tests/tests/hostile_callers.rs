//! Callers who mean harm with what they are allowed to send: a deployer who
//! names a directory as an image, a scoped deployer who registers a release
//! for production, a caller who talks to the local cloud's socket directly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
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
    // A well-formed id of no image is refused when registered, not at deploy time.
    let missing = c.cli(&[
        "release",
        "add",
        "hello",
        "v9",
        "--image",
        "ami-0123456789abcdef0",
    ]);
    assert!(!missing.success);
    assert!(
        missing.stderr.contains("does not exist in the local cloud"),
        "{}",
        missing.stderr
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

/// The open files of process `pid`.
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| entries.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_without_a_certificate_cannot_starve_the_coordinator() {
    let c = Coordinator::start_with_open_files(1024);
    let pid = c.pid().expect("a running coordinator");
    let limit = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    assert!(
        limit
            .lines()
            .any(|l| l.starts_with("Max open files") && l.contains(" 1024 ")),
        "{limit}"
    );
    let ca = std::fs::read(c.data_dir().join("ca/ca.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_slice(&ca).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls_pki_types::ServerName::try_from("slipway-coordinator").unwrap();
    // 1,100 idle TLS connections with no certificate, held open.
    let mut held = Vec::new();
    for _ in 0..1100 {
        let Ok(tcp) = tokio::net::TcpStream::connect(&c.listen).await else {
            continue;
        };
        if let Ok(Ok(tls)) =
            tokio::time::timeout(Duration::from_secs(5), connector.connect(name.clone(), tcp)).await
        {
            held.push(tls);
        }
    }
    // The coordinator kept only a few of them...
    let open = open_files(pid);
    assert!(open < 512, "the coordinator holds {open} files");
    // ...and an operator still gets an answer, within seconds.
    let started = std::time::Instant::now();
    let status = tokio::task::spawn_blocking({
        let profile = c.profile();
        move || slipway_tests::Coordinator::cli_command(&profile, &["status", "hello"]).output()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    drop(held);

    // One that shows no certificate and says nothing is closed by the
    // coordinator 30 s after its handshake (Limits::unauthenticated_lifetime).
    let tcp = tokio::net::TcpStream::connect(&c.listen).await.unwrap();
    let mut idle = connector.connect(name.clone(), tcp).await.unwrap();
    let opened = std::time::Instant::now();
    // The server speaks first (HTTP/2 settings); read until it closes.
    let mut sink = Vec::new();
    let closed = tokio::time::timeout(
        Duration::from_secs(45),
        tokio::io::AsyncReadExt::read_to_end(&mut idle, &mut sink),
    )
    .await;
    assert!(closed.is_ok(), "still open after 45 s");
    let lived = opened.elapsed();
    assert!(
        lived >= Duration::from_secs(25) && lived < Duration::from_secs(40),
        "an idle unauthenticated connection lived {lived:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_bootstraps_are_audited_once_a_minute_and_capped_per_address() {
    use slipway_proto::v1::BootstrapRequest;
    use slipway_proto::v1::agent_service_client::AgentServiceClient;
    use tonic::transport::{Certificate, Channel, ClientTlsConfig};

    let c = Coordinator::start();
    let ca = std::fs::read_to_string(c.data_dir().join("ca/ca.pem")).unwrap();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("slipway-coordinator");
    let channel = Channel::from_shared(format!("https://{}", c.listen))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_lazy();
    let mut client = AgentServiceClient::new(channel);
    // Forged tokens from one address: refused, then, past 60 refusals a
    // minute, turned away unheard.
    let mut turned_away = None;
    for i in 0..70 {
        let answer = client
            .bootstrap(BootstrapRequest {
                instance_id: format!("i-forged{i}"),
                join_token: "f".repeat(64),
                csr_pem: "not a csr".into(),
            })
            .await
            .unwrap_err();
        if answer.code() == tonic::Code::ResourceExhausted {
            turned_away = Some(i);
            break;
        }
        assert_eq!(answer.code(), tonic::Code::Unauthenticated, "{answer:?}");
    }
    assert_eq!(
        turned_away,
        Some(60),
        "the 61st refusal in a minute is turned away"
    );
    let log = c.ok(&["audit", "--output", "json"]).json();
    let refusals: Vec<_> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "bootstrap" && e["result"] != "ok")
        .collect();
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert!(
        refusals[0]["result"]
            .as_str()
            .unwrap()
            .starts_with("refused: join token is unknown"),
        "{refusals:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_log_releases_and_deployments_come_in_pages_and_the_cli_reads_them_all() {
    use slipway_proto::v1::operator_service_client::OperatorServiceClient;
    use slipway_proto::v1::{
        AuditRequest, DeploymentsRequest, ListReleasesRequest, RegisterReleaseRequest,
    };
    use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

    let c = Coordinator::start();
    let ca = std::fs::read_to_string(c.data_dir().join("ca/ca.pem")).unwrap();
    let admin = c.data_dir().join("operators/admin");
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .identity(Identity::from_pem(
            std::fs::read_to_string(admin.join("cert.pem")).unwrap(),
            std::fs::read_to_string(admin.join("key.pem")).unwrap(),
        ))
        .domain_name("slipway-coordinator");
    let channel = Channel::from_shared(format!("https://{}", c.listen))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut api = OperatorServiceClient::new(channel);
    // Refused registrations are audited too: more than a page of them.
    for i in 0..519 {
        let refused = api
            .register_release(RegisterReleaseRequest {
                project: format!("nope{i}"),
                version: "v1".into(),
                image_id: String::new(),
                provenance: None,
            })
            .await;
        assert!(refused.is_err());
    }
    // A field of 100 KB is refused by its size, not echoed back or logged.
    let huge = api
        .register_release(RegisterReleaseRequest {
            project: "p".repeat(100 * 1024),
            version: "v1".into(),
            image_id: String::new(),
            provenance: None,
        })
        .await
        .unwrap_err();
    assert_eq!(huge.code(), tonic::Code::InvalidArgument);
    assert!(huge.message().len() < 200, "{}", huge.message().len());
    // So is provenance: 100 KB of build URL is refused, shown cut.
    let long_url = api
        .register_release(RegisterReleaseRequest {
            project: "hello".into(),
            version: "v1".into(),
            image_id: String::new(),
            provenance: Some(slipway_proto::v1::Provenance {
                build_url: format!("https://ci/{}", "x".repeat(100 * 1024)),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(long_url.code(), tonic::Code::InvalidArgument);
    assert!(
        long_url.message().contains("--build-url") && long_url.message().len() < 300,
        "{}",
        long_url.message()
    );
    assert!(huge.message().contains("at most 256"), "{}", huge.message());
    assert!(c.log().len() < 1024 * 1024, "the log did not take it in");
    let first = api
        .audit(AuditRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.entries.len(), 500, "one page");
    assert_eq!(first.next_after_seq, first.entries[499].seq);

    let all = tokio::task::spawn_blocking({
        let profile = c.profile();
        move || {
            slipway_tests::Coordinator::cli_command(&profile, &["audit", "--output", "json"])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        all.status.success(),
        "{}",
        String::from_utf8_lossy(&all.stderr)
    );
    let entries: serde_json::Value = serde_json::from_slice(&all.stdout).unwrap();
    let seqs: Vec<u64> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert!(seqs.len() >= 520, "{}", seqs.len());
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "every entry once, in order"
    );

    // Releases and deployments come in pages too: more releases than a page
    // holds, listed whole by the CLI; a page token the server did not hand
    // out is refused.
    let image = api
        .list_releases(ListReleasesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .releases[0]
        .image_id
        .clone();
    for i in 0..1_001 {
        api.register_release(RegisterReleaseRequest {
            project: "hello".into(),
            version: format!("r{i}"),
            image_id: image.clone(),
            provenance: None,
        })
        .await
        .unwrap();
    }
    let first = api
        .list_releases(ListReleasesRequest {
            limit: 1_000_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.releases.len(), 1000, "capped at a page");
    assert!(!first.next_page_token.is_empty());
    let forged = api
        .deployments(DeploymentsRequest {
            page_token: "x".repeat(64),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(forged.code(), tonic::Code::InvalidArgument, "{forged:?}");
    let listed = tokio::task::spawn_blocking({
        let profile = c.profile();
        move || {
            slipway_tests::Coordinator::cli_command(&profile, &["release", "list", "-o", "json"])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let releases: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(
        releases.as_array().unwrap().len(),
        1_005,
        "the four sample releases and 1,001 more"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ca_rotation_and_renewal_take_nothing_a_caller_is_not_owed() {
    use slipway_proto::v1::operator_service_client::OperatorServiceClient;
    use slipway_proto::v1::{CaRotationRequest, RenewCertificateRequest};
    use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

    let c = Coordinator::start();
    let mut admin = OperatorServiceClient::new(c.admin_channel());
    // A step that is none: refused, its megabytes not echoed; nothing rotated.
    let bad = admin
        .rotate_ca(CaRotationRequest {
            step: "begin; rm -rf /".repeat(100_000),
            force: false,
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument, "{bad:?}");
    assert!(bad.message().len() < 200, "{} bytes", bad.message().len());
    let finish = admin
        .rotate_ca(CaRotationRequest {
            step: "finish".into(),
            force: true,
        })
        .await
        .unwrap_err();
    assert_eq!(finish.code(), tonic::Code::FailedPrecondition);
    assert!(finish.message().contains("no CA rotation"), "{finish:?}");
    let garbage = admin
        .renew_certificate(RenewCertificateRequest {
            csr_pem: "not a csr".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(garbage.code(), tonic::Code::InvalidArgument);
    assert!(garbage.message().contains("PKCS#10"), "{garbage:?}");

    // A viewer's renewal asking to be an admin named root gets a viewer's
    // certificate in its own name; it may not rotate.
    let dir = TempDir::new("renewal");
    let profile = c.issue(dir.path(), "vera", "viewer", &[]);
    let read = |name: &str| std::fs::read_to_string(profile.with_file_name(name)).unwrap();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read("ca.pem")))
        .identity(Identity::from_pem(read("cert.pem"), read("key.pem")))
        .domain_name("slipway-coordinator");
    let channel = Channel::from_shared(format!("https://{}", c.listen))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_lazy();
    let mut viewer = OperatorServiceClient::new(channel);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut asked = rcgen::CertificateParams::default();
    asked
        .distinguished_name
        .push(rcgen::DnType::OrganizationalUnitName, "admin");
    asked
        .distinguished_name
        .push(rcgen::DnType::CommonName, "root");
    let csr_pem = asked.serialize_request(&key).unwrap().pem().unwrap();
    let renewed = viewer
        .renew_certificate(RenewCertificateRequest { csr_pem })
        .await
        .unwrap()
        .into_inner();
    let der = rustls_pki_types::CertificateDer::from_pem_slice(renewed.certificate_pem.as_bytes())
        .unwrap();
    let identity = slipway_coordinator::pki::identity_from_der(&der).unwrap();
    assert_eq!(
        (identity.name.as_str(), identity.role.as_str()),
        ("vera", "viewer")
    );
    let refused = viewer
        .rotate_ca(CaRotationRequest {
            step: "begin".into(),
            force: false,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let status = admin
        .rotate_ca(CaRotationRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(status.previous.is_empty(), "nothing rotated: {status:?}");
}
