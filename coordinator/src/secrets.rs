//! Secrets of an environment, of one project there, or of a data store:
//! encrypted at rest, decrypted only to configure the agents they go to, never
//! logged or shown.
//!
//! ChaCha20-Poly1305 (aws-lc-rs) with a 256-bit key in a file of its own beside the
//! store, not in it: a copy of the store alone reveals nothing. Each value has a
//! fresh random nonce, and its `ENV/KEY` name is the associated data, so a
//! ciphertext cannot be moved to another name.
//!
//! The key rotates (`rotate`): a new key is written beside the old one
//! (`secrets.key.next`), every value is re-sealed with it in one store batch
//! naming the new key's id, and only then does the new file replace the old.
//! A stop anywhere in between is settled at the next start: the store says
//! which key its values need. The key file also carries the seed of the
//! configuration digest, which a rotation keeps, so digests do not change.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

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

/// Where a secret applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every project of an environment (shared), or one project there.
    Environment {
        environment: String,
        project: Option<String>,
    },
    /// Every project that uses the data store, in each environment it names:
    /// its password, say, which qaprod1, prod1 and prod2 share with it.
    Store(String),
    /// A notification's own (`[notifications.NAME]`): a signing key, a token.
    /// Only the coordinator reads these; no agent gets them.
    Sink(String),
}

impl Scope {
    /// An environment's shared secrets.
    pub fn shared(environment: &str) -> Scope {
        Scope::Environment {
            environment: environment.to_string(),
            project: None,
        }
    }
}

/// `ENV`, `ENV/PROJECT`, `store:NAME` or `sink:NAME`: the prefix of a stored
/// secret's name. A colon is in no environment's name, so a store's, a sink's
/// and an environment's secrets never share one.
impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Environment {
                environment,
                project: Some(project),
            } => write!(f, "{environment}/{project}"),
            Scope::Environment { environment, .. } => f.write_str(environment),
            Scope::Store(store) => write!(f, "store:{store}"),
            Scope::Sink(sink) => write!(f, "sink:{sink}"),
        }
    }
}

impl SealedSecret {
    fn scope(&self) -> Scope {
        match (&self.store, &self.sink) {
            (Some(store), _) => Scope::Store(store.clone()),
            (None, Some(sink)) => Scope::Sink(sink.clone()),
            (None, None) => Scope::Environment {
                environment: self.environment.clone(),
                project: self.project.clone(),
            },
        }
    }
}

/// A stored secret: nonce and ciphertext, hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSecret {
    /// Empty for a data store's secret.
    pub environment: String,
    /// Set: only this project's services get it; else every project's there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Set: a data store's secret, for every project that uses the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// Set: a notification's secret, for the coordinator's deliveries only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink: Option<String>,
    pub key: String,
    pub nonce: String,
    pub ciphertext: String,
    /// The id of the key it is sealed with; none: sealed before keys rotated,
    /// with the key file's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_with: Option<String>,
}

impl Record for SealedSecret {
    const TABLE: Table = Table::Secrets;
    fn key(&self) -> String {
        Secrets::name(&self.scope(), &self.key)
    }
}

pub struct Secrets {
    db: Db,
    key_file: PathBuf,
    /// Shared by every seal and open, exclusive to a rotation: nothing is
    /// sealed with a key a rotation is retiring.
    key: tokio::sync::RwLock<SealingKey>,
    /// Keys the digest of a deployment's configuration; derived from the
    /// secrets key, never the same bytes.
    digest_key: aws_lc_rs::hmac::Key,
}

/// A key values are sealed with, and its id (which sealed values name).
struct SealingKey {
    key: LessSafeKey,
    id: String,
}

/// Key file bytes: the 32-byte key, then (since keys rotate) the 32-byte seed
/// of the configuration digest; a file of the key alone seeds it with the key.
const KEY_LEN: usize = 32;

impl SealingKey {
    fn of(bytes: &[u8]) -> Option<SealingKey> {
        let key = bytes.get(..KEY_LEN)?;
        let id = Sha256::digest([b"slipway secrets key id\0".as_slice(), key].concat());
        Some(SealingKey {
            key: LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, key).ok()?),
            id: hex::encode(&id[..8]),
        })
    }
}

