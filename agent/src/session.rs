//! Everything the agent says to the coordinator, and the only module that speaks
//! the wire: Bootstrap and Renew for its certificate, then its one stream:
//! hello first, heartbeats and reports up, configuration and commands down.
//! When the stream breaks, services keep running and the agent reconnects with
//! jittered exponential backoff.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, bail};

use rand::Rng;
use slipway_common::user_data::UserData;
use slipway_domain::agent::{Configuration, LogChunk, MigrationCommand, ServiceReport, TailAsk};
use slipway_domain::clock::{Clock, SystemClock};
use slipway_proto::v1::agent_service_client::AgentServiceClient;
use slipway_proto::v1::coordinator_message::Body as Down;
use slipway_proto::v1::{
    self as pb, AgentMessage, Heartbeat, Hello, Readiness, agent_message::Body as Up,
};
use slipway_proto::v1::{BootstrapRequest, BootstrapResponse, RenewRequest};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tracing::{info, warn};

use crate::AGENT_VERSION;
use crate::boot::InstanceMetadata;
use crate::coordinators::Coordinators;
use crate::identity::{self, AgentCredentials, Signed};
use crate::supervisor::{Report, Supervisor};

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Longest the agent keeps retrying a token the coordinator has not bound yet.
const BOOTSTRAP_PATIENCE: Duration = Duration::from_secs(60);

/// A TLS endpoint to the coordinator at `address`, verified against the CAs
/// it last named (`AgentCredentials::trust`), else the user-data CA.
fn endpoint(
    address: &str,
    user_data: &UserData,
    credentials: Option<&AgentCredentials>,
) -> anyhow::Result<Endpoint> {
    let trust = credentials.map_or(user_data.ca_pem.as_str(), |c| c.trust(user_data));
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(trust))
        .domain_name(&user_data.server_name);
    if let Some(c) = credentials {
        tls = tls.identity(tonic::transport::Identity::from_pem(
            &c.cert_pem,
            &c.key_pem,
        ));
    }
    Ok(Channel::from_shared(address.to_string())
        .with_context(|| format!("coordinator address {address:?} is invalid"))?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5)))
}

/// The leader's address in a standby's refusal, if it is an https:// one.
fn leader_named(status: &tonic::Status) -> Option<String> {
    let named = status.metadata().get(slipway_common::LEADER_METADATA)?;
    slipway_common::leader_address(named.as_bytes())
}

fn signed(response: BootstrapResponse) -> Signed {
    Signed {
        certificate_pem: response.certificate_pem,
        expires_at_ms: response.expires_at_ms,
        ca_pem: response.ca_pem,
    }
}

