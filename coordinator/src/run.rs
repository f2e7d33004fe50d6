//! Starting the coordinator: store, CA, cloud, fleet, then the gRPC port and the
//! scheduler, until SIGINT or SIGTERM.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tracing::{error, info, warn};

use crate::dev;
use slipway_coordinator::clock::{Clock, SystemClock};
use slipway_coordinator::cloud::Cloud;
use slipway_coordinator::config::{Fleet, Provider};
use slipway_coordinator::coordinator::{Advertised, Coordinator, Parts};
use slipway_coordinator::dashboard::access::DashboardAccess;
use slipway_coordinator::dashboard::board::{Board, Sources};
use slipway_coordinator::dashboard::{self, Dashboard};
use slipway_coordinator::events::Events;
use slipway_coordinator::fleets::Fleets;
use slipway_coordinator::leadership::{self, LeaseTerms, Tenure};
use slipway_coordinator::live_tls::LiveTls;
use slipway_coordinator::metrics::{Metrics, TimedStore};
use slipway_coordinator::pki::{Ca, SERVER_NAME};
use slipway_coordinator::store::Db;
use slipway_coordinator::{grpc, infra};

/// How long a graceful stop waits for deployments to finish their current step.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(30);
/// After the steps are done and agent streams closed: how long open gRPC calls
/// may take to end before the process exits regardless.
const CALLS_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// How the coordinator was asked to start.
#[derive(Debug, Clone)]
pub struct Options {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// The fleet file; with `dev`, defaults to `DATA_DIR/fleet.toml` (sample written on first start).
    pub fleet: Option<PathBuf>,
    /// Bake and register the sample releases and write a CLI profile.
    pub dev: bool,
    /// The address written into launches for agents to dial (`https://host:port`);
    /// default: the address listened on.
    pub advertise: Option<String>,
    /// The dashboard's address, if it is served (with `dev`: a free port).
    pub http_listen: Option<SocketAddr>,
    /// The dashboard's own certificate and key files, instead of one from the CA.
    pub http_certificate: Option<(PathBuf, PathBuf)>,
    /// Which store: embedded in the data directory, or PostgreSQL.
    pub store: crate::storage::StoreFlags,
    /// The leader lease's length, with a PostgreSQL store.
    pub lease: std::time::Duration,
    /// The other coordinators on the same store (`https://host:port`), written
    /// into launches and the dev profile beside this one's address.
    pub peers: Vec<String>,
}

/// Raises the open-file limit to what the system allows: every agent holds a
/// connection. Returns the limit now in force.
fn raise_open_files() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(e) => {
                warn!(error = %e, soft, "cannot raise the open-file limit");
                soft
            }
        },
        Ok((soft, _)) => soft,
        Err(_) => 0,
    }
}

/// What the start-up has settled before this process leads or stands by.
struct Setting<'a> {
    options: &'a Options,
    /// The start fleet file, as text and parsed.
    text: String,
    start: Fleet,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    /// Bound once: a standby serves on it, and keeps it when it comes to lead.
    listener: Arc<TcpListener>,
    advertised: Advertised,
    /// The store's snapshot gate: the leader's backups go through it.
    snapshots: Arc<slipway_coordinator::store::Gated>,
}

/// A coordinator built, ready to serve.
struct Assembled {
    coordinator: Arc<Coordinator>,
    tls: Arc<LiveTls>,
    /// The dashboard's port, its TLS and address (a leader's only).
    http: Option<(TcpListener, Arc<LiveTls>, String)>,
    dashboard_access: Arc<DashboardAccess>,
    /// The dev CLI profile written (a dev leader's only).
    profile: Option<PathBuf>,
}

