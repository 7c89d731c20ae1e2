//! What AWS said no with, as gears' [`CloudError`]: its [`ErrorKind`] decided by the AWS error
//! code (the one table of codes, [`kind_of_code`]), never by message text.

/// What kind of "no" AWS said, decided by its error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Too many calls, even after the SDK's retries: retry the stage later.
    Throttled,
    /// The credentials lack a permission: retrying will not help.
    AccessDenied,
    /// The thing asked for does not exist (e.g. `InvalidAMIID.NotFound`).
    NotFound,
    /// The request itself is wrong (a validation error, a malformed or unavailable id, a
    /// quota reached, an operation the resource's state forbids): retrying will not help.
    Invalid,
    /// AWS's side failed (a 5xx, an internal error, no answer at all) or a state that passes
    /// (a scaling activity in progress): another attempt may succeed.
    Transient,
    /// A code gears does not know, answered as a client error (4xx): not retried, so a
    /// permanent error never holds a deploy for the whole deadline; its code is in the message.
    Other,
}

/// AWS said no after retries (exit 5): safe to retry the stage.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CloudError {
    /// No credentials could be found.
    #[error("no AWS credentials: {0}")]
    NoCredentials(String),
    /// The role of another account could not be assumed (its trust policy, the external id,
    /// the caller's sts:AssumeRole permission).
    #[error("cannot assume the role {role}{}: {message}", environment.as_ref().map(|e| format!(" of the environment {e}")).unwrap_or_default())]
    Role {
        role: String,
        environment: Option<String>,
        message: String,
    },
    /// An API call failed.
    #[error("AWS {operation} failed in {region}: {message}{}", code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Api {
        operation: &'static str,
        region: String,
        kind: ErrorKind,
        code: Option<String>,
        message: String,
    },
}

impl CloudError {
    /// An API error, its kind decided by `code` ([`kind_of`]; no code: no answer, transient).
    pub fn api(
        operation: &'static str,
        region: &str,
        code: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        Self::answered(operation, region, code, None, message)
    }

    /// An API error with the HTTP status AWS answered, its kind decided by both ([`kind_of`]).
    pub fn answered(
        operation: &'static str,
        region: &str,
        code: Option<&str>,
        status: Option<u16>,
        message: impl Into<String>,
    ) -> Self {
        CloudError::Api {
            operation,
            region: region.to_owned(),
            kind: kind_of(code, status),
            code: code.map(str::to_owned),
            message: message.into(),
        }
    }

    /// AWS's error code, when it answered one.
    pub fn code(&self) -> Option<&str> {
        match self {
            CloudError::Api { code, .. } => code.as_deref(),
            CloudError::NoCredentials(_) | CloudError::Role { .. } => None,
        }
    }

    /// The kind of error (no credentials counts as access denied: retrying will not help; a
    /// role STS throttled past the SDK's retries counts as throttled).
    pub fn kind(&self) -> ErrorKind {
        match self {
            CloudError::Role { message, .. } if sts_throttled(message) => ErrorKind::Throttled,
            CloudError::NoCredentials(_) | CloudError::Role { .. } => ErrorKind::AccessDenied,
            CloudError::Api { kind, .. } => *kind,
        }
    }

    /// Whether EC2 answered that the AMI asked about is gone: deregistered, or never there
    /// (`InvalidAMIID.NotFound`, or `InvalidAMIID.Unavailable` for one deregistered lately).
    pub fn image_gone(&self) -> bool {
        matches!(
            self.code(),
            Some("InvalidAMIID.NotFound" | "InvalidAMIID.Unavailable")
        )
    }

    /// Whether waiting and calling again may help (throttling, a transient error), as opposed
    /// to a "no" that stays a no (access denied, not found, invalid, a code gears does not know
    /// answered as a client error).
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind(), ErrorKind::Throttled | ErrorKind::Transient)
    }

    /// What to do next.
    pub fn hint(&self) -> Option<String> {
        match self {
            CloudError::NoCredentials(_) => Some(
                "set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run on an instance with a role".into(),
            ),
            CloudError::Role { message, .. } if sts_throttled(message) => Some(
                "STS throttled AssumeRole even after retries: nothing was changed; retry the stage later".into(),
            ),
            CloudError::Role { .. } => Some(
                "the role's trust policy must let these credentials assume it (and ask for the same sts:ExternalId), and they need sts:AssumeRole on it".into(),
            ),
            CloudError::Api { kind: ErrorKind::Throttled, .. } => Some(
                "AWS throttled the calls even after retries; retry the stage later".into(),
            ),
            CloudError::Api { kind: ErrorKind::AccessDenied, .. } => {
                Some("the credentials lack a permission gears needs (see the operation above)".into())
            }
            _ => None,
        }
    }
}

