//! `slipway`: the operator's and CI's command line. Thin: it parses, calls the
//! coordinator over mutual TLS, and prints the answer (table, JSON or YAML).
//!
//! - `main`: the arguments and the dispatch to a command.
//! - `commands`: one module per noun (deployment, release, status, agent,
//!   secret, cert, audit, infra, promote, events, logs, dashboard).
//! - `api`: the coordinator's calls in the CLI's own types (`schema`), the only
//!   module besides `client` that sees the wire; `client`: the connection and
//!   what a failed call means; `failure`: a one-line failure and its exit code.
//! - `render`: JSON, YAML (`yaml`), tables (`table`) and times (`time_text`).
//! - `profile`: which coordinator and certificate; `webhook`: the one HTTP
//!   client (an audit anchor posted to a URL).
//!
//! Dependencies point down: `main` → `commands` → `api` → `client`, and
//! `commands` → `render` → `schema`, `failure`.

#![forbid(unsafe_code)]

mod api;
mod client;
mod commands;
mod failure;
mod profile;
mod render;
mod schema;
mod table;
mod time_text;
mod webhook;
mod yaml;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};

use client::Client;
use commands::deployment::Wait;
use commands::{
    agent, audit, ca, cert, dashboard, deployment, events, infra, logs, promote, release, secret,
    status,
};
use failure::{EXIT_CODES, Exit, Failure};
use render::Output;

