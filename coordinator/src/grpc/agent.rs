//! The agent service: Bootstrap (token + CSR for a certificate) and Connect (the
//! long-lived stream of one agent).

use std::sync::Arc;
use std::time::Duration;

use slipway_proto::v1::agent_message::Body;
use slipway_proto::v1::agent_service_server::AgentService;
use slipway_proto::v1::{
    self as pb, AgentMessage, BootstrapRequest, BootstrapResponse, CoordinatorMessage, RenewRequest,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{info, warn};

use slipway_common::protocol;

use super::auth;
use crate::agents::{AgentHello, AgentHub, AgentLink, AgentRecords};
use crate::audit::AuditLog;
use crate::config::CoordinatorSettings;
use crate::coordinator::Coordinator;
use crate::pki::Ca;
use crate::pki::{Identity, Role};
use crate::revocation::Revocations;
use crate::stopping::Stopping;
use crate::tokens::JoinTokens;
use slipway_domain::agent::{Closing, ServiceReport, ToAgent};

/// An agent must say hello this soon after opening its stream.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest field values accepted from an agent.
const MAX_ID: usize = 64;
const MAX_CSR: usize = 8 * 1024;

#[derive(Debug)]
pub struct AgentApi {
    tokens: Arc<JoinTokens>,
    audit: Arc<AuditLog>,
    ca: Arc<Ca>,
    /// The coordinator's own settings, which change only at a start.
    settings: CoordinatorSettings,
    agents: Arc<AgentHub>,
    /// The agents table: only instances Slipway launched may open a stream.
    agent_records: AgentRecords,
    revocations: Arc<Revocations>,
    stopping: Stopping,
    /// Refused Bootstraps, audited at a bounded rate.
    refusals: super::throttle::AuditThrottle,
    /// Refused Bootstraps per address: past the limit, turned away unheard.
    refused_per_peer: super::throttle::RateLimit,
    metrics: Arc<crate::metrics::Metrics>,
    /// On a standby: where agents' streams go (to the leader).
    relay: Option<Arc<super::relay::Relay>>,
}

/// Refused Bootstraps one address may make a minute before it is turned away
/// without its token being looked at. A token not yet bound is not a refusal
/// (its agent retries until the launch is recorded); a real agent is refused
/// once or twice at most, for a used or expired token.
const REFUSED_BOOTSTRAPS_PER_MINUTE: u32 = 60;

impl AgentApi {
    pub fn new(coordinator: &Coordinator) -> Self {
        AgentApi {
            tokens: coordinator.tokens.clone(),
            audit: coordinator.audit.clone(),
            ca: coordinator.ca.clone(),
            settings: coordinator.fleets.current().fleet.coordinator.clone(),
            agents: coordinator.agents.clone(),
            agent_records: coordinator.agent_records.clone(),
            revocations: coordinator.revocations.clone(),
            stopping: coordinator.stopping.clone(),
            refusals: super::throttle::AuditThrottle::new(coordinator.audit.clone()),
            refused_per_peer: super::throttle::RateLimit::new(REFUSED_BOOTSTRAPS_PER_MINUTE),
            metrics: coordinator.metrics.clone(),
            relay: None,
        }
    }

    /// A standby's: agents' streams are relayed to the leader.
    pub fn relaying(mut self, relay: Option<Arc<super::relay::Relay>>) -> Self {
        self.relay = relay;
        self
    }
}

/// The agent a stream is for: its certificate's holder, or, on a stream a
/// standby relays (only a coordinator's certificate may), the agent it names;
/// and who relays it, if anyone.
fn agent_on<T>(
    request: &Request<T>,
    revocations: &Revocations,
) -> Result<(Identity, Option<String>), Status> {
    let caller = auth::caller(request, revocations)?;
    if caller.identity.role != Role::Coordinator {
        caller.require(Role::Agent)?;
        return Ok((caller.identity, None));
    }
    let named = request
        .metadata()
        .get(super::relay::RELAYED_AGENT)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            Status::permission_denied(
                "a coordinator's certificate opens an agent stream only to relay one, naming the agent",
            )
        })?;
    check_instance_id(named)?;
    if revocations.is_revoked(named) {
        return Err(Status::permission_denied(format!(
            "the certificates of {named} were revoked"
        )));
    }
    Ok((
        Identity::new(named, Role::Agent),
        Some(caller.identity.name),
    ))
}

