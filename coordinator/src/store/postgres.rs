//! The PostgreSQL engine (feature `postgres`): the store of several
//! coordinators sharing one replicated database (RDS Multi-AZ, say).
//!
//! - Every table's entries live in one SQL table, `slipway_entries`, keyed by
//!   (table, key); keys sort in byte order (`COLLATE "C"`), as sled's do, so
//!   range reads page the same on both engines.
//! - `slipway_meta` holds the writer epoch and the last id handed out.
//! - A batch is one transaction that first locks the epoch row: a batch from an
//!   older epoch than the row's is refused (`Fenced`), and the lock orders every
//!   batch after any epoch claim, so nothing from a fenced writer lands after
//!   the newer writer's first batch.
//! - The coordinator creates and upgrades the schema itself (`schema`), under an
//!   advisory lock, so coordinators starting together do it once.
//! - Commit returns once PostgreSQL has made it durable (`synchronous_commit`
//!   as the server has it; on RDS Multi-AZ, on both zones).

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::{Client, Config, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use slipway_domain::store::{Batch, Epoch, Lease, Leases, Range, Store, StoreError, Table, Write};

use super::schema;

/// Connections kept: a batch holds one for its transaction, reads share.
const POOL_SIZE: usize = 8;
const EPOCH: &str = "epoch";
const LAST_ID: &str = "last_id";

/// How the engine reaches the database, with the password left out of every
/// message.
#[derive(Clone)]
pub struct Target {
    config: Config,
    /// Certificates to trust instead of the system's (RDS has a CA of its own).
    tls: Option<Arc<rustls::ClientConfig>>,
    shown: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl Target {
    /// A `postgres://user:password@host:port/db?sslmode=…` address, with TLS
    /// verified against `ca_pem` if given, else the system's roots. The
    /// `sslmode` is PostgreSQL's: `disable`, `prefer` (its default) or `require`.
    pub fn parse(url: &str, ca_pem: Option<&str>) -> Result<Target, StoreError> {
        let config = Config::from_str(url).map_err(|e| StoreError::Open {
            path: redact(url),
            message: format!(
                "not a PostgreSQL address: {e} (postgres://USER:PASSWORD@HOST:PORT/DATABASE)"
            ),
        })?;
        let mut config = config;
        if config.get_connect_timeout().is_none() {
            // A partition must not hang a call forever.
            config.connect_timeout(std::time::Duration::from_secs(5));
        }
        let shown = shown(&config);
        let tls = match config.get_ssl_mode() {
            tokio_postgres::config::SslMode::Disable => None,
            _ => Some(Arc::new(tls_config(ca_pem).map_err(|message| {
                StoreError::Open {
                    path: shown.clone(),
                    message,
                }
            })?)),
        };
        Ok(Target { config, tls, shown })
    }

    /// Sets the password when the address carries none.
    pub fn password_if_missing(mut self, password: Option<String>) -> Target {
        if let (None, Some(password)) = (self.config.get_password(), password) {
            self.config.password(password);
        }
        self
    }

    async fn connect(&self) -> Result<Client, StoreError> {
        let failed = |e: tokio_postgres::Error| {
            StoreError::Io(format!(
                "cannot reach the store at {}: {}",
                self.shown,
                describe(&e)
            ))
        };
        let client = match &self.tls {
            Some(tls) => {
                let (client, connection) = self
                    .config
                    .connect(MakeRustlsConnect::new((**tls).clone()))
                    .await
                    .map_err(failed)?;
                tokio::spawn(connection);
                client
            }
            None => {
                let (client, connection) = self.config.connect(NoTls).await.map_err(failed)?;
                tokio::spawn(connection);
                client
            }
        };
        Ok(client)
    }
}

fn tls_config(ca_pem: Option<&str>) -> Result<rustls::ClientConfig, String> {
    use rustls_pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| format!("the store CA file is not PEM: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("the store CA file holds a bad certificate: {e}"))?;
            }
            if roots.is_empty() {
                return Err("the store CA file holds no certificate".into());
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// user@host:port/database: the address without its password.
fn shown(config: &Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}

/// An address that did not parse, shown up to its host (a password may follow
/// the scheme).
fn redact(url: &str) -> String {
    match url.rsplit_once('@') {
        Some((_, rest)) => format!("postgres://…@{rest}"),
        None => url.split('?').next().unwrap_or("").to_string(),
    }
}

/// The server's own words when it sent some, else the client's.
pub(super) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                text = format!("{text}: {cause}");
                source = cause.source();
            }
            text
        }
    }
}

