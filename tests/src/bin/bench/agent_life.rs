//! `slipway-bench agent-life [CYCLES] [AGENT]`: one real agent through a long
//! life, its memory sampled as it goes, to show whether it stays flat.
//!
//! A deploy gives an instance one configuration, one certificate renewal a day
//! and a few log tails; to live through CYCLES deploys' worth of those in
//! minutes, a stand-in coordinator (this module: the coordinator's own CA code
//! behind a tonic server that asks for client certificates) drives the agent
//! through CYCLES of each:
//! - a configuration pushed and started: its two services (the sample app and
//!   a shell loop that prints 50 lines a second) restart, and the cycle waits
//!   for the agent to report them ready on the new version;
//! - a followed tail of the talking service, stopped after its first 20 lines;
//! - a certificate renewal: certificates live 2 s, so the agent renews on its
//!   own schedule about once a second, each over a new mTLS connection.
//!
//! AGENT is the binary to run (default: the one beside this benchmark); pass
//! `target/agent/slipway-agent` to measure the size-tuned build images carry.
//! WHAT (default `all`) narrows the life to `pushes`, `tails` or `renewals`
//! (with one push first), to tell which of them a growth comes from.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use slipway_common::user_data::UserData;
use slipway_coordinator::clock::SystemClock;
use slipway_coordinator::config::{HealthCheck, Restart, Service};
use slipway_coordinator::pki::{Ca, Identity, Role, SERVER_NAME};
use slipway_domain::agent::Configuration;
use slipway_proto::v1::agent_message::Body as Up;
use slipway_proto::v1::agent_service_server::{AgentService, AgentServiceServer};
use slipway_proto::v1::coordinator_message::Body as Down;
use slipway_proto::v1::{
    self as pb, AgentMessage, BootstrapRequest, BootstrapResponse, CoordinatorMessage, RenewRequest,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::transport::{Certificate, Identity as TlsIdentity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status, Streaming};

use super::rss_kib;

/// Short enough that renewals keep pace with the cycles; long enough that a
/// renewal at two thirds of it is never late (X.509 times are whole seconds).
const CERTIFICATE_LIFETIME: Duration = Duration::from_secs(2);
/// When renewals are left out of the life.
const NO_RENEWAL: Duration = Duration::from_secs(24 * 3600);
const JOIN_TOKEN: &str = "agent-life-join-token";
const INSTANCE: &str = "i-agentlife0001";
/// Lines the talking service prints; a tail waits for this many.
const TALKER: &str =
    "n=0; while :; do n=$((n+1)); echo \"line $n of a long life\"; sleep 0.02; done";
const TAIL_LINES: usize = 20;

type Down_ = Result<CoordinatorMessage, Status>;

/// The stand-in coordinator: it signs, counts renewals and hands the driver
/// the agent's stream.
struct Stand {
    ca: Ca,
    lifetime: Duration,
    renewals: AtomicU64,
    /// The newest stream: where to send, and what the agent said on it.
    stream: Mutex<Option<(mpsc::Sender<Down_>, mpsc::Receiver<AgentMessage>)>>,
}

impl Stand {
    fn sign(&self, csr_pem: &str) -> Result<Response<BootstrapResponse>, Status> {
        let identity = Identity::new(INSTANCE, Role::Agent);
        let (certificate_pem, expires_at_ms) = self
            .ca
            .sign_csr(csr_pem, &identity, self.lifetime)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok(Response::new(BootstrapResponse {
            certificate_pem,
            expires_at_ms,
            ca_pem: self.ca.trusted_pem(),
        }))
    }
}

/// The stand as tonic serves it, shared with the driver.
#[derive(Clone)]
struct Shared(Arc<Stand>);

impl std::ops::Deref for Shared {
    type Target = Stand;
    fn deref(&self) -> &Stand {
        &self.0
    }
}

#[tonic::async_trait]
impl AgentService for Shared {
    async fn bootstrap(
        &self,
        request: Request<BootstrapRequest>,
    ) -> Result<Response<BootstrapResponse>, Status> {
        let request = request.into_inner();
        if request.join_token != JOIN_TOKEN || request.instance_id != INSTANCE {
            return Err(Status::permission_denied(
                "not the instance this bench launched",
            ));
        }
        self.sign(&request.csr_pem)
    }

    async fn renew(
        &self,
        request: Request<RenewRequest>,
    ) -> Result<Response<BootstrapResponse>, Status> {
        if request.peer_certs().is_none_or(|certs| certs.is_empty()) {
            return Err(Status::unauthenticated(
                "renewal needs the current certificate",
            ));
        }
        let answer = self.sign(&request.into_inner().csr_pem);
        self.renewals.fetch_add(1, Ordering::SeqCst);
        answer
    }

    type ConnectStream = ReceiverStream<Down_>;

    async fn connect(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        let mut inbound = request.into_inner();
        let (down, down_read) = mpsc::channel(64);
        let (up, up_read) = mpsc::channel(1024);
        tokio::spawn(async move {
            while let Ok(Some(message)) = inbound.message().await {
                if up.send(message).await.is_err() {
                    break;
                }
            }
        });
        *self.stream.lock().unwrap() = Some((down, up_read));
        Ok(Response::new(ReceiverStream::new(down_read)))
    }
}

fn down(body: Down) -> Down_ {
    Ok(CoordinatorMessage { body: Some(body) })
}

/// The configuration of cycle `version`: the same services, a new version.
fn configuration(version: u64, port: u16) -> pb::Configure {
    let sample = super::bin_dir().join("slipway-sample-app");
    pb::Configure::from(&Configuration {
        version,
        project: "life".into(),
        environment: "staging".into(),
        release_version: format!("v{version}"),
        variables: [("PORT".to_string(), port.to_string())].into(),
        services: vec![
            Service {
                name: "web".into(),
                command: sample.display().to_string(),
                args: vec![],
            },
            Service {
                name: "talker".into(),
                command: "/bin/sh".into(),
                args: vec!["-c".into(), TALKER.into()],
            },
        ],
        health_check: HealthCheck {
            path: "/health".into(),
            port,
            interval: Duration::from_millis(100),
            timeout: Duration::from_secs(2),
            healthy_threshold: 1,
            unhealthy_threshold: 2,
        },
        restart: Restart::default(),
    })
}

/// Anonymous resident memory (heap and stacks: what a leak grows), KiB.
fn anon_kib(pid: u32) -> u64 {
    super::status_kib(pid, "RssAnon:")
}

/// Which parts of a life a run goes through.
#[derive(Debug, Clone, Copy)]
struct Parts {
    pushes: bool,
    tails: bool,
    renewals: bool,
}

pub fn run(cycles: u64, agent: Option<PathBuf>, what: Option<&str>) {
    let agent = agent.unwrap_or_else(|| super::bin_dir().join("slipway-agent"));
    let what = what.unwrap_or("all");
    let parts = Parts {
        pushes: matches!(what, "all" | "pushes"),
        tails: matches!(what, "all" | "tails"),
        renewals: matches!(what, "all" | "renewals"),
    };
    assert!(
        ["all", "pushes", "tails", "renewals"].contains(&what),
        "WHAT is all, pushes, tails or renewals, not {what:?}"
    );
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(life(cycles, agent, parts));
}

async fn life(cycles: u64, agent: PathBuf, parts: Parts) {
    let dir = std::env::temp_dir().join(format!("slipway-bench-life-{}", std::process::id()));
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    // The sample app reads its manifest from the image root.
    std::fs::write(
        root.join("app.toml"),
        "version = \"life\"\nhealthy = true\nschema = 1\nmigration = \"ok\"\n",
    )
    .unwrap();
    let ca = Ca::load_or_create(&dir.join("ca"), Arc::new(SystemClock)).unwrap();
    let server = ca.issue_server(&[SERVER_NAME.to_string()]).unwrap();
    let user_data = UserData {
        coordinator: String::new(),
        server_name: SERVER_NAME.into(),
        ca_pem: ca.cert_pem(),
        ca_fingerprint: ca.fingerprint(),
        join_token: JOIN_TOKEN.into(),
        other_coordinators: vec![],
    };
    let stand = Arc::new(Stand {
        ca,
        lifetime: match parts.renewals {
            true => CERTIFICATE_LIFETIME,
            false => NO_RENEWAL,
        },
        renewals: AtomicU64::new(0),
        stream: Mutex::new(None),
    });

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let tls = ServerTlsConfig::new()
        .identity(TlsIdentity::from_pem(&server.cert_pem, &server.key_pem))
        .client_ca_root(Certificate::from_pem(&user_data.ca_pem))
        .client_auth_optional(true);
    tokio::spawn(
        Server::builder()
            .tls_config(tls)
            .unwrap()
            .add_service(AgentServiceServer::new(Shared(stand.clone())))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    let user_data = UserData {
        coordinator: format!("https://{address}"),
        ..user_data
    };
    let user_data_file = dir.join("user-data");
    std::fs::write(&user_data_file, user_data.to_toml()).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    let log = std::fs::File::create(dir.join("agent.log")).unwrap();
    // A process group of its own: the services it leaves are stopped with it.
    use std::os::unix::process::CommandExt;
    let mut child = std::process::Command::new(&agent)
        .process_group(0)
        .args(["--user-data-file", user_data_file.to_str().unwrap()])
        .args(["--instance-id", INSTANCE, "--private-ip", "127.0.0.1"])
        .args(["--image-id", "ami-agentlife"])
        .arg("--root")
        .arg(&root)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", agent.display()));
    let pid = child.id();
    let size = std::fs::metadata(&agent).map(|m| m.len()).unwrap_or(0);
    println!(
        "agent {} ({:.1} MiB), {cycles} cycles of {parts:?}",
        agent.display(),
        size as f64 / 1_048_576.0
    );

    let (send, mut hear) = loop {
        if let Some(stream) = stand.stream.lock().unwrap().take() {
            break stream;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    send.send(down(Down::Welcome(pb::Welcome {
        heartbeat_interval_ms: 1000,
    })))
    .await
    .unwrap();

    let started = Instant::now();
    let every = (cycles / 20).max(1);
    let mut samples = Vec::new();
    let (mut pushes, mut tails) = (0, 0);
    let sample = |pushes: u64, tails: u64, samples: &mut Vec<(u64, u64, u64, u64, u64, f64)>| {
        let renewals = stand.renewals.load(Ordering::SeqCst);
        let row = (
            pushes,
            tails,
            renewals,
            rss_kib(pid),
            anon_kib(pid),
            started.elapsed().as_secs_f64(),
        );
        println!(
            "  pushes {:>5}  tails {:>5}  renewals {:>5}  RSS {:>6} KiB  anonymous {:>5} KiB  {:>6.0} s",
            row.0, row.1, row.2, row.3, row.4, row.5
        );
        samples.push(row);
    };
    let mut lines_heard = 0;
    for cycle in 1..=cycles {
        // Every life starts with a configuration: the services to tail.
        if parts.pushes || cycle == 1 {
            pushes += 1;
            push(&send, &mut hear, cycle, port).await;
        }
        if parts.tails {
            tails += 1;
            lines_heard += tail(&send, &mut hear, cycle).await;
        }
        if !parts.pushes && !parts.tails {
            // Renewals alone: a cycle is one renewal.
            while stand.renewals.load(Ordering::SeqCst) < cycle {
                let _ = tokio::time::timeout(Duration::from_millis(200), hear.recv()).await;
            }
        }
        if cycle % every == 0 || cycle == 1 {
            sample(pushes, tails, &mut samples);
        }
    }
    // Renewals keep their own clock; let them catch up with the cycles,
    // the stream kept drained meanwhile.
    while parts.renewals && stand.renewals.load(Ordering::SeqCst) < cycles {
        let _ = tokio::time::timeout(Duration::from_secs(5), hear.recv()).await;
        if samples
            .last()
            .is_some_and(|s| stand.renewals.load(Ordering::SeqCst) >= s.2 + every)
        {
            sample(pushes, tails, &mut samples);
        }
    }
    sample(pushes, tails, &mut samples);
    let group = nix::unistd::Pid::from_raw(pid as i32);
    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    let _ = child.wait();

    let log = std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default();
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("WARN")).collect();
    for warning in warnings.iter().take(5) {
        println!("  agent: {warning}");
    }
    let warnings = warnings.len();
    let first = samples.first().unwrap();
    let last = samples.last().unwrap();
    println!(
        "{pushes} pushes, {tails} tails ({lines_heard} lines), {} renewals in {:.0} s; agent warnings: {warnings}",
        last.2, last.5
    );
    println!(
        "RSS {} → {} KiB ({:+}), anonymous {} → {} KiB ({:+})",
        first.3,
        last.3,
        last.3 as i64 - first.3 as i64,
        first.4,
        last.4,
        last.4 as i64 - first.4 as i64
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Pushes configuration `cycle` and starts it; returns once the agent says
/// its services run that version and are ready.
async fn push(
    send: &mpsc::Sender<Down_>,
    hear: &mut mpsc::Receiver<AgentMessage>,
    cycle: u64,
    port: u16,
) {
    let mut version_running = 0;
    send.send(down(Down::Configure(configuration(cycle, port))))
        .await
        .unwrap();
    send.send(down(Down::Start(pb::StartServices {
        config_version: cycle,
    })))
    .await
    .unwrap();
    // Ready on this version: its services report, then readiness.
    loop {
        match hear.recv().await.expect("the agent's stream ended").body {
            Some(Up::Services(report)) => version_running = report.config_version,
            Some(Up::Readiness(r)) if r.ready && version_running == cycle => break,
            _ => {}
        }
    }
}

/// Follows the talking service's output until `TAIL_LINES` lines came, then
/// stops the tail; the lines heard.
async fn tail(
    send: &mpsc::Sender<Down_>,
    hear: &mut mpsc::Receiver<AgentMessage>,
    cycle: u64,
) -> usize {
    send.send(down(Down::Tail(pb::TailLogs {
        request: cycle,
        service: "talker".into(),
        lines: 5,
        follow: true,
    })))
    .await
    .unwrap();
    let mut heard = 0;
    while heard < TAIL_LINES {
        if let Some(Up::Logs(chunk)) = hear.recv().await.expect("stream ended").body
            && chunk.request == cycle
        {
            assert!(chunk.error.is_empty(), "tail failed: {}", chunk.error);
            heard += chunk.lines.len();
        }
    }
    send.send(down(Down::StopTail(pb::StopTail { request: cycle })))
        .await
        .unwrap();
    heard
}
