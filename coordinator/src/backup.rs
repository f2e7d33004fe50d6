//! Backups: a snapshot of the store and, if asked, the keys beside it (the
//! CA and the secrets key), sealed to a passphrase or to a public key; and
//! the way back into a new data directory.
//!
//! A backup file is two header lines, then the sealed document:
//!
//! ```text
//! slipway backup 1
//! passphrase pbkdf2-sha256 ROUNDS SALT_HEX    (or: recipient x25519 EPHEMERAL_PUBLIC_HEX)
//! NONCE (12 bytes) || ChaCha20-Poly1305(the document's JSON), the header lines as associated data
//! ```
//!
//! A passphrase's key is PBKDF2-HMAC-SHA256 of it (600,000 rounds, a fresh
//! 16-byte salt). A recipient's is HKDF-SHA256 of the X25519 agreement
//! between a fresh key and the recipient's, salted with both public keys:
//! only the holder of the identity file opens it. All of it is aws-lc-rs.

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use aws_lc_rs::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey, X25519};
use aws_lc_rs::encoding::{AsBigEndian, Curve25519SeedBin};
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::store::{Batch, MemoryStore, Range, Store, StoreError, Table, Write};

const MAGIC: &str = "slipway backup 1";
const ROUNDS: u32 = 600_000;
const INFO: &[u8] = b"slipway backup 1";
const IDENTITY_PREFIX: &str = "slipway-backup-identity-";
const RECIPIENT_PREFIX: &str = "slipway-backup-recipient-";

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(message: impl Into<String>) -> BackupError {
    BackupError::Invalid(message.into())
}

/// What a backup holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    /// Unix ms it was taken.
    pub taken_at: i64,
    /// Ids the store handed out are below this one.
    pub ids_above: u64,
    /// Each table's entries: key and value (base64).
    pub tables: BTreeMap<String, Vec<(String, String)>>,
    /// Files of the data directory by relative path (`ca/ca.key`,
    /// `secrets.key`), base64; none unless the keys were asked for.
    pub files: BTreeMap<String, String>,
}

impl Document {
    /// Every entry of `store` (a snapshot: nothing writes it meanwhile).
    pub async fn of(store: &dyn Store, taken_at: i64) -> Result<Document, StoreError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut tables = BTreeMap::new();
        for table in Table::ALL {
            let entries = store.range(table, Range::all()).await?;
            if !entries.is_empty() {
                let entries = entries
                    .into_iter()
                    .map(|(key, value)| (key, b64.encode(value)))
                    .collect();
                tables.insert(table.name().to_string(), entries);
            }
        }
        Ok(Document {
            taken_at,
            ids_above: store.next_id().await?,
            tables,
            files: BTreeMap::new(),
        })
    }

    /// How many entries it holds.
    pub fn entries(&self) -> usize {
        self.tables.values().map(Vec::len).sum()
    }

    /// Its entries in a store of their own, ids going on above its own.
    pub async fn store(&self) -> Result<MemoryStore, BackupError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let memory = MemoryStore::default();
        let epoch = memory.claim_epoch().await?;
        for (name, entries) in &self.tables {
            let table = Table::ALL
                .into_iter()
                .find(|t| t.name() == name)
                .ok_or_else(|| {
                    invalid(format!(
                        "the backup holds a table {name:?} this coordinator does not know: restore it with the release that took it, or a newer one"
                    ))
                })?;
            let writes = entries
                .iter()
                .map(|(key, value)| {
                    let value = b64.decode(value).map_err(|_| {
                        invalid(format!("the backup's {name} entry {key:?} is damaged"))
                    })?;
                    Ok(Write::Put {
                        table,
                        key: key.clone(),
                        value,
                    })
                })
                .collect::<Result<_, BackupError>>()?;
            memory.write(Batch { epoch, writes }).await?;
        }
        memory.raise_ids(self.ids_above).await?;
        Ok(memory)
    }

    /// The files it carries, decoded.
    pub fn files(&self) -> Result<BTreeMap<String, Vec<u8>>, BackupError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        self.files
            .iter()
            .map(|(path, data)| {
                let bytes = b64
                    .decode(data)
                    .map_err(|_| invalid(format!("the backup's file {path} is damaged")))?;
                Ok((path.clone(), bytes))
            })
            .collect()
    }
}