pub async fn run(options: Options) -> anyhow::Result<()> {
    let open_files = raise_open_files();
    info!(open_files, "open-file limit");
    // Absolute and canonical: `crate::data_dir::create` resolved it in main.
    let data_dir = &options.data_dir;

    let path = match (&options.fleet, options.dev) {
        (Some(path), _) => path.clone(),
        (None, true) => dev::fleet_file(data_dir)?,
        (None, false) => {
            anyhow::bail!("no fleet file: pass --fleet FILE, or --dev for the sample fleet")
        }
    };
    // Refused before anything starts if it is not valid.
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read fleet file {}", path.display()))?;
    let start = Fleet::parse(&text, &path.display().to_string())?;
    for address in options.advertise.iter().chain(&options.peers) {
        if !address.starts_with("https://") {
            anyhow::bail!(
                "coordinator address {address:?} (--advertise, --peer) must be an https:// address agents can reach"
            );
        }
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let metrics = Arc::new(Metrics::default());
    let opened = crate::storage::open(&options.store, data_dir).await?;
    info!(store = %opened.shown, "store open");
    let snapshots = Arc::new(slipway_coordinator::store::Gated::new(opened.store));
    let timed = Arc::new(TimedStore {
        inner: snapshots.clone(),
        metrics: metrics.clone(),
    });

    let listen = match options.dev {
        true => dev_listen(
            options.listen,
            crate::data_dir::address(data_dir).as_deref(),
        ),
        false => options.listen,
    };
    let listener = TcpListener::bind(listen).await.with_context(|| {
        format!("cannot listen on {listen}: is another coordinator running? pick another --listen")
    })?;
    let addr = listener.local_addr()?;
    let advertised = Advertised {
        address: options
            .advertise
            .clone()
            .unwrap_or_else(|| format!("https://{addr}")),
        others: options.peers.clone(),
        server_name: SERVER_NAME.to_string(),
    };
    let setting = Setting {
        options: &options,
        text,
        start,
        clock: clock.clone(),
        metrics: metrics.clone(),
        listener: Arc::new(listener),
        advertised: advertised.clone(),
        snapshots,
    };

    // With a shared store, stand by (answering reads) until this process leads.
    let terms = LeaseTerms {
        length: options.lease,
    };
    let holder = format!("{}#{:016x}", advertised.address, rand::random::<u64>());
    let (db, tenure, kept) = match &opened.leases {
        None => (Db::open(timed).await?, Tenure::sole(), None),
        Some(leases) => {
            let (leader, follows) = tokio::sync::watch::channel(None);
            let (stop, stopped) = tokio::sync::watch::channel(false);
            // Epoch 0: the store refuses every write a standby might attempt.
            let reads = Db::with_epoch(timed.clone(), 0);
            let mut standby = std::pin::pin!(stand_by(&setting, reads, follows, stopped, terms));
            let waited = leadership::wait_for_lease(
                leases.as_ref(),
                &holder,
                &advertised.address,
                terms,
                &leader,
            );
            let (lease, tenure) = tokio::select! {
                waited = waited => waited?,
                stood = &mut standby => {
                    stood?;
                    anyhow::bail!("the standby stopped serving before this coordinator led");
                }
            };
            // Kept from now on, through the rest of the start too.
            let kept = tokio::spawn(leadership::keep(
                leases.clone(),
                holder.clone(),
                advertised.address.clone(),
                terms,
                tenure.clone(),
            ));
            // Calls in flight on the standby finish; new ones wait in the
            // listener's backlog for the leader.
            let _ = stop.send(true);
            match tokio::time::timeout(CALLS_GRACE, standby).await {
                Ok(stood) => stood?,
                Err(_) => warn!("the standby's open calls did not end; leading without them"),
            }
            (Db::with_epoch(timed, lease.epoch), tenure, Some(kept))
        }
    };
    let Assembled {
        coordinator,
        tls,
        http,
        dashboard_access,
        profile,
    } = assemble(&setting, db, tenure, true).await?;
    // Stores from before the indexes get them, once.
    coordinator.deployments.build_index().await?;
    coordinator.tokens.build_index().await?;
    // Standbys follow the leader's CA rotation from the store.
    coordinator.ca_rotation.take_up().await?;
    let foreign = coordinator.operations.secrets.foreign_key_ids().await?;
    if !foreign.is_empty() {
        error!(keys = ?foreign, "stored secrets are sealed with a key this host's secrets.key is not: deploys that need them will fail; copy the secrets.key of the host that rotated it here and restart");
    }
    // The background tasks this process owns: the scheduler ends after a
    // graceful stop; the others are ended with the process's tasks below.
    let scheduler = coordinator.scheduler.start();
    let mut background = vec![
        slipway_coordinator::promote::start_finisher(&coordinator.promotions),
        slipway_coordinator::lost::start_watch(coordinator.lost.clone()),
        slipway_coordinator::observed::start(coordinator.observer.clone()),
        slipway_coordinator::notify::start(coordinator.notifier.clone()),
        slipway_coordinator::retention::start(coordinator.retention.clone()),
        slipway_coordinator::metrics::count_events(metrics.clone(), &coordinator.events),
    ];
    let (dashboard_stop, dashboard_stopped) = tokio::sync::watch::channel(false);
    if let Some((listener, tls, address)) = http {
        let board = Board::open(Sources {
            fleets: coordinator.fleets.clone(),
            deployments: coordinator.deployments.clone(),
            promotions: coordinator.promotions.clone(),
            notifier: coordinator.notifier.clone(),
            events: coordinator.events.clone(),
            agents: coordinator.agents.clone(),
            records: coordinator.agent_records.clone(),
            revocations: coordinator.revocations.clone(),
            clock: clock.clone(),
            stopping: coordinator.stopping.clone(),
        })
        .await?;
        background.push(dashboard::board::start(board.clone()));
        let served = Arc::new(Dashboard {
            board,
            access: dashboard_access,
            operations: coordinator.operations.clone(),
            agents: coordinator.agents.clone(),
            notifier: coordinator.notifier.clone(),
            fleets: coordinator.fleets.clone(),
            metrics,
            clock,
            streams: Arc::default(),
        });
        let mut stopped = dashboard_stopped.clone();
        background.push(tokio::spawn(dashboard::serve(
            listener,
            tls,
            served,
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            },
        )));
        println!(
            "dashboard and /metrics on {address} (slipway dashboard url prints a link to open)"
        );
    }
    info!(address = %advertised.address, data_dir = %data_dir.display(), "coordinator serving");
    crate::data_dir::write_address(data_dir, &advertised.address)
        .and_then(|()| crate::data_dir::write_pid(data_dir))
        .with_context(|| format!("cannot write to data dir {}", data_dir.display()))?;
    println!(
        "slipway coordinator listening on {} (TLS 1.3, client certificates required)",
        advertised.address
    );
    println!("data dir: {}", data_dir.display());
    match &profile {
        Some(profile) => {
            let cli = std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(|dir| dir.join("slipway")))
                .map_or_else(|| "slipway".to_string(), |p| p.display().to_string());
            println!("CLI profile: {}", profile.display());
            println!("next, in another terminal:");
            println!("  export SLIPWAY_PROFILE={}", profile.display());
            println!("  {cli} deploy hello v1 --env staging --wait");
            println!("  {cli} status hello");
            println!("stop everything (this coordinator, the local cloud, its instances):");
            println!(
                "  {}-coordinator --data-dir {} down",
                cli,
                data_dir.display()
            );
        }
        None => {
            let exe = std::env::current_exe().map_or_else(
                |_| "slipway-coordinator".into(),
                |p| p.display().to_string(),
            );
            println!("operator certificates (the first admin's too) are issued on this host:");
            println!(
                "  {exe} --data-dir {} ca issue --name NAME --role admin --out DIR",
                data_dir.display()
            );
            println!("  then: export SLIPWAY_PROFILE=DIR/profile.toml");
        }
    }
    let stopping = coordinator.clone();
    let (stopped, calls_ending) = tokio::sync::oneshot::channel::<()>();
    let graceful = async move {
        shutdown_signal().await;
        let _ = dashboard_stop.send(true);
        let busy = stopping.stop(STOP_GRACE).await;
        if busy > 0 {
            warn!(
                busy,
                "stopping with steps still running: a restart repeats them idempotently"
            );
        }
        let _ = stopped.send(());
    };
    // Every deployment's state is stored by now; a call that will not end (a
    // client that keeps its stream open) must not keep the process from
    // exiting. A call cut off here may have acted without being audited; what
    // it stored stays (a promotion it left pending is finished, and audited, on
    // the next start).
    let give_up = async {
        // The sender goes only with `serve`, which then has ended this select.
        let _ = calls_ending.await;
        tokio::time::sleep(CALLS_GRACE).await;
    };
    // Once the lease is lost, the leader stops at once (every step is
    // stored: the new leader resumes them).
    let lost = async {
        match kept {
            Some(kept) => kept
                .await
                .map_or_else(|e| e.to_string(), |lost| lost.to_string()),
            None => std::future::pending().await,
        }
    };
    let leads = grpc::standby::StandbyLayer { leader: None };
    tokio::select! {
        served = grpc::serve(setting.listener.clone(), tls, coordinator, leads, graceful) => served?,
        lost = lost => {
            tracing::error!(%lost, "stopped acting");
            anyhow::bail!(
            "stopped acting: {lost}. Every step is stored, so the coordinator that leads now resumes it; \
             start this one again to stand by"
            )
        }
        () = give_up => warn!(
            grace = ?CALLS_GRACE,
            "open calls did not end after the stop; exiting without them"
        ),
    }
    for task in &background {
        task.abort();
    }
    if !scheduler.is_finished() {
        warn!("the scheduler still had executors running at exit: a restart resumes them");
    }
    crate::data_dir::remove_pid(data_dir);
    if let Some(leases) = &opened.leases
        && let Err(e) = leases.release_lease(&holder).await
    {
        warn!(error = %e, "cannot give up the lease: a standby takes over when it runs out");
    }
    info!(
        "coordinator stopped: every deployment's state is stored and a restart resumes it; instances keep running"
    );
    Ok(())
}

