//! Environment secrets: encrypted at rest, decrypted only to configure that
//! environment's agents, never logged or shown.
//!
//! ChaCha20-Poly1305 (aws-lc-rs) with a 256-bit key in a file of its own beside the
//! store, not in it: a copy of the store alone reveals nothing. Each value has a
//! fresh random nonce, and its `ENV/KEY` name is the associated data, so a
//! ciphertext cannot be moved to another name.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use aws_lc_rs::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::{Changes, Db, Range, Record, StoreError, Table};

/// What operators see instead of a secret value.
pub const MASK: &str = "***";
/// Longest secret value accepted.
pub const MAX_VALUE: usize = 32 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret key file {path}: {message}")]
    KeyFile { path: String, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("secret {0} cannot be decrypted: the key file does not match the store")]
    Undecryptable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl crate::error::Coded for SecretError {
    fn code(&self) -> crate::error::Code {
        use crate::error::Code;
        match self {
            SecretError::Invalid(_) => Code::Invalid,
            SecretError::NotFound(_) => Code::NotFound,
            // The key file and the store disagree: an operator must restore one.
            SecretError::KeyFile { .. } | SecretError::Undecryptable(_) => Code::FailedPrecondition,
            SecretError::Store(e) => e.code(),
        }
    }
}

/// A stored secret: nonce and ciphertext, hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSecret {
    pub environment: String,
    pub key: String,
    pub nonce: String,
    pub ciphertext: String,
}

impl Record for SealedSecret {
    const TABLE: Table = Table::Secrets;
    fn key(&self) -> String {
        Secrets::name(&self.environment, &self.key)
    }
}

pub struct Secrets {
    db: Db,
    key: LessSafeKey,
    /// Keys the digest of a deployment's configuration; derived from the
    /// secrets key, never the same bytes.
    digest_key: aws_lc_rs::hmac::Key,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets")
    }
}

/// Names become environment variables: keep them to what a shell accepts.
pub fn check_key(key: &str) -> Result<(), String> {
    let ok = !key.is_empty()
        && key.len() <= 128
        && key
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && !key.starts_with(|c: char| c.is_ascii_digit())
        && !key.starts_with("SLIPWAY_");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{key:?} is not a secret name: use A-Z, 0-9 and '_' (not starting with a digit or SLIPWAY_)"
        ))
    }
}

