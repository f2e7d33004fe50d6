//! Secrets of an environment, of one project there, or of a data store:
//! encrypted at rest, decrypted only to configure the agents they go to, never
//! logged or shown.
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
}

impl Record for SealedSecret {
    const TABLE: Table = Table::Secrets;
    fn key(&self) -> String {
        Secrets::name(&self.scope(), &self.key)
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
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let name = Self::name(scope, key);
        let mut sealed = value.as_bytes().to_vec();
        self.key
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
            } => (environment.clone(), project.clone(), None, None),
            Scope::Store(store) => (String::new(), None, Some(store.clone()), None),
            Scope::Sink(sink) => (String::new(), None, None, Some(sink.clone())),
        };
        self.db
            .put(&SealedSecret {
                environment,
                project,
                store,
                sink,
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
    pub async fn delete(&self, scope: &Scope, key: &str) -> Result<(), SecretError> {
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
        self.open_all(stored)
    }

    /// A notification's secrets, in the clear, for its deliveries only.
    pub async fn reveal_sink(&self, sink: &str) -> Result<BTreeMap<String, String>, SecretError> {
        let prefix = format!("{}/", Scope::Sink(sink.to_string()));
        let stored = self.db.range::<SealedSecret>(Range::prefix(prefix)).await?;
        self.open_all(stored)
    }

    /// Decrypts `stored`, later ones winning over earlier ones of a name.
    fn open_all(&self, stored: Vec<SealedSecret>) -> Result<BTreeMap<String, String>, SecretError> {
        let mut values = BTreeMap::new();
        for sealed in stored {
            let name = Self::name(&sealed.scope(), &sealed.key);
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
        let secrets = Secrets::open(Db::open(store.clone()).await.unwrap(), &path).unwrap();
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
        let secrets = Secrets::open(db.clone(), &path).unwrap();
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
        let secrets = Secrets::open(Db::memory(), &path).unwrap();
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
        let secrets = Secrets::open(Db::memory(), &path).unwrap();
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