/// The digest seed a key file carries.
fn digest_seed(bytes: &[u8]) -> &[u8] {
    bytes.get(KEY_LEN..2 * KEY_LEN).unwrap_or(&bytes[..KEY_LEN])
}

/// Where a rotation writes the new key before it replaces the old.
fn next_file(key_file: &Path) -> PathBuf {
    let mut name = key_file.as_os_str().to_owned();
    name.push(".next");
    PathBuf::from(name)
}

/// Makes a rename in `file`'s folder durable.
fn sync_folder(file: &Path) -> std::io::Result<()> {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    pub resealed: usize,
    /// Ids of the old key and the new one.
    pub from: String,
    pub to: String,
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
    /// Loads the key from `key_file`, creating it (owner-only) on first start;
    /// settles a rotation a stop interrupted.
    pub async fn open(db: Db, key_file: &Path) -> Result<Secrets, SecretError> {
        let fail = |message: String| SecretError::KeyFile {
            path: key_file.display().to_string(),
            message,
        };
        let mut bytes = if key_file.exists() {
            std::fs::read(key_file).map_err(|e| fail(e.to_string()))?
        } else {
            let mut bytes = vec![0u8; KEY_LEN];
            rand::rng().fill_bytes(&mut bytes);
            slipway_common::private_file::create_new(key_file, &bytes)
                .map_err(|e| fail(e.to_string()))?;
            bytes
        };
        let next = next_file(key_file);
        if next.exists() {
            let next_bytes = std::fs::read(&next).map_err(|e| fail(e.to_string()))?;
            let resealed = match SealingKey::of(&next_bytes) {
                Some(new) => db
                    .all::<SealedSecret>()
                    .await?
                    .iter()
                    .any(|s| s.sealed_with.as_deref() == Some(new.id.as_str())),
                None => false,
            };
            if resealed {
                // The store holds values only the new key opens: finish.
                std::fs::rename(&next, key_file).map_err(|e| fail(e.to_string()))?;
                sync_folder(key_file).map_err(|e| fail(e.to_string()))?;
                bytes = next_bytes;
                tracing::warn!("finished a secrets key rotation that a stop interrupted");
            } else {
                std::fs::remove_file(&next).map_err(|e| fail(e.to_string()))?;
                tracing::warn!(
                    "dropped a secrets key rotation that a stop interrupted before it re-sealed anything"
                );
            }
        }
        let key = SealingKey::of(&bytes).ok_or_else(|| {
            fail(format!(
                "holds {} bytes, not a 32-byte key: restore it from backup",
                bytes.len()
            ))
        })?;
        let derived =
            Sha256::digest([b"slipway config digest\0".as_slice(), digest_seed(&bytes)].concat());
        Ok(Secrets {
            db,
            key_file: key_file.to_path_buf(),
            key: tokio::sync::RwLock::new(key),
            digest_key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &derived),
        })
    }

    /// The id of the key values are sealed with now.
    pub async fn key_id(&self) -> String {
        self.key.read().await.id.clone()
    }

    /// Ids of keys stored secrets are sealed with that this host's key file
    /// (as it is on disk now) is not: a standby whose `secrets.key` was not
    /// replaced after a rotation on the leader could open none of them once
    /// it leads. Empty once the leader's file is copied here.
    pub async fn foreign_key_ids(&self) -> Result<BTreeSet<String>, SecretError> {
        let bytes = std::fs::read(&self.key_file).map_err(|e| SecretError::KeyFile {
            path: self.key_file.display().to_string(),
            message: e.to_string(),
        })?;
        let on_disk = SealingKey::of(&bytes).map(|k| k.id);
        Ok(self
            .db
            .all::<SealedSecret>()
            .await?
            .into_iter()
            .filter_map(|s| s.sealed_with)
            .filter(|id| Some(id) != on_disk.as_ref())
            .collect())
    }

    /// Replaces the key with a new one, re-sealing every value with it; the
    /// old key is gone once this returns (a backup of it opens nothing new).
    pub async fn rotate(&self) -> Result<Rotated, SecretError> {
        let mut current = self.key.write().await;
        let fail = |e: std::io::Error| SecretError::KeyFile {
            path: self.key_file.display().to_string(),
            message: e.to_string(),
        };
        let old = std::fs::read(&self.key_file).map_err(fail)?;
        let mut bytes = vec![0u8; KEY_LEN];
        rand::rng().fill_bytes(&mut bytes);
        bytes.extend_from_slice(digest_seed(&old));
        let new = SealingKey::of(&bytes).ok_or_else(|| SecretError::Invalid("no key".into()))?;
        let next = next_file(&self.key_file);
        let _ = std::fs::remove_file(&next);
        slipway_common::private_file::create_new(&next, &bytes).map_err(fail)?;
        let resealed = async {
            let stored = self.db.all::<SealedSecret>().await?;
            let mut changes = Changes::default();
            for sealed in &stored {
                let name = Self::name(&sealed.scope(), &sealed.key);
                let value = open_one(&current, sealed)?;
                changes.put(&seal(&new, sealed.scope(), &sealed.key, &name, &value)?)?;
            }
            self.db.commit(changes).await?;
            Ok::<_, SecretError>(stored.len())
        }
        .await;
        let resealed = match resealed {
            Ok(count) => count,
            Err(e) => {
                let _ = std::fs::remove_file(&next);
                return Err(e);
            }
        };
        crate::faults::pause_at("secrets/resealed").await;
        std::fs::rename(&next, &self.key_file).map_err(fail)?;
        sync_folder(&self.key_file).map_err(fail)?;
        let from = std::mem::replace(&mut *current, new).id;
        Ok(Rotated {
            resealed,
            from,
            to: current.id.clone(),
        })
    }

    /// `ENV/KEY` (shared), `ENV/PROJECT/KEY` or `store:NAME/KEY`: the stored key, and the
    /// associated data sealed with the value, so a value moved to another
    /// scope no longer opens.
    fn name(scope: &Scope, key: &str) -> String {
        format!("{scope}/{key}")
    }

    pub async fn set(&self, scope: &Scope, key: &str, value: &str) -> Result<(), SecretError> {
        check_key(key).map_err(SecretError::Invalid)?;
        if value.len() > MAX_VALUE {
            return Err(SecretError::Invalid(format!(
                "the value is over {MAX_VALUE} bytes"
            )));
        }
        let name = Self::name(scope, key);
        let sealing = self.key.read().await;
        let sealed = seal(&sealing, scope.clone(), key, &name, value)?;
        self.db.put(&sealed).await?;
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
    pub async fn delete(&self, scope: &Scope, key: &str) -> Result<(), SecretError> {
        // Not while a rotation re-seals: it would put the value back.
        let _rotating = self.key.read().await;
        let name = Self::name(scope, key);
        if self.db.get::<SealedSecret>(&name).await?.is_none() {
            let place = match scope {
                Scope::Environment { environment, .. } => environment,
                Scope::Store(name) | Scope::Sink(name) => name,
            };
            return Err(SecretError::NotFound(format!(
                "no secret {name}: list them with `slipway secret list {place}`"
            )));
        }
        let mut changes = Changes::default();
        changes.delete::<SealedSecret>(&name);
        Ok(self.db.commit(changes).await?)
    }

    /// The names of the secrets in `scope` (an environment's include its
    /// projects' own), or of all; values are never listed.
    pub async fn names(&self, scope: Option<&Scope>) -> Result<Vec<(Scope, String)>, SecretError> {
        let range = scope.map_or_else(Range::all, |scope| Range::prefix(format!("{scope}/")));
        Ok(self
            .db
            .range::<SealedSecret>(range)
            .await?
            .into_iter()
            .map(|s| (s.scope(), s.key))
            .collect())
    }

    /// The secrets `project`'s services get in `environment`, in the clear, for
    /// its agents' configuration only. Later ones win over earlier ones of the
    /// same name, as variables do: the environment's shared ones, then those
    /// of the data `stores` it uses there, then the project's own.
    pub async fn reveal(
        &self,
        environment: &str,
        project: &str,
        stores: &[&str],
    ) -> Result<BTreeMap<String, String>, SecretError> {
        let (own, shared): (Vec<SealedSecret>, Vec<SealedSecret>) = self
            .db
            .range::<SealedSecret>(Range::prefix(format!("{environment}/")))
            .await?
            .into_iter()
            .filter(|s| s.project.as_deref().is_none_or(|p| p == project))
            .partition(|s| s.project.is_some());
        let mut stored = shared;
        for store in stores {
            let prefix = format!("{}/", Scope::Store(store.to_string()));
            stored.extend(self.db.range::<SealedSecret>(Range::prefix(prefix)).await?);
        }
        stored.extend(own);
        self.open_all(stored).await
    }

    /// A notification's secrets, in the clear, for its deliveries only.
    pub async fn reveal_sink(&self, sink: &str) -> Result<BTreeMap<String, String>, SecretError> {
        let prefix = format!("{}/", Scope::Sink(sink.to_string()));
        let stored = self.db.range::<SealedSecret>(Range::prefix(prefix)).await?;
        self.open_all(stored).await
    }

    /// Decrypts `stored`, later ones winning over earlier ones of a name.
    /// (`stored` was read before the key: a rotation in between re-sealed
    /// it, and those values are read again.)
    async fn open_all(
        &self,
        stored: Vec<SealedSecret>,
    ) -> Result<BTreeMap<String, String>, SecretError> {
        let key = self.key.read().await;
        let mut values = BTreeMap::new();
        for sealed in stored {
            let sealed = if sealed.sealed_with.as_deref().is_some_and(|id| id != key.id) {
                let name = Self::name(&sealed.scope(), &sealed.key);
                self.db
                    .get::<SealedSecret>(&name)
                    .await?
                    .ok_or(SecretError::Undecryptable(name))?
            } else {
                sealed
            };
            let value = open_one(&key, &sealed)?;
            values.insert(sealed.key, value);
        }
        Ok(values)
    }
}

