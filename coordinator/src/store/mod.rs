//! Durable state: the domain's `Store` trait and typed tables, and the engines
//! the coordinator opens (sled embedded; PostgreSQL with the `postgres`
//! feature; the in-memory one for tests).

mod copy;
mod gated;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "postgres")]
mod schema;
mod sled;

pub use copy::{Copied, copy};
pub use gated::Gated;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresStore, Target};
#[cfg(feature = "postgres")]
pub use schema::VERSION as POSTGRES_SCHEMA_VERSION;
pub use sled::SledStore;
pub use slipway_domain::store::*;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::deploy::Deployment;

    #[tokio::test]
    async fn an_unreadable_entry_names_its_table_and_key() {
        let store = Arc::new(MemoryStore::default());
        let db = Db::open(store.clone()).await.unwrap();
        store
            .write(Batch {
                epoch: db.epoch(),
                writes: vec![Write::Put {
                    table: Table::Deployments,
                    key: "d-1".into(),
                    value: b"{not json".to_vec(),
                }],
            })
            .await
            .unwrap();
        let err = db.get::<Deployment>("d-1").await.unwrap_err().to_string();
        assert!(
            err.starts_with("stored deployments entry \"d-1\" is unreadable"),
            "{err}"
        );
    }
}
