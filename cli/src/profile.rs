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
    pub coordinator: String,
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
    if !file.coordinator.starts_with("https://") {
        bail!(
            "{}: coordinator {:?} must start with https:// (Slipway has no plaintext port)",
            path.display(),
            file.coordinator
        );
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let read = |key: &str, relative: &Path| {
        let full = base.join(relative);
        std::fs::read_to_string(&full).with_context(|| {
            format!(
                "{}: {key} file {} is unreadable",
                path.display(),
                full.display()
            )
        })
    };
    Ok(Profile {
        path: path.to_path_buf(),
        ca_pem: read("ca", &file.ca)?,
        cert_pem: read("certificate", &file.certificate)?,
        key_pem: read("key", &file.key)?,
        coordinator: file.coordinator,
        server_name: file.server_name,
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
}
