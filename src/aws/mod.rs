//! The only module that talks to AWS (the SDK is imported nowhere else). Maps SDK errors to
//! [`CloudError`].

pub mod ec2;

/// AWS said no after retries (exit 5): safe to retry the stage.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// No credentials could be found.
    #[error("no AWS credentials: {0}")]
    NoCredentials(String),
    /// An API call failed.
    #[error("AWS {operation} failed in {region}: {message}")]
    Api {
        operation: &'static str,
        region: String,
        code: Option<String>,
        message: String,
    },
}

impl CloudError {
    /// What to do next.
    pub fn hint(&self) -> Option<String> {
        match self {
            CloudError::NoCredentials(_) => Some(
                "set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run on an instance with a role".into(),
            ),
            CloudError::Api { code: Some(c), .. } if is_throttling(c) => Some(
                "AWS throttled the calls even after retries; retry the stage later".into(),
            ),
            CloudError::Api { code: Some(c), .. } if c == "UnauthorizedOperation" || c.contains("AccessDenied") => {
                Some("the credentials lack a permission gears needs (see the operation above)".into())
            }
            _ => None,
        }
    }
}

/// The error codes AWS uses for throttling.
pub fn is_throttling(code: &str) -> bool {
    matches!(
        code,
        "Throttling"
            | "ThrottlingException"
            | "ThrottledException"
            | "RequestThrottled"
            | "RequestThrottledException"
            | "RequestLimitExceeded"
            | "TooManyRequestsException"
    )
}
