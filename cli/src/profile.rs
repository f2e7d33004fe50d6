//! The CLI's profile: where the coordinator is and which certificate to use.
//! Found from `--profile FILE`, `$SLIPWAY_PROFILE`, or `./.slipway/profile.toml`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use slipway_common::profile::ProfileFile;

pub const DEFAULT_PROFILE: &str = ".slipway/profile.toml";

/// A loaded profile: the address and the PEM texts it points at.
#[derive(Debug, Clone)]
pub struct Profile {
    pub path: PathBuf,
    /// The coordinator to call (after `Client::connect`, the one that answered).
    pub coordinator: String,
    /// More coordinators on the same store, tried in order after `coordinator`.
    pub others: Vec<String>,
    pub server_name: String,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// Which profile to use: the flag, else the environment, else the default path.
pub fn locate(flag: Option<PathBuf>, env: Option<String>) -> PathBuf {
    flag.or_else(|| env.filter(|e| !e.is_empty()).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PROFILE))
}

pub fn load(path: &Path) -> anyhow::Result<Profile> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "no profile at {}: start `slipway-coordinator --dev`, or pass --profile FILE / set SLIPWAY_PROFILE",
            path.display()
        )
    })?;
    let file: ProfileFile = toml::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "{}: {}",
            path.display(),
            e.to_string().trim().replace('\n', " ")
        )
    })?;
    for address in std::iter::once(&file.coordinator).chain(&file.other_coordinators) {
        if !address.starts_with("https://") {
            bail!(
                "{}: coordinator {address:?} must start with https:// (Slipway has no plaintext port)",
                path.display(),
            );
        }
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let pem = |key: &str, inline: Option<String>, file: Option<&Path>| match (inline, file) {
        (Some(text), None) => Ok(text),
        (None, Some(relative)) => {
            let full = base.join(relative);
            std::fs::read_to_string(&full).map_err(|e| {
                let copied = if relative.is_relative() {
                    format!(
                        " (relative paths are read from the profile's own folder, {}: a profile copied elsewhere needs its files beside it, or the PEM inline as {key}_pem)",
                        base.display()
                    )
                } else {
                    String::new()
                };
                anyhow::anyhow!("{}: {key} file {} is unreadable: {e}{copied}", path.display(), full.display())
            })
        }
        (Some(_), Some(_)) => bail!("{}: give {key} or {key}_pem, not both", path.display()),
        (None, None) => bail!(
            "{}: no {key}: give the file ({key} = \"...\") or the PEM inline ({key}_pem = \"\"\"...\"\"\")",
            path.display()
        ),
    };
    Ok(Profile {
        path: path.to_path_buf(),
        ca_pem: pem("ca", file.ca_pem, file.ca.as_deref())?,
        cert_pem: pem(
            "certificate",
            file.certificate_pem,
            file.certificate.as_deref(),
        )?,
        key_pem: pem("key", file.key_pem, file.key.as_deref())?,
        coordinator: file.coordinator,
        others: file.other_coordinators,
        server_name: file.server_name,
    })
}

/// Rewrites the profile at `path` with a renewed certificate, its key and the
/// CAs to trust, inline: one file replaced whole (owner-only, as it now holds
/// a key), so a stop halfway leaves the old profile or the new one.
pub fn renew(path: &Path, ca_pem: &str, cert_pem: &str, key_pem: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the profile {} again", path.display()))?;
    let mut file: ProfileFile =
        toml::from_str(&text).with_context(|| format!("{} changed meanwhile", path.display()))?;
    file.ca = None;
    file.certificate = None;
    file.key = None;
    file.ca_pem = Some(ca_pem.to_string());
    file.certificate_pem = Some(cert_pem.to_string());
    file.key_pem = Some(key_pem.to_string());
    slipway_common::profile::write_profile(path, &file).with_context(|| {
        format!(
            "cannot write the renewed profile {} (the new key is lost; run renew again)",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_wins_over_the_environment_and_the_default() {
        assert_eq!(
            locate(Some("a.toml".into()), Some("b.toml".into())),
            PathBuf::from("a.toml")
        );
        assert_eq!(locate(None, Some("b.toml".into())), PathBuf::from("b.toml"));
        assert_eq!(
            locate(None, Some(String::new())),
            PathBuf::from(DEFAULT_PROFILE)
        );
        assert_eq!(locate(None, None), PathBuf::from(DEFAULT_PROFILE));
    }

    #[test]
    fn a_missing_profile_says_how_to_get_one() {
        let err = load(Path::new("/nonexistent/profile.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("slipway-coordinator --dev"), "{err}");
    }

    #[test]
    fn a_plaintext_coordinator_is_refused() {
        let dir = std::env::temp_dir().join(format!("slipway-profile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("profile.toml");
        std::fs::write(&path, "coordinator = \"http://x:1\"\nserver_name = \"s\"\nca = \"a\"\ncertificate = \"b\"\nkey = \"c\"\n").unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("must start with https://"), "{err}");
        std::fs::write(&path, "coordinator = \"https://x:1\"\nwho = 1\n").unwrap();
        assert!(
            load(&path)
                .unwrap_err()
                .to_string()
                .contains("unknown field")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn pems_may_be_inline_and_a_copied_profile_says_why_it_broke() {
        let dir = std::env::temp_dir().join(format!("slipway-inline-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("profile.toml");
        let head = "coordinator = \"https://x:1\"\nserver_name = \"s\"\n";
        std::fs::write(
            &path,
            format!("{head}ca_pem = \"CA\"\ncertificate_pem = \"CERT\"\nkey_pem = \"KEY\"\n"),
        )
        .unwrap();
        let inline = load(&path).unwrap();
        assert_eq!(
            (
                inline.ca_pem.as_str(),
                inline.cert_pem.as_str(),
                inline.key_pem.as_str()
            ),
            ("CA", "CERT", "KEY")
        );
        std::fs::write(
            &path,
            format!("{head}ca = \"ca.pem\"\ncertificate = \"cert.pem\"\nkey = \"key.pem\"\n"),
        )
        .unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("profile copied elsewhere"), "{err}");
        assert!(err.contains("ca_pem"), "{err}");
        std::fs::write(&path, format!("{head}ca = \"a\"\nca_pem = \"CA\"\n")).unwrap();
        assert!(load(&path).unwrap_err().to_string().contains("not both"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
