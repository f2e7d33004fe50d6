//! Trust: TLS 1.3 with client certificates from the coordinator's CA on every RPC
//! but Bootstrap; one-time join tokens; hostile bytes on the port.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, PKCS_ECDSA_P256_SHA256};
use slipway_proto::v1::agent_service_client::AgentServiceClient;
use slipway_proto::v1::operator_service_client::OperatorServiceClient;
use slipway_proto::v1::{AgentMessage, BootstrapRequest, Hello, StatusRequest, agent_message};
use slipway_tests::{Coordinator, strings};
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

fn ca_pem(dev: &Coordinator) -> String {
    std::fs::read_to_string(dev.data_dir().join("ca/ca.pem")).unwrap()
}

/// A channel that trusts the coordinator's CA and presents `identity`, if any.
fn channel(dev: &Coordinator, identity: Option<(String, String)>) -> Channel {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem(dev)))
        .domain_name("slipway-coordinator");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    Channel::from_shared(format!("https://{}", dev.listen))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_lazy()
}

fn csr(name: &str) -> String {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.serialize_request(&key).unwrap().pem().unwrap()
}

/// An "admin" certificate signed by a CA the coordinator never saw.
fn foreign_admin() -> (String, String) {
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca_params = CertificateParams::default();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Slipway CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, "admin");
    params.distinguished_name.push(DnType::CommonName, "admin");
    let cert = params.signed_by(&key, &issuer).unwrap();
    drop(ca_cert);
    (cert.pem(), key.serialize_pem())
}

