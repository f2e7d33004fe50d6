//! Runs the services of the instance's configuration, as systemd would: starts
//! them with the environment's variables, restarts one that exits as the
//! project's restart policy says (with backoff, up to its limit),
//! runs the health check, and publishes a report the session sends upstream.
//! Each service's output goes to a log file of its own (`output`); an exit's
//! report carries its last lines.
//! Services outlive the coordinator connection: a reconnect never restarts them.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use slipway_domain::agent::{Configuration, MigrationCommand, ServiceState, ServiceStatus};
use slipway_domain::config::{HealthCheck, Restart, RestartWhen, Service};
use tokio::sync::watch;
use tracing::{info, warn};

use slipway_common::http_probe;

use crate::output::Output;
pub use crate::report::Report;
use crate::restarts::{self, AfterExit, RestartBudget};

struct Running {
    version: u64,
    stop: watch::Sender<bool>,
    /// Ends once every task of this configuration has, its processes killed.
    ended: tokio::task::JoinHandle<()>,
}

pub struct Supervisor {
    root: PathBuf,
    /// Where services' output is kept.
    logs: PathBuf,
    private_ip: String,
    instance_id: String,
    report: watch::Sender<Report>,
    pending: Mutex<Option<Configuration>>,
    running: Mutex<Option<Running>>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Supervisor")
    }
}

impl Supervisor {
    pub fn new(root: &Path, logs: &Path, instance_id: &str, private_ip: &str) -> Arc<Self> {
        Arc::new(Supervisor {
            root: root.to_path_buf(),
            logs: logs.to_path_buf(),
            private_ip: private_ip.to_string(),
            instance_id: instance_id.to_string(),
            report: watch::channel(Report::default()).0,
            pending: Mutex::new(None),
            running: Mutex::new(None),
        })
    }

    /// Where services' output is kept.
    pub fn logs(&self) -> &Path {
        &self.logs
    }

    pub fn subscribe(&self) -> watch::Receiver<Report> {
        self.report.subscribe()
    }

    /// The variables a process of `configure` runs with.
    fn environment(&self, configure: &Configuration) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = configure.variables.clone().into_iter().collect();
        env.push(("SLIPWAY_INSTANCE_ID".into(), self.instance_id.clone()));
        env.push(("SLIPWAY_PRIVATE_IP".into(), self.private_ip.clone()));
        env
    }

    /// Runs a migration once, with the variables of the configuration that runs.
    pub fn migrate(&self, command: MigrationCommand) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|r| r.version);
        let env = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|c| Some(c.version) == running)
            .map(|c| self.environment(c));
        crate::migration::start(command, env, &self.root, &self.report);
    }

    /// Keeps a configuration until the coordinator says start.
    pub fn configure(&self, configure: Configuration) {
        *self.pending.lock().unwrap_or_else(|e| e.into_inner()) = Some(configure);
    }

    /// Starts the services of configuration `version`. Idempotent: a version that
    /// already runs is left alone, so a resent command after a reconnect is harmless.
    pub fn start(&self, version: u64) -> Result<(), String> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if running.as_ref().is_some_and(|r| r.version == version) {
            return Ok(());
        }
        let configure = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .filter(|c| c.version == version)
            .ok_or_else(|| format!("start of configuration {version}, which never arrived"))?;
        // The old configuration's services stop first: until their processes
        // are gone they hold its ports, and their last reports must not land
        // in the new configuration's.
        let previous = running.take().map(|old| {
            let _ = old.stop.send(true);
            old.ended
        });
        let (stop, stopped) = watch::channel(false);
        let report = self.report.clone();
        let env = self.environment(&configure);
        let (root, logs, ip) = (
            self.root.clone(),
            self.logs.clone(),
            self.private_ip.clone(),
        );
        let ended = tokio::spawn(async move {
            if let Some(previous) = previous {
                let _ = previous.await;
            }
            report.send_modify(|r| {
                r.config_version = version;
                r.ready = false;
                r.ready_detail = "starting".into();
                r.services = configure
                    .services
                    .iter()
                    .map(|s| ServiceState {
                        name: s.name.clone(),
                        status: ServiceStatus::Starting,
                        restarts: 0,
                        detail: String::new(),
                    })
                    .collect();
            });
            info!(
                version,
                services = configure.services.len(),
                "starting services"
            );
            let mut tasks = tokio::task::JoinSet::new();
            for (index, spec) in configure.services.iter().enumerate() {
                let service = ServiceRun {
                    spec: spec.clone(),
                    policy: configure.restart,
                    env: env.clone(),
                    root: root.clone(),
                    output: Output::new(&logs, &spec.name),
                };
                tasks.spawn(supervise(service, index, report.clone(), stopped.clone()));
            }
            tasks.spawn(check_health(
                configure.health_check.clone(),
                ip,
                report,
                stopped,
            ));
            while tasks.join_next().await.is_some() {}
        });
        *running = Some(Running {
            version,
            stop,
            ended,
        });
        Ok(())
    }

    pub fn stop(&self) {
        if let Some(running) = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            info!(version = running.version, "stopping services");
            let _ = running.stop.send(true);
        }
    }
}

