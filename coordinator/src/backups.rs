//! `backup`, `restore` and `backup-key`: the store of a data directory (and,
//! if asked, its CA and secrets key) into a sealed file, and back into a new
//! data directory.
//!
//! A running coordinator holds its store: the backup then asks it for a
//! snapshot (`grpc::backup_client`), whatever its store. A stopped one's
//! embedded store is read here (PostgreSQL's, with pg_dump). A restore
//! writes an embedded store; `store copy` takes it on into PostgreSQL.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use slipway_coordinator::backup::{self, Document, Lock, Unlock};
use slipway_coordinator::clock::{Clock, SystemClock};
use slipway_coordinator::pki::{Ca, Identity, Role};
use slipway_coordinator::store::{SledStore, StoreError};

/// The data directory's files a backup with keys carries.
const KEY_FILES: [&str; 3] = ["ca/ca.pem", "ca/ca.key", "secrets.key"];
/// And, during a CA rotation, the new CA (`pki::Ca`'s `next/`).
const ROTATION_FILES: [&str; 3] = ["ca/next/ca.pem", "ca/next/ca.key", "ca/next/cross.pem"];
/// How long the certificate a backup makes itself for the call lasts.
const CALL_CERTIFICATE: Duration = Duration::from_secs(600);

/// How a backup is sealed, from the flags.
pub struct Sealing {
    pub passphrase_file: Option<PathBuf>,
    pub recipient: Option<PathBuf>,
}

pub async fn backup(
    data_dir: &Path,
    out: &Path,
    with_keys: bool,
    sealing: Sealing,
) -> anyhow::Result<()> {
    let lock = match (&sealing.passphrase_file, &sealing.recipient) {
        (Some(file), None) => Lock::Passphrase(passphrase(file)?),
        (None, Some(file)) => {
            Lock::Recipient(backup::parse_recipient(&read_text(file, "--recipient")?)?)
        }
        _ => bail!(
            "seal the backup to a passphrase (--passphrase-file FILE) or to a public key (--recipient FILE, from `slipway-coordinator backup-key`): one of them"
        ),
    };
    let mut document: Document = match crate::data_dir::serving_pid(data_dir) {
        Some(_) => {
            let fetched = from_running(data_dir).await?;
            serde_json::from_slice(&fetched).context("the coordinator's snapshot does not parse")?
        }
        None => {
            let path = data_dir.join("store");
            if !path.exists() {
                bail!(
                    "{} holds no store: --data-dir is a coordinator's data directory",
                    data_dir.display()
                );
            }
            let store = SledStore::open(&path)?;
            Document::of(&store, SystemClock.now()).await?
        }
    };
    if with_keys {
        let b64 = base64::engine::general_purpose::STANDARD;
        let rotating = data_dir.join("ca/next").exists();
        let rotation = ROTATION_FILES.iter().filter(|_| rotating);
        for file in KEY_FILES.iter().chain(rotation) {
            let bytes = std::fs::read(data_dir.join(file)).with_context(|| {
                format!(
                    "cannot read {} for --with-keys",
                    data_dir.join(file).display()
                )
            })?;
            document.files.insert(file.to_string(), b64.encode(bytes));
        }
    }
    let plain = serde_json::to_vec(&document)?;
    let sealed = backup::seal(&plain, &lock)?;
    slipway_common::private_file::create_new(out, &sealed)
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "backed up {} entries{} to {} (sealed to {})",
        document.entries(),
        if with_keys {
            " with the CA and secrets keys"
        } else {
            ""
        },
        out.display(),
        match lock {
            Lock::Passphrase(_) => "a passphrase",
            Lock::Recipient(_) => "a public key",
        }
    );
    Ok(())
}

/// The snapshot document of the coordinator serving `data_dir`.
async fn from_running(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    let address = crate::data_dir::address(data_dir)
        .context("the coordinator runs but its address is unknown (no coordinator.address)")?;
    let ca = Ca::load_or_create(&data_dir.join("ca"), std::sync::Arc::new(SystemClock))
        .context("cannot load the CA to call the coordinator with")?;
    let admin = ca.issue_client(&Identity::new("backup", Role::Admin), CALL_CERTIFICATE)?;
    Ok(
        slipway_coordinator::grpc::backup_client::fetch(&address, &ca.trusted_pem(), &admin)
            .await?,
    )
}

