//! The releases table: registering a release (immutable once stored) and
//! reading them back; and the checks CI attaches to a release (`slipway
//! release check`), which environments' gates require.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::clock::{Clock, Millis};
use crate::cloud::{CloudError, Compute};
use crate::error::{Code, Coded};
use crate::events::{Event, Events};
use crate::gates::CheckResults;
use crate::release::{Provenance, Release, check_image_id, check_version};
use crate::store::{Changes, Db, Range, Record, StoreError, Table};

/// One named check's latest result on a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseCheck {
    pub project: String,
    pub version: String,
    /// `unit`, `integration`, ...
    pub name: String,
    pub passed: bool,
    /// Where its results are (the CI job's page).
    pub url: Option<String>,
    pub by: String,
    pub at: Millis,
}

impl Record for ReleaseCheck {
    const TABLE: Table = Table::ReleaseChecks;
    fn key(&self) -> String {
        format!("{}/{}/{}", self.project, self.version, self.name)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("{0}")]
    InvalidVersion(String),
    #[error("{0}")]
    InvalidImage(String),
    /// Malformed provenance, or provenance its image's tags deny.
    #[error("{0}")]
    Provenance(String),
    #[error(
        "release {project}@{version} is already image {image}: releases are immutable; build a new version"
    )]
    Immutable {
        project: String,
        version: String,
        image: String,
    },
    #[error("no release {project}@{version}: register it first with `slipway release add`")]
    Unknown { project: String, version: String },
    #[error(transparent)]
    Cloud(#[from] CloudError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Coded for ReleaseError {
    fn code(&self) -> Code {
        match self {
            ReleaseError::InvalidVersion(_)
            | ReleaseError::InvalidImage(_)
            | ReleaseError::Provenance(_) => Code::Invalid,
            ReleaseError::Immutable { .. } => Code::FailedPrecondition,
            ReleaseError::Unknown { .. } => Code::NotFound,
            ReleaseError::Cloud(e) => e.code(),
            ReleaseError::Store(e) => e.code(),
        }
    }
}

pub struct Releases {
    db: Db,
    clock: Arc<dyn Clock>,
    compute: Arc<dyn crate::cloud::Compute>,
    events: Arc<Events>,
}

impl std::fmt::Debug for Releases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Releases")
    }
}

impl Releases {
    pub fn new(
        db: Db,
        clock: Arc<dyn Clock>,
        compute: Arc<dyn Compute>,
        events: Arc<Events>,
    ) -> Releases {
        Releases {
            db,
            clock,
            compute,
            events,
        }
    }

    /// Registers `project@version`; its image is found by its tags unless
    /// `image_id` names it. Its provenance is `given` completed by the image's
    /// tags; a part they disagree on is refused. Registering the same image
    /// again answers the stored release; another image, or other provenance,
    /// for a stored version is refused.
    pub async fn register(
        &self,
        registered_by: &str,
        project: &str,
        version: &str,
        image_id: Option<&str>,
        given: &Provenance,
    ) -> Result<Release, ReleaseError> {
        check_version(version).map_err(ReleaseError::InvalidVersion)?;
        given.check(false).map_err(ReleaseError::Provenance)?;
        let image_id = match image_id {
            Some(id) => {
                check_image_id(id).map_err(ReleaseError::InvalidImage)?;
                id.to_string()
            }
            None => self.compute.find_image(project, version).await?,
        };
        // Whatever a cloud's tags say, too: only an image id is ever stored.
        check_image_id(&image_id).map_err(ReleaseError::InvalidImage)?;
        // Caught here, not at deploy time: it exists, and it is ours (its
        // owner is recorded with the release).
        let facts = self.compute.check_image(&image_id).await?;
        let tagged = Provenance::from_tags(&facts.tags);
        tagged.check(true).map_err(ReleaseError::Provenance)?;
        let provenance = Provenance::agreed(given, &tagged, &format!("image {image_id} is tagged"))
            .map_err(ReleaseError::Provenance)?
            .normalized();
        if let Some(existing) = self.get(project, version).await? {
            if existing.image_id == image_id {
                // Given again, provenance must say what was stored.
                let stored = format!("release {project}@{version} was registered with");
                let merged = Provenance::agreed(given, &existing.provenance, &stored)
                    .map_err(ReleaseError::Provenance)?
                    .normalized();
                if merged != existing.provenance {
                    return Err(ReleaseError::Provenance(format!(
                        "release {project}@{version} was registered without that provenance, and releases are immutable: register the image as a new version"
                    )));
                }
                return Ok(existing);
            }
            return Err(ReleaseError::Immutable {
                project: project.into(),
                version: version.into(),
                image: existing.image_id,
            });
        }
        let release = Release {
            project: project.to_string(),
            version: version.to_string(),
            image_id,
            registered_at: self.clock.now(),
            registered_by: registered_by.to_string(),
            owner_account: facts.owner_account,
            provenance,
        };
        let mut changes = Changes::default();
        changes.put(&release)?;
        let told = Event {
            about: crate::audit::About {
                project: Some(release.project.clone()),
                version: Some(release.version.clone()),
                ..Default::default()
            },
            who: Some(release.registered_by.clone()),
            provenance: (!release.provenance.is_empty()).then(|| release.provenance.clone()),
            ..Event::new(
                "release.registered",
                format!(
                    "release {} {} registered ({}) by {}",
                    release.project, release.version, release.image_id, release.registered_by
                ),
            )
        };
        self.events.commit(changes, vec![told]).await?;
        Ok(release)
    }

