//! Agents: the stored record of every agent Slipway launched (`AgentRecords`,
//! the agents table's one owner), and the hub of live streams the coordinator
//! talks to them through.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc};
use tracing::warn;

use crate::clock::{Clock, Millis};
use crate::deploy::machine::AgentView;
pub use crate::deploy::machine::REDIAL_GRACE;
use crate::store::{Changes, Db, Record, StoreError, Table};
use slipway_domain::agent::{
    Closing, Configuration, LogChunk, MigrationCommand, MigrationState, ServiceReport, TailAsk,
    ToAgent,
};

/// Chunks of output queued for one reader before it loses lines.
const TAIL_QUEUE: usize = 256;

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

/// The agents table: written with a launch (in its batch), read to vouch for
/// a stream and to list agents.
#[derive(Debug, Clone)]
pub struct AgentRecords {
    db: Db,
}

impl AgentRecords {
    pub fn new(db: Db) -> AgentRecords {
        AgentRecords { db }
    }

    /// Adds `record` to a batch (the launch's: token binding, record and
    /// deployment commit together).
    pub fn record(changes: &mut Changes, record: &AgentRecord) -> Result<(), StoreError> {
        changes.put(record)?;
        Ok(())
    }

    /// The record of an instance Slipway launched, if it did.
    pub async fn get(&self, instance_id: &str) -> Result<Option<AgentRecord>, StoreError> {
        self.db.get(instance_id).await
    }

    /// Every record, in instance id order.
    pub async fn all(&self) -> Result<Vec<AgentRecord>, StoreError> {
        self.db.all().await
    }
}

/// What an agent said about itself in its hello.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentHello {
    pub image_id: String,
    pub agent_version: String,
    pub private_ip: String,
    /// The agent protocol version it speaks (`slipway_common::protocol`).
    pub protocol: u32,
    /// Fingerprint of the CA that signed the certificate it connected with
    /// or last renewed; empty when a standby relays it.
    pub certificate_ca: String,
}

/// One agent's open stream, as the hub writes to it (the gRPC layer puts the
/// wire behind it).
pub trait AgentLink: Send + Sync {
    /// Queues `message` without waiting; false if the stream is gone or full.
    fn send(&self, message: ToAgent) -> bool;
}

struct Session {
    /// Distinguishes a stream from the one that replaced it after a reconnect.
    stream: u64,
    link: Option<Box<dyn AgentLink>>,
    hello: AgentHello,
    view: AgentView,
}

