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
    /// Where it came from: its commit, repository, CI build and builder.
    #[serde(default)]
    pub provenance: Provenance,
}

/// Where a release came from, so every running binary leads back to its
/// source: read from the image's tags (`slipway:commit`, ...) or given to
/// `release add`; each part optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The commit the image was built from (hex, 7 to 64 digits).
    pub commit: Option<String>,
    /// The source repository (https:// or ssh URL).
    pub repository: Option<String>,
    /// The CI build that made the image (an http(s) URL).
    pub build_url: Option<String>,
    /// Who or what built it (a CI job, a person).
    pub built_by: Option<String>,
}

/// The image tags provenance is read from, in `Provenance`'s field order.
pub const PROVENANCE_TAGS: [&str; 4] = [
    "slipway:commit",
    "slipway:repository",
    "slipway:build-url",
    "slipway:built-by",
];

/// The flag of `release add` that gives each part, in the same order.
const PROVENANCE_FLAGS: [&str; 4] = ["--commit", "--repository", "--build-url", "--built-by"];

impl Provenance {
    fn fields(&self) -> [&Option<String>; 4] {
        [
            &self.commit,
            &self.repository,
            &self.build_url,
            &self.built_by,
        ]
    }

    fn from_fields([commit, repository, build_url, built_by]: [Option<String>; 4]) -> Provenance {
        Provenance {
            commit,
            repository,
            build_url,
            built_by,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.fields().iter().all(|f| f.is_none())
    }

    /// Stored as one form: commits in lower case.
    pub fn normalized(mut self) -> Provenance {
        self.commit = self.commit.map(|c| c.to_ascii_lowercase());
        self
    }

    /// What an image's tags say.
    pub fn from_tags(tags: &std::collections::BTreeMap<String, String>) -> Provenance {
        Provenance::from_fields(PROVENANCE_TAGS.map(|key| tags.get(key).cloned()))
    }

    /// Each part well formed; `source` says where the bad one came from
    /// ("--commit", or the image's tag).
    pub fn check(&self, from_tags: bool) -> Result<(), String> {
        for (i, value) in self.fields().iter().enumerate() {
            let Some(value) = value else { continue };
            let source = if from_tags {
                format!("the image's tag {}", PROVENANCE_TAGS[i])
            } else {
                PROVENANCE_FLAGS[i].to_string()
            };
            let shown: String = value.chars().take(80).collect();
            let ok = match i {
                0 => {
                    (7..=64).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_hexdigit())
                }
                1 => url_like(value, &["https://", "http://", "ssh://", "git@"]),
                2 => url_like(value, &["https://", "http://"]),
                _ => {
                    !value.is_empty() && value.len() <= 128 && !value.chars().any(char::is_control)
                }
            };
            if !ok {
                let want = [
                    "a commit hash (7 to 64 hex digits)",
                    "a repository URL (https://, ssh:// or git@…, at most 512 characters)",
                    "a build URL (https://…, at most 512 characters)",
                    "a name (1 to 128 printable characters)",
                ][i];
                return Err(format!("{source} is {shown:?}: give {want}"));
            }
        }
        Ok(())
    }

    /// `given` completed by `known` (an image's tags, or a stored release): a
    /// part both name must agree, or the release would claim a source its
    /// image denies. `known_as` starts the refusal ("image ami-… is tagged").
    pub fn agreed(
        given: &Provenance,
        known: &Provenance,
        known_as: &str,
    ) -> Result<Provenance, String> {
        let mut parts: [Option<String>; 4] = Default::default();
        for (i, (g, t)) in given.fields().iter().zip(known.fields()).enumerate() {
            if let (Some(g), Some(t)) = (g, t)
                && !same(i, g, t)
            {
                return Err(format!(
                    "{known_as} {}={t} but {} {g} was given: leave {} out, or register the image built from {g}",
                    PROVENANCE_TAGS[i], PROVENANCE_FLAGS[i], PROVENANCE_FLAGS[i]
                ));
            }
            // The longer of two agreeing commits says more.
            parts[i] = match ((*g).clone(), t.clone()) {
                (Some(g), Some(t)) if t.len() > g.len() => Some(t),
                (g, t) => g.or(t),
            };
        }
        Ok(Provenance::from_fields(parts))
    }
}

