//! Agents: the stored record of every agent Slipway launched, and the hub of live
//! streams the coordinator talks to them through.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use slipway_proto::v1::{CoordinatorMessage, ServiceReport, ServiceStatus};
use tokio::sync::{Notify, mpsc};
use tonic::Status;
use tracing::warn;

use crate::clock::{Clock, Millis};
use crate::deploy::machine::AgentView;
pub use crate::deploy::machine::REDIAL_GRACE;
use crate::store::{Record, Table};

/// A service restarted this often without staying up fails the deployment.
const RESTARTS_BEFORE_FAILING: u32 = 3;

/// What an agent is told when its stream is refused or closed by a stop.
pub const STOPPING: &str = "the coordinator is stopping: reconnect shortly";

/// One service as operators read it: `web: running`, `web: running (2 restarts)`.
fn describe_service(s: &slipway_proto::v1::ServiceState) -> String {
    let status = match s.status() {
        ServiceStatus::Running => "running",
        ServiceStatus::Starting => "starting",
        ServiceStatus::Exited => "exited",
        ServiceStatus::Stopped => "stopped",
        ServiceStatus::Failed => "failed",
        ServiceStatus::Unspecified => "unknown",
    };
    match s.restarts {
        0 => format!("{}: {status}", s.name),
        1 => format!("{}: {status} (1 restart)", s.name),
        n => format!("{}: {status} ({n} restarts)", s.name),
    }
}

/// What the store keeps about an instance Slipway launched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    pub instance_id: String,
    pub project: String,
    pub environment: String,
    pub deployment_id: String,
    pub image_id: String,
    pub private_ip: String,
    pub launched_at: Millis,
}

impl Record for AgentRecord {
    const TABLE: Table = Table::Agents;
    fn key(&self) -> String {
        self.instance_id.clone()
    }
}

/// What an agent said about itself in its hello.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentHello {
    pub image_id: String,
    pub agent_version: String,
    pub private_ip: String,
}

pub type AgentSender = mpsc::Sender<Result<CoordinatorMessage, Status>>;

struct Session {
    /// Distinguishes a stream from the one that replaced it after a reconnect.
    stream: u64,
    sender: Option<AgentSender>,
    hello: AgentHello,
    view: AgentView,
}

/// The live state of every agent that has connected since the coordinator started.
pub struct AgentHub {
    clock: Arc<dyn Clock>,
    sessions: Mutex<HashMap<String, Session>>,
    next_stream: Mutex<u64>,
    /// Woken on every agent event, so deployments react without polling delay.
    pub changed: Notify,
}

impl std::fmt::Debug for AgentHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AgentHub")
    }
}