pub async fn restore(data_dir: &Path, from: &Path, sealing: Sealing) -> anyhow::Result<()> {
    let unlock = match (&sealing.passphrase_file, &sealing.recipient) {
        (Some(file), None) => Unlock::Passphrase(passphrase(file)?),
        (None, Some(file)) => {
            Unlock::Identity(backup::parse_identity(&read_text(file, "--identity")?)?)
        }
        _ => bail!(
            "open the backup with the passphrase (--passphrase-file FILE) or the identity (--identity FILE) it was sealed to: one of them"
        ),
    };
    let sealed = std::fs::read(from).with_context(|| format!("cannot read {}", from.display()))?;
    let plain = backup::open(&sealed, &unlock)?;
    let document: Document =
        serde_json::from_slice(&plain).context("the backup's document does not parse")?;
    let store_path = data_dir.join("store");
    if store_path.exists() {
        bail!(
            "{} holds a store already: restore into a new data directory (never over a history)",
            data_dir.display()
        );
    }
    let files = document.files()?;
    for path in files.keys() {
        if !KEY_FILES.contains(&path.as_str()) && !ROTATION_FILES.contains(&path.as_str()) {
            bail!(
                "the backup carries a file {path:?} that is none of the keys: it was not made by slipway-coordinator"
            );
        }
        if data_dir.join(path).exists() {
            bail!(
                "{} exists: restore the keys into a new data directory",
                data_dir.join(path).display()
            );
        }
    }
    let memory = document.store().await?;
    std::fs::create_dir_all(data_dir)?;
    let store = SledStore::open(&store_path)?;
    let copied =
        slipway_coordinator::store::copy(&memory, &store, &store_path.display().to_string())
            .await
            .map_err(|e: StoreError| anyhow::anyhow!(e))?;
    drop(store);
    write_files(data_dir, &files)?;
    println!(
        "restored {} entries{} into {}",
        copied.total(),
        if files.is_empty() {
            ""
        } else {
            " and the CA and secrets keys"
        },
        data_dir.display()
    );
    if files.is_empty() {
        println!(
            "the backup holds no keys: put the CA (ca/) and secrets.key from their own backup into {} before starting",
            data_dir.display()
        );
    }
    println!(
        "next: start the coordinator on it; then `slipway infra orphans` lists instances this store does not know"
    );
    Ok(())
}

/// `backup-key`: an identity file (private) at `out` and its recipient (public) at `out.pub`.
pub fn keygen(out: &Path) -> anyhow::Result<()> {
    let (identity, recipient) = backup::keygen()?;
    let public = PathBuf::from(format!("{}.pub", out.display()));
    slipway_common::private_file::create_new(out, identity.as_bytes())
        .with_context(|| format!("cannot write {}", out.display()))?;
    std::fs::write(&public, &recipient)
        .with_context(|| format!("cannot write {}", public.display()))?;
    println!(
        "identity (private: keep it off the coordinator host) in {}; recipient (for backup --recipient) in {}",
        out.display(),
        public.display()
    );
    Ok(())
}

fn write_files(data_dir: &Path, files: &BTreeMap<String, Vec<u8>>) -> anyhow::Result<()> {
    for (path, bytes) in files {
        let target = data_dir.join(path);
        if let Some(parent) = target.parent() {
            slipway_common::private_file::create_dir(parent)?;
        }
        slipway_common::private_file::create_new(&target, bytes)
            .with_context(|| format!("cannot write {}", target.display()))?;
    }
    Ok(())
}

fn read_text(file: &Path, flag: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("cannot read {flag} {}", file.display()))
}

/// The first line of `file`: a passphrase, out of the process list and history.
fn passphrase(file: &Path) -> anyhow::Result<String> {
    let text = read_text(file, "--passphrase-file")?;
    let line = text.lines().next().unwrap_or_default().to_string();
    if line.chars().count() < 12 {
        bail!(
            "the passphrase in {} is shorter than 12 characters: a backup holds every secret's key",
            file.display()
        );
    }
    Ok(line)
}
