//! Notifications: each `[notifications.NAME]` sink gets the events it asks
//! for, at least once and in order, and never holds up a deploy.
//!
//! The outbox is the events table itself, written in the same batch as each
//! change, plus a stored cursor per sink: the last event it has dealt with.
//! A task per sink delivers the next wanted event after its cursor, and moves
//! the cursor only once the receiver said 2xx (or the event was given up,
//! which is recorded and audited). A kill -9 at any moment leaves the cursor
//! before any event not yet acknowledged, so it is sent again: receivers
//! deduplicate by the delivery id (`SINK-SEQ`, the same on every attempt).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::audit::AuditLog;
use crate::clock::{Clock, Millis};
use crate::config::{Notification, SinkKind};
use crate::events::{Event, Events};
use crate::fleets::Fleets;
use crate::secrets::Secrets;
use crate::stopping::Stopping;
use crate::store::{Changes, Db, Range, Record, StoreError, Table};

/// Who the audit log names for a delivery given up.
pub const NOTIFIER: &str = "slipway (notifications)";
/// How long a receiver may take to answer one delivery.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long one attempt may take in all (an SMTP conversation is several
/// exchanges, each bounded by `TIMEOUT`).
const ATTEMPT: Duration = Duration::from_secs(30);
/// Retries wait twice as long each time, from this to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How often the sinks of the fleet in force are looked at (`fleet apply`
/// adds and removes them), and how long an idle sink sleeps.
const LOOK: Duration = Duration::from_secs(2);
/// Events read at a time.
const PAGE: usize = 256;

/// Where a sink is: its cursor and how its current event is going.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkState {
    pub name: String,
    /// The last event it has dealt with (delivered, not wanted, or given up).
    pub cursor: u64,
    pub delivered: u64,
    /// Failed attempts at the event after the cursor.
    pub attempts: u32,
    pub failing_since: Option<Millis>,
    pub last_error: Option<String>,
    pub last_attempt_at: Option<Millis>,
    /// The latest attempts, oldest first (at most `KEPT_ATTEMPTS`).
    #[serde(default)]
    pub recent: Vec<Attempt>,
}

/// One delivery attempt and how it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub seq: u64,
    pub at: Millis,
    /// None: delivered.
    pub error: Option<String>,
}

/// Attempts kept per sink, for `slipway notifications`.
pub const KEPT_ATTEMPTS: usize = 20;

impl Record for SinkState {
    const TABLE: Table = Table::Sinks;
    fn key(&self) -> String {
        self.name.clone()
    }
}

/// An event a sink never acknowledged within its `give_up_after`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Undelivered {
    pub sink: String,
    pub seq: u64,
    pub delivery: String,
    pub kind: String,
    pub attempts: u32,
    pub last_error: String,
    pub at: Millis,
}

impl Record for Undelivered {
    const TABLE: Table = Table::Undelivered;
    fn key(&self) -> String {
        format!("{}/{:020}", self.sink, self.seq)
    }
}

/// The delivery id of event `seq` to `sink`: the same on every attempt.
pub fn delivery_id(sink: &str, seq: u64) -> String {
    format!("{sink}-{seq}")
}

pub struct Notifier {
    pub db: Db,
    pub events: Arc<Events>,
    pub fleets: Arc<Fleets>,
    pub secrets: Arc<Secrets>,
    pub audit: Arc<AuditLog>,
    pub clock: Arc<dyn Clock>,
    pub stopping: Stopping,
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Notifier")
    }
}

impl Notifier {
    /// Each sink's state (those of the fleet in force), and the events given up.
    pub async fn states(&self) -> Result<(Vec<SinkState>, Vec<Undelivered>), StoreError> {
        let fleet = self.fleets.current().fleet;
        let states = self
            .db
            .all::<SinkState>()
            .await?
            .into_iter()
            .filter(|s| fleet.notifications.contains_key(&s.name))
            .collect();
        let given_up = self
            .db
            .range::<Undelivered>(Range::all().newest_first().limit(100))
            .await?;
        Ok((states, given_up))
    }

