//! The local cloud process: `slipway-coordinator local-cloud --dir DIR`.
//!
//! It owns instances (agent processes), load balancers and records, and answers
//! one JSON request per connection on `DIR/cloud.sock`.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Mutex, watch};
use tracing::{info, warn};

use crate::image;
use crate::proxy::{Balancer, PublicListener};
use slipway_local_cloud::protocol::{
    ErrorKind, InstanceInfo, InstanceStatus, LoadBalancerInfo, MAX_LINE, RecordInfo, Registration,
    Request, Response,
};
use slipway_local_cloud::{AGENT, INSTANCES, SOCKET, USER_DATA};

/// How long a terminated instance gets to stop before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(3);

struct InstanceEntry {
    info: InstanceInfo,
    /// The process group of the agent and the services it started.
    process_group: Option<i32>,
    child: Option<tokio::process::Child>,
}

#[derive(Default)]
struct State {
    instances: BTreeMap<String, InstanceEntry>,
    client_tokens: HashMap<String, String>,
    balancers: HashMap<String, Arc<Balancer>>,
    records: HashMap<String, (Arc<PublicListener>, String)>,
    registrations: Vec<Registration>,
}

pub struct CloudServer {
    dir: PathBuf,
    state: Mutex<State>,
    stop: watch::Sender<bool>,
}

impl CloudServer {
    fn images(&self) -> PathBuf {
        self.dir.join("images")
    }
}

/// Runs the local cloud in `dir` until asked to shut down.
pub async fn run(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir.join("images"))?;
    std::fs::create_dir_all(dir.join(INSTANCES))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    // Every path handed to an instance's agent is derived from it: absolute.
    let dir = &dir.canonicalize()?;
    let socket = dir.join(SOCKET);
    // sun_path holds 108 bytes with its terminating NUL; a longer path fails
    // to bind with an error that does not say why.
    if socket.as_os_str().len() > 107 {
        anyhow::bail!(
            "the local cloud's socket path {} is longer than a Unix socket allows (107 bytes): use a shorter --data-dir",
            socket.display()
        );
    }
    if UnixStream::connect(&socket).await.is_ok() {
        anyhow::bail!(
            "a local cloud already serves {}: stop it first",
            socket.display()
        );
    }
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))?;
    let (stop, mut stopped) = watch::channel(false);
    let server = Arc::new(CloudServer {
        dir: dir.to_path_buf(),
        state: Mutex::new(State::default()),
        stop,
    });
    info!(socket = %socket.display(), "local cloud serving");
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let server = server.clone();
                tokio::spawn(async move { server.serve(stream).await });
            }
            _ = stopped.changed() => break,
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    server.shutdown().await;
    let _ = std::fs::remove_file(&socket);
    info!("local cloud stopped");
    Ok(())
}

impl CloudServer {
    async fn serve(&self, stream: UnixStream) {
        let (read, mut write) = stream.into_split();
        let mut line = String::new();
        let mut reader = BufReader::new(read.take(MAX_LINE as u64));
        let response = match reader.read_line(&mut line).await {
            Ok(_) => match serde_json::from_str::<Request>(&line) {
                Ok(request) => self.handle(request).await,
                Err(e) => invalid(format!("unreadable request: {e}")),
            },
            Err(e) => invalid(format!("unreadable request: {e}")),
        };
        if let Ok(mut text) = serde_json::to_string(&response) {
            text.push('\n');
            let _ = write.write_all(text.as_bytes()).await;
        }
    }