/// Serves reads as a standby until `stop`: a coordinator built on a store
/// handle that may not write and a cloud it may not change, which takes the
/// leader's fleet applies and revocations as they are stored.
async fn stand_by(
    setting: &Setting<'_>,
    reads: Db,
    leader: tokio::sync::watch::Receiver<Option<String>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    terms: LeaseTerms,
) -> anyhow::Result<()> {
    // Only once another coordinator is found to lead: one that takes the
    // lease at its first try never stands by.
    let mut found = leader.clone();
    if found.wait_for(Option::is_some).await.is_err() {
        return Ok(());
    }
    let Assembled {
        coordinator, tls, ..
    } = assemble(setting, reads, Tenure::none(), false).await?;
    info!(
        address = %setting.advertised.address,
        "standby serving reads and relaying agents' streams; other calls go to the leader"
    );
    let observer = slipway_coordinator::observed::start(coordinator.observer.clone());
    let following = coordinator.clone();
    let follow = tokio::spawn(async move {
        let mut foreign_keys = BTreeSet::new();
        loop {
            tokio::time::sleep(terms.every()).await;
            if let Err(e) = following.revocations.reload().await {
                warn!(error = %e, "standby: cannot read the revocations");
            }
            if let Err(e) = following.fleets.reload().await {
                warn!(error = %e, "standby: cannot read the fleet in force");
            }
            following.ca_rotation.follow().await;
            // Said when it changes, not at every tick.
            match following.operations.secrets.foreign_key_ids().await {
                Ok(ids) if ids != foreign_keys => {
                    if !ids.is_empty() {
                        warn!(keys = ?ids, "standby: stored secrets are sealed with a key this host's secrets.key is not (rotated on the leader?): copy the leader's secrets.key here before this standby may lead");
                    }
                    foreign_keys = ids;
                }
                Ok(_) => {}
                Err(e) => warn!(error = %e, "standby: cannot read the secrets' keys"),
            }
        }
    });
    let standby = grpc::standby::StandbyLayer {
        leader: Some(leader),
    };
    // Relayed agents' streams end with the standby, so that its calls end.
    let stopping = coordinator.stopping.clone();
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
        stopping.ask();
    };
    let served = grpc::serve(setting.listener.clone(), tls, coordinator, standby, stopped).await;
    observer.abort();
    follow.abort();
    Ok(served?)
}

