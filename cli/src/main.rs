//! `slipway`: the operator's and CI's command line. Thin: it parses, calls one
//! RPC of the coordinator over mutual TLS, and prints the answer (or JSON).

#![forbid(unsafe_code)]

mod profile;
mod table;
mod time_text;

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use slipway_proto::v1::operator_service_client::OperatorServiceClient;
use slipway_proto::v1::*;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use table::Table;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
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
    Verify,
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

/// A failure worth one line to the user, and its exit code.
struct Failure {
    message: String,
    code: u8,
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure {
            message: format!("{e:#}"),
            code: 1,
        }
    }
}

fn status_failure(profile: &profile::Profile, status: tonic::Status) -> Failure {
    let message = match status.code() {
        tonic::Code::Unavailable | tonic::Code::Unknown
            if status.message().contains("transport")
                || status.message().contains("connect")
                || status.message().contains("tcp")
                || status.message().contains("tls") =>
        {
            format!(
                "cannot reach the coordinator at {} ({}): is it running, and is {} from this coordinator?",
                profile.coordinator,
                status.message(),
                profile.path.display()
            )
        }
        _ => status.message().to_string(),
    };
    Failure { message, code: 1 }
}

async fn client(profile: &profile::Profile) -> Result<OperatorServiceClient<Channel>, Failure> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&profile.ca_pem))
        .identity(Identity::from_pem(&profile.cert_pem, &profile.key_pem))
        .domain_name(&profile.server_name);
    let channel = Channel::from_shared(profile.coordinator.clone())
        .context("the profile's coordinator address is invalid")?
        .tls_config(tls)
        .context("the profile's certificates are unusable")?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| Failure {
            message: format!(
                "cannot reach the coordinator at {} ({}): is it running? (profile {})",
                profile.coordinator,
                source_chain(&e),
                profile.path.display()
            ),
            code: 1,
        })?;
    Ok(OperatorServiceClient::new(channel))
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value).context("cannot print JSON")?;
    println!("{text}");
    Ok(())
}

