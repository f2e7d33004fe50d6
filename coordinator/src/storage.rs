//! Which store the flags name, opened: the embedded sled store in the data
//! directory (the default), or PostgreSQL for several coordinators
//! (`--store postgres://…`, built with the `postgres` feature); and
//! `store copy`, which moves the one into the other.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use slipway_coordinator::store::{Leases, SledStore, Store};

/// The store flags, as given.
#[derive(Debug, Clone, Default)]
pub struct StoreFlags {
    /// `postgres://USER@HOST:PORT/DATABASE?sslmode=…`; none: sled in the data directory.
    pub url: Option<String>,
    /// PEM certificates PostgreSQL's TLS is verified against instead of the system's.
    pub ca: Option<PathBuf>,
}

/// An open store.
pub struct Opened {
    pub store: Arc<dyn Store>,
    /// Its leader lease, where several coordinators may share it; none for
    /// the embedded store, which one process alone can open.
    pub leases: Option<Arc<dyn Leases>>,
    /// How to name it in messages (never with a password).
    pub shown: String,
}

pub async fn open(flags: &StoreFlags, data_dir: &Path) -> anyhow::Result<Opened> {
    match &flags.url {
        None => {
            let path = data_dir.join("store");
            let store = SledStore::open(&path)?;
            Ok(Opened {
                store: Arc::new(store),
                leases: None,
                shown: path.display().to_string(),
            })
        }
        Some(url) => open_url(url, flags.ca.as_deref()).await,
    }
}

#[cfg(feature = "postgres")]
async fn open_url(url: &str, ca: Option<&Path>) -> anyhow::Result<Opened> {
    use slipway_coordinator::store::{PostgresStore, Target};
    postgres_scheme(url)?;
    let ca_pem = ca
        .map(|path| {
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --store-ca {}", path.display()))
        })
        .transpose()?;
    // As libpq does: the password from the environment when the address has
    // none, so it stays out of the process list.
    let target = Target::parse(url, ca_pem.as_deref())?
        .password_if_missing(std::env::var("PGPASSWORD").ok());
    let shown = target.to_string();
    let store = Arc::new(PostgresStore::open(target).await?);
    Ok(Opened {
        store: store.clone(),
        leases: Some(store),
        shown,
    })
}

#[cfg(not(feature = "postgres"))]
async fn open_url(url: &str, _ca: Option<&Path>) -> anyhow::Result<Opened> {
    postgres_scheme(url)?;
    bail!(
        "this coordinator was built without PostgreSQL: build it with `cargo build --release --features postgres`"
    )
}

/// Refuses anything but a PostgreSQL address, showing only its scheme (what
/// follows may hold a password).
fn postgres_scheme(url: &str) -> anyhow::Result<()> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(());
    }
    let scheme = url.split_once("://").map_or("(no scheme)", |(s, _)| s);
    bail!(
        "--store takes a PostgreSQL address, postgres://USER@HOST:PORT/DATABASE, not one starting {scheme:?}; \
         leave it out for the embedded store in the data directory"
    )
}

/// `store copy`: the embedded store of data directory `from` into the
/// (empty) store `to` names.
pub async fn copy(from: &Path, to: &StoreFlags) -> anyhow::Result<()> {
    let source_path = from.join("store");
    if !source_path.exists() {
        bail!(
            "{} holds no store: --from is a coordinator's data directory",
            from.display()
        );
    }
    let source = SledStore::open(&source_path)?;
    if to.url.is_none() {
        bail!("--to names the PostgreSQL store to copy into: postgres://USER@HOST:PORT/DATABASE");
    }
    let Opened {
        store: target,
        shown,
        ..
    } = open(to, from).await?;
    let copied = slipway_coordinator::store::copy(&source, target.as_ref(), &shown).await?;
    let tables: Vec<String> = copied
        .tables
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(table, n)| format!("{table} {n}"))
        .collect();
    println!(
        "copied {} entries from {} to {shown} ({})",
        copied.total(),
        source_path.display(),
        tables.join(", ")
    );
    println!(
        "next: start each coordinator with --store and a data directory holding this one's ca/ and secrets.key"
    );
    Ok(())
}
