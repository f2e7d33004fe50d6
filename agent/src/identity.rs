//! The agent's own key and certificate. The key is made on the instance and never
//! leaves it: the coordinator sees only a certificate request, which it signs
//! once, against the launch's one-time join token. The calls that carry the
//! request are the session's (`session::credentials`, `session::renew`).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls_pki_types::{CertificateDer, pem::PemObject};
use sha2::{Digest, Sha256};
use slipway_common::user_data::UserData;
use tracing::info;

/// A certificate and key the agent connects with.
#[derive(Debug, Clone)]
pub struct AgentCredentials {
    pub cert_pem: String,
    pub key_pem: String,
    pub issued_at_ms: i64,
    pub expires_at_ms: i64,
    /// The CAs the coordinator said to recognise it by, from the last
    /// certificate it signed (two during a CA rotation, the new one after);
    /// None: the user-data CA.
    pub trust_pem: Option<String>,
}

impl AgentCredentials {
    /// The CAs to recognise the coordinator by.
    pub fn trust<'a>(&'a self, user_data: &'a UserData) -> &'a str {
        self.trust_pem.as_deref().unwrap_or(&user_data.ca_pem)
    }

    /// When to renew: two thirds into the certificate's life, so a renewal that
    /// fails has a third of it left to retry.
    pub fn renew_at_ms(&self) -> i64 {
        self.issued_at_ms + (self.expires_at_ms - self.issued_at_ms) * 2 / 3
    }
}

/// Checks that the CA in user-data is the one its fingerprint names.
pub fn verify_ca(user_data: &UserData) -> anyhow::Result<()> {
    let der = CertificateDer::from_pem_slice(user_data.ca_pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("user-data CA is not a PEM certificate: {e}"))?;
    let actual = format!("sha256:{}", hex::encode(Sha256::digest(der.as_ref())));
    if actual != user_data.ca_fingerprint {
        bail!(
            "user-data CA fingerprint mismatch: expected {}, got {actual}; refusing to trust it",
            user_data.ca_fingerprint
        );
    }
    Ok(())
}

fn trust_path(state_dir: &Path) -> PathBuf {
    state_dir.join("coordinator-ca.pem")
}

/// The CAs in a signing answer, if they are certificates and nothing else.
fn trust_in(ca_pem: &str) -> Option<String> {
    let certificates: Vec<_> = CertificateDer::pem_slice_iter(ca_pem.as_bytes()).collect();
    let fine = !certificates.is_empty()
        && certificates.iter().all(Result::is_ok)
        && !ca_pem.contains("PRIVATE KEY");
    fine.then(|| ca_pem.to_string())
}

fn paths(state_dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    (
        state_dir.join("agent.pem"),
        state_dir.join("agent.key"),
        state_dir.join("agent.validity"),
    )
}

/// A certificate the coordinator signed, and until when it is valid.
#[derive(Debug, Clone)]
pub struct Signed {
    pub certificate_pem: String,
    pub expires_at_ms: i64,
    /// The CAs to recognise the coordinator by from now on; empty from a
    /// coordinator that predates CA rotation.
    pub ca_pem: String,
}

/// A fresh key and a certificate request naming this instance.
pub fn key_and_csr(instance_id: &str) -> anyhow::Result<(KeyPair, String)> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, instance_id);
    params.distinguished_name = name;
    let csr_pem = params.serialize_request(&key)?.pem()?;
    Ok((key, csr_pem))
}

/// Stores key, certificate and validity; each file is written whole then renamed,
/// so a crash mid-write leaves the previous credentials usable.
fn store(state_dir: &Path, credentials: &AgentCredentials) -> anyhow::Result<()> {
    let (cert_path, key_path, validity_path) = paths(state_dir);
    slipway_common::private_file::create_dir(state_dir)
        .with_context(|| format!("cannot create {}", state_dir.display()))?;
    let partial = |path: &Path| path.with_extension("partial");
    // Written to a fresh file and renamed by private_file itself.
    write_private(&key_path, &credentials.key_pem)?;
    std::fs::write(partial(&cert_path), &credentials.cert_pem)?;
    std::fs::rename(partial(&cert_path), &cert_path)?;
    std::fs::write(
        partial(&validity_path),
        format!("{} {}", credentials.issued_at_ms, credentials.expires_at_ms),
    )?;
    std::fs::rename(partial(&validity_path), &validity_path)?;
    Ok(())
}

