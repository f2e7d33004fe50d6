//! The audit log: who did what, from which certificate, when, and how it ended.
//!
//! Append-only and hash-chained: each entry's hash covers its content and the
//! previous entry's hash, so editing, removing or reordering any stored entry
//! breaks the chain from there on, and `verify` names the first broken entry.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::clock::{Clock, Millis};
use crate::store::{Db, Range, Record, StoreError, Table};

/// The hash the first entry chains from.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    pub at: Millis,
    /// The certificate's name and role.
    pub who: String,
    /// `sha256:` of the client certificate the action came with.
    pub certificate: String,
    /// The RPC, e.g. `deploy`.
    pub action: String,
    /// What it acted on, e.g. `hello@v2 -> staging`.
    pub target: String,
    /// `ok`, or the error the caller got.
    pub result: String,
    /// What it acted on, field by field, for filters (entries written before
    /// these fields existed have none).
    #[serde(default, skip_serializing_if = "About::is_empty")]
    pub about: About,
    pub prev_hash: String,
    pub hash: String,
}

/// What an entry is about, as fields a script can filter on; each optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct About {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
}

impl About {
    pub fn is_empty(&self) -> bool {
        *self == About::default()
    }

    fn bounded(&self) -> About {
        let cut = |field: &Option<String>| field.as_deref().map(bounded);
        About {
            project: cut(&self.project),
            environment: cut(&self.environment),
            version: cut(&self.version),
            deployment: cut(&self.deployment),
        }
    }
}

impl Record for AuditEntry {
    const TABLE: Table = Table::Audit;
    /// Zero-padded, so key order is append order.
    fn key(&self) -> String {
        format!("{:020}", self.seq)
    }
}

impl AuditEntry {
    /// The entry that follows `last` (None: the first), hashed into the chain.
    pub fn after(
        last: Option<&AuditEntry>,
        at: Millis,
        fields: Fields<'_>,
        about: &About,
    ) -> AuditEntry {
        let mut entry = AuditEntry {
            seq: last.map_or(1, |e| e.seq + 1),
            at,
            who: bounded(fields.who),
            certificate: bounded(fields.certificate),
            action: bounded(fields.action),
            target: bounded(fields.target),
            result: bounded(fields.result),
            about: about.bounded(),
            prev_hash: last.map_or_else(|| GENESIS.to_string(), |e| e.hash.clone()),
            hash: String::new(),
        };
        entry.hash = entry.content_hash();
        entry
    }

    /// The hash of the entry's content: a JSON array of its fields, then
    /// (when present) `about` as an object with its keys in declaration order.
    /// Written out here rather than left to serde_json, whose key order
    /// depends on a feature (`preserve_order`) that another crate in the same
    /// build may turn on: a coordinator built alone would hash otherwise.
    fn content_hash(&self) -> String {
        self.hash_with(false)
    }

    /// `content_hash` with `about`'s keys sorted instead: how coordinators
    /// built without `preserve_order` (`cargo build -p slipway-coordinator`,
    /// the release before this one's was) hashed entries that have one.
    fn sorted_about_hash(&self) -> String {
        self.hash_with(true)
    }

    fn hash_with(&self, sorted: bool) -> String {
        let mut text = serde_json::json!([
            self.seq,
            self.at,
            self.who,
            self.certificate,
            self.action,
            self.target,
            self.result,
            self.prev_hash
        ])
        .to_string();
        // Covered when present; an entry from before `about` hashes as it did.
        if !self.about.is_empty() {
            let a = &self.about;
            let mut fields: Vec<(&str, &str)> = [
                ("project", &a.project),
                ("environment", &a.environment),
                ("version", &a.version),
                ("deployment", &a.deployment),
            ]
            .into_iter()
            .filter_map(|(key, value)| value.as_deref().map(|v| (key, v)))
            .collect();
            if sorted {
                fields.sort();
            }
            let members: Vec<String> = fields
                .iter()
                .map(|(key, value)| {
                    format!("{}:{}", serde_json::json!(key), serde_json::json!(value))
                })
                .collect();
            text.pop();
            text.push_str(&format!(",{{{}}}]", members.join(",")));
        }
        hex::encode(Sha256::digest(text.as_bytes()))
    }

    /// Whether `hash` is this entry's, in either form.
    fn hash_matches(&self) -> bool {
        self.hash == self.content_hash()
            || (!self.about.is_empty() && self.hash == self.sorted_about_hash())
    }
}

/// What a caller says in an entry (`AuditEntry::after`).
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    pub who: &'a str,
    pub certificate: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub result: &'a str,
}

/// The first entry that does not belong to an intact chain, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit entry {seq} is broken: {why}")]
pub struct BrokenChain {
    pub seq: u64,
    pub why: String,
}

