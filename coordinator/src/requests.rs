//! Retried requests: a caller (CI, typically) that lost an answer calls again
//! with the same request id, and gets the first answer rather than a second
//! deploy, release, promotion, rollback or cancel.
//!
//! The first answer is kept a day under (caller, action, request id): another
//! caller's id never finds it. Calls with the same key wait for each other,
//! so two at once act once. A refusal is not kept: a retry may succeed.
//!
//! The answer is stored after the action, in a batch of its own. An action
//! that makes a deployment (deploy, rollback) also claims the key in the
//! batch that stores the deployment: a coordinator killed between the two
//! writes then answers the retry with that deployment, never a second one.
//! Other actions run again in that window, making nothing twice: a release
//! registered again is the stored one, a promotion asks for a state, and a
//! second cancel is refused as already finished.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::OwnedMutexGuard;

use crate::clock::{Clock, Millis};
use crate::store::{Changes, Db, Record, StoreError, Table};

/// How long a first answer is given again.
pub const KEPT: Duration = Duration::from_secs(24 * 3600);
/// Longest request id accepted.
const MAX_ID: usize = 64;

/// A first answer, as the edge encoded it; or, until it is stored, the
/// deployment the action made (its claim, written with the deployment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Answered {
    key: String,
    at: Millis,
    answer: Vec<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deployment: Option<String>,
}

/// What a key was given before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Before {
    /// The answer itself.
    Answer(Vec<u8>),
    /// Only the deployment the action made: its answer was not stored.
    Deployment(String),
}

/// Claims `key` for deployment `id`, in the batch that stores it.
pub fn claim(
    changes: &mut Changes,
    key: &RequestKey,
    id: &str,
    at: Millis,
) -> Result<(), StoreError> {
    changes.put(&Answered {
        key: key.0.clone(),
        at,
        answer: Vec::new(),
        deployment: Some(id.to_string()),
    })?;
    Ok(())
}

impl Record for Answered {
    const TABLE: Table = Table::Requests;
    fn key(&self) -> String {
        self.key.clone()
    }
}

/// Whom a request id belongs to and what it asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestKey(String);

impl RequestKey {
    /// `id` checked: 1 to 64 letters, digits, `-`, `_` or `.`.
    pub fn new(caller: &str, action: &str, id: &str) -> Result<RequestKey, String> {
        let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if id.is_empty() || id.len() > MAX_ID || !id.chars().all(plain) {
            return Err(format!(
                "request id {id:?} is not one: 1 to {MAX_ID} letters, digits, '-', '_' or '.'"
            ));
        }
        Ok(RequestKey(format!("{caller}/{action}/{id}")))
    }
}

pub struct Requests {
    db: Db,
    clock: Arc<dyn Clock>,
    /// One lock per key in use, so calls with the same key act once.
    held: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for Requests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Requests")
    }
}

/// A key held: the call that holds it is the only one acting for it.
pub struct Held {
    key: RequestKey,
    _guard: OwnedMutexGuard<()>,
}

impl Requests {
    pub fn new(db: Db, clock: Arc<dyn Clock>) -> Requests {
        Requests {
            db,
            clock,
            held: Mutex::new(HashMap::new()),
        }
    }

    /// Waits until no other call holds `key`.
    pub async fn hold(&self, key: RequestKey) -> Held {
        let lock = {
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            // Locks nobody waits on any more go, so the map stays small.
            held.retain(|_, lock| Arc::strong_count(lock) > 1);
            held.entry(key.0.clone()).or_default().clone()
        };
        Held {
            _guard: lock.lock_owned().await,
            key,
        }
    }

    /// What `held`'s key was given within `KEPT`, if anything.
    pub async fn answered(&self, held: &Held) -> Result<Option<Before>, StoreError> {
        let since = self.clock.now() - KEPT.as_millis() as Millis;
        Ok(self
            .db
            .get::<Answered>(&held.key.0)
            .await?
            .filter(|a| a.at >= since)
            .map(|a| match a.deployment {
                Some(id) if a.answer.is_empty() => Before::Deployment(id),
                _ => Before::Answer(a.answer),
            }))
    }

    /// The key `held` holds.
    pub fn key<'a>(&self, held: &'a Held) -> &'a RequestKey {
        &held.key
    }

    /// Forgets the answers older than `KEPT`; how many.
    pub async fn forget_old(&self) -> Result<u64, StoreError> {
        let since = self.clock.now() - KEPT.as_millis() as Millis;
        let old: Vec<Answered> = self
            .db
            .all::<Answered>()
            .await?
            .into_iter()
            .filter(|a| a.at < since)
            .collect();
        let mut changes = crate::store::Changes::default();
        for answer in &old {
            changes.delete::<Answered>(&answer.key);
        }
        self.db.commit(changes).await?;
        Ok(old.len() as u64)
    }

    /// Keeps `answer` as the first one for `held`'s key.
    pub async fn remember(&self, held: &Held, answer: Vec<u8>) -> Result<(), StoreError> {
        self.db
            .put(&Answered {
                key: held.key.0.clone(),
                at: self.clock.now(),
                answer,
                deployment: None,
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[tokio::test]
    async fn a_first_answer_is_given_again_for_a_day_to_its_caller_only() {
        let clock = Arc::new(ManualClock::at(1_000));
        let requests = Requests::new(Db::memory(), clock.clone());
        let key = |caller: &str| RequestKey::new(caller, "deploy", "ci-1234").unwrap();
        let held = requests.hold(key("ci")).await;
        assert_eq!(requests.answered(&held).await.unwrap(), None);
        requests.remember(&held, b"d-7".to_vec()).await.unwrap();
        drop(held);
        let again = requests.hold(key("ci")).await;
        assert_eq!(
            requests.answered(&again).await.unwrap(),
            Some(Before::Answer(b"d-7".to_vec()))
        );
        drop(again);
        let other = requests.hold(key("alice")).await;
        assert_eq!(requests.answered(&other).await.unwrap(), None);
        drop(other);
        clock.advance(KEPT + Duration::from_secs(1));
        let late = requests.hold(key("ci")).await;
        assert_eq!(requests.answered(&late).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_second_call_with_the_key_waits_for_the_first() {
        let requests = Arc::new(Requests::new(Db::memory(), Arc::new(ManualClock::at(0))));
        let key = RequestKey::new("ci", "deploy", "x").unwrap();
        let first = requests.hold(key.clone()).await;
        let waiting = {
            let requests = requests.clone();
            tokio::spawn(async move {
                let held = requests.hold(key).await;
                requests.answered(&held).await.unwrap()
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        requests.remember(&first, b"first".to_vec()).await.unwrap();
        drop(first);
        assert_eq!(
            waiting.await.unwrap(),
            Some(Before::Answer(b"first".to_vec()))
        );
    }

    #[test]
    fn request_ids_are_plain_and_short() {
        assert!(RequestKey::new("ci", "deploy", "gh-run-42.3_a").is_ok());
        for bad in ["", "a b", "../x", &"x".repeat(65)] {
            let err = RequestKey::new("ci", "deploy", bad).unwrap_err();
            assert!(err.contains("request id"), "{err}");
        }
    }
}
