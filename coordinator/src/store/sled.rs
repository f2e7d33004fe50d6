//! The sled engine. sled fsyncs on its own only every 500 ms, so every `put`
//! flushes before it returns: the caller acknowledges only durable writes.

use std::path::Path;

use super::{Store, StoreError, Table};

#[derive(Debug)]
pub struct SledStore {
    db: ::sled::Db,
}

impl SledStore {
    pub fn open(path: &Path) -> Result<SledStore, StoreError> {
        let db = ::sled::open(path).map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(SledStore { db })
    }

    fn tree(&self, table: Table) -> Result<::sled::Tree, StoreError> {
        self.db.open_tree(table.name()).map_err(io)
    }
}

fn io(e: ::sled::Error) -> StoreError {
    StoreError::Io(e.to_string())
}

impl Store for SledStore {
    fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree(table)?.get(key).map_err(io)?.map(|v| v.to_vec()))
    }

    fn put(&self, table: Table, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let tree = self.tree(table)?;
        tree.insert(key, value).map_err(io)?;
        tree.flush().map_err(io)?;
        Ok(())
    }

    fn scan(&self, table: Table) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.tree(table)?
            .iter()
            .map(|entry| {
                let (k, v) = entry.map_err(io)?;
                Ok((String::from_utf8_lossy(&k).into_owned(), v.to_vec()))
            })
            .collect()
    }

    fn next_id(&self) -> Result<u64, StoreError> {
        // generate_id is monotonic across restarts; it persists its counter itself.
        let id = self.db.generate_id().map_err(io)?;
        self.db.flush().map_err(io)?;
        Ok(id + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sled_engine_passes_the_engine_suite() {
        let dir = std::env::temp_dir().join(format!("slipway-sled-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = SledStore::open(&dir).unwrap();
        super::super::check_engine(&store);
        drop(store);
        // sled's flusher thread lets go of the file lock a moment after drop.
        let started = std::time::Instant::now();
        let reopened = loop {
            match SledStore::open(&dir) {
                Ok(store) => break store,
                Err(e) if started.elapsed() < std::time::Duration::from_secs(5) => {
                    let _ = e;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("sled did not reopen: {e}"),
            }
        };
        assert_eq!(
            reopened.get(Table::Releases, "a").unwrap(),
            Some(b"3".to_vec())
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
