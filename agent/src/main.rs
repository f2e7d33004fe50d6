//! `slipway-agent`: reads its bootstrap data, gets its certificate, connects to the
//! coordinator and runs the instance's services.
//!
//! - `boot`: where bootstrap data comes from (`--user-data-file` or EC2's IMDSv2).
//! - `identity`: the agent's key and certificate (key made here, never sent).
//! - `session`: everything said to the coordinator, and the only module that
//!   speaks the wire: Bootstrap, Renew, and the stream, reconnecting with
//!   jittered backoff. Configuration arrives as the domain's `Configuration`.
//! - `supervisor`: starts, restarts and stops services, and runs the health check;
//!   `restarts`: when an exited service starts again (its restart budget);
//!   `migration`: a migration command run once per run id, its output kept;
//!   `report`: what the agent reports upstream; `output`: each service's
//!   output kept in a rotating log file; `tail`: reading those files for
//!   `slipway logs`.
//!
//! Dependencies point down: `session` → `supervisor` → `restarts`, `migration`,
//! `output` → `report`; `session` → `tail`, `identity`, `boot`.

#![forbid(unsafe_code)]

mod boot;
mod coordinators;
mod identity;
mod migration;
mod output;
mod report;
mod restarts;
mod session;
mod supervisor;
mod tail;

/// Reported in hello, so operators see which agent each image carries.
const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

use std::path::PathBuf;
use std::process::ExitCode;

use crate::boot::{IMDS_ADDRESS, Imds, InstanceMetadata};
use anyhow::Context;
use clap::Parser;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::coordinators::Coordinators;
use crate::identity::{AgentCredentials, verify_ca};
use crate::session::{credentials, renew, run_forever};
use crate::supervisor::Supervisor;
use slipway_common::user_data::UserData;
use slipway_domain::clock::{Clock, SystemClock};

#[derive(Debug, Parser)]
#[command(
    name = "slipway-agent",
    version,
    about = "Slipway's agent: runs one instance's services"
)]
struct Args {
    /// Read user-data from this file instead of EC2's instance metadata service.
    #[arg(long)]
    user_data_file: Option<PathBuf>,
    /// This instance's id (default: from instance metadata).
    #[arg(long)]
    instance_id: Option<String>,
    /// This instance's private address (default: from instance metadata).
    #[arg(long)]
    private_ip: Option<String>,
    /// The image this instance booted from (default: from instance metadata).
    #[arg(long)]
    image_id: Option<String>,
    /// The image root: relative service commands resolve against it.
    #[arg(long, default_value = "/")]
    root: PathBuf,
    /// Where the agent keeps its key and certificate.
    #[arg(long, default_value = "/var/lib/slipway-agent")]
    state_dir: PathBuf,
    /// The instance metadata service (host:port).
    #[arg(long, default_value = IMDS_ADDRESS)]
    imds: String,
    /// plain (default) or json: one JSON object per line, for log shippers.
    #[arg(long, env = "SLIPWAY_LOG_FORMAT")]
    log_format: Option<String>,
}

async fn run(args: Args) -> anyhow::Result<()> {
    let imds = Imds::new(&args.imds);
    let user_data_text = match &args.user_data_file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read user-data {}", path.display()))?,
        None => imds.user_data().await?,
    };
    let user_data = UserData::parse(&user_data_text).map_err(anyhow::Error::msg)?;
    verify_ca(&user_data)?;
    let metadata = match (args.instance_id, args.private_ip, args.image_id) {
        (Some(instance_id), Some(private_ip), image_id) => InstanceMetadata {
            instance_id,
            private_ip,
            image_id: image_id.unwrap_or_default(),
        },
        _ => imds.metadata().await?,
    };
    tracing::info!(instance = %metadata.instance_id, ip = %metadata.private_ip, "agent starting");
    let coordinators = Arc::new(Coordinators::new(&user_data));
    let credentials = Arc::new(RwLock::new(
        credentials(
            &user_data,
            &coordinators,
            &metadata.instance_id,
            &args.state_dir,
        )
        .await?,
    ));
    tokio::spawn(renew_forever(
        user_data.clone(),
        coordinators.clone(),
        metadata.instance_id.clone(),
        args.state_dir.clone(),
        credentials.clone(),
    ));
    let supervisor = Supervisor::new(
        &args.root,
        &args.state_dir.join("logs"),
        &metadata.instance_id,
        &metadata.private_ip,
    );
    run_forever(
        &user_data,
        &coordinators,
        &credentials,
        &metadata,
        supervisor,
    )
    .await;
    Ok(())
}

/// First pause after a failed renewal; it doubles up to `RENEW_RETRY_MAX`.
const RENEW_RETRY_FIRST: Duration = Duration::from_millis(200);
const RENEW_RETRY_MAX: Duration = Duration::from_secs(30);

/// Renews the certificate two thirds into its life, retrying until it works.
async fn renew_forever(
    user_data: UserData,
    coordinators: Arc<Coordinators>,
    instance_id: String,
    state_dir: PathBuf,
    credentials: Arc<RwLock<AgentCredentials>>,
) {
    let mut retry = RENEW_RETRY_FIRST;
    loop {
        let current = credentials
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let wait = (current.renew_at_ms() - SystemClock.now()).max(0) as u64;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        match renew(
            &user_data,
            &coordinators,
            &instance_id,
            &state_dir,
            &current,
        )
        .await
        {
            Ok(renewed) => {
                *credentials.write().unwrap_or_else(|e| e.into_inner()) = renewed;
                retry = RENEW_RETRY_FIRST;
            }
            Err(e) => {
                // Backs off (a fleet must not hammer a coordinator that is
                // down), but while the certificate is valid never by more than
                // a quarter of its life left: once expired it cannot renew.
                let left = Duration::from_millis(
                    (current.expires_at_ms - SystemClock.now()).max(0) as u64,
                );
                let pause = if left.is_zero() {
                    retry
                } else {
                    retry.min(left / 4).max(RENEW_RETRY_FIRST)
                };
                tracing::warn!(error = %e, retry_in = ?pause, "certificate renewal failed; retrying");
                tokio::time::sleep(pause).await;
                retry = (retry * 2).min(RENEW_RETRY_MAX);
            }
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = slipway_common::logging::init(args.log_format.as_deref()) {
        eprintln!("slipway-agent: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("slipway-agent: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("slipway-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}
