//! Who is calling: the identity in the verified client certificate, and whether
//! its role allows the RPC.

use tonic::{Request, Status};

use crate::pki::{Identity, Role, identity_from_der};

/// The caller's identity, or UNAUTHENTICATED when it sent no certificate.
pub fn identity<T>(request: &Request<T>) -> Result<Identity, Status> {
    let certs = request.peer_certs().filter(|c| !c.is_empty()).ok_or_else(|| {
        Status::unauthenticated(
            "no client certificate: connect with a certificate issued by this coordinator (see profile.toml)",
        )
    })?;
    identity_from_der(certs[0].as_ref())
        .map_err(|e| Status::unauthenticated(format!("client certificate refused: {e}")))
}

/// The caller's identity if its role allows `needed`, else PERMISSION_DENIED.
pub fn require<T>(request: &Request<T>, needed: Role) -> Result<Identity, Status> {
    let identity = identity(request)?;
    if identity.role.allows(needed) {
        Ok(identity)
    } else {
        Err(Status::permission_denied(format!(
            "{identity} may not do this: it needs the {} role",
            needed.as_str()
        )))
    }
}

/// For services with no roles of their own (health, reflection): any valid
/// Slipway certificate will do, none will not.
pub fn require_certificate(request: Request<()>) -> Result<Request<()>, Status> {
    identity(&request)?;
    Ok(request)
}
