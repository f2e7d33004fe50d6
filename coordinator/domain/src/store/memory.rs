//! The in-memory engine, for tests of everything above the store. It can be
//! told to fail writes, as a full disk or a crash mid-step would.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use super::{Batch, Epoch, Gate, Range, Store, StoreError, Table, Write};

#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    tables: BTreeMap<Table, BTreeMap<String, Vec<u8>>>,
    ids: u64,
    epoch: Epoch,
    failing_writes: usize,
    held_gets: Vec<(Table, String, Arc<Gate>)>,
}

impl MemoryStore {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next read of `key` waits, once it has read, at the returned gate:
    /// what others write meanwhile, the reader does not see.
    pub fn hold_next_get(&self, table: Table, key: &str) -> Arc<Gate> {
        let gate = Arc::new(Gate::default());
        self.state()
            .held_gets
            .push((table, key.to_string(), gate.clone()));
        gate
    }

    /// The next `count` batches fail with an i/o error and change nothing.
    pub fn fail_next_writes(&self, count: usize) {
        self.state().failing_writes = count;
    }
}

/// The key bounds of `range`: from its prefix (or its start, going up) to
/// past its prefix (or its start, going down); None if none is in it.
fn bounds(range: &Range) -> Option<(Bound<String>, Bound<String>)> {
    let past_prefix = match range.prefix.is_empty() {
        true => Bound::Unbounded,
        false => Bound::Excluded(format!("{}\u{10FFFF}", range.prefix)),
    };
    let (lower, upper) = match (&range.start, range.reverse) {
        (Some(start), false) => (start.clone().max(range.prefix.clone()), past_prefix),
        (Some(start), true) => (range.prefix.clone(), Bound::Included(start.clone())),
        (None, _) => (range.prefix.clone(), past_prefix),
    };
    // BTreeMap::range panics on bounds that cross.
    let crossed = match &upper {
        Bound::Included(upper) => lower > *upper,
        Bound::Excluded(upper) => lower >= *upper,
        Bound::Unbounded => false,
    };
    (!crossed).then_some((Bound::Included(lower), upper))
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let (value, held) = {
            let mut state = self.state();
            let value = state.tables.get(&table).and_then(|t| t.get(key).cloned());
            let held = state
                .held_gets
                .iter()
                .position(|(t, k, _)| *t == table && k == key)
                .map(|i| state.held_gets.remove(i).2);
            (value, held)
        };
        if let Some(gate) = held {
            gate.pass().await;
        }
        Ok(value)
    }

    async fn write(&self, batch: Batch) -> Result<(), StoreError> {
        let mut state = self.state();
        if batch.epoch < state.epoch {
            return Err(StoreError::Fenced {
                epoch: batch.epoch,
                current: state.epoch,
            });
        }
        if state.failing_writes > 0 {
            state.failing_writes -= 1;
            return Err(StoreError::Io("injected write failure".into()));
        }
        state.epoch = batch.epoch;
        for write in batch.writes {
            match write {
                Write::Put { table, key, value } => {
                    state.tables.entry(table).or_default().insert(key, value);
                }
                Write::Delete { table, key } => {
                    if let Some(t) = state.tables.get_mut(&table) {
                        t.remove(&key);
                    }
                }
            }
        }
        Ok(())
    }

    async fn range(
        &self,
        table: Table,
        range: Range,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let state = self.state();
        let Some(entries) = state.tables.get(&table) else {
            return Ok(vec![]);
        };
        // Only the keys between the range's bounds are looked at, as a real
        // engine's ordered index would.
        let Some(bounds) = bounds(&range) else {
            return Ok(vec![]);
        };
        let within = entries.range::<String, _>(bounds);
        let matching = |(k, _): &(&String, &Vec<u8>)| range.contains(k);
        let limit = range.limit.unwrap_or(usize::MAX);
        let pairs = |(k, v): (&String, &Vec<u8>)| (k.clone(), v.clone());
        Ok(if range.reverse {
            within
                .rev()
                .filter(matching)
                .take(limit)
                .map(pairs)
                .collect()
        } else {
            within.filter(matching).take(limit).map(pairs).collect()
        })
    }

    async fn next_id(&self) -> Result<u64, StoreError> {
        let mut state = self.state();
        state.ids += 1;
        Ok(state.ids)
    }

    async fn raise_ids(&self, above: u64) -> Result<(), StoreError> {
        let mut state = self.state();
        state.ids = state.ids.max(above);
        Ok(())
    }

    async fn claim_epoch(&self) -> Result<Epoch, StoreError> {
        let mut state = self.state();
        state.epoch += 1;
        Ok(state.epoch)
    }
}
