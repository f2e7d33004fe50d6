//! The agent's own key and certificate. The key is made on the instance and never
//! leaves it: the coordinator sees only a certificate request, which it signs
//! once, against the launch's one-time join token.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls_pki_types::{CertificateDer, pem::PemObject};
use sha2::{Digest, Sha256};
use slipway_proto::user_data::UserData;
use slipway_proto::v1::BootstrapRequest;
use slipway_proto::v1::agent_service_client::AgentServiceClient;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tracing::{info, warn};

/// Longest the agent keeps retrying a token the coordinator has not bound yet.
const BOOTSTRAP_PATIENCE: Duration = Duration::from_secs(60);

/// A certificate and key the agent connects with.
#[derive(Debug, Clone)]
pub struct AgentCredentials {
    pub cert_pem: String,
    pub key_pem: String,
    pub issued_at_ms: i64,
    pub expires_at_ms: i64,
}

impl AgentCredentials {
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

/// A TLS endpoint to the coordinator, verified against the user-data CA.
pub fn endpoint(
    user_data: &UserData,
    credentials: Option<&AgentCredentials>,
) -> anyhow::Result<Endpoint> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&user_data.ca_pem))
        .domain_name(&user_data.server_name);
    if let Some(c) = credentials {
        tls = tls.identity(tonic::transport::Identity::from_pem(
            &c.cert_pem,
            &c.key_pem,
        ));
    }
    Ok(Channel::from_shared(user_data.coordinator.clone())
        .with_context(|| format!("coordinator address {:?} is invalid", user_data.coordinator))?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5)))
}

fn paths(state_dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    (
        state_dir.join("agent.pem"),
        state_dir.join("agent.key"),
        state_dir.join("agent.validity"),
    )
}

/// A fresh key and a certificate request naming this instance.
fn key_and_csr(instance_id: &str) -> anyhow::Result<(KeyPair, String)> {
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
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("cannot create {}", state_dir.display()))?;
    let partial = |path: &Path| path.with_extension("partial");
    write_private(&partial(&key_path), &credentials.key_pem)?;
    std::fs::rename(partial(&key_path), &key_path)?;
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
fn adopt(
    state_dir: &Path,
    key: &KeyPair,
    signed: slipway_proto::v1::BootstrapResponse,
    what: &str,
) -> anyhow::Result<AgentCredentials> {
    let credentials = AgentCredentials {
        cert_pem: signed.certificate_pem,
        key_pem: key.serialize_pem(),
        issued_at_ms: now_ms(),
        expires_at_ms: signed.expires_at_ms,
    };
    store(state_dir, &credentials)?;
    info!(expires_at_ms = credentials.expires_at_ms, "{what}");
    Ok(credentials)
}

/// Renews the certificate over mTLS with the current one, before it expires.
pub async fn renew(
    user_data: &UserData,
    instance_id: &str,
    state_dir: &Path,
    current: &AgentCredentials,
) -> anyhow::Result<AgentCredentials> {
    let (key, csr_pem) = key_and_csr(instance_id)?;
    let channel = endpoint(user_data, Some(current))?.connect().await?;
    let response = AgentServiceClient::new(channel)
        .renew(slipway_proto::v1::RenewRequest { csr_pem })
        .await
        .map_err(|status| {
            anyhow::anyhow!(
                "renewal refused ({:?}): {}",
                status.code(),
                status.message()
            )
        })?
        .into_inner();
    adopt(state_dir, &key, response, "certificate renewed")
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The stored certificate if it is still valid, else a new one through Bootstrap.
pub async fn credentials(
    user_data: &UserData,
    instance_id: &str,
    state_dir: &Path,
) -> anyhow::Result<AgentCredentials> {
    let (cert_path, key_path, validity_path) = paths(state_dir);
    if let (Ok(cert_pem), Ok(key_pem), Ok(validity)) = (
        std::fs::read_to_string(&cert_path),
        std::fs::read_to_string(&key_path),
        std::fs::read_to_string(&validity_path),
    ) && let Some((issued, expires)) = validity.trim().split_once(' ')
        && let (Ok(issued_at_ms), Ok(expires_at_ms)) =
            (issued.parse::<i64>(), expires.parse::<i64>())
        && expires_at_ms > now_ms()
    {
        return Ok(AgentCredentials {
            cert_pem,
            key_pem,
            issued_at_ms,
            expires_at_ms,
        });
    }
    let (key, csr_pem) = key_and_csr(instance_id)?;
    let channel = endpoint(user_data, None)?.connect_lazy();
    let mut client = AgentServiceClient::new(channel);
    let request = BootstrapRequest {
        instance_id: instance_id.to_string(),
        join_token: user_data.join_token.clone(),
        csr_pem,
    };
    let started = std::time::Instant::now();
    let response = loop {
        match client.bootstrap(request.clone()).await {
            Ok(response) => break response.into_inner(),
            // Not yet bound to this instance, or the coordinator is briefly away
            // (a crash mid-answer shows as a transport error). A retry sends the
            // same key, which the coordinator recognises if it already said yes.
            Err(status)
                if matches!(
                    status.code(),
                    Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded
                ) && started.elapsed() < BOOTSTRAP_PATIENCE =>
            {
                warn!(error = %status.message(), "bootstrap not possible yet; retrying");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(status) => bail!(
                "bootstrap refused ({:?}): {}",
                status.code(),
                status.message()
            ),
        }
    };
    adopt(state_dir, &key, response, "certificate issued")
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    slipway_proto::private_file::write(path, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}
