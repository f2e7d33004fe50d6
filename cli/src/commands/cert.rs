//! `slipway cert issue`: a key made here, signed by the coordinator with a role,
//! written as a profile bundle; `slipway cert renew`: the profile's own again.

use std::path::PathBuf;

use anyhow::Context;

use crate::client::Client;
use crate::failure::Failure;
use crate::render::{Output, print, when};
use crate::schema::{Issued, rfc3339};

/// What `cert issue` was asked for.
#[derive(Debug)]
pub struct Issue {
    pub name: String,
    pub role: String,
    pub environments: Vec<String>,
    pub days: u32,
    pub out: PathBuf,
}

pub async fn issue(client: &mut Client, output: Output, asked: Issue) -> Result<(), Failure> {
    let Issue {
        name,
        role,
        environments,
        days,
        out,
    } = asked;
    let (key, csr_pem) = key_and_csr(&name)?;
    let (certificate_pem, ca_pem, expires_at_ms) = client
        .issue_certificate(name.clone(), role.clone(), environments, days, csr_pem)
        .await?;
    let profile = &client.profile;
    let written = slipway_common::profile::write_bundle(
        &out,
        &profile.coordinator,
        &profile.server_name,
        &ca_pem,
        &certificate_pem,
        &key.serialize_pem(),
    )
    .with_context(|| format!("cannot write the certificate to {}", out.display()))?;
    if output.structured() {
        return print_issued(output, &written, expires_at_ms);
    }
    println!(
        "issued {name} ({role}), expires {}: use it with --profile {}",
        when(expires_at_ms),
        written.display()
    );
    Ok(())
}

/// A key made here and a request for it; the coordinator decides the
/// certificate's name and role, whatever the request says.
fn key_and_csr(name: &str) -> anyhow::Result<(rcgen::KeyPair, String)> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .context("cannot make a key")?;
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let csr_pem = params
        .serialize_request(&key)
        .and_then(|csr| csr.pem())
        .context("cannot make a certificate request")?;
    Ok((key, csr_pem))
}

/// `slipway cert renew`: this profile's certificate again, from the CA that
/// signs now; the profile file is rewritten whole with the new PEMs inline.
pub async fn renew(client: &mut Client, output: Output) -> Result<(), Failure> {
    let (key, csr_pem) = key_and_csr("renewal")?;
    let (certificate_pem, ca_pem, expires_at_ms) = client.renew_certificate(csr_pem).await?;
    let path = client.profile.path.clone();
    crate::profile::renew(&path, &ca_pem, &certificate_pem, &key.serialize_pem())?;
    if output.structured() {
        return print_issued(output, &path, expires_at_ms);
    }
    println!(
        "renewed, expires {}: written into {} (the files it named before are left as they were)",
        when(expires_at_ms),
        path.display()
    );
    Ok(())
}

/// The `Issued` document of a profile written at `profile`.
fn print_issued(
    output: Output,
    profile: &std::path::Path,
    expires_at_ms: i64,
) -> Result<(), Failure> {
    let issued = Issued {
        profile: profile.display().to_string(),
        expires_at: rfc3339(expires_at_ms),
        expires_at_ms,
    };
    print(output, &issued)
}
