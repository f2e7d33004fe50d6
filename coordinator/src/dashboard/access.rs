//! Who may look at the dashboard: read-only tokens an admin mints with
//! `slipway dashboard url` and ends with `slipway dashboard revoke`. A wall
//! screen has no client certificate, so the token is its credential: the URL
//! carries it once, the page trades it for an HttpOnly cookie, and Prometheus
//! sends it as a bearer token.
//!
//! A token is `sdt_ID_SECRET`. The store keeps the id and the SHA-256 of the
//! secret, never the secret: a copy of the store opens no dashboard. Checks
//! run on every request and every few seconds on open event streams, from a
//! copy in memory written through.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::{Clock, Millis};
use crate::store::{Changes, Db, Record, StoreError, Table};

const PREFIX: &str = "sdt_";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DashboardToken {
    pub id: String,
    /// What it is for: a wall screen's name, "prometheus".
    pub name: String,
    /// Hex SHA-256 of the secret part.
    pub secret_sha256: String,
    pub created_by: String,
    pub created_at: Millis,
    pub revoked: bool,
}

impl Record for DashboardToken {
    const TABLE: Table = Table::DashboardTokens;
    fn key(&self) -> String {
        self.id.clone()
    }
}

/// The tokens, kept in memory and written through to the store.
#[derive(Debug)]
pub struct DashboardAccess {
    db: Db,
    clock: Arc<dyn Clock>,
    tokens: RwLock<BTreeMap<String, DashboardToken>>,
}

fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The id and secret of a presented token, if it has the token's form.
fn split(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hexish = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hexish(id, 12) && hexish(secret, 64)).then_some((id, secret))
}

impl DashboardAccess {
    pub async fn load(db: Db, clock: Arc<dyn Clock>) -> Result<DashboardAccess, StoreError> {
        let tokens = db
            .all::<DashboardToken>()
            .await?
            .into_iter()
            .map(|t| (t.id.clone(), t))
            .collect();
        Ok(DashboardAccess {
            db,
            clock,
            tokens: RwLock::new(tokens),
        })
    }

    /// Mints a token; the answer is the only place its secret appears.
    pub async fn mint(&self, name: &str, by: &str) -> Result<(DashboardToken, String), StoreError> {
        let mut bytes = [0u8; 38];
        rand::rng().fill_bytes(&mut bytes);
        let id = hex::encode(&bytes[..6]);
        let secret = hex::encode(&bytes[6..]);
        let token = DashboardToken {
            id: id.clone(),
            name: name.to_string(),
            secret_sha256: digest(&secret),
            created_by: by.to_string(),
            created_at: self.clock.now(),
            revoked: false,
        };
        let mut changes = Changes::default();
        changes.put(&token)?;
        self.db.commit(changes).await?;
        self.write().insert(id.clone(), token.clone());
        Ok((token, format!("{PREFIX}{id}_{secret}")))
    }

    /// The token a presented value names, if it is valid and not revoked.
    pub fn check(&self, presented: &str) -> Option<DashboardToken> {
        let (id, secret) = split(presented)?;
        let tokens = self.tokens.read().unwrap_or_else(|e| e.into_inner());
        let token = tokens.get(id)?;
        // Both sides are digests of equal length: comparing them leaks nothing
        // about the secret even if the comparison stops early.
        (!token.revoked && token.secret_sha256 == digest(secret)).then(|| token.clone())
    }

    /// Whether the token with `id` may still be used.
    pub fn is_valid(&self, id: &str) -> bool {
        self.tokens
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .is_some_and(|t| !t.revoked)
    }

    /// Every token, oldest first.
    pub fn list(&self) -> Vec<DashboardToken> {
        let mut all: Vec<DashboardToken> = self
            .tokens
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        all
    }

    /// Revokes the token `id`, or every token with `None`. Answers the ids
    /// revoked now; an unknown id is `Ok(None)`.
    pub async fn revoke(&self, id: Option<&str>) -> Result<Option<Vec<String>>, StoreError> {
        let chosen: Vec<DashboardToken> = {
            let tokens = self.tokens.read().unwrap_or_else(|e| e.into_inner());
            match id {
                Some(id) => match tokens.get(id) {
                    Some(t) => vec![t.clone()],
                    None => return Ok(None),
                },
                None => tokens.values().cloned().collect(),
            }
        };
        let mut changes = Changes::default();
        let mut ids = Vec::new();
        for mut token in chosen.into_iter().filter(|t| !t.revoked) {
            token.revoked = true;
            changes.put(&token)?;
            ids.push(token.id);
        }
        if ids.is_empty() {
            return Ok(Some(ids));
        }
        self.db.commit(changes).await?;
        let mut tokens = self.write();
        for id in &ids {
            if let Some(t) = tokens.get_mut(id) {
                t.revoked = true;
            }
        }
        Ok(Some(ids))
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, DashboardToken>> {
        self.tokens.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::MemoryStore;

    async fn access() -> DashboardAccess {
        let db = Db::open(Arc::new(MemoryStore::default())).await.unwrap();
        DashboardAccess::load(db, Arc::new(ManualClock::at(1_000)))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_minted_token_opens_until_revoked_and_its_secret_is_not_stored() {
        let access = access().await;
        let (token, secret) = access.mint("office-tv", "alice").await.unwrap();
        assert_eq!(access.check(&secret).map(|t| t.id), Some(token.id.clone()));
        assert!(!format!("{:?}", access.list()).contains(&secret[16..]));
        // A wrong secret, a wrong id, and garbage are all refused.
        let mut wrong = secret.clone();
        wrong.pop();
        wrong.push(if secret.ends_with('0') { '1' } else { '0' });
        assert!(access.check(&wrong).is_none());
        assert!(
            access
                .check(&secret.replacen(&token.id, "000000000000", 1))
                .is_none()
        );
        for garbage in ["", "sdt_", "sdt__", "Bearer x", &"a".repeat(5000)] {
            assert!(access.check(garbage).is_none(), "{garbage:?}");
        }
        assert_eq!(
            access.revoke(Some(&token.id)).await.unwrap(),
            Some(vec![token.id.clone()])
        );
        assert!(access.check(&secret).is_none());
        assert!(!access.is_valid(&token.id));
        // Revoking again revokes nothing new; an unknown id is named as such.
        assert_eq!(access.revoke(Some(&token.id)).await.unwrap(), Some(vec![]));
        assert_eq!(access.revoke(Some("ffffffffffff")).await.unwrap(), None);
    }

    #[tokio::test]
    async fn revocations_and_tokens_survive_a_reload() {
        let db = Db::open(Arc::new(MemoryStore::default())).await.unwrap();
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::at(1_000));
        let access = DashboardAccess::load(db.clone(), clock.clone())
            .await
            .unwrap();
        let (_, kept) = access.mint("tv", "alice").await.unwrap();
        let (gone, ended) = access.mint("old", "alice").await.unwrap();
        access.revoke(Some(&gone.id)).await.unwrap();
        let reloaded = DashboardAccess::load(db, clock).await.unwrap();
        assert!(reloaded.check(&kept).is_some());
        assert!(reloaded.check(&ended).is_none());
        assert_eq!(reloaded.revoke(None).await.unwrap().unwrap().len(), 1);
        assert!(reloaded.check(&kept).is_none());
    }
}
