//! The store behind a gate: every write passes it shared, a snapshot alone.
//! So a backup reads every table between two batches, never inside one,
//! while reads go on and writes wait only for the time of the copy.

use std::sync::Arc;

use async_trait::async_trait;

use slipway_domain::store::{Batch, Epoch, MemoryStore, Range, Store, StoreError, Table};

#[derive(Debug)]
pub struct Gated {
    inner: Arc<dyn Store>,
    gate: tokio::sync::RwLock<()>,
}

impl Gated {
    pub fn new(inner: Arc<dyn Store>) -> Gated {
        Gated {
            inner,
            gate: tokio::sync::RwLock::new(()),
        }
    }

    /// Every entry as of one moment, in memory, with the id counter.
    pub async fn snapshot(&self) -> Result<MemoryStore, StoreError> {
        let _alone = self.gate.write().await;
        let copy = MemoryStore::default();
        super::copy(self.inner.as_ref(), &copy, "the snapshot").await?;
        Ok(copy)
    }
}

#[async_trait]
impl Store for Gated {
    async fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(table, key).await
    }

    async fn write(&self, batch: Batch) -> Result<(), StoreError> {
        let _shared = self.gate.read().await;
        self.inner.write(batch).await
    }

    async fn range(
        &self,
        table: Table,
        range: Range,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.inner.range(table, range).await
    }

    async fn next_id(&self) -> Result<u64, StoreError> {
        let _shared = self.gate.read().await;
        self.inner.next_id().await
    }

    async fn raise_ids(&self, above: u64) -> Result<(), StoreError> {
        let _shared = self.gate.read().await;
        self.inner.raise_ids(above).await
    }

    async fn claim_epoch(&self) -> Result<Epoch, StoreError> {
        let _shared = self.gate.read().await;
        self.inner.claim_epoch().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_domain::store::Write;

    #[tokio::test]
    async fn a_snapshot_holds_every_entry_and_ids_go_on_above_it() {
        let gated = Gated::new(Arc::new(MemoryStore::default()));
        let epoch = gated.claim_epoch().await.unwrap();
        let put = |key: &str| Write::Put {
            table: Table::Deployments,
            key: key.into(),
            value: b"{}".to_vec(),
        };
        gated
            .write(Batch {
                epoch,
                writes: vec![put("d-1"), put("d-2")],
            })
            .await
            .unwrap();
        let last = gated.next_id().await.unwrap();
        let snapshot = gated.snapshot().await.unwrap();
        let keys: Vec<String> = snapshot
            .range(Table::Deployments, Range::all())
            .await
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, ["d-1", "d-2"]);
        assert!(snapshot.next_id().await.unwrap() > last);
        // Writes go on after it.
        gated
            .write(Batch {
                epoch,
                writes: vec![put("d-3")],
            })
            .await
            .unwrap();
    }
}
