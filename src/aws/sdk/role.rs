//! An account is a client: the SDK configuration of an account gears reaches through a role,
//! made once per run from the caller's own. The role is assumed with STS on the configured
//! endpoint (`--endpoint-url`, `AWS_ENDPOINT_URL`: an emulator's STS too), under a session
//! name CloudTrail shows, and the SDK's identity cache renews the credentials before they
//! expire, so a deploy that outlives a one-hour session keeps going.

use crate::accounts::RoleSession;
use aws_config::SdkConfig;
use aws_sdk_ec2::config::SharedCredentialsProvider;

/// The region STS is called in when the caller's configuration names none.
const STS_REGION: &str = "us-east-1";

/// `base`, acting through `session`'s role.
pub async fn assume(base: &SdkConfig, session: &RoleSession) -> SdkConfig {
    let mut builder = aws_config::sts::AssumeRoleProvider::builder(session.role.role_arn.as_str())
        .session_name(&session.session_name)
        .configure(base);
    if base.region().is_none() {
        builder = builder.region(aws_config::Region::new(STS_REGION));
    }
    if let Some(id) = &session.role.external_id {
        builder = builder.external_id(id);
    }
    let provider = builder.build().await;
    base.clone()
        .into_builder()
        .credentials_provider(SharedCredentialsProvider::new(provider))
        .build()
}

/// The user agent's app name: gears and its version, in every SDK client's requests.
pub fn app_name() -> aws_config::AppName {
    aws_config::AppName::new(format!("gears-{}", env!("CARGO_PKG_VERSION")))
        .expect("letters, digits, '-' and '.' make a valid app name")
}
