//! The coordinator's certificate authority and the identities it vouches for.
//!
//! The CA (ECDSA P-256) is made in the data dir on first start. It signs the
//! coordinator's server certificate, operator certificates, and agents' CSRs
//! (the agent keeps its key; only the request travels). A certificate's subject
//! carries the identity: CN is the name (an instance id for agents), OU the role.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, SanType, SerialNumber,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::clock::{Clock, Millis};

/// The name every Slipway client checks on the coordinator's certificate, so
/// clients need not know which address the coordinator is reached at.
pub const SERVER_NAME: &str = "slipway-coordinator";

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot {action} {path}: {source}")]
    File {
        action: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the CA in {dir} is unusable ({message}): restore ca.pem and ca.key, or move the directory away to create a new CA"
    )]
    BadCa { dir: String, message: String },
    #[error("certificate signing request refused: {0}")]
    BadCsr(String),
    #[error("certificate is unreadable: {0}")]
    BadCertificate(String),
    #[error("cannot make a certificate: {0}")]
    Sign(#[from] rcgen::Error),
}

impl crate::error::Coded for PkiError {
    fn code(&self) -> crate::error::Code {
        use crate::error::Code;
        match self {
            PkiError::BadCsr(_) | PkiError::BadCertificate(_) => Code::Invalid,
            PkiError::File { .. } | PkiError::BadCa { .. } | PkiError::Sign(_) => Code::Internal,
        }
    }
}

/// What a client may do, from the OU of its certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Agent,
    Viewer,
    Deployer,
    Admin,
    /// A standby relaying agents' streams to the leader (`grpc::relay`): it
    /// may do nothing else, and only coordinators make such certificates.
    Coordinator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Viewer => "viewer",
            Role::Deployer => "deployer",
            Role::Admin => "admin",
            Role::Coordinator => "coordinator",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        [
            Role::Agent,
            Role::Viewer,
            Role::Deployer,
            Role::Admin,
            Role::Coordinator,
        ]
        .into_iter()
        .find(|r| r.as_str() == text)
    }

    /// Operators rank viewer < deployer < admin; agents are outside that line.
    pub fn allows(self, needed: Role) -> bool {
        let rank = |r: Role| match r {
            Role::Agent | Role::Coordinator => None,
            Role::Viewer => Some(0),
            Role::Deployer => Some(1),
            Role::Admin => Some(2),
        };
        match (rank(self), rank(needed)) {
            (Some(have), Some(need)) => have >= need,
            _ => self == needed,
        }
    }
}

/// Who a verified client certificate belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub role: Role,
    /// The environments a deployer may act on; empty: all of them. Carried in the
    /// certificate as `urn:slipway:env:NAME` subject alternative names.
    pub environments: Vec<String>,
}

/// The URI prefix that carries an environment restriction in a certificate.
const ENV_URI: &str = "urn:slipway:env:";

impl Identity {
    pub fn new(name: &str, role: Role) -> Identity {
        Identity {
            name: name.to_string(),
            role,
            environments: Vec::new(),
        }
    }

    /// An operator or CI identity, checked: a plain name and an operator role.
    /// Agents never get certificates this way; theirs come from join tokens.
    pub fn operator(name: &str, role: &str, environments: &[String]) -> Result<Identity, String> {
        check_name(name)?;
        let role = match Role::parse(role) {
            Some(Role::Agent) => {
                return Err(
                    "agent certificates come from join tokens at launch, never from an operator"
                        .into(),
                );
            }
            Some(Role::Coordinator) => {
                return Err("coordinators make their own certificates, for relaying agents".into());
            }
            Some(role) => role,
            None => {
                return Err(format!(
                    "{role:?} is not a role: use viewer, deployer or admin"
                ));
            }
        };
        Ok(Identity {
            name: name.to_string(),
            role,
            environments: environments.to_vec(),
        })
    }

    /// Whether this identity may change `environment`.
    pub fn may_act_on(&self, environment: &str) -> bool {
        self.environments.is_empty() || self.environments.iter().any(|e| e == environment)
    }
}

/// Checks a name a certificate is issued to.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'));
    if ok {
        Ok(())
    } else {
        // A caller's megabytes are not echoed back: the first 80 characters say which.
        let shown: String = name.chars().take(80).collect();
        let more = if name.chars().count() > 80 { "…" } else { "" };
        Err(format!(
            "{shown:?}{more} is not a certificate name: use 1-64 of letters, digits, '.', '_', '@', '-'"
        ))
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.role.as_str())
    }
}

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct KeyedCertificate {
    pub cert_pem: String,
    pub key_pem: String,
}

pub struct Ca {
    cert_pem: String,
    fingerprint: String,
    issuer: Issuer<'static, KeyPair>,
    /// What certificates' validity starts from.
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ca({})", self.fingerprint)
    }
}

