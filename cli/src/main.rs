//! `slipway`: the operator's and CI's command line. Thin: it parses, calls one
//! RPC of the coordinator over mutual TLS, and prints the answer (or JSON).
//!
//! - `main`: the arguments and the dispatch to a command.
//! - `commands`: one module per noun (deployment, release, status, agent,
//!   secret, cert, audit, infra, promote).
//! - `client`: the connection and what a failed call means for the user;
//!   `failure`: a one-line failure and its exit code.
//! - `render`: JSON, tables (`table`) and readable times (`time_text`).
//! - `profile`: which coordinator and certificate.
//!
//! Dependencies point down: `main` → `commands` → `client`, `render` → `failure`.

#![forbid(unsafe_code)]

mod client;
mod commands;
mod failure;
mod profile;
mod render;
mod table;
mod time_text;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use client::Client;
use commands::{agent, audit, cert, deployment, infra, promote, release, secret, status};
use failure::Failure;
use render::Output;

#[derive(Debug, Parser)]
#[command(
    name = "slipway",
    version,
    about = "Deploy releases onto immutable infrastructure"
)]
struct Cli {
    /// The profile (coordinator address and certificate). Default: $SLIPWAY_PROFILE, then ./.slipway/profile.toml.
    #[arg(long, global = true)]
    profile: Option<PathBuf>,
    /// How to print answers.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Register or list releases.
    #[command(subcommand)]
    Release(ReleaseCommand),
    /// Queue a deployment of PROJECT at VERSION onto an environment.
    Deploy {
        project: String,
        version: String,
        #[arg(long)]
        env: String,
        /// Show progress phase by phase; exit non-zero unless it succeeded.
        #[arg(long)]
        wait: bool,
    },
    /// What runs on every target, and who waits behind it.
    Queue,
    /// Cancel a queued deployment, or roll back one that does not serve yet.
    Cancel { id: String },
    /// Environments, versions, load balancers and instances.
    Status { project: Option<String> },
    /// Deployment history, newest first.
    Deployments {
        #[arg(long)]
        project: Option<String>,
        #[arg(long)]
        env: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// One deployment with its phase timestamps.
    Show { id: String },
    /// The agents Slipway launched, and whether they are connected.
    Agents,
    /// Point PROJECT's public record at another production cluster.
    Promote {
        project: String,
        #[arg(long)]
        to: String,
    },
    /// Load balancers and records the fleet file implies.
    #[command(subcommand)]
    Infra(InfraCommand),
    /// Environment secrets (admin sets, anyone lists names; values are never shown).
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Revoke every certificate of an operator or an agent (instance id); admin.
    Revoke { name: String },
    /// Certificates for operators and CI jobs (admin).
    #[command(subcommand)]
    Cert(CertCommand),
    /// The audit log of every mutating action; `audit verify` checks its hash chain.
    Audit {
        #[command(subcommand)]
        command: Option<AuditCommand>,
        /// Only entries this recent, e.g. 1h or 30m.
        #[arg(long)]
        since: Option<String>,
    },
    /// Redeploy the release that ran before the current one.
    Rollback {
        project: String,
        #[arg(long)]
        env: String,
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Debug, Subcommand)]
enum SecretCommand {
    /// Read the value from stdin (so it stays out of shell history) and store it.
    Set { environment: String, key: String },
    /// List secret names, values masked.
    List { environment: Option<String> },
}

#[derive(Debug, Subcommand)]
enum CertCommand {
    /// Make a key here, have the coordinator sign it with a role, write a profile.
    Issue {
        #[arg(long)]
        name: String,
        /// viewer, deployer or admin.
        #[arg(long)]
        role: String,
        /// Limit a deployer to these environments (repeat the flag).
        #[arg(long = "env")]
        environments: Vec<String>,
        /// Lifetime in days (1-365).
        #[arg(long, default_value_t = 90)]
        days: u32,
        /// Where to write ca.pem, cert.pem, key.pem and profile.toml.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the hash chain; exit non-zero naming the first broken entry.
    Verify {
        /// An anchor from `audit anchor` (COUNT:HASH): also catches a log rewritten
        /// with every hash recomputed, or cut short.
        #[arg(long)]
        anchor: Option<String>,
    },
    /// Print the log's anchor (COUNT:HASH) to keep outside the coordinator.
    Anchor {
        /// Also write it to this file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum InfraCommand {
    /// Show what the fleet file needs that the cloud lacks; changes nothing.
    Plan,
    /// Create or fix it; running it twice changes nothing the second time.
    Apply,
}

#[derive(Debug, Subcommand)]
enum ReleaseCommand {
    /// Register PROJECT at VERSION; its image is found by tags unless --image names it.
    Add {
        project: String,
        version: String,
        #[arg(long)]
        image: Option<String>,
    },
    /// List registered releases.
    List { project: Option<String> },
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let path = profile::locate(cli.profile.clone(), std::env::var("SLIPWAY_PROFILE").ok());
    let profile = profile::load(&path)?;
    let client = &mut Client::connect(profile).await?;
    let out = cli.output;
    match cli.command {
        Command::Release(ReleaseCommand::Add {
            project,
            version,
            image,
        }) => release::add(client, out, project, version, image).await,
        Command::Release(ReleaseCommand::List { project }) => {
            release::list(client, out, project).await
        }
        Command::Deploy {
            project,
            version,
            env,
            wait,
        } => {
            let asked = deployment::Deploy {
                project,
                version,
                environment: env,
                wait,
            };
            deployment::deploy(client, out, asked).await
        }
        Command::Rollback { project, env, wait } => {
            deployment::rollback(client, out, project, env, wait).await
        }
        Command::Queue => deployment::queue(client, out).await,
        Command::Cancel { id } => deployment::cancel(client, out, id).await,
        Command::Show { id } => deployment::show(client, out, id).await,
        Command::Deployments {
            project,
            env,
            limit,
        } => deployment::list(client, out, project, env, limit).await,
        Command::Status { project } => status::show(client, out, project).await,
        Command::Agents => agent::list(client, out).await,
        Command::Revoke { name } => agent::revoke(client, out, name).await,
        Command::Secret(SecretCommand::Set { environment, key }) => {
            secret::set(client, out, environment, key).await
        }
        Command::Secret(SecretCommand::List { environment }) => {
            secret::list(client, out, environment).await
        }
        Command::Cert(CertCommand::Issue {
            name,
            role,
            environments,
            days,
            out: dir,
        }) => {
            let asked = cert::Issue {
                name,
                role,
                environments,
                days,
                out: dir,
            };
            cert::issue(client, out, asked).await
        }
        Command::Audit {
            command: Some(AuditCommand::Verify { anchor }),
            ..
        } => audit::verify(client, out, anchor).await,
        Command::Audit {
            command: Some(AuditCommand::Anchor { out: file }),
            ..
        } => audit::anchor(client, out, file).await,
        Command::Audit {
            command: None,
            since,
        } => audit::list(client, out, since).await,
        Command::Infra(InfraCommand::Plan) => infra::run(client, out, false).await,
        Command::Infra(InfraCommand::Apply) => infra::run(client, out, true).await,
        Command::Promote { project, to } => promote::promote(client, out, project, to).await,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("slipway: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("slipway: {}", render::text(&failure.message));
            ExitCode::from(failure.code)
        }
    }
}
