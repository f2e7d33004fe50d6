//! The end-to-end harness: a real dev coordinator (its own local cloud process,
//! agents, TLS, sled) in a temporary directory on port 0, the real CLI, and an
//! HTTP load generator. Tests wait on conditions with deadlines, never on sleeps.
//!
//! - this module: temporary dirs, binaries (refused when older than their
//!   sources), the `Coordinator` process and the CLI as a person runs them;
//! - `cloud`: the local cloud's state as an outside reader sees it; `aws`
//!   (feature `aws`): moto and the AWS SDK's own view;
//! - `hollow`: thousands of agents played by one process, for instances of
//!   images without an agent (the 10,000-agent benchmark);
//! - `load`: HTTP load through a load balancer, counting every failure;
//! - `processes`: finding and killing what a test started;
//! - `receiver`, `smtp`: real webhook and SMTP servers (Python) for
//!   notifications; `web`: HTTPS, server-sent events and a WebDriver client
//!   driving headless Chromium for the dashboard.
//!
//! Tests depend on this crate; it uses the coordinator library for its types
//! and the local cloud's client, never to run a coordinator in-process.

#![forbid(unsafe_code)]
// A harness for tests: failing loudly on a broken invariant is its job.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[cfg(feature = "aws")]
pub mod aws;
pub mod cloud;
pub mod hollow;
pub mod load;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod processes;
pub mod receiver;
pub mod smtp;
pub mod web;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Where cargo put the binaries: beside the test executable's `deps/` folder.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let mut dir = exe.parent().expect("executable dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// A built binary of the workspace, refused if it is missing or older than
/// the sources it is built from: a test must never pass or fail on a stale one.
pub fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --all-features` first",
        path.display()
    );
    let built = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .expect("binary's modification time");
    if let Some((source, changed)) = newest_source(name)
        && changed > built
    {
        panic!(
            "{} is older than {} (changed since the build): run `cargo build --workspace --all-features` (tests/run does)",
            path.display(),
            source.display()
        );
    }
    path
}

/// The sample fleet with agent certificates of 6 s: each agent renews every
/// 4 s (two thirds in), so tests see renewals in seconds.
pub fn fleet_renewing_agents_every_4s() -> String {
    slipway_coordinator::sample::SAMPLE_FLEET.replace(
        "[coordinator]\n",
        "[coordinator]\nagent_certificate_lifetime = \"6s\"\n",
    )
}

/// The previous release's coordinator, which `tests/build-previous` builds
/// from `tests/fixtures/previous-release.tar.gz` (tests/run does, before the
/// suite): refused if missing or older than that source.
pub fn previous_coordinator() -> PathBuf {
    let path = bin_dir().join("../previous/bin/slipway-coordinator");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/previous-release.tar.gz");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    assert!(
        modified(&path) >= modified(&fixture) && modified(&path).is_some(),
        "{} is missing or older than {}: run tests/build-previous (tests/run does)",
        path.display(),
        fixture.display()
    );
    path
}

/// The crates each binary is built from, relative to the workspace root.
fn sources_of(binary: &str) -> &'static [&'static str] {
    // The crates each binary links, as paths: the local cloud's server is its
    // own binary, so only its client and protocol are the coordinator's.
    const DOMAIN: &str = "coordinator/domain";
    match binary {
        "slipway-coordinator" => &[
            "coordinator/src",
            DOMAIN,
            "coordinator/aws",
            "coordinator/local-cloud/src/lib.rs",
            "coordinator/local-cloud/src/client.rs",
            "coordinator/local-cloud/src/protocol.rs",
            "common",
            "proto",
        ],
        "slipway-local-cloud" => &["coordinator/local-cloud", DOMAIN, "common"],
        "slipway-agent" => &["agent", DOMAIN, "common", "proto"],
        // Its own file only, of the agent crate's: cargo relinks it for that.
        "slipway-sample-app" => &["agent/src/bin", DOMAIN, "common", "proto"],
        "slipway" => &["cli", DOMAIN, "common", "proto"],
        _ => &[],
    }
}

/// The most recently modified source file (`.rs`, `.proto`) of `binary`, and
/// when. Only files the compiler reads: cargo relinks a binary when one of
/// those changes, not when a README beside them or an unrelated entry of
/// Cargo.lock does.
fn newest_source(binary: &str) -> Option<(PathBuf, std::time::SystemTime)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut newest: Option<(PathBuf, std::time::SystemTime)> = None;
    let mut pending: Vec<PathBuf> = sources_of(binary).iter().map(|s| root.join(s)).collect();
    while let Some(path) = pending.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            // A crate's `tests/` and `benches/` build test binaries, not this one.
            if matches!(
                path.file_name().and_then(|n| n.to_str()),
                Some("tests" | "benches")
            ) && path.parent().is_some_and(|p| p.join("Cargo.toml").exists())
            {
                continue;
            }
            if let Ok(entries) = std::fs::read_dir(&path) {
                pending.extend(entries.flatten().map(|e| e.path()));
            }
        } else if let Some("rs" | "proto") = path.extension().and_then(|e| e.to_str())
            && let Ok(modified) = meta.modified()
            && newest.as_ref().is_none_or(|(_, t)| modified > *t)
        {
            newest = Some((path, modified));
        }
    }
    newest
}

/// Holds `(schema command, JSON text, YAML text if any)` documents to
/// cli/schema.json in one run of the validator (tests/checks/json_schema.py,
/// jsonschema with format checks); fails naming each problem.
pub fn check_documents(cases: &[(String, String, Option<String>)]) {
    use std::io::Write;
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cases: Vec<Value> = cases
        .iter()
        .map(|(command, json, yaml)| serde_json::json!({"command": command, "json": json, "yaml": yaml}))
        .collect();
    let mut child = Command::new(python_tool("python"))
        .arg(repo.join("tests/checks/json_schema.py"))
        .arg(repo.join("cli/schema.json"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the JSON Schema validator");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&cases).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "documents that break cli/schema.json:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A Python tool the suite installs (`tests/run` puts them in `target/py`):
/// that one if it is there, else whatever `PATH` finds.
pub fn python_tool(name: &str) -> PathBuf {
    let installed = bin_dir()
        .parent()
        .map(|target| target.join("py/bin").join(name));
    match installed {
        Some(path) if path.exists() => path,
        _ => PathBuf::from(name),
    }
}

/// Wall-clock Unix milliseconds: the clock the coordinator stamps phases with.
pub fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// A fresh directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "slipway-{name}-{}-{}-{nanos}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Baked images are read-only; make them writable so they can go.
        let _ = Command::new("chmod")
            .arg("-R")
            .arg("u+w")
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `check` until it returns Some or the deadline passes.
/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn eventually<T>(what: &str, deadline: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The (start, end) of every run of the sample migration on `store` of a dev
/// coordinator's local cloud, from the log the sample app keeps beside the
/// store; fails if two runs ever overlapped.
pub fn migration_runs(dev: &Coordinator, store: &str) -> Vec<(u128, u128)> {
    migration_runs_of(&dev.data_dir().join("cloud/stores").join(store))
}

/// `migration_runs` of the store file at `store`.
pub fn migration_runs_of(store: &Path) -> Vec<(u128, u128)> {
    let log = std::fs::read_to_string(format!("{}.runs", store.display())).unwrap_or_default();
    let mut runs = Vec::new();
    let mut start = None;
    for line in log.lines() {
        let mut words = line.split_whitespace();
        let what = words.next();
        let at = words.next().and_then(|t| t.parse::<u128>().ok());
        match (what, at) {
            (Some("start"), Some(at)) => {
                assert!(
                    start.is_none(),
                    "two runs overlapped on {}:\n{log}",
                    store.display()
                );
                start = Some(at);
            }
            (Some("end"), Some(at)) => {
                runs.push((start.take().expect("an end without a start"), at))
            }
            _ => panic!("unreadable line in {}.runs: {line:?}", store.display()),
        }
    }
    runs
}

/// The result of one CLI run.
#[derive(Debug)]
pub struct CliRun {
    pub success: bool,
    /// The exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CliRun {
    fn from(output: Output) -> CliRun {
        CliRun {
            success: output.status.success(),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.stdout, self.stderr))
    }
}

/// A CLI process started by `Coordinator::cli_in_background`.
pub struct CliChild(Child);

impl CliChild {
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// Waits for it to exit.
    pub fn finish(self) -> CliRun {
        CliRun::from(self.0.wait_with_output().expect("slipway output"))
    }

    /// kill -9, as a CI runner's timeout does; then waits for it to exit.
    pub fn kill(mut self) -> CliRun {
        let _ = self.0.kill();
        self.finish()
    }

    /// Ctrl-C, as a person at the terminal would; then waits for it to exit.
    pub fn interrupt(self) -> CliRun {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .expect("SIGINT");
        self.finish()
    }
}

/// Each line of `text` as JSON (`events -o json` prints one object per line).
pub fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"))
        })
        .collect()
}

/// A `slipway-coordinator` process in its own data dir: `--dev` with its local
/// cloud, or driving AWS through a fleet file.
#[derive(Debug)]
pub struct Coordinator {
    pub dir: TempDir,
    child: Option<Child>,
    /// host:port of the gRPC port, fixed after the first start so restarts keep it.
    pub listen: String,
    /// `None`: `--dev`; else the fleet file to run with.
    fleet: Option<PathBuf>,
    /// Environment of the process: only these, plus PATH and HOME.
    env: Vec<(String, String)>,
    /// A hard open-file limit to start the process under (`ulimit -n`).
    open_files: Option<u32>,
    /// More arguments for every start.
    args: Vec<String>,
    /// Another build to run (`previous_coordinator`); None: this one's.
    program: Option<PathBuf>,
}

impl Coordinator {
    /// `slipway-coordinator --dev`: the sample fleet on the local cloud.
    pub fn start() -> Coordinator {
        Coordinator::start_with(None, Vec::new())
    }

    /// `--dev` with a fleet file of the test's own (written where `--dev` reads it).
    pub fn start_dev_with_fleet(fleet: &str) -> Coordinator {
        let dir = TempDir::new("coordinator");
        std::fs::write(dir.path().join("fleet.toml"), fleet).expect("fleet file");
        Coordinator::launch_in(dir, None, Vec::new())
    }

    /// A coordinator with `fleet` and an environment of its own (AWS credentials, say).
    pub fn start_with(fleet: Option<PathBuf>, env: Vec<(String, String)>) -> Coordinator {
        Coordinator::launch_in(TempDir::new("coordinator"), fleet, env)
    }

    /// `--dev` under a hard limit of `limit` open files, as a small host has.
    pub fn start_with_open_files(limit: u32) -> Coordinator {
        let mut dev = Coordinator::unstarted(TempDir::new("coordinator"), None, Vec::new());
        dev.open_files = Some(limit);
        dev.started()
    }

    /// `--dev` in `dir`, which may hold a store already (a benchmark's, filled).
    pub fn start_in(dir: TempDir, fleet: &str) -> Coordinator {
        Coordinator::start_in_with(dir, fleet, Vec::new())
    }

    /// `start_in` with an environment of its own (`SLIPWAY_STORE`, say).
    pub fn start_in_with(dir: TempDir, fleet: &str, env: Vec<(String, String)>) -> Coordinator {
        std::fs::write(dir.path().join("fleet.toml"), fleet).expect("fleet file");
        Coordinator::launch_in(dir, None, env)
    }

    /// A gRPC channel to the operator API as the dev admin (lazy: it connects
    /// on first use, inside a Tokio runtime).
    pub fn admin_channel(&self) -> tonic::transport::Channel {
        self.admin_channel_at(&self.listen)
    }

    /// `admin_channel` to the coordinator at `listen` (host:port), another
    /// one on the same data directory.
    pub fn admin_channel_at(&self, listen: &str) -> tonic::transport::Channel {
        use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
        let read = |path: &str| std::fs::read_to_string(self.data_dir().join(path)).unwrap();
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read("ca/ca.pem")))
            .identity(Identity::from_pem(
                read("operators/admin/cert.pem"),
                read("operators/admin/key.pem"),
            ))
            .domain_name("slipway-coordinator");
        Channel::from_shared(format!("https://{listen}"))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect_lazy()
    }

    /// `--dev` with more arguments on its command line (`--http-cert …`, say).
    pub fn start_dev_with_args(args: &[&str]) -> Coordinator {
        let mut dev = Coordinator::unstarted(TempDir::new("coordinator"), None, Vec::new());
        dev.args = args.iter().map(|a| a.to_string()).collect();
        dev.started()
    }

    /// A coordinator on `restored` (a data directory a restore wrote) in
    /// place of this one's lost host, with `env`: the cloud outlives the host
    /// (its directory is linked in), and the new host takes the address the
    /// agents' user-data names.
    pub fn start_as_new_host(&self, restored: TempDir, env: Vec<(String, String)>) -> Coordinator {
        std::os::unix::fs::symlink(self.data_dir().join("cloud"), restored.path().join("cloud"))
            .expect("link the cloud in");
        std::fs::copy(
            self.data_dir().join("coordinator.address"),
            restored.path().join("coordinator.address"),
        )
        .expect("the lost host's address");
        Coordinator::start_in_with(restored, slipway_coordinator::sample::SAMPLE_FLEET, env)
    }

    /// `--dev` run by `program` (`previous_coordinator()`, say), with `env`.
    pub fn start_program(program: PathBuf, env: Vec<(String, String)>) -> Coordinator {
        let mut dev = Coordinator::unstarted(TempDir::new("coordinator"), None, env);
        dev.program = Some(program);
        dev.started()
    }

    /// Which build the next start (and `start_standby`) runs; None: this one's.
    pub fn set_program(&mut self, program: Option<PathBuf>) {
        self.program = program;
    }

    fn launch_in(dir: TempDir, fleet: Option<PathBuf>, env: Vec<(String, String)>) -> Coordinator {
        Coordinator::unstarted(dir, fleet, env).started()
    }

    fn unstarted(dir: TempDir, fleet: Option<PathBuf>, env: Vec<(String, String)>) -> Coordinator {
        Coordinator {
            dir,
            child: None,
            listen: "127.0.0.1:0".into(),
            fleet,
            env,
            open_files: None,
            args: Vec::new(),
            program: None,
        }
    }

    fn started(mut self) -> Coordinator {
        self.launch();
        self.learn_address();
        self
    }

    /// Keeps the port the first start picked, for restarts and clients.
    /// Reads where the coordinator serves from its profile again (a standby
    /// that took over serves on its own port).
    pub fn learn_address(&mut self) {
        let profile = std::fs::read_to_string(self.profile()).expect("profile");
        let address = profile
            .lines()
            .find_map(|l| l.strip_prefix("coordinator = \"https://"))
            .and_then(|l| l.strip_suffix('"'))
            .expect("coordinator address in profile");
        self.listen = address.to_string();
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn profile(&self) -> PathBuf {
        self.data_dir().join("profile.toml")
    }

    /// The command line of this coordinator's process, logging to its log.
    fn command(&self) -> Command {
        self.command_listening(&self.listen)
    }

    fn command_listening(&self, listen: &str) -> Command {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir().join("coordinator.log"))
            .expect("log file");
        let program = self
            .program
            .clone()
            .unwrap_or_else(|| binary("slipway-coordinator"));
        let mut command = match self.open_files {
            None => Command::new(program),
            Some(limit) => {
                let mut sh = Command::new("sh");
                sh.args(["-c", &format!("ulimit -n {limit} && exec \"$0\" \"$@\"")])
                    .arg(program);
                sh
            }
        };
        match &self.fleet {
            None => command.arg("--dev"),
            Some(fleet) => command.arg("--fleet").arg(fleet),
        };
        // No AWS_* variable of this machine leaks in: each test says what it wants.
        command.env_clear();
        for key in ["PATH", "HOME", "SLIPWAY_LOG"] {
            if let Ok(value) = std::env::var(key) {
                command.env(key, value);
            }
        }
        command.envs(self.env.iter().cloned());
        command
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--listen")
            .arg(listen)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        command
    }

    /// A second coordinator process on the same data directory and store
    /// (PostgreSQL), listening on `listen`, with `env` over this one's: it
    /// stands by until it holds the lease. `adopt` makes it this coordinator's
    /// process once the first is gone.
    pub fn start_standby(&self, listen: &str, env: &[(&str, &str)]) -> Child {
        let mut command = self.command_listening(listen);
        command.envs(env.iter().copied());
        command
            .spawn()
            .expect("start a standby slipway-coordinator")
    }

    /// Waits for the process to exit on its own; how it exited.
    pub fn wait_exit(&mut self, deadline: Duration) -> std::process::ExitStatus {
        let child = self.child.as_mut().expect("a running coordinator");
        let status = eventually("the coordinator to exit", deadline, || {
            child.try_wait().expect("wait for the coordinator")
        });
        self.child = None;
        status
    }

    /// Takes `standby` as this coordinator's process (after its leader died).
    pub fn adopt(&mut self, standby: Child) {
        assert!(self.child.is_none(), "the leader's process is still held");
        self.child = Some(standby);
    }

    fn launch(&mut self) {
        // The address file outlives a stop (a restart keeps its port): this
        // start has written it once it is newer than the start.
        let address = self.data_dir().join("coordinator.address");
        let launched = std::time::SystemTime::now();
        let child = self.command().spawn().expect("start slipway-coordinator");
        self.child = Some(child);
        eventually(
            "the coordinator to write its address",
            Duration::from_secs(90),
            || {
                if let Some(child) = self.child.as_mut()
                    && let Ok(Some(status)) = child.try_wait()
                {
                    panic!("coordinator exited with {status}:\n{}", self.log());
                }
                std::fs::metadata(&address)
                    .and_then(|m| m.modified())
                    .is_ok_and(|written| written >= launched)
                    .then_some(())
            },
        );
        // Only --dev writes an admin profile; for a fleet file, the first
        // admin's certificate comes from `ca issue`, as README says.
        if self.fleet.is_some() && !self.profile().exists() {
            let issued = Command::new(binary("slipway-coordinator"))
                .arg("--data-dir")
                .arg(self.data_dir())
                .args(["ca", "issue", "--name", "admin", "--role", "admin", "--out"])
                .arg(self.data_dir())
                .output()
                .expect("run slipway-coordinator ca issue");
            assert!(
                issued.status.success(),
                "ca issue: {}",
                String::from_utf8_lossy(&issued.stderr)
            );
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("coordinator.log")).unwrap_or_default()
    }

    /// kill -9 of the coordinator, then a start on the same port.
    pub fn crash_and_restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// SIGTERM, then a start with `--listen listen` (as a person restarting
    /// it would type); the address it serves on is learned again.
    pub fn restart_listening(&mut self, listen: &str) -> String {
        self.terminate(Duration::from_secs(30));
        self.listen = listen.to_string();
        let from = self.log_len();
        self.launch();
        self.learn_address();
        self.log().get(from..).unwrap_or_default().to_string()
    }

    /// Sets (Some) or removes (None) a variable of the process's environment,
    /// from its next start on.
    pub fn set_env(&mut self, key: &str, value: Option<&str>) {
        self.env.retain(|(k, _)| k != key);
        if let Some(value) = value {
            self.env.push((key.to_string(), value.to_string()));
        }
    }

    /// Restarts the coordinator (kill -9) so that it pauses at fault `point`
    /// (`slipway_coordinator::faults`), does `start`, and waits until the
    /// coordinator logs that it got there. Its next restart pauses nowhere.
    pub fn pause_at<T>(&mut self, point: &str, start: impl FnOnce(&Coordinator) -> T) -> T {
        use slipway_coordinator::faults::PAUSE_AT;
        self.set_env(PAUSE_AT, Some(point));
        // Taken before the restart: a resumed deployment may get there at once.
        let from = self.log_len();
        self.crash_and_restart();
        let started = start(self);
        self.wait_for_log(
            from,
            &format!("fault point reached: {point};"),
            Duration::from_secs(60),
        );
        self.set_env(PAUSE_AT, None);
        started
    }

    /// How much the coordinator has logged so far, to wait for lines after it.
    pub fn log_len(&self) -> usize {
        self.log().len()
    }

    /// Waits until the log, after its first `from` bytes, contains `text`.
    /// On a timeout, the panic shows the last lines logged since `from`.
    pub fn wait_for_log(&self, from: usize, text: &str, deadline: Duration) {
        let started = std::time::Instant::now();
        loop {
            let log = self.log();
            let new = log.get(from..).unwrap_or_default();
            if new.contains(text) {
                return;
            }
            if started.elapsed() > deadline {
                let lines: Vec<&str> = new.lines().collect();
                let tail = lines[lines.len().saturating_sub(40)..].join("\n");
                panic!(
                    "timed out after {deadline:?} waiting for the coordinator to log {text:?}; its last lines since:\n{tail}"
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then waits for the process to exit; its exit status.
    pub fn terminate(&mut self, deadline: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("a running coordinator");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("send SIGTERM");
        let give_up = std::time::Instant::now() + deadline;
        loop {
            if let Some(status) = child.try_wait().expect("wait for the coordinator") {
                return status;
            }
            if std::time::Instant::now() > give_up {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the coordinator did not exit within {deadline:?} of SIGTERM; its log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Runs the CLI with this coordinator's admin profile.
    pub fn cli(&self, args: &[&str]) -> CliRun {
        self.cli_as(&self.profile(), args)
    }

    /// The CLI with a profile and arguments, not yet run.
    pub fn cli_command(profile: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(binary("slipway"));
        command
            .arg("--profile")
            .arg(profile)
            .args(args)
            .env_remove("SLIPWAY_PROFILE");
        command
    }

    /// Runs the CLI with another profile (another certificate).
    pub fn cli_as(&self, profile: &Path, args: &[&str]) -> CliRun {
        let output = Self::cli_command(profile, args)
            .output()
            .expect("run slipway");
        CliRun::from(output)
    }

    /// Starts the CLI and returns at once, for a call the test interrupts.
    pub fn cli_in_background(&self, args: &[&str]) -> CliChild {
        let child = Self::cli_command(&self.profile(), args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run slipway");
        CliChild(child)
    }

    /// Runs the CLI with `input` on its stdin.
    pub fn cli_with_stdin(&self, args: &[&str], input: &str) -> CliRun {
        use std::io::Write;
        let mut child = Self::cli_command(&self.profile(), args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run slipway");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
        CliRun::from(child.wait_with_output().expect("slipway output"))
    }

    /// Runs the CLI and insists it succeeds.
    pub fn ok(&self, args: &[&str]) -> CliRun {
        let run = self.cli(args);
        assert!(
            run.success,
            "slipway {args:?} failed:\n{}\n{}\ncoordinator log:\n{}",
            run.stdout,
            run.stderr,
            self.log()
        );
        run
    }

    /// Runs the CLI and insists it exits with `code`.
    pub fn exits(&self, code: i32, args: &[&str]) -> CliRun {
        let run = self.cli(args);
        assert_eq!(
            run.code,
            Some(code),
            "slipway {args:?} exit code:\n{}\n{}",
            run.stdout,
            run.stderr
        );
        run
    }

    /// `status hello --output json`, the environment named `env`.
    pub fn environment(&self, env: &str) -> Value {
        let status = self.ok(&["status", "hello", "--output", "json"]).json();
        status["environments"]
            .as_array()
            .and_then(|envs| envs.iter().find(|e| e["name"] == env).cloned())
            .unwrap_or_else(|| panic!("no environment {env} in {status}"))
    }

    pub fn endpoint(&self, env: &str) -> String {
        self.environment(env)["endpoint"]
            .as_str()
            .expect("endpoint")
            .to_string()
    }

    /// Opens a request to `env`'s endpoint and leaves its headers unfinished:
    /// the instance serving it holds the connection, so a deployment there
    /// stays draining (for at most the fleet's `drain`) until it is dropped.
    pub fn hold_request(&self, env: &str) -> std::net::TcpStream {
        use std::io::Write;
        let endpoint = self.endpoint(env);
        let mut held = std::net::TcpStream::connect(&endpoint).expect("connect to the endpoint");
        write!(held, "GET / HTTP/1.1\r\nHost: {endpoint}\r\n").expect("write half a request");
        held
    }

    /// `slipway cert issue` as the admin: NAME with ROLE, limited to `envs`
    /// (none: every environment), written under `dir`; returns its profile.
    pub fn issue(&self, dir: &Path, name: &str, role: &str, envs: &[&str]) -> PathBuf {
        let out = dir.join(name);
        let mut args = vec!["cert", "issue", "--name", name, "--role", role];
        for env in envs {
            args.extend(["--env", env]);
        }
        args.extend(["--out", out.to_str().expect("a UTF-8 path")]);
        self.ok(&args);
        out.join("profile.toml")
    }

    /// The CA file the coordinator's certificates (the dashboard's too) chain to.
    pub fn ca_pem(&self) -> PathBuf {
        self.data_dir().join("ca").join("ca.pem")
    }

    /// `https://host:port` of the dev dashboard, as the coordinator recorded it.
    pub fn dashboard(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("dashboard.address"))
            .expect("the dev coordinator records its dashboard address")
            .trim()
            .to_string()
    }

    /// `slipway dashboard url --name NAME`: the URL with its token, and the token.
    pub fn dashboard_url(&self, name: &str) -> (String, String) {
        let minted = self
            .ok(&["dashboard", "url", "--name", name, "-o", "json"])
            .json();
        let url = minted["url"].as_str().expect("url").to_string();
        let token = url
            .split_once("token=")
            .expect("token in the URL")
            .1
            .to_string();
        (url, token)
    }

    /// The dashboard's board (`/board.json`), read with `token` as Prometheus
    /// or a script would.
    pub fn board(&self, token: &str) -> Value {
        let reply = web::get(
            &format!("{}/board.json", self.dashboard()),
            &web::tls_config(&self.ca_pem()),
            &[("Authorization", &format!("Bearer {token}"))],
        );
        assert_eq!(reply.status, 200, "{reply:?}");
        serde_json::from_str(&reply.body).expect("the board is JSON")
    }

    /// The board's cell of `project` in `environment`.
    pub fn cell(&self, token: &str, project: &str, environment: &str) -> Value {
        let board = self.board(token);
        board["cells"]
            .as_array()
            .and_then(|cells| {
                cells
                    .iter()
                    .find(|c| c["project"] == project && c["environment"] == environment)
                    .cloned()
            })
            .unwrap_or_else(|| panic!("no cell {project}/{environment}: {board}"))
    }

    pub fn deployment(&self, id: &str) -> Value {
        self.ok(&["show", id, "--output", "json"]).json()
    }

    /// Takes `fleet` as an operator does: written to `DATA_DIR/NAME`, then
    /// `slipway fleet apply` (`fleet.toml` keeps it across restarts too).
    pub fn apply_fleet(&self, name: &str, fleet: &str) {
        let path = self.data_dir().join(name);
        std::fs::write(&path, fleet).expect("write the fleet file");
        self.ok(&["fleet", "apply", path.to_str().expect("a UTF-8 path")]);
    }

    /// Who did `action` and how it ended, as the audit log says, oldest first.
    pub fn audit_results(&self, action: &str) -> Vec<(String, String)> {
        let audit = self.ok(&["audit", "--action", action, "-o", "json"]).json();
        audit
            .as_array()
            .expect("audit entries")
            .iter()
            .map(|e| {
                let text = |field: &str| e[field].as_str().unwrap_or_default().to_string();
                (text("who"), text("result"))
            })
            .collect()
    }

    /// Queues a deployment without waiting; returns its id.
    pub fn enqueue(&self, version: &str, env: &str) -> String {
        let queued = self
            .ok(&["deploy", "hello", version, "--env", env, "--output", "json"])
            .json();
        queued["id"].as_str().expect("id").to_string()
    }

    pub fn wait_finished(&self, id: &str, deadline: Duration) -> Value {
        eventually(&format!("deployment {id} to finish"), deadline, || {
            let d = self.deployment(id);
            (d["finished"] == true).then_some(d)
        })
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        self.kill();
        let _ = Command::new(bin_dir().join("slipway-coordinator"))
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("down")
            .stdout(Stdio::null())
            .status();
    }
}

/// The phases a deployment went through, with their times (ms).
pub fn phases(deployment: &Value) -> Vec<(String, i64)> {
    deployment["phases"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|p| {
                    (
                        p["phase"].as_str().unwrap_or("").to_string(),
                        p["at_ms"].as_i64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// When a deployment entered `phase`, if it did.
pub fn entered(deployment: &Value, phase: &str) -> Option<i64> {
    phases(deployment)
        .into_iter()
        .find(|(p, _)| p == phase)
        .map(|(_, at)| at)
}

/// When a deployment finished.
pub fn finished_at(deployment: &Value) -> i64 {
    phases(deployment)
        .last()
        .map(|(_, at)| *at)
        .expect("phases")
}

pub fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
