//! Revoked identities: certificates whose name is here are refused at the TLS
//! handshake and on every RPC, and an agent's open stream is closed at once.
//!
//! Revocation is by certificate name (an operator's name, an agent's instance
//! id), so every certificate ever issued to that name stops working together.

use std::collections::HashSet;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use std::sync::Arc;

use crate::clock::{Clock, Millis};
use crate::events::{Event, Events};
use crate::store::{Changes, Db, Record, StoreError, Table};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub name: String,
    pub at: Millis,
    pub by: String,
}

impl Record for Revocation {
    const TABLE: Table = Table::Revocations;
    fn key(&self) -> String {
        self.name.clone()
    }
}

#[derive(Debug)]
pub struct Revocations {
    db: Db,
    clock: Arc<dyn Clock>,
    events: Arc<Events>,
    /// Checked on every handshake and RPC: kept in memory, written through.
    names: RwLock<HashSet<String>>,
}

async fn stored(db: &Db) -> Result<HashSet<String>, StoreError> {
    Ok(db
        .all::<Revocation>()
        .await?
        .into_iter()
        .map(|r| r.name)
        .collect())
}

impl Revocations {
    pub async fn load(
        db: Db,
        clock: Arc<dyn Clock>,
        events: Arc<Events>,
    ) -> Result<Revocations, StoreError> {
        let names = stored(&db).await?;
        Ok(Revocations {
            db,
            clock,
            events,
            names: RwLock::new(names),
        })
    }

    /// Reads the revocations again: how a standby learns of the leader's.
    pub async fn reload(&self) -> Result<(), StoreError> {
        let names = stored(&self.db).await?;
        *self.names.write().unwrap_or_else(|e| e.into_inner()) = names;
        Ok(())
    }

    /// Revokes `name`; durable when this returns.
    pub async fn revoke(&self, name: &str, by: &str) -> Result<(), StoreError> {
        let mut changes = Changes::default();
        changes.put(&Revocation {
            name: name.to_string(),
            at: self.clock.now(),
            by: by.to_string(),
        })?;
        let told = Event {
            who: Some(by.to_string()),
            ..Event::new(
                "certificate.revoked",
                format!("every certificate of {name} revoked by {by}"),
            )
        };
        self.events.commit(changes, vec![told]).await?;
        self.names
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string());
        Ok(())
    }

    pub fn is_revoked(&self, name: &str) -> bool {
        self.names
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;

    #[tokio::test]
    async fn a_revocation_survives_a_reload() {
        let db = Db::memory();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let events = Arc::new(Events::new(db.clone(), clock.clone()));
        let revocations = Revocations::load(db.clone(), clock.clone(), events.clone())
            .await
            .unwrap();
        assert!(!revocations.is_revoked("bob"));
        revocations.revoke("bob", "admin").await.unwrap();
        assert!(revocations.is_revoked("bob"));
        let reloaded = Revocations::load(db, clock, events.clone()).await.unwrap();
        assert!(reloaded.is_revoked("bob"));
        let told = events.after(0, 10).await.unwrap();
        assert_eq!(told[0].kind, "certificate.revoked");
        assert_eq!(told[0].who.as_deref(), Some("admin"));
    }
}
