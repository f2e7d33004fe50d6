//! The coordinator's gRPC port: TLS 1.3 only, client certificates from the
//! coordinator's CA, the agent and operator services, plus the standard health
//! and reflection services for ordinary gRPC tools.
//!
//! The TLS handshake runs here rather than inside tonic so that refused
//! handshakes (no TLS, wrong CA, old protocol) are logged with their reason and
//! cannot stall the accept loop.

pub mod agent;
pub mod auth;
pub mod backup_client;
pub mod convert;
pub mod counted;
pub mod events;
pub mod limits;
pub mod logs;
pub mod operator;
pub mod relay;
pub mod standby;
pub mod status;
pub mod throttle;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use slipway_proto::v1::agent_service_server::AgentServiceServer;
use slipway_proto::v1::operator_service_server::OperatorServiceServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Server;
use tracing::{debug, warn};

use crate::admission::{Admission, Limits};
use crate::coordinator::Coordinator;
use crate::live_tls::LiveTls;
use crate::pki::Ca;

/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest message accepted on any RPC.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// Streams one connection may have open at once (HTTP/2 MAX_CONCURRENT_STREAMS):
/// an agent uses one, an operator a few.
const MAX_STREAMS: u32 = 64;
/// Longest a request handler may take before the call fails: long enough for
/// a promotion that waits for Route53, short enough that a request whose body
/// never comes does not stay parked.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("tls setup failed: {0}")]
    Tls(String),
    #[error("grpc server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// TLS 1.3 only; a client certificate is optional at the handshake (Bootstrap
/// needs none) but, when sent, must chain to a CA the coordinator trusts (two
/// during a rotation). Every RPC other than Bootstrap then requires one. The
/// server certificate is made for `names` by the CA that signs now.
pub fn tls_config(ca: &Ca, names: &[String]) -> Result<Arc<rustls::ServerConfig>, ServeError> {
    let err = |e: &dyn std::fmt::Display| ServeError::Tls(e.to_string());
    let server = ca.issue_server(names).map_err(|e| err(&e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca.trusted_pem().as_bytes()) {
        roots.add(cert.map_err(|e| err(&e))?).map_err(|e| err(&e))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| err(&e))?;
    let chain = CertificateDer::pem_slice_iter(server.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(&e))?;
    let key = PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes()).map_err(|e| err(&e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| err(&e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| err(&e))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The name of a revoked client certificate on this connection, if any.
fn revoked_peer(
    tls: &tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    coordinator: &Coordinator,
) -> Option<String> {
    let cert = tls.get_ref().1.peer_certificates()?.first()?;
    let identity = crate::pki::identity_from_der(cert.as_ref()).ok()?;
    coordinator
        .revocations
        .is_revoked(&identity.name)
        .then_some(identity.name)
}

/// Serves every service on `listener` until `shutdown` completes; a standby
/// (`standby.leader` set) answers reads only.
pub async fn serve(
    listener: Arc<TcpListener>,
    tls: Arc<LiveTls>,
    coordinator: Arc<Coordinator>,
    standby: standby::StandbyLayer,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let admission = Admission::new(Limits::default());
    let revoked_names = coordinator.clone();
    let revoked_attempts = throttle::AuditThrottle::new(coordinator.audit.clone());
    let (connections, incoming) = tokio::sync::mpsc::channel(64);
    let accept_loop = tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            // An answer larger than one segment would otherwise wait for the
            // client's delayed ACK (Nagle): 40 ms on every `status` of a fleet.
            let _ = tcp.set_nodelay(true);
            let Some(handshaking) = admission.handshake(peer.ip()) else {
                debug!(%peer, "connection refused: too many handshakes in progress");
                continue;
            };
            let acceptor = tls.acceptor();
            let connections = connections.clone();
            let revocations = revoked_names.clone();
            let admission = admission.clone();
            let revoked_attempts = revoked_attempts.clone();
            tokio::spawn(async move {
                let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await;
                drop(handshaking);
                match handshake {
                    Ok(Ok(tls)) => {
                        if let Some(name) = revoked_peer(&tls, &revocations) {
                            warn!(%peer, %name, "tls handshake refused: certificate revoked");
                            let who = format!("{name} (revoked)");
                            let target = peer.ip().to_string();
                            let entry = throttle::Entry {
                                who: &who,
                                certificate: "",
                                action: "handshake",
                                target: &target,
                                result: "refused: certificate revoked",
                            };
                            revoked_attempts
                                .append(&format!("handshake {name}"), entry)
                                .await;
                            return;
                        }
                        let connection = if tls.get_ref().1.peer_certificates().is_some() {
                            limits::Limited::authenticated(tls)
                        } else {
                            let Some(permit) = admission.unauthenticated(peer.ip()) else {
                                debug!(%peer, "connection closed: too many without a client certificate");
                                return;
                            };
                            limits::Limited::unauthenticated(tls, permit, admission.lifetime())
                        };
                        let _ = connections.send(Ok::<_, std::io::Error>(connection)).await;
                    }
                    Ok(Err(e)) => warn!(%peer, error = %e, "tls handshake refused"),
                    Err(_) => debug!(%peer, "tls handshake timed out"),
                }
            });
        }
    });

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<AgentServiceServer<agent::AgentApi>>()
        .await;
    health
        .set_serving::<OperatorServiceServer<operator::OperatorApi>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(slipway_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ServeError::Tls(format!("reflection: {e}")))?;

    // A standby relays agents' streams to the leader it follows.
    let relay = standby.leader.clone().map(|leader| {
        Arc::new(relay::Relay::new(
            coordinator.ca.clone(),
            // Named by its address in the leader's log.
            &coordinator.executor.launch.coordinator,
            leader,
            coordinator.stopping.clone(),
        ))
    });
    let agents = AgentServiceServer::new(agent::AgentApi::new(&coordinator).relaying(relay))
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let operators = OperatorServiceServer::new(operator::OperatorApi::new(&coordinator))
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let result = Server::builder()
        .max_concurrent_streams(Some(MAX_STREAMS))
        .timeout(REQUEST_TIMEOUT)
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(Duration::from_secs(5)))
        .layer(counted::CountLayer::new(coordinator.metrics.clone()))
        .layer(standby)
        .add_service(tonic::service::interceptor::InterceptedService::new(
            health_service,
            auth::require_certificate,
        ))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            reflection,
            auth::require_certificate,
        ))
        .add_service(agents)
        .add_service(operators)
        .serve_with_incoming_shutdown(ReceiverStream::new(incoming), shutdown)
        .await;
    accept_loop.abort();
    result.map_err(Into::into)
}
