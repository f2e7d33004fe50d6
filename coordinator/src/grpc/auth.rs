//! Who is calling: the identity in the verified client certificate, and whether
//! its role allows the RPC.

use std::fmt;

use sha2::{Digest, Sha256};
use tonic::{Request, Status};

use crate::pki::{Identity, Role, identity_from_der};
use crate::revocation::Revocations;

/// A caller whose certificate the TLS layer verified.
#[derive(Debug, Clone)]
pub struct Caller {
    pub identity: Identity,
    /// `sha256:` of the certificate, so the audit log says which one was used.
    pub certificate: String,
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.identity.fmt(f)
    }
}

impl Caller {
    /// Ok if the caller's role allows `needed`, else PERMISSION_DENIED naming it.
    pub fn require(&self, needed: Role) -> Result<(), Status> {
        if self.identity.role.allows(needed) {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "{} may not do this: it needs the {} role",
                self.identity,
                needed.as_str()
            )))
        }
    }
}

/// The caller, or UNAUTHENTICATED when it sent no certificate, or
/// PERMISSION_DENIED when its certificate was revoked.
pub fn caller<T>(request: &Request<T>, revocations: &Revocations) -> Result<Caller, Status> {
    let caller = certificate_holder(request)?;
    if revocations.is_revoked(&caller.identity.name) {
        return Err(Status::permission_denied(format!(
            "the certificates of {} were revoked",
            caller.identity.name
        )));
    }
    Ok(caller)
}

fn certificate_holder<T>(request: &Request<T>) -> Result<Caller, Status> {
    let certs = request.peer_certs().filter(|c| !c.is_empty()).ok_or_else(|| {
        Status::unauthenticated(
            "no client certificate: connect with a certificate issued by this coordinator (see profile.toml)",
        )
    })?;
    let der = certs[0].as_ref();
    let identity = identity_from_der(der)
        .map_err(|e| Status::unauthenticated(format!("client certificate refused: {e}")))?;
    Ok(Caller {
        identity,
        certificate: format!("sha256:{}", hex::encode(Sha256::digest(der))),
    })
}

/// How long the caller's certificate was made to last (not before to not
/// after, less the few minutes of slack every certificate starts with).
pub fn certificate_lifetime<T>(request: &Request<T>) -> Result<std::time::Duration, Status> {
    let certs = request
        .peer_certs()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            Status::unauthenticated(
                "no client certificate: connect with one issued by this coordinator",
            )
        })?;
    let (_, cert) = x509_parser::parse_x509_certificate(certs[0].as_ref())
        .map_err(|e| Status::unauthenticated(format!("client certificate refused: {e}")))?;
    let validity = cert.validity();
    let seconds = validity.not_after.timestamp() - validity.not_before.timestamp() - 5 * 60;
    Ok(std::time::Duration::from_secs(seconds.max(60) as u64))
}

/// The caller if its role allows `needed`.
pub fn require<T>(
    request: &Request<T>,
    revocations: &Revocations,
    needed: Role,
) -> Result<Caller, Status> {
    let caller = caller(request, revocations)?;
    caller.require(needed)?;
    Ok(caller)
}

/// For services with no roles of their own (health, reflection): any valid
/// Slipway certificate will do, none will not. (Revoked ones never get past the
/// handshake.)
pub fn require_certificate(request: Request<()>) -> Result<Request<()>, Status> {
    certificate_holder(&request)?;
    Ok(request)
}
