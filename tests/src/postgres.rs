//! A real PostgreSQL server for the store's tests: Debian's `postgresql`
//! (tests/run installs it), a cluster of its own in a temporary directory on a
//! free loopback port, stopped and removed when dropped. `initdb` refuses to
//! run as root, so as root the cluster belongs to the `postgres` user the
//! package creates. `Proxy` stands between a coordinator and the server, to
//! cut it off.

use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

use crate::{TempDir, free_port};

/// The cluster's superuser; local connections are trusted.
pub const USER: &str = "slipway";

pub struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    pub port: u16,
    /// The CA that signed the server's certificate, when it speaks TLS.
    pub ca_file: Option<PathBuf>,
    running: bool,
    dir: TempDir,
}

/// The newest installed server's binaries.
fn bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let version = e.file_name().to_str()?.parse().ok()?;
                    let bin = e.path().join("bin");
                    bin.join("initdb").exists().then_some((version, bin))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.pop().map(|(_, bin)| bin).expect(
        "PostgreSQL's server binaries under /usr/lib/postgresql: tests/run installs them \
         (apt-get install postgresql)",
    )
}

fn as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// `program` run as the cluster's owner.
fn owner_command(program: &Path) -> Command {
    if as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(command: &mut Command, what: &str) {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Postgres {
    /// A server that takes plain connections only.
    pub fn start() -> Postgres {
        Postgres::start_with(false)
    }

    /// A server that also speaks TLS, with a certificate for 127.0.0.1 from a
    /// CA made here (`ca_file`).
    pub fn start_tls() -> Postgres {
        Postgres::start_with(true)
    }

    fn start_with(tls: bool) -> Postgres {
        let bin = bin_dir();
        let dir = TempDir::new("postgres");
        let data = dir.path().join("data");
        if as_root() {
            run(
                Command::new("chown")
                    .args(["-R", "postgres"])
                    .arg(dir.path()),
                "chown the cluster's directory to postgres",
            );
        }
        run(
            owner_command(&bin.join("initdb"))
                .arg("-D")
                .arg(&data)
                .args(["-A", "trust", "-U", USER, "--no-sync", "-E", "UTF8"]),
            "initdb",
        );
        let mut server = Postgres {
            bin,
            data,
            port: free_port(),
            ca_file: None,
            running: false,
            dir,
        };
        if tls {
            server.ca_file = Some(server.make_certificate());
        }
        server.start_again();
        server
    }

    /// A CA, and a certificate for 127.0.0.1 in the data directory.
    fn make_certificate(&self) -> PathBuf {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::default();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "Test PostgreSQL CA");
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().expect("server key");
        let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .expect("server names")
            .signed_by(&key, &issuer)
            .expect("server certificate");
        std::fs::write(self.data.join("server.crt"), cert.pem()).expect("server.crt");
        std::fs::write(self.data.join("server.key"), key.serialize_pem()).expect("server.key");
        if as_root() {
            run(
                Command::new("chown")
                    .arg("postgres")
                    .arg(self.data.join("server.crt"))
                    .arg(self.data.join("server.key")),
                "chown the server's key",
            );
        }
        run(
            Command::new("chmod")
                .arg("600")
                .arg(self.data.join("server.key")),
            "chmod the server's key",
        );
        let ca_file = self.dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca_cert.pem()).expect("ca.pem");
        ca_file
    }

    /// Starts the server (again, after `stop`) on its port, and waits until
    /// it takes connections.
    pub fn start_again(&mut self) {
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        if self.ca_file.is_some() {
            options.push_str(" -c ssl=on");
        }
        run(
            owner_command(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(&self.data)
                .args(["-o", &options, "-l"])
                .arg(self.dir.path().join("server.log"))
                .args(["-w", "-t", "60", "start"]),
            "pg_ctl start",
        );
        self.running = true;
    }

    /// Stops the server at once, as a crash would (`immediate`).
    pub fn stop(&mut self) {
        run(&mut self.stop_command(), "pg_ctl stop");
        self.running = false;
    }

    fn stop_command(&self) -> Command {
        let mut pg_ctl = owner_command(&self.bin.join("pg_ctl"));
        pg_ctl
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"]);
        pg_ctl
    }

    /// Runs `sql` in `database` with psql; its output.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let output = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER])
            .args(["-d", database, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
            .output()
            .expect("run psql");
        assert!(
            output.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// A new, empty database; its address (plain connections).
    pub fn database(&self, name: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(name, "disable")
    }

    /// The address of `database` with `sslmode`.
    pub fn url(&self, database: &str, sslmode: &str) -> String {
        format!(
            "postgres://{USER}@127.0.0.1:{}/{database}?sslmode={sslmode}",
            self.port
        )
    }

    /// The server's log so far, for a failing test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.running {
            let _ = self.stop_command().output();
        }
    }
}

/// A TCP proxy in front of the server that a test can cut, as a network
/// partition would: open connections are shut, new ones are accepted and
/// then left hanging, never forwarded.
pub struct Proxy {
    pub port: u16,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    pub fn to(server: &Postgres) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy port");
        let port = listener.local_addr().expect("proxy address").port();
        let upstream = format!("127.0.0.1:{}", server.port);
        let cut = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (is_cut, held) = (cut.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if is_cut.load(Ordering::SeqCst) {
                    held.lock().unwrap().push(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                for (from, to) in [(&client, &server), (&server, &client)] {
                    let (mut from, mut to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Write);
                    });
                }
                held.lock().unwrap().extend([client, server]);
            }
        });
        Proxy { port, cut, open }
    }

    /// Cuts every connection, and every one from now on.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}