/// A time for a table cell: the time of day for today (UTC), the date too for
/// anything older or newer, so last month's release does not read as today's.
fn when(ms: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    time_text::when(ms, now)
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let path = profile::locate(cli.profile.clone(), std::env::var("SLIPWAY_PROFILE").ok());
    let profile = profile::load(&path)?;
    let mut api = client(&profile).await?;
    let json = cli.output == Output::Json;
    let fail = |s| status_failure(&profile, s);
    match cli.command {
        Command::Release(ReleaseCommand::Add {
            project,
            version,
            image,
        }) => {
            let request = RegisterReleaseRequest {
                project,
                version,
                image_id: image.unwrap_or_default(),
            };
            let release = api
                .register_release(request)
                .await
                .map_err(fail)?
                .into_inner();
            if json {
                return print_json(&release);
            }
            println!(
                "registered {}@{} (image {})",
                release.project, release.version, release.image_id
            );
        }
        Command::Release(ReleaseCommand::List { project }) => {
            let request = ListReleasesRequest {
                project: project.unwrap_or_default(),
            };
            let list = api.list_releases(request).await.map_err(fail)?.into_inner();
            if json {
                return print_json(&list.releases);
            }
            let mut table = Table::new(["PROJECT", "VERSION", "IMAGE", "REGISTERED", "BY"]);
            for r in list.releases {
                table.row([
                    r.project,
                    r.version,
                    r.image_id,
                    when(r.registered_at_ms),
                    r.registered_by,
                ]);
            }
            table.print();
        }
        Command::Deploy {
            project,
            version,
            env,
            wait,
        } => {
            let request = DeployRequest {
                project,
                version,
                environment: env,
            };
            let deployment = api.deploy(request).await.map_err(fail)?.into_inner();
            return follow(&mut api, &profile, deployment, wait, json).await;
        }
        Command::Rollback { project, env, wait } => {
            let request = RollbackRequest {
                project,
                environment: env,
            };
            let deployment = api.rollback(request).await.map_err(fail)?.into_inner();
            return follow(&mut api, &profile, deployment, wait, json).await;
        }
        Command::Queue => {
            let queue = api.queue(QueueRequest {}).await.map_err(fail)?.into_inner();
            if json {
                return print_json(&queue.targets);
            }
            if queue.targets.is_empty() {
                println!("the queue is empty");
            }
            for target in queue.targets {
                println!("{}/{}:", target.project, target.environment);
                match target.active {
                    Some(d) => println!(
                        "  active   {} {} ({}){}",
                        d.id,
                        d.version,
                        d.phase,
                        waiting(&d)
                    ),
                    None => println!("  active   none"),
                }
                for (i, d) in target.waiting.iter().enumerate() {
                    println!(
                        "  #{:<7} {} {} by {}{}",
                        i + 1,
                        d.id,
                        d.version,
                        d.requested_by,
                        waiting(d)
                    );
                }
            }
        }
        Command::Cancel { id } => {
            let deployment = api
                .cancel(CancelRequest { id })
                .await
                .map_err(fail)?
                .into_inner();
            if json {
                return print_json(&deployment);
            }
            if deployment.phase == "cancelled" {
                println!("{}: cancelled (removed from the queue)", deployment.id);
            } else {
                println!(
                    "{}: cancel requested; it rolls back from {}",
                    deployment.id, deployment.phase
                );
            }
        }
        Command::Status { project } => {
            let request = StatusRequest {
                project: project.clone().unwrap_or_default(),
            };
            let status = api.status(request).await.map_err(fail)?.into_inner();
            if json {
                return match (project, status.projects.as_slice()) {
                    (Some(_), [one]) => print_json(one),
                    _ => print_json(&status.projects),
                };
            }
            for p in status.projects {
                println!("{}", p.name);
                if let Some(r) = &p.public_record {
                    let to = if r.environment.is_empty() {
                        "nowhere yet"
                    } else {
                        &r.environment
                    };
                    println!(
                        "  public {} -> {}{}{}",
                        r.name,
                        to,
                        if r.endpoint.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", r.endpoint)
                        },
                        if r.pending {
                            " [promotion pending: DNS not yet confirmed, the coordinator is finishing it]"
                        } else {
                            ""
                        }
                    );
                    if !r.dns_error.is_empty() {
                        println!("  cannot read DNS: {}", r.dns_error);
                    }
                }
                let mut table = Table::new([
                    "ENV",
                    "VERSION",
                    "ENDPOINT",
                    "INSTANCE",
                    "IP",
                    "STATE",
                    "AGENT",
                    "READY",
                    "IN SERVICE",
                    "SERVICES",
                ]);
                for e in p.environments {
                    let version = if e.active_version.is_empty() {
                        "-".to_string()
                    } else {
                        e.active_version.clone()
                    };
                    if e.instances.is_empty() {
                        table.row([
                            e.name.clone(),
                            version.clone(),
                            e.endpoint.clone(),
                            "-".into(),
                            "".into(),
                            "".into(),
                            "".into(),
                            "".into(),
                            "".into(),
                            "".into(),
                        ]);
                    }
                    for (i, inst) in e.instances.iter().enumerate() {
                        let (name, version, endpoint) = if i == 0 {
                            (e.name.clone(), version.clone(), e.endpoint.clone())
                        } else {
                            Default::default()
                        };
                        table.row([
                            name,
                            version,
                            endpoint,
                            inst.id.clone(),
                            inst.private_ip.clone(),
                            inst.state.clone(),
                            inst.agent.clone(),
                            yes(inst.ready),
                            yes(inst.in_service),
                            inst.services.clone(),
                        ]);
                    }
                }
                table.print();
            }
        }
        Command::Deployments {
            project,
            env,
            limit,
        } => {
            let request = DeploymentsRequest {
                project: project.unwrap_or_default(),
                environment: env.unwrap_or_default(),
                limit,
            };
            let list = api.deployments(request).await.map_err(fail)?.into_inner();
            if json {
                return print_json(&list.deployments);
            }
            let mut table = Table::new([
                "ID",
                "PROJECT",
                "ENV",
                "VERSION",
                "PHASE",
                "REQUESTED",
                "BY",
                "WHY",
            ]);
            for d in list.deployments {
                let why = if d.reason.is_empty() {
                    d.waiting_on.clone()
                } else {
                    d.reason.clone()
                };
                table.row([
                    d.id,
                    d.project,
                    d.environment,
                    d.version,
                    d.phase,
                    when(d.requested_at_ms),
                    d.requested_by,
                    why,
                ]);
            }
            table.print();
        }
        Command::Show { id } => {
            let d = api
                .get_deployment(GetDeploymentRequest { id })
                .await
                .map_err(fail)?
                .into_inner();
            if json {
                return print_json(&d);
            }
            println!(
                "{} {}@{} -> {} ({}), requested by {}",
                d.id, d.project, d.version, d.environment, d.phase, d.requested_by
            );
            let start = d.requested_at_ms;
            for p in &d.phases {
                println!(
                    "  {:>8} {}",
                    format!("+{:.1}s", (p.at_ms - start) as f64 / 1000.0),
                    p.phase
                );
            }
            if !d.reason.is_empty() {
                println!("  reason: {}", d.reason);
            }
            if !d.waiting_on.is_empty() {
                println!("  waiting: {}", d.waiting_on);
            }
        }
        Command::Agents => {
            let list = api
                .agents(AgentsRequest {})
                .await
                .map_err(fail)?
                .into_inner();
            if json {
                return print_json(&list.agents);
            }
            let mut table = Table::new([
                "INSTANCE",
                "PROJECT",
                "ENV",
                "DEPLOYMENT",
                "IP",
                "CONNECTED",
                "READY",
                "VERSION",
            ]);
            for a in list.agents {
                table.row([
                    a.instance_id,
                    a.project,
                    a.environment,
                    a.deployment_id,
                    a.private_ip,
                    yes(a.connected),
                    yes(a.ready),
                    a.agent_version,
                ]);
            }
            table.print();
        }
        Command::Revoke { name } => {
            let revoked = api
                .revoke(RevokeRequest { name })
                .await
                .map_err(fail)?
                .into_inner();
            if json {
                return print_json(&revoked);
            }
            let closed = if revoked.stream_closed {
                "; its open stream was closed"
            } else {
                ""
            };
            println!("revoked every certificate of {}{closed}", revoked.name);
        }
        Command::Secret(SecretCommand::Set { environment, key }) => {
            let mut value = String::new();
            std::io::stdin()
                .take(64 * 1024)
                .read_to_string(&mut value)
                .context("cannot read the secret from stdin")?;
            let value = value.strip_suffix('\n').unwrap_or(&value).to_string();
            if value.is_empty() {
                return Err(Failure { message: "no value on stdin: pipe it in, e.g. `printf %s \"$VALUE\" | slipway secret set ...`".into(), code: 2 });
            }
            let secret = api
                .set_secret(SetSecretRequest {
                    environment,
                    key,
                    value,
                })
                .await
                .map_err(fail)?
                .into_inner();
            if json {
                return print_json(&secret);
            }
            println!(
                "secret {}/{} set ({})",
                secret.environment, secret.key, secret.value
            );
        }
        Command::Secret(SecretCommand::List { environment }) => {
            let request = ListSecretsRequest {
                environment: environment.unwrap_or_default(),
            };
            let list = api.list_secrets(request).await.map_err(fail)?.into_inner();
            if json {
                return print_json(&list.secrets);
            }
            let mut table = Table::new(["ENV", "KEY", "VALUE"]);
            for secret in list.secrets {
                table.row([secret.environment, secret.key, secret.value]);
            }
            table.print();
        }
        Command::Cert(CertCommand::Issue {
            name,
            role,
            environments,
            days,
            out,
        }) => {
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
                .context("cannot make a key")?;
            let mut params = rcgen::CertificateParams::default();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name.as_str());
            let csr_pem = params
                .serialize_request(&key)
                .and_then(|csr| csr.pem())
                .context("cannot make a certificate request")?;
            let request = IssueCertificateRequest {
                name: name.clone(),
                role: role.clone(),
                environments,
                days,
                csr_pem,
            };
            let issued = api
                .issue_certificate(request)
                .await
                .map_err(fail)?
                .into_inner();
            let written = slipway_common::profile::write_bundle(
                &out,
                &profile.coordinator,
                &profile.server_name,
                &issued.ca_pem,
                &issued.certificate_pem,
                &key.serialize_pem(),
            )
            .with_context(|| format!("cannot write the certificate to {}", out.display()))?;
            if json {
                return print_json(
                    &serde_json::json!({ "profile": written, "expires_at_ms": issued.expires_at_ms }),
                );
            }
            println!(
                "issued {name} ({role}), expires {}: use it with --profile {}",
                when(issued.expires_at_ms),
                written.display()
            );
        }
        Command::Audit {
            command: Some(AuditCommand::Verify),
            ..
        } => {
            let verdict = api
                .audit_verify(AuditVerifyRequest {})
                .await
                .map_err(fail)?
                .into_inner();
            if json {
                print_json(&verdict)?;
            }
            if !verdict.intact {
                return Err(Failure {
                    message: verdict.reason,
                    code: 1,
                });
            }
            if !json {
                println!("audit log intact: {} entries", verdict.entries);
            }
        }
        Command::Audit {
            command: None,
            since,
        } => {
            let since_ms = match since {
                None => 0,
                Some(text) => {
                    let back = humantime::parse_duration(&text).map_err(|e| {
                        anyhow::anyhow!(
                            "--since {text:?} is not a duration ({e}): write it like 1h or 30m"
                        )
                    })?;
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or_default();
                    now.saturating_sub(back).as_millis() as i64
                }
            };
            let log = api
                .audit(AuditRequest { since_ms })
                .await
                .map_err(fail)?
                .into_inner();
            if json {
                return print_json(&log.entries);
            }
            let mut table = Table::new(["#", "WHEN", "WHO", "ACTION", "TARGET", "RESULT"]);
            for e in log.entries {
                table.row([
                    e.seq.to_string(),
                    when(e.at_ms),
                    e.who,
                    e.action,
                    e.target,
                    e.result,
                ]);
            }
            table.print();
        }
        Command::Infra(command) => {
            let (changes, done) = match command {
                InfraCommand::Plan => (
                    api.infra_plan(InfraRequest {})
                        .await
                        .map_err(fail)?
                        .into_inner(),
                    false,
                ),
                InfraCommand::Apply => (
                    api.infra_apply(InfraRequest {})
                        .await
                        .map_err(fail)?
                        .into_inner(),
                    true,
                ),
            };
            if json {
                return print_json(&changes.changes);
            }
            if changes.changes.is_empty() {
                println!("no changes: the infrastructure matches the fleet file");
            }
            for change in &changes.changes {
                println!("{} {change}", if done { "done:" } else { "plan:" });
            }
        }
        Command::Promote { project, to } => {
            let request = PromoteRequest {
                project,
                environment: to,
            };
            let record = api.promote(request).await.map_err(fail)?.into_inner();
            if json {
                return print_json(&record);
            }
            println!(
                "{} -> {} ({})",
                record.name, record.environment, record.endpoint
            );
            if !record.previous_environment.is_empty() {
                println!(
                    "flip back with: slipway promote {} --to {}",
                    record.project, record.previous_environment
                );
            }
        }
    }
    Ok(())
}

