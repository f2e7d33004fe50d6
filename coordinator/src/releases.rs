//! The releases table: registering a release (immutable once stored) and
//! reading them back.

use std::sync::Arc;

use crate::clock::Clock;
use crate::cloud::{CloudError, Compute};
use crate::error::{Code, Coded};
use crate::events::{Event, Events};
use crate::release::{Release, check_image_id, check_version};
use crate::store::{Changes, Db, Range, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("{0}")]
    InvalidVersion(String),
    #[error("{0}")]
    InvalidImage(String),
    #[error(
        "release {project}@{version} is already image {image}: releases are immutable; build a new version"
    )]
    Immutable {
        project: String,
        version: String,
        image: String,
    },
    #[error(transparent)]
    Cloud(#[from] CloudError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Coded for ReleaseError {
    fn code(&self) -> Code {
        match self {
            ReleaseError::InvalidVersion(_) | ReleaseError::InvalidImage(_) => Code::Invalid,
            ReleaseError::Immutable { .. } => Code::FailedPrecondition,
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
    /// `image_id` names it. Registering the same image again answers the stored
    /// release; another image for a stored version is refused.
    pub async fn register(
        &self,
        registered_by: &str,
        project: &str,
        version: &str,
        image_id: Option<&str>,
    ) -> Result<Release, ReleaseError> {
        check_version(version).map_err(ReleaseError::InvalidVersion)?;
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
        let owner_account = self.compute.check_image(&image_id).await?;
        if let Some(existing) = self.get(project, version).await? {
            if existing.image_id == image_id {
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
            owner_account,
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

    /// Registered releases, by project and then in the order they were registered.
    pub async fn list(&self, project: Option<&str>) -> Result<Vec<Release>, StoreError> {
        let range = project.map_or_else(Range::all, |p| Range::prefix(format!("{p}/")));
        let mut releases: Vec<Release> = self.db.range(range).await?;
        releases.sort_by(|a, b| (&a.project, a.registered_at).cmp(&(&b.project, b.registered_at)));
        Ok(releases)
    }
}