fn set(
    report: &watch::Sender<Report>,
    index: usize,
    status: ServiceStatus,
    detail: String,
    restarts: u32,
) {
    report.send_modify(|r| {
        if let Some(s) = r.services.get_mut(index) {
            s.status = status;
            s.detail = detail;
            s.restarts = restarts;
        }
    });
}

/// The project's restart policy as a budget.
fn restart_budget(policy: &Restart) -> RestartBudget {
    let when = match policy.when {
        RestartWhen::Never => restarts::When::Never,
        RestartWhen::OnFailure => restarts::When::OnFailure,
        RestartWhen::Always => restarts::When::Always,
    };
    RestartBudget::new(when, policy.limit, policy.window)
}

/// One service of a configuration, and what it runs with.
struct ServiceRun {
    spec: Service,
    policy: Restart,
    env: Vec<(String, String)>,
    root: PathBuf,
    output: Output,
}

async fn supervise(
    service: ServiceRun,
    index: usize,
    report: watch::Sender<Report>,
    mut stop: watch::Receiver<bool>,
) {
    let ServiceRun {
        spec,
        policy,
        env,
        root,
        output,
    } = service;
    let program = if Path::new(&spec.command).is_absolute() {
        PathBuf::from(&spec.command)
    } else {
        root.join(&spec.command)
    };
    let mut budget = restart_budget(&policy);
    loop {
        let spawned = output.pipe().and_then(|(stdout, stderr)| {
            tokio::process::Command::new(&program)
                .args(&spec.args)
                .envs(env.iter().cloned())
                .current_dir(&root)
                .stdin(std::process::Stdio::null())
                .stdout(stdout)
                .stderr(stderr)
                .kill_on_drop(true)
                .spawn()
        });
        let (detail, failed) = match spawned {
            Err(e) => (format!("cannot start {}: {e}", program.display()), true),
            Ok(mut child) => {
                set(
                    &report,
                    index,
                    ServiceStatus::Running,
                    String::new(),
                    budget.restarts(),
                );
                tokio::select! {
                    status = child.wait() => {
                        // Its last words are read in before they are told.
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        match status {
                            Ok(status) => (format!("{status}{}", output.told()), !status.success()),
                            Err(e) => (e.to_string(), true),
                        }
                    }
                    _ = stop.changed() => {
                        let _ = child.kill().await;
                        set(&report, index, ServiceStatus::Stopped, "stopped".into(), budget.restarts());
                        return;
                    }
                }
            }
        };
        let pause = match budget.after_exit(failed, Instant::now()) {
            AfterExit::Leave => {
                warn!(service = %spec.name, %detail, "service exited; its restart policy does not restart it");
                let detail = format!("{detail}; not restarted (restart policy)");
                set(
                    &report,
                    index,
                    ServiceStatus::Exited,
                    detail,
                    budget.restarts(),
                );
                return;
            }
            AfterExit::GiveUp { restarts: within } => {
                warn!(service = %spec.name, %detail, restarts = budget.restarts(), "service keeps exiting; giving up per its restart policy");
                let detail = format!(
                    "{detail}; gave up after {within} restarts within {}s",
                    budget.window().as_secs_f64()
                );
                set(
                    &report,
                    index,
                    ServiceStatus::Failed,
                    detail,
                    budget.restarts(),
                );
                return;
            }
            AfterExit::Restart { pause } => pause,
        };
        let restarts = budget.restarts();
        warn!(service = %spec.name, %detail, restarts, "service exited; restarting");
        set(&report, index, ServiceStatus::Exited, detail, restarts);
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => return,
        }
    }
}

async fn check_health(
    check: HealthCheck,
    ip: String,
    report: watch::Sender<Report>,
    mut stop: watch::Receiver<bool>,
) {
    let Ok(ip) = ip.parse::<std::net::IpAddr>() else {
        report.send_modify(|r| r.ready_detail = format!("private ip {ip:?} is not an address"));
        return;
    };
    let addr = std::net::SocketAddr::new(ip, check.port);
    let (interval, timeout) = (check.interval, check.timeout);
    let (mut passes, mut failures) = (0u32, 0u32);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        let result = http_probe::probe(addr, &check.path, timeout).await;
        report.send_if_modified(|r| {
            let before = (r.ready, r.ready_detail.clone());
            match &result {
                Ok(()) => {
                    passes += 1;
                    failures = 0;
                    if passes >= check.healthy_threshold {
                        r.ready = true;
                        r.ready_detail = String::new();
                    }
                }
                Err(detail) => {
                    failures += 1;
                    passes = 0;
                    r.ready_detail = detail.clone();
                    if failures >= check.unhealthy_threshold {
                        r.ready = false;
                    }
                }
            }
            before != (r.ready, r.ready_detail.clone())
        });
    }
}
