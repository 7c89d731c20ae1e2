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
/// Everything gears made carries it, with the value `gears` (`gears amis --prune` and
/// `gears reap` touch nothing without it).
pub const MANAGED_BY: &str = "gears:managed-by";
/// The run of gears that made a resource (a bake's AMIs, snapshots and build instance, a test
/// instance).
pub const RUN_ID: &str = "gears:run-id";
/// Why an instance runs: `test` (a `gears test` instance) or `bake` (packer's build instance).
pub const PURPOSE: &str = "gears:purpose";
/// When a test instance expires (UTC, `%Y-%m-%dT%H:%M:%SZ`): `gears reap` terminates it after
/// that.
pub const EXPIRES_AT: &str = "gears:expires-at";
/// How long a bake's build instance may live (e.g. `3h`): `gears reap` terminates it after that.
pub const TTL: &str = "gears:ttl";
/// The component version a test instance runs.
pub const VERSION: &str = "gears:version";
/// The builder of the bake that made an AMI.
pub const BUILDER: &str = "gears:builder";
/// How a bake's AMIs were encrypted, on each AMI of a bake whose component file has
/// `encrypt:` ([`crate::component::encrypt::Encrypt::record`]): a reuse of that bake needs the
/// same record.
pub const ENCRYPT: &str = "gears:encrypt";
/// The base AMI an AMI was baked on (filled in by packer).
pub const BASE_AMI: &str = "gears:base-ami";
/// The Parameter Store parameter an AMI's base AMI came from and the version read
/// (`name:version`), on each AMI of a builder whose base AMI came from `base_ami.ssm`: a reuse
/// of the bake records it ([`crate::bake::made_from`]).
pub const BASE_AMI_PARAMETER: &str = "gears:base-ami-parameter";
/// The blue/green cluster a group belongs to (its name); `gears status` groups its rows by it.
pub const CLUSTER: &str = "gears:cluster";
/// An old blue/green group kept out of traffic ([`crate::deploy::blue_green::record::Retired`]:
/// `at` and `until` in UTC, its capacity, what gears suspended).
pub const RETIRED: &str = "gears:retired";
/// A blue/green switch in flight, on the group in traffic
/// ([`crate::deploy::blue_green::record::Switch`]: `run`, `ami`, `new`, `phase`).
pub const BLUEGREEN: &str = "gears:bluegreen";
