//! The coordinator's certificate authority and the identities it vouches for.
//!
//! The CA (ECDSA P-256) is made in the data dir on first start. It signs the
//! coordinator's server certificate, operator certificates, and agents' CSRs
//! (the agent keeps its key; only the request travels). A certificate's subject
//! carries the identity: CN is the name (an instance id for agents), OU the role.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
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
    #[error("{0}")]
    Rotation(String),
}

impl crate::error::Coded for PkiError {
    fn code(&self) -> crate::error::Code {
        use crate::error::Code;
        match self {
            PkiError::BadCsr(_) | PkiError::BadCertificate(_) => Code::Invalid,
            PkiError::Rotation(_) => Code::FailedPrecondition,
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

/// One CA certificate, as clients see it.
#[derive(Debug, Clone)]
struct Generation {
    cert_pem: String,
    fingerprint: String,
    /// Its subject name (DER): what a certificate it signed names as issuer.
    subject: Vec<u8>,
}

impl Generation {
    fn of(cert_pem: String) -> Result<Generation, PkiError> {
        use rustls_pki_types::{CertificateDer, pem::PemObject};
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| PkiError::BadCertificate(e.to_string()))?;
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
            .map_err(|e| PkiError::BadCertificate(e.to_string()))?;
        let subject = cert.subject().as_raw().to_vec();
        Ok(Generation {
            fingerprint: fingerprint_pem(&cert_pem)?,
            cert_pem,
            subject,
        })
    }
}

/// The CA as it stands: the one that signs and, while a rotation overlaps,
/// the one before it, still trusted, with the signing CA's certificate signed
/// by it (the cross certificate) so that clients trusting only the old CA
/// still recognise the coordinator.
struct Authority {
    signing: Generation,
    issuer: Issuer<'static, KeyPair>,
    previous: Option<(Generation, String)>,
}

impl Authority {
    fn state(&self) -> RotationState {
        RotationState {
            signing: self.signing.fingerprint.clone(),
            previous: self.previous.as_ref().map(|(p, _)| p.fingerprint.clone()),
        }
    }
}

/// What `Ca::follow` did: whether the CA in use changed, and what this host
/// lacks to be where the leader is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Followed {
    pub changed: bool,
    pub behind: Option<String>,
}

/// Where a CA rotation stands, for `slipway ca status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RotationState {
    /// Fingerprint of the CA that signs.
    pub signing: String,
    /// Fingerprint of the CA still trusted during an overlap.
    pub previous: Option<String>,
}

/// The data dir's CA. Files: `ca.pem` and `ca.key`; during a rotation also
/// `next/` (the new CA's `ca.pem`, `ca.key` and `cross.pem`), which signs.
/// Finishing replaces `ca.key` first (the commit point), then `ca.pem`, then
/// drops `next/`; a stop between those is completed at the next load.
pub struct Ca {
    dir: PathBuf,
    now: RwLock<Arc<Authority>>,
    /// One rotation step at a time.
    changing: Mutex<()>,
    /// Counts rotation steps: TLS settings made before a step are remade.
    generation: AtomicU64,
    /// What certificates' validity starts from.
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ca({})", self.current().signing.fingerprint)
    }
}

const NEXT: &str = "next";
const NEXT_PARTIAL: &str = "next.partial";
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

impl Ca {
    /// Loads the CA from `dir`, or creates it there on first start.
    pub fn load_or_create(dir: &Path, clock: Arc<dyn Clock>) -> Result<Ca, PkiError> {
        let cert_path = dir.join("ca.pem");
        let key_path = dir.join("ca.key");
        if !cert_path.exists() && !key_path.exists() {
            create_dir(dir)?;
            let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
            let params = ca_params("Slipway CA", clock.now());
            let cert = params.self_signed(&key)?;
            write_private(&key_path, &key.serialize_pem())?;
            write_file(&cert_path, &cert.pem())?;
        }
        let authority = read_authority(dir)?;
        Ok(Ca {
            dir: dir.to_path_buf(),
            now: RwLock::new(Arc::new(authority)),
            changing: Mutex::new(()),
            generation: AtomicU64::new(0),
            clock,
        })
    }