impl AgentHub {
    pub fn new(clock: Arc<dyn Clock>) -> AgentHub {
        AgentHub {
            clock,
            sessions: Mutex::default(),
            next_stream: Mutex::default(),
            changed: Notify::new(),
        }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new stream from `instance_id`; it replaces any earlier one.
    pub fn connect(&self, instance_id: &str, hello: AgentHello, sender: AgentSender) -> u64 {
        let stream = {
            let mut next = self.next_stream.lock().unwrap_or_else(|e| e.into_inner());
            *next += 1;
            *next
        };
        let mut sessions = self.sessions();
        let session = sessions
            .entry(instance_id.to_string())
            .or_insert_with(|| Session {
                stream,
                sender: None,
                hello: AgentHello::default(),
                view: AgentView::default(),
            });
        session.stream = stream;
        session.sender = Some(sender);
        session.hello = hello;
        session.view.connected = true;
        session.view.reported = false;
        session.view.last_seen = self.clock.now();
        // Configuration is re-sent on a new stream if the agent does not run it.
        session.view.config_sent = 0;
        drop(sessions);
        self.changed.notify_waiters();
        stream
    }

    pub fn disconnect(&self, instance_id: &str, stream: u64) {
        if let Some(session) = self.sessions().get_mut(instance_id)
            && session.stream == stream
        {
            session.sender = None;
            session.view.connected = false;
        }
        self.changed.notify_waiters();
    }

    fn update(&self, instance_id: &str, stream: u64, apply: impl FnOnce(&mut AgentView)) {
        if let Some(session) = self.sessions().get_mut(instance_id)
            && session.stream == stream
        {
            session.view.last_seen = self.clock.now();
            apply(&mut session.view);
        }
        self.changed.notify_waiters();
    }

    pub fn heartbeat(&self, instance_id: &str, stream: u64) {
        self.update(instance_id, stream, |_| {});
    }

    pub fn services(&self, instance_id: &str, stream: u64, report: &ServiceReport) {
        self.update(instance_id, stream, |view| {
            for service in &report.services {
                let before = view.restarts.get(&service.name).copied().unwrap_or(0);
                if service.restarts > before || service.status() == ServiceStatus::Failed {
                    warn!(
                        instance = %instance_id,
                        service = %service.name,
                        restarts = service.restarts,
                        status = service.status().as_str_name(),
                        detail = %service.detail,
                        "service exited on its instance"
                    );
                }
                view.restarts.insert(service.name.clone(), service.restarts);
            }
            view.services = report
                .services
                .iter()
                .map(describe_service)
                .collect::<Vec<_>>()
                .join(", ");
            view.config_applied = report.config_version;
            view.services_running = !report.services.is_empty()
                && report
                    .services
                    .iter()
                    .all(|s| s.status() == ServiceStatus::Running);
            view.failing_service = report
                .services
                .iter()
                .find(|s| {
                    s.status() == ServiceStatus::Failed
                        || (s.restarts >= RESTARTS_BEFORE_FAILING
                            && s.status() != ServiceStatus::Running)
                })
                .map(|s| {
                    format!(
                        "service {} keeps exiting ({}), restarted {} times",
                        s.name, s.detail, s.restarts
                    )
                });
        });
    }

    pub fn readiness(&self, instance_id: &str, stream: u64, ready: bool, detail: &str) {
        self.update(instance_id, stream, |view| {
            view.ready = ready;
            view.ready_detail = detail.to_string();
            view.reported = true;
        });
    }

    /// Closes an agent's stream at once with `status` (its certificate was revoked).
    pub fn kick(&self, instance_id: &str, status: Status) {
        if let Some(session) = self.sessions().get_mut(instance_id)
            && let Some(sender) = session.sender.take()
        {
            let _ = sender.try_send(Err(status));
            session.view.connected = false;
        }
        self.changed.notify_waiters();
    }

    /// Ends every agent's stream (the coordinator is stopping); agents reconnect
    /// with backoff, and their services keep running meanwhile.
    pub fn close_all(&self) {
        for session in self.sessions().values_mut() {
            if let Some(sender) = session.sender.take() {
                let _ = sender.try_send(Err(Status::unavailable(STOPPING)));
            }
            session.view.connected = false;
        }
        self.changed.notify_waiters();
    }

    pub fn view(&self, instance_id: &str) -> Option<AgentView> {
        self.sessions().get(instance_id).map(|s| s.view.clone())
    }

    pub fn hello(&self, instance_id: &str) -> Option<AgentHello> {
        self.sessions().get(instance_id).map(|s| s.hello.clone())
    }

    /// Sends configuration to a connected agent and notes which version it got.
    pub fn send_config(
        &self,
        instance_id: &str,
        version: u64,
        messages: Vec<CoordinatorMessage>,
    ) -> bool {
        let mut sessions = self.sessions();
        let Some(session) = sessions.get_mut(instance_id) else {
            return false;
        };
        let Some(sender) = &session.sender else {
            return false;
        };
        for message in messages {
            if sender.try_send(Ok(message)).is_err() {
                return false;
            }
        }
        session.view.config_sent = version;
        true
    }
}
