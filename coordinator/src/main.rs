//! `slipway-coordinator`: runs the coordinator; `down` stops it and its local
//! cloud; `ca issue` makes operator certificates on the coordinator host;
//! `store copy` moves the embedded store into PostgreSQL; `backup`, `restore`
//! and `backup-key` keep it safe.

#![forbid(unsafe_code)]

// Start-up is the binary's: the library is the coordinator without a process.
mod backups;
mod data_dir;
mod dev;
mod run;
mod storage;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "slipway-coordinator",
    version,
    about = "Slipway's coordinator: release queue, deploys, trust"
)]
struct Args {
    /// Run the embedded default: the local cloud, a sample fleet and releases, a CLI profile.
    #[arg(long)]
    dev: bool,
    /// Where the store, CA, local cloud and profile live (before or after a subcommand).
    #[arg(long, global = true, default_value = "./.slipway")]
    data_dir: PathBuf,
    /// The gRPC address (TLS only). Port 0 picks a free port (with --dev: the last start's), profile.toml tells which.
    #[arg(long, default_value = "127.0.0.1:7443")]
    listen: SocketAddr,
    /// The fleet file (projects, environments, deadlines).
    #[arg(long)]
    fleet: Option<PathBuf>,
    /// The https:// address agents dial, written into every launch (default: the listen address).
    #[arg(long)]
    advertise: Option<String>,
    /// Serve the read-only dashboard and /metrics over HTTPS here (with --dev: a free port, printed).
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// The dashboard's certificate chain (PEM), for browsers that do not trust Slipway's CA
    /// (default: a certificate from the coordinator's CA). Needs --http-key.
    #[arg(long, requires = "http_key")]
    http_cert: Option<PathBuf>,
    /// The private key (PEM) of --http-cert.
    #[arg(long, requires = "http_cert")]
    http_key: Option<PathBuf>,
    /// plain (default) or json: one JSON object per line, for log shippers.
    #[arg(long, global = true)]
    log_format: Option<String>,
    /// The store: postgres://USER@HOST:PORT/DATABASE?sslmode=require for several
    /// coordinators (password from PGPASSWORD); default: embedded, in the data directory.
    #[arg(long, env = "SLIPWAY_STORE", hide_env_values = true)]
    store: Option<String>,
    /// With a PostgreSQL store: how long the leader's lease lasts. A standby takes over
    /// within about this long of the leader's end (it waits a sixth more).
    #[arg(long, env = "SLIPWAY_LEASE", default_value = "6s", value_parser = humantime::parse_duration)]
    lease: std::time::Duration,
    /// With a PostgreSQL store: another coordinator's https:// address (repeat for each).
    /// Agents are given every address, and the dev profile lists them.
    #[arg(long = "peer", env = "SLIPWAY_PEERS", value_delimiter = ',')]
    peers: Vec<String>,
    /// The CA certificates (PEM) PostgreSQL's TLS is checked against (RDS has its own),
    /// instead of the system's.
    #[arg(long, global = true)]
    store_ca: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Stop the coordinator of --data-dir and its local cloud: every instance, load balancer and record.
    Down,
    /// The coordinator's certificate authority (on the coordinator host).
    #[command(subcommand)]
    Ca(CaCommand),
    /// The store itself.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Write a backup of --data-dir's store (asking the running coordinator
    /// for a consistent snapshot, if one runs), sealed to a passphrase or a
    /// public key.
    Backup {
        /// The backup file to write (owner-only; never over an existing one).
        #[arg(long)]
        out: PathBuf,
        /// Also carry the CA (ca/) and the secrets key: then the backup alone
        /// restores a working coordinator, and must be kept as the keys are.
        #[arg(long)]
        with_keys: bool,
        /// A file whose first line is the passphrase (12 characters or more).
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
        /// A recipient file (`backup-key` writes one): only its identity opens the backup.
        #[arg(long)]
        recipient: Option<PathBuf>,
    },
    /// Restore a backup into --data-dir, which must hold no store yet.
    Restore {
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
        /// A file whose first line is the passphrase it was sealed to.
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
        /// The identity file whose recipient it was sealed to.
        #[arg(long)]
        identity: Option<PathBuf>,
    },
    /// Make a key pair for backups: an identity (private) at --out, its recipient (public) at OUT.pub.
    BackupKey {
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Copy a stopped coordinator's embedded store into an empty PostgreSQL database.
    Copy {
        /// The data directory whose store to copy.
        #[arg(long)]
        from: PathBuf,
        /// postgres://USER@HOST:PORT/DATABASE (password from PGPASSWORD).
        #[arg(long)]
        to: String,
    },
}

#[derive(Debug, Subcommand)]
enum CaCommand {
    /// Issue an operator or CI certificate and a profile that uses it.
    Issue {
        /// Who it is for, e.g. alice or ci-web.
        #[arg(long)]
        name: String,
        /// viewer, deployer or admin.
        #[arg(long)]
        role: String,
        /// Limit it to these environments (repeat the flag); default: all.
        #[arg(long = "env")]
        environments: Vec<String>,
        /// Lifetime in days.
        #[arg(long, default_value_t = 90)]
        days: u32,
        /// The coordinator address for the profile (default: from DATA_DIR/profile.toml).
        #[arg(long)]
        coordinator: Option<String>,
        /// Where to write ca.pem, cert.pem, key.pem and profile.toml.
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = slipway_common::logging::init(args.log_format.as_deref()) {
        eprintln!("slipway-coordinator: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("slipway-coordinator: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(dispatch(args));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("slipway-coordinator: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs what the arguments ask for.
async fn dispatch(args: Args) -> anyhow::Result<()> {
    // Resolved once, here: every path handed on is absolute (a relative one
    // means something else in the local cloud's and the agents' directories).
    let existing = || data_dir::resolve(&args.data_dir);
    match args.command {
        Some(Command::Down) => dev::down(&existing()?).await,
        Some(Command::Ca(CaCommand::Issue {
            name,
            role,
            environments,
            days,
            coordinator,
            out,
        })) => dev::issue_operator(
            &existing()?,
            &name,
            &role,
            &environments,
            days,
            coordinator,
            &out,
        ),
        Some(Command::Backup {
            out,
            with_keys,
            passphrase_file,
            recipient,
        }) => {
            let sealing = backups::Sealing {
                passphrase_file,
                recipient,
            };
            backups::backup(&existing()?, &out, with_keys, sealing).await
        }
        Some(Command::Restore {
            from,
            passphrase_file,
            identity,
        }) => {
            let sealing = backups::Sealing {
                passphrase_file,
                recipient: identity,
            };
            backups::restore(&data_dir::create(&args.data_dir)?, &from, sealing).await
        }
        Some(Command::BackupKey { out }) => backups::keygen(&out),
        Some(Command::Store(StoreCommand::Copy { from, to })) => {
            let to = storage::StoreFlags {
                url: Some(to),
                ca: args.store_ca,
            };
            storage::copy(&data_dir::resolve(&from)?, &to).await
        }
        None => {
            run::run(run::Options {
                data_dir: data_dir::create(&args.data_dir)?,
                listen: args.listen,
                fleet: args.fleet,
                dev: args.dev,
                advertise: args.advertise,
                http_listen: args.http_listen,
                http_certificate: args.http_cert.zip(args.http_key),
                store: storage::StoreFlags {
                    url: args.store,
                    ca: args.store_ca,
                },
                lease: args.lease,
                peers: args.peers,
            })
            .await
        }
    }
}