impl Ca {
    /// Loads the CA from `dir`, or creates it there on first start.
    pub fn load_or_create(dir: &Path, clock: Arc<dyn Clock>) -> Result<Ca, PkiError> {
        let cert_path = dir.join("ca.pem");
        let key_path = dir.join("ca.key");
        let bad = |message: String| PkiError::BadCa {
            dir: dir.display().to_string(),
            message,
        };
        if cert_path.exists() || key_path.exists() {
            let cert_pem = read(&cert_path)?;
            let key_pem = read(&key_path)?;
            let key = KeyPair::from_pem(&key_pem).map_err(|e| bad(format!("ca.key: {e}")))?;
            let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)
                .map_err(|e| bad(format!("ca.pem: {e}")))?;
            let fingerprint = fingerprint_pem(&cert_pem).map_err(|e| bad(e.to_string()))?;
            return Ok(Ca {
                cert_pem,
                fingerprint,
                issuer,
                clock,
            });
        }
        slipway_common::private_file::create_dir(dir).map_err(|source| PkiError::File {
            action: "create",
            path: dir.display().to_string(),
            source,
        })?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name("Slipway CA", None);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(
            &mut params,
            clock.now(),
            Duration::from_secs(10 * 365 * 24 * 3600),
        );
        let cert = params.self_signed(&key)?;
        write_private(&key_path, &key.serialize_pem())?;
        write_file(&cert_path, &cert.pem())?;
        let cert_pem = cert.pem();
        let fingerprint = fingerprint_pem(&cert_pem)?;
        Ok(Ca {
            cert_pem,
            fingerprint,
            issuer: Issuer::new(params, key),
            clock,
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// `sha256:<hex>` of the CA certificate's DER: what launches carry so an agent
    /// can check it talks to the right coordinator.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// A fresh server certificate for `names` (DNS names or IP addresses).
    pub fn issue_server(&self, names: &[String]) -> Result<KeyedCertificate, PkiError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(names.to_vec())?;
        params.distinguished_name = name(SERVER_NAME, None);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        validity(
            &mut params,
            self.clock.now(),
            Duration::from_secs(90 * 24 * 3600),
        );
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(KeyedCertificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A client certificate and key for an operator or CI job.
    pub fn issue_client(
        &self,
        identity: &Identity,
        lifetime: Duration,
    ) -> Result<KeyedCertificate, PkiError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let params = client_params(identity, self.clock.now(), lifetime);
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(KeyedCertificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Signs an agent's CSR. The subject comes from `identity`, never from the
    /// request, so an agent cannot ask for a name or role it was not given.
    /// SHA-256 of the key a CSR asks a certificate for: what ties a retried
    /// bootstrap to the first one.
    pub fn csr_key_fingerprint(csr_pem: &str) -> Result<String, PkiError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| {
            PkiError::BadCsr(format!("{e}: send a PEM PKCS#10 request signed by its key"))
        })?;
        Ok(hex::encode(Sha256::digest(
            rcgen::PublicKeyData::der_bytes(&csr.public_key),
        )))
    }

    pub fn sign_csr(
        &self,
        csr_pem: &str,
        identity: &Identity,
        lifetime: Duration,
    ) -> Result<(String, Millis), PkiError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| {
            PkiError::BadCsr(format!("{e}: send a PEM PKCS#10 request signed by its key"))
        })?;
        let params = client_params(identity, self.clock.now(), lifetime);
        let expires_at = params.not_after.unix_timestamp() * 1000;
        let signed = CertificateSigningRequestParams {
            params,
            public_key: csr.public_key,
        }
        .signed_by(&self.issuer)?;
        Ok((signed.pem(), expires_at))
    }
}

fn client_params(identity: &Identity, now: Millis, lifetime: Duration) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(&identity.name, Some(identity.role));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.subject_alt_names = identity
        .environments
        .iter()
        .filter_map(|env| format!("{ENV_URI}{env}").try_into().ok().map(SanType::URI))
        .collect();
    validity(&mut params, now, lifetime);
    params
}

fn name(common_name: &str, role: Option<Role>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Slipway");
    if let Some(role) = role {
        dn.push(DnType::OrganizationalUnitName, role.as_str());
    }
    dn.push(DnType::CommonName, common_name);
    dn
}

fn validity(params: &mut CertificateParams, now: Millis, lifetime: Duration) {
    let now = OffsetDateTime::from_unix_timestamp_nanos(i128::from(now) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    // A little slack for clocks that disagree by a few minutes.
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::seconds(lifetime.as_secs() as i64);
    params.serial_number = Some(SerialNumber::from_slice(&rand::random::<[u8; 16]>()));
}

/// Reads the identity out of a certificate the TLS layer already verified.
pub fn identity_from_der(der: &[u8]) -> Result<Identity, PkiError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| PkiError::BadCertificate(e.to_string()))?;
    let subject = cert.subject();
    let cn = subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .ok_or_else(|| PkiError::BadCertificate("no common name".into()))?;
    let role = subject
        .iter_organizational_unit()
        .next()
        .and_then(|a| a.as_str().ok())
        .and_then(Role::parse)
        .ok_or_else(|| PkiError::BadCertificate("no Slipway role in its OU".into()))?;
    let environments = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    x509_parser::extensions::GeneralName::URI(uri) => {
                        uri.strip_prefix(ENV_URI).map(str::to_string)
                    }
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Identity {
        name: cn.to_string(),
        role,
        environments,
    })
}

