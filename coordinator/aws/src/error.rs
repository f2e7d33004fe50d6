//! AWS errors as the coordinator's `CloudError`, keeping AWS's own words.

use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use slipway_domain::cloud::CloudError;

/// Error codes AWS uses to say "slow down".
pub fn is_throttling(code: &str) -> bool {
    matches!(
        code,
        "RequestLimitExceeded"
            | "Throttling"
            | "ThrottlingException"
            | "RequestThrottled"
            | "PriorRequestNotComplete"
    )
}

/// Codes that mean "that thing does not exist".
fn is_not_found(code: &str) -> bool {
    code.ends_with(".NotFound")
        || matches!(
            code,
            "LoadBalancerNotFound" | "NoSuchHostedZone" | "InvalidInstance"
        )
}

/// Maps an SDK failure of `action` to a `CloudError`.
pub fn aws<E, R>(action: &str, error: SdkError<E, R>) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match &error {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            CloudError::Unavailable(format!(
                "{action}: AWS is unreachable ({})",
                DisplayErrorContext(&error)
            ))
        }
        _ => {
            let code = error.code().unwrap_or("").to_string();
            let message = error
                .message()
                .map(str::to_string)
                .unwrap_or_else(|| DisplayErrorContext(&error).to_string());
            let text = if code.is_empty() {
                format!("{action}: {message}")
            } else {
                format!("{action}: {code}: {message}")
            };
            if is_throttling(&code) {
                CloudError::Unavailable(format!("{text} (still throttled after retries)"))
            } else if is_not_found(&code) {
                CloudError::NotFound(text)
            } else {
                CloudError::Invalid(text)
            }
        }
    }
}
