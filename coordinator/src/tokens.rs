//! One-time join tokens: how a freshly launched instance proves it is the one
//! Slipway launched, to get its first certificate.
//!
//! A token is made per launched slot, carried in the launch's user-data, and
//! bound to the instance id once the cloud returns it. Only its SHA-256 is
//! stored. It works once, for that instance only, before it expires.

use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::clock::{Clock, Millis, millis};
use crate::store::{Changes, Db, Range, Record, StoreError, Table};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinTokenRecord {
    /// SHA-256 of the token, hex: the token itself is never stored.
    pub hash: String,
    pub deployment_id: String,
    pub slot: u32,
    /// Set once the cloud has said which instance carries the token.
    pub instance_id: Option<String>,
    pub expires_at: Millis,
    pub used_at: Option<Millis>,
    /// SHA-256 of the key the token was redeemed for: the same agent, retrying
    /// with the same key because the answer was lost, gets its certificate again.
    #[serde(default)]
    pub key: Option<String>,
}

impl Record for JoinTokenRecord {
    const TABLE: Table = Table::Tokens;
    fn key(&self) -> String {
        self.hash.clone()
    }
}

/// A token made for a launch slot: binding a launch finds every token of its
/// slot (one per attempt) without reading the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct TokenSlot {
    deployment_id: String,
    slot: u32,
    hash: String,
}

impl Record for TokenSlot {
    const TABLE: Table = Table::TokenSlots;
    fn key(&self) -> String {
        format!(
            "{}/{}",
            slot_prefix(&self.deployment_id, self.slot),
            self.hash
        )
    }
}

impl TokenSlot {
    fn of(record: &JoinTokenRecord) -> TokenSlot {
        TokenSlot {
            deployment_id: record.deployment_id.clone(),
            slot: record.slot,
            hash: record.hash.clone(),
        }
    }

    /// Marks a store whose token slots cover every token (see `build_index`).
    fn built() -> TokenSlot {
        TokenSlot {
            deployment_id: "~built".into(),
            slot: 1,
            hash: String::new(),
        }
    }
}

