//! Revoked identities: certificates whose name is here are refused at the TLS
//! handshake and on every RPC, and an agent's open stream is closed at once.
//!
//! Revocation is by certificate name (an operator's name, an agent's instance
//! id), so every certificate ever issued to that name stops working together.

use std::collections::HashSet;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use crate::clock::{Millis, now_ms};
use crate::store::{Db, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub name: String,
    pub at: Millis,
    pub by: String,
}

#[derive(Debug)]
pub struct Revocations {
    db: Db,
    /// Checked on every handshake and RPC: kept in memory, written through.
    names: RwLock<HashSet<String>>,
}

impl Revocations {
    pub fn load(db: Db) -> Result<Revocations, StoreError> {
        let names = db.revocations()?.into_iter().map(|r| r.name).collect();
        Ok(Revocations {
            db,
            names: RwLock::new(names),
        })
    }

    /// Revokes `name`; durable when this returns.
    pub fn revoke(&self, name: &str, by: &str) -> Result<(), StoreError> {
        self.db.put_revocation(&Revocation {
            name: name.to_string(),
            at: now_ms(),
            by: by.to_string(),
        })?;
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
    use crate::store::MemoryStore;
    use std::sync::Arc;

    #[test]
    fn a_revocation_survives_a_reload() {
        let db = Db::new(Arc::new(MemoryStore::default()));
        let revocations = Revocations::load(db.clone()).unwrap();
        assert!(!revocations.is_revoked("bob"));
        revocations.revoke("bob", "admin").unwrap();
        assert!(revocations.is_revoked("bob"));
        assert!(Revocations::load(db).unwrap().is_revoked("bob"));
    }
}
