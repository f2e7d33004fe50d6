//! A standby's relay of agents' streams to the leader. An agent may connect
//! to any coordinator; a standby checks its certificate as the leader would,
//! then opens a stream of its own to the leader, with a certificate of the
//! coordinator role, naming the agent (`RELAYED_AGENT`), and passes messages
//! both ways. The leader's commands so reach an agent wherever it connected,
//! and a takeover does not make every agent of the fleet redial at once:
//! those on a standby that now leads redial it, the others stay.
//!
//! Only a coordinator's certificate may name an agent: every coordinator
//! holds the CA key, so this grants nothing a coordinator could not do anyway.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use slipway_proto::v1::agent_service_client::AgentServiceClient;
use slipway_proto::v1::{AgentMessage, CoordinatorMessage};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity as TlsIdentity};
use tonic::{Request, Status, Streaming};
use tracing::debug;

use crate::pki::{Ca, Identity, Role, SERVER_NAME};
use crate::stopping::Stopping;

/// The metadata naming the agent a coordinator relays.
pub const RELAYED_AGENT: &str = "slipway-relayed-agent";

/// How long the relay's own certificate lives; it is made again at half that.
const CERTIFICATE_LIFE: Duration = Duration::from_secs(24 * 3600);

pub struct Relay {
    ca: std::sync::Arc<Ca>,
    /// Who relays, as the leader's log and audit see it.
    name: String,
    leader: watch::Receiver<Option<String>>,
    stopping: Stopping,
    tls: Mutex<Option<(Instant, ClientTlsConfig)>>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Relay")
    }
}

impl Relay {
    pub fn new(
        ca: std::sync::Arc<Ca>,
        name: &str,
        leader: watch::Receiver<Option<String>>,
        stopping: Stopping,
    ) -> Relay {
        Relay {
            ca,
            name: name.to_string(),
            leader,
            stopping,
            tls: Mutex::new(None),
        }
    }

    /// Where the leader takes calls, if one leads.
    pub fn leader(&self) -> Option<String> {
        self.leader.borrow().clone()
    }

    /// The TLS the relay calls the leader with: its own certificate, made
    /// again once half its life is gone.
    fn tls(&self) -> Result<ClientTlsConfig, Status> {
        let mut held = self.tls.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((made, tls)) = held.as_ref()
            && made.elapsed() < CERTIFICATE_LIFE / 2
        {
            return Ok(tls.clone());
        }
        let issued = self
            .ca
            .issue_client(
                &Identity::new(&self.name, Role::Coordinator),
                CERTIFICATE_LIFE,
            )
            .map_err(|e| Status::internal(format!("cannot make the relay's certificate: {e}")))?;
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(self.ca.trusted_pem()))
            .identity(TlsIdentity::from_pem(&issued.cert_pem, &issued.key_pem))
            .domain_name(SERVER_NAME);
        *held = Some((Instant::now(), tls.clone()));
        Ok(tls)
    }

    /// Relays `agent`'s stream to the leader; the leader's answer stream,
    /// which ends when either side's does or this standby stops.
    pub async fn connect(
        &self,
        agent: &str,
        mut inbound: Streaming<AgentMessage>,
    ) -> Result<ReceiverStream<Result<CoordinatorMessage, Status>>, Status> {
        let leader = self.leader().ok_or_else(|| super::standby::refusal(None))?;
        let unreachable = |e: &dyn std::fmt::Display| {
            Status::unavailable(format!(
                "this standby cannot reach the leader at {leader} to relay: {e}"
            ))
        };
        let channel = Endpoint::from_shared(leader.clone())
            .map_err(|e| unreachable(&e))?
            .tls_config(self.tls()?)
            .map_err(|e| unreachable(&e))?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .map_err(|e| unreachable(&e))?;
        // Up: running before the call, since the leader answers only once it
        // has the agent's hello.
        let (up, upward) = mpsc::channel::<AgentMessage>(32);
        let stopping = self.stopping.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    message = inbound.message() => match message {
                        Ok(Some(message)) => if up.send(message).await.is_err() { break },
                        _ => break,
                    },
                    () = stopping.asked() => break,
                    () = up.closed() => break,
                }
            }
        });
        let mut request = Request::new(ReceiverStream::new(upward));
        let named = agent
            .parse()
            .map_err(|_| Status::invalid_argument("the agent's name cannot be relayed"))?;
        request.metadata_mut().insert(RELAYED_AGENT, named);
        let mut downward = AgentServiceClient::new(channel)
            .max_decoding_message_size(super::MAX_MESSAGE_BYTES)
            .connect(request)
            .await?
            .into_inner();
        let (down, receiver) = mpsc::channel(32);
        let stopping = self.stopping.clone();
        let relayed = agent.to_string();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    message = downward.message() => {
                        let (forward, last) = match message {
                            Ok(Some(message)) => (Ok(message), false),
                            Ok(None) => break,
                            Err(status) => (Err(status), true),
                        };
                        if down.send(forward).await.is_err() || last {
                            break;
                        }
                    }
                    () = stopping.asked() => {
                        let _ = down
                            .send(Err(Status::unavailable("this standby is stopping: reconnect")))
                            .await;
                        break;
                    }
                    () = down.closed() => break,
                }
            }
            debug!(agent = %relayed, "relay ended");
        });
        Ok(ReceiverStream::new(receiver))
    }
}