    /// Goes up by one with each rotation step.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn replace(&self, authority: Authority) {
        *self.now.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(authority);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn current(&self) -> Arc<Authority> {
        self.now.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The certificate of the CA that signs: what launches carry and what
    /// renewed clients are told to trust once the rotation finishes.
    pub fn cert_pem(&self) -> String {
        self.current().signing.cert_pem.clone()
    }

    /// `sha256:<hex>` of the signing CA certificate's DER: what launches carry
    /// so an agent can check it talks to the right coordinator.
    pub fn fingerprint(&self) -> String {
        self.current().signing.fingerprint.clone()
    }

    /// Every CA certificate trusted now, signing first: one, or two during a
    /// rotation. What the coordinator checks client certificates against and
    /// what it hands to clients that renew.
    pub fn trusted_pem(&self) -> String {
        let now = self.current();
        let mut pem = now.signing.cert_pem.clone();
        if let Some((previous, _)) = &now.previous {
            pem.push_str(&previous.cert_pem);
        }
        pem
    }

    pub fn rotation(&self) -> RotationState {
        self.current().state()
    }

    /// The fingerprint of the trusted CA that signed the certificate `der`.
    pub fn signer(&self, der: &[u8]) -> Option<String> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let issuer = cert.issuer().as_raw();
        let now = self.current();
        std::iter::once(&now.signing)
            .chain(now.previous.as_ref().map(|(p, _)| p))
            .find(|g| g.subject.as_slice() == issuer)
            .map(|g| g.fingerprint.clone())
    }

    /// `signer` of the first certificate in a PEM text.
    pub fn signer_pem(&self, pem: &str) -> Option<String> {
        use rustls_pki_types::{CertificateDer, pem::PemObject};
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).ok()?;
        self.signer(der.as_ref())
    }

    /// Starts a rotation: a new CA that signs from now on, its certificate
    /// cross-signed by the current one, which stays trusted until `finish`.
    pub fn begin_rotation(&self) -> Result<RotationState, PkiError> {
        let _one = self.changing.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.current();
        if let Some((previous, _)) = &now.previous {
            return Err(PkiError::Rotation(format!(
                "a rotation away from {} is under way: finish it first (`slipway ca finish`)",
                previous.fingerprint
            )));
        }
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let label = hex::encode(rand::random::<[u8; 4]>());
        let params = ca_params(&format!("Slipway CA {label}"), self.clock.now());
        let cert = params.self_signed(&key)?;
        let cross = params.signed_by(&key, &now.issuer)?;
        // Written whole under another name, then renamed: a stop halfway leaves
        // no `next/` for the next load to mistake for a rotation.
        let partial = self.dir.join(NEXT_PARTIAL);
        if partial.exists() {
            remove_dir(&partial)?;
        }
        create_dir(&partial)?;
        write_private(&partial.join("ca.key"), &key.serialize_pem())?;
        write_private(&partial.join("ca.pem"), &cert.pem())?;
        write_private(&partial.join("cross.pem"), &cross.pem())?;
        let next = self.dir.join(NEXT);
        std::fs::rename(&partial, &next).map_err(|source| PkiError::File {
            action: "rename into place",
            path: next.display().to_string(),
            source,
        })?;
        let authority = Authority {
            signing: Generation::of(cert.pem())?,
            issuer: Issuer::new(params, key),
            previous: Some((now.signing.clone(), cross.pem())),
        };
        self.replace(authority);
        Ok(self.rotation())
    }

    /// Ends a rotation: the previous CA is trusted no more and its key is gone
    /// (its certificate is kept under `retired/`).
    pub fn finish_rotation(&self) -> Result<RotationState, PkiError> {
        let _one = self.changing.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.current();
        let Some((previous, _)) = &now.previous else {
            return Err(PkiError::Rotation(
                "no rotation is under way: start one with `slipway ca rotate`".into(),
            ));
        };
        finish_files(&self.dir, previous)?;
        self.replace(read_authority(&self.dir)?);
        Ok(self.rotation())
    }

    /// On a standby: takes up the rotation step the leader last took
    /// (`leader`, from the store) from this host's own `ca/`. The new CA's
    /// key never travels through the store: during a rotation it must be
    /// copied here (`next/`) by hand; a finish is then done here too.
    pub fn follow(&self, leader: &RotationState) -> Result<Followed, PkiError> {
        let _one = self.changing.lock().unwrap_or_else(|e| e.into_inner());
        let mut disk = read_authority(&self.dir)?;
        if leader.previous.is_none()
            && disk.signing.fingerprint == leader.signing
            && let Some((previous, _)) = &disk.previous
        {
            finish_files(&self.dir, previous)?;
            disk = read_authority(&self.dir)?;
        }
        let on_disk = disk.state();
        let behind = (on_disk != *leader).then(|| match &leader.previous {
            Some(_) => format!(
                "the leader rotated the CA to {}: copy its ca/next/ into {}",
                leader.signing,
                self.dir.join(NEXT).display()
            ),
            None => format!(
                "the leader's CA is {}, this host's {}: copy the leader's ca/ca.pem and ca/ca.key into {}",
                leader.signing,
                on_disk.signing,
                self.dir.display()
            ),
        });
        let changed = on_disk != self.rotation();
        if changed {
            self.replace(disk);
        }
        Ok(Followed { changed, behind })
    }

    /// A fresh server certificate for `names` (DNS names or IP addresses),
    /// with the cross certificate after it during a rotation: its chain.
    pub fn issue_server(&self, names: &[String]) -> Result<KeyedCertificate, PkiError> {
        let now = self.current();
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
        let cert = params.signed_by(&key, &now.issuer)?;
        let mut chain = cert.pem();
        if let Some((_, cross)) = &now.previous {
            chain.push_str(cross);
        }
        Ok(KeyedCertificate {
            cert_pem: chain,
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
        let cert = params.signed_by(&key, &self.current().issuer)?;
        Ok(KeyedCertificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

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

    /// Signs a CSR. The subject comes from `identity`, never from the
    /// request, so a caller cannot ask for a name or role it was not given.
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
        .signed_by(&self.current().issuer)?;
        Ok((signed.pem(), expires_at))
    }
}

/// What a CA certificate says: unconstrained, signs certificates and CRLs.
fn ca_params(common_name: &str, now: Millis) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Slipway");
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, now, CA_LIFETIME);
    params
}

