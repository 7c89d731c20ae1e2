//! The ports: the small traits stages see, one concern a file, with the data they carry.
//! [`Cloud`] hands out each per region; [`crate::aws::Aws`] implements them on the SDK,
//! [`crate::aws::fake`] in memory.

pub mod amis;
pub mod clone;
pub mod fleet;
pub mod groups;
pub mod images;
pub mod instances;
pub mod launches;
pub mod locks;
pub mod refresh;
pub mod traffic;

use crate::aws::{AmiHousekeeping, CloudError, Fleet, Images, Instances, LockTable};
use std::future::Future;

/// Where stages get their per-region AWS ports from.
pub trait Cloud: Send + Sync {
    type Images: Images;
    /// Cloneable and owned, so a cleanup step can keep one to terminate with.
    type Instances: Instances + Clone + 'static;

    /// The AMI port of `region`. Fails when there are no credentials.
    fn images(&self, region: &str)
        -> impl Future<Output = Result<Self::Images, CloudError>> + Send;

    /// The instance port of `region`. Fails when there are no credentials.
    fn instances(
        &self,
        region: &str,
    ) -> impl Future<Output = Result<Self::Instances, CloudError>> + Send;

    type Fleet: Fleet;

    /// The Auto Scaling port of `region`. Fails when there are no credentials.
    fn fleet(&self, region: &str) -> impl Future<Output = Result<Self::Fleet, CloudError>> + Send;

    type Locks: LockTable;

    /// The lock table `table` in `region`.
    fn locks(
        &self,
        region: &str,
        table: &str,
    ) -> impl Future<Output = Result<Self::Locks, CloudError>> + Send;

    /// The same cloud in the account of `account`'s role (none: the credentials' own): a
    /// pipeline deploys each environment into its own account.
    fn in_account(&self, account: Option<crate::accounts::RoleSession>) -> Self
    where
        Self: Sized;
}

/// Where `gears amis` gets its per-region port from (beside [`Cloud`], so stages that do not
/// keep house need not know it).
pub trait AmiCloud: Send + Sync {
    type Amis: AmiHousekeeping;

    /// The AMI housekeeping port of `region`. Fails when there are no credentials (or the
    /// role cannot be assumed).
    fn amis(&self, region: &str) -> impl Future<Output = Result<Self::Amis, CloudError>> + Send;

    /// The same in the account of `account`'s role (an environment's, from `accounts:`),
    /// assumed from the caller's own credentials once for every region: where `gears amis`
    /// reads what uses the AMIs it shares.
    fn of_account(&self, account: crate::accounts::RoleSession) -> Self
    where
        Self: Sized;
}