    pub async fn get(&self, project: &str, version: &str) -> Result<Option<Release>, StoreError> {
        self.db.get(&Release::key_of(project, version)).await
    }

    /// Records a check's result on a registered release (a later result of
    /// the same check replaces it; the audit log keeps each).
    pub async fn record_check(&self, check: ReleaseCheck) -> Result<ReleaseCheck, ReleaseError> {
        if self.get(&check.project, &check.version).await?.is_none() {
            return Err(ReleaseError::Unknown {
                project: check.project,
                version: check.version,
            });
        }
        let mut changes = Changes::default();
        changes.put(&check)?;
        let told = Event {
            about: crate::audit::About {
                project: Some(check.project.clone()),
                version: Some(check.version.clone()),
                ..Default::default()
            },
            who: Some(check.by.clone()),
            ..Event::new(
                "release.checked",
                format!(
                    "release {} {}: check {} {}",
                    check.project,
                    check.version,
                    check.name,
                    if check.passed { "passed" } else { "failed" }
                ),
            )
        };
        self.events.commit(changes, vec![told]).await?;
        Ok(check)
    }

    /// The checks recorded on `project@version`, by name.
    pub async fn checks(
        &self,
        project: &str,
        version: &str,
    ) -> Result<Vec<ReleaseCheck>, StoreError> {
        self.db
            .range(Range::prefix(format!("{project}/{version}/")))
            .await
    }

    /// Every check recorded on `project`'s releases (every project's with
    /// None), by release: one read for a whole listing.
    pub async fn checks_by_release(
        &self,
        project: Option<&str>,
    ) -> Result<std::collections::BTreeMap<(String, String), Vec<ReleaseCheck>>, StoreError> {
        let range = project.map_or_else(Range::all, |p| Range::prefix(format!("{p}/")));
        let mut by_release = std::collections::BTreeMap::new();
        for check in self.db.range::<ReleaseCheck>(range).await? {
            by_release
                .entry((check.project.clone(), check.version.clone()))
                .or_insert_with(Vec::new)
                .push(check);
        }
        Ok(by_release)
    }

    /// Each check's latest result on `project@version`, as gates read them.
    pub async fn check_results(
        &self,
        project: &str,
        version: &str,
    ) -> Result<CheckResults, StoreError> {
        Ok(self
            .checks(project, version)
            .await?
            .into_iter()
            .map(|c| (c.name, c.passed))
            .collect())
    }

    /// Registered releases, by project and then in the order they were registered.
    pub async fn list(&self, project: Option<&str>) -> Result<Vec<Release>, StoreError> {
        let range = project.map_or_else(Range::all, |p| Range::prefix(format!("{p}/")));
        let mut releases: Vec<Release> = self.db.range(range).await?;
        releases.sort_by(|a, b| (&a.project, a.registered_at).cmp(&(&b.project, b.registered_at)));
        Ok(releases)
    }
}
