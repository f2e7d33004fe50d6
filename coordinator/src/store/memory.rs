//! An in-memory engine for unit tests of code above the store.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use super::{Store, StoreError, Table};

#[derive(Debug, Default)]
pub struct MemoryStore {
    tables: Mutex<HashMap<Table, BTreeMap<String, Vec<u8>>>>,
    ids: Mutex<u64>,
}

impl MemoryStore {
    fn tables(&self) -> std::sync::MutexGuard<'_, HashMap<Table, BTreeMap<String, Vec<u8>>>> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Store for MemoryStore {
    fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tables().get(&table).and_then(|t| t.get(key).cloned()))
    }

    fn put(&self, table: Table, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.tables()
            .entry(table)
            .or_default()
            .insert(key.to_string(), value.to_vec());
        Ok(())
    }

    fn scan(&self, table: Table) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Ok(self
            .tables()
            .get(&table)
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default())
    }

    fn next_id(&self) -> Result<u64, StoreError> {
        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        *ids += 1;
        Ok(*ids)
    }
}