/// Builds the coordinator on `db`. A leader (`leads`) also provisions the
/// local cloud, registers the dev samples, writes the dev profile and opens
/// the dashboard's port; a standby does none of that.
async fn assemble(
    setting: &Setting<'_>,
    db: Db,
    tenure: Arc<Tenure>,
    leads: bool,
) -> anyhow::Result<Assembled> {
    let options = setting.options;
    let data_dir = &options.data_dir;
    let clock = setting.clock.clone();
    // The start file, or a fleet applied over it since.
    let events = Arc::new(Events::new(db.clone(), clock.clone()));
    let start = setting.start.clone();
    let fleets = match leads {
        true => {
            Fleets::open(
                db.clone(),
                clock.clone(),
                events.clone(),
                start,
                &setting.text,
            )
            .await?
        }
        false => {
            Fleets::follow(
                db.clone(),
                clock.clone(),
                events.clone(),
                start,
                &setting.text,
            )
            .await?
        }
    };
    let fleets = Arc::new(fleets);
    let fleet = fleets.current().fleet;
    let ca = Arc::new(Ca::load_or_create(&data_dir.join("ca"), clock.clone())?);

    let cloud = match fleet.cloud.provider {
        Provider::Local => {
            let local = dev::local_cloud(&data_dir.join("cloud")).await?;
            if options.dev && leads {
                dev::sample_releases(data_dir, &local, &db, clock.as_ref()).await?;
            }
            let local = Arc::new(local);
            let cloud = Cloud {
                compute: local.clone(),
                load_balancer: local.clone(),
                dns: local,
            };
            // The local cloud keeps nothing across its own restarts: provision on every start.
            if leads {
                infra::apply(&cloud, &infra::plan(&fleet, &cloud).await?).await?;
            }
            cloud
        }
        Provider::Aws if options.dev => {
            anyhow::bail!("--dev runs on the local cloud: drop cloud.provider = \"aws\" or --dev")
        }
        Provider::Aws => aws_cloud(&fleet).await?,
    };

    let cloud = leadership::fenced_cloud(cloud, tenure);

    let addr = setting.listener.local_addr()?;
    let mut names = vec![
        SERVER_NAME.to_string(),
        "localhost".to_string(),
        addr.ip().to_string(),
    ];
    names.dedup();
    let tls = {
        let names = names.clone();
        Arc::new(
            LiveTls::following(ca.clone(), move |ca| {
                grpc::tls_config(ca, &names).map_err(|e| e.to_string())
            })
            .map_err(anyhow::Error::msg)?,
        )
    };
    let http_listen = match (options.http_listen, options.dev) {
        _ if !leads => None,
        (Some(addr), _) => Some(addr),
        // A free port the first time, then the same one: the wall screen's
        // URL outlives a restart.
        (None, true) => Some(SocketAddr::new(
            addr.ip(),
            crate::data_dir::dashboard_address(data_dir)
                .and_then(|a| a.rsplit_once(':').and_then(|(_, p)| p.parse().ok()))
                .unwrap_or(0),
        )),
        (None, false) => None,
    };
    let http = match http_listen {
        Some(addr) => {
            let listener = TcpListener::bind(addr).await.with_context(|| {
                format!("cannot listen on {addr} for the dashboard: pick another --http-listen")
            })?;
            let tls = match &options.http_certificate {
                Some((cert, key)) => {
                    let cert_pem = std::fs::read_to_string(cert)
                        .with_context(|| format!("cannot read --http-cert {}", cert.display()))?;
                    let key_pem = std::fs::read_to_string(key)
                        .with_context(|| format!("cannot read --http-key {}", key.display()))?;
                    LiveTls::fixed(
                        dashboard::tls_config(&cert_pem, &key_pem).map_err(anyhow::Error::msg)?,
                    )
                }
                // Signed by the coordinator's CA, so made again as it rotates.
                None => LiveTls::following(ca.clone(), move |ca| {
                    let server = ca.issue_server(&names).map_err(|e| e.to_string())?;
                    dashboard::tls_config(&server.cert_pem, &server.key_pem)
                })
                .map_err(anyhow::Error::msg)?,
            };
            let tls = Arc::new(tls);
            let address = format!("https://{}", listener.local_addr()?);
            if options.dev {
                crate::data_dir::write_dashboard_address(data_dir, &address)
                    .with_context(|| format!("cannot write to data dir {}", data_dir.display()))?;
            }
            Some((listener, tls, address))
        }
        None => None,
    };
    let advertised = setting.advertised.clone();
    // Only the embedded default writes an admin certificate: a production
    // coordinator leaves no admin key on its host; its operators get theirs
    // from `ca issue` (printed below).
    let profile = match options.dev && leads {
        true => Some(dev::profile(
            data_dir,
            &ca,
            &advertised.address,
            &advertised.others,
        )?),
        false => None,
    };

    // The key lives beside the store, not in it: a copy of the store reveals nothing.
    let secrets =
        slipway_coordinator::secrets::Secrets::open(db.clone(), &data_dir.join("secrets.key"))
            .await?;
    let revocations = slipway_coordinator::revocation::Revocations::load(
        db.clone(),
        clock.clone(),
        events.clone(),
    )
    .await?;
    let dashboard_access = Arc::new(DashboardAccess::load(db.clone(), clock.clone()).await?);
    let coordinator = Coordinator::new(Parts {
        db,
        fleets,
        events,
        cloud,
        ca,
        secrets,
        revocations,
        advertised,
        clock,
        metrics: setting.metrics.clone(),
        dashboard_access: dashboard_access.clone(),
        dashboard_address: http.as_ref().map(|(_, _, address)| address.clone()),
        // A standby's snapshot would miss what the leader writes meanwhile.
        snapshots: leads.then(|| setting.snapshots.clone()),
    });
    Ok(Assembled {
        coordinator,
        tls,
        http,
        dashboard_access,
        profile,
    })
}

