//! [`LockTable`] on DynamoDB: a conditional write is a true compare-and-swap, as Terraform's
//! state lock uses. One item per lock: `key` (the partition key, a string), `run`, `holder`,
//! `at` (the last renewal, Unix milliseconds; the holder renews it every poll).

use super::ec2::map_err;
use super::{CloudError, LockTable};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// The lock table `table` in one region.
#[derive(Clone)]
pub struct DynamoLocks {
    client: aws_sdk_dynamodb::Client,
    table: String,
    region: String,
}

impl DynamoLocks {
    /// The table's client for `region`, on the shared configuration.
    pub fn new(conf: &aws_config::SdkConfig, region: &str, table: &str) -> Self {
        DynamoLocks {
            client: aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(conf)
                    .region(aws_config::Region::new(region.to_owned()))
                    .build(),
            ),
            table: table.to_owned(),
            region: region.to_owned(),
        }
    }
}

/// How [`holder_text`] ends for a STOP lock: tested with `ends_with`, never `contains`, so a
/// holder (a host or CI job name, anyone's value) cannot make a live lock look stopped.
pub const KEPT_SUFFIX: &str = ", kept until a human unlocks it";

/// Who holds a lock and how long ago they renewed it (as seen at `now`, Unix milliseconds).
pub fn holder_text(run: &str, holder: &str, at: i64, now: i64) -> String {
    if at > now + 86_400_000 {
        return format!("run {run} ({holder}){KEPT_SUFFIX}");
    }
    let ago = std::time::Duration::from_millis((now - at).max(0) as u64);
    format!(
        "run {run} ({holder}), renewed {} ago",
        crate::ui::human_duration(ago)
    )
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

impl LockTable for DynamoLocks {
    async fn acquire(
        &self,
        key: &str,
        run: &str,
        holder: &str,
        at: i64,
        stale_before: i64,
    ) -> Result<Option<String>, CloudError> {
        let item = HashMap::from([
            ("key".to_owned(), s(key)),
            ("run".to_owned(), s(run)),
            ("holder".to_owned(), s(holder)),
            ("at".to_owned(), AttributeValue::N(at.to_string())),
        ]);
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            // An item of an older gears has a lease end (`until`, Unix seconds) instead of `at`.
            .condition_expression(
                "attribute_not_exists(#k) OR #r = :run OR #a <= :stale OR (attribute_not_exists(#a) AND #u < :now)",
            )
            .expression_attribute_names("#k", "key")
            .expression_attribute_names("#a", "at")
            .expression_attribute_names("#u", "until")
            .expression_attribute_names("#r", "run")
            .expression_attribute_values(":stale", AttributeValue::N(stale_before.to_string()))
            .expression_attribute_values(":now", AttributeValue::N((at / 1000).to_string()))
            .expression_attribute_values(":run", s(run))
            .send()
            .await;
        match put {
            Ok(_) => Ok(None),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                let got = self
                    .client
                    .get_item()
                    .table_name(&self.table)
                    .key("key", s(key))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| map_err("GetItem", &self.region, e))?;
                let field = |f: &str| {
                    got.item()
                        .and_then(|i| i.get(f))
                        .and_then(|v| v.as_s().ok().cloned().or_else(|| v.as_n().ok().cloned()))
                        .unwrap_or_default()
                };
                let (run, holder) = (field("run"), field("holder"));
                Ok(Some(match field("at").parse() {
                    Ok(a) => holder_text(&run, &holder, a, at),
                    Err(_) => format!(
                        "run {run} ({holder}), a lease of an older gears until {} (Unix seconds)",
                        field("until")
                    ),
                }))
            }
            Err(e) => Err(map_err("PutItem", &self.region, e)),
        }
    }

    async fn renew(&self, key: &str, run: &str, holder: &str, at: i64) -> Result<bool, CloudError> {
        let put = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("key", s(key))
            .update_expression("SET #a = :at, #h = :holder")
            .condition_expression("attribute_exists(#k) AND #r = :run")
            .expression_attribute_names("#k", "key")
            .expression_attribute_names("#a", "at")
            .expression_attribute_names("#h", "holder")
            .expression_attribute_names("#r", "run")
            .expression_attribute_values(":at", AttributeValue::N(at.to_string()))
            .expression_attribute_values(":holder", s(holder))
            .expression_attribute_values(":run", s(run))
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(map_err("UpdateItem", &self.region, e)),
        }
    }

    async fn release(&self, key: &str, run: &str) -> Result<(), CloudError> {
        let del = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("key", s(key))
            .condition_expression("#r = :run")
            .expression_attribute_names("#r", "run")
            .expression_attribute_values(":run", s(run))
            .send()
            .await;
        match del {
            Ok(_) => Ok(()),
            // Not ours (any more): nothing to give back.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(map_err("DeleteItem", &self.region, e)),
        }
    }

    async fn force_release(&self, key: &str) -> Result<(), CloudError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("key", s(key))
            .send()
            .await
            .map_err(|e| map_err("DeleteItem", &self.region, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_stop_lock_reads_as_kept_whatever_the_holder_is_called() {
        let now = 1_800_000_000_000;
        let kept = holder_text("r1", "ci", i64::MAX / 2, now);
        assert!(kept.ends_with(KEPT_SUFFIX), "{kept}");
        // A live lock whose holder's name carries the words is still a live lock.
        let live = holder_text("r2", "job, kept until a human unlocks it", now - 1_000, now);
        assert!(!live.ends_with(KEPT_SUFFIX), "{live}");
        assert!(live.ends_with("renewed 1.0s ago"), "{live}");
    }
}