/// `sha256:<hex>` of the first certificate in a PEM text.
pub fn fingerprint_pem(pem: &str) -> Result<String, PkiError> {
    use rustls_pki_types::{CertificateDer, pem::PemObject};
    let der = CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| PkiError::BadCertificate(e.to_string()))?;
    Ok(format!(
        "sha256:{}",
        hex::encode(Sha256::digest(der.as_ref()))
    ))
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::File {
        action: "read",
        path: path.display().to_string(),
        source,
    })
}

pub fn write_file(path: &Path, text: &str) -> Result<(), PkiError> {
    std::fs::write(path, text).map_err(|source| PkiError::File {
        action: "write",
        path: path.display().to_string(),
        source,
    })
}

/// Writes a private key readable by its owner only.
pub fn write_private(path: &Path, text: &str) -> Result<(), PkiError> {
    slipway_common::private_file::write(path, text.as_bytes()).map_err(|source| PkiError::File {
        action: "write",
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("slipway-pki-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn operators_get_operator_roles_only_and_a_coordinator_role_allows_nothing_else() {
        assert!(Identity::operator("ci", "deployer", &[]).is_ok());
        for role in ["agent", "coordinator", "root"] {
            assert!(Identity::operator("x", role, &[]).is_err(), "{role}");
        }
        assert_eq!(Role::parse("coordinator"), Some(Role::Coordinator));
        for needed in [Role::Viewer, Role::Deployer, Role::Admin, Role::Agent] {
            assert!(!Role::Coordinator.allows(needed), "{needed:?}");
        }
        assert!(!Role::Admin.allows(Role::Coordinator));
    }

    #[test]
    fn the_ca_is_created_once_and_reloaded_with_the_same_fingerprint() {
        let dir = temp_dir("reload");
        let first = Ca::load_or_create(&dir, Arc::new(SystemClock)).unwrap();
        let again = Ca::load_or_create(&dir, Arc::new(SystemClock)).unwrap();
        assert_eq!(first.fingerprint(), again.fingerprint());
        assert!(first.fingerprint().starts_with("sha256:"));
        let mode = std::fs::metadata(dir.join("ca.key")).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_signed_csr_carries_the_identity_given_not_the_one_asked_for() {
        let dir = temp_dir("csr");
        let ca = Ca::load_or_create(&dir, Arc::new(SystemClock)).unwrap();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = name("i-someone-else", Some(Role::Admin));
        let csr = params.serialize_request(&key).unwrap().pem().unwrap();
        let agent = Identity::new("i-123", Role::Agent);
        let (cert_pem, expires_at) = ca
            .sign_csr(&csr, &agent, Duration::from_secs(3600))
            .unwrap();
        use rustls_pki_types::{CertificateDer, pem::PemObject};
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
        assert_eq!(identity_from_der(&der).unwrap(), agent);
        assert!(expires_at > crate::clock::Clock::now(&crate::clock::SystemClock));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn garbage_is_not_a_csr() {
        let dir = temp_dir("garbage");
        let ca = Ca::load_or_create(&dir, Arc::new(SystemClock)).unwrap();
        let agent = Identity::new("i-1", Role::Agent);
        let err = ca
            .sign_csr("not a csr", &agent, Duration::from_secs(60))
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("certificate signing request refused"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_environment_restriction_survives_the_certificate() {
        let dir = temp_dir("envs");
        let ca = Ca::load_or_create(&dir, Arc::new(SystemClock)).unwrap();
        let ci = Identity {
            name: "ci-staging".into(),
            role: Role::Deployer,
            environments: vec!["staging".into(), "qaprod1".into()],
        };
        let issued = ca.issue_client(&ci, Duration::from_secs(60)).unwrap();
        use rustls_pki_types::{CertificateDer, pem::PemObject};
        let der = CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap();
        let read = identity_from_der(&der).unwrap();
        assert_eq!(read, ci);
        assert!(read.may_act_on("staging") && !read.may_act_on("prod1"));
        assert!(Identity::new("admin", Role::Admin).may_act_on("prod1"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn certificate_names_are_plain() {
        assert!(check_name("ci@example.com").is_ok());
        assert!(check_name("a/b").is_err());
        assert!(check_name("").is_err());
        let refused = check_name(&"x".repeat(100_000)).unwrap_err();
        assert!(refused.len() < 200, "{} bytes echoed", refused.len());
    }

    #[test]
    fn roles_rank_operators_and_keep_agents_apart() {
        assert!(Role::Admin.allows(Role::Deployer));
        assert!(Role::Deployer.allows(Role::Viewer));
        assert!(!Role::Viewer.allows(Role::Deployer));
        assert!(!Role::Agent.allows(Role::Viewer));
        assert!(!Role::Admin.allows(Role::Agent));
        assert!(Role::Agent.allows(Role::Agent));
    }
}
