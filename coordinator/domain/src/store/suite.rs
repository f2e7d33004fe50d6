//! The checks every engine passes, so a new engine proves itself the same way
//! (`MemoryStore` here, sled and PostgreSQL in the coordinator). Call it from
//! the engine's own tests on an empty store.

// Test code shipped for engines' tests: a failure is a panic naming the check.
#![allow(clippy::expect_used)]

use super::{Batch, Range, Store, StoreError, Table, Write};

fn put(table: Table, key: &str, value: &str) -> Write {
    Write::Put {
        table,
        key: key.to_string(),
        value: value.as_bytes().to_vec(),
    }
}

fn keys(entries: Vec<(String, Vec<u8>)>) -> Vec<String> {
    entries.into_iter().map(|(k, _)| k).collect()
}

/// Panics, naming the check, at the first thing the engine gets wrong.
pub async fn check_engine(store: &dyn Store) {
    let epoch = store.claim_epoch().await.expect("claim an epoch");
    let batch = |writes| Batch { epoch, writes };
    let releases = Table::Releases;

    assert_eq!(store.get(releases, "a").await.expect("get"), None);
    store
        .write(batch(vec![
            put(releases, "b", "2"),
            put(releases, "a", "1"),
            put(releases, "a/x", "4"),
            put(releases, "c", "5"),
            put(Table::Agents, "a", "other table"),
        ]))
        .await
        .expect("a batch of puts");
    assert_eq!(
        store.get(releases, "a").await.expect("get"),
        Some(b"1".to_vec()),
        "a put is read back"
    );
    store
        .write(batch(vec![
            put(releases, "a", "3"),
            Write::Delete {
                table: releases,
                key: "c".into(),
            },
        ]))
        .await
        .expect("overwrite and delete");

    let all = store.range(releases, Range::all()).await.expect("range");
    assert_eq!(
        all,
        vec![
            ("a".into(), b"3".to_vec()),
            ("a/x".into(), b"4".to_vec()),
            ("b".into(), b"2".to_vec()),
        ],
        "all entries in key order, overwritten and deleted ones as they are now, other tables apart"
    );
    let range = |r| store.range(releases, r);
    assert_eq!(
        keys(range(Range::prefix("a")).await.expect("range")),
        ["a", "a/x"],
        "prefix"
    );
    assert_eq!(
        keys(range(Range::all().from("a/")).await.expect("range")),
        ["a/x", "b"],
        "from a start key, inclusive"
    );
    assert_eq!(
        keys(
            range(Range::all().newest_first().limit(2))
                .await
                .expect("range")
        ),
        ["b", "a/x"],
        "reversed, limited"
    );
    assert_eq!(
        keys(
            range(Range::all().from("a/x").newest_first())
                .await
                .expect("range")
        ),
        ["a/x", "a"],
        "reversed from a start key, inclusive"
    );
    assert_eq!(
        keys(range(Range::prefix("zz")).await.expect("range")),
        Vec::<String>::new(),
        "an empty range"
    );
    // What indexes ask: a prefix read newest first, from a start key in it.
    assert_eq!(
        keys(
            range(Range::prefix("a").newest_first().limit(1))
                .await
                .expect("range")
        ),
        ["a/x"],
        "the newest of a prefix, with keys after it in the table"
    );
    assert_eq!(
        keys(
            range(Range::prefix("a").from("a/w").newest_first())
                .await
                .expect("range")
        ),
        ["a"],
        "a prefix, newest first below a start key"
    );
    assert_eq!(
        keys(
            range(Range::prefix("b").from("a").newest_first())
                .await
                .expect("range")
        ),
        Vec::<String>::new(),
        "a start key below the prefix, going down: nothing"
    );
    assert_eq!(
        keys(range(Range::prefix("a/").from("0")).await.expect("range")),
        ["a/x"],
        "a start key below the prefix, going up: the whole prefix"
    );

    // Keys order by their bytes on every engine, whatever a database's
    // collation would say ("B" before "a", "é" after both).
    store
        .write(batch(vec![
            put(Table::Events, "é", "3"),
            put(Table::Events, "a", "2"),
            put(Table::Events, "B", "1"),
            // In one batch, the later write to a key wins.
            put(Table::Events, "twice", "first"),
            put(Table::Events, "twice", "second"),
            put(Table::Events, "gone", "put"),
            Write::Delete {
                table: Table::Events,
                key: "gone".into(),
            },
        ]))
        .await
        .expect("a batch writing one key twice");
    assert_eq!(
        keys(
            store
                .range(Table::Events, Range::all())
                .await
                .expect("range")
        ),
        vec!["B", "a", "twice", "é"],
        "byte order, and a put then delete in one batch leaves nothing"
    );
    assert_eq!(
        store.get(Table::Events, "twice").await.expect("get"),
        Some(b"second".to_vec()),
        "the later write in a batch wins"
    );

    let first = store.next_id().await.expect("next id");
    assert!(
        store.next_id().await.expect("next id") > first,
        "ids increase"
    );
    store.raise_ids(first + 1000).await.expect("raise ids");
    store.raise_ids(first).await.expect("a lower raise");
    assert_eq!(
        store.next_id().await.expect("next id"),
        first + 1001,
        "ids go on above a raise, and a lower one changes nothing"
    );

    let newer = store.claim_epoch().await.expect("claim a newer epoch");
    assert!(newer > epoch, "epochs increase");
    let stale = store.write(batch(vec![put(releases, "b", "stale")])).await;
    assert_eq!(
        stale,
        Err(StoreError::Fenced {
            epoch,
            current: newer
        }),
        "a batch from an older epoch is refused"
    );
    assert_eq!(
        store.get(releases, "b").await.expect("get"),
        Some(b"2".to_vec()),
        "a fenced batch changes nothing"
    );
    store
        .write(Batch {
            epoch: newer,
            writes: vec![put(releases, "b", "6")],
        })
        .await
        .expect("the newest epoch writes");
}

#[cfg(test)]
mod tests {
    use super::super::MemoryStore;
    use super::*;
    use crate::testing::block_on;

    #[test]
    fn the_memory_engine_passes_the_engine_suite() {
        block_on(check_engine(&MemoryStore::default()));
    }

    #[test]
    fn the_memory_engine_commits_a_failed_batch_not_at_all() {
        let store = MemoryStore::default();
        block_on(async {
            let epoch = store.claim_epoch().await.unwrap();
            store.fail_next_writes(1);
            let writes = vec![put(Table::Releases, "a", "1"), put(Table::Agents, "b", "2")];
            let failed = store.write(Batch { epoch, writes }).await;
            assert!(matches!(failed, Err(StoreError::Io(_))), "{failed:?}");
            assert_eq!(store.get(Table::Releases, "a").await.unwrap(), None);
            assert_eq!(store.get(Table::Agents, "b").await.unwrap(), None);
        });
    }
}
