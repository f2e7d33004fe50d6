//! Starting the coordinator: store, CA, cloud, fleet, then the gRPC port and the
//! scheduler, until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tracing::info;

use crate::cloud::Cloud;
use crate::coordinator::{Advertised, Coordinator};
use crate::pki::{Ca, SERVER_NAME};
use crate::store::{Db, SledStore};
use crate::{config::Fleet, dev, grpc};

/// How the coordinator was asked to start.
#[derive(Debug, Clone)]
pub struct Options {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// The fleet file; with `dev`, defaults to `DATA_DIR/fleet.toml` (sample written on first start).
    pub fleet: Option<PathBuf>,
    /// Bake and register the sample releases and write a CLI profile.
    pub dev: bool,
}

pub async fn run(options: Options) -> anyhow::Result<()> {
    let data_dir = &options.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))?;

    let fleet = match (&options.fleet, options.dev) {
        (Some(path), _) => Fleet::load(path)?,
        (None, true) => dev::fleet(data_dir)?,
        (None, false) => {
            anyhow::bail!("no fleet file: pass --fleet FILE, or --dev for the sample fleet")
        }
    };
    let store = SledStore::open(&data_dir.join("store"))?;
    let db = Db::new(Arc::new(store));
    let ca = Ca::load_or_create(&data_dir.join("ca"))?;

    let cloud_dir = data_dir.join("cloud");
    let local = dev::local_cloud(&cloud_dir).await?;
    dev::provision(&fleet, &local).await?;
    if options.dev {
        dev::sample_releases(data_dir, &local, &db).await?;
    }
    let local = Arc::new(local);
    let cloud = Cloud {
        compute: local.clone(),
        load_balancer: local.clone(),
        dns: local,
    };

    let listener = TcpListener::bind(options.listen).await.with_context(|| {
        format!(
            "cannot listen on {}: is another coordinator running? pick another --listen",
            options.listen
        )
    })?;
    let addr = listener.local_addr()?;
    let mut names = vec![
        SERVER_NAME.to_string(),
        "localhost".to_string(),
        addr.ip().to_string(),
    ];
    names.dedup();
    let server_cert = ca.issue_server(&names)?;
    let tls = grpc::tls_config(&server_cert, ca.cert_pem())?;
    let advertised = Advertised {
        address: format!("https://{addr}"),
        server_name: SERVER_NAME.to_string(),
    };
    let profile = dev::profile(data_dir, &ca, &advertised.address)?;

    let coordinator = Coordinator::new(db, fleet, cloud, ca, advertised.clone());
    coordinator.start_scheduler();
    info!(address = %advertised.address, data_dir = %data_dir.display(), "coordinator serving");
    println!(
        "slipway coordinator listening on {} (TLS 1.3, client certificates required)",
        advertised.address
    );
    println!("CLI profile: {}", profile.display());
    if options.dev {
        println!("next, in another terminal:");
        println!("  export SLIPWAY_PROFILE={}", profile.display());
        println!("  cargo run -q --bin slipway -- deploy hello v1 --env staging --wait");
        println!("  cargo run -q --bin slipway -- status hello");
    }
    grpc::serve(listener, tls, coordinator, shutdown_signal()).await?;
    info!("coordinator stopped; instances keep running in the local cloud");
    Ok(())
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}