/// A point of the chain kept outside the store (`slipway audit anchor`): the
/// entry count and the newest entry's hash then. A log rewritten up to there,
/// or cut below it, no longer matches it, even with every hash recomputed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub seq: u64,
    pub hash: String,
}

/// An intact chain: how many entries, and the newest one's hash (the genesis
/// hash for an empty log). Together, an anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub entries: u64,
    pub hash: String,
}

#[derive(Debug)]
pub struct AuditLog {
    db: Db,
    clock: Arc<dyn Clock>,
    /// Appends are read-last-then-write: one at a time keeps the chain linear.
    append_lock: Mutex<()>,
}

impl AuditLog {
    pub fn new(db: Db, clock: Arc<dyn Clock>) -> Self {
        AuditLog {
            db,
            clock,
            append_lock: Mutex::new(()),
        }
    }

    /// Appends an entry; it is durable when this returns.
    pub async fn append(
        &self,
        who: &str,
        certificate: &str,
        action: &str,
        target: &str,
        result: &str,
    ) -> Result<AuditEntry, StoreError> {
        self.append_about(who, certificate, action, target, result, &About::default())
            .await
    }

    /// `append`, with what the entry is about field by field.
    pub async fn append_about(
        &self,
        who: &str,
        certificate: &str,
        action: &str,
        target: &str,
        result: &str,
        about: &About,
    ) -> Result<AuditEntry, StoreError> {
        let _one_at_a_time = self.append_lock.lock().await;
        let last = self
            .db
            .range::<AuditEntry>(Range::all().newest_first().limit(1))
            .await?
            .pop();
        let entry = AuditEntry::after(
            last.as_ref(),
            self.clock.now(),
            Fields {
                who,
                certificate,
                action,
                target,
                result,
            },
            about,
        );
        self.db.put(&entry).await?;
        Ok(entry)
    }

    /// Entries at or after `since` (unix ms), oldest first.
    /// One page: entries after `after_seq` at or after `since` (unix ms), at
    /// most `limit`, oldest first; and whether more may follow.
    pub async fn page(
        &self,
        since: Millis,
        after_seq: u64,
        limit: usize,
    ) -> Result<(Vec<AuditEntry>, bool), StoreError> {
        let mut entries = Vec::new();
        let mut from = after_seq + 1;
        // Read in chunks the size of a page until it is full or the log ends.
        loop {
            let chunk: Vec<AuditEntry> = self
                .db
                .range(Range::all().from(format!("{from:020}")).limit(limit))
                .await?;
            let ended = chunk.len() < limit;
            if let Some(last) = chunk.last() {
                from = last.seq + 1;
            }
            entries.extend(chunk.into_iter().filter(|e| e.at >= since));
            if entries.len() >= limit {
                entries.truncate(limit);
                return Ok((entries, true));
            }
            if ended {
                return Ok((entries, false));
            }
        }
    }

    /// Checks the whole chain; returns how many entries it holds.
    pub async fn verify(
        &self,
        anchor: Option<&Anchor>,
    ) -> Result<Result<Head, BrokenChain>, StoreError> {
        let entries = self.db.all::<AuditEntry>().await?;
        Ok(check_chain(&entries).and_then(|count| {
            if let Some(anchor) = anchor {
                check_anchor(&entries, anchor)?;
            }
            Ok(Head {
                entries: count as u64,
                hash: entries
                    .last()
                    .map_or_else(|| GENESIS.to_string(), |e| e.hash.clone()),
            })
        }))
    }
}

/// Longest field an entry keeps, in characters. Fields come from callers
/// (a refused request's target, say): the permanent log must not grow at a
/// caller's will.
pub const MAX_FIELD: usize = 512;

/// `text` cut at `MAX_FIELD` characters, saying how long it was.
fn bounded(text: &str) -> String {
    let length = text.chars().count();
    if length <= MAX_FIELD {
        return text.to_string();
    }
    let kept: String = text.chars().take(MAX_FIELD).collect();
    format!("{kept}… ({length} characters)")
}

/// Checks an intact chain against an anchor kept elsewhere.
pub fn check_anchor(entries: &[AuditEntry], anchor: &Anchor) -> Result<(), BrokenChain> {
    if anchor.seq == 0 {
        return Ok(());
    }
    let Some(entry) = entries.get(anchor.seq as usize - 1) else {
        return Err(BrokenChain {
            seq: entries.len() as u64 + 1,
            why: format!(
                "missing: the anchor says the log had {} entries, it has {}: entries were dropped",
                anchor.seq,
                entries.len()
            ),
        });
    };
    if entry.hash != anchor.hash {
        return Err(BrokenChain {
            seq: anchor.seq,
            why: "it does not match the anchor: the log was rewritten up to here".into(),
        });
    }
    Ok(())
}