    async fn handle(&self, request: Request) -> Response {
        match request {
            Request::Ping => Response::Ok,
            Request::ImportImage { source, tags } => {
                let images = self.images();
                match tokio::task::spawn_blocking(move || image::import(&images, &source, &tags))
                    .await
                {
                    Ok(Ok(id)) => Response::Images { ids: vec![id] },
                    Ok(Err(e)) => invalid(format!("cannot bake image: {e}")),
                    Err(e) => invalid(format!("cannot bake image: {e}")),
                }
            }
            Request::DescribeImage { image_id } => {
                if let Err(why) = slipway_domain::release::check_image_id(&image_id) {
                    return invalid(why);
                }
                Response::Image {
                    tags: image::manifest(&self.images().join(&image_id)).map(|m| m.tags),
                }
            }
            Request::FindImages { tags } => match image::find(&self.images(), &tags) {
                Ok(ids) => Response::Images { ids },
                Err(e) => invalid(format!("cannot list images: {e}")),
            },
            Request::Launch {
                image_id,
                client_token,
                user_data,
                tags,
            } => self.launch(image_id, client_token, user_data, tags).await,
            Request::Describe { ids } => {
                let state = self.state.lock().await;
                let instances = ids
                    .iter()
                    .filter_map(|id| state.instances.get(id).map(|e| e.info.clone()))
                    .collect();
                Response::Instances { instances }
            }
            Request::FindInstances { tags } => {
                let state = self.state.lock().await;
                let instances = state
                    .instances
                    .values()
                    .filter(|e| tags.iter().all(|(k, v)| e.info.tags.get(k) == Some(v)))
                    .map(|e| e.info.clone())
                    .collect();
                Response::Instances { instances }
            }
            Request::Terminate { ids } => {
                for id in ids {
                    self.terminate(&id).await;
                }
                Response::Ok
            }
            Request::CreateLoadBalancer { name, settings } => {
                let mut state = self.state.lock().await;
                if state.balancers.contains_key(&name) {
                    return invalid(format!("load balancer {name} already exists"));
                }
                match Balancer::start(&name, settings).await {
                    Ok(lb) => {
                        info!(balancer = %name, addr = %lb.addr, "load balancer created");
                        state.balancers.insert(name, lb);
                        Response::Ok
                    }
                    Err(e) => invalid(format!("cannot start load balancer {name}: {e}")),
                }
            }
            Request::ConfigureLoadBalancer { name, settings } => {
                let state = self.state.lock().await;
                match state.balancers.get(&name) {
                    Some(lb) => {
                        lb.configure(settings);
                        Response::Ok
                    }
                    None => no_balancer(&name),
                }
            }
            Request::DescribeLoadBalancer { name } => {
                let state = self.state.lock().await;
                let found = state.balancers.get(&name).map(|lb| LoadBalancerInfo {
                    endpoint: lb.addr.to_string(),
                    settings: lb.settings(),
                });
                Response::LoadBalancer { found }
            }
            Request::Register { name, ids } => self.register(name, ids).await,
            Request::Registrations => Response::Registrations {
                registrations: self.state.lock().await.registrations.clone(),
            },
            Request::Deregister { name, ids } => {
                let state = self.state.lock().await;
                let Some(lb) = state.balancers.get(&name) else {
                    return no_balancer(&name);
                };
                for id in &ids {
                    lb.deregister(id);
                }
                Response::Ok
            }
            Request::Members { name } => {
                let state = self.state.lock().await;
                match state.balancers.get(&name) {
                    Some(lb) => Response::Members {
                        members: lb.members(),
                    },
                    None => no_balancer(&name),
                }
            }
            Request::UpsertRecord {
                record,
                load_balancer,
            } => {
                let mut state = self.state.lock().await;
                let Some(target) = state.balancers.get(&load_balancer).map(|lb| lb.addr) else {
                    return no_balancer(&load_balancer);
                };
                if let Some((public, pointed)) = state.records.get_mut(&record) {
                    public.point_at(target);
                    *pointed = load_balancer;
                    return Response::Ok;
                }
                match PublicListener::start().await {
                    Ok(public) => {
                        public.point_at(target);
                        info!(%record, addr = %public.addr, "public record created");
                        state.records.insert(record, (public, load_balancer));
                        Response::Ok
                    }
                    Err(e) => invalid(format!("cannot open a public port for {record}: {e}")),
                }
            }
            Request::DescribeRecord { record } => {
                let state = self.state.lock().await;
                let found = state
                    .records
                    .get(&record)
                    .map(|(public, load_balancer)| RecordInfo {
                        endpoint: public.addr.to_string(),
                        load_balancer: load_balancer.clone(),
                    });
                Response::Record { found }
            }
            Request::Shutdown => {
                let _ = self.stop.send(true);
                Response::Ok
            }
        }
    }