impl Secrets {
    /// Loads the key from `key_file`, creating it (owner-only) on first start.
    pub fn open(db: Db, key_file: &Path) -> Result<Secrets, SecretError> {
        let fail = |message: String| SecretError::KeyFile {
            path: key_file.display().to_string(),
            message,
        };
        let bytes = if key_file.exists() {
            std::fs::read(key_file).map_err(|e| fail(e.to_string()))?
        } else {
            let mut bytes = vec![0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(key_file)
                .map_err(|e| fail(e.to_string()))?;
            file.write_all(&bytes).map_err(|e| fail(e.to_string()))?;
            bytes
        };
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, &bytes).map_err(|_| {
            fail(format!(
                "holds {} bytes, not a 32-byte key: restore it from backup",
                bytes.len()
            ))
        })?;
        let derived = Sha256::digest([b"slipway config digest\0".as_slice(), &bytes].concat());
        Ok(Secrets {
            db,
            key: LessSafeKey::new(unbound),
            digest_key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &derived),
        })
    }

    fn name(environment: &str, key: &str) -> String {
        format!("{environment}/{key}")
    }

    pub async fn set(&self, environment: &str, key: &str, value: &str) -> Result<(), SecretError> {
        check_key(key).map_err(SecretError::Invalid)?;
        if value.len() > MAX_VALUE {
            return Err(SecretError::Invalid(format!(
                "the value is over {MAX_VALUE} bytes"
            )));
        }
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let name = Self::name(environment, key);
        let mut sealed = value.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(name.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| SecretError::Invalid("encryption failed".into()))?;
        self.db
            .put(&SealedSecret {
                environment: environment.to_string(),
                key: key.to_string(),
                nonce: hex::encode(nonce),
                ciphertext: hex::encode(sealed),
            })
            .await?;
        Ok(())
    }

    /// A deployment's configuration as operators see it: `variables` with the
    /// values of `secret_names` masked, and a digest of the real values (but
    /// `SLIPWAY_*`) that only this coordinator can make (a bare hash would let
    /// anyone guess a short secret from it).
    pub fn pushed(
        &self,
        variables: &BTreeMap<String, String>,
        secret_names: &[String],
    ) -> crate::deploy::PushedConfig {
        let mut tag = aws_lc_rs::hmac::Context::with_key(&self.digest_key);
        // What Slipway sets per deployment (its id, release, project) is left
        // out: the digest compares configuration, not identity.
        for (key, value) in variables.iter().filter(|(k, _)| !k.starts_with("SLIPWAY_")) {
            // Length-prefixed, so no two configurations run together alike.
            for part in [key, value] {
                tag.update(&(part.len() as u64).to_be_bytes());
                tag.update(part.as_bytes());
            }
        }
        let masked = variables
            .iter()
            .map(|(k, v)| {
                let shown = if secret_names.contains(k) { MASK } else { v };
                (k.clone(), shown.to_string())
            })
            .collect();
        crate::deploy::PushedConfig {
            variables: masked,
            secrets: secret_names.to_vec(),
            digest: hex::encode(tag.sign().as_ref()),
        }
    }

    /// Removes a secret; agents launched from now on no longer receive it.
    pub async fn delete(&self, environment: &str, key: &str) -> Result<(), SecretError> {
        let name = Self::name(environment, key);
        if self.db.get::<SealedSecret>(&name).await?.is_none() {
            return Err(SecretError::NotFound(format!(
                "no secret {name}: list them with `slipway secret list {environment}`"
            )));
        }
        let mut changes = Changes::default();
        changes.delete::<SealedSecret>(&name);
        Ok(self.db.commit(changes).await?)
    }

    /// The names of an environment's secrets (values are never listed).
    pub async fn names(
        &self,
        environment: Option<&str>,
    ) -> Result<Vec<(String, String)>, SecretError> {
        let range = environment.map_or_else(Range::all, |e| Range::prefix(format!("{e}/")));
        Ok(self
            .db
            .range::<SealedSecret>(range)
            .await?
            .into_iter()
            .map(|s| (s.environment, s.key))
            .collect())
    }

    /// An environment's secrets in the clear, for its agents' configuration only.
    pub async fn reveal(&self, environment: &str) -> Result<BTreeMap<String, String>, SecretError> {
        let mut values = BTreeMap::new();
        let stored = self
            .db
            .range::<SealedSecret>(Range::prefix(format!("{environment}/")))
            .await?;
        for sealed in stored {
            let name = Self::name(&sealed.environment, &sealed.key);
            let undecryptable = || SecretError::Undecryptable(name.clone());
            let nonce: [u8; NONCE_LEN] = hex::decode(&sealed.nonce)
                .ok()
                .and_then(|n| n.try_into().ok())
                .ok_or_else(undecryptable)?;
            let mut data = hex::decode(&sealed.ciphertext).map_err(|_| undecryptable())?;
            let plain = self
                .key
                .open_in_place(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(name.as_bytes()),
                    &mut data,
                )
                .map_err(|_| undecryptable())?;
            let value = String::from_utf8(plain.to_vec()).map_err(|_| undecryptable())?;
            values.insert(sealed.key, value);
        }
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryStore, Store};
    use std::sync::Arc;

    fn key_file(name: &str) -> std::path::PathBuf {
        let path =
            std::env::temp_dir().join(format!("slipway-secrets-{name}-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        path
    }

    #[tokio::test]
    async fn a_secret_round_trips_and_is_stored_encrypted() {
        let store = Arc::new(MemoryStore::default());
        let path = key_file("roundtrip");
        let secrets = Secrets::open(Db::open(store.clone()).await.unwrap(), &path).unwrap();
        secrets
            .set("staging", "DB_PASSWORD", "canary-7f3a")
            .await
            .unwrap();
        assert_eq!(
            secrets.reveal("staging").await.unwrap()["DB_PASSWORD"],
            "canary-7f3a"
        );
        assert!(
            secrets.reveal("prod1").await.unwrap().is_empty(),
            "other environments get nothing"
        );
        let stored = store.range(Table::Secrets, Range::all()).await.unwrap();
        assert!(!String::from_utf8_lossy(&stored[0].1).contains("canary"));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let _ = std::fs::remove_file(&path);
    }

    #[tokio::test]
    async fn a_ciphertext_moved_to_another_name_does_not_decrypt() {
        let store = Arc::new(MemoryStore::default());
        let path = key_file("moved");
        let db = Db::open(store.clone()).await.unwrap();
        let secrets = Secrets::open(db.clone(), &path).unwrap();
        secrets.set("staging", "TOKEN", "s3cret").await.unwrap();
        let mut sealed = db.all::<SealedSecret>().await.unwrap().remove(0);
        sealed.environment = "prod1".into();
        db.put(&sealed).await.unwrap();
        assert!(matches!(
            secrets.reveal("prod1").await,
            Err(SecretError::Undecryptable(_))
        ));
        let _ = std::fs::remove_file(&path);
    }

    #[tokio::test]
    async fn bad_names_and_key_files_are_refused() {
        assert!(check_key("DB_PASSWORD").is_ok());
        for bad in ["db_password", "1KEY", "SLIPWAY_VERSION", "A-B", ""] {
            assert!(check_key(bad).is_err(), "{bad}");
        }
        let path = key_file("short");
        std::fs::write(&path, b"short").unwrap();
        let err = Secrets::open(Db::memory(), &path).unwrap_err();
        assert!(err.to_string().contains("not a 32-byte key"), "{err}");
        let _ = std::fs::remove_file(&path);
    }
}
