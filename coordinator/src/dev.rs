//! The embedded default: `slipway-coordinator --dev`. A sample fleet, the local
//! cloud in its own process, three baked releases of a sample app, and a profile
//! for the CLI, so a newcomer deploys within a minute of building.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use slipway_common::profile::{ProfileFile, write_profile};
use slipway_coordinator::cloud::Compute;

use slipway_coordinator::cloud::local::LocalCloud;
use slipway_coordinator::pki::{Ca, Identity, Role, write_file, write_private};
use slipway_coordinator::store::Db;

/// The sample fleet written to `DIR/fleet.toml` on first start; edit it freely.
pub use slipway_domain::sample::SAMPLE_FLEET;

/// The sample releases: version, whether its health check passes, the schema
/// its migration brings the data store to, and whether that migration fails.
const SAMPLE_RELEASES: [(&str, bool, u32, bool); 4] = [
    ("v1", true, 1, false),
    ("v2", true, 2, false),
    ("broken", false, 1, false),
    ("v3-bad-migration", true, 3, true),
];

/// `DIR/fleet.toml`, the sample written there first if there is none.
pub fn fleet_file(data_dir: &Path) -> anyhow::Result<PathBuf> {
    let path = data_dir.join("fleet.toml");
    if !path.exists() {
        std::fs::write(&path, SAMPLE_FLEET)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(path)
}

/// Reaches the local cloud in `dir`, starting it in a process of its own if it
/// is not running; it outlives this coordinator, as AWS would.
pub async fn local_cloud(dir: &Path) -> anyhow::Result<LocalCloud> {
    let cloud = LocalCloud::new(dir);
    if cloud.ping().await {
        return Ok(cloud);
    }
    std::fs::create_dir_all(dir)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("cloud.log"))?;
    let exe = sibling_binary("slipway-local-cloud")?;
    std::process::Command::new(exe)
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group: a Ctrl-C or crash of the coordinator leaves it running.
        .process_group(0)
        .spawn()
        .context("cannot start the local cloud")?;
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if cloud.ping().await {
            return Ok(cloud);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!(
        "the local cloud did not start: see {}",
        dir.join("cloud.log").display()
    )
}

/// How long `down` waits for the coordinator's graceful stop: its own grace for
/// deployments to finish their step (30 s) and for open calls (5 s), and a margin.
const COORDINATOR_STOP_WAIT: Duration = Duration::from_secs(45);

/// Stops what runs in `data_dir`: the coordinator serving it (SIGTERM, so its
/// deployments store their step first), then the local cloud and its instances.
pub async fn down(data_dir: &Path) -> anyhow::Result<()> {
    if let Some(pid) = crate::data_dir::serving_pid(data_dir) {
        stop_coordinator(pid).await?;
        println!("coordinator (pid {pid}) stopped");
    }
    let cloud = LocalCloud::new(&data_dir.join("cloud"));
    if !cloud.ping().await {
        println!("no local cloud runs in {}", data_dir.display());
        return Ok(());
    }
    cloud.shutdown().await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while cloud.ping().await {
        if Instant::now() > deadline {
            bail!(
                "the local cloud in {} did not stop within 30s",
                data_dir.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("local cloud in {} stopped", data_dir.display());
    Ok(())
}

async fn stop_coordinator(pid: u32) -> anyhow::Result<()> {
    use nix::sys::signal::{Signal, kill};
    let target = nix::unistd::Pid::from_raw(
        i32::try_from(pid).context("the recorded coordinator pid is out of range")?,
    );
    kill(target, Signal::SIGTERM)
        .with_context(|| format!("cannot stop the coordinator (pid {pid})"))?;
    let deadline = Instant::now() + COORDINATOR_STOP_WAIT;
    // Signal 0 probes: the process is gone once it fails (a zombie of a parent
    // that has not reaped it yet also counts as stopped).
    while kill(target, None).is_ok() && !slipway_common::process::is_zombie(pid) {
        if Instant::now() > deadline {
            bail!(
                "the coordinator (pid {pid}) did not stop within {}s of SIGTERM: `kill -9 {pid}` ends it; a restart resumes its deployments",
                COORDINATOR_STOP_WAIT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// A binary built beside this executable (`cargo build` puts them together).
fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find my own executable")?;
    let binary = exe
        .parent()
        .context("my executable has no directory")?
        .join(name);
    if !binary.exists() {
        bail!(
            "{} is missing: build every binary first with `cargo build`",
            binary.display()
        );
    }
    Ok(binary)
}

/// The binaries baked into the sample images.
fn sample_binaries() -> anyhow::Result<(PathBuf, PathBuf)> {
    Ok((
        sibling_binary("slipway-agent")?,
        sibling_binary("slipway-sample-app")?,
    ))
}

/// Bakes and registers the sample releases that are not registered yet, or
/// whose image the local cloud no longer has (a store restored or copied
/// without its cloud): a release is only worth listing if it deploys.
pub async fn sample_releases(
    data_dir: &Path,
    cloud: &LocalCloud,
    db: &Db,
    clock: &dyn slipway_coordinator::clock::Clock,
) -> anyhow::Result<()> {
    let (agent, app) = sample_binaries()?;
    for (version, healthy, schema, failing) in SAMPLE_RELEASES {
        let key = slipway_coordinator::release::Release::key_of("hello", version);
        if let Some(release) = db
            .get::<slipway_coordinator::release::Release>(&key)
            .await?
        {
            let image = cloud.find_image("hello", version).await.ok();
            if image.as_ref() == Some(&release.image_id) {
                continue;
            }
            tracing::warn!(
                version,
                image = release.image_id,
                "the sample release's image is gone from the local cloud: baking it again"
            );
        }
        let source = data_dir.join("bake").join(version);
        let _ = std::fs::remove_dir_all(&source);
        std::fs::create_dir_all(source.join("bin"))?;
        std::fs::copy(&agent, source.join("bin/slipway-agent"))?;
        std::fs::copy(&app, source.join("bin/slipway-sample-app"))?;
        std::fs::write(
            source.join("app.toml"),
            format!(
                "version = \"{version}\"\nhealthy = {healthy}\nschema = {schema}\nmigration = \"{}\"\n",
                if failing { "fail" } else { "ok" }
            ),
        )?;
        let tags = BTreeMap::from([
            ("slipway:project".to_string(), "hello".to_string()),
            ("slipway:version".to_string(), version.to_string()),
        ]);
        cloud.import_image(&source, tags).await?;
        let _ = std::fs::remove_dir_all(&source);
        let image_id = cloud.find_image("hello", version).await?;
        db.put(&slipway_coordinator::release::Release {
            project: "hello".into(),
            version: version.into(),
            image_id,
            registered_at: clock.now(),
            registered_by: "slipway-dev".into(),
            owner_account: None,
            provenance: Default::default(),
        })
        .await?;
    }
    Ok(())
}

/// `slipway-coordinator ca issue`: an operator certificate from the CA in
/// `data_dir`, with a profile beside it in `out`.
pub fn issue_operator(
    data_dir: &Path,
    name: &str,
    role: &str,
    environments: &[String],
    days: u32,
    coordinator: Option<String>,
    out: &Path,
) -> anyhow::Result<()> {
    let identity = Identity::operator(name, role, environments).map_err(anyhow::Error::msg)?;
    if !(1..=365).contains(&days) {
        bail!("--days {days}: use 1-365");
    }
    let ca_dir = data_dir.join("ca");
    if !ca_dir.join("ca.pem").exists() {
        bail!(
            "no CA in {}: start the coordinator once, or pass its --data-dir",
            ca_dir.display()
        );
    }
    let ca = Ca::load_or_create(
        &ca_dir,
        std::sync::Arc::new(slipway_coordinator::clock::SystemClock),
    )?;
    let coordinator = match coordinator {
        Some(address) => address,
        None => crate::data_dir::address(data_dir)
            .context("no coordinator address known: start the coordinator once, or pass --coordinator https://HOST:PORT")?,
    };
    let issued = ca.issue_client(&identity, Duration::from_secs(u64::from(days) * 24 * 3600))?;
    let profile = slipway_common::profile::write_bundle(
        out,
        &coordinator,
        slipway_coordinator::pki::SERVER_NAME,
        &ca.cert_pem(),
        &issued.cert_pem,
        &issued.key_pem,
    )?;
    println!(
        "issued {identity} for {days} days: use it with --profile {}",
        profile.display()
    );
    Ok(())
}

/// Writes `DIR/profile.toml` and an admin certificate for the CLI.
pub fn profile(
    data_dir: &Path,
    ca: &Ca,
    address: &str,
    others: &[String],
) -> anyhow::Result<PathBuf> {
    let operator_dir = data_dir.join("operators").join("admin");
    // Made again after a CA rotation: the previous CA's are refused once it ends.
    let current = std::fs::read_to_string(operator_dir.join("cert.pem"))
        .ok()
        .and_then(|pem| ca.signer_pem(&pem));
    if current.as_deref() != Some(ca.fingerprint().as_str()) {
        slipway_common::private_file::create_dir(&operator_dir)?;
        let admin = Identity::new("admin", Role::Admin);
        let issued = ca.issue_client(&admin, Duration::from_secs(365 * 24 * 3600))?;
        write_private(&operator_dir.join("key.pem"), &issued.key_pem)?;
        write_file(&operator_dir.join("cert.pem"), &issued.cert_pem)?;
    }
    let path = data_dir.join("profile.toml");
    let profile = ProfileFile {
        coordinator: address.to_string(),
        other_coordinators: others.to_vec(),
        server_name: slipway_coordinator::pki::SERVER_NAME.to_string(),
        ca: Some("ca/ca.pem".into()),
        certificate: Some("operators/admin/cert.pem".into()),
        key: Some("operators/admin/key.pem".into()),
        ca_pem: None,
        certificate_pem: None,
        key_pem: None,
    };
    write_profile(&path, &profile)?;
    Ok(path)
}
