//! TCP proxies: a load balancer forwards only to registered instances and lets
//! open connections finish when one is deregistered; a public record forwards to
//! whichever load balancer it points at.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tracing::debug;

use slipway_domain::cloud::LoadBalancerSettings;
use slipway_local_cloud::protocol::MemberInfo;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

struct Backend {
    id: String,
    addr: SocketAddr,
    draining: bool,
    connections: Arc<AtomicU32>,
}

/// Counts a connection for as long as it lives.
struct ConnectionGuard(Arc<AtomicU32>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct Balancer {
    pub name: String,
    /// Health check and draining settings, reported back as ELB does. The
    /// health check also judges each registration (`check`); readiness comes
    /// from Slipway's own agents, as on AWS.
    settings: Mutex<LoadBalancerSettings>,
    pub addr: SocketAddr,
    backends: Mutex<Vec<Backend>>,
    next: AtomicUsize,
}

impl Balancer {
    /// Binds a new load balancer on loopback and starts serving it.
    pub async fn start(
        name: &str,
        settings: LoadBalancerSettings,
    ) -> std::io::Result<Arc<Balancer>> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let balancer = Arc::new(Balancer {
            name: name.to_string(),
            settings: Mutex::new(settings),
            addr: listener.local_addr()?,
            backends: Mutex::new(Vec::new()),
            next: AtomicUsize::new(0),
        });
        let serving = balancer.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let balancer = serving.clone();
                tokio::spawn(async move { balancer.forward(client).await });
            }
        });
        Ok(balancer)
    }

    fn backends(&self) -> std::sync::MutexGuard<'_, Vec<Backend>> {
        self.backends.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next in-service backend not yet tried, round-robin, with its connection
    /// already counted: choosing and counting under one lock means a backend that
    /// is being drained is never seen idle while a connection is on its way to it.
    fn pick(&self, tried: &[SocketAddr]) -> Option<(SocketAddr, ConnectionGuard)> {
        let backends = self.backends();
        let live: Vec<&Backend> = backends
            .iter()
            .filter(|b| !b.draining && !tried.contains(&b.addr))
            .collect();
        if live.is_empty() {
            return None;
        }
        let backend = live[self.next.fetch_add(1, Ordering::Relaxed) % live.len()];
        backend.connections.fetch_add(1, Ordering::SeqCst);
        Some((backend.addr, ConnectionGuard(backend.connections.clone())))
    }

    async fn forward(&self, mut client: TcpStream) {
        // A backend that refuses is skipped, as an ELB skips an unhealthy one.
        let mut tried = Vec::new();
        while let Some((addr, guard)) = self.pick(&tried) {
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(mut backend)) => {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
                    drop(guard);
                    return;
                }
                _ => debug!(balancer = %self.name, %addr, "backend refused a connection"),
            }
            tried.push(addr);
        }
    }

    pub fn settings(&self) -> LoadBalancerSettings {
        self.settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// New settings apply to instances registered from now on.
    pub fn configure(&self, settings: LoadBalancerSettings) {
        *self.settings.lock().unwrap_or_else(|e| e.into_inner()) = settings;
    }

    /// The health check of the settings (`HTTP:PORT/PATH` or `TCP:PORT`), once, against `ip`.
    async fn probe(&self, ip: &str) -> Result<(), String> {
        let settings = self.settings();
        let timeout = Duration::from_secs(u64::from(settings.health_timeout_secs.max(1)));
        let ip: std::net::IpAddr = ip
            .parse()
            .map_err(|_| format!("{ip:?} is not an address"))?;
        let target = settings.health_target.as_str();
        let (port, path) = match target.split_once(':') {
            Some(("HTTP", rest)) => match rest.split_once('/') {
                Some((port, path)) => (port, Some(format!("/{path}"))),
                None => (rest, Some("/".to_string())),
            },
            Some(("TCP", port)) => (port, None),
            _ => {
                return Err(format!(
                    "health target {target:?} is not HTTP:PORT/PATH or TCP:PORT"
                ));
            }
        };
        let port: u16 = port
            .parse()
            .map_err(|_| format!("health target {target:?} has no port"))?;
        let addr = SocketAddr::new(ip, port);
        match path {
            Some(path) => slipway_common::http_probe::probe(addr, &path, timeout).await,
            None => match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("TCP {addr}: {e}")),
                Err(_) => Err(format!("TCP {addr}: no answer in time")),
            },
        }
    }

    /// The health check as ELB judges an instance: unhealthy only after
    /// `unhealthy_threshold` failures in a row, so one slow answer on a busy
    /// machine is not taken for a broken instance. Tries again at once rather
    /// than a health interval later: registration waits on this.
    pub async fn check(&self, ip: &str) -> Result<(), String> {
        let tries = self.settings().unhealthy_threshold.max(1);
        let mut result = self.probe(ip).await;
        for _ in 1..tries {
            if result.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            result = self.probe(ip).await;
        }
        result
    }

    pub fn register(&self, id: &str, ip: &str) -> Result<(), String> {
        let ip: std::net::IpAddr = ip
            .parse()
            .map_err(|_| format!("instance {id} has no usable address"))?;
        let mut backends = self.backends();
        backends.retain(|b| b.id != id);
        backends.push(Backend {
            id: id.to_string(),
            addr: SocketAddr::new(ip, self.settings().instance_port),
            draining: false,
            connections: Arc::new(AtomicU32::new(0)),
        });
        Ok(())
    }

    pub fn deregister(&self, id: &str) {
        for backend in self.backends().iter_mut().filter(|b| b.id == id) {
            backend.draining = true;
        }
    }

    /// Drops an instance at once (it was terminated).
    pub fn remove(&self, id: &str) {
        self.backends().retain(|b| b.id != id);
    }

    /// Members and their state; drained backends are forgotten here.
    pub fn members(&self) -> BTreeMap<String, MemberInfo> {
        let mut backends = self.backends();
        backends.retain(|b| !b.draining || b.connections.load(Ordering::SeqCst) > 0);
        backends
            .iter()
            .map(|b| {
                let state = if b.draining {
                    MemberInfo::Draining {
                        connections: b.connections.load(Ordering::SeqCst),
                    }
                } else {
                    MemberInfo::InService
                };
                (b.id.clone(), state)
            })
            .collect()
    }
}

