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
    /// A lookup found nothing where something was required.
    #[error("{0}")]
    NotFound(String),
}

impl CloudError {
    /// What to do next.
    pub fn hint(&self) -> Option<String> {
        match self {
            CloudError::NoCredentials(_) => Some(
                "set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run on an instance with a role".into(),
            ),
            CloudError::Api { code: Some(c), .. } if c.contains("Throttl") => {
                Some("AWS throttled the calls; retry the stage later".into())
            }
            _ => None,
        }
    }
}
