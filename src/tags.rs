//! Every `gears:*` tag name gears writes or reads on AWS resources, in one place.

/// The component a resource belongs to.
pub const COMPONENT: &str = "gears:component";
/// The environment of a group (`-e`).
pub const ENVIRONMENT: &str = "gears:environment";
/// The country of a group (`--country`).
pub const COUNTRY: &str = "gears:country";
/// A group's recorded deploy ([`crate::deploy::state::State`]).
pub const DEPLOY: &str = "gears:deploy";
/// The instance tags a group had before the deploy (put back by a rollback).
pub const DEPLOY_TAGS: &str = "gears:deploy-tags";
/// A group's deploy lock ([`crate::deploy::lock::LockValue`]).
pub const DEPLOY_LOCK: &str = "gears:deploy-lock";
