//! The sled engine: one tree per table, and a `meta` tree with the writer
//! epoch, the id counter and the layout version. A batch is one sled transaction over every tree (the epoch check
//! included), flushed before it returns: sled fsyncs on its own only every
//! 500 ms, and the caller acknowledges only durable writes.

use std::path::Path;

use async_trait::async_trait;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use slipway_domain::store::{Batch, Epoch, Range, Store, StoreError, Table, Write};

const META: &str = "meta";
const EPOCH: &str = "epoch";
/// The last id `next_id` handed out.
const LAST_ID: &str = "last_id";
/// Which layout the store is in (`LAYOUT`); absent: layout 1.
const LAYOUT_KEY: &str = "layout";

/// One step of an upgrade: safe to run twice (a step killed halfway runs again).
type Step = fn(&SledStore) -> Result<(), StoreError>;

/// The steps from layout N-1 to N, in order, from 2: layout 1 is every store
/// written before the layout was numbered. Never edit a step that shipped:
/// add one.
const STEPS: &[Step] = &[
    // 2: the id counter of our own (`next_id`), set above every id sled's
    // generate_id handed out before it (it returns at least that many).
    |store| {
        let meta = store.meta();
        if meta.get(LAST_ID).map_err(io)?.is_none() {
            let above = store.db.generate_id().map_err(io)?;
            meta.insert(LAST_ID, &above.to_be_bytes()).map_err(io)?;
        }
        Ok(())
    },
];

/// The layout this build writes.
pub const LAYOUT: u64 = STEPS.len() as u64 + 1;

#[derive(Debug)]
pub struct SledStore {
    db: ::sled::Db,
    /// One tree per table, in `Table::ALL` order, then `meta`.
    trees: Vec<::sled::Tree>,
}

impl SledStore {
    pub fn open(path: &Path) -> Result<SledStore, StoreError> {
        let db = ::sled::open(path).map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let names = Table::ALL.iter().map(|t| t.name()).chain([META]);
        let trees = names
            .map(|name| db.open_tree(name).map_err(io))
            .collect::<Result<_, _>>()?;
        let store = SledStore { db, trees };
        store.upgrade(path)?;
        Ok(store)
    }

    /// Brings the store up to `LAYOUT`, step by step; refuses a newer one
    /// (it may hold what this build cannot read, and writing it would lose
    /// that).
    fn upgrade(&self, path: &Path) -> Result<(), StoreError> {
        let meta = self.meta();
        let found = match meta.get(LAYOUT_KEY).map_err(io)? {
            Some(bytes) => read_counter(Some(bytes)),
            None => 1,
        };
        if found > LAYOUT {
            return Err(StoreError::Schema {
                path: path.display().to_string(),
                message: format!(
                    "its layout is version {found}, newer than this coordinator's {LAYOUT}: \
                     run the coordinator release that upgraded it, or a newer one"
                ),
            });
        }
        if found == LAYOUT {
            return Ok(());
        }
        for (to, step) in (found + 1..).zip(&STEPS[found as usize - 1..]) {
            step(self)?;
            // Each step is stamped as it lands: one killed halfway resumes
            // from the step it was in (every step may run twice).
            meta.insert(LAYOUT_KEY, &to.to_be_bytes()).map_err(io)?;
            self.flush()?;
        }
        // A store created just now went through the steps too (they are
        // what a new store needs), but was not upgraded from anything.
        if self.db.was_recovered() {
            tracing::info!(
            store = %path.display(),
            from = found,
            to = LAYOUT,
            "store layout upgraded"
            );
        }
        Ok(())
    }

    fn tree(&self, table: Table) -> &::sled::Tree {
        &self.trees[index(table)]
    }

    fn meta(&self) -> &::sled::Tree {
        &self.trees[Table::ALL.len()]
    }

    /// Waits for the disk. On a multi-threaded runtime the wait is handed
    /// off the worker (`block_in_place`), so a slow fsync does not hold up
    /// the tasks queued behind it: agents' heartbeats, above all.
    fn flush(&self) -> Result<(), StoreError> {
        let flush = || self.db.flush().map(|_| ()).map_err(io);
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(flush),
            _ => flush(),
        }
    }
}

fn index(table: Table) -> usize {
    Table::ALL
        .iter()
        .position(|t| *t == table)
        .unwrap_or_default()
}

fn io(e: ::sled::Error) -> StoreError {
    StoreError::Io(e.to_string())
}