#[cfg(feature = "aws")]
async fn aws_cloud(fleet: &Fleet) -> anyhow::Result<Cloud> {
    let aws = Arc::new(slipway_coordinator::cloud::aws::AwsCloud::connect(&fleet.cloud).await?);
    Ok(Cloud {
        compute: aws.clone(),
        load_balancer: aws.clone(),
        dns: aws,
    })
}

#[cfg(not(feature = "aws"))]
async fn aws_cloud(_: &Fleet) -> anyhow::Result<Cloud> {
    anyhow::bail!(
        "this slipway-coordinator was built without AWS support: rebuild it with `cargo build --features aws`"
    )
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

/// Where the dev coordinator listens: its agents' user-data names the port it
/// served on last, so `--listen …:0` keeps that port (a new one would orphan
/// every running agent); an explicit other port is taken, with a warning.
fn dev_listen(asked: SocketAddr, last: Option<&str>) -> SocketAddr {
    let last_port = last
        .and_then(|a| a.rsplit_once(':'))
        .and_then(|(_, port)| port.parse::<u16>().ok())
        .filter(|port| *port != 0);
    match last_port {
        Some(port) if asked.port() == 0 => {
            println!(
                "keeping port {port} from the last start (running agents dial it); --listen with another port moves it"
            );
            SocketAddr::new(asked.ip(), port)
        }
        Some(port) if port != asked.port() => {
            println!(
                "warning: moving from port {port} to {}: agents launched before still dial {port} and are orphaned until their instances are replaced",
                asked.port()
            );
            asked
        }
        _ => asked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dev_coordinator_keeps_its_port_unless_given_another() {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let last = Some("https://127.0.0.1:40123");
        assert_eq!(dev_listen(any, last).port(), 40123);
        assert_eq!(dev_listen(any, None).port(), 0);
        let other: SocketAddr = "127.0.0.1:7443".parse().unwrap();
        assert_eq!(dev_listen(other, last), other);
    }
}
