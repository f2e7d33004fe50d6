//! `slipway-coordinator store copy`: every entry of one store into another,
//! empty one (the embedded sled store into PostgreSQL, when a team outgrows
//! one machine), with the id counter carried over so new ids never repeat old
//! ones. The source must be at rest: sled's lock refuses a running coordinator.

use std::collections::BTreeMap;

use slipway_domain::store::{Batch, Range, Store, StoreError, Table, Write};

/// Entries read, and written in one batch, at a time.
const PAGE: usize = 500;

/// What a copy moved: entries per table.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Copied {
    pub tables: BTreeMap<&'static str, usize>,
}

impl Copied {
    pub fn total(&self) -> usize {
        self.tables.values().sum()
    }
}

/// Copies `from` into `to`, which must hold nothing yet (a copy never merges
/// two histories).
pub async fn copy(from: &dyn Store, to: &dyn Store, shown_to: &str) -> Result<Copied, StoreError> {
    for table in Table::ALL {
        if !to.range(table, Range::all().limit(1)).await?.is_empty() {
            return Err(StoreError::Schema {
                path: shown_to.to_string(),
                message: format!(
                    "it already holds {} entries: copy into an empty database, never over another history",
                    table.name()
                ),
            });
        }
    }
    let epoch = to.claim_epoch().await?;
    let mut copied = Copied::default();
    for table in Table::ALL {
        let mut after: Option<String> = None;
        let mut count = 0;
        loop {
            let range = match &after {
                Some(key) => Range::all().from(key.clone()).limit(PAGE + 1),
                None => Range::all().limit(PAGE),
            };
            let page: Vec<_> = from
                .range(table, range)
                .await?
                .into_iter()
                // `from` is inclusive: the last page's last key comes again.
                .filter(|(key, _)| Some(key) != after.as_ref())
                .collect();
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            count += page.len();
            let writes = page
                .into_iter()
                .map(|(key, value)| Write::Put { table, key, value })
                .collect();
            to.write(Batch { epoch, writes }).await?;
        }
        copied.tables.insert(table.name(), count);
    }
    to.raise_ids(from.next_id().await?).await?;
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_domain::store::MemoryStore;

    #[tokio::test]
    async fn every_entry_is_copied_page_by_page_and_ids_go_on_above_the_source() {
        let from = MemoryStore::default();
        let epoch = from.claim_epoch().await.unwrap();
        let writes = (0..1234)
            .map(|i| Write::Put {
                table: Table::Audit,
                key: format!("{i:08}"),
                value: i.to_string().into_bytes(),
            })
            .chain([Write::Put {
                table: Table::Releases,
                key: "web/v1".into(),
                value: b"{}".to_vec(),
            }])
            .collect();
        from.write(Batch { epoch, writes }).await.unwrap();
        for _ in 0..41 {
            from.next_id().await.unwrap();
        }
        let to = MemoryStore::default();
        let copied = copy(&from, &to, "memory").await.unwrap();
        assert_eq!(copied.tables["audit"], 1234);
        assert_eq!(copied.tables["releases"], 1);
        assert_eq!(copied.total(), 1235);
        assert_eq!(
            to.range(Table::Audit, Range::all()).await.unwrap(),
            from.range(Table::Audit, Range::all()).await.unwrap()
        );
        assert!(to.next_id().await.unwrap() > 42, "no id handed out twice");

        let err = copy(&from, &to, "memory").await.unwrap_err().to_string();
        assert!(err.contains("already holds releases entries"), "{err}");
    }
}