/// A big-endian u64 counter (the epoch, the last id); 0 when absent.
fn read_counter(bytes: Option<impl AsRef<[u8]>>) -> Epoch {
    bytes
        .and_then(|b| b.as_ref().try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

#[async_trait]
impl Store for SledStore {
    async fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree(table).get(key).map_err(io)?.map(|v| v.to_vec()))
    }

    async fn write(&self, batch: Batch) -> Result<(), StoreError> {
        let meta = Table::ALL.len();
        let result = self.trees.as_slice().transaction(|trees| {
            let current = read_counter(trees[meta].get(EPOCH)?);
            if batch.epoch < current {
                return Err(ConflictableTransactionError::Abort(StoreError::Fenced {
                    epoch: batch.epoch,
                    current,
                }));
            }
            if batch.epoch > current {
                trees[meta].insert(EPOCH, &batch.epoch.to_be_bytes())?;
            }
            for write in &batch.writes {
                match write {
                    Write::Put { table, key, value } => {
                        trees[index(*table)].insert(key.as_str(), value.as_slice())?;
                    }
                    Write::Delete { table, key } => {
                        trees[index(*table)].remove(key.as_str())?;
                    }
                }
            }
            Ok(())
        });
        match result {
            Ok(()) => self.flush(),
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(io(e)),
        }
    }

    async fn range(
        &self,
        table: Table,
        range: Range,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let tree = self.tree(table);
        let entries: Box<dyn Iterator<Item = _>> = match (&range.start, range.reverse) {
            (None, false) => Box::new(tree.scan_prefix(&range.prefix)),
            (None, true) => Box::new(tree.scan_prefix(&range.prefix).rev()),
            (Some(start), false) => Box::new(tree.range(start.as_str()..)),
            (Some(start), true) => Box::new(tree.range(..=start.as_str()).rev()),
        };
        let mut found = Vec::new();
        for entry in entries {
            let (key, value) = entry.map_err(io)?;
            let key = String::from_utf8_lossy(&key).into_owned();
            if !key.starts_with(&range.prefix) {
                // Ordered: past the prefix from the start key, nothing more matches.
                if range.start.is_some() && (range.reverse == (key < range.prefix)) {
                    break;
                }
                continue;
            }
            found.push((key, value.to_vec()));
            if range.limit.is_some_and(|limit| found.len() >= limit) {
                break;
            }
        }
        Ok(found)
    }

    async fn next_id(&self) -> Result<u64, StoreError> {
        // A counter of our own, flushed with each id, so ids stay dense across
        // restarts (sled's generate_id jumps by its persistence interval, a
        // million, at every restart: d-22, then d-2000001).
        let id = self
            .meta()
            .update_and_fetch(LAST_ID, |old| {
                Some((read_counter(old) + 1).to_be_bytes().to_vec())
            })
            .map_err(io)?;
        self.flush()?;
        Ok(read_counter(id))
    }

    async fn raise_ids(&self, above: u64) -> Result<(), StoreError> {
        self.meta()
            .update_and_fetch(LAST_ID, |old| {
                Some(read_counter(old).max(above).to_be_bytes().to_vec())
            })
            .map_err(io)?;
        self.flush()
    }

    async fn claim_epoch(&self) -> Result<Epoch, StoreError> {
        let claimed = self
            .meta()
            .update_and_fetch(EPOCH, |old| {
                Some((read_counter(old) + 1).to_be_bytes().to_vec())
            })
            .map_err(io)?;
        self.flush()?;
        Ok(read_counter(claimed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_sled_engine_passes_the_engine_suite_and_keeps_it_across_a_reopen() {
        let dir = std::env::temp_dir().join(format!("slipway-sled-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = SledStore::open(&dir).unwrap();
        slipway_domain::store::suite::check_engine(&store).await;
        let epoch = store.claim_epoch().await.unwrap();
        let id = store.next_id().await.unwrap();
        drop(store);
        let reopened = reopen(&dir).unwrap();
        assert_eq!(
            reopened.get(Table::Releases, "b").await.unwrap(),
            Some(b"6".to_vec())
        );
        assert!(
            reopened.claim_epoch().await.unwrap() > epoch,
            "epochs keep increasing across a reopen"
        );
        assert_eq!(
            reopened.next_id().await.unwrap(),
            id + 1,
            "ids stay dense across a reopen"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Opens `dir` again once sled's flusher thread let go of its file lock
    /// (a moment after the last handle was dropped).
    fn reopen(dir: &Path) -> Result<SledStore, StoreError> {
        let started = std::time::Instant::now();
        loop {
            match SledStore::open(dir) {
                Err(StoreError::Open { .. })
                    if started.elapsed() < std::time::Duration::from_secs(5) =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                opened => return opened,
            }
        }
    }

    /// A store as layout 1 left it: no layout number, no id counter, ids
    /// from sled's own generator.
    fn layout_1(dir: &Path, ids: usize) {
        let db = ::sled::open(dir).unwrap();
        for _ in 0..ids {
            db.generate_id().unwrap();
        }
        db.open_tree(Table::Deployments.name())
            .unwrap()
            .insert("d-1", b"{}".as_slice())
            .unwrap();
        db.flush().unwrap();
    }

    #[tokio::test]
    async fn a_layout_1_store_is_upgraded_once_and_its_new_ids_come_after_its_old_ones() {
        let dir = std::env::temp_dir().join(format!("slipway-sled-v1-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        layout_1(&dir, 3);
        let store = reopen(&dir).unwrap();
        assert_eq!(read_counter(store.meta().get(LAYOUT_KEY).unwrap()), LAYOUT);
        let first = store.next_id().await.unwrap();
        assert!(first > 3, "a new id ({first}) repeats an old one");
        assert_eq!(
            store.get(Table::Deployments, "d-1").await.unwrap(),
            Some(b"{}".to_vec())
        );
        drop(store);
        let again = reopen(&dir).unwrap();
        assert_eq!(again.next_id().await.unwrap(), first + 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_store_from_a_newer_layout_is_refused_naming_both_versions() {
        let dir = std::env::temp_dir().join(format!("slipway-sled-new-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let newer = LAYOUT + 1;
        {
            let db = ::sled::open(&dir).unwrap();
            let meta = db.open_tree(META).unwrap();
            meta.insert(LAYOUT_KEY, &newer.to_be_bytes()).unwrap();
            db.flush().unwrap();
        }
        let refused = reopen(&dir).unwrap_err().to_string();
        assert!(
            refused.contains(&format!(
                "version {newer}, newer than this coordinator's {LAYOUT}"
            )),
            "{refused}"
        );
        // Refusing wrote nothing: the store is still the newer layout.
        assert_eq!(reopen(&dir).unwrap_err().to_string(), refused);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