    /// The events after `state`'s cursor its sink wants: how many (counted
    /// up to `cap`), and the first `shown` of them, the next to go first.
    pub async fn pending(
        &self,
        state: &SinkState,
        cap: usize,
        shown: usize,
    ) -> Result<(usize, Vec<Event>), StoreError> {
        let fleet = self.fleets.current().fleet;
        let Some(sink) = fleet.notifications.get(&state.name) else {
            return Ok((0, vec![]));
        };
        let (mut count, mut first) = (0, Vec::new());
        let mut after = state.cursor;
        loop {
            let page = self.events.after(after, PAGE).await?;
            let Some(last) = page.last() else {
                return Ok((count, first));
            };
            after = last.seq;
            for event in page.iter().filter(|e| wanted(sink, e)) {
                count += 1;
                if first.len() < shown {
                    first.push(event.clone());
                }
            }
            if count >= cap {
                return Ok((cap, first));
            }
        }
    }
}

fn wanted(sink: &Notification, e: &Event) -> bool {
    sink.wants(
        &e.kind,
        e.about.project.as_deref(),
        e.about.environment.as_deref(),
    )
}

/// Starts the task that keeps one delivery task per sink of the fleet in force.
pub fn start(notifier: Arc<Notifier>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut running: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
        loop {
            let fleet = notifier.fleets.current().fleet;
            running.retain(|name, task| {
                let keep = fleet.notifications.contains_key(name) && !task.is_finished();
                if !keep {
                    task.abort();
                }
                keep
            });
            for name in fleet.notifications.keys() {
                if !running.contains_key(name) {
                    let task = tokio::spawn(deliver_all(notifier.clone(), name.clone()));
                    running.insert(name.clone(), task);
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(LOOK) => {}
                _ = notifier.stopping.asked() => {
                    for task in running.values() {
                        task.abort();
                    }
                    return;
                }
            }
        }
    })
}

/// Delivers `name`'s events, one at a time in order, for as long as the sink
/// is in the fleet and the coordinator runs.
async fn deliver_all(n: Arc<Notifier>, name: String) {
    let mut live = n.events.subscribe();
    let mut state = loop {
        match start_state(&n, &name).await {
            Ok(state) => break state,
            Err(e) => {
                warn!(sink = %name, error = %e, "cannot read the notification's state; retrying");
                tokio::time::sleep(LOOK).await;
            }
        }
    };
    loop {
        let Some(sink) = n.fleets.current().fleet.notifications.get(&name).cloned() else {
            return;
        };
        let next = match next_wanted(&n, &sink, &mut state).await {
            Ok(next) => next,
            Err(e) => {
                warn!(sink = %name, error = %e, "cannot read events; retrying");
                None
            }
        };
        let Some(event) = next else {
            // Nothing to send: until an event is told, or a while.
            tokio::select! {
                _ = live.recv() => {}
                _ = tokio::time::sleep(LOOK) => {}
            }
            continue;
        };
        let pause = attempt(&n, &name, &sink, &mut state, &event).await;
        if let Some(pause) = pause {
            tokio::time::sleep(pause).await;
        }
    }
}

/// The stored state of `name`, or a new one that starts after the newest
/// event: a sink added today is not sent the fleet's whole history.
async fn start_state(n: &Notifier, name: &str) -> Result<SinkState, StoreError> {
    if let Some(state) = n.db.get::<SinkState>(name).await? {
        return Ok(state);
    }
    let state = SinkState {
        name: name.to_string(),
        cursor: n.events.newest().await?,
        ..SinkState::default()
    };
    n.db.put(&state).await?;
    info!(sink = %name, after = state.cursor, "notification starts");
    Ok(state)
}

/// The next event after the cursor that `sink` wants; those it does not want
/// move the cursor past them.
async fn next_wanted(
    n: &Notifier,
    sink: &Notification,
    state: &mut SinkState,
) -> Result<Option<Event>, StoreError> {
    loop {
        let page = n.events.after(state.cursor, PAGE).await?;
        if let Some(event) = page.iter().find(|e| wanted(sink, e)) {
            state.cursor = event.seq - 1;
            return Ok(Some(event.clone()));
        }
        let Some(last) = page.last() else {
            return Ok(None);
        };
        state.cursor = last.seq;
        n.db.put(&*state).await?;
    }
}