/// Whom a backup is sealed to.
pub enum Lock {
    Passphrase(String),
    /// An X25519 public key (`backup-key` writes one).
    Recipient([u8; 32]),
}

/// What opens a backup.
pub enum Unlock {
    Passphrase(String),
    /// An X25519 private key (the identity file).
    Identity([u8; 32]),
}

/// `plain` sealed to `lock`: the bytes of a backup file.
pub fn seal(plain: &[u8], lock: &Lock) -> Result<Vec<u8>, BackupError> {
    let (how, key) = match lock {
        Lock::Passphrase(passphrase) => {
            let mut salt = [0u8; 16];
            rand::rng().fill_bytes(&mut salt);
            let key = stretch(passphrase, ROUNDS, &salt)?;
            (
                format!("passphrase pbkdf2-sha256 {ROUNDS} {}", hex::encode(salt)),
                key,
            )
        }
        Lock::Recipient(recipient) => {
            let ephemeral = PrivateKey::generate(&X25519).map_err(|_| invalid("no key"))?;
            let public = ephemeral
                .compute_public_key()
                .map_err(|_| invalid("no key"))?;
            let key = agree(&ephemeral, public.as_ref(), recipient)?;
            (
                format!("recipient x25519 {}", hex::encode(public.as_ref())),
                key,
            )
        }
    };
    let header = format!("{MAGIC}\n{how}\n");
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let mut sealed = plain.to_vec();
    aead(&key)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(header.as_bytes()),
            &mut sealed,
        )
        .map_err(|_| invalid("encryption failed"))?;
    Ok([header.as_bytes(), &nonce, &sealed].concat())
}

/// The plain bytes of the backup file `file`, opened with `unlock`.
pub fn open(file: &[u8], unlock: &Unlock) -> Result<Vec<u8>, BackupError> {
    let not_one =
        || invalid("this is not a Slipway backup (its first line is not `slipway backup 1`)");
    let first = file.iter().position(|b| *b == b'\n').ok_or_else(not_one)?;
    if &file[..first] != MAGIC.as_bytes() {
        return Err(not_one());
    }
    let second = file[first + 1..]
        .iter()
        .position(|b| *b == b'\n')
        .map(|at| first + 1 + at)
        .ok_or_else(not_one)?;
    let header = &file[..=second];
    let how = std::str::from_utf8(&file[first + 1..second]).map_err(|_| not_one())?;
    let words: Vec<&str> = how.split(' ').collect();
    let key = match (words.as_slice(), unlock) {
        (["passphrase", "pbkdf2-sha256", rounds, salt], Unlock::Passphrase(passphrase)) => {
            let rounds: u32 = rounds.parse().map_err(|_| not_one())?;
            let salt = hex::decode(salt).map_err(|_| not_one())?;
            stretch(passphrase, rounds, &salt)?
        }
        (["recipient", "x25519", public], Unlock::Identity(identity)) => {
            let public = hex::decode(public).map_err(|_| not_one())?;
            let mine = PrivateKey::from_private_key(&X25519, identity)
                .map_err(|_| invalid("the identity file holds no X25519 key"))?;
            let recipient = mine
                .compute_public_key()
                .map_err(|_| invalid("the identity file holds no X25519 key"))?;
            let recipient: [u8; 32] = recipient
                .as_ref()
                .try_into()
                .map_err(|_| invalid("the identity file holds no X25519 key"))?;
            agree(&mine, &public, &recipient)?
        }
        (["passphrase", ..], Unlock::Identity(_)) => {
            return Err(invalid(
                "this backup is sealed to a passphrase: give --passphrase-file",
            ));
        }
        (["recipient", ..], Unlock::Passphrase(_)) => {
            return Err(invalid(
                "this backup is sealed to a public key: give --identity with its identity file",
            ));
        }
        _ => return Err(not_one()),
    };
    let body = &file[second + 1..];
    if body.len() < NONCE_LEN {
        return Err(invalid("the backup is cut short"));
    }
    let (nonce, sealed) = body.split_at(NONCE_LEN);
    let mut data = sealed.to_vec();
    let plain = aead(&key)?
        .open_in_place(
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| not_one())?,
            Aad::from(header),
            &mut data,
        )
        .map_err(|_| {
            invalid("the backup does not open: a wrong passphrase or identity, or a damaged file")
        })?;
    Ok(plain.to_vec())
}

