//! Orphans: live instances carrying Slipway's deployment tag that no stored
//! deployment knows about. A store restored from an older backup leaves
//! them (the cloud kept what the lost deployments launched), as does a
//! coordinator of another data directory on the same account. They are
//! listed, and terminated only when an admin asks: one may still serve.

use std::collections::BTreeMap;

use slipway_domain::cloud::{CloudError, Compute, Instance, tags};
use slipway_domain::deploy::Deployment;
use slipway_domain::store::StoreError;

use crate::deployments::Deployments;

/// An instance no deployment knows about, with what its tags say it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    pub instance_id: String,
    pub project: String,
    pub environment: String,
    /// The deployment its tag names (which the store lacks, or which never
    /// launched it).
    pub deployment: String,
    /// `project@version`.
    pub release: String,
    pub private_ip: String,
}

#[derive(Debug, thiserror::Error)]
pub enum OrphanError {
    #[error(transparent)]
    Cloud(#[from] CloudError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Every live instance with a `slipway:deployment` tag that its deployment
/// does not know, by instance id.
pub async fn find(
    deployments: &Deployments,
    compute: &dyn Compute,
) -> Result<Vec<Orphan>, OrphanError> {
    // No tag filter: an orphan's project may have left the fleet file.
    let live = compute.find_instances(&BTreeMap::new()).await?;
    let mut orphans = Vec::new();
    for instance in live {
        let Some(id) = instance.tags.get(tags::DEPLOYMENT) else {
            continue;
        };
        let deployment = deployments.get(id).await?;
        if !knows(deployment.as_ref(), &instance) {
            orphans.push(orphan(instance));
        }
    }
    orphans.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
    Ok(orphans)
}

/// Whether `deployment` (the stored one the instance's tag names) accounts
/// for `instance`. Its tags must agree: after a restore, a new deployment
/// may carry an id an old one had.
fn knows(deployment: Option<&Deployment>, instance: &Instance) -> bool {
    let Some(d) = deployment else { return false };
    let tag = |key: &str| instance.tags.get(key).map(String::as_str);
    if tag(tags::PROJECT) != Some(d.project.as_str())
        || tag(tags::ENV) != Some(d.environment.as_str())
        || tag(tags::RELEASE) != Some(format!("{}@{}", d.project, d.version).as_str())
    {
        return false;
    }
    // One in flight may yet adopt an instance it launched but has not
    // recorded (a crash between the two).
    !d.phase.is_finished()
        || d.launched.iter().any(|l| l.id == instance.id)
        || d.old_instances.contains(&instance.id)
}

fn orphan(instance: Instance) -> Orphan {
    let tag = |key: &str| instance.tags.get(key).cloned().unwrap_or_default();
    Orphan {
        project: tag(tags::PROJECT),
        environment: tag(tags::ENV),
        deployment: tag(tags::DEPLOYMENT),
        release: tag(tags::RELEASE),
        instance_id: instance.id,
        private_ip: instance.private_ip,
    }
}
