//! Durable state: releases, deployments (and so the queue), join tokens, agents and
//! public records.
//!
//! `Store` is a narrow byte-level trait the coordinator owns, so the engine (sled
//! today) can be swapped without touching the rest; `Db` puts the domain types on
//! top. A write returns only once it is durable: acknowledged means flushed.

mod memory;
mod sled;

use std::sync::Arc;

use serde::{Serialize, de::DeserializeOwned};

pub use memory::MemoryStore;
pub use sled::SledStore;

use crate::agents::AgentRecord;
use crate::audit::AuditEntry;
use crate::deploy::Deployment;
use crate::promote::RecordState;
use crate::release::Release;
use crate::revocation::Revocation;
use crate::secrets::SealedSecret;
use crate::tokens::JoinTokenRecord;

#[derive(Debug, thiserror::Error)]
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
}

/// The tables the coordinator keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    Releases,
    Deployments,
    Tokens,
    Agents,
    Records,
    Audit,
    Secrets,
    Revocations,
}

impl Table {
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
        }
    }
}

/// A durable key-value engine.
pub trait Store: Send + Sync {
    fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Writes and flushes: when this returns Ok, the value survives a crash.
    fn put(&self, table: Table, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Every entry of a table, in key order.
    fn scan(&self, table: Table) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// A number never handed out before by this store, increasing.
    fn next_id(&self) -> Result<u64, StoreError>;
}

/// The coordinator's typed view of its store.
#[derive(Clone)]
pub struct Db {
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Db")
    }
}

impl Db {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Db { store }
    }

    fn get<T: DeserializeOwned>(&self, table: Table, key: &str) -> Result<Option<T>, StoreError> {
        match self.store.get(table, key)? {
            None => Ok(None),
            Some(bytes) => decode(table, key, &bytes).map(Some),
        }
    }

    fn put<T: Serialize>(&self, table: Table, key: &str, value: &T) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value).map_err(|e| StoreError::Io(e.to_string()))?;
        self.store.put(table, key, &bytes)
    }

    fn all<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<T>, StoreError> {
        self.store
            .scan(table)?
            .into_iter()
            .map(|(key, bytes)| decode(table, &key, &bytes))
            .collect()
    }

    pub fn put_release(&self, release: &Release) -> Result<(), StoreError> {
        self.put(
            Table::Releases,
            &release_key(&release.project, &release.version),
            release,
        )
    }

    pub fn release(&self, project: &str, version: &str) -> Result<Option<Release>, StoreError> {
        self.get(Table::Releases, &release_key(project, version))
    }

    pub fn releases(&self) -> Result<Vec<Release>, StoreError> {
        let mut releases: Vec<Release> = self.all(Table::Releases)?;
        releases.sort_by(|a, b| (&a.project, a.registered_at).cmp(&(&b.project, b.registered_at)));
        Ok(releases)
    }

    pub fn next_seq(&self) -> Result<u64, StoreError> {
        self.store.next_id()
    }

    pub fn put_deployment(&self, deployment: &Deployment) -> Result<(), StoreError> {
        self.put(Table::Deployments, &deployment.id, deployment)
    }

    pub fn deployment(&self, id: &str) -> Result<Option<Deployment>, StoreError> {
        self.get(Table::Deployments, id)
    }

    /// Every deployment, oldest first.
    pub fn deployments(&self) -> Result<Vec<Deployment>, StoreError> {
        let mut all: Vec<Deployment> = self.all(Table::Deployments)?;
        all.sort_by_key(|d| d.seq);
        Ok(all)
    }

    pub fn put_token(&self, token: &JoinTokenRecord) -> Result<(), StoreError> {
        self.put(Table::Tokens, &token.hash, token)
    }

    pub fn token(&self, hash: &str) -> Result<Option<JoinTokenRecord>, StoreError> {
        self.get(Table::Tokens, hash)
    }

    pub fn tokens(&self) -> Result<Vec<JoinTokenRecord>, StoreError> {
        self.all(Table::Tokens)
    }

    pub fn put_agent(&self, agent: &AgentRecord) -> Result<(), StoreError> {
        self.put(Table::Agents, &agent.instance_id, agent)
    }

    pub fn agent(&self, instance_id: &str) -> Result<Option<AgentRecord>, StoreError> {
        self.get(Table::Agents, instance_id)
    }

    pub fn agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        self.all(Table::Agents)
    }

    pub fn put_audit_entry(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        // Zero-padded, so key order is append order.
        self.put(Table::Audit, &format!("{:020}", entry.seq), entry)
    }

    /// The audit log in append order.
    pub fn audit_entries(&self) -> Result<Vec<AuditEntry>, StoreError> {
        self.all(Table::Audit)
    }

    pub fn put_revocation(&self, revocation: &Revocation) -> Result<(), StoreError> {
        self.put(Table::Revocations, &revocation.name, revocation)
    }

    pub fn revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        self.all(Table::Revocations)
    }

    pub fn put_secret(&self, secret: &SealedSecret) -> Result<(), StoreError> {
        self.put(
            Table::Secrets,
            &format!("{}/{}", secret.environment, secret.key),
            secret,
        )
    }

    pub fn secrets(&self) -> Result<Vec<SealedSecret>, StoreError> {
        self.all(Table::Secrets)
    }

    pub fn put_record(&self, record: &RecordState) -> Result<(), StoreError> {
        self.put(Table::Records, &record.project, record)
    }

    pub fn records(&self) -> Result<Vec<RecordState>, StoreError> {
        self.all(Table::Records)
    }

    pub fn record(&self, project: &str) -> Result<Option<RecordState>, StoreError> {
        self.get(Table::Records, project)
    }
}

fn release_key(project: &str, version: &str) -> String {
    format!("{project}/{version}")
}

fn decode<T: DeserializeOwned>(table: Table, key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        table: table.name(),
        key: key.to_string(),
        message: e.to_string(),
    })
}

/// One suite for every engine, so a new engine proves itself the same way.
#[cfg(test)]
pub(crate) fn check_engine(store: &dyn Store) {
    assert_eq!(store.get(Table::Releases, "a").unwrap(), None);
    store.put(Table::Releases, "b", b"2").unwrap();
    store.put(Table::Releases, "a", b"1").unwrap();
    store.put(Table::Agents, "a", b"other table").unwrap();
    assert_eq!(
        store.get(Table::Releases, "a").unwrap(),
        Some(b"1".to_vec())
    );
    store.put(Table::Releases, "a", b"3").unwrap();
    let scanned = store.scan(Table::Releases).unwrap();
    assert_eq!(
        scanned,
        vec![("a".into(), b"3".to_vec()), ("b".into(), b"2".to_vec())]
    );
    let first = store.next_id().unwrap();
    assert!(store.next_id().unwrap() > first);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_engine_passes_the_engine_suite() {
        check_engine(&MemoryStore::default());
    }

    #[test]
    fn an_unreadable_entry_names_its_table_and_key() {
        let store = Arc::new(MemoryStore::default());
        store.put(Table::Deployments, "d-1", b"{not json").unwrap();
        let err = Db::new(store).deployment("d-1").unwrap_err().to_string();
        assert!(
            err.starts_with("stored deployments entry \"d-1\" is unreadable"),
            "{err}"
        );
    }
}
