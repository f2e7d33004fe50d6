//! `WatchEvents`: stored events from a sequence number, then live ones.
//!
//! Memory stays bounded whatever watchers do: each has a small queue, and one
//! that leaves it full for `SLOW` is cut off (it reconnects from its last
//! sequence). The live feed is a bounded broadcast; a watcher that falls
//! behind it reads the store again from where it was.

use std::sync::Arc;
use std::time::Duration;

use slipway_proto::v1 as pb;
use tokio::sync::{Semaphore, broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tracing::debug;

use crate::events::{Event, Events};
use crate::stopping::Stopping;

/// Events queued for one watcher before it counts as slow.
const QUEUE: usize = 64;
/// How long a full queue may stay full before the watcher is cut off.
const SLOW: Duration = Duration::from_secs(10);
/// Stored events read at a time.
const PAGE: usize = 256;
/// Watchers at once.
pub const MAX_WATCHERS: usize = 2048;

pub type EventStream = ReceiverStream<Result<pb::Event, Status>>;

/// Which events a watcher asked for.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub since_ms: i64,
    pub project: Option<String>,
    pub environment: Option<String>,
    pub deployment: Option<String>,
}

impl Filter {
    fn matches(&self, e: &Event) -> bool {
        let field = |want: &Option<String>, have: &Option<String>| {
            want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
        };
        e.at >= self.since_ms
            && field(&self.project, &e.about.project)
            && field(&self.environment, &e.about.environment)
            && field(&self.deployment, &e.about.deployment)
    }
}

/// Watchers share the feed; each holds a permit while it watches.
#[derive(Debug)]
pub struct Watchers {
    events: Arc<Events>,
    stopping: Stopping,
    permits: Arc<Semaphore>,
}

impl Watchers {
    pub fn new(events: Arc<Events>, stopping: Stopping) -> Watchers {
        Watchers {
            events,
            stopping,
            permits: Arc::new(Semaphore::new(MAX_WATCHERS)),
        }
    }

    /// Starts a watcher of the events after `after` (None: after the newest
    /// now); they come on the returned stream.
    pub fn watch(
        &self,
        after: Option<u64>,
        filter: Filter,
        follow: bool,
    ) -> Result<EventStream, Status> {
        let permit = self.permits.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "{MAX_WATCHERS} event watchers already: try again later"
            ))
        })?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let events = self.events.clone();
        let stopping = self.stopping.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let outcome = tokio::select! {
                outcome = feed(&events, &tx, after, &filter, follow) => outcome,
                _ = stopping.asked() => Err(Status::unavailable("the coordinator is stopping: reconnect from your last sequence")),
                _ = tx.closed() => Ok(()),
            };
            if let Err(status) = outcome {
                debug!(error = %status, "event watcher ended");
                // Best effort: a full queue is why some end.
                let _ = tx.try_send(Err(status));
            }
        });
        Ok(ReceiverStream::new(rx))
    }
}

type Sender = mpsc::Sender<Result<pb::Event, Status>>;

/// Sends stored events after `after`, then, with `follow`, live ones.
async fn feed(
    events: &Events,
    tx: &Sender,
    after: Option<u64>,
    filter: &Filter,
    follow: bool,
) -> Result<(), Status> {
    // Subscribed before the store is read, so no event falls between the two.
    let mut live = events.subscribe();
    let after = match after {
        Some(after) => after,
        None => events.newest().await.map_err(unreadable)?,
    };
    let mut last = catch_up(events, tx, after, filter).await?;
    if !follow {
        return Ok(());
    }
    loop {
        match live.recv().await {
            Ok(event) if event.seq <= last => {}
            Ok(event) if event.seq == last + 1 => {
                last = event.seq;
                send(tx, filter, &event).await?;
            }
            // A gap (it lagged before this one) or told it lagged: the store has them.
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                last = catch_up(events, tx, last, filter).await?;
            }
            Err(broadcast::error::RecvError::Closed) => return Ok(()),
        }
    }
}

/// Sends every stored event after `after`; returns the last one's sequence.
async fn catch_up(
    events: &Events,
    tx: &Sender,
    mut after: u64,
    filter: &Filter,
) -> Result<u64, Status> {
    loop {
        let page = events.after(after, PAGE).await.map_err(unreadable)?;
        let Some(newest) = page.last().map(|e| e.seq) else {
            return Ok(after);
        };
        for event in &page {
            send(tx, filter, event).await?;
        }
        after = newest;
    }
}

async fn send(tx: &Sender, filter: &Filter, event: &Event) -> Result<(), Status> {
    if !filter.matches(event) {
        return Ok(());
    }
    match tokio::time::timeout(SLOW, tx.send(Ok(wire(event)))).await {
        Ok(Ok(())) => Ok(()),
        // The watcher went away.
        Ok(Err(_)) => Err(Status::cancelled("the watcher went away")),
        Err(_) => Err(Status::resource_exhausted(format!(
            "too slow: {QUEUE} events unread for {}s; reconnect from the last sequence read",
            SLOW.as_secs()
        ))),
    }
}

fn unreadable(e: crate::store::StoreError) -> Status {
    Status::unavailable(format!("cannot read events: {e}"))
}

pub fn wire(e: &Event) -> pb::Event {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    pb::Event {
        seq: e.seq,
        at_ms: e.at,
        kind: e.kind.clone(),
        project: text(&e.about.project),
        environment: text(&e.about.environment),
        version: text(&e.about.version),
        deployment: text(&e.about.deployment),
        who: text(&e.who),
        reason: text(&e.reason),
        summary: e.summary.clone(),
        provenance: e.provenance.clone().and_then(super::convert::provenance),
    }
}
