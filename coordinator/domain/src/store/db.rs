//! Typed tables over an engine: each record type names its table and key.

use std::sync::Arc;

use serde::{Serialize, de::DeserializeOwned};

use super::{Batch, Epoch, Range, Store, StoreError, Table, Write};

/// A value kept in a table of its own, under a key it derives from itself.
pub trait Record: Serialize + DeserializeOwned + Send + Sync {
    const TABLE: Table;
    fn key(&self) -> String;
}

/// The coordinator's typed view of its store. Every write carries the epoch
/// this handle was opened with.
#[derive(Clone)]
pub struct Db {
    store: Arc<dyn Store>,
    epoch: Epoch,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Db(epoch {})", self.epoch)
    }
}

impl Db {
    /// Opens the store as its newest writer: it claims a new epoch.
    pub async fn open(store: Arc<dyn Store>) -> Result<Db, StoreError> {
        let epoch = store.claim_epoch().await?;
        Ok(Db { store, epoch })
    }

    /// A handle that writes with `epoch` (a lease's, or an old one in tests of fencing).
    pub fn with_epoch(store: Arc<dyn Store>, epoch: Epoch) -> Db {
        Db { store, epoch }
    }

    /// An in-memory store, for tests above the store.
    pub fn memory() -> Db {
        Db {
            store: Arc::new(super::MemoryStore::default()),
            epoch: 1,
        }
    }

    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    pub async fn get<T: Record>(&self, key: &str) -> Result<Option<T>, StoreError> {
        match self.store.get(T::TABLE, key).await? {
            None => Ok(None),
            Some(bytes) => decode(T::TABLE, key, &bytes).map(Some),
        }
    }

    /// Every record of the table, in key order.
    pub async fn all<T: Record>(&self) -> Result<Vec<T>, StoreError> {
        self.range(Range::all()).await
    }

    pub async fn range<T: Record>(&self, range: Range) -> Result<Vec<T>, StoreError> {
        self.store
            .range(T::TABLE, range)
            .await?
            .into_iter()
            .map(|(key, bytes)| decode(T::TABLE, &key, &bytes))
            .collect()
    }

    /// Stores one record, durably.
    pub async fn put<T: Record>(&self, record: &T) -> Result<(), StoreError> {
        let mut changes = Changes::default();
        changes.put(record)?;
        self.commit(changes).await
    }

    /// Stores every change together, or none of them.
    pub async fn commit(&self, changes: Changes) -> Result<(), StoreError> {
        if changes.writes.is_empty() {
            return Ok(());
        }
        self.store
            .write(Batch {
                epoch: self.epoch,
                writes: changes.writes,
            })
            .await
    }

    /// A number never handed out before, increasing.
    pub async fn next_id(&self) -> Result<u64, StoreError> {
        self.store.next_id().await
    }
}

/// Changes to commit together (`Db::commit`).
#[derive(Debug, Default)]
pub struct Changes {
    writes: Vec<Write>,
}

impl Changes {
    pub fn put<T: Record>(&mut self, record: &T) -> Result<&mut Self, StoreError> {
        let value = serde_json::to_vec(record).map_err(|e| StoreError::Io(e.to_string()))?;
        self.writes.push(Write::Put {
            table: T::TABLE,
            key: record.key(),
            value,
        });
        Ok(self)
    }

    pub fn delete<T: Record>(&mut self, key: &str) -> &mut Self {
        self.writes.push(Write::Delete {
            table: T::TABLE,
            key: key.to_string(),
        });
        self
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }
}

fn decode<T: DeserializeOwned>(table: Table, key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        table: table.name(),
        key: key.to_string(),
        message: e.to_string(),
    })
}