#[derive(Debug, Parser)]
#[command(
    name = "slipway",
    version,
    about = "Deploy releases onto immutable infrastructure",
    after_help = EXIT_CODES
)]
struct Cli {
    /// The profile (coordinator address and certificate). Default: $SLIPWAY_PROFILE, then ./.slipway/profile.toml.
    #[arg(long, global = true)]
    profile: Option<PathBuf>,
    /// How to print answers: text (tables cut to 120 columns), wide, json or yaml.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

/// `--wait` and `--timeout`, shared by `deploy` and `rollback`.
#[derive(Debug, clap::Args)]
struct WaitArgs {
    /// Follow it phase by phase to its end; the exit code says how it ended.
    #[arg(long)]
    wait: bool,
    /// With --wait: stop waiting after this long (e.g. 10m) and exit 7; the deployment goes on.
    #[arg(long, requires = "wait", value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
}

/// `--request-id`, on the commands that act.
#[derive(Debug, clap::Args)]
struct RequestIdArg {
    /// Makes a retry safe: the same id from the same certificate within a day gets the
    /// first answer instead of acting again (default: a new id, printed on stderr).
    #[arg(long, value_name = "ID")]
    request_id: Option<String>,
}

impl From<WaitArgs> for Wait {
    fn from(args: WaitArgs) -> Wait {
        Wait {
            wait: args.wait,
            timeout: args.timeout,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Register or list releases.
    #[command(subcommand)]
    Release(ReleaseCommand),
    /// Queue a deployment of PROJECT at VERSION onto an environment.
    Deploy {
        /// The project, as the fleet file names it.
        project: String,
        /// A registered release of it (`slipway release list PROJECT`).
        version: String,
        /// The environment to deploy onto.
        #[arg(long)]
        env: String,
        #[command(flatten)]
        wait: WaitArgs,
        #[command(flatten)]
        request: RequestIdArg,
    },
    /// Redeploy the release that ran before the current one.
    Rollback {
        /// The project, as the fleet file names it.
        project: String,
        /// The environment to roll back.
        #[arg(long)]
        env: String,
        #[command(flatten)]
        wait: WaitArgs,
        #[command(flatten)]
        request: RequestIdArg,
    },
    /// What runs on every target, and who waits behind it.
    Queue,
    /// Approve a queued deployment its environment requires an approval for
    /// (a deployer or admin of that environment other than its requester).
    /// Audited.
    Approve {
        /// The deployment's id, e.g. d-12.
        id: String,
    },
    /// Let one queued deployment through its environment's freeze window now
    /// (admin). Audited with the reason.
    OverrideFreeze {
        /// The deployment's id, e.g. d-12.
        id: String,
        /// Why it cannot wait for the window's end (an incident, say).
        #[arg(long)]
        reason: String,
    },
    /// Cancel a queued deployment, or roll back one that does not serve yet.
    Cancel {
        /// The deployment's id, e.g. d-12.
        id: String,
        #[command(flatten)]
        request: RequestIdArg,
    },
    /// Environments, versions, deployments in flight, load balancers and instances.
    Status {
        /// Only this project.
        project: Option<String>,
    },
    /// Deployment history, newest first.
    Deployments {
        /// Only this project.
        project: Option<String>,
        /// Only this environment.
        #[arg(long)]
        env: Option<String>,
        /// At most this many (0: all).
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// How two deployments' configurations differ (secret values compared by digest).
    Diff {
        /// The deployment compared from, e.g. d-7.
        from: String,
        /// The deployment compared to, e.g. d-9.
        to: String,
    },
    /// One deployment with its phase times.
    Show {
        /// The deployment's id, e.g. d-12.
        id: String,
        /// Follow it to its end, as `deploy --wait` does; the exit code says how it ended.
        #[arg(long, short = 'f')]
        follow: bool,
        /// With --follow: stop after this long (e.g. 10m) and exit 7.
        #[arg(long, requires = "follow", value_parser = humantime::parse_duration)]
        timeout: Option<Duration>,
    },
    /// The agents of running instances, and whether they are connected.
    Agents {
        /// Only this project.
        project: Option<String>,
    },
    /// Point PROJECT's public record at another production cluster.
    Promote {
        /// The project, as the fleet file names it.
        project: String,
        /// The environment (production cluster) to point it at.
        #[arg(long)]
        to: String,
        /// Promote while a freeze window holds it (admin), saying why; audited.
        #[arg(long, value_name = "REASON")]
        override_freeze: Option<String>,
        #[command(flatten)]
        request: RequestIdArg,
    },
    /// Load balancers and records the fleet file implies.
    #[command(subcommand)]
    Infra(InfraCommand),
    /// The fleet file: what a new one would change, and taking it (admin).
    #[command(subcommand)]
    Fleet(FleetCommand),
    /// Secrets of environments, projects and data stores (admin sets and
    /// deletes, anyone lists names; values are never shown).
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Read-only tokens for the dashboard and /metrics (admin): a URL for
    /// the wall screen, the tokens, and ending them.
    #[command(subcommand)]
    Dashboard(DashboardCommand),
    /// Revoke every certificate of an operator or an agent (instance id); admin.
    Revoke {
        /// An operator's certificate name, or an agent's instance id.
        name: String,
    },
    /// Certificates for operators and CI jobs: issue (admin), renew your own.
    #[command(subcommand)]
    Cert(CertCommand),
    /// The coordinator's CA: rotate it with an overlap window (admin).
    #[command(subcommand)]
    Ca(CaCommand),
    /// What happened (deployments' phases, promotions, releases, fleet
    /// changes, revocations), one line per event; `--follow` for live ones.
    /// With `-o json`, one JSON object per line.
    Events {
        /// Keep printing events as they happen (Ctrl-C ends it).
        #[arg(long, short = 'f')]
        follow: bool,
        /// A sequence number (the events after it: the last one you saw),
        /// or a duration (the events of the last 1h, say).
        #[arg(long)]
        since: Option<String>,
        /// Only events about this project.
        #[arg(long)]
        project: Option<String>,
        /// Only events about this environment.
        #[arg(long = "env")]
        environment: Option<String>,
        /// Only events about this deployment.
        #[arg(long)]
        deployment: Option<String>,
    },
    /// Services' output from the running instances of a project in an
    /// environment, each line with its instance; `--follow` for new lines.
    /// With `-o json`, one JSON object per line.
    Logs {
        /// The project whose services' output to show.
        project: String,
        /// The environment its instances run in.
        #[arg(long = "env")]
        environment: String,
        /// Only this instance.
        #[arg(long)]
        instance: Option<String>,
        /// Only this service.
        #[arg(long)]
        service: Option<String>,
        /// The last lines of each service (at most 10000).
        #[arg(long, default_value_t = 100)]
        lines: u32,
        /// Keep printing new lines as they are written (Ctrl-C ends it).
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// How notifications are delivered: each one's pending and failing
    /// events, and those given up.
    Notifications,
    /// The audit log of every mutating action; `audit verify` checks its hash chain.
    Audit {
        #[command(subcommand)]
        command: Option<AuditCommand>,
        /// Only entries this recent, e.g. 1h or 30m.
        #[arg(long)]
        since: Option<String>,
        /// Only entries by this certificate name.
        #[arg(long)]
        who: Option<String>,
        /// Only this action, e.g. deploy, promote, "secret set".
        #[arg(long)]
        action: Option<String>,
        /// Only entries about this project, environment or deployment id.
        #[arg(long)]
        target: Option<String>,
    },
    /// This CLI's version and the coordinator's.
    Version,
    /// Print a shell completion script: `source <(slipway completion bash)`.
    Completion {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
enum SecretCommand {
    /// Store a value: typed at a prompt that does not echo, or piped on stdin.
    Set {
        #[command(flatten)]
        name: SecretName,
    },
    /// Remove a secret; instances launched from now on no longer receive it.
    Delete {
        #[command(flatten)]
        name: SecretName,
    },
    /// List secret names, values masked.
    List {
        /// Only this environment (with its projects' own), or data store.
        environment: Option<String>,
    },
    /// Replace the key secrets are encrypted with, re-encrypting every one
    /// (admin). Back up the coordinator's secrets.key again afterwards.
    RotateKey,
}

/// Which secret: `secret set` and `secret delete` name it alike.
#[derive(Debug, clap::Args)]
struct SecretName {
    /// The environment it belongs to, or a data store: a store's secrets go
    /// to every project that uses it, in each of its environments.
    environment: String,
    /// Its name, an environment variable: A-Z, 0-9 and _.
    key: String,
    /// A project's own secret, which only its services get (default: the
    /// environment's shared one, which every project's there gets).
    #[arg(long)]
    project: Option<String>,
}

impl From<SecretName> for secret::Named {
    fn from(name: SecretName) -> secret::Named {
        secret::Named {
            environment: name.environment,
            project: name.project,
            key: name.key,
        }
    }
}

#[derive(Debug, Subcommand)]
enum CertCommand {
    /// Make a key here, have the coordinator sign it with a role, write a profile.
    Issue {
        /// Who the certificate is for (a person or a CI job).
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
    /// A new certificate for this profile's own name, role and environments,
    /// from the CA that signs now (for as long as the current one was made
    /// for); written into the profile file itself, PEMs inline.
    Renew,
}

#[derive(Debug, Subcommand)]
enum CaCommand {
    /// Which CA signs, whether a rotation is under way, and which connected
    /// agents still hold certificates of the previous CA.
    Status,
    /// Start a rotation: a new CA signs from now on; the current one stays
    /// trusted (and vouches for the new one) until `ca finish`.
    Rotate,
    /// End the rotation: the previous CA is trusted no more and its key is
    /// deleted. Refused while connected agents still hold its certificates.
    Finish {
        /// Finish anyway: those agents are refused once they reconnect.
        #[arg(long)]
        force: bool,
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
        /// Also POST it as JSON ({"entries", "hash"}) to this https:// URL
        /// (http:// only to this machine); fails unless it answers 2xx.
        #[arg(long)]
        webhook: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum DashboardCommand {
    /// Mint a read-only token and print the dashboard URL that carries it
    /// (shown once). Audited.
    Url {
        /// What it is for, shown in `dashboard tokens` (a screen's name, "prometheus").
        #[arg(long, default_value = "dashboard")]
        name: String,
    },
    /// Every dashboard token: id, name, who made it and when, whether revoked.
    Tokens,
    /// End a token (or all of them): its pages, streams and scrapes are
    /// refused from then on. Audited.
    Revoke {
        /// The token's id, as `dashboard tokens` lists it.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Revoke every token.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Subcommand)]
enum FleetCommand {
    /// Validate FILE and show what it would change (projects, environments,
    /// data stores, each target's variables); changes nothing.
    Diff {
        /// The new fleet file.
        file: PathBuf,
    },
    /// Take FILE without a restart (admin): validated first and refused whole
    /// if invalid; deployments from now on take it, those in progress keep
    /// the fleet they started with. Audited.
    Apply {
        /// The new fleet file.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum InfraCommand {
    /// Show what the fleet file needs that the cloud lacks; changes nothing.
    Plan,
    /// Create or fix it; running it twice changes nothing the second time.
    Apply,
    /// List instances Slipway tagged that no deployment knows about (a store
    /// restored from an older backup leaves them); changes nothing unless
    /// --terminate.
    Orphans {
        /// Terminate them (admin; audited). Only what is still an orphan
        /// when the coordinator looks again goes.
        #[arg(long)]
        terminate: bool,
    },
}

/// Where a release came from; the image's tags (slipway:commit, ...) fill in
/// what is not given, and refuse what they contradict.
#[derive(Debug, clap::Args)]
struct ProvenanceArgs {
    /// The commit the image was built from (hex).
    #[arg(long)]
    commit: Option<String>,
    /// The source repository's URL.
    #[arg(long)]
    repository: Option<String>,
    /// The CI build that made the image.
    #[arg(long)]
    build_url: Option<String>,
    /// Who or what built it (a CI job, a person).
    #[arg(long)]
    built_by: Option<String>,
}

#[derive(Debug, Subcommand)]
enum ReleaseCommand {
    /// Register PROJECT at VERSION; its image is found by tags unless --image names it.
    Add {
        /// The project, as the fleet file names it.
        project: String,
        /// The release's version: a commit hash or tag.
        version: String,
        /// The machine image (ami-…); default: the one tagged slipway:project and slipway:version.
        #[arg(long)]
        image: Option<String>,
        #[command(flatten)]
        provenance: ProvenanceArgs,
        #[command(flatten)]
        request: RequestIdArg,
    },
    /// List registered releases, with the checks recorded on each.
    List {
        /// Only this project.
        project: Option<String>,
    },
    /// Record a check's result on a release (CI: unit, integration, ...), so
    /// "Test" is a recorded fact; environments' gates may require it.
    /// Deployer without an environment scope; audited.
    Check {
        /// The project, as the fleet file names it.
        project: String,
        /// The release's version.
        version: String,
        /// The check's name: unit, integration, ...
        #[arg(long)]
        name: String,
        /// It passed.
        #[arg(long, conflicts_with = "failed", required_unless_present = "failed")]
        passed: bool,
        /// It failed.
        #[arg(long)]
        failed: bool,
        /// Where its results are (the CI job's page).
        #[arg(long)]
        url: Option<String>,
    },
}

/// Commands that need no coordinator; true when `command` was one of them.
impl Command {
    /// The request id flag of a command that acts, if it is one.
    fn request_id(&self) -> Option<&RequestIdArg> {
        match self {
            Command::Deploy { request, .. }
            | Command::Rollback { request, .. }
            | Command::Cancel { request, .. }
            | Command::Promote { request, .. }
            | Command::Release(ReleaseCommand::Add { request, .. }) => Some(request),
            _ => None,
        }
    }
}

fn run_offline(command: &Command) -> bool {
    match command {
        Command::Completion { shell } => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "slipway",
                &mut std::io::stdout(),
            );
            true
        }
        _ => false,
    }
}

/// `slipway version`: the client's always; the coordinator's when it answers.
async fn version(
    output: Output,
    profile: Result<profile::Profile, Failure>,
) -> Result<(), Failure> {
    let client_version = env!("CARGO_PKG_VERSION").to_string();
    let server = match profile {
        Ok(profile) => match Client::connect(profile).await {
            Ok(mut client) => client.server_version().await,
            Err(failure) => Err(failure),
        },
        Err(failure) => Err(failure),
    };
    let version = schema::Version {
        client: client_version,
        server: server.as_ref().ok().cloned(),
    };
    if output.structured() {
        render::print(output, &version)?;
    } else {
        println!("client: {}", version.client);
        match &server {
            Ok(v) => println!("coordinator: {v}"),
            Err(failure) => println!("coordinator: unknown ({})", render::text(&failure.message)),
        }
    }
    server.map(|_| ())
}

async fn run(cli: Cli) -> Result<(), Failure> {
    if run_offline(&cli.command) {
        return Ok(());
    }
    let path = profile::locate(cli.profile.clone(), std::env::var("SLIPWAY_PROFILE").ok());
    let profile = profile::load(&path).map_err(Failure::from);
    let out = cli.output;
    if let Command::Version = cli.command {
        return version(out, profile).await;
    }
    let client = &mut Client::connect(profile?).await?;
    if let Some(asked) = cli.command.request_id() {
        client.with_request_id(asked.request_id.clone());
    }
    match cli.command {
        Command::Release(ReleaseCommand::Add {
            project,
            version,
            image,
            provenance,
            ..
        }) => {
            let provenance = release::Provenance {
                commit: provenance.commit,
                repository: provenance.repository,
                build_url: provenance.build_url,
                built_by: provenance.built_by,
            };
            release::add(client, out, project, version, image, provenance).await
        }
        Command::Release(ReleaseCommand::List { project }) => {
            release::list(client, out, project).await
        }
        Command::Release(ReleaseCommand::Check {
            project,
            version,
            name,
            passed,
            url,
            ..
        }) => release::check(client, out, project, version, name, passed, url).await,
        Command::Deploy {
            project,
            version,
            env,
            wait,
            ..
        } => {
            let asked = deployment::Deploy {
                project,
                version,
                environment: env,
                wait: wait.into(),
            };
            deployment::deploy(client, out, asked).await
        }
        Command::Rollback {
            project, env, wait, ..
        } => deployment::rollback(client, out, project, env, wait.into()).await,
        Command::Queue => deployment::queue(client, out).await,
        Command::Cancel { id, .. } => deployment::cancel(client, out, id).await,
        Command::Approve { id } => deployment::approve(client, out, id).await,
        Command::OverrideFreeze { id, reason } => {
            deployment::override_freeze(client, out, id, reason).await
        }
        Command::Show {
            id,
            follow,
            timeout,
        } => deployment::show(client, out, id, follow.then_some(timeout)).await,
        Command::Deployments {
            project,
            env,
            limit,
        } => deployment::list(client, out, project, env, limit).await,
        Command::Diff { from, to } => deployment::diff(client, out, from, to).await,
        Command::Status { project } => status::show(client, out, project).await,
        Command::Agents { project } => agent::list(client, out, project).await,
        Command::Revoke { name } => agent::revoke(client, out, name).await,
        Command::Dashboard(DashboardCommand::Url { name }) => {
            dashboard::url(client, out, name).await
        }
        Command::Dashboard(DashboardCommand::Tokens) => dashboard::tokens(client, out).await,
        Command::Dashboard(DashboardCommand::Revoke { id, .. }) => {
            dashboard::revoke(client, out, id).await
        }
        Command::Secret(SecretCommand::Set { name }) => secret::set(client, out, name.into()).await,
        Command::Secret(SecretCommand::Delete { name }) => {
            secret::delete(client, out, name.into()).await
        }
        Command::Secret(SecretCommand::List { environment }) => {
            secret::list(client, out, environment).await
        }
        Command::Secret(SecretCommand::RotateKey) => secret::rotate_key(client, out).await,
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
        Command::Cert(CertCommand::Renew) => cert::renew(client, out).await,
        Command::Ca(CaCommand::Status) => ca::status(client, out).await,
        Command::Ca(CaCommand::Rotate) => ca::rotate(client, out).await,
        Command::Ca(CaCommand::Finish { force }) => ca::finish(client, out, force).await,
        Command::Events {
            follow,
            since,
            project,
            environment,
            deployment,
        } => {
            let flags = events::Flags {
                since,
                project,
                environment,
                deployment,
                follow,
            };
            events::run(client, out, flags).await
        }
        Command::Notifications => events::notifications(client, out).await,
        Command::Logs {
            project,
            environment,
            instance,
            service,
            lines,
            follow,
        } => {
            let asked = crate::api::LogsAsked {
                project,
                environment,
                instance,
                service,
                lines,
                follow,
            };
            logs::run(client, out, asked).await
        }
        Command::Audit {
            command: Some(AuditCommand::Verify { anchor }),
            ..
        } => audit::verify(client, out, anchor).await,
        Command::Audit {
            command: Some(AuditCommand::Anchor { out: file, webhook }),
            ..
        } => audit::anchor(client, out, file, webhook).await,
        Command::Audit {
            command: None,
            since,
            who,
            action,
            target,
        } => {
            let filter = audit::Filter {
                since,
                who,
                action,
                target,
            };
            audit::list(client, out, filter).await
        }
        Command::Fleet(FleetCommand::Diff { file }) => infra::fleet_diff(client, out, file).await,
        Command::Fleet(FleetCommand::Apply { file }) => infra::fleet_apply(client, out, file).await,
        Command::Infra(InfraCommand::Plan) => infra::run(client, out, false).await,
        Command::Infra(InfraCommand::Apply) => infra::run(client, out, true).await,
        Command::Infra(InfraCommand::Orphans { terminate }) => {
            infra::orphans(client, out, terminate).await
        }
        Command::Promote {
            project,
            to,
            override_freeze,
            ..
        } => promote::promote(client, out, project, to, override_freeze).await,
        Command::Version | Command::Completion { .. } => Ok(()),
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
            return ExitCode::from(Exit::Failed as u8);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("slipway: {}", render::text(&failure.message));
            ExitCode::from(failure.exit as u8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command and argument says what it is for in `--help`.
    #[test]
    fn every_command_and_argument_is_described() {
        fn check(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.get_help().is_none() && !["help", "version"].contains(&id) {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                let path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() && sub.get_name() != "help" {
                    missing.push(path.clone());
                }
                check(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        check(&Cli::command(), "slipway", &mut missing);
        assert!(missing.is_empty(), "undescribed: {missing:?}");
    }
}