/// The live state of every agent that has connected since the coordinator started.
pub struct AgentHub {
    clock: Arc<dyn Clock>,
    sessions: Mutex<HashMap<String, Session>>,
    next_stream: Mutex<u64>,
    /// Output requests in flight: request → (instance, where its lines go).
    tails: Mutex<HashMap<u64, (String, mpsc::Sender<LogChunk>)>>,
    next_tail: std::sync::atomic::AtomicU64,
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
            tails: Mutex::default(),
            next_tail: std::sync::atomic::AtomicU64::new(1),
            changed: Notify::new(),
        }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new stream from `instance_id`; it replaces any earlier one.
    pub fn connect(&self, instance_id: &str, hello: AgentHello, link: Box<dyn AgentLink>) -> u64 {
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
                link: None,
                hello: AgentHello::default(),
                view: AgentView::default(),
            });
        session.stream = stream;
        session.link = Some(link);
        session.hello = hello;
        session.view.connected = true;
        session.view.reported = false;
        session.view.migrations_reported = false;
        session.view.migrations_sent.clear();
        session.view.last_seen = self.clock.now();
        // Configuration is re-sent on a new stream if the agent does not run it.
        session.view.config_sent = 0;
        drop(sessions);
        self.changed.notify_waiters();
        stream
    }

    /// `instance_id`'s agent renewed its certificate, signed by `ca`: it
    /// connects with that one next time.
    pub fn certificate_renewed(&self, instance_id: &str, ca: &str) {
        if let Some(session) = self.sessions().get_mut(instance_id) {
            session.hello.certificate_ca = ca.to_string();
        }
    }

    /// Connected agents and the CA of each one's certificate
    /// (`AgentHello::certificate_ca`).
    pub fn certificate_cas(&self) -> Vec<(String, String)> {
        self.sessions()
            .iter()
            .filter(|(_, s)| s.view.connected)
            .map(|(id, s)| (id.clone(), s.hello.certificate_ca.clone()))
            .collect()
    }

    pub fn disconnect(&self, instance_id: &str, stream: u64) {
        if let Some(session) = self.sessions().get_mut(instance_id)
            && session.stream == stream
        {
            session.link = None;
            session.view.connected = false;
            // Its output requests end with it: their readers see the end.
            self.tails_lock()
                .retain(|_, (instance, _)| instance != instance_id);
        }
        self.changed.notify_waiters();
    }

    fn tails_lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<u64, (String, mpsc::Sender<LogChunk>)>> {
        self.tails.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks `instance_id`'s agent for a service's output; the answer comes on
    /// the receiver, which ends with a `done` chunk or when the agent goes.
    /// None: the agent is not connected.
    pub fn tail(
        &self,
        instance_id: &str,
        service: Option<String>,
        lines: u32,
        follow: bool,
    ) -> Option<(u64, mpsc::Receiver<LogChunk>)> {
        let request = self
            .next_tail
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (sender, receiver) = mpsc::channel(TAIL_QUEUE);
        self.tails_lock()
            .insert(request, (instance_id.to_string(), sender));
        let ask = TailAsk {
            request,
            service,
            lines,
            follow,
        };
        let sent = self
            .sessions()
            .get(instance_id)
            .and_then(|s| s.link.as_ref())
            .is_some_and(|link| link.send(ToAgent::Tail(ask)));
        if !sent {
            self.tails_lock().remove(&request);
            return None;
        }
        Some((request, receiver))
    }

    /// Stops request `request` (its reader went away).
    pub fn stop_tail(&self, request: u64) {
        let Some((instance_id, _)) = self.tails_lock().remove(&request) else {
            return;
        };
        if let Some(link) = self
            .sessions()
            .get(&instance_id)
            .and_then(|s| s.link.as_ref())
        {
            link.send(ToAgent::StopTail(request));
        }
    }

    /// Lines from `instance_id`'s agent: to the request's reader, if it is
    /// still there and it is this agent's request. A reader that does not keep
    /// up loses lines rather than grow the coordinator's memory.
    pub fn log_lines(&self, instance_id: &str, chunk: LogChunk) {
        let mut tails = self.tails_lock();
        let Some((asked_of, sender)) = tails.get(&chunk.request) else {
            return;
        };
        if asked_of != instance_id {
            return;
        }
        let (request, done) = (chunk.request, chunk.done);
        let gone = matches!(
            sender.try_send(chunk),
            Err(mpsc::error::TrySendError::Closed(_))
        );
        if done || gone {
            tails.remove(&request);
        }
    }

    /// Marks the agent heard from and applies what it said.
    fn touch(&self, instance_id: &str, stream: u64, apply: impl FnOnce(&mut AgentView)) {
        if let Some(session) = self.sessions().get_mut(instance_id)
            && session.stream == stream
        {
            session.view.last_seen = self.clock.now();
            apply(&mut session.view);
        }
    }

    /// `touch`, then wakes whoever waits on agents (deployments' executors).
    fn update(&self, instance_id: &str, stream: u64, apply: impl FnOnce(&mut AgentView)) {
        self.touch(instance_id, stream, apply);
        self.changed.notify_waiters();
    }

    /// A heartbeat wakes nobody: it changes only `last_seen`, which matters
    /// as time passes (an agent lost), and executors look again every tick
    /// anyway. Waking every running deployment at each of 10,000 agents'
    /// heartbeats re-ran their steps 10,000 times a second.
    pub fn heartbeat(&self, instance_id: &str, stream: u64) {
        self.touch(instance_id, stream, |_| {});
    }

    pub fn services(&self, instance_id: &str, stream: u64, report: &ServiceReport) {
        self.update(instance_id, stream, |view| {
            for service in view.apply_report(report) {
                warn!(
                    instance = %instance_id,
                    service = %service.name,
                    restarts = service.restarts,
                    status = service.status.as_str(),
                    detail = %service.detail,
                    "service exited on its instance"
                );
            }
        });
    }

    pub fn readiness(&self, instance_id: &str, stream: u64, ready: bool, detail: &str) {
        self.update(instance_id, stream, |view| {
            view.ready = ready;
            view.ready_detail = detail.to_string();
            view.reported = true;
        });
    }

    /// The migration runs the agent knows, as it reports them.
    pub fn migrations(&self, instance_id: &str, stream: u64, runs: Vec<MigrationState>) {
        self.update(instance_id, stream, |view| {
            view.migrations = runs;
            view.migrations_reported = true;
        });
    }

    /// Sends a migration command to a connected agent, noting that this
    /// stream carried it (the agent's reports may predate it for a moment).
    pub fn send_migration(&self, instance_id: &str, command: &MigrationCommand) -> bool {
        let mut sessions = self.sessions();
        let Some(session) = sessions.get_mut(instance_id) else {
            return false;
        };
        let Some(link) = &session.link else {
            return false;
        };
        if !link.send(ToAgent::Migrate(command.clone())) {
            return false;
        }
        session.view.migrations_sent.push(command.run_id.clone());
        true
    }

    /// Closes an agent's stream at once (its certificate was revoked).
    pub fn kick(&self, instance_id: &str, closing: Closing) {
        if let Some(session) = self.sessions().get_mut(instance_id)
            && let Some(link) = session.link.take()
        {
            link.send(ToAgent::Close(closing));
            session.view.connected = false;
        }
        self.changed.notify_waiters();
    }

    /// Ends every agent's stream (the coordinator is stopping); agents reconnect
    /// with backoff, and their services keep running meanwhile.
    pub fn close_all(&self) {
        for session in self.sessions().values_mut() {
            if let Some(link) = session.link.take() {
                link.send(ToAgent::Close(Closing::Stopping));
            }
            session.view.connected = false;
        }
        self.changed.notify_waiters();
    }

    /// Every agent seen since the coordinator started, as last observed.
    /// The agents lost at `now` (silent past `lost_after`, or disconnected),
    /// with when each was last heard from. Read in place: a fleet of 10,000
    /// is looked at every second, and few of them are lost.
    pub fn lost(&self, now: Millis, lost_after: Millis) -> Vec<(String, Millis)> {
        self.sessions()
            .iter()
            .filter(|(_, s)| {
                crate::deploy::machine::Connection::of(Some(&s.view), now, lost_after)
                    == crate::deploy::machine::Connection::Lost
            })
            .map(|(id, s)| (id.clone(), s.view.last_seen))
            .collect()
    }

    pub fn views(&self) -> Vec<(String, AgentView)> {
        self.sessions()
            .iter()
            .map(|(id, s)| (id.clone(), s.view.clone()))
            .collect()
    }

    pub fn view(&self, instance_id: &str) -> Option<AgentView> {
        self.sessions().get(instance_id).map(|s| s.view.clone())
    }

    pub fn hello(&self, instance_id: &str) -> Option<AgentHello> {
        self.sessions().get(instance_id).map(|s| s.hello.clone())
    }

    /// Sends configuration to a connected agent and notes which version it got.
    pub fn send_config(&self, instance_id: &str, configuration: &Configuration) -> bool {
        let mut sessions = self.sessions();
        let Some(session) = sessions.get_mut(instance_id) else {
            return false;
        };
        let Some(link) = &session.link else {
            return false;
        };
        if !link.send(ToAgent::Run(Box::new(configuration.clone()))) {
            return false;
        }
        session.view.config_sent = configuration.version;
        true
    }
}