    async fn launch(
        &self,
        image_id: String,
        client_token: String,
        user_data: String,
        tags: BTreeMap<String, String>,
    ) -> Response {
        let mut state = self.state.lock().await;
        if let Some(id) = state.client_tokens.get(&client_token)
            && let Some(existing) = state.instances.get(id)
        {
            // Same client token: the same instance, as EC2 does.
            return Response::Instance {
                instance: existing.info.clone(),
            };
        }
        // Whatever reaches this socket: only a plain image id names a directory
        // here, never a path (an absolute one would replace the base).
        if let Err(why) = slipway_domain::release::check_image_id(&image_id) {
            return invalid(why);
        }
        let image_dir = self.images().join(&image_id);
        if image::manifest(&image_dir).is_none() {
            return not_found(format!("image {image_id} does not exist"));
        }
        let id = format!("i-{}", &hex::encode(rand::random::<[u8; 9]>())[..17]);
        let Some(ip) = free_loopback_address(&state) else {
            return invalid("no free loopback address for a new instance".into());
        };
        let instance_dir = self.dir.join(INSTANCES).join(&id);
        let user_data_file = match write_user_data(&instance_dir, &user_data) {
            Ok(file) => file,
            Err(e) => return invalid(format!("cannot boot instance from {image_id}: {e}")),
        };
        // An image without an agent boots and runs nothing, as an AMI without
        // one would on EC2: its user-data waits in the instance's directory
        // for whoever plays the agent (the 10,000-agent load tool does).
        let (child, process_group) = if image_dir.join(AGENT).exists() {
            match spawn_agent(&image_dir, &instance_dir, &id, &ip, &user_data_file) {
                Ok(child) => {
                    let pid = child.id().map(|p| p as i32);
                    (Some(child), pid)
                }
                Err(e) => return invalid(format!("cannot boot instance from {image_id}: {e}")),
            }
        } else {
            (None, None)
        };
        info!(instance = %id, %ip, image = %image_id, agent = child.is_some(), "instance launched");
        let info = InstanceInfo {
            id: id.clone(),
            image_id,
            private_ip: ip,
            status: InstanceStatus::Running,
            tags,
        };
        state.client_tokens.insert(client_token, id.clone());
        state.instances.insert(
            id,
            InstanceEntry {
                info: info.clone(),
                process_group,
                child,
            },
        );
        Response::Instance { instance: info }
    }

    /// Adds instances to a load balancer. Each is probed with the balancer's health
    /// check first and the result logged: Slipway must only register ready
    /// instances, and the log is how tests prove it did.
    async fn register(&self, name: String, ids: Vec<String>) -> Response {
        let (lb, addresses) = {
            let state = self.state.lock().await;
            let Some(lb) = state.balancers.get(&name).cloned() else {
                return no_balancer(&name);
            };
            let mut addresses = Vec::new();
            for id in &ids {
                match state.instances.get(id) {
                    Some(e) if e.info.status == InstanceStatus::Running => {
                        addresses.push((id.clone(), e.info.private_ip.clone()));
                    }
                    _ => return not_found(format!("instance {id} is not running")),
                }
            }
            (lb, addresses)
        };
        for (id, ip) in addresses {
            let unhealthy = lb.check(&ip).await.err();
            if let Err(message) = lb.register(&id, &ip) {
                return invalid(message);
            }
            if let Some(why) = &unhealthy {
                warn!(balancer = %name, instance = %id, %why, "registered an instance that fails its health check");
            }
            self.state.lock().await.registrations.push(Registration {
                at_ms: slipway_domain::clock::Clock::now(&slipway_domain::clock::SystemClock),
                load_balancer: name.clone(),
                instance: id,
                unhealthy,
            });
        }
        Response::Ok
    }

