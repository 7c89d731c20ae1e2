//! The SDK adapter: [`Aws`] implements the ports on one shared SDK configuration (or an
//! emulator at an endpoint), a client per service and region; SDK errors become
//! [`CloudError`]s by AWS error code ([`errors`]).

pub mod amis;
pub mod ec2;
mod errors;
pub mod fleet;
mod hygiene;
pub mod locks;
mod packer_leftovers;
pub mod role;
mod share;

use crate::aws::{AmiCloud, Cloud, CloudError};
use std::time::Duration;

/// The real AWS (or an emulator at `endpoint`), on one SDK configuration loaded once.
pub struct Aws {
    endpoint: Option<String>,
    timeouts: aws_config::timeout::TimeoutConfig,
    /// The role this client acts through (another account), if any ([`role`]).
    account: Option<crate::accounts::RoleSession>,
    conf: tokio::sync::OnceCell<aws_config::SdkConfig>,
}

impl Aws {
    /// `endpoint` overrides the endpoint (otherwise the SDK reads `AWS_ENDPOINT_URL[_EC2]`);
    /// the run's `GEARS_AWS_TIMEOUT` bounds each call ([`timeouts`]).
    pub fn new(endpoint: Option<&str>, ctx: &crate::context::RunContext) -> Self {
        Aws {
            endpoint: endpoint.map(str::to_owned),
            timeouts: timeouts(ctx),
            account: None,
            conf: tokio::sync::OnceCell::new(),
        }
    }

    /// This client, acting in the account of `account`'s role (none: the credentials' own).
    pub fn with_account(mut self, account: Option<crate::accounts::RoleSession>) -> Self {
        self.account = account;
        self
    }

    /// The shared configuration, loaded on first use; no credentials is an error here, before
    /// any call is made.
    async fn conf(&self) -> Result<&aws_config::SdkConfig, CloudError> {
        let conf = self
            .conf
            .get_or_init(|| async {
                let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .timeout_config(self.timeouts.clone())
                    .app_name(role::app_name());
                if let Some(e) = &self.endpoint {
                    loader = loader.endpoint_url(e);
                }
                let base = loader.load().await;
                match &self.account {
                    Some(session) => role::assume(&base, session).await,
                    None => base,
                }
            })
            .await;
        use aws_sdk_ec2::config::ProvideCredentials;
        let Some(provider) = conf.credentials_provider() else {
            return Err(CloudError::NoCredentials(
                "no credentials provider is configured".into(),
            ));
        };
        provider.provide_credentials().await.map_err(|e| {
            let why = aws_sdk_ec2::error::DisplayErrorContext(&e).to_string();
            match &self.account {
                Some(s) => CloudError::Role {
                    role: s.role.role_arn.to_string(),
                    environment: s.environment.clone(),
                    message: why,
                },
                None => CloudError::NoCredentials(e.to_string()),
            }
        })?;
        Ok(conf)
    }
}

impl Cloud for Aws {
    fn in_account(&self, account: Option<crate::accounts::RoleSession>) -> Self {
        Aws {
            endpoint: self.endpoint.clone(),
            timeouts: self.timeouts.clone(),
            account,
            conf: tokio::sync::OnceCell::new(),
        }
    }

    type Images = ec2::Ec2;
    type Instances = ec2::Ec2;

    async fn images(&self, region: &str) -> Result<ec2::Ec2, CloudError> {
        Ok(ec2::Ec2::new(self.conf().await?, region))
    }

    async fn instances(&self, region: &str) -> Result<ec2::Ec2, CloudError> {
        Ok(ec2::Ec2::new(self.conf().await?, region))
    }

    type Fleet = fleet::AwsFleet;

    async fn fleet(&self, region: &str) -> Result<fleet::AwsFleet, CloudError> {
        Ok(fleet::AwsFleet::new(self.conf().await?, region))
    }

    type Locks = locks::DynamoLocks;

    async fn locks(&self, region: &str, table: &str) -> Result<locks::DynamoLocks, CloudError> {
        Ok(locks::DynamoLocks::new(self.conf().await?, region, table))
    }
}

impl AmiCloud for Aws {
    type Amis = amis::Ec2Amis;

    async fn amis(&self, region: &str) -> Result<amis::Ec2Amis, CloudError> {
        Ok(amis::Ec2Amis::new(self.conf().await?, region))
    }

    fn of_account(&self, account: crate::accounts::RoleSession) -> Self {
        self.in_account(Some(account))
    }
}

/// How long one AWS call may take: a hung call (a load balancer that accepts and never answers,
/// a dropped connection) fails in bounded time instead of holding a stage forever, and the
/// stage's own retry and deadline decide what happens next. `GEARS_AWS_TIMEOUT` (seconds, default
/// 30) bounds one attempt; the call with the SDK's retries gets three times that; connecting
/// gets at most 10 s.
pub fn timeouts(ctx: &crate::context::RunContext) -> aws_config::timeout::TimeoutConfig {
    let attempt = ctx
        .var("GEARS_AWS_TIMEOUT")
        .and_then(|v| v.parse::<crate::units::Seconds>().ok())
        .map_or(Duration::from_secs(30), Duration::from);
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(attempt.min(Duration::from_secs(10)))
        .operation_attempt_timeout(attempt)
        .operation_timeout(attempt * 3)
        .build()
}