/// Checks that `entries` (in stored order) form one intact chain from the genesis.
pub fn check_chain(entries: &[AuditEntry]) -> Result<usize, BrokenChain> {
    let mut prev = GENESIS.to_string();
    for (i, entry) in entries.iter().enumerate() {
        let expected_seq = i as u64 + 1;
        let broken = |why: &str| BrokenChain {
            seq: entry.seq,
            why: why.to_string(),
        };
        if entry.seq != expected_seq {
            return Err(BrokenChain {
                seq: expected_seq,
                why: format!("missing; found entry {} in its place", entry.seq),
            });
        }
        if entry.prev_hash != prev {
            return Err(broken("it does not chain to the entry before it"));
        }
        if !entry.hash_matches() {
            return Err(broken(
                "its content does not match its hash (edited after it was written)",
            ));
        }
        prev = entry.hash.clone();
    }
    Ok(entries.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;

    #[test]
    fn an_entry_hashes_the_same_whatever_serde_json_features_the_build_has() {
        let about = About {
            project: Some("hello".into()),
            environment: Some("staging".into()),
            version: Some("v1".into()),
            deployment: Some("d-1".into()),
        };
        let fields = Fields {
            who: "admin (admin)",
            certificate: "sha256:ab",
            action: "deploy",
            target: "hello@v1 -> staging",
            result: "queued d-1",
        };
        let mut entry = AuditEntry::after(None, 1_000, fields, &about);
        // What every workspace build wrote so far (the CLI turns on
        // serde_json's preserve_order): the keys in declaration order.
        let written = format!(
            r#"[1,1000,"admin (admin)","sha256:ab","deploy","hello@v1 -> staging","queued d-1","{GENESIS}",{{"project":"hello","environment":"staging","version":"v1","deployment":"d-1"}}]"#
        );
        assert_eq!(entry.hash, hex::encode(Sha256::digest(written.as_bytes())));
        // A coordinator built alone sorted them; its entries verify too.
        let sorted = format!(
            r#"[1,1000,"admin (admin)","sha256:ab","deploy","hello@v1 -> staging","queued d-1","{GENESIS}",{{"deployment":"d-1","environment":"staging","project":"hello","version":"v1"}}]"#
        );
        entry.hash = hex::encode(Sha256::digest(sorted.as_bytes()));
        assert!(entry.hash_matches());
        // Either way, an edit shows.
        entry.result = "queued d-2".into();
        assert!(!entry.hash_matches());
    }

    async fn log_with(n: usize) -> (AuditLog, Db) {
        let db = Db::memory();
        let log = AuditLog::new(db.clone(), Arc::new(SystemClock));
        for i in 0..n {
            log.append(
                "admin (admin)",
                "sha256:ab",
                "deploy",
                &format!("hello@v{i} -> staging"),
                "ok",
            )
            .await
            .unwrap();
        }
        (log, db)
    }

    #[tokio::test]
    async fn an_intact_chain_verifies() {
        let (log, _) = log_with(3).await;
        assert_eq!(log.verify(None).await.unwrap().map(|h| h.entries), Ok(3));
        assert_eq!(log.page(0, 0, 10).await.unwrap().0[0].prev_hash, GENESIS);
    }

    #[tokio::test]
    async fn pages_cover_the_log_once_in_order() {
        let (log, _) = log_with(7).await;
        let mut seen = Vec::new();
        let mut after = 0;
        loop {
            let (page, more) = log.page(0, after, 3).await.unwrap();
            assert!(page.len() <= 3);
            seen.extend(page.iter().map(|e| e.seq));
            match (more, page.last()) {
                (true, Some(last)) => after = last.seq,
                _ => break,
            }
        }
        assert_eq!(seen, (1..=7).collect::<Vec<_>>());
        let (none, more) = log.page(i64::MAX, 0, 3).await.unwrap();
        assert!(none.is_empty() && !more, "a time after every entry");
    }

    #[tokio::test]
    async fn an_edited_entry_is_named() {
        let (log, db) = log_with(4).await;
        let mut entries = db.all::<AuditEntry>().await.unwrap();
        entries[1].target = "hello@evil -> prod1".into();
        db.put(&entries[1]).await.unwrap();
        let broken = log.verify(None).await.unwrap().unwrap_err();
        assert_eq!(broken.seq, 2);
        assert!(broken.why.contains("edited"), "{broken}");
    }

    #[tokio::test]
    async fn a_rehashed_edit_still_breaks_the_next_link() {
        let (log, db) = log_with(3).await;
        let mut entries = db.all::<AuditEntry>().await.unwrap();
        entries[0].result = "error: nothing happened".into();
        entries[0].hash = entries[0].content_hash();
        db.put(&entries[0]).await.unwrap();
        assert_eq!(log.verify(None).await.unwrap().unwrap_err().seq, 2);
    }

    #[tokio::test]
    async fn a_callers_huge_field_is_kept_bounded() {
        let (log, _) = log_with(0).await;
        let huge = "p".repeat(4 * 1024 * 1024);
        let entry = log
            .append("vera (viewer)", "sha256:ab", "deploy", &huge, "refused")
            .await
            .unwrap();
        assert!(
            entry.target.chars().count() < MAX_FIELD + 32,
            "{}",
            entry.target.len()
        );
        assert!(
            entry
                .target
                .ends_with(&format!("({} characters)", huge.len()))
        );
        assert_eq!(log.verify(None).await.unwrap().map(|h| h.entries), Ok(1));
    }

    #[tokio::test]
    async fn an_anchor_catches_a_recomputed_rewrite_and_dropped_entries() {
        let (log, db) = log_with(4).await;
        let head = log.verify(None).await.unwrap().unwrap();
        let anchor = Anchor {
            seq: head.entries,
            hash: head.hash.clone(),
        };
        assert!(log.verify(Some(&anchor)).await.unwrap().is_ok());
        log.append("admin (admin)", "", "deploy", "later", "ok")
            .await
            .unwrap();
        assert!(
            log.verify(Some(&anchor)).await.unwrap().is_ok(),
            "entries after the anchor are fine"
        );

        // Someone with the store rewrites entry 2 and recomputes every hash after it.
        let mut entries = db.all::<AuditEntry>().await.unwrap();
        entries[1].target = "hello@evil -> prod1".into();
        let mut prev = entries[0].hash.clone();
        for entry in entries.iter_mut().skip(1) {
            entry.prev_hash = prev;
            entry.hash = entry.content_hash();
            prev = entry.hash.clone();
            db.put(&*entry).await.unwrap();
        }
        assert!(
            log.verify(None).await.unwrap().is_ok(),
            "the chain alone is fooled"
        );
        let broken = log.verify(Some(&anchor)).await.unwrap().unwrap_err();
        assert_eq!(broken.seq, 4);
        assert!(broken.why.contains("rewritten"), "{broken}");

        // Or drops the newest entries.
        let (log, db) = log_with(3).await;
        let head = log.verify(None).await.unwrap().unwrap();
        let anchor = Anchor {
            seq: head.entries,
            hash: head.hash,
        };
        let mut changes = crate::store::Changes::default();
        changes.delete::<AuditEntry>(&format!("{:020}", 3));
        db.commit(changes).await.unwrap();
        let broken = log.verify(Some(&anchor)).await.unwrap().unwrap_err();
        assert!(broken.why.contains("dropped"), "{broken}");
    }

    #[test]
    fn a_removed_entry_is_named() {
        let mut entries: Vec<AuditEntry> = Vec::new();
        let mut prev = GENESIS.to_string();
        for seq in 1..=3 {
            let mut e = AuditEntry {
                seq,
                at: 0,
                who: "a".into(),
                certificate: String::new(),
                action: "x".into(),
                target: String::new(),
                result: "ok".into(),
                about: About::default(),
                prev_hash: prev.clone(),
                hash: String::new(),
            };
            e.hash = e.content_hash();
            prev = e.hash.clone();
            entries.push(e);
        }
        entries.remove(1);
        assert_eq!(check_chain(&entries).unwrap_err().seq, 2);
    }

    #[tokio::test]
    async fn what_an_entry_is_about_is_chained_and_older_entries_verify_as_before() {
        let (log, db) = log_with(0).await;
        let about = About {
            project: Some("hello".into()),
            environment: Some("staging".into()),
            version: Some("v2".into()),
            deployment: Some("d-7".into()),
        };
        log.append_about(
            "admin (admin)",
            "",
            "deploy",
            "hello@v2 -> staging",
            "queued d-7",
            &about,
        )
        .await
        .unwrap();
        // An entry as the log stored it before `about` existed: no such key.
        let old = log
            .append("admin (admin)", "", "cancel", "d-7", "ok")
            .await
            .unwrap();
        let stored = serde_json::to_value(&old).unwrap();
        assert!(stored.get("about").is_none(), "{stored}");
        assert_eq!(log.verify(None).await.unwrap().unwrap().entries, 2);

        let mut edited: AuditEntry = db.get(&format!("{:020}", 1)).await.unwrap().unwrap();
        edited.about.environment = Some("prod1".into());
        let mut changes = crate::store::Changes::default();
        changes.put(&edited).unwrap();
        db.commit(changes).await.unwrap();
        let broken = log.verify(None).await.unwrap().unwrap_err();
        assert_eq!(broken.seq, 1, "{broken}");
    }
}