/// Longest hello field (image id, agent version, address) accepted.
const MAX_HELLO_FIELD: usize = 128;
/// Longest text kept from an agent's reports (a service's name or detail, a
/// readiness detail): an agent cuts its own, but one that does not must not
/// grow the hub, the log or a deployment's reason at will.
const MAX_REPORTED: usize = 2048;
/// Services kept from one report.
const MAX_SERVICES: usize = 64;

/// `text` cut at `max` bytes (on a character boundary), marked as cut.
fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// A service report with each field and the list bounded.
fn bounded(mut report: ServiceReport) -> ServiceReport {
    report.services.truncate(MAX_SERVICES);
    for s in &mut report.services {
        s.name = cut(std::mem::take(&mut s.name), MAX_HELLO_FIELD);
        s.detail = cut(std::mem::take(&mut s.detail), MAX_REPORTED);
    }
    report
}

/// A message's kind, as `slipway_agent_stream_messages_total` counts it.
fn kind_of(body: &Option<Body>) -> &'static str {
    match body {
        Some(Body::Hello(_)) => "hello",
        Some(Body::Heartbeat(_)) => "heartbeat",
        Some(Body::Services(_)) => "services",
        Some(Body::Readiness(_)) => "readiness",
        Some(Body::Migrations(_)) => "migrations",
        Some(Body::Logs(_)) => "logs",
        None => "empty",
    }
}

fn check_instance_id(id: &str) -> Result<(), Status> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "instance_id {:?} is not an instance id (1-{MAX_ID} of a-z, 0-9, '-')",
            id.chars().take(MAX_ID).collect::<String>()
        )))
    }
}

/// An agent's stream as the hub sees it: domain messages in, the wire out.
struct StreamLink(mpsc::Sender<Result<CoordinatorMessage, Status>>);

impl AgentLink for StreamLink {
    fn send(&self, message: ToAgent) -> bool {
        wire(message)
            .into_iter()
            .all(|message| self.0.try_send(message).is_ok())
    }
}

/// What goes down the stream for `message`: configuration is followed by the
/// command to start it; a close ends the stream with a status.
fn wire(message: ToAgent) -> Vec<Result<CoordinatorMessage, Status>> {
    use pb::coordinator_message::Body as Down;
    let down = |body| Ok(CoordinatorMessage { body: Some(body) });
    match message {
        ToAgent::Welcome { heartbeat_interval } => vec![down(Down::Welcome(pb::Welcome {
            heartbeat_interval_ms: u32::try_from(heartbeat_interval.as_millis())
                .unwrap_or(u32::MAX),
        }))],
        ToAgent::Run(configuration) => vec![
            down(Down::Configure(pb::Configure::from(&*configuration))),
            down(Down::Start(pb::StartServices {
                config_version: configuration.version,
            })),
        ],
        ToAgent::Migrate(command) => vec![down(Down::Migrate(pb::Migrate::from(&command)))],
        ToAgent::Tail(ask) => vec![down(Down::Tail(pb::TailLogs::from(&ask)))],
        ToAgent::StopTail(request) => vec![down(Down::StopTail(pb::StopTail { request }))],
        ToAgent::Close(closing) => vec![Err(match closing {
            Closing::Stopping => Status::unavailable(closing.to_string()),
            Closing::Revoked { .. } => Status::permission_denied(closing.to_string()),
        })],
    }
}

