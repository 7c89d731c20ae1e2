//! Auto Scaling's instance refresh (`--strategy refresh`).

use crate::aws::CloudError;
use std::future::Future;

/// Instance refreshes of the groups of one region.
pub trait Refreshes: Send + Sync {
    /// Starts an instance refresh of the group (launch before terminate: healthy capacity kept
    /// between `min_healthy` and `max_healthy` percent); returns its id.
    fn start_refresh(
        &self,
        group: &str,
        min_healthy: i32,
        max_healthy: i32,
    ) -> impl Future<Output = Result<String, CloudError>> + Send;

    /// An instance refresh's status (`Pending`, `InProgress`, `Successful`, `Failed`,
    /// `Cancelled`, ...), its percentage complete and its reason.
    fn refresh_status(
        &self,
        group: &str,
        id: &str,
    ) -> impl Future<Output = Result<(String, i32, String), CloudError>> + Send;

    /// Cancels the group's instance refresh.
    fn cancel_refresh(&self, group: &str) -> impl Future<Output = Result<(), CloudError>> + Send;
}
