//! The AWS cloud: EC2 for instances and images, classic ELB for load balancers,
//! Route53 for records, all through the official SDK clients.
//!
//! Credentials and region come from aws-config's standard chain; the fleet file's
//! `cloud.region` and `cloud.endpoint` override them (a moto server in tests).
//! Throttling (`RequestLimitExceeded`, `Throttling`, ...) is retried by the SDK's
//! standard retry strategy, with exponential backoff and jitter; other errors end
//! the step with AWS's own message.
//!
//! - this module: `AwsCloud`, the clients and their configuration;
//! - `compute` (EC2: instances, images, tags), `elb` (classic load
//!   balancers), `dns` (Route53 records): each implements one of the domain's
//!   cloud traits;
//! - `error`: the one mapping from an SDK error to the domain's `CloudError`;
//! - `permissions`: the IAM actions the code calls, checked against the
//!   documented policy.
//!
//! Dependencies point down: `compute`, `elb`, `dns` → `error` →
//! `slipway-domain`; nothing here knows the coordinator.

mod compute;
mod dns;
mod elb;
mod error;
pub mod permissions;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};

use slipway_domain::config::CloudSettings;

pub use error::is_throttling;

/// Attempts per AWS call, the first included, before a throttled call gives up.
pub const MAX_ATTEMPTS: u32 = 6;

/// The retry strategy for every AWS call: standard mode, exponential backoff with
/// jitter, retrying throttling, transient and 5xx errors only.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_initial_backoff(Duration::from_millis(200))
        .with_max_backoff(Duration::from_secs(10))
}

pub struct AwsCloud {
    ec2: aws_sdk_ec2::Client,
    elb: aws_sdk_elasticloadbalancing::Client,
    route53: aws_sdk_route53::Client,
    region: String,
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
        let mut loader =
            aws_config::defaults(BehaviorVersion::latest()).retry_config(retry_config());
        if let Some(region) = &settings.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(endpoint) = &settings.endpoint {
            loader = loader.endpoint_url(endpoint.clone());
        }
        AwsCloud::from_sdk_config(&loader.load().await)
    }

    /// Clients from an SDK configuration made elsewhere (tests pass static credentials).
    pub fn from_sdk_config(sdk: &aws_config::SdkConfig) -> Result<AwsCloud, ConnectError> {
        let region = sdk.region().map(|r| r.to_string()).ok_or_else(|| {
            ConnectError("no AWS region: set cloud.region in the fleet file, or AWS_REGION".into())
        })?;
        Ok(AwsCloud {
            ec2: aws_sdk_ec2::Client::new(sdk),
            elb: aws_sdk_elasticloadbalancing::Client::new(sdk),
            route53: aws_sdk_route53::Client::new(sdk),
            region,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use aws_config::{BehaviorVersion, Region};
    use aws_sdk_ec2::config::Credentials;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use slipway_domain::cloud::{CloudError, Compute};

    const THROTTLED: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>r1</RequestID></Response>";
    const REFUSED: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not authorized to perform this operation.</Message></Error></Errors><RequestID>r2</RequestID></Response>";
    const EMPTY: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>r3</requestId><reservationSet/></DescribeInstancesResponse>";

    /// A stand-in EC2 endpoint that answers each request with the next scripted reply.
    async fn scripted_ec2(replies: Vec<(u16, &'static str)>) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let (status, body) = replies[n.min(replies.len() - 1)];
                let mut request = vec![0u8; 65536];
                let _ = stream.read(&mut request).await;
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body.as_bytes()).await;
            }
        });
        (url, seen)
    }

    async fn cloud(url: &str) -> AwsCloud {
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(url)
            .credentials_provider(Credentials::new("k", "s", None, None, "test"))
            .retry_config(retry_config())
            .load()
            .await;
        AwsCloud::from_sdk_config(&sdk).unwrap()
    }

    #[tokio::test]
    async fn throttling_is_retried_until_it_passes() {
        let (url, seen) =
            scripted_ec2(vec![(503, THROTTLED), (503, THROTTLED), (200, EMPTY)]).await;
        let found = cloud(&url)
            .await
            .describe(&["i-1".to_string()])
            .await
            .unwrap();
        assert!(found.is_empty());
        assert_eq!(
            seen.load(Ordering::SeqCst),
            3,
            "two throttled attempts, then the one that passed"
        );
    }

    #[tokio::test]
    async fn other_errors_are_not_retried_and_keep_the_aws_message() {
        let (url, seen) = scripted_ec2(vec![(403, REFUSED)]).await;
        let err = cloud(&url)
            .await
            .describe(&["i-1".to_string()])
            .await
            .unwrap_err();
        assert_eq!(seen.load(Ordering::SeqCst), 1);
        assert_eq!(
            err,
            CloudError::Invalid("DescribeInstances: UnauthorizedOperation: You are not authorized to perform this operation.".into())
        );
    }
}