fn slot_prefix(deployment_id: &str, slot: u32) -> String {
    format!("{deployment_id}/{slot:05}")
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("join token is unknown: the instance must use the token from its own launch")]
    Unknown,
    #[error("join token was already used at {0}: tokens work once; relaunch the instance")]
    Used(Millis),
    #[error("join token expired: relaunch the instance")]
    Expired,
    #[error("join token is not yet bound to an instance: retry in a moment")]
    NotYetBound,
    #[error("join token belongs to another instance than {0}")]
    WrongInstance(String),
    #[error("{0}")]
    BadCsr(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl crate::error::Coded for TokenError {
    fn code(&self) -> crate::error::Code {
        use crate::error::Code;
        match self {
            TokenError::Unknown | TokenError::Used(_) | TokenError::Expired => {
                Code::Unauthenticated
            }
            TokenError::WrongInstance(_) => Code::PermissionDenied,
            // The launch is being recorded: the agent retries.
            TokenError::NotYetBound => Code::Unavailable,
            TokenError::BadCsr(_) => Code::Invalid,
            TokenError::Store(e) => e.code(),
        }
    }
}

#[derive(Debug)]
pub struct JoinTokens {
    db: Db,
    clock: Arc<dyn Clock>,
    lifetime: Duration,
    /// Redeeming is check-then-write: one at a time, so a token cannot be used twice.
    redeem_lock: Mutex<()>,
}

impl JoinTokens {
    pub fn new(db: Db, clock: Arc<dyn Clock>, lifetime: Duration) -> Self {
        JoinTokens {
            db,
            clock,
            lifetime,
            redeem_lock: Mutex::new(()),
        }
    }

    /// Makes a token for one launch slot and stores its hash.
    pub async fn issue(&self, deployment_id: &str, slot: u32) -> Result<String, StoreError> {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let token = hex::encode(bytes);
        let record = JoinTokenRecord {
            hash: hash(&token),
            deployment_id: deployment_id.to_string(),
            slot,
            instance_id: None,
            expires_at: self.clock.now() + millis(self.lifetime),
            used_at: None,
            key: None,
        };
        let mut changes = Changes::default();
        changes.put(&record)?.put(&TokenSlot::of(&record))?;
        self.db.commit(changes).await?;
        Ok(token)
    }

    /// Adds to `changes` the binding of the tokens made for (deployment, slot)
    /// to the instance the cloud launched: every attempt's, since a launch
    /// retried after a crash returns the instance the first attempt made.
    pub async fn bind(
        &self,
        changes: &mut Changes,
        deployment_id: &str,
        slot: u32,
        instance_id: &str,
    ) -> Result<(), StoreError> {
        let made: Vec<TokenSlot> = self
            .db
            .range(Range::prefix(format!(
                "{}/",
                slot_prefix(deployment_id, slot)
            )))
            .await?;
        for made in made {
            if let Some(mut record) = self.db.get::<JoinTokenRecord>(&made.hash).await?
                && record.instance_id.is_none()
            {
                record.instance_id = Some(instance_id.to_string());
                changes.put(&record)?;
            }
        }
        Ok(())
    }

    /// Records the slot of every token of a store written before the slots
    /// were (one pass, once).
    pub async fn build_index(&self) -> Result<(), StoreError> {
        if self
            .db
            .get::<TokenSlot>(&TokenSlot::built().key())
            .await?
            .is_some()
        {
            return Ok(());
        }
        let all: Vec<JoinTokenRecord> = self.db.all().await?;
        for chunk in all.chunks(500) {
            let mut changes = Changes::default();
            for record in chunk {
                changes.put(&TokenSlot::of(record))?;
            }
            self.db.commit(changes).await?;
        }
        self.db.put(&TokenSlot::built()).await
    }

    /// Uses a token for `instance_id` and the key `key` (its SHA-256); it never
    /// works again, except for the same instance with the same key: a coordinator
    /// that died before its answer reached the agent must not strand it.
    pub async fn redeem(
        &self,
        token: &str,
        instance_id: &str,
        key: Result<String, String>,
    ) -> Result<JoinTokenRecord, TokenError> {
        let _one_at_a_time = self.redeem_lock.lock().await;
        let mut record = self
            .db
            .get::<JoinTokenRecord>(&hash(token))
            .await?
            .ok_or(TokenError::Unknown)?;
        let check_key = |key: Result<String, String>| key.map_err(TokenError::BadCsr);
        if let Some(at) = record.used_at {
            let key = check_key(key)?;
            let same_agent = record.instance_id.as_deref() == Some(instance_id)
                && record.key.as_deref() == Some(key.as_str());
            return if same_agent && self.clock.now() <= record.expires_at {
                Ok(record)
            } else {
                Err(TokenError::Used(at))
            };
        }
        let now = self.clock.now();
        if now > record.expires_at {
            return Err(TokenError::Expired);
        }
        match &record.instance_id {
            None => return Err(TokenError::NotYetBound),
            Some(bound) if bound != instance_id => {
                return Err(TokenError::WrongInstance(instance_id.to_string()));
            }
            Some(_) => {}
        }
        record.key = Some(check_key(key)?);
        record.used_at = Some(now);
        self.db.put(&record).await?;
        Ok(record)
    }
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::{MemoryStore, Range, Store};

    fn tokens(db: Db) -> (JoinTokens, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::at(1_000_000));
        let tokens = JoinTokens::new(db, clock.clone(), Duration::from_secs(60));
        (tokens, clock)
    }

    async fn bind(tokens: &JoinTokens, deployment: &str, slot: u32, instance: &str) {
        let mut changes = Changes::default();
        tokens
            .bind(&mut changes, deployment, slot, instance)
            .await
            .unwrap();
        tokens.db.commit(changes).await.unwrap();
    }

    #[tokio::test]
    async fn a_token_works_once_for_its_instance() {
        let (tokens, _) = tokens(Db::memory());
        let token = tokens.issue("d-1", 0).await.unwrap();
        assert!(matches!(
            tokens.redeem(&token, "i-1", Ok("key-1".into())).await,
            Err(TokenError::NotYetBound)
        ));
        bind(&tokens, "d-1", 0, "i-1").await;
        assert!(matches!(
            tokens.redeem(&token, "i-2", Ok("key-1".into())).await,
            Err(TokenError::WrongInstance(_))
        ));
        // A CSR that cannot be signed is refused without using the token up.
        assert!(matches!(
            tokens.redeem(&token, "i-1", Err("not a CSR".into())).await,
            Err(TokenError::BadCsr(_))
        ));
        let record = tokens
            .redeem(&token, "i-1", Ok("key-1".into()))
            .await
            .unwrap();
        assert_eq!(record.deployment_id, "d-1");
        // Another key (a replay by whoever read the token) is refused...
        assert!(matches!(
            tokens.redeem(&token, "i-1", Ok("key-2".into())).await,
            Err(TokenError::Used(_))
        ));
        // ...while the agent itself, retrying after a lost answer, is not stranded.
        let again = tokens
            .redeem(&token, "i-1", Ok("key-1".into()))
            .await
            .unwrap();
        assert_eq!(again.used_at, record.used_at);
    }

    #[tokio::test]
    async fn forged_and_expired_tokens_are_refused() {
        let (tokens, clock) = tokens(Db::memory());
        assert!(matches!(
            tokens.redeem("deadbeef", "i-1", Ok("key-1".into())).await,
            Err(TokenError::Unknown)
        ));
        let token = tokens.issue("d-1", 0).await.unwrap();
        bind(&tokens, "d-1", 0, "i-1").await;
        clock.advance(Duration::from_secs(60));
        let at_the_end = tokens.issue("d-1", 1).await.unwrap();
        bind(&tokens, "d-1", 1, "i-2").await;
        clock.advance(Duration::from_secs(60));
        assert!(
            tokens
                .redeem(&at_the_end, "i-2", Ok("key-2".into()))
                .await
                .is_ok(),
            "a token works up to its last millisecond"
        );
        clock.advance(Duration::from_millis(1));
        assert!(matches!(
            tokens.redeem(&token, "i-1", Ok("key-1".into())).await,
            Err(TokenError::Expired)
        ));
    }

    #[tokio::test]
    async fn only_the_hash_is_stored() {
        let store = Arc::new(MemoryStore::default());
        let (tokens, _) = tokens(Db::open(store.clone()).await.unwrap());
        let token = tokens.issue("d-1", 0).await.unwrap();
        let stored = store.range(Table::Tokens, Range::all()).await.unwrap();
        assert_eq!(stored.len(), 1);
        assert!(!String::from_utf8_lossy(&stored[0].1).contains(&token));
    }
}