#[tonic::async_trait]
impl AgentService for AgentApi {
    async fn bootstrap(
        &self,
        request: Request<BootstrapRequest>,
    ) -> Result<Response<BootstrapResponse>, Status> {
        let peer = request
            .remote_addr()
            .map_or_else(|| "unknown".to_string(), |a| a.ip().to_string());
        let request = request.into_inner();
        if self.refused_per_peer.exhausted(&peer) {
            return Err(Status::resource_exhausted(format!(
                "too many refused bootstraps from {peer}: wait a minute"
            )));
        }
        check_instance_id(&request.instance_id)?;
        if request.join_token.is_empty() || request.join_token.len() > 128 {
            return Err(Status::invalid_argument(
                "join_token must be the token from the launch's user-data",
            ));
        }
        if request.csr_pem.is_empty() || request.csr_pem.len() > MAX_CSR {
            return Err(Status::invalid_argument(format!(
                "csr_pem must be a PEM request under {MAX_CSR} bytes"
            )));
        }
        let c = self;
        // The token is judged first; a CSR that cannot become a certificate is
        // refused then, without using the token up.
        let key = crate::pki::Ca::csr_key_fingerprint(&request.csr_pem).map_err(|e| e.to_string());
        let redeemed = c
            .tokens
            .redeem(&request.join_token, &request.instance_id, key)
            .await;
        let who = format!("{} (agent)", request.instance_id);
        match &redeemed {
            Ok(_) => {
                let appended = c
                    .audit
                    .append(
                        &who,
                        "none (join token)",
                        "bootstrap",
                        &request.instance_id,
                        "ok",
                    )
                    .await;
                if let Err(e) = appended {
                    return Err(super::status::audit_unwritable(&e));
                }
            }
            // Anyone may try without a certificate: refusals are audited once a
            // minute per address, counting the rest.
            Err(e) => {
                if !matches!(e, crate::tokens::TokenError::NotYetBound) {
                    self.refused_per_peer.count(&peer);
                }
                let result = format!("refused: {e}");
                let entry = super::throttle::Entry {
                    who: &who,
                    certificate: "none (join token)",
                    action: "bootstrap",
                    target: &request.instance_id,
                    result: &result,
                };
                c.refusals
                    .append(&format!("bootstrap from {peer}"), entry)
                    .await;
            }
        }
        let token = redeemed.inspect_err(|e| {
            warn!(instance = %request.instance_id, error = %e, "bootstrap refused");
        })?;
        let identity = Identity::new(&request.instance_id, Role::Agent);
        let (certificate_pem, expires_at_ms) =
            c.ca.sign_csr(
                &request.csr_pem,
                &identity,
                c.settings.agent_certificate_lifetime,
            )
            .map_err(|e| super::status::of(&e))?;
        info!(instance = %request.instance_id, deployment_id = %token.deployment_id, "agent bootstrapped");
        Ok(Response::new(BootstrapResponse {
            certificate_pem,
            expires_at_ms,
            ca_pem: c.ca.trusted_pem(),
        }))
    }

    type ConnectStream = ReceiverStream<Result<CoordinatorMessage, Status>>;

