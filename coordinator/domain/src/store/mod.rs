//! Durable state behind one narrow trait, so the engine (sled embedded, an
//! in-memory one for tests, PostgreSQL for several coordinators) can change
//! without touching the rest.
//!
//! - `Store`: the byte-level engine: point reads, ordered range reads, and
//!   batches of writes that commit together and carry the writer's epoch.
//! - `Db`: typed tables on top. A record type says which table it lives in and
//!   under which key (`Record`), in its own module: the store imports none of
//!   them.
//! - `MemoryStore`: the in-memory engine (with `Gate`s tests hold calls at);
//!   `suite`: the checks every engine passes.
//!
//! A write returns only once it is durable: acknowledged means flushed.

mod db;
mod gate;
mod lease;
mod memory;
pub mod suite;

use async_trait::async_trait;

pub use db::{Changes, Db, Record};
pub use gate::Gate;
pub use lease::{Lease, Leases};
pub use memory::MemoryStore;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("store at {path} cannot be opened: {message} (is another coordinator using it?)")]
    Open { path: String, message: String },
    #[error("store i/o failed: {0}")]
    Io(String),
    #[error("stored {table} entry {key:?} is unreadable: {message}")]
    Corrupt {
        table: &'static str,
        key: String,
        message: String,
    },
    /// The store's layout is one this build cannot use.
    #[error("store at {path} cannot be used: {message}")]
    Schema { path: String, message: String },
    /// A writer from an older epoch: another coordinator took over since.
    #[error(
        "this coordinator's writes (epoch {epoch}) were fenced off: another coordinator took over at epoch {current}"
    )]
    Fenced { epoch: Epoch, current: Epoch },
}

/// Which writer a batch comes from. Each coordinator that starts acting claims
/// a new, higher epoch; an engine refuses batches from an epoch older than the
/// newest it has accepted, so a coordinator that lost its lease cannot write.
pub type Epoch = u64;

/// The tables the coordinator keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    Releases,
    Deployments,
    Tokens,
    Agents,
    Records,
    Audit,
    Secrets,
    Revocations,
    /// Which deployment holds each data store's migration lock.
    MigrationLocks,
    /// Which release's migration ran on which data store, and where.
    Migrations,
    /// Every fleet file taken (at a start or by `fleet apply`), by generation.
    Fleets,
    /// What happened, by sequence number.
    Events,
    /// Each notification's cursor into the events, and how its delivery goes.
    Sinks,
    /// Events a notification gave up delivering.
    Undelivered,
    /// Read-only dashboard tokens (their hashes), by id.
    DashboardTokens,
    /// Check results (CI's unit, integration, ...) attached to releases.
    ReleaseChecks,
    /// Promotions waiting for an approval, by project.
    PromotionRequests,
    /// Deployments by target, by state and by outcome (`deploy::index`).
    DeploymentIndex,
    /// The join tokens made for each launch slot (their hashes), by deployment and slot.
    TokenSlots,
    /// The first answers to requests made with a request id, by caller, action and id.
    Requests,
    /// What retention compacted, in all.
    Retention,
    /// Where the leader's CA rotation stands (fingerprints only: the keys
    /// stay files), for standbys to follow.
    Ca,
}

impl Table {
    pub const ALL: [Table; 22] = [
        Table::Releases,
        Table::Deployments,
        Table::Tokens,
        Table::Agents,
        Table::Records,
        Table::Audit,
        Table::Secrets,
        Table::Revocations,
        Table::MigrationLocks,
        Table::Migrations,
        Table::Fleets,
        Table::Events,
        Table::Sinks,
        Table::Undelivered,
        Table::DashboardTokens,
        Table::ReleaseChecks,
        Table::PromotionRequests,
        Table::DeploymentIndex,
        Table::TokenSlots,
        Table::Requests,
        Table::Retention,
        Table::Ca,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Table::Releases => "releases",
            Table::Deployments => "deployments",
            Table::Tokens => "tokens",
            Table::Agents => "agents",
            Table::Records => "records",
            Table::Audit => "audit",
            Table::Secrets => "secrets",
            Table::Revocations => "revocations",
            Table::MigrationLocks => "migration_locks",
            Table::Migrations => "migrations",
            Table::Fleets => "fleets",
            Table::Events => "events",
            Table::Sinks => "sinks",
            Table::Undelivered => "undelivered",
            Table::DashboardTokens => "dashboard_tokens",
            Table::ReleaseChecks => "release_checks",
            Table::PromotionRequests => "promotion_requests",
            Table::DeploymentIndex => "deployment_index",
            Table::TokenSlots => "token_slots",
            Table::Requests => "requests",
            Table::Retention => "retention",
            Table::Ca => "ca",
        }
    }
}

/// One change in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    Put {
        table: Table,
        key: String,
        value: Vec<u8>,
    },
    Delete {
        table: Table,
        key: String,
    },
}

/// Writes that commit together, or not at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub epoch: Epoch,
    pub writes: Vec<Write>,
}

/// Which keys of a table a range read returns: those starting with `prefix`,
/// from `start` on (inclusive; in reverse order, from `start` down), in key
/// order, at most `limit`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Range {
    pub prefix: String,
    pub start: Option<String>,
    pub reverse: bool,
    pub limit: Option<usize>,
}

impl Range {
    /// Every key.
    pub fn all() -> Range {
        Range::default()
    }

    pub fn prefix(prefix: impl Into<String>) -> Range {
        Range {
            prefix: prefix.into(),
            ..Range::default()
        }
    }

    pub fn from(mut self, start: impl Into<String>) -> Range {
        self.start = Some(start.into());
        self
    }

    pub fn newest_first(mut self) -> Range {
        self.reverse = true;
        self
    }

    pub fn limit(mut self, limit: usize) -> Range {
        self.limit = Some(limit);
        self
    }

    /// Whether `key` is in the range, ignoring the limit.
    pub fn contains(&self, key: &str) -> bool {
        key.starts_with(&self.prefix)
            && self.start.as_deref().is_none_or(|start| {
                if self.reverse {
                    key <= start
                } else {
                    key >= start
                }
            })
    }
}

/// A durable, ordered key-value engine.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    async fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Commits every write of the batch, or none; when this returns Ok, they
    /// survive a crash. Refused with `Fenced` if a newer epoch has written.
    async fn write(&self, batch: Batch) -> Result<(), StoreError>;
    /// The entries of `range`, in key order (reversed if it asks).
    async fn range(&self, table: Table, range: Range)
    -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// A number never handed out before by this store, increasing.
    async fn next_id(&self) -> Result<u64, StoreError>;
    /// From now on `next_id` returns more than `above` (never lowers it): a
    /// copied store goes on from the ids its source handed out.
    async fn raise_ids(&self, above: u64) -> Result<(), StoreError>;
    /// Starts a new writer epoch, higher than any before, and returns it:
    /// batches of older epochs are refused from now on.
    async fn claim_epoch(&self) -> Result<Epoch, StoreError>;
}