/// One attempt at `event`; returns how long to wait before the next one.
async fn attempt(
    n: &Notifier,
    name: &str,
    sink: &Notification,
    state: &mut SinkState,
    event: &Event,
) -> Option<Duration> {
    let now = n.clock.now();
    let outcome = deliver(n, name, sink, event).await;
    state.last_attempt_at = Some(now);
    state.recent.push(Attempt {
        seq: event.seq,
        at: now,
        error: outcome.as_ref().err().cloned(),
    });
    let over = state.recent.len().saturating_sub(KEPT_ATTEMPTS);
    state.recent.drain(..over);
    let pause = match outcome {
        Ok(()) => {
            state.cursor = event.seq;
            state.delivered += 1;
            n.metrics.notifications_delivered.inc(&[name]);
            state.attempts = 0;
            state.failing_since = None;
            state.last_error = None;
            None
        }
        Err(why) => {
            state.attempts += 1;
            n.metrics.notification_attempts_failed.inc(&[name]);
            state.last_error = Some(why.clone());
            let since = *state.failing_since.get_or_insert(now);
            let overdue = now - since >= sink.give_up_after.as_millis() as Millis;
            warn!(sink = %name, seq = event.seq, attempts = state.attempts, error = %why, "notification not delivered");
            if overdue {
                give_up(n, name, state, event, &why).await;
                None
            } else {
                let backoff =
                    FIRST_BACKOFF.saturating_mul(1 << state.attempts.min(16).saturating_sub(1));
                Some(backoff.min(MAX_BACKOFF))
            }
        }
    };
    if let Err(e) = n.db.put(&*state).await {
        // The cursor is only behind: the event is sent again, as at least once allows.
        warn!(sink = %name, error = %e, "cannot store the notification's cursor");
    }
    pause
}

/// Records `event` as never delivered to `name`, audits it, and moves on.
async fn give_up(n: &Notifier, name: &str, state: &mut SinkState, event: &Event, why: &str) {
    n.metrics.notifications_given_up.inc(&[name]);
    let record = Undelivered {
        sink: name.to_string(),
        seq: event.seq,
        delivery: delivery_id(name, event.seq),
        kind: event.kind.clone(),
        attempts: state.attempts,
        last_error: why.to_string(),
        at: n.clock.now(),
    };
    let mut changes = Changes::default();
    state.cursor = event.seq;
    state.attempts = 0;
    state.failing_since = None;
    let stored = async {
        changes.put(&record)?.put(&*state)?;
        n.db.commit(changes).await
    };
    if let Err(e) = stored.await {
        warn!(sink = %name, error = %e, "cannot record a notification given up");
    }
    let target = format!("{name}: event {} ({})", event.seq, event.kind);
    let result = format!("given up after {} attempts: {why}", record.attempts);
    if let Err(e) = n
        .audit
        .append_about(
            NOTIFIER,
            "",
            "notification undelivered",
            &target,
            &result,
            &event.about,
        )
        .await
    {
        warn!(sink = %name, error = %e, "cannot audit a notification given up");
    }
}

/// Sends `event` to the sink once, within `ATTEMPT` whatever the receiver
/// does. Err: why not, for the sink's state.
async fn deliver(
    n: &Notifier,
    name: &str,
    sink: &Notification,
    event: &Event,
) -> Result<(), String> {
    tokio::time::timeout(ATTEMPT, deliver_once(n, name, sink, event))
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {}s", ATTEMPT.as_secs())))
}