/// The certificate and key in `dir`, checked to belong together.
fn load_pair(dir: &Path) -> Result<(Generation, Issuer<'static, KeyPair>), String> {
    let cert_pem = read(&dir.join("ca.pem")).map_err(|e| e.to_string())?;
    let key_pem = read(&dir.join("ca.key")).map_err(|e| e.to_string())?;
    let key = KeyPair::from_pem(&key_pem).map_err(|e| format!("ca.key: {e}"))?;
    let generation = Generation::of(cert_pem.clone()).map_err(|e| format!("ca.pem: {e}"))?;
    if !generation_holds_key(&cert_pem, &key) {
        return Err("ca.pem and ca.key do not belong together".into());
    }
    let issuer = Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|e| format!("ca.pem: {e}"))?;
    Ok((generation, issuer))
}

fn generation_holds_key(cert_pem: &str, key: &KeyPair) -> bool {
    use rustls_pki_types::{CertificateDer, pem::PemObject};
    let Ok(der) = CertificateDer::from_pem_slice(cert_pem.as_bytes()) else {
        return false;
    };
    x509_parser::parse_x509_certificate(der.as_ref()).is_ok_and(|(_, cert)| {
        cert.public_key().subject_public_key.data.as_ref() == rcgen::PublicKeyData::der_bytes(key)
    })
}

/// The CA as `dir` holds it, a stopped rotation step settled first.
fn read_authority(dir: &Path) -> Result<Authority, PkiError> {
    let bad = |message: String| PkiError::BadCa {
        dir: dir.display().to_string(),
        message,
    };
    settle(dir)?;
    let (current, current_issuer) = load_pair(dir).map_err(bad)?;
    let next = dir.join(NEXT);
    Ok(if next.exists() {
        let (signing, issuer) = load_pair(&next).map_err(bad)?;
        let cross = read(&next.join("cross.pem"))?;
        Authority {
            signing,
            issuer,
            previous: Some((current, cross)),
        }
    } else {
        Authority {
            signing: current,
            issuer: current_issuer,
            previous: None,
        }
    })
}

/// A finish on disk: the previous CA's certificate kept under `retired/`,
/// then `ca.key` replaced by the new one (the commit point), then the rest.
fn finish_files(dir: &Path, previous: &Generation) -> Result<(), PkiError> {
    let retired = dir.join("retired");
    create_dir(&retired)?;
    let hex = previous.fingerprint.trim_start_matches("sha256:");
    write_private(
        &retired.join(format!("{}.pem", &hex[..16.min(hex.len())])),
        &previous.cert_pem,
    )?;
    write_private(&dir.join("ca.key"), &read(&dir.join(NEXT).join("ca.key"))?)?;
    complete_finish(dir)
}

/// Completes what a stopped begin or finish left: a partial `next.partial/`
/// is dropped; a `next/` whose key is already `ca.key` was being finished.
fn settle(dir: &Path) -> Result<(), PkiError> {
    let partial = dir.join(NEXT_PARTIAL);
    if partial.exists() {
        remove_dir(&partial)?;
    }
    let next = dir.join(NEXT);
    if next.exists() && read(&next.join("ca.key"))? == read(&dir.join("ca.key"))? {
        complete_finish(dir)?;
    }
    Ok(())
}