fn io(e: tokio_postgres::Error) -> StoreError {
    StoreError::Io(describe(&e))
}

/// A few connections, opened as needed and dropped when broken.
struct Pool {
    target: Target,
    idle: Mutex<Vec<Client>>,
    permits: Arc<Semaphore>,
}

/// A connection taken from the pool. `done` gives it back; one dropped
/// instead (an error on the way) is closed, and the next call opens another.
struct Pooled<'a> {
    pool: &'a Pool,
    client: Client,
    _permit: OwnedSemaphorePermit,
}

impl Pool {
    async fn get(&self) -> Result<Pooled<'_>, StoreError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| StoreError::Io(e.to_string()))?;
        let idle = loop {
            let next = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            match next {
                Some(client) if client.is_closed() => continue,
                other => break other,
            }
        };
        let client = match idle {
            Some(client) => client,
            None => self.target.connect().await?,
        };
        Ok(Pooled {
            pool: self,
            client,
            _permit: permit,
        })
    }
}

impl Pooled<'_> {
    fn done(self) {
        if !self.client.is_closed() {
            self.pool
                .idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(self.client);
        }
    }
}

pub struct PostgresStore {
    pool: Pool,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PostgresStore({})", self.pool.target)
    }
}

impl PostgresStore {
    /// Connects, and creates or upgrades the schema to this build's version.
    pub async fn open(target: Target) -> Result<PostgresStore, StoreError> {
        let store = PostgresStore {
            pool: Pool {
                target,
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(POOL_SIZE)),
            },
        };
        let mut conn = store.pool.get().await?;
        schema::upgrade(&mut conn.client, &store.pool.target.shown).await?;
        conn.done();
        Ok(store)
    }

    /// Where it is, without the password.
    pub fn target(&self) -> &Target {
        &self.pool.target
    }

    async fn bump(&self, name: &str) -> Result<u64, StoreError> {
        let conn = self.pool.get().await?;
        let row = conn
            .client
            .query_one(
                "UPDATE slipway_meta SET value = value + 1 WHERE name = $1 RETURNING value",
                &[&name],
            )
            .await
            .map_err(io)?;
        conn.done();
        Ok(row.get::<_, i64>(0) as u64)
    }
}

