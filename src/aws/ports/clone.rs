//! A new group cloned from another (blue/green).

use crate::aws::{CloudError, TemplateRef};
use std::collections::BTreeMap;
use std::future::Future;

/// A new group a blue/green deploy clones from another ([`Fleet::clone_group`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CloneAsk {
    pub name: String,
    /// The launch template version it launches from (as its own launch template, or as its
    /// mixed-instances policy's when the source has one).
    pub template: TemplateRef,
    /// Tags set on it over the source's, propagated at launch.
    pub tags: BTreeMap<String, String>,
    /// The source's tags it does not get (gears' own state on the source).
    pub drop_tags: Vec<String>,
}

/// Groups of one region made like another (a blue/green deploy's new group).
pub trait Cloning: Send + Sync {
    /// Creates group `ask.name` like `source` (max size, subnets and zones, health checks,
    /// cooldown, termination policies, scale-in protection, traffic sources, tags, lifecycle
    /// hooks), with min and desired 0, launching from `ask.template`. AWS answers
    /// `AlreadyExists` when the name is taken.
    fn clone_group(
        &self,
        source: &str,
        ask: &CloneAsk,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Copies `from`'s scaling policies and (still to come) scheduled actions onto `to`,
    /// creating or updating by name; returns how many of each.
    fn copy_scaling(
        &self,
        from: &str,
        to: &str,
    ) -> impl Future<Output = Result<(usize, usize), CloudError>> + Send;
}