/// A new identity (private, for the identity file) and its recipient (public).
pub fn keygen() -> Result<(String, String), BackupError> {
    let key = PrivateKey::generate(&X25519).map_err(|_| invalid("no key"))?;
    let seed: Curve25519SeedBin = key.as_be_bytes().map_err(|_| invalid("no key"))?;
    let public = key.compute_public_key().map_err(|_| invalid("no key"))?;
    Ok((
        format!("{IDENTITY_PREFIX}{}\n", hex::encode(seed.as_ref())),
        format!("{RECIPIENT_PREFIX}{}\n", hex::encode(public.as_ref())),
    ))
}

/// The key in an identity file's text.
pub fn parse_identity(text: &str) -> Result<[u8; 32], BackupError> {
    parse_key(text, IDENTITY_PREFIX, "identity")
}

/// The key in a recipient file's text.
pub fn parse_recipient(text: &str) -> Result<[u8; 32], BackupError> {
    parse_key(text, RECIPIENT_PREFIX, "recipient")
}

fn parse_key(text: &str, prefix: &str, what: &str) -> Result<[u8; 32], BackupError> {
    text.trim()
        .strip_prefix(prefix)
        .and_then(|h| hex::decode(h).ok())
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| {
            invalid(format!(
                "not a backup {what} (a line `{prefix}` and 64 hex digits, as `slipway-coordinator backup-key` writes)"
            ))
        })
}

fn stretch(passphrase: &str, rounds: u32, salt: &[u8]) -> Result<[u8; 32], BackupError> {
    if passphrase.is_empty() {
        return Err(invalid("the passphrase is empty"));
    }
    let rounds = NonZeroU32::new(rounds).ok_or_else(|| invalid("no rounds"))?;
    let mut key = [0u8; 32];
    aws_lc_rs::pbkdf2::derive(
        aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
        rounds,
        salt,
        passphrase.as_bytes(),
        &mut key,
    );
    Ok(key)
}

/// The key both sides of an X25519 agreement derive: `ephemeral_public`'s
/// side and `recipient`'s.
fn agree(
    mine: &PrivateKey,
    ephemeral_public: &[u8],
    recipient: &[u8; 32],
) -> Result<[u8; 32], BackupError> {
    // Whichever side this is, the peer is the key that is not its own.
    let own = mine.compute_public_key().map_err(|_| invalid("no key"))?;
    let peer: &[u8] = if own.as_ref() == recipient.as_slice() {
        ephemeral_public
    } else {
        recipient
    };
    let salt = [ephemeral_public, recipient.as_slice()].concat();
    agreement::agree(
        mine,
        UnparsedPublicKey::new(&X25519, peer),
        invalid("the key agreement failed: is the recipient an X25519 public key?"),
        |shared| {
            let salt = aws_lc_rs::hkdf::Salt::new(aws_lc_rs::hkdf::HKDF_SHA256, &salt);
            let mut key = [0u8; 32];
            salt.extract(shared)
                .expand(&[INFO], aws_lc_rs::hkdf::HKDF_SHA256)
                .and_then(|okm| okm.fill(&mut key))
                .map_err(|_| invalid("key derivation failed"))?;
            Ok(key)
        },
    )
}

