//! The fake's DynamoDB lock table: [`FakeLocks`].

use super::FakeCloud;
use crate::aws::TableHolder;
use crate::aws::{CloudError, LockTable};
use std::collections::BTreeMap;

/// The fake's lock table: a compare-and-swap under one mutex.
#[derive(Clone)]
pub struct FakeLocks {
    pub(super) cloud: FakeCloud,
    pub(super) region: String,
}

impl FakeCloud {
    /// The lock table's items: key → (run, holder, last renewal in Unix milliseconds).
    pub fn lock_items(&self) -> BTreeMap<String, (String, String, i64)> {
        self.state
            .locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl LockTable for FakeLocks {
    async fn acquire(
        &self,
        key: &str,
        run: &str,
        holder: &str,
        at: i64,
        stale_before: i64,
    ) -> Result<Option<TableHolder>, CloudError> {
        self.cloud.call("PutItem", &self.region).await?;
        let mut items = self
            .cloud
            .state
            .locks
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match items.get(key) {
            Some((r, h, a)) if r != run && *a > stale_before => Ok(Some(TableHolder {
                run: r.clone(),
                holder: h.clone(),
                at: Some(*a),
                seen_at: at,
            })),
            _ => {
                items.insert(key.to_owned(), (run.to_owned(), holder.to_owned(), at));
                Ok(None)
            }
        }
    }

    async fn renew(&self, key: &str, run: &str, holder: &str, at: i64) -> Result<bool, CloudError> {
        self.cloud.call("UpdateItem", &self.region).await?;
        let mut items = self
            .cloud
            .state
            .locks
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match items.get_mut(key) {
            Some(item) if item.0 == run => {
                item.1 = holder.to_owned();
                item.2 = at;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release(&self, key: &str, run: &str) -> Result<(), CloudError> {
        self.cloud.call("DeleteItem", &self.region).await?;
        let mut items = self
            .cloud
            .state
            .locks
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if items.get(key).is_some_and(|(r, _, _)| r == run) {
            items.remove(key);
        }
        Ok(())
    }

    async fn force_release(&self, key: &str) -> Result<(), CloudError> {
        self.cloud.call("DeleteItem", &self.region).await?;
        self.cloud
            .state
            .locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        Ok(())
    }
}