async fn deliver_once(
    n: &Notifier,
    name: &str,
    sink: &Notification,
    event: &Event,
) -> Result<(), String> {
    let secrets = n
        .secrets
        .reveal_sink(name)
        .await
        .map_err(|e| format!("cannot read its secrets: {e}"))?;
    let secret = |key: &str| {
        secrets.get(key).cloned().ok_or_else(|| {
            format!("its secret {key} is not set: `slipway secret set {name} {key}`")
        })
    };
    let id = delivery_id(name, event.seq);
    if sink.kind == SinkKind::Email {
        let password = sink.password_secret.as_deref().map(secret).transpose()?;
        return tokio::select! {
            sent = crate::mail::send(sink, event, &id, password) => sent,
            _ = n.stopping.asked() => Err("the coordinator is stopping".into()),
        };
    }
    let url = match (&sink.url, &sink.url_secret) {
        (Some(url), _) => url.clone(),
        (None, Some(key)) => secret(key)?,
        (None, None) => return Err("it has no URL".into()),
    };
    let uri = slipway_common::webhook::check(&url)
        .map_err(|e| format!("its URL {}", e.replace(&url, "(the URL)")))?;
    let body = match sink.kind {
        SinkKind::Webhook => serde_json::json!({
            "delivery": id,
            "notification": name,
            "event": json(event),
        }),
        SinkKind::Slack | SinkKind::Email => serde_json::json!({ "text": slack_line(event) }),
    };
    let body = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
    let mut headers = vec![
        ("X-Slipway-Delivery".to_string(), id),
        ("X-Slipway-Event".to_string(), event.kind.clone()),
    ];
    if let Some(key) = &sink.signing_secret {
        let signature = sign(secret(key)?.as_bytes(), &body);
        headers.push(("X-Slipway-Signature".into(), format!("sha256={signature}")));
    }
    for (header, value) in &sink.headers {
        headers.push((header.clone(), value.clone()));
    }
    for (header, key) in &sink.secret_headers {
        headers.push((header.clone(), secret(key)?));
    }
    tokio::select! {
        sent = slipway_common::webhook::post(&uri, &headers, body, TIMEOUT) => sent,
        // A stop does not wait for a receiver: the cursor is still before it.
        _ = n.stopping.asked() => Err("the coordinator is stopping".into()),
    }
}

/// HMAC-SHA256 of `body` under `key`, hex.
pub fn sign(key: &[u8], body: &[u8]) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    hex::encode(aws_lc_rs::hmac::sign(&key, body).as_ref())
}

/// The event as webhooks get it: the fields `slipway events -o json` prints.
fn json(e: &Event) -> serde_json::Value {
    serde_json::json!({
        "seq": e.seq,
        "at": humantime::format_rfc3339_millis(
            std::time::UNIX_EPOCH + Duration::from_millis(e.at.max(0) as u64)
        ).to_string(),
        "at_ms": e.at,
        "kind": e.kind,
        "project": e.about.project,
        "environment": e.about.environment,
        "version": e.about.version,
        "deployment": e.about.deployment,
        "who": e.who,
        "reason": e.reason,
        "summary": e.summary,
        "provenance": e.provenance,
    })
}

/// One line a person reads in a chat channel.
fn slack_line(e: &Event) -> String {
    let said = match &e.who {
        Some(who) if !e.summary.contains(who.as_str()) => format!("{} (asked by {who})", e.summary),
        _ => e.summary.clone(),
    };
    // Stored text is text: `<!channel>` in a reason must not ping anyone.
    let mut line = slack_escape(&said);
    // Where it came from, linked as Slack writes links.
    if let Some(p) = &e.provenance {
        if let Some(commit) = &p.commit {
            line.push_str(&format!(
                " · commit {}",
                slack_escape(&commit[..commit.len().min(12)])
            ));
        }
        if let Some(build) = &p.build_url {
            line.push_str(&format!(" · <{}|build>", slack_escape(build)));
        }
    }
    line
}

/// Text as Slack's message format needs it: its three control characters escaped.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_slack_line_says_who_asked_once() {
        let mut e = Event::new(
            "deployment.rolled_back",
            "hello v2 → prod1 (d-7): rolled back: health check answered 500",
        );
        e.who = Some("ci-staging".into());
        assert_eq!(
            slack_line(&e),
            "hello v2 → prod1 (d-7): rolled back: health check answered 500 (asked by ci-staging)"
        );
        e.summary = "hello v1 → staging (d-1): queued (asked by ci-staging)".into();
        assert_eq!(slack_line(&e), e.summary);
        e.summary = "hello v1 → staging (d-1): rolled back: <!channel> & more".into();
        e.provenance = Some(crate::release::Provenance {
            commit: Some("3f2c1ab".into()),
            build_url: Some("https://ci/1?a=1&b=2".into()),
            ..Default::default()
        });
        assert_eq!(
            slack_line(&e),
            "hello v1 → staging (d-1): rolled back: &lt;!channel&gt; &amp; more (asked by ci-staging) · commit 3f2c1ab · <https://ci/1?a=1&amp;b=2|build>"
        );
    }
}