/// Whether two values of part `i` say the same: commits compare without
/// case, and a short hash agrees with the full one it starts.
fn same(i: usize, a: &str, b: &str) -> bool {
    if i != 0 {
        return a == b;
    }
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    a.starts_with(&b) || b.starts_with(&a)
}

/// A URL of one of `schemes`, without what would break out of a link in
/// HTML or chat markup (`<>"'|`, spaces).
fn url_like(value: &str, schemes: &[&str]) -> bool {
    value.len() <= 512
        && schemes
            .iter()
            .any(|s| value.starts_with(s) && value.len() > s.len())
        && !value.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"' | '\'' | '|')
        })
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

    fn given(commit: &str, build: &str) -> Provenance {
        Provenance {
            commit: Some(commit.into()),
            build_url: Some(build.into()),
            ..Provenance::default()
        }
    }

    #[test]
    fn provenance_from_tags_and_flags_must_agree_and_completes_each_other() {
        let tags = std::collections::BTreeMap::from([
            ("slipway:commit".to_string(), "3f2c1ab".to_string()),
            ("slipway:built-by".to_string(), "ci".to_string()),
        ]);
        let tagged = Provenance::from_tags(&tags);
        let both = Provenance::agreed(
            &given("3f2c1ab", "https://ci/41"),
            &tagged,
            "image ami-12345678 is tagged",
        )
        .unwrap();
        assert_eq!(both.commit.as_deref(), Some("3f2c1ab"));
        assert_eq!(both.build_url.as_deref(), Some("https://ci/41"));
        assert_eq!(both.built_by.as_deref(), Some("ci"));
        let error = Provenance::agreed(
            &given("9d8e7f6", "https://ci/41"),
            &tagged,
            "image ami-12345678 is tagged",
        )
        .unwrap_err();
        assert_eq!(
            error,
            "image ami-12345678 is tagged slipway:commit=3f2c1ab but --commit 9d8e7f6 was given: leave --commit out, or register the image built from 9d8e7f6"
        );
        // CI gives the full hash where the tag has the short one: the same commit.
        let full = Provenance::agreed(
            &given("3F2C1AB9D0E4F5A6B7C8", "https://ci/41"),
            &tagged,
            "image ami-12345678 is tagged",
        )
        .unwrap()
        .normalized();
        assert_eq!(full.commit.as_deref(), Some("3f2c1ab9d0e4f5a6b7c8"));
    }

    #[test]
    fn malformed_provenance_is_refused_naming_its_source() {
        let cases = [
            (
                given("xyz", "https://ci/1"),
                false,
                "--commit is \"xyz\": give a commit hash",
            ),
            (
                given("3f2c1ab", "ftp://ci/1"),
                false,
                "--build-url is \"ftp://ci/1\"",
            ),
            (
                given("3f2c1ab", "https://ci/ 1"),
                true,
                "the image's tag slipway:build-url",
            ),
            (
                given("3f2c1ab", "https://x|b><!channel>"),
                false,
                "--build-url",
            ),
            (
                Provenance {
                    repository: Some("/etc/passwd".into()),
                    ..Provenance::default()
                },
                false,
                "--repository is \"/etc/passwd\"",
            ),
            (
                Provenance {
                    built_by: Some("a\nb".into()),
                    ..Provenance::default()
                },
                false,
                "--built-by",
            ),
        ];
        for (p, from_tags, says) in cases {
            let error = p.check(from_tags).expect_err(says);
            assert!(error.contains(says), "{error}");
        }
        assert!(
            given("3f2c1ab", "https://ci.example.com/jobs/41")
                .check(false)
                .is_ok()
        );
        assert!(
            Provenance {
                repository: Some("git@github.com:team/hello.git".into()),
                ..Provenance::default()
            }
            .check(false)
            .is_ok()
        );
    }

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
