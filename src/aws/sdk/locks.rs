//! [`LockTable`] on DynamoDB: a conditional write is a true compare-and-swap, as Terraform's
//! state lock uses. One item per lock: `key` (the partition key, a string), `run`, `holder`,
//! `at` (the last renewal, Unix milliseconds; the holder renews it every poll).

use super::errors::map_err;
use crate::aws::{CloudError, LockTable, TableHolder};
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
    ) -> Result<Option<TableHolder>, CloudError> {
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
                Ok(Some(TableHolder {
                    run: field("run"),
                    holder: field("holder"),
                    at: field("at").parse().ok(),
                    seen_at: at,
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
