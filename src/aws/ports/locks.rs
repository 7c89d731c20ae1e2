//! Where a deploy keeps its state and its lock: tags on the group, and the lock table.

use crate::aws::CloudError;
use std::collections::BTreeMap;
use std::future::Future;

/// Tags of the groups of one region: where a deploy records what it did and who holds the
/// group.
pub trait GroupTags: Send + Sync {
    /// Sets tags on the group (`propagate`: also on instances it launches).
    fn put_tags(
        &self,
        group: &str,
        tags: &BTreeMap<String, String>,
        propagate: bool,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Sets tags of many groups in one CreateOrUpdateTags per [`TAGS_PER_CALL`] tags (the call
    /// takes tags of any groups of the region): what a lease renewal of every lock a region
    /// holds, or a deploy's record with its instance tags, costs.
    fn put_tag_list(
        &self,
        tags: &[GroupTag],
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Deletes tags from the group.
    fn delete_tags(
        &self,
        group: &str,
        keys: &[String],
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
}

/// At most this many tags go in one CreateOrUpdateTags. The API reference names no cap on
/// its `Tags` list (its table of batch limits leaves CreateOrUpdateTags out), so this is a
/// bound of our own: AWS's quota of 50 tags on one group, so one call is never larger than
/// a call AWS must take for a single group.
pub const TAGS_PER_CALL: usize = 50;

/// One tag of one group, for [`GroupTags::put_tag_list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupTag {
    pub group: String,
    pub key: String,
    pub value: String,
    /// Also on the instances the group launches.
    pub propagate: bool,
}

impl GroupTag {
    /// `tags` on `group`, each `propagate`d or not.
    pub fn all(group: &str, tags: &BTreeMap<String, String>, propagate: bool) -> Vec<GroupTag> {
        tags.iter()
            .map(|(k, v)| GroupTag {
                group: group.to_owned(),
                key: k.clone(),
                value: v.clone(),
                propagate,
            })
            .collect()
    }
}

/// A lock table (DynamoDB with `--lock-table`): a true compare-and-swap for deploy locks.
pub trait LockTable: Send + Sync {
    /// Takes (or renews) lock `key` for `run`, recording `at` (Unix milliseconds) as its last
    /// renewal, when it is free, already `run`'s, or last renewed at or before `stale_before`
    /// (its holder is gone): `None`. Otherwise `Some` of who holds it and when it last renewed.
    /// A lock written with an `at` far in the future (a STOP lock) never goes stale.
    fn acquire(
        &self,
        key: &str,
        run: &str,
        holder: &str,
        at: i64,
        stale_before: i64,
    ) -> impl Future<Output = Result<Option<TableHolder>, CloudError>> + Send;

    /// Renews lock `key` (its `at`) only while `run` still holds it: `false` when it does not
    /// (taken over, or removed by `--unlock`); a lost lock is never created again.
    fn renew(
        &self,
        key: &str,
        run: &str,
        holder: &str,
        at: i64,
    ) -> impl Future<Output = Result<bool, CloudError>> + Send;

    /// Gives lock `key` back if `run` holds it.
    fn release(&self, key: &str, run: &str) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Removes lock `key` whoever holds it (`--unlock`, after a human looked).
    fn force_release(&self, key: &str) -> impl Future<Output = Result<(), CloudError>> + Send;
}

/// Who holds a lock-table lock, as the table says it (data, not prose).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableHolder {
    pub run: String,
    pub holder: String,
    /// The last renewal (Unix milliseconds); `None` for an item of an older gears, which kept a
    /// lease end instead.
    pub at: Option<i64>,
    /// When the table was read (Unix milliseconds), for the age.
    pub seen_at: i64,
}

impl TableHolder {
    /// A STOP lock: written with a renewal time far in the future, kept until a human unlocks
    /// it (decided by the number, never by the holder's words).
    pub fn is_stop(&self) -> bool {
        self.at.is_some_and(|a| a > self.seen_at + 86_400_000)
    }
}

impl std::fmt::Display for TableHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (run, holder) = (&self.run, &self.holder);
        match self.at {
            _ if self.is_stop() => write!(f, "run {run} ({holder}), kept until a human unlocks it"),
            Some(at) => {
                let ago = std::time::Duration::from_millis((self.seen_at - at).max(0) as u64);
                write!(
                    f,
                    "run {run} ({holder}), renewed {} ago",
                    crate::text::human_duration(ago)
                )
            }
            None => write!(f, "run {run} ({holder}), a lease of an older gears"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_stop_lock_reads_as_kept_whatever_the_holder_is_called() {
        let now = 1_800_000_000_000;
        let h = |holder: &str, at| TableHolder {
            run: "r1".into(),
            holder: holder.into(),
            at: Some(at),
            seen_at: now,
        };
        let kept = h("ci", i64::MAX / 2);
        assert!(kept.is_stop(), "{kept}");
        // A live lock whose holder's name carries the words is still a live lock.
        let live = h("job, kept until a human unlocks it", now - 1_000);
        assert!(!live.is_stop(), "{live}");
        assert!(live.to_string().ends_with("renewed 1.0s ago"), "{live}");
    }
}