/// `value` sealed with `key` under `name`.
fn seal(
    key: &SealingKey,
    scope: Scope,
    secret: &str,
    name: &str,
    value: &str,
) -> Result<SealedSecret, SecretError> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let mut sealed = value.as_bytes().to_vec();
    key.key
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(name.as_bytes()),
            &mut sealed,
        )
        .map_err(|_| SecretError::Invalid("encryption failed".into()))?;
    let (environment, project, store, sink) = match scope {
        Scope::Environment {
            environment,
            project,
        } => (environment, project, None, None),
        Scope::Store(store) => (String::new(), None, Some(store), None),
        Scope::Sink(sink) => (String::new(), None, None, Some(sink)),
    };
    Ok(SealedSecret {
        environment,
        project,
        store,
        sink,
        key: secret.to_string(),
        nonce: hex::encode(nonce),
        ciphertext: hex::encode(sealed),
        sealed_with: Some(key.id.clone()),
    })
}

/// The value of `sealed`, opened with `key`.
fn open_one(key: &SealingKey, sealed: &SealedSecret) -> Result<String, SecretError> {
    let name = Secrets::name(&sealed.scope(), &sealed.key);
    let undecryptable = || SecretError::Undecryptable(name.clone());
    if sealed.sealed_with.as_deref().is_some_and(|id| id != key.id) {
        return Err(undecryptable());
    }
    let nonce: [u8; NONCE_LEN] = hex::decode(&sealed.nonce)
        .ok()
        .and_then(|n| n.try_into().ok())
        .ok_or_else(undecryptable)?;
    let mut data = hex::decode(&sealed.ciphertext).map_err(|_| undecryptable())?;
    let plain = key
        .key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(name.as_bytes()),
            &mut data,
        )
        .map_err(|_| undecryptable())?;
    String::from_utf8(plain.to_vec()).map_err(|_| undecryptable())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryStore, Store};
    use std::sync::Arc;

    fn shared(environment: &str) -> Scope {
        Scope::shared(environment)
    }

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
        let secrets = Secrets::open(Db::open(store.clone()).await.unwrap(), &path)
            .await
            .unwrap();
        secrets
            .set(&shared("staging"), "DB_PASSWORD", "canary-7f3a")
            .await
            .unwrap();
        assert_eq!(
            secrets.reveal("staging", "hello", &[]).await.unwrap()["DB_PASSWORD"],
            "canary-7f3a"
        );
        assert!(
            secrets
                .reveal("prod1", "hello", &[])
                .await
                .unwrap()
                .is_empty(),
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
        let secrets = Secrets::open(db.clone(), &path).await.unwrap();
        secrets
            .set(&shared("staging"), "TOKEN", "s3cret")
            .await
            .unwrap();
        let mut sealed = db.all::<SealedSecret>().await.unwrap().remove(0);
        sealed.environment = "prod1".into();
        db.put(&sealed).await.unwrap();
        assert!(matches!(
            secrets.reveal("prod1", "hello", &[]).await,
            Err(SecretError::Undecryptable(_))
        ));
        // Nor one moved from a project's scope to the environment's.
        let own = Scope::Environment {
            environment: "qaprod1".into(),
            project: Some("admin".into()),
        };
        secrets.set(&own, "KEY", "mine").await.unwrap();
        let mut sealed = db
            .all::<SealedSecret>()
            .await
            .unwrap()
            .into_iter()
            .find(|s| s.project.is_some())
            .unwrap();
        sealed.project = None;
        db.put(&sealed).await.unwrap();
        assert!(matches!(
            secrets.reveal("qaprod1", "hello", &[]).await,
            Err(SecretError::Undecryptable(_))
        ));
        let _ = std::fs::remove_file(&path);
    }

    #[tokio::test]
    async fn a_project_gets_the_shared_secrets_and_its_own_not_another_s() {
        let path = key_file("scoped");
        let secrets = Secrets::open(Db::memory(), &path).await.unwrap();
        let of = |project: &str| Scope::Environment {
            environment: "prod1".into(),
            project: Some(project.into()),
        };
        secrets.set(&shared("prod1"), "REGION", "eu").await.unwrap();
        secrets
            .set(&shared("prod1"), "TOKEN", "shared")
            .await
            .unwrap();
        secrets.set(&of("hello"), "TOKEN", "hello's").await.unwrap();
        secrets
            .set(&of("admin"), "ADMIN_KEY", "admin's")
            .await
            .unwrap();
        let hello = secrets.reveal("prod1", "hello", &[]).await.unwrap();
        assert_eq!(hello["REGION"], "eu");
        assert_eq!(hello["TOKEN"], "hello's", "its own wins over a shared one");
        assert!(
            !hello.contains_key("ADMIN_KEY"),
            "another project's: {hello:?}"
        );
        let admin = secrets.reveal("prod1", "admin", &[]).await.unwrap();
        assert_eq!(
            (admin["TOKEN"].as_str(), admin["ADMIN_KEY"].as_str()),
            ("shared", "admin's")
        );
        let _ = std::fs::remove_file(&path);
    }

    #[tokio::test]
    async fn a_store_s_secret_reaches_its_users_between_shared_and_own() {
        let path = key_file("store");
        let secrets = Secrets::open(Db::memory(), &path).await.unwrap();
        let store = Scope::Store("hello-db".into());
        let own = Scope::Environment {
            environment: "prod1".into(),
            project: Some("hello".into()),
        };
        secrets.set(&shared("prod1"), "A", "shared").await.unwrap();
        secrets.set(&shared("prod1"), "B", "shared").await.unwrap();
        secrets.set(&store, "B", "store's").await.unwrap();
        secrets.set(&store, "C", "store's").await.unwrap();
        secrets.set(&own, "C", "hello's").await.unwrap();
        let hello = secrets
            .reveal("prod1", "hello", &["hello-db"])
            .await
            .unwrap();
        assert_eq!(
            (
                hello["A"].as_str(),
                hello["B"].as_str(),
                hello["C"].as_str()
            ),
            ("shared", "store's", "hello's"),
            "shared < store < own"
        );
        let without = secrets.reveal("prod1", "admin", &[]).await.unwrap();
        assert_eq!(without["B"], "shared", "a project without the store");
        assert_eq!(
            secrets.names(Some(&store)).await.unwrap(),
            vec![
                (store.clone(), "B".to_string()),
                (store.clone(), "C".to_string())
            ]
        );
        assert_eq!(
            secrets.names(Some(&shared("prod1"))).await.unwrap().len(),
            3,
            "an environment's names are its own and its projects', not a store's"
        );
        let _ = std::fs::remove_file(&path);
    }

    #[tokio::test]
    async fn a_rotation_re_seals_every_value_and_the_old_key_opens_none() {
        let store = Arc::new(MemoryStore::default());
        let db = Db::open(store.clone()).await.unwrap();
        let path = key_file("rotate");
        let secrets = Secrets::open(db.clone(), &path).await.unwrap();
        secrets.set(&shared("prod1"), "A", "alpha").await.unwrap();
        secrets
            .set(&Scope::Store("hello-db".into()), "B", "beta")
            .await
            .unwrap();
        let variables = BTreeMap::from([("A".to_string(), "alpha".to_string())]);
        let digest = secrets.pushed(&variables, &["A".into()]).digest;
        let old_key = std::fs::read(&path).unwrap();

        let rotated = secrets.rotate().await.unwrap();
        assert_eq!(rotated.resealed, 2);
        assert_ne!(rotated.from, rotated.to);
        assert_eq!(secrets.key_id().await, rotated.to);
        let values = secrets
            .reveal("prod1", "hello", &["hello-db"])
            .await
            .unwrap();
        assert_eq!(
            (values["A"].as_str(), values["B"].as_str()),
            ("alpha", "beta")
        );
        assert_eq!(
            secrets.pushed(&variables, &["A".into()]).digest,
            digest,
            "a digest outlives a rotation"
        );
        for sealed in db.all::<SealedSecret>().await.unwrap() {
            assert_eq!(sealed.sealed_with.as_deref(), Some(rotated.to.as_str()));
        }
        let new_key = std::fs::read(&path).unwrap();
        assert_eq!(new_key.len(), 64);
        assert_ne!(new_key[..32], old_key[..32]);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        assert!(!next_file(&path).exists());

        // A backup of the old key opens nothing now.
        let old_path = key_file("rotate-old");
        std::fs::write(&old_path, &old_key).unwrap();
        let with_old = Secrets::open(db.clone(), &old_path).await.unwrap();
        assert!(matches!(
            with_old.reveal("prod1", "hello", &[]).await,
            Err(SecretError::Undecryptable(_))
        ));
        // Such a host (a standby not given the new file) says which key it
        // lacks, until the file is copied to it.
        assert_eq!(
            with_old.foreign_key_ids().await.unwrap(),
            std::collections::BTreeSet::from([rotated.to.clone()])
        );
        assert!(secrets.foreign_key_ids().await.unwrap().is_empty());
        std::fs::copy(&path, &old_path).unwrap();
        assert!(with_old.foreign_key_ids().await.unwrap().is_empty());
        let _ = std::fs::remove_file(&old_path);
        let _ = std::fs::remove_file(&path);
    }

    #[tokio::test]
    async fn a_rotation_a_stop_interrupted_is_settled_by_what_the_store_holds() {
        let db = Db::memory();
        let path = key_file("interrupted");
        let secrets = Secrets::open(db.clone(), &path).await.unwrap();
        secrets.set(&shared("prod1"), "A", "alpha").await.unwrap();
        let old_key = std::fs::read(&path).unwrap();

        // Stopped before the values were re-sealed: the new key goes.
        std::fs::write(next_file(&path), [7u8; 64]).unwrap();
        let reopened = Secrets::open(db.clone(), &path).await.unwrap();
        assert!(!next_file(&path).exists());
        assert_eq!(std::fs::read(&path).unwrap(), old_key);
        assert_eq!(
            reopened.reveal("prod1", "hello", &[]).await.unwrap()["A"],
            "alpha"
        );

        // Stopped after they were, before the new file replaced the old: it
        // replaces it now.
        let rotated = reopened.rotate().await.unwrap();
        let new_key = std::fs::read(&path).unwrap();
        std::fs::write(next_file(&path), &new_key).unwrap();
        std::fs::write(&path, &old_key).unwrap();
        let settled = Secrets::open(db.clone(), &path).await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), new_key);
        assert!(!next_file(&path).exists());
        assert_eq!(settled.key_id().await, rotated.to);
        assert_eq!(
            settled.reveal("prod1", "hello", &[]).await.unwrap()["A"],
            "alpha"
        );
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
        let err = Secrets::open(Db::memory(), &path).await.unwrap_err();
        assert!(err.to_string().contains("not a 32-byte key"), "{err}");
        let _ = std::fs::remove_file(&path);
    }
}
