//! Hollow agents: thousands of agents played by one process, for the
//! instances of images that carry no agent of their own (the local cloud
//! boots nothing for those, as EC2 would for an AMI without one).
//!
//! Each is an agent as the coordinator sees it: its own ECDSA key and
//! certificate, bootstrapped with the join token in its instance's user-data;
//! its own mTLS stream, dialled from its instance's own address; heartbeats at
//! the interval the coordinator's welcome asks for; reports of the services it
//! is told to start, and readiness. It runs no service: it answers its
//! instance's first health check itself, so the load balancer finds it healthy.
//! After a broken stream it redials with the real agent's backoff and jitter
//! (`agent/src/session.rs`), so a reconnect storm is spread as a fleet's is.
//!
//! What `slipway-bench agents` uses to put 10,000 agents on one coordinator.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use slipway_common::protocol::AGENT_PROTOCOL;
use slipway_common::user_data::UserData;
use slipway_coordinator::cloud::local::LocalCloud;
use slipway_coordinator::deploy::machine::InstanceState;
use slipway_proto::v1::agent_message::Body as Up;
use slipway_proto::v1::agent_service_client::AgentServiceClient;
use slipway_proto::v1::coordinator_message::Body as Down;
use slipway_proto::v1::{
    AgentMessage, BootstrapRequest, Heartbeat, Hello, LogLines, MigrationReport, MigrationState,
    Readiness, ServiceReport, ServiceState, ServiceStatus,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// The real agent's redial policy: 200 ms doubling to 5 s, each wait × 0.5-1.5.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Heartbeat send times kept per agent, to match with what the coordinator saw.
const SENT_KEPT: usize = 8;
/// How often the local cloud is asked for new and terminated instances.
const LOOK_EVERY: Duration = Duration::from_millis(500);

/// One played agent.
#[derive(Debug)]
pub struct Played {
    pub instance_id: String,
    pub private_ip: String,
    /// A stream is open and welcomed.
    connected: AtomicBool,
    /// Heartbeats stop (the stream stays open): an agent frozen in place.
    silent: AtomicBool,
    /// Streams welcomed so far (1 once connected; more after reconnects).
    sessions: AtomicU64,
    /// Unix µs of its last heartbeats, newest last.
    sent: Mutex<VecDeque<i64>>,
    /// Why its last stream ended, as the coordinator said it.
    ended: Mutex<Option<String>>,
    task: Mutex<Option<AbortHandle>>,
}

impl Played {
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    pub fn sessions(&self) -> u64 {
        self.sessions.load(Ordering::SeqCst)
    }

    /// Why its last stream ended (a refusal, say), if one did.
    pub fn ended(&self) -> Option<String> {
        self.ended.lock().unwrap().clone()
    }

    /// Stops its heartbeats from now on; the unix ms of the last one sent.
    pub fn fall_silent(&self) -> Option<i64> {
        self.silent.store(true, Ordering::SeqCst);
        self.sent.lock().unwrap().back().map(|us| us / 1000)
    }

    /// How long after it was sent the coordinator took in the heartbeat it
    /// stamped `last_seen_ms` (its clock is ms; the result is ± 0.5 ms): the
    /// newest heartbeat sent by then. None if none was.
    pub fn heartbeat_delay_ms(&self, last_seen_ms: i64) -> Option<f64> {
        let sent = self.sent.lock().unwrap();
        let until = last_seen_ms * 1000 + 999;
        let at = sent.iter().rev().find(|us| **us <= until)?;
        Some(((last_seen_ms as f64 + 0.5) - *at as f64 / 1000.0).max(0.0))
    }
}

/// The environment hollow projects run in.
pub const ENVIRONMENT: &str = "hollow";

/// The sample fleet with an environment `hollow` (where `hello`'s staging
/// store serves too: a project with a migration needs one everywhere).
pub fn sample_fleet() -> String {
    let fleet = slipway_coordinator::sample::SAMPLE_FLEET.replace(
        "environments = [\"staging\"]",
        "environments = [\"staging\", \"hollow\"]",
    );
    assert_ne!(fleet, slipway_coordinator::sample::SAMPLE_FLEET);
    fleet + "\n[environments.hollow]\ninstances = 1\n"
}

/// A project of `instances` instances in `hollow`, each answering its health
/// check on port 8080; `deadlines` is the body of its `deadlines` table.
pub fn project(name: &str, instances: usize, deadlines: &str) -> String {
    format!(
        r#"
[projects.{name}]
instance_port = 8080
services = [{{ name = "web", command = "bin/app" }}]
instances = {{ hollow = {instances} }}

[projects.{name}.health_check]
path = "/health"
port = 8080

[projects.{name}.deadlines]
{deadlines}
"#
    )
}

/// The agents played for a local cloud's agentless instances.
pub struct Hollow {
    agents: Arc<Mutex<HashMap<String, Arc<Played>>>>,
    watch: AbortHandle,
}

impl Hollow {
    /// Plays an agent for every running instance of `projects` whose image
    /// has no agent, in the local cloud of `data_dir` (and stops playing it
    /// once it is terminated); answers health checks on `health_port`. Call
    /// inside a Tokio runtime.
    pub fn start(data_dir: &Path, projects: &[String], health_port: u16) -> Hollow {
        Hollow::start_speaking(data_dir, projects, health_port, AGENT_PROTOCOL)
    }

    /// `start`, the agents' hellos naming agent protocol version `protocol`
    /// (0: none, as agents from before the hello carried one).
    pub fn start_speaking(
        data_dir: &Path,
        projects: &[String],
        health_port: u16,
        protocol: u32,
    ) -> Hollow {
        let agents: Arc<Mutex<HashMap<String, Arc<Played>>>> = Arc::default();
        let cloud_dir = data_dir.join("cloud");
        let watching = agents.clone();
        let projects = projects.to_vec();
        let watch = tokio::spawn(async move {
            let cloud = LocalCloud::new(&cloud_dir);
            let agentless = |image: &str| {
                !cloud_dir
                    .join("images")
                    .join(image)
                    .join(slipway_coordinator::cloud::local::AGENT)
                    .exists()
            };
            loop {
                // A project at a time: every instance of 10,000 at once is
                // more than one answer of the local cloud may carry.
                let mut instances = Vec::new();
                for project in &projects {
                    let tag = [("slipway:project".to_string(), project.clone())];
                    if let Ok(found) = cloud.all_instances(&tag.into_iter().collect()).await {
                        instances.extend(found);
                    }
                }
                {
                    let mut agents = watching.lock().unwrap();
                    for instance in instances {
                        let known = agents.get(&instance.id).cloned();
                        match (instance.state, known) {
                            (InstanceState::Gone, Some(played)) => {
                                if let Some(task) = played.task.lock().unwrap().take() {
                                    task.abort();
                                }
                                agents.remove(&instance.id);
                            }
                            (InstanceState::Running | InstanceState::Pending, None)
                                if agentless(&instance.image_id) =>
                            {
                                let played = Arc::new(Played {
                                    instance_id: instance.id.clone(),
                                    private_ip: instance.private_ip.clone(),
                                    connected: AtomicBool::new(false),
                                    silent: AtomicBool::new(false),
                                    sessions: AtomicU64::new(0),
                                    sent: Mutex::new(VecDeque::new()),
                                    ended: Mutex::new(None),
                                    task: Mutex::new(None),
                                });
                                let dir = cloud_dir
                                    .join(slipway_coordinator::cloud::local::INSTANCES)
                                    .join(&instance.id);
                                let task = tokio::spawn(play(
                                    played.clone(),
                                    dir,
                                    instance.image_id.clone(),
                                    health_port,
                                    protocol,
                                ));
                                *played.task.lock().unwrap() = Some(task.abort_handle());
                                agents.insert(instance.id, played);
                            }
                            _ => {}
                        }
                    }
                }
                tokio::time::sleep(LOOK_EVERY).await;
            }
        })
        .abort_handle();
        Hollow { agents, watch }
    }

    /// Every agent played now.
    pub fn agents(&self) -> Vec<Arc<Played>> {
        self.agents.lock().unwrap().values().cloned().collect()
    }

    pub fn agent(&self, instance_id: &str) -> Option<Arc<Played>> {
        self.agents.lock().unwrap().get(instance_id).cloned()
    }

    /// How many have a stream open.
    pub fn connected(&self) -> usize {
        self.agents().iter().filter(|a| a.is_connected()).count()
    }
}

impl Drop for Hollow {
    fn drop(&mut self) {
        self.watch.abort();
        for played in self.agents() {
            if let Some(task) = played.task.lock().unwrap().take() {
                task.abort();
            }
        }
    }
}

/// The life of one agent: its health port, its certificate, then streams
/// until its instance is terminated (the task is aborted).
async fn play(me: Arc<Played>, dir: PathBuf, image_id: String, health_port: u16, protocol: u32) {
    let ip: IpAddr = match me.private_ip.parse() {
        Ok(ip) => ip,
        Err(_) => return,
    };
    tokio::spawn(answer_health_checks(SocketAddr::new(ip, health_port)));
    let user_data = loop {
        // Written before the launch answers; read as an agent reads it at boot.
        match std::fs::read_to_string(dir.join(slipway_coordinator::cloud::local::USER_DATA))
            .map_err(|e| e.to_string())
            .and_then(|text| UserData::parse(&text))
        {
            Ok(data) => break data,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let mut backoff = FIRST_BACKOFF;
    let identity = loop {
        match bootstrap(&me, &user_data, ip).await {
            Ok(identity) => break identity,
            // The coordinator sheds handshakes over its limit: try again later.
            Err(_) => backoff = wait(backoff).await,
        }
    };
    // What it was told, kept across streams as the instance keeps it: the
    // configuration it holds and the one its services run.
    let mut told = Told::default();
    let mut backoff = FIRST_BACKOFF;
    loop {
        let hello = Hello {
            instance_id: me.instance_id.clone(),
            image_id: image_id.clone(),
            agent_version: "hollow".into(),
            private_ip: me.private_ip.clone(),
            protocol,
        };
        if let Err(e) = session(&me, &user_data, &identity, ip, hello, &mut told).await {
            let said = match e.downcast_ref::<tonic::Status>() {
                Some(status) => status.message().to_string(),
                None => e.to_string(),
            };
            *me.ended.lock().unwrap() = Some(said);
        }
        if me.connected.swap(false, Ordering::SeqCst) {
            backoff = FIRST_BACKOFF;
        }
        backoff = wait(backoff).await;
    }
}

/// Sleeps `backoff` × 0.5-1.5; the next backoff.
async fn wait(backoff: Duration) -> Duration {
    let jittered = backoff.mul_f64(rand::rng().random_range(0.5..1.5));
    tokio::time::sleep(jittered).await;
    (backoff * 2).min(MAX_BACKOFF)
}

fn endpoint(
    user_data: &UserData,
    identity: Option<&Identity>,
    ip: IpAddr,
) -> anyhow::Result<tonic::transport::Endpoint> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&user_data.ca_pem))
        .domain_name(&user_data.server_name);
    if let Some(identity) = identity {
        tls = tls.identity(identity.clone());
    }
    Ok(Channel::from_shared(user_data.coordinator.clone())?
        .tls_config(tls)?
        .local_address(Some(ip))
        .connect_timeout(Duration::from_secs(10)))
}

