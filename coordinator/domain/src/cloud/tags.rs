//! The tags Slipway puts on every instance it launches: the one list the
//! executor writes, the AWS adapter filters on, and the documented IAM policy
//! (`docs/aws-iam-policy.json`, statement `LaunchOnlyTaggedInstances`) allows.
//! A tag key not in `INSTANCE_TAG_KEYS` fails that policy's `aws:TagKeys`
//! condition on AWS, and every launch is refused; a test compares the two.

/// The console's name column: `project-env-version`.
pub const NAME: &str = "Name";
pub const PROJECT: &str = "slipway:project";
pub const ENV: &str = "slipway:env";
/// The deployment that launched the instance: a restart finds its instances by it,
/// and the IAM policy lets Slipway terminate only instances that carry it.
pub const DEPLOYMENT: &str = "slipway:deployment";
/// Which of the deployment's slots the instance fills, so a restart adopts it.
pub const SLOT: &str = "slipway:slot";
/// `project@version`.
pub const RELEASE: &str = "slipway:release";
/// The launch's client token, so a resumed launch finds the instance an earlier
/// attempt made even where the token itself is not honoured.
pub const LAUNCH: &str = "slipway:launch";

/// Every key a launch may carry.
pub const INSTANCE_TAG_KEYS: [&str; 7] = [NAME, PROJECT, ENV, DEPLOYMENT, SLOT, RELEASE, LAUNCH];

/// The tags an image carries to be found by `release add` (read, never written).
pub const IMAGE_PROJECT: &str = "slipway:project";
pub const IMAGE_VERSION: &str = "slipway:version";
