//! The agent's one stream to the coordinator: hello first, then heartbeats and
//! reports up, configuration and commands down. When the stream breaks, services
//! keep running and the agent reconnects with jittered exponential backoff.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use rand::Rng;
use slipway_proto::user_data::UserData;
use slipway_proto::v1::agent_service_client::AgentServiceClient;
use slipway_proto::v1::coordinator_message::Body as Down;
use slipway_proto::v1::{
    AgentMessage, Heartbeat, Hello, Readiness, ServiceReport, agent_message::Body as Up,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{info, warn};

use crate::AGENT_VERSION;
use crate::boot::InstanceMetadata;
use crate::identity::{AgentCredentials, endpoint};
use crate::supervisor::{Report, Supervisor};

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Keeps a session open for as long as the agent lives.
pub async fn run_forever(
    user_data: &UserData,
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
        match session(user_data, &current, metadata, &supervisor, &mut connected).await {
            Ok(()) => info!("coordinator closed the stream; reconnecting"),
            Err(e) => warn!(error = %e, "connection to the coordinator failed"),
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

fn report_messages(report: &Report) -> [AgentMessage; 2] {
    [
        up(Up::Services(ServiceReport {
            config_version: report.config_version,
            services: report.services.clone(),
        })),
        up(Up::Readiness(Readiness {
            ready: report.ready,
            detail: report.ready_detail.clone(),
        })),
    ]
}

async fn session(
    user_data: &UserData,
    credentials: &AgentCredentials,
    metadata: &InstanceMetadata,
    supervisor: &Arc<Supervisor>,
    connected: &mut bool,
) -> anyhow::Result<()> {
    let channel = endpoint(user_data, Some(credentials))?.connect().await?;
    let mut client = AgentServiceClient::new(channel);
    let (outbound, receiver) = mpsc::channel(32);
    outbound
        .send(up(Up::Hello(Hello {
            instance_id: metadata.instance_id.clone(),
            image_id: metadata.image_id.clone(),
            agent_version: AGENT_VERSION.to_string(),
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
    info!(coordinator = %user_data.coordinator, "connected");
    *connected = true;
    let mut heartbeat = tokio::time::interval(Duration::from_secs(1));
    let mut sequence = 0u64;
    loop {
        tokio::select! {
            message = inbound.message() => {
                let Some(message) = message? else { return Ok(()) };
                match message.body {
                    Some(Down::Welcome(welcome)) => {
                        let every = Duration::from_millis(u64::from(welcome.heartbeat_interval_ms.max(100)));
                        heartbeat = tokio::time::interval(every);
                    }
                    Some(Down::Configure(configure)) => {
                        info!(version = configure.version, release = %configure.release_version, "configuration received");
                        supervisor.configure(configure);
                    }
                    Some(Down::Start(start)) => {
                        if let Err(e) = supervisor.start(start.config_version) {
                            warn!(error = %e, "cannot start services");
                        }
                    }
                    Some(Down::Stop(_)) => supervisor.stop(),
                    None => warn!("empty message from the coordinator"),
                }
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