fn yes(flag: bool) -> String {
    if flag { "yes".into() } else { "no".into() }
}

fn waiting(d: &Deployment) -> String {
    if d.waiting_on.is_empty() {
        String::new()
    } else {
        format!(": {}", d.waiting_on)
    }
}

/// Prints a queued deployment; with `wait`, follows it phase by phase to the end.
async fn follow(
    api: &mut OperatorServiceClient<Channel>,
    profile: &profile::Profile,
    deployment: Deployment,
    wait: bool,
    json: bool,
) -> Result<(), Failure> {
    if !json {
        println!(
            "queued {}: {}@{} -> {}",
            deployment.id, deployment.project, deployment.version, deployment.environment
        );
    }
    if !wait {
        return if json {
            print_json(&deployment)
        } else {
            Ok(())
        };
    }
    let started = Instant::now();
    let mut shown = 0;
    let mut last_waiting = String::new();
    let mut failures = 0;
    let last = loop {
        let request = GetDeploymentRequest {
            id: deployment.id.clone(),
        };
        let current = match api.get_deployment(request).await {
            Ok(reply) => {
                failures = 0;
                reply.into_inner()
            }
            // The coordinator may restart mid-deploy; the deployment resumes, so keep following.
            Err(status) if status.code() == tonic::Code::Unavailable && failures < 60 => {
                failures += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            Err(status) => return Err(status_failure(profile, status)),
        };
        if !json {
            for phase in current.phases.iter().skip(shown) {
                println!(
                    "  {:>7} {}",
                    format!("+{:.1}s", started.elapsed().as_secs_f64()),
                    phase.phase
                );
            }
            if current.waiting_on != last_waiting && !current.waiting_on.is_empty() {
                println!("          ({})", current.waiting_on);
            }
        }
        shown = current.phases.len();
        last_waiting = current.waiting_on.clone();
        if current.finished {
            break current;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    if json {
        print_json(&last)?;
    }
    match last.phase.as_str() {
        "succeeded" => {
            if !json {
                println!(
                    "{} succeeded: {}@{} serves {}",
                    last.id, last.project, last.version, last.environment
                );
            }
            Ok(())
        }
        phase => Err(Failure {
            message: format!(
                "{} {phase}: {}",
                last.id,
                if last.reason.is_empty() {
                    "no reason recorded"
                } else {
                    &last.reason
                }
            ),
            code: 1,
        }),
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
            eprintln!("slipway: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}
