//! Audit entries that anyone can cause (a refused Bootstrap needs no
//! certificate; a revoked agent redials every few seconds) are written at most
//! once per key a window, and the next entry counts the ones left out: the
//! permanent log records that it happened and how often, not every attempt.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tracing::warn;

use crate::audit::AuditLog;

/// How long a key's later entries are counted instead of written.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Keys remembered before quiet ones are forgotten (their counts with them).
const MAX_KEYS: usize = 10_000;

#[derive(Debug, Clone)]
pub struct AuditThrottle {
    audit: Arc<AuditLog>,
    /// Per key: when it was last written, and the entries left out since.
    seen: Arc<Mutex<HashMap<String, (Instant, u32)>>>,
}

/// At most `limit` events per key a window (refused Bootstraps per address):
/// past it, the caller is turned away before any work is done.
#[derive(Debug, Clone)]
pub struct RateLimit {
    limit: u32,
    counts: Arc<Mutex<HashMap<String, (Instant, u32)>>>,
}

impl RateLimit {
    pub fn new(limit: u32) -> RateLimit {
        RateLimit {
            limit,
            counts: Arc::default(),
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, u32)>> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `key` used up its events in the current window.
    pub fn exhausted(&self, key: &str) -> bool {
        let now = Instant::now();
        self.counts().get(key).is_some_and(|(start, count)| {
            now.duration_since(*start) < WINDOW && *count >= self.limit
        })
    }

    /// Counts one event of `key`.
    pub fn count(&self, key: &str) {
        let now = Instant::now();
        let mut counts = self.counts();
        if counts.len() > MAX_KEYS {
            counts.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let entry = counts.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }
}

/// One audit entry, as `AuditLog::append` takes it.
pub use crate::audit::Fields as Entry;

impl AuditThrottle {
    pub fn new(audit: Arc<AuditLog>) -> AuditThrottle {
        AuditThrottle {
            audit,
            seen: Arc::default(),
        }
    }

    /// Appends `entry` unless `key` was written less than a window ago (then
    /// it is counted toward the next one).
    pub async fn append(&self, key: &str, entry: Entry<'_>) {
        let now = Instant::now();
        let left_out = {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if seen.len() > MAX_KEYS {
                seen.retain(|_, (at, _)| now.duration_since(*at) < WINDOW);
            }
            match seen.get_mut(key) {
                Some((at, count)) if now.duration_since(*at) < WINDOW => {
                    *count += 1;
                    return;
                }
                Some((at, count)) => {
                    *at = now;
                    std::mem::take(count)
                }
                None => {
                    seen.insert(key.to_string(), (now, 0));
                    0
                }
            }
        };
        let result = match left_out {
            0 => entry.result.to_string(),
            n => format!("{} ({n} more like it in the minute before)", entry.result),
        };
        if let Err(e) = self
            .audit
            .append(
                entry.who,
                entry.certificate,
                entry.action,
                entry.target,
                &result,
            )
            .await
        {
            warn!(error = %e, action = entry.action, "cannot write the audit log");
        }
    }
}
