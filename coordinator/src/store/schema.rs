//! The PostgreSQL store's schema, versioned: each coordinator brings it up to
//! its own version at start, and refuses a store a newer coordinator upgraded
//! (which may hold what this build cannot read).

use tokio_postgres::Client;

use slipway_domain::store::StoreError;

use super::postgres::describe;

/// Any fixed number: the advisory lock coordinators take while upgrading, so
/// two starting together upgrade once.
const UPGRADE_LOCK: i64 = 0x5_1177_a7e5;

/// The steps from version N-1 to N, in order. Never edit a step that shipped:
/// add one.
const STEPS: &[&str] = &[
    // 1: every table's entries in one, ordered by byte; the writer epoch and
    // the id counter.
    "CREATE TABLE slipway_entries (
         tbl text NOT NULL,
         key text COLLATE \"C\" NOT NULL,
         value bytea NOT NULL,
         PRIMARY KEY (tbl, key)
     );
     CREATE TABLE slipway_meta (name text PRIMARY KEY, value bigint NOT NULL);
     INSERT INTO slipway_meta (name, value) VALUES ('epoch', 0), ('last_id', 0);",
    // 2: the leader lease of several coordinators: one row, timed by the
    // database's clock.
    "CREATE TABLE slipway_lease (
         id integer PRIMARY KEY CHECK (id = 1),
         holder text NOT NULL,
         address text NOT NULL,
         epoch bigint NOT NULL,
         expires_at timestamptz NOT NULL
     );",
];

/// The version this build writes.
pub const VERSION: i32 = STEPS.len() as i32;

/// Creates the schema, or upgrades it to `VERSION`; refuses a newer one.
pub async fn upgrade(client: &mut Client, shown: &str) -> Result<(), StoreError> {
    let failed = |e: tokio_postgres::Error| StoreError::Schema {
        path: shown.to_string(),
        message: format!("cannot create or upgrade the schema: {}", describe(&e)),
    };
    let tx = client.transaction().await.map_err(failed)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&UPGRADE_LOCK])
        .await
        .map_err(failed)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS slipway_schema (version integer NOT NULL)")
        .await
        .map_err(failed)?;
    let found: Option<i32> = tx
        .query_opt("SELECT max(version) FROM slipway_schema", &[])
        .await
        .map_err(failed)?
        .and_then(|row| row.get(0));
    let found = found.unwrap_or(0);
    if found > VERSION {
        return Err(StoreError::Schema {
            path: shown.to_string(),
            message: format!(
                "its schema is version {found}, newer than this coordinator's {VERSION}: \
                 run the coordinator release that upgraded it, or a newer one"
            ),
        });
    }
    for step in &STEPS[found as usize..] {
        tx.batch_execute(step).await.map_err(failed)?;
    }
    if found < VERSION {
        tx.execute("DELETE FROM slipway_schema", &[])
            .await
            .map_err(failed)?;
        tx.execute(
            "INSERT INTO slipway_schema (version) VALUES ($1)",
            &[&VERSION],
        )
        .await
        .map_err(failed)?;
        tracing::info!(
            store = shown,
            from = found,
            to = VERSION,
            "store schema upgraded"
        );
    }
    tx.commit().await.map_err(failed)
}
