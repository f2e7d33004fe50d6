//! Hostile input on the gRPC port: old TLS, expired certificates, oversized and
//! out-of-range messages. Each gets a clear refusal, the coordinator keeps
//! serving, and nothing stored changes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use rcgen::{CertificateParams, DnType, Issuer, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls_pki_types::{CertificateDer, ServerName, pem::PemObject};
use slipway_proto::v1::agent_service_client::AgentServiceClient;
use slipway_proto::v1::operator_service_client::OperatorServiceClient;
use slipway_proto::v1::{BootstrapRequest, DeployRequest, RegisterReleaseRequest, StatusRequest};
use slipway_tests::{Coordinator, eventually};
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

fn channel(c: &Coordinator, identity: Option<(String, String)>) -> Channel {
    let ca = std::fs::read_to_string(c.data_dir().join("ca/ca.pem")).unwrap();
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("slipway-coordinator");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    Channel::from_shared(format!("https://{}", c.listen))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_lazy()
}

fn admin(c: &Coordinator) -> (String, String) {
    let dir = c.data_dir().join("operators/admin");
    (
        std::fs::read_to_string(dir.join("cert.pem")).unwrap(),
        std::fs::read_to_string(dir.join("key.pem")).unwrap(),
    )
}

/// What is stored, to compare before and after an attack.
fn stored(c: &Coordinator) -> (String, String) {
    (
        c.ok(&["release", "list", "--output", "json"]).stdout,
        c.ok(&["deployments", "--output", "json"]).stdout,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tls_1_2_only_client_is_refused() {
    let c = Coordinator::start();
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(c.data_dir().join("ca/ca.pem")).unwrap();
    roots
        .add(CertificateDer::from_pem_slice(&ca).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(&c.listen).await.unwrap();
    let result = connector
        .connect(ServerName::try_from("slipway-coordinator").unwrap(), tcp)
        .await;
    let err = result.expect_err("TLS 1.2 must not complete a handshake");
    assert!(
        err.to_string().contains("protocol version") || err.to_string().contains("alert"),
        "{err}"
    );
    eventually("the refusal to be logged", Duration::from_secs(10), || {
        c.log().contains("tls handshake refused").then_some(())
    });
    c.ok(&["status"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_certificate_from_the_right_ca_is_refused() {
    let c = Coordinator::start();
    let ca_dir = c.data_dir().join("ca");
    let ca_key =
        KeyPair::from_pem(&std::fs::read_to_string(ca_dir.join("ca.key")).unwrap()).unwrap();
    let issuer = Issuer::from_ca_cert_pem(
        &std::fs::read_to_string(ca_dir.join("ca.pem")).unwrap(),
        ca_key,
    )
    .unwrap();
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, "admin");
    params
        .distinguished_name
        .push(DnType::CommonName, "old-admin");
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let cert = params.signed_by(&key, &issuer).unwrap();
    let result = OperatorServiceClient::new(channel(&c, Some((cert.pem(), key.serialize_pem()))))
        .status(StatusRequest::default())
        .await;
    assert!(result.is_err(), "an expired certificate must get no answer");
    eventually("the refusal to be logged", Duration::from_secs(10), || {
        (c.log().contains("tls handshake refused") && c.log().contains("xpired")).then_some(())
    });
    c.ok(&["status"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_and_out_of_range_fields_are_refused_and_change_nothing() {
    let c = Coordinator::start();
    let before = stored(&c);
    let mut api = OperatorServiceClient::new(channel(&c, Some(admin(&c))));

    let huge = RegisterReleaseRequest {
        project: "hello".into(),
        version: "x".repeat(5 * 1024 * 1024),
        image_id: String::new(),
        provenance: None,
    };
    let err = api.register_release(huge).await.unwrap_err();
    assert!(
        matches!(err.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{err:?}"
    );

    let long = RegisterReleaseRequest {
        project: "hello".into(),
        version: "v".repeat(200),
        image_id: String::new(),
        provenance: None,
    };
    let err = api.register_release(long).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("is not a valid version"),
        "{}",
        err.message()
    );

    let nowhere = DeployRequest {
        project: "hello".into(),
        version: "v1".into(),
        environment: "../../etc".into(),
    };
    assert_eq!(
        api.deploy(nowhere).await.unwrap_err().code(),
        Code::NotFound
    );
    let blank = DeployRequest {
        project: String::new(),
        version: "v1".into(),
        environment: "staging".into(),
    };
    let err = api.deploy(blank).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::InvalidArgument, "project is required")
    );

    let mut agents = AgentServiceClient::new(channel(&c, None));
    let forged = BootstrapRequest {
        instance_id: "i-".repeat(5000),
        join_token: "0".repeat(64),
        csr_pem: "x".into(),
    };
    let err = agents.bootstrap(forged).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let garbage_csr = BootstrapRequest {
        instance_id: "i-1".into(),
        join_token: "0".repeat(64),
        csr_pem: "-----BEGIN NONSENSE-----".into(),
    };
    assert_eq!(
        agents.bootstrap(garbage_csr).await.unwrap_err().code(),
        Code::Unauthenticated,
        "the token is judged first"
    );

    assert_eq!(stored(&c), before, "nothing stored may change");
    c.ok(&["status"]);
}