/// The steps of a finish after its commit point (`ca.key` replaced).
fn complete_finish(dir: &Path) -> Result<(), PkiError> {
    let next = dir.join(NEXT);
    write_private(&dir.join("ca.pem"), &read(&next.join("ca.pem"))?)?;
    remove_dir(&next)
}

fn create_dir(dir: &Path) -> Result<(), PkiError> {
    slipway_common::private_file::create_dir(dir).map_err(|source| PkiError::File {
        action: "create",
        path: dir.display().to_string(),
        source,
    })
}

fn remove_dir(dir: &Path) -> Result<(), PkiError> {
    std::fs::remove_dir_all(dir).map_err(|source| PkiError::File {
        action: "remove",
        path: dir.display().to_string(),
        source,
    })
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

    /// Whether a client trusting only `roots` (PEM) accepts `server`'s chain.
    fn accepted_by(roots: &str, server: &KeyedCertificate) -> Result<(), String> {
        use rustls::client::danger::ServerCertVerifier;
        use rustls_pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject};
        let mut store = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(roots.as_bytes()) {
            store.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider)
                .build()
                .unwrap();
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(server.cert_pem.as_bytes())
                .map(Result::unwrap)
                .collect();
        verifier
            .verify_server_cert(
                &chain[0],
                &chain[1..],
                &ServerName::try_from(SERVER_NAME).unwrap(),
                &[],
                UnixTime::now(),
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn during_a_rotation_clients_of_either_ca_accept_the_server_and_after_it_only_the_new_ones() {
        let dir = temp_dir("rotate");
        let ca = Ca::load_or_create(&dir, Arc::new(SystemClock)).unwrap();
        let old = ca.cert_pem();
        let old_client = ca
            .issue_client(
                &Identity::new("ci", Role::Deployer),
                Duration::from_secs(600),
            )
            .unwrap();
        assert!(accepted_by(&old, &ca.issue_server(&[SERVER_NAME.into()]).unwrap()).is_ok());

        let begun = ca.begin_rotation().unwrap();
        let new = ca.cert_pem();
        assert_ne!(old, new);
        assert_eq!(
            begun.previous.as_deref(),
            Some(fingerprint_pem(&old).unwrap().as_str())
        );
        assert_eq!(begun.signing, fingerprint_pem(&new).unwrap());
        let overlapping = ca.issue_server(&[SERVER_NAME.into()]).unwrap();
        assert_eq!(overlapping.cert_pem.matches("BEGIN CERTIFICATE").count(), 2);
        accepted_by(&old, &overlapping).unwrap();
        accepted_by(&new, &overlapping).unwrap();
        // Both CAs are trusted, and each certificate names its own signer.
        assert_eq!(ca.trusted_pem(), format!("{new}{old}"));
        let new_client = ca
            .issue_client(
                &Identity::new("ci", Role::Deployer),
                Duration::from_secs(600),
            )
            .unwrap();
        assert_eq!(
            ca.signer_pem(&new_client.cert_pem),
            Some(begun.signing.clone())
        );
        assert_eq!(ca.signer_pem(&old_client.cert_pem), begun.previous.clone());
        let again = ca.begin_rotation().unwrap_err();
        assert!(again.to_string().contains("finish it first"), "{again}");

        // A restart in the window keeps it.
        let reloaded = Ca::load_or_create(&dir, Arc::new(SystemClock)).unwrap();
        assert_eq!(reloaded.rotation(), begun);

        let finished = ca.finish_rotation().unwrap();
        assert_eq!(finished.signing, begun.signing);
        assert_eq!(finished.previous, None);
        let after = ca.issue_server(&[SERVER_NAME.into()]).unwrap();
        assert_eq!(after.cert_pem.matches("BEGIN CERTIFICATE").count(), 1);
        accepted_by(&new, &after).unwrap();
        let refused = accepted_by(&old, &after).unwrap_err();
        assert!(refused.contains("UnknownIssuer"), "{refused}");
        assert_eq!(ca.trusted_pem(), new);
        assert_eq!(ca.signer_pem(&old_client.cert_pem), None);
        // On disk: the new CA in ca.pem and ca.key, the old key gone.
        let reloaded = Ca::load_or_create(&dir, Arc::new(SystemClock)).unwrap();
        assert_eq!(reloaded.rotation(), finished);
        assert!(!dir.join("next").exists());
        assert_eq!(std::fs::read_dir(dir.join("retired")).unwrap().count(), 1);
        let none = ca.finish_rotation().unwrap_err();
        assert!(none.to_string().contains("no rotation"), "{none}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_rotation_step_stopped_halfway_is_settled_at_the_next_load() {
        let dir = temp_dir("settle");
        let ca = Ca::load_or_create(&dir, Arc::new(SystemClock)).unwrap();
        let old = ca.rotation();
        let old_pem = ca.cert_pem();
        // A begin that stopped before its rename leaves only next.partial/.
        std::fs::create_dir_all(dir.join(NEXT_PARTIAL)).unwrap();
        std::fs::write(dir.join(NEXT_PARTIAL).join("ca.key"), "half").unwrap();
        let loaded = Ca::load_or_create(&dir, Arc::new(SystemClock)).unwrap();
        assert_eq!(loaded.rotation(), old);
        assert!(!dir.join(NEXT_PARTIAL).exists());

        // A finish that stopped after its commit point (ca.key replaced).
        let begun = loaded.begin_rotation().unwrap();
        std::fs::copy(dir.join("next").join("ca.key"), dir.join("ca.key")).unwrap();
        let settled = Ca::load_or_create(&dir, Arc::new(SystemClock)).unwrap();
        assert_eq!(settled.rotation().signing, begun.signing);
        assert_eq!(settled.rotation().previous, None);
        assert!(!dir.join("next").exists());
        assert_eq!(
            fingerprint_pem(&read(&dir.join("ca.pem")).unwrap()).unwrap(),
            begun.signing
        );

        // A certificate and key that do not go together are refused, naming the files.
        std::fs::write(dir.join("ca.pem"), old_pem).unwrap();
        let refused = Ca::load_or_create(&dir, Arc::new(SystemClock)).unwrap_err();
        assert!(
            refused.to_string().contains("do not belong together"),
            "{refused}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_standby_on_another_host_follows_the_leaders_rotation_from_its_own_files() {
        let leader_dir = temp_dir("follow-leader");
        let standby_dir = temp_dir("follow-standby");
        let leader = Ca::load_or_create(&leader_dir, Arc::new(SystemClock)).unwrap();
        // The standby's host got a copy of the leader's ca/ at setup.
        std::fs::create_dir_all(&standby_dir).unwrap();
        for file in ["ca.pem", "ca.key"] {
            std::fs::copy(leader_dir.join(file), standby_dir.join(file)).unwrap();
        }
        let standby = Ca::load_or_create(&standby_dir, Arc::new(SystemClock)).unwrap();
        let same = standby.follow(&leader.rotation()).unwrap();
        assert_eq!(
            same,
            Followed {
                changed: false,
                behind: None
            }
        );

        // The leader rotates; until next/ is copied, the standby says what it lacks.
        let begun = leader.begin_rotation().unwrap();
        let behind = standby.follow(&begun).unwrap();
        assert!(!behind.changed);
        assert!(behind.behind.unwrap().contains("copy its ca/next/"));
        assert_eq!(standby.rotation().previous, None);
        std::fs::create_dir_all(standby_dir.join(NEXT)).unwrap();
        for file in ["ca.pem", "ca.key", "cross.pem"] {
            std::fs::copy(
                leader_dir.join(NEXT).join(file),
                standby_dir.join(NEXT).join(file),
            )
            .unwrap();
        }
        let generation = standby.generation();
        let taken = standby.follow(&begun).unwrap();
        assert_eq!(
            taken,
            Followed {
                changed: true,
                behind: None
            }
        );
        assert_eq!(standby.rotation(), begun);
        assert!(standby.generation() > generation, "its TLS is remade");
        let issued = standby.issue_server(&[SERVER_NAME.into()]).unwrap();
        accepted_by(&leader.cert_pem(), &issued).unwrap();

        // The leader finishes: the standby finishes its own files likewise.
        let finished = leader.finish_rotation().unwrap();
        let done = standby.follow(&finished).unwrap();
        assert_eq!(
            done,
            Followed {
                changed: true,
                behind: None
            }
        );
        assert_eq!(standby.rotation(), finished);
        assert!(!standby_dir.join(NEXT).exists());
        assert_eq!(
            std::fs::read(standby_dir.join("ca.key")).unwrap(),
            std::fs::read(leader_dir.join("ca.key")).unwrap()
        );
        // A host whose CA is another says so, and keeps its own.
        let stranger = temp_dir("follow-stranger");
        let other = Ca::load_or_create(&stranger, Arc::new(SystemClock)).unwrap();
        let own = other.rotation();
        let lost = other.follow(&finished).unwrap();
        assert!(lost.behind.unwrap().contains("copy the leader's ca/ca.pem"));
        assert_eq!(other.rotation(), own);
        for dir in [leader_dir, standby_dir, stranger] {
            let _ = std::fs::remove_dir_all(&dir);
        }
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
