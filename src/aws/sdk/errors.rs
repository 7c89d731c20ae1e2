//! An SDK error as gears' [`CloudError`]: AWS's code and HTTP status decide its kind (the table
//! is [`crate::aws::kind_of_code`]), the message says what happened in words.

use crate::aws::CloudError;
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata};

/// An SDK error (of any of the SDK crates: they share the type) as a [`CloudError`], kinded by
/// its AWS error code.
pub(super) fn map_err<E, R>(
    operation: &'static str,
    region: &str,
    e: aws_sdk_ec2::error::SdkError<E, R>,
) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    if let aws_sdk_ec2::error::SdkError::TimeoutError(_) = &e {
        // The SDK's words say which limit ran out and after how long.
        let what = std::error::Error::source(&e)
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        return CloudError::api(
            operation,
            region,
            None,
            format!("no answer within the time allowed{what} (GEARS_AWS_TIMEOUT sets the seconds per attempt)"),
        );
    }
    // AWS's own message; otherwise (no answer: a connection refused, a name that does not
    // resolve) the chain of causes in words, without the SDK's debug dump.
    let message = e.message().map(str::to_owned).unwrap_or_else(|| {
        let mut parts: Vec<String> = Vec::new();
        let mut cause: Option<&dyn std::error::Error> = Some(&e);
        while let Some(c) = cause {
            let text = c.to_string();
            if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
                parts.push(text);
            }
            cause = c.source();
        }
        if parts.is_empty() {
            DisplayErrorContext(&e).to_string()
        } else {
            parts.join(": ")
        }
    });
    let status = e
        .raw_response()
        .and_then(|r| {
            (r as &dyn std::any::Any).downcast_ref::<aws_sdk_ec2::config::http::HttpResponse>()
        })
        .map(|r| r.status().as_u16());
    CloudError::answered(operation, region, e.code(), status, message)
}