/// Whether STS's answer to AssumeRole (as the credentials provider words it) was throttling.
fn sts_throttled(message: &str) -> bool {
    [
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "Rate exceeded",
    ]
    .iter()
    .any(|t| message.contains(t))
}

/// CancelInstanceRefresh's answer when no refresh is running.
pub const NO_ACTIVE_REFRESH: &str = "ActiveInstanceRefreshNotFound";

/// The kind of an error AWS answered with `code` and HTTP `status`: the code's kind when gears
/// knows it ([`kind_of_code`]); otherwise a 5xx (or no answer at all) is transient and a
/// client error is permanent ([`ErrorKind::Other`]).
pub fn kind_of(code: Option<&str>, status: Option<u16>) -> ErrorKind {
    match (code.map(kind_of_code), status) {
        (Some(k), _) if k != ErrorKind::Other => k,
        (_, Some(s)) if s >= 500 => ErrorKind::Transient,
        (None, _) => ErrorKind::Transient,
        (Some(_), _) => ErrorKind::Other,
    }
}

/// The kind of an AWS error code: the one table of codes gears reads (any code not here is
/// decided by its HTTP status, [`kind_of`]).
pub fn kind_of_code(code: &str) -> ErrorKind {
    match code {
        "Throttling"
        | "ThrottlingException"
        | "ThrottledException"
        | "RequestThrottled"
        | "RequestThrottledException"
        | "RequestLimitExceeded"
        | "TooManyRequestsException"
        | "SlowDown"
        | "EC2ThrottledException"
        | "ProvisionedThroughputExceededException"
        | "PriorRequestNotComplete" => ErrorKind::Throttled,
        "InternalError"
        | "InternalFailure"
        | "InternalServerError"
        | "InternalServiceError"
        | "ServiceUnavailable"
        | "ServiceUnavailableException"
        | "Unavailable"
        | "RequestTimeout"
        | "RequestTimeoutException"
        | "ResourceContention"
        | "ScalingActivityInProgress"
        | "IncorrectInstanceState"
        | "InsufficientInstanceCapacity"
        // A snapshot right after its AMI's deregister (EC2 answers it about one time in five);
        // one another AMI still uses is never asked to be deleted.
        | "InvalidSnapshot.InUse" => ErrorKind::Transient,
        c if c.starts_with("AccessDenied") => ErrorKind::AccessDenied,
        "AccessDeniedException"
        | "UnauthorizedOperation"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "AuthFailure"
        | "SignatureDoesNotMatch"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "OptInRequired" => ErrorKind::AccessDenied,
        c if c.ends_with("NotFound") || c.ends_with("NotFoundException") => ErrorKind::NotFound,
        c if c.ends_with(".Malformed") || c.ends_with(".Unavailable") || c.ends_with(".Invalid") => {
            ErrorKind::Invalid
        }
        "ValidationError"
        | "ValidationException"
        | "LimitExceeded"
        | "LimitExceededException"
        | "ResourceInUse"
        | "AlreadyExists"
        | "AlreadyExistsFault"
        | "InvalidAction"
        | "InvalidQueryParameter"
        | "MalformedQueryString"
        | "UnsupportedOperation"
        | "DryRunOperation"
        | "InvalidParameterValue"
        | "InvalidParameterCombination"
        | "MissingParameter"
        | "InvalidParameter"
        | "IdempotentParameterMismatch"
        | "InstanceRefreshInProgress"
        // Termination (or stop) protection, or an instance store root: a state of the
        // resource that another attempt will not change.
        | "OperationNotPermitted" => ErrorKind::Invalid,
        _ => ErrorKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A role STS throttled past the SDK's retries is a throttling (retryable, exit 5 with a
    /// "retry later" hint), not a refused role.
    #[test]
    fn a_throttled_assume_role_is_throttling_not_a_refusal() {
        let role = |message: &str| CloudError::Role {
            role: "arn:aws:iam::111111111111:role/gears-deploy".into(),
            environment: Some("live".into()),
            message: message.into(),
        };
        let throttled = role("service error: Throttling: Rate exceeded");
        assert_eq!(throttled.kind(), ErrorKind::Throttled);
        assert!(throttled.is_retryable());
        assert!(throttled.hint().unwrap().contains("throttled"));
        let refused = role("service error: AccessDenied: not authorized to perform sts:AssumeRole");
        assert_eq!(refused.kind(), ErrorKind::AccessDenied);
        assert!(refused.hint().unwrap().contains("trust policy"));
    }

    /// Issue 24 item 6: only throttling, 5xx and what passes are retried; each permanent class
    /// ends the step at once.
    #[test]
    fn permanent_errors_are_not_retried_and_transient_ones_are() {
        for code in [
            "InvalidLaunchTemplateId.VersionNotFound",
            "InvalidLaunchTemplateId.Malformed",
            "InvalidAMIID.Malformed",
            "InvalidAMIID.Unavailable",
            "LimitExceeded",
            "ValidationError",
            "ValidationException",
            "TargetGroupNotFound",
            "OperationNotPermitted",
            "UnauthorizedOperation",
            "AccessDenied",
            "AccessDeniedException",
            "ActiveInstanceRefreshNotFound",
        ] {
            let e = CloudError::answered("X", "r", Some(code), Some(400), "no");
            assert!(!e.is_retryable(), "{code}: {:?}", e.kind());
            assert!(e.to_string().ends_with(&format!("no ({code})")), "{e}");
        }
        // A code gears does not know: a client error stays a no, a server error may pass.
        assert!(
            !CloudError::answered("X", "r", Some("SomethingNew"), Some(400), "").is_retryable()
        );
        assert!(CloudError::answered("X", "r", Some("SomethingNew"), Some(503), "").is_retryable());
        for code in [
            "Throttling",
            "RequestLimitExceeded",
            "InternalError",
            "ServiceUnavailable",
            "ScalingActivityInProgress",
        ] {
            assert!(
                CloudError::answered("X", "r", Some(code), Some(400), "").is_retryable(),
                "{code}"
            );
        }
    }

    /// Only an AMI's own "not there" codes say it is gone; another resource's does not.
    #[test]
    fn an_image_is_gone_by_its_not_found_or_unavailable_code() {
        let e =
            |code| CloudError::answered("DescribeImageAttribute", "r", Some(code), Some(400), "");
        assert!(e("InvalidAMIID.NotFound").image_gone());
        assert!(e("InvalidAMIID.Unavailable").image_gone());
        assert!(!e("InvalidAMIID.Malformed").image_gone());
        assert!(!e("InvalidSnapshot.NotFound").image_gone());
        assert!(!e("RequestLimitExceeded").image_gone());
        assert!(!CloudError::NoCredentials(String::new()).image_gone());
    }

    #[test]
    fn errors_are_kinded_by_code() {
        let e = CloudError::api(
            "DescribeImages",
            "us-east-1",
            Some("RequestLimitExceeded"),
            "slow down",
        );
        assert_eq!(e.kind(), ErrorKind::Throttled);
        assert!(e.is_retryable());
        assert!(e.hint().unwrap().contains("throttled"));
        let e = CloudError::api(
            "RunInstances",
            "us-east-1",
            Some("UnauthorizedOperation"),
            "you shall not",
        );
        assert_eq!(e.kind(), ErrorKind::AccessDenied);
        assert!(!e.is_retryable());
        assert_eq!(kind_of_code("InvalidAMIID.NotFound"), ErrorKind::NotFound);
        assert_eq!(
            kind_of_code("InvalidInstanceID.NotFound"),
            ErrorKind::NotFound
        );
        assert_eq!(kind_of_code("InternalError"), ErrorKind::Transient);
        assert_eq!(kind_of_code("ValidationError"), ErrorKind::Invalid);
        assert!(!CloudError::api("X", "r", Some("ValidationError"), "").is_retryable());
        // The message never decides: a "throttling" message with another code is not throttling.
        let e = CloudError::api(
            "X",
            "r",
            Some("InvalidParameterValue"),
            "Throttling exceeded",
        );
        assert_eq!(e.kind(), ErrorKind::Invalid);
        // No answer at all (a connection refused, a timeout) may pass.
        assert_eq!(
            CloudError::api("X", "r", None, "").kind(),
            ErrorKind::Transient
        );
        assert_eq!(
            CloudError::NoCredentials("x".into()).kind(),
            ErrorKind::AccessDenied
        );
    }
}
