//! The operator profile: how the CLI reaches a coordinator and which certificate
//! it presents. Written by `slipway-coordinator --dev`, `ca issue` and
//! `slipway cert issue`; read by the CLI. Paths are relative to the profile's
//! folder; each PEM may instead be inline (`ca_pem`, ...), as a kubeconfig's
//! `*-data` fields are, so one file can be copied or kept in a CI secret.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileFile {
    /// `https://host:port` of the coordinator.
    pub coordinator: String,
    /// More coordinators on the same store (PostgreSQL), tried in order
    /// when `coordinator` does not answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_coordinators: Vec<String>,
    /// The name on the coordinator's certificate.
    pub server_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// The CA certificate itself, instead of `ca`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// The client certificate itself, instead of `certificate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_pem: Option<String>,
    /// The private key itself, instead of `key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_pem: Option<String>,
}

/// Writes a certificate bundle into `dir` (ca.pem, cert.pem, key.pem owner-only)
/// and a `profile.toml` that uses it; returns the profile's path.
pub fn write_bundle(
    dir: &Path,
    coordinator: &str,
    server_name: &str,
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> std::io::Result<PathBuf> {
    crate::private_file::create_dir(dir)?;
    std::fs::write(dir.join("ca.pem"), ca_pem)?;
    std::fs::write(dir.join("cert.pem"), cert_pem)?;
    crate::private_file::write(&dir.join("key.pem"), key_pem.as_bytes())?;
    let profile = ProfileFile {
        coordinator: coordinator.to_string(),
        other_coordinators: Vec::new(),
        server_name: server_name.to_string(),
        ca: Some("ca.pem".into()),
        certificate: Some("cert.pem".into()),
        key: Some("key.pem".into()),
        ca_pem: None,
        certificate_pem: None,
        key_pem: None,
    };
    write_profile(&dir.join("profile.toml"), &profile)?;
    Ok(dir.join("profile.toml"))
}

/// Writes a profile whole, owner-only (it may hold a key inline), then
/// renames it, so a reader never sees half of one.
pub fn write_profile(path: &Path, profile: &ProfileFile) -> std::io::Result<()> {
    let text = toml::to_string(profile).map_err(std::io::Error::other)?;
    crate::private_file::write(
        path,
        format!("# How the slipway CLI reaches its coordinator.\n{text}").as_bytes(),
    )
}
