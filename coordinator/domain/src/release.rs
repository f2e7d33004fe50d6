//! Releases: one machine image per (project, version), the unit that deploys.

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::store::{Record, Table};

/// A project's build: one image, the same in every environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub project: String,
    /// Commit hash or tag the image was built from.
    pub version: String,
    pub image_id: String,
    pub registered_at: Millis,
    /// The certificate identity that registered it.
    pub registered_by: String,
    /// On AWS, the account that owns the image (always the fleet's own:
    /// registering refuses any other); None where the cloud has no accounts.
    #[serde(default)]
    pub owner_account: Option<String>,
}

impl Record for Release {
    const TABLE: Table = Table::Releases;
    fn key(&self) -> String {
        Release::key_of(&self.project, &self.version)
    }
}

impl Release {
    /// The store key of `project@version`.
    pub fn key_of(project: &str, version: &str) -> String {
        format!("{project}/{version}")
    }
}

/// Versions become tags, keys and file names; refuse anything else at the edge.
pub fn check_version(version: &str) -> Result<(), String> {
    let ok = !version.is_empty()
        && version.len() <= 128
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{version:?} is not a valid version: use a commit hash or tag (letters, digits, '.', '-', '_', '+', at most 128)"
        ))
    }
}

/// Image ids are machine image ids, as AWS writes them (`ami-` and 8 or 17
/// lowercase hex digits); the local cloud names its images the same way. Any
/// other text (a path, above all) is refused where it enters, so no cloud ever
/// treats a caller's text as a place on its disk.
pub fn check_image_id(image_id: &str) -> Result<(), String> {
    let ok = image_id.strip_prefix("ami-").is_some_and(|hex| {
        matches!(hex.len(), 8 | 17) && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    });
    if ok {
        Ok(())
    } else {
        let shown: String = image_id.chars().take(64).collect();
        Err(format!(
            "{shown:?} is not an image id: give a machine image id such as ami-0123456789abcdef0 (ami- and 8 or 17 hex digits), or leave --image out to find the image by its tags"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_machine_image_ids_are_image_ids() {
        for ok in ["ami-12345678", "ami-0123456789abcdef0"] {
            assert!(check_image_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/some/dir",
            "../images/ami-12345678",
            "ami-12345678/../../x",
            "ami-1234567",
            "ami-0123456789ABCDEF0",
            "ami-0123456789abcdef0 ",
            "img-12345678",
        ] {
            let err = check_image_id(bad).unwrap_err();
            assert!(err.contains("is not an image id"), "{bad}: {err}");
        }
    }

    #[test]
    fn commit_hashes_and_tags_are_versions() {
        for ok in ["v1", "abc123f", "1.2.3-rc.1", "build_7+meta"] {
            assert!(check_version(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn paths_and_blanks_are_not_versions() {
        for bad in ["", "../etc", "v 1", "a/b", &"x".repeat(129)] {
            assert!(check_version(bad).is_err(), "{bad}");
        }
    }
}