    async fn terminate(&self, id: &str) {
        let (group, child) = {
            let mut state = self.state.lock().await;
            for lb in state.balancers.values() {
                lb.remove(id);
            }
            let Some(entry) = state.instances.get_mut(id) else {
                return;
            };
            if entry.info.status == InstanceStatus::Terminated {
                return;
            }
            entry.info.status = InstanceStatus::Terminated;
            (entry.process_group.take(), entry.child.take())
        };
        info!(instance = %id, "instance terminated");
        stop_group(group, child).await;
    }

    async fn shutdown(&self) {
        let ids: Vec<String> = self.state.lock().await.instances.keys().cloned().collect();
        for id in ids {
            self.terminate(&id).await;
        }
    }
}

/// Stops an instance's whole process group: the agent and every service it runs.
async fn stop_group(group: Option<i32>, child: Option<tokio::process::Child>) {
    let Some(group) = group else { return };
    let pgid = Pid::from_raw(group);
    let _ = killpg(pgid, Signal::SIGTERM);
    if let Some(mut child) = child {
        if tokio::time::timeout(STOP_GRACE, child.wait())
            .await
            .is_err()
        {
            warn!(pgid = group, "instance did not stop in time: killing it");
        }
        // Services outlive their agent if it died first: kill the group regardless.
        let _ = killpg(pgid, Signal::SIGKILL);
        let _ = child.wait().await;
    }
}

/// What EC2 user-data would carry, in `instance_dir/user-data`, readable by
/// its owner only (it holds the instance's join token).
fn write_user_data(instance_dir: &Path, user_data: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(instance_dir)?;
    let file = instance_dir.join(USER_DATA);
    std::fs::write(&file, user_data)?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

fn spawn_agent(
    image_dir: &Path,
    instance_dir: &Path,
    id: &str,
    ip: &str,
    user_data_file: &Path,
) -> std::io::Result<tokio::process::Child> {
    let log = std::fs::File::create(instance_dir.join("agent.log"))?;
    let mut command = tokio::process::Command::new(image_dir.join(AGENT));
    command
        .arg("--user-data-file")
        .arg(user_data_file)
        .arg("--instance-id")
        .arg(id)
        .arg("--private-ip")
        .arg(ip)
        .arg("--image-id")
        .arg(image_dir.file_name().unwrap_or_default())
        .arg("--root")
        .arg(image_dir)
        .arg("--state-dir")
        .arg(instance_dir.join("agent"))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group, so terminating the instance stops its services too.
        .process_group(0);
    command.spawn()
}

/// A random 127.x.y.z address not used by another instance here. The range holds
/// about 15 million addresses, so local clouds sharing a machine (parallel test
/// runs) practically never pick the same one.
fn free_loopback_address(state: &State) -> Option<String> {
    for _ in 0..1000 {
        let [a, b, c]: [u8; 3] = rand::random();
        let ip = Ipv4Addr::new(127, a.max(16), b, c.clamp(2, 254));
        let text = ip.to_string();
        if !state.instances.values().any(|e| e.info.private_ip == text) {
            return Some(text);
        }
    }
    None
}

fn invalid(message: String) -> Response {
    Response::Error {
        kind: ErrorKind::Invalid,
        message,
    }
}

fn not_found(message: String) -> Response {
    Response::Error {
        kind: ErrorKind::NotFound,
        message,
    }
}

fn no_balancer(name: &str) -> Response {
    not_found(format!(
        "load balancer {name} does not exist: run the infrastructure setup"
    ))
}