fn aead(key: &[u8; 32]) -> Result<LessSafeKey, BackupError> {
    Ok(LessSafeKey::new(
        UnboundKey::new(&CHACHA20_POLY1305, key).map_err(|_| invalid("bad key"))?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_passphrase_opens_what_it_sealed_and_nothing_else_does() {
        let sealed = seal(b"the store", &Lock::Passphrase("correct horse".into())).unwrap();
        assert!(sealed.starts_with(b"slipway backup 1\npassphrase pbkdf2-sha256 600000 "));
        assert!(!sealed.windows(9).any(|w| w == b"the store"));
        let plain = open(&sealed, &Unlock::Passphrase("correct horse".into())).unwrap();
        assert_eq!(plain, b"the store");
        let wrong = open(&sealed, &Unlock::Passphrase("battery staple".into())).unwrap_err();
        assert!(wrong.to_string().contains("does not open"), "{wrong}");
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(open(&tampered, &Unlock::Passphrase("correct horse".into())).is_err());
        // An edited header does not open either.
        let mut edited = sealed.clone();
        let at = edited.windows(6).position(|w| w == b"600000").unwrap();
        edited[at + 5] = b'1';
        assert!(open(&edited, &Unlock::Passphrase("correct horse".into())).is_err());
    }

    #[test]
    fn a_recipient_s_identity_opens_what_was_sealed_to_it_and_another_does_not() {
        let (identity, recipient) = keygen().unwrap();
        let sealed = seal(
            b"the store",
            &Lock::Recipient(parse_recipient(&recipient).unwrap()),
        )
        .unwrap();
        assert!(sealed.starts_with(b"slipway backup 1\nrecipient x25519 "));
        let plain = open(
            &sealed,
            &Unlock::Identity(parse_identity(&identity).unwrap()),
        )
        .unwrap();
        assert_eq!(plain, b"the store");
        let (other, _) = keygen().unwrap();
        let refused =
            open(&sealed, &Unlock::Identity(parse_identity(&other).unwrap())).unwrap_err();
        assert!(refused.to_string().contains("does not open"), "{refused}");
        let asked = open(&sealed, &Unlock::Passphrase("x".into())).unwrap_err();
        assert!(asked.to_string().contains("give --identity"), "{asked}");
    }

    #[test]
    fn what_is_not_a_backup_or_a_key_is_refused_plainly() {
        let not = open(b"PK\x03\x04zip", &Unlock::Passphrase("x".into())).unwrap_err();
        assert!(not.to_string().contains("not a Slipway backup"), "{not}");
        let cut = open(
            b"slipway backup 1\npassphrase pbkdf2-sha256 1 00\nab",
            &Unlock::Passphrase("x".into()),
        )
        .unwrap_err();
        assert!(cut.to_string().contains("cut short"), "{cut}");
        assert!(
            parse_identity("hello")
                .unwrap_err()
                .to_string()
                .contains("not a backup identity")
        );
        assert!(seal(b"x", &Lock::Passphrase(String::new())).is_err());
    }

    #[tokio::test]
    async fn a_document_carries_every_table_and_the_ids() {
        let source = MemoryStore::default();
        let epoch = source.claim_epoch().await.unwrap();
        source
            .write(Batch {
                epoch,
                writes: vec![
                    Write::Put {
                        table: Table::Audit,
                        key: "00000001".into(),
                        value: b"{\"a\":1}".to_vec(),
                    },
                    Write::Put {
                        table: Table::Releases,
                        key: "hello/v1".into(),
                        value: vec![0, 255],
                    },
                ],
            })
            .await
            .unwrap();
        for _ in 0..7 {
            source.next_id().await.unwrap();
        }
        let doc = Document::of(&source, 1).await.unwrap();
        assert_eq!(doc.entries(), 2);
        let again: Document = serde_json::from_slice(&serde_json::to_vec(&doc).unwrap()).unwrap();
        let restored = again.store().await.unwrap();
        for table in [Table::Audit, Table::Releases] {
            assert_eq!(
                restored.range(table, Range::all()).await.unwrap(),
                source.range(table, Range::all()).await.unwrap()
            );
        }
        assert!(
            restored.next_id().await.unwrap() > 8,
            "no id handed out twice"
        );
        let mut unknown = doc.clone();
        unknown.tables.insert("tomorrow".into(), vec![]);
        let refused = unknown.store().await.unwrap_err().to_string();
        assert!(refused.contains("\"tomorrow\""), "{refused}");
    }
}
