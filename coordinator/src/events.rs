//! Events: every state change worth telling, numbered in the order it was
//! stored and written in the same batch as the change itself, so the log of
//! events and the state it describes never disagree, even after a kill -9.
//!
//! Watchers read the stored events from a sequence number, then live ones;
//! the live feed is a bounded broadcast, and a watcher that falls behind it
//! reads the store again from where it was, so none misses or repeats one.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::audit::About;
use crate::clock::{Clock, Millis};
use crate::store::{Changes, Db, Range, Record, StoreError, Table};

/// How many live events wait for slow watchers before those fall back to
/// reading the store.
const LIVE: usize = 1024;

/// Something that happened, as watchers and notifications see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// 1, 2, ...: the order events were stored in; no gaps.
    pub seq: u64,
    pub at: Millis,
    /// `deployment.PHASE` (`deployment.queued`, ..., `deployment.succeeded`,
    /// `deployment.rolled_back`), `deployment.cancel_requested`,
    /// `deployment.approved`, `deployment.rollback_requested`,
    /// `deployment.freeze_overridden`,
    /// `migration.finished`, `release.registered`, `release.checked`, `promotion.started`,
    /// `promotion.finished`, `fleet.applied`, `certificate.revoked`,
    /// `agent.lost`.
    pub kind: String,
    /// The project, environment, release and deployment it is about, as the
    /// audit log names them (stored flat, each field optional).
    #[serde(flatten)]
    pub about: About,
    /// Who asked for what this event follows from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub who: Option<String>,
    /// Why (a rollback's reason, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// One line a person reads: "hello v2 → prod1 rolled back: ...".
    pub summary: String,
    /// Where the release it is about came from, where recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<crate::release::Provenance>,
}

impl Record for Event {
    const TABLE: Table = Table::Events;
    fn key(&self) -> String {
        Event::key_of(self.seq)
    }
}

impl Event {
    /// Zero-padded, so keys sort as sequence numbers do.
    pub fn key_of(seq: u64) -> String {
        format!("{seq:020}")
    }

    /// An event of `kind` saying `summary`; `Events::commit` numbers and stamps it.
    pub fn new(kind: impl Into<String>, summary: impl Into<String>) -> Event {
        Event {
            seq: 0,
            at: 0,
            kind: kind.into(),
            about: About::default(),
            who: None,
            reason: None,
            summary: summary.into(),
            provenance: None,
        }
    }
}

pub struct Events {
    db: Db,
    clock: Arc<dyn Clock>,
    /// The newest sequence number stored (read from the store at first
    /// use); held across each commit, so events are stored in the order
    /// they are numbered and told in that order.
    last: tokio::sync::Mutex<Option<u64>>,
    live: broadcast::Sender<Arc<Event>>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Events")
    }
}

impl Events {
    pub fn new(db: Db, clock: Arc<dyn Clock>) -> Events {
        Events {
            db,
            clock,
            last: tokio::sync::Mutex::new(None),
            live: broadcast::channel(LIVE).0,
        }
    }

    async fn stored_last(&self) -> Result<u64, StoreError> {
        Ok(self
            .db
            .range::<Event>(Range::all().newest_first().limit(1))
            .await?
            .pop()
            .map_or(0, |e| e.seq))
    }

    /// Commits `changes` and `events` together, the events numbered in the
    /// order they are stored; then tells watchers.
    pub async fn commit(&self, mut changes: Changes, events: Vec<Event>) -> Result<(), StoreError> {
        if events.is_empty() {
            return self.db.commit(changes).await;
        }
        let mut last = self.last.lock().await;
        let first = match *last {
            Some(seq) => seq + 1,
            None => self.stored_last().await? + 1,
        };
        let at = self.clock.now();
        let numbered: Vec<Event> = events
            .into_iter()
            .zip(first..)
            .map(|(e, seq)| Event { seq, at, ..e })
            .collect();
        for event in &numbered {
            changes.put(event)?;
        }
        self.db.commit(changes).await?;
        *last = numbered.last().map(|e| e.seq);
        for event in numbered {
            // No watcher: nobody to tell.
            let _ = self.live.send(Arc::new(event));
        }
        Ok(())
    }

    /// The newest sequence number stored.
    pub async fn newest(&self) -> Result<u64, StoreError> {
        let mut last = self.last.lock().await;
        if last.is_none() {
            *last = Some(self.stored_last().await?);
        }
        Ok(last.unwrap_or_default())
    }

    /// Stores `events` alone.
    pub async fn tell(&self, events: Vec<Event>) -> Result<(), StoreError> {
        self.commit(Changes::default(), events).await
    }

    /// Stored events after `after`, oldest first, at most `limit`.
    pub async fn after(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.db
            .range::<Event>(
                Range::all()
                    .from(Event::key_of(after.saturating_add(1)))
                    .limit(limit),
            )
            .await
    }

    /// The event numbered `seq`, if there is one.
    pub async fn get(&self, seq: u64) -> Result<Option<Event>, StoreError> {
        self.db.get(&Event::key_of(seq)).await
    }

    /// Live events from now on. Subscribe before reading the store, so none
    /// falls between the two.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.live.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[tokio::test]
    async fn events_are_numbered_in_commit_order_from_where_the_store_left_off() {
        let db = Db::memory();
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::at(5));
        let events = Events::new(db.clone(), clock.clone());
        let mut live = events.subscribe();
        events
            .tell(vec![Event::new("a", "first"), Event::new("b", "second")])
            .await
            .unwrap();
        assert_eq!(live.recv().await.unwrap().seq, 1);
        assert_eq!(live.recv().await.unwrap().seq, 2);

        // Another process on the same store goes on from 3.
        let again = Events::new(db, clock);
        again.tell(vec![Event::new("c", "third")]).await.unwrap();
        let stored = again.after(1, 10).await.unwrap();
        let seqs: Vec<(u64, &str)> = stored.iter().map(|e| (e.seq, e.kind.as_str())).collect();
        assert_eq!(seqs, [(2, "b"), (3, "c")]);
        assert_eq!(stored[0].at, 5);
    }
}