/// Stores a freshly signed certificate with its key and starts using it.
pub fn adopt(
    state_dir: &Path,
    key: &KeyPair,
    signed: Signed,
    now_ms: i64,
    what: &str,
) -> anyhow::Result<AgentCredentials> {
    // Written before the certificate it came with: a stop between the two
    // leaves the old certificate, which the new CAs still trust.
    match trust_in(&signed.ca_pem) {
        Some(trust) => {
            slipway_common::private_file::create_dir(state_dir)
                .with_context(|| format!("cannot create {}", state_dir.display()))?;
            write_private(&trust_path(state_dir), &trust)?;
        }
        None if signed.ca_pem.is_empty() => {}
        None => tracing::warn!(
            "the coordinator's CA list is not PEM certificates: keeping the CAs known before"
        ),
    }
    let credentials = AgentCredentials {
        cert_pem: signed.certificate_pem,
        key_pem: key.serialize_pem(),
        issued_at_ms: now_ms,
        expires_at_ms: signed.expires_at_ms,
        trust_pem: std::fs::read_to_string(trust_path(state_dir)).ok(),
    };
    store(state_dir, &credentials)?;
    info!(expires_at_ms = credentials.expires_at_ms, "{what}");
    Ok(credentials)
}

/// The stored certificate, if there is one and it is still valid.
pub fn stored(state_dir: &Path, now_ms: i64) -> Option<AgentCredentials> {
    let (cert_path, key_path, validity_path) = paths(state_dir);
    if let (Ok(cert_pem), Ok(key_pem), Ok(validity)) = (
        std::fs::read_to_string(&cert_path),
        std::fs::read_to_string(&key_path),
        std::fs::read_to_string(&validity_path),
    ) && let Some((issued, expires)) = validity.trim().split_once(' ')
        && let (Ok(issued_at_ms), Ok(expires_at_ms)) =
            (issued.parse::<i64>(), expires.parse::<i64>())
        && expires_at_ms > now_ms
    {
        return Some(AgentCredentials {
            cert_pem,
            key_pem,
            issued_at_ms,
            expires_at_ms,
            trust_pem: std::fs::read_to_string(trust_path(state_dir)).ok(),
        });
    }
    None
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    slipway_common::private_file::write(path, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ca_pem() -> String {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        CertificateParams::default()
            .self_signed(&key)
            .unwrap()
            .pem()
    }

    fn signed(ca_pem: &str) -> Signed {
        Signed {
            certificate_pem: "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".into(),
            expires_at_ms: 10_000,
            ca_pem: ca_pem.to_string(),
        }
    }

    #[test]
    fn the_cas_a_renewal_names_replace_the_known_ones_and_nothing_else_does() {
        let dir = std::env::temp_dir().join(format!("slipway-agent-trust-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        // A coordinator from before CA rotation names none: the user-data CA.
        let first = adopt(&dir, &key, signed(""), 1, "issued").unwrap();
        assert_eq!(first.trust_pem, None);
        let two = format!("{}{}", ca_pem(), ca_pem());
        let rotating = adopt(&dir, &key, signed(&two), 2, "renewed").unwrap();
        assert_eq!(rotating.trust_pem.as_deref(), Some(two.as_str()));
        // Garbage, or a key where certificates belong, changes nothing.
        for bad in [
            "not pem",
            "-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n",
        ] {
            let kept = adopt(&dir, &key, signed(bad), 3, "renewed").unwrap();
            assert_eq!(kept.trust_pem.as_deref(), Some(two.as_str()), "{bad}");
        }
        let one = ca_pem();
        adopt(&dir, &key, signed(&one), 4, "renewed").unwrap();
        assert_eq!(
            stored(&dir, 5).unwrap().trust_pem.as_deref(),
            Some(one.as_str())
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