/// The stored certificate if it is still valid, else a new one through Bootstrap.
pub async fn credentials(
    user_data: &UserData,
    coordinators: &Coordinators,
    instance_id: &str,
    state_dir: &Path,
) -> anyhow::Result<AgentCredentials> {
    if let Some(stored) = identity::stored(state_dir, SystemClock.now()) {
        return Ok(stored);
    }
    let (key, csr_pem) = identity::key_and_csr(instance_id)?;
    let request = BootstrapRequest {
        instance_id: instance_id.to_string(),
        join_token: user_data.join_token.clone(),
        csr_pem,
    };
    let started = std::time::Instant::now();
    let response = loop {
        let address = coordinators.current();
        let channel = endpoint(&address, user_data, None)?.connect_lazy();
        let answer = AgentServiceClient::new(channel)
            .bootstrap(request.clone())
            .await;
        if let Err(status) = &answer
            && status.code() == Code::Unavailable
        {
            coordinators.move_on(&address, leader_named(status));
        }
        match answer {
            Ok(response) => break response.into_inner(),
            // Not yet bound to this instance, or the coordinator is briefly away
            // (a crash mid-answer shows as a transport error). A retry sends the
            // same key, which the coordinator recognises if it already said yes.
            Err(status)
                if matches!(
                    status.code(),
                    Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded
                ) && started.elapsed() < BOOTSTRAP_PATIENCE =>
            {
                warn!(error = %status.message(), "bootstrap not possible yet; retrying");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(status) => bail!(
                "bootstrap refused ({:?}): {}",
                status.code(),
                status.message()
            ),
        }
    };
    identity::adopt(
        state_dir,
        &key,
        signed(response),
        SystemClock.now(),
        "certificate issued",
    )
}

/// Renews the certificate over mTLS with the current one, before it expires.
pub async fn renew(
    user_data: &UserData,
    coordinators: &Coordinators,
    instance_id: &str,
    state_dir: &Path,
    current: &AgentCredentials,
) -> anyhow::Result<AgentCredentials> {
    let (key, csr_pem) = identity::key_and_csr(instance_id)?;
    let address = coordinators.current();
    let channel = match endpoint(&address, user_data, Some(current))?
        .connect()
        .await
    {
        Ok(channel) => channel,
        Err(e) => {
            coordinators.move_on(&address, None);
            return Err(e.into());
        }
    };
    let response = AgentServiceClient::new(channel)
        .renew(RenewRequest { csr_pem })
        .await
        .map_err(|status| {
            if status.code() == Code::Unavailable {
                coordinators.move_on(&address, leader_named(&status));
            }
            anyhow::anyhow!(
                "renewal refused ({:?}): {}",
                status.code(),
                status.message()
            )
        })?
        .into_inner();
    identity::adopt(
        state_dir,
        &key,
        signed(response),
        SystemClock.now(),
        "certificate renewed",
    )
}

/// Keeps a session open for as long as the agent lives.
pub async fn run_forever(
    user_data: &UserData,
    coordinators: &Coordinators,
    credentials: &RwLock<AgentCredentials>,
    metadata: &InstanceMetadata,
    supervisor: Arc<Supervisor>,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        // The newest certificate: renewal swaps it in for the next connection.
        let current = credentials
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut connected = false;
        let address = coordinators.current();
        let session = session(
            &address,
            user_data,
            &current,
            metadata,
            &supervisor,
            &mut connected,
        );
        match session.await {
            Ok(()) => info!("coordinator closed the stream; reconnecting"),
            Err(e) => {
                warn!(coordinator = %address, error = %e, "connection to the coordinator failed");
                // Not the stream breaking later (the same coordinator is
                // tried again first): it could not be opened here.
                if !connected {
                    coordinators.move_on(
                        &address,
                        e.downcast_ref::<tonic::Status>().and_then(leader_named),
                    );
                }
            }
        }
        // A stream that was open counts as a success even if it broke (the
        // coordinator crashed, say): without this reset, every restart a
        // long-lived agent lives through would slow its next reconnect.
        if connected {
            backoff = FIRST_BACKOFF;
        }
        // Jitter spreads a fleet's reconnects after a coordinator restart.
        let jittered = backoff.mul_f64(rand::rng().random_range(0.5..1.5));
        tokio::time::sleep(jittered).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn up(body: Up) -> AgentMessage {
    AgentMessage { body: Some(body) }
}

fn report_messages(report: &Report) -> [AgentMessage; 3] {
    [
        up(Up::Migrations(pb::MigrationReport::from(
            report.migrations.as_slice(),
        ))),
        up(Up::Services(pb::ServiceReport::from(&ServiceReport {
            config_version: report.config_version,
            services: report.services.clone(),
        }))),
        up(Up::Readiness(Readiness {
            ready: report.ready,
            detail: report.ready_detail.clone(),
        })),
    ]
}

async fn session(
    address: &str,
    user_data: &UserData,
    credentials: &AgentCredentials,
    metadata: &InstanceMetadata,
    supervisor: &Arc<Supervisor>,
    connected: &mut bool,
) -> anyhow::Result<()> {
    let channel = endpoint(address, user_data, Some(credentials))?
        .connect()
        .await?;
    let mut client = AgentServiceClient::new(channel);
    let (outbound, receiver) = mpsc::channel(32);
    outbound
        .send(up(Up::Hello(Hello {
            instance_id: metadata.instance_id.clone(),
            image_id: metadata.image_id.clone(),
            agent_version: AGENT_VERSION.to_string(),
            protocol: slipway_common::protocol::AGENT_PROTOCOL,
            private_ip: metadata.private_ip.clone(),
        })))
        .await?;
    // What runs now, so a restarted coordinator sees it at once. Subscribe
    // before reading it: a change while the stream opens (the health check
    // passing, say) must be sent too, not marked as already seen.
    let mut reports = supervisor.subscribe();
    let current = reports.borrow_and_update().clone();
    for message in report_messages(&current) {
        outbound.send(message).await?;
    }
    let mut inbound = client
        .connect(ReceiverStream::new(receiver))
        .await?
        .into_inner();
    info!(coordinator = %address, "connected");
    *connected = true;
    let mut heartbeat = tokio::time::interval(Duration::from_secs(1));
    let mut sequence = 0u64;
    // Requests for services' output, answered on this stream; they end with it.
    let mut tails = crate::tail::Tails::new(supervisor.logs());
    let (chunks, mut chunks_read) = mpsc::channel::<LogChunk>(64);
    loop {
        tokio::select! {
            message = inbound.message() => {
                let Some(message) = message? else { return Ok(()) };
                match message.body {
                    Some(Down::Welcome(welcome)) => {
                        let every = Duration::from_millis(u64::from(welcome.heartbeat_interval_ms.max(100)));
                        heartbeat = tokio::time::interval(every);
                    }
                    Some(Down::Configure(configure)) => match Configuration::try_from(configure) {
                        Ok(configure) => {
                            info!(version = configure.version, release = %configure.release_version, "configuration received");
                            supervisor.configure(configure);
                        }
                        Err(e) => warn!(error = %e, "configuration refused"),
                    },
                    Some(Down::Start(start)) => {
                        if let Err(e) = supervisor.start(start.config_version) {
                            warn!(error = %e, "cannot start services");
                        }
                    }
                    Some(Down::Stop(_)) => supervisor.stop(),
                    Some(Down::Migrate(migrate)) => match MigrationCommand::try_from(migrate) {
                        Ok(command) => supervisor.migrate(command),
                        Err(e) => warn!(error = %e, "migration refused"),
                    },
                    Some(Down::Tail(tail)) => tails.start(TailAsk::from(tail), chunks.clone()),
                    Some(Down::StopTail(stop)) => tails.stop(stop.request),
                    None => warn!("empty message from the coordinator"),
                }
            }
            Some(chunk) = chunks_read.recv() => {
                outbound.send(up(Up::Logs(pb::LogLines::from(&chunk)))).await?;
            }
            _ = heartbeat.tick() => {
                sequence += 1;
                outbound.send(up(Up::Heartbeat(Heartbeat { sequence }))).await?;
            }
            changed = reports.changed() => {
                changed?;
                let report = reports.borrow_and_update().clone();
                for message in report_messages(&report) {
                    outbound.send(message).await?;
                }
            }
        }
    }
}