/// A project's public port; forwards to the load balancer its record points at.
pub struct PublicListener {
    pub addr: SocketAddr,
    target: Mutex<Option<SocketAddr>>,
}

impl PublicListener {
    pub async fn start() -> std::io::Result<Arc<PublicListener>> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let public = Arc::new(PublicListener {
            addr: listener.local_addr()?,
            target: Mutex::new(None),
        });
        let serving = public.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                let target = *serving.target.lock().unwrap_or_else(|e| e.into_inner());
                tokio::spawn(async move {
                    if let Some(target) = target
                        && let Ok(mut upstream) = TcpStream::connect(target).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
        });
        Ok(public)
    }

    /// New connections go to `target` from now on; open ones are left alone.
    pub fn point_at(&self, target: SocketAddr) {
        *self.target.lock().unwrap_or_else(|e| e.into_inner()) = Some(target);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A health endpoint that answers each connection with the next of
    /// `answers` (None: holds the connection and says nothing); counts them.
    async fn health_server(answers: Vec<Option<&'static str>>) -> (u16, Arc<AtomicU32>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(AtomicU32::new(0));
        let counter = seen.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            for answer in answers.into_iter().cycle() {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                let mut request = [0u8; 512];
                let _ = stream.read(&mut request).await;
                match answer {
                    Some(status) => {
                        let _ = stream
                            .write_all(format!("HTTP/1.1 {status}\r\n\r\n").as_bytes())
                            .await;
                    }
                    None => held.push(stream),
                }
            }
        });
        (port, seen)
    }

    async fn balancer(port: u16) -> Arc<Balancer> {
        let settings = LoadBalancerSettings {
            listener_port: 0,
            instance_port: port,
            health_target: format!("HTTP:{port}/health"),
            health_interval_secs: 5,
            health_timeout_secs: 1,
            healthy_threshold: 2,
            unhealthy_threshold: 2,
            draining_timeout_secs: 1,
        };
        Balancer::start("slipway-test", settings).await.unwrap()
    }

    #[tokio::test]
    async fn one_slow_health_answer_is_not_an_unhealthy_instance() {
        let (port, seen) = health_server(vec![None, Some("200 OK")]).await;
        let lb = balancer(port).await;
        assert_eq!(lb.check("127.0.0.1").await, Ok(()));
        assert_eq!(seen.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn failing_every_try_up_to_the_threshold_is_unhealthy() {
        let (port, seen) = health_server(vec![Some("500 Internal Server Error")]).await;
        let lb = balancer(port).await;
        let failed = lb.check("127.0.0.1").await.unwrap_err();
        assert!(failed.contains("answered 500"), "{failed}");
        assert_eq!(seen.load(Ordering::SeqCst), 2, "unhealthy_threshold tries");
    }
}