/// A key of its own and a certificate for it, through Bootstrap.
async fn bootstrap(me: &Played, user_data: &UserData, ip: IpAddr) -> anyhow::Result<Identity> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::default();
    let mut name = rcgen::DistinguishedName::new();
    name.push(rcgen::DnType::CommonName, me.instance_id.as_str());
    params.distinguished_name = name;
    let csr_pem = params.serialize_request(&key)?.pem()?;
    let channel = endpoint(user_data, None, ip)?.connect().await?;
    let response = AgentServiceClient::new(channel)
        .bootstrap(BootstrapRequest {
            instance_id: me.instance_id.clone(),
            join_token: user_data.join_token.clone(),
            csr_pem,
        })
        .await?
        .into_inner();
    Ok(Identity::from_pem(
        response.certificate_pem,
        key.serialize_pem(),
    ))
}

fn up(body: Up) -> AgentMessage {
    AgentMessage { body: Some(body) }
}

fn services(version: u64, names: &[String], status: ServiceStatus) -> AgentMessage {
    up(Up::Services(ServiceReport {
        config_version: version,
        services: names
            .iter()
            .map(|name| ServiceState {
                name: name.clone(),
                status: status as i32,
                restarts: 0,
                detail: String::new(),
            })
            .collect(),
    }))
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

#[derive(Default)]
struct Told {
    /// Version and service names of the configuration last pushed.
    pending: Option<(u64, Vec<String>)>,
    /// The one its services were started with.
    running: Option<(u64, Vec<String>)>,
}

/// One stream: hello, heartbeats, and what the coordinator asks.
async fn session(
    me: &Played,
    user_data: &UserData,
    identity: &Identity,
    ip: IpAddr,
    hello: Hello,
    told: &mut Told,
) -> anyhow::Result<()> {
    let channel = endpoint(user_data, Some(identity), ip)?.connect().await?;
    let (outbound, receiver) = mpsc::channel(32);
    outbound.send(up(Up::Hello(hello))).await?;
    let mut inbound = AgentServiceClient::new(channel)
        .connect(ReceiverStream::new(receiver))
        .await?
        .into_inner();
    let mut heartbeat = tokio::time::interval(Duration::from_secs(1));
    let mut sequence = 0u64;
    loop {
        tokio::select! {
            message = inbound.message() => {
                let Some(message) = message? else { return Ok(()) };
                match message.body {
                    Some(Down::Welcome(welcome)) => {
                        let every = u64::from(welcome.heartbeat_interval_ms.max(100));
                        heartbeat = tokio::time::interval(Duration::from_millis(every));
                        me.connected.store(true, Ordering::SeqCst);
                        me.sessions.fetch_add(1, Ordering::SeqCst);
                        // What runs now, as a redialling agent says at once.
                        let (version, names) = told.running.clone().unwrap_or_default();
                        outbound.send(services(version, &names, ServiceStatus::Running)).await?;
                        outbound.send(up(Up::Readiness(Readiness { ready: told.running.is_some(), detail: String::new() }))).await?;
                    }
                    Some(Down::Configure(configure)) => {
                        let names = configure.services.iter().map(|s| s.name.clone()).collect();
                        told.pending = Some((configure.version, names));
                    }
                    Some(Down::Start(start)) => {
                        if let Some(config) = told.pending.clone().filter(|(v, _)| *v == start.config_version) {
                            outbound.send(services(config.0, &config.1, ServiceStatus::Running)).await?;
                            outbound.send(up(Up::Readiness(Readiness { ready: true, detail: String::new() }))).await?;
                            told.running = Some(config);
                        }
                    }
                    Some(Down::Stop(_)) => {
                        if let Some((version, names)) = told.running.take() {
                            outbound.send(services(version, &names, ServiceStatus::Stopped)).await?;
                        }
                    }
                    Some(Down::Migrate(migrate)) => {
                        outbound.send(up(Up::Migrations(MigrationReport {
                            runs: vec![MigrationState {
                                run_id: migrate.run_id,
                                finished: true,
                                succeeded: true,
                                detail: "a hollow agent runs no migration".into(),
                                output: Vec::new(),
                            }],
                        }))).await?;
                    }
                    Some(Down::Tail(tail)) => {
                        outbound.send(up(Up::Logs(LogLines {
                            request: tail.request,
                            service: tail.service,
                            lines: Vec::new(),
                            done: true,
                            error: String::new(),
                        }))).await?;
                    }
                    Some(Down::StopTail(_)) | None => {}
                }
            }
            _ = heartbeat.tick() => {
                if !me.silent.load(Ordering::SeqCst) {
                    sequence += 1;
                    {
                        let mut sent = me.sent.lock().unwrap();
                        sent.push_back(now_us());
                        if sent.len() > SENT_KEPT {
                            sent.pop_front();
                        }
                    }
                    outbound.send(up(Up::Heartbeat(Heartbeat { sequence }))).await?;
                }
            }
        }
    }
}

/// Answers the first health check on `addr` with `200 OK`, then stops
/// listening. The local cloud's balancer checks an instance once, when it
/// is registered; and a listener for each of 10,000 instances beside their
/// 10,000 streams would pass the 20,000 open files a process may have here.
async fn answer_health_checks(addr: SocketAddr) {
    let Ok(listener) = tokio::net::TcpListener::bind(addr).await else {
        return;
    };
    if let Ok((mut stream, _)) = listener.accept().await {
        drop(listener);
        let mut request = [0u8; 1024];
        let _ = stream.read(&mut request).await;
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            .await;
    }
}
