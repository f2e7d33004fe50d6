//! The AWS cloud: EC2 for instances and images, classic ELB for load balancers,
//! Route53 for records, all through the official SDK clients.
//!
//! Credentials and region come from aws-config's standard chain; the fleet file's
//! `cloud.region` and `cloud.endpoint` override them (a moto server in tests).
//! Throttling (`RequestLimitExceeded`, `Throttling`, ...) is retried by the SDK's
//! standard retry strategy, with exponential backoff and jitter; other errors end
//! the step with AWS's own message.

mod compute;
mod dns;
mod elb;
mod error;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};

use crate::config::CloudSettings;

pub use error::is_throttling;

/// Attempts per AWS call, the first included, before a throttled call gives up.
const MAX_ATTEMPTS: u32 = 6;

pub struct AwsCloud {
    ec2: aws_sdk_ec2::Client,
    elb: aws_sdk_elasticloadbalancing::Client,
    route53: aws_sdk_route53::Client,
    region: String,
    /// Instances deregistered from a load balancer, until their connection
    /// draining timeout has passed: ELB does not report draining itself.
    draining: Mutex<HashMap<(String, String), Instant>>,
}

impl std::fmt::Debug for AwsCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AwsCloud({})", self.region)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConnectError(String);

impl AwsCloud {
    /// Clients from the standard chain, with the fleet file's overrides.
    pub async fn connect(settings: &CloudSettings) -> Result<AwsCloud, ConnectError> {
        let retry = RetryConfig::standard()
            .with_max_attempts(MAX_ATTEMPTS)
            .with_initial_backoff(Duration::from_millis(200))
            .with_max_backoff(Duration::from_secs(10));
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).retry_config(retry);
        if let Some(region) = &settings.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(endpoint) = &settings.endpoint {
            loader = loader.endpoint_url(endpoint.clone());
        }
        let sdk = loader.load().await;
        let region = sdk.region().map(|r| r.to_string()).ok_or_else(|| {
            ConnectError("no AWS region: set cloud.region in the fleet file, or AWS_REGION".into())
        })?;
        Ok(AwsCloud {
            ec2: aws_sdk_ec2::Client::new(&sdk),
            elb: aws_sdk_elasticloadbalancing::Client::new(&sdk),
            route53: aws_sdk_route53::Client::new(&sdk),
            region,
            draining: Mutex::new(HashMap::new()),
        })
    }
}