fn hello(instance: &str) -> AgentMessage {
    AgentMessage {
        body: Some(agent_message::Body::Hello(Hello {
            instance_id: instance.into(),
            image_id: String::new(),
            agent_version: "test".into(),
            private_ip: String::new(),
            protocol: slipway_common::protocol::AGENT_PROTOCOL,
        })),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_client_certificate_only_bootstrap_answers() {
    let dev = Coordinator::start();
    let anonymous = channel(&dev, None);

    let err = OperatorServiceClient::new(anonymous.clone())
        .status(StatusRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert!(
        err.message().contains("no client certificate"),
        "{}",
        err.message()
    );

    let stream = tokio_stream_once(hello("i-nobody"));
    let err = AgentServiceClient::new(anonymous.clone())
        .connect(stream)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");

    let mut health = tonic_health_client(anonymous.clone());
    let err = health.check(tonic_health_request()).await.unwrap_err();
    assert_eq!(
        err.code(),
        Code::Unauthenticated,
        "health must require a certificate too: {err:?}"
    );

    // Bootstrap is reached without a certificate: it judges the token, not the caller.
    let request = BootstrapRequest {
        instance_id: "i-0".into(),
        join_token: "f".repeat(64),
        csr_pem: csr("i-0"),
    };
    let err = AgentServiceClient::new(anonymous)
        .bootstrap(request)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(
        err.message().contains("join token is unknown"),
        "{}",
        err.message()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_from_another_ca_is_refused_and_the_right_one_still_works() {
    let dev = Coordinator::start();
    let result = OperatorServiceClient::new(channel(&dev, Some(foreign_admin())))
        .status(StatusRequest::default())
        .await;
    let err = result.expect_err("a foreign certificate must not get an answer");
    assert_ne!(err.code(), Code::Ok);
    slipway_tests::eventually(
        "the coordinator to log why it refused",
        Duration::from_secs(10),
        || dev.log().contains("tls handshake refused").then_some(()),
    );
    dev.ok(&["status"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_join_token_works_once_and_agents_stay_in_their_lane() {
    let dev = Coordinator::start();
    dev.ok(&["deploy", "hello", "v1", "--env", "staging", "--wait"]);
    let history = dev.ok(&["deployments", "--output", "json"]).json();
    let instance = strings(&history[0]["new_instances"]).remove(0);
    let instance_dir = dev.data_dir().join("cloud/instances").join(&instance);
    let user_data = std::fs::read_to_string(instance_dir.join("user-data")).unwrap();
    assert!(
        !user_data.contains("PRIVATE KEY"),
        "user-data must never carry a key"
    );
    let token = user_data
        .lines()
        .find_map(|l| l.strip_prefix("join_token = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_string();

    let anonymous = AgentServiceClient::new(channel(&dev, None));
    let replay = BootstrapRequest {
        instance_id: instance.clone(),
        join_token: token,
        csr_pem: csr(&instance),
    };
    let err = anonymous.clone().bootstrap(replay).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("already used"), "{}", err.message());

    // The agent's own certificate: an agent, not an operator, and only itself.
    let cert = std::fs::read_to_string(instance_dir.join("agent/agent.pem")).unwrap();
    let key = std::fs::read_to_string(instance_dir.join("agent/agent.key")).unwrap();
    let as_agent = channel(&dev, Some((cert, key)));
    let err = OperatorServiceClient::new(as_agent.clone())
        .status(StatusRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains("needs the viewer role"),
        "{}",
        err.message()
    );
    let err = AgentServiceClient::new(as_agent.clone())
        .connect(tokio_stream_once(hello("i-someone-else")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");

    // An agent's own megabytes go no further than the edge (hostile callers,
    // item 5): a huge claimed id is not echoed back, a huge version is refused
    // before the hub, the log or `slipway agents` see it.
    let err = AgentServiceClient::new(as_agent.clone())
        .connect(tokio_stream_once(hello(&"i".repeat(3_000_000))))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::PermissionDenied,
        "{}",
        &err.message()[..200]
    );
    assert!(
        err.message().len() < 400,
        "{} bytes echoed",
        err.message().len()
    );
    let mut huge = hello(&instance);
    if let Some(agent_message::Body::Hello(h)) = &mut huge.body {
        h.agent_version = "9".repeat(3_000_000);
    }
    let err = AgentServiceClient::new(as_agent)
        .connect(tokio_stream_once(huge))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::InvalidArgument,
        "{}",
        &err.message()[..200]
    );
    assert!(
        err.message()
            .contains("agent_version is 3000000 bytes: at most 128"),
        "{}",
        err.message()
    );
    assert!(dev.log().len() < 1_000_000, "the log took the megabytes");
    let agents = dev.ok(&["agents", "-o", "json"]).stdout;
    assert!(!agents.contains("999999999"), "{agents}");
}

#[test]
fn garbage_and_plain_http_on_the_port_leave_the_coordinator_serving() {
    let dev = Coordinator::start();
    for bytes in [
        &b"\x00\x01\x02garbage\xff\xfe"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ] {
        let mut stream = std::net::TcpStream::connect(&dev.listen).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(bytes).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        assert!(
            !String::from_utf8_lossy(&answer).contains("HTTP/1.1 200"),
            "plaintext must get no answer"
        );
    }
    dev.ok(&["status"]);
}

fn tokio_stream_once(
    message: AgentMessage,
) -> impl tonic::IntoStreamingRequest<Message = AgentMessage> {
    tokio_stream::iter(vec![message])
}

fn tonic_health_client(channel: Channel) -> tonic_health::pb::health_client::HealthClient<Channel> {
    tonic_health::pb::health_client::HealthClient::new(channel)
}

fn tonic_health_request() -> tonic_health::pb::HealthCheckRequest {
    tonic_health::pb::HealthCheckRequest {
        service: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn standard_grpc_tools_get_health_and_reflection_with_a_certificate() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let dev = Coordinator::start();
    let admin = dev.data_dir().join("operators/admin");
    let identity = (
        std::fs::read_to_string(admin.join("cert.pem")).unwrap(),
        std::fs::read_to_string(admin.join("key.pem")).unwrap(),
    );
    let channel = channel(&dev, Some(identity));
    let health = tonic_health_client(channel.clone())
        .check(tonic_health_request())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        health.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("{reply:?}")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for service in [
        "slipway.v1.AgentService",
        "slipway.v1.OperatorService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == service),
            "{service} missing from {names:?}"
        );
    }
}