    async fn connect(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        let (identity, relayed_by) = agent_on(&request, &self.revocations)?;
        if let Some(relay) = &self.relay {
            if relayed_by.is_some() {
                return Err(Status::failed_precondition(
                    "this coordinator stands by: a relayed stream is not relayed again",
                ));
            }
            let relayed = relay.connect(&identity.name, request.into_inner()).await?;
            return Ok(Response::new(relayed));
        }
        if let Some(by) = &relayed_by {
            info!(agent = %identity.name, relayed_by = %by, "agent stream relayed by a standby");
        }
        // A relayed stream shows the standby's certificate, not the agent's.
        let certificate_ca = match relayed_by {
            Some(_) => None,
            None => request
                .peer_certs()
                .and_then(|certs| certs.first().and_then(|c| self.ca.signer(c.as_ref()))),
        }
        .unwrap_or_default();
        let mut inbound = request.into_inner();
        let hello = match tokio::time::timeout(HELLO_TIMEOUT, inbound.message()).await {
            Ok(Ok(Some(AgentMessage {
                body: Some(Body::Hello(hello)),
            }))) => hello,
            Ok(Err(status)) => return Err(status),
            Err(_) => return Err(Status::deadline_exceeded("no hello within 10s")),
            Ok(Ok(_)) => {
                return Err(Status::invalid_argument(
                    "the first message on a stream must be hello",
                ));
            }
        };
        if hello.instance_id != identity.name {
            let claimed = cut(hello.instance_id, MAX_HELLO_FIELD);
            warn!(certificate = %identity.name, %claimed, "agent claimed another instance");
            return Err(Status::permission_denied(format!(
                "this certificate belongs to {}, not {claimed}",
                identity.name
            )));
        }
        for (field, value) in [
            ("image_id", &hello.image_id),
            ("agent_version", &hello.agent_version),
            ("private_ip", &hello.private_ip),
        ] {
            if value.len() > MAX_HELLO_FIELD {
                return Err(Status::invalid_argument(format!(
                    "hello's {field} is {} bytes: at most {MAX_HELLO_FIELD}",
                    value.len()
                )));
            }
        }
        let protocol = protocol::spoken(hello.protocol);
        if let Err(refused) = protocol::admit(protocol, protocol::AGENT_PROTOCOL) {
            warn!(instance = %identity.name, version = %cut(hello.agent_version, MAX_HELLO_FIELD), "{refused}");
            return Err(Status::failed_precondition(refused));
        }
        let c = self;
        if c.stopping.is_asked() {
            return Err(Status::unavailable(Closing::Stopping.to_string()));
        }
        if c.agent_records
            .get(&identity.name)
            .await
            .map_err(|e| super::status::of(&e))?
            .is_none()
        {
            return Err(Status::permission_denied(format!(
                "{} is not an instance Slipway launched",
                identity.name
            )));
        }
        let (sender, receiver) = mpsc::channel(32);
        let link = StreamLink(sender);
        if !link.send(ToAgent::Welcome {
            heartbeat_interval: c.settings.heartbeat_interval,
        }) {
            return Err(Status::cancelled("stream closed"));
        }
        let instance = identity.name.clone();
        let stream = c.agents.connect(
            &instance,
            AgentHello {
                image_id: hello.image_id,
                agent_version: hello.agent_version,
                private_ip: hello.private_ip,
                protocol,
                certificate_ca,
            },
            Box::new(link),
        );
        // A stop that began while this stream was being set up closed the
        // streams it saw; this one it may have missed. Checked after the stream
        // is in the hub (a stop sets the flag before it closes streams), so one
        // or the other closes it and the server's graceful stop never waits on it.
        if c.stopping.is_asked() {
            c.agents.close_all();
        }
        info!(%instance, "agent connected");
        let agents = self.agents.clone();
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            loop {
                let message = inbound.message().await;
                if let Ok(Some(m)) = &message {
                    metrics.agent_messages.inc(&[kind_of(&m.body)]);
                }
                match message {
                    Ok(Some(message)) => match message.body {
                        Some(Body::Heartbeat(_)) => agents.heartbeat(&instance, stream),
                        Some(Body::Services(report)) => agents.services(
                            &instance,
                            stream,
                            &bounded(ServiceReport::from(report)),
                        ),
                        Some(Body::Readiness(r)) => agents.readiness(
                            &instance,
                            stream,
                            r.ready,
                            &cut(r.detail, MAX_REPORTED),
                        ),
                        Some(Body::Migrations(report)) => {
                            agents.migrations(&instance, stream, report.into())
                        }
                        Some(Body::Logs(lines)) => agents.log_lines(&instance, lines.into()),
                        Some(Body::Hello(_)) | None => {
                            warn!(%instance, "unexpected message on an agent stream; ignoring it");
                        }
                    },
                    Ok(None) => break,
                    Err(status) => {
                        info!(%instance, error = %status.message(), "agent stream broke");
                        break;
                    }
                }
            }
            agents.disconnect(&instance, stream);
            info!(%instance, "agent disconnected");
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    async fn renew(
        &self,
        request: Request<RenewRequest>,
    ) -> Result<Response<BootstrapResponse>, Status> {
        let caller = auth::require(&request, &self.revocations, Role::Agent)?;
        let csr_pem = request.into_inner().csr_pem;
        if csr_pem.is_empty() || csr_pem.len() > MAX_CSR {
            return Err(Status::invalid_argument(format!(
                "csr_pem must be a PEM request under {MAX_CSR} bytes"
            )));
        }
        let c = self;
        let signed =
            c.ca.sign_csr(
                &csr_pem,
                &caller.identity,
                c.settings.agent_certificate_lifetime,
            )
            .map_err(|e| super::status::of(&e));
        let result = match &signed {
            Ok(_) => "ok".to_string(),
            Err(status) => format!("{:?}: {}", status.code(), status.message()),
        };
        if let Err(e) = c
            .audit
            .append(
                &caller.to_string(),
                &caller.certificate,
                "renew",
                &caller.identity.name,
                &result,
            )
            .await
        {
            return Err(super::status::audit_unwritable(&e));
        }
        let (certificate_pem, expires_at_ms) = signed?;
        info!(instance = %caller.identity.name, expires_at_ms, "agent certificate renewed");
        if let Some(signer) = c.ca.signer_pem(&certificate_pem) {
            c.agents.certificate_renewed(&caller.identity.name, &signer);
        }
        Ok(Response::new(BootstrapResponse {
            certificate_pem,
            expires_at_ms,
            ca_pem: c.ca.trusted_pem(),
        }))
    }
}