/// The first key after every key that starts with `prefix`, if there is one:
/// the prefix with its last character raised by one (keys compare as UTF-8
/// bytes, which is code point order).
fn after_prefix(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// What a batch leaves behind, key by key: the later write to a key wins, so
/// each key is written once (`ON CONFLICT` takes a row once per statement).
/// Puts as (table, key, value); deletes as (table, key).
#[allow(clippy::type_complexity)]
fn outcome(writes: &[Write]) -> (Vec<(&str, &str, &[u8])>, Vec<(&str, &str)>) {
    let mut last: BTreeMap<(&str, &str), Option<&[u8]>> = BTreeMap::new();
    for write in writes {
        match write {
            Write::Put { table, key, value } => {
                last.insert((table.name(), key.as_str()), Some(value.as_slice()));
            }
            Write::Delete { table, key } => {
                last.insert((table.name(), key.as_str()), None);
            }
        }
    }
    let mut puts = Vec::new();
    let mut deletes = Vec::new();
    for ((table, key), value) in last {
        match value {
            Some(value) => puts.push((table, key, value)),
            None => deletes.push((table, key)),
        }
    }
    (puts, deletes)
}

#[async_trait]
impl Store for PostgresStore {
    async fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let conn = self.pool.get().await?;
        let row = conn
            .client
            .query_opt(
                "SELECT value FROM slipway_entries WHERE tbl = $1 AND key = $2",
                &[&table.name(), &key],
            )
            .await
            .map_err(io)?;
        conn.done();
        Ok(row.map(|r| r.get(0)))
    }

    async fn write(&self, batch: Batch) -> Result<(), StoreError> {
        let mut conn = self.pool.get().await?;
        let tx = conn.client.transaction().await.map_err(io)?;
        // A shared lock: batches commit side by side, while an epoch claim
        // (an exclusive lock) waits for those in flight and every later
        // batch reads the epoch it set.
        let current = tx
            .query_one(
                "SELECT value FROM slipway_meta WHERE name = $1 FOR SHARE",
                &[&EPOCH],
            )
            .await
            .map_err(io)?
            .get::<_, i64>(0) as u64;
        if batch.epoch < current {
            // Dropping the transaction rolls it back.
            return Err(StoreError::Fenced {
                epoch: batch.epoch,
                current,
            });
        }
        if batch.epoch > current {
            // An epoch this store never handed out (not one of its claims).
            tx.execute(
                "UPDATE slipway_meta SET value = GREATEST(value, $2) WHERE name = $1",
                &[&EPOCH, &(batch.epoch as i64)],
            )
            .await
            .map_err(io)?;
        }
        let (puts, deletes) = outcome(&batch.writes);
        if !puts.is_empty() {
            let (tables, keys, values): (Vec<&str>, Vec<&str>, Vec<&[u8]>) =
                puts.into_iter().collect();
            tx.execute(
                "INSERT INTO slipway_entries (tbl, key, value) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[]) \
                 ON CONFLICT (tbl, key) DO UPDATE SET value = EXCLUDED.value",
                &[&tables, &keys, &values],
            )
            .await
            .map_err(io)?;
        }
        if !deletes.is_empty() {
            let (tables, keys): (Vec<&str>, Vec<&str>) = deletes.into_iter().unzip();
            tx.execute(
                "DELETE FROM slipway_entries WHERE (tbl, key) IN \
                 (SELECT * FROM unnest($1::text[], $2::text[]))",
                &[&tables, &keys],
            )
            .await
            .map_err(io)?;
        }
        tx.commit().await.map_err(io)?;
        conn.done();
        Ok(())
    }

    async fn range(
        &self,
        table: Table,
        range: Range,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        // Bounds in SQL (so the (tbl, key) index is walked, never the table),
        // the prefix as [prefix, after_prefix) and the start on the side the
        // order walks from.
        let mut sql = String::from("SELECT key, value FROM slipway_entries WHERE tbl = $1");
        let mut params: Vec<String> = vec![table.name().to_string()];
        let mut bound = |sql: &mut String, op: &str, value: String| {
            params.push(value);
            sql.push_str(&format!(" AND key {op} ${}", params.len()));
        };
        if !range.prefix.is_empty() {
            bound(&mut sql, ">=", range.prefix.clone());
            if let Some(end) = after_prefix(&range.prefix) {
                bound(&mut sql, "<", end);
            }
        }
        if let Some(start) = &range.start {
            let op = if range.reverse { "<=" } else { ">=" };
            bound(&mut sql, op, start.clone());
        }
        sql.push_str(if range.reverse {
            " ORDER BY key DESC"
        } else {
            " ORDER BY key"
        });
        if let Some(limit) = range.limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
            .iter()
            .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let conn = self.pool.get().await?;
        let rows = conn.client.query(&sql, &refs).await.map_err(io)?;
        conn.done();
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn next_id(&self) -> Result<u64, StoreError> {
        self.bump(LAST_ID).await
    }

    async fn raise_ids(&self, above: u64) -> Result<(), StoreError> {
        let conn = self.pool.get().await?;
        conn.client
            .execute(
                "UPDATE slipway_meta SET value = GREATEST(value, $2) WHERE name = $1",
                &[&LAST_ID, &(above as i64)],
            )
            .await
            .map_err(io)?;
        conn.done();
        Ok(())
    }

    async fn claim_epoch(&self) -> Result<Epoch, StoreError> {
        self.bump(EPOCH).await
    }
}

#[async_trait]
impl Leases for PostgresStore {
    async fn take_lease(
        &self,
        holder: &str,
        address: &str,
        length: Duration,
    ) -> Result<Lease, StoreError> {
        let mut conn = self.pool.get().await?;
        let tx = conn.client.transaction().await.map_err(io)?;
        // The row lock orders every taker; the first ever creates the row.
        let current = tx
            .query_opt(
                "SELECT holder, address, epoch, \
                 GREATEST(0, EXTRACT(EPOCH FROM expires_at - now()) * 1000)::bigint \
                 FROM slipway_lease WHERE id = 1 FOR UPDATE",
                &[],
            )
            .await
            .map_err(io)?
            .map(|row| Lease {
                holder: row.get(0),
                address: row.get(1),
                epoch: row.get::<_, i64>(2) as Epoch,
                remaining: Duration::from_millis(row.get::<_, i64>(3) as u64),
            });
        if let Some(lease) = &current
            && lease.holder != holder
            && !lease.remaining.is_zero()
        {
            let lease = lease.clone();
            tx.commit().await.map_err(io)?;
            conn.done();
            return Ok(lease);
        }
        let epoch = match &current {
            // Renewed: the same epoch, so its batches keep landing.
            Some(lease) if lease.holder == holder => lease.epoch,
            // A change of hands fences off every batch of the one before.
            _ => tx
                .query_one(
                    "UPDATE slipway_meta SET value = value + 1 WHERE name = $1 RETURNING value",
                    &[&EPOCH],
                )
                .await
                .map_err(io)?
                .get::<_, i64>(0) as Epoch,
        };
        let millis = length.as_millis() as i64;
        tx.execute(
            "INSERT INTO slipway_lease (id, holder, address, epoch, expires_at) \
             VALUES (1, $1, $2, $3, now() + $4::bigint * interval '1 millisecond') \
             ON CONFLICT (id) DO UPDATE SET holder = EXCLUDED.holder, \
             address = EXCLUDED.address, epoch = EXCLUDED.epoch, \
             expires_at = EXCLUDED.expires_at",
            &[&holder, &address, &(epoch as i64), &millis],
        )
        .await
        .map_err(io)?;
        tx.commit().await.map_err(io)?;
        conn.done();
        Ok(Lease {
            holder: holder.to_string(),
            address: address.to_string(),
            epoch,
            remaining: length,
        })
    }

    async fn release_lease(&self, holder: &str) -> Result<(), StoreError> {
        let conn = self.pool.get().await?;
        conn.client
            .execute(
                "UPDATE slipway_lease SET expires_at = now() WHERE id = 1 AND holder = $1",
                &[&holder],
            )
            .await
            .map_err(io)?;
        conn.done();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_after_a_prefix_is_its_last_character_raised() {
        assert_eq!(after_prefix("d-").as_deref(), Some("d."));
        assert_eq!(after_prefix("a/b").as_deref(), Some("a/c"));
        assert_eq!(after_prefix("z\u{d7ff}").as_deref(), Some("z\u{e000}"));
        assert_eq!(after_prefix("a\u{10ffff}").as_deref(), Some("b"));
        assert_eq!(after_prefix("\u{10ffff}"), None);
    }

    #[test]
    fn an_address_is_shown_without_its_password() {
        let target = Target::parse(
            "postgres://slipway:hunter2@db.internal:6543/fleet?sslmode=disable",
            None,
        )
        .unwrap();
        assert_eq!(
            target.to_string(),
            "postgres://slipway@db.internal:6543/fleet"
        );
        assert!(!format!("{target:?}").contains("hunter2"));
        let err = Target::parse("postgres://slipway:hunter2@db:notaport/x", None)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("not a PostgreSQL address"), "{err}");
    }

    #[test]
    fn a_store_ca_that_is_not_pem_is_refused_by_name() {
        let err = Target::parse(
            "postgres://u@h/d?sslmode=require",
            Some("not a certificate"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("store CA file holds no certificate"), "{err}");
    }
}
