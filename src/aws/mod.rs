//! The only module that talks to AWS (the SDK is imported nowhere else).
//!
//! - [`ports`]: the small traits stages see, one concern a file, with the data they carry;
//!   [`Cloud`] hands them out per region, and [`Fleet`] names the six a deploy uses as one bound;
//! - `error`: [`CloudError`], its [`ErrorKind`] decided by AWS error code, never by message text;
//! - [`sdk`]: [`Aws`], the ports on one shared SDK configuration, a client per service;
//! - [`fake`]: the ports in memory with injectable faults (throttling, an error at call N,
//!   latency) for tests of what moto cannot produce; `contract` runs the same tests on both.
//!
//! Stages name the ports by their re-exports here (`crate::aws::Group`, `crate::aws::Fleet`).

#[cfg(test)]
mod contract;
mod error;
#[cfg(test)]
pub mod fake;
pub mod ports;
pub mod sdk;

pub use error::{kind_of, kind_of_code, CloudError, ErrorKind, NO_ACTIVE_REFRESH};
pub use ports::amis::{AmiHousekeeping, AmiUse, LaunchPermission, OwnedImage, Snapshot};
pub use ports::clone::{CloneAsk, Cloning};
pub use ports::fleet::Fleet;
pub use ports::groups::{Group, Groups, Member, MemberInfo};
pub use ports::images::{
    has_tags, is_ami_id, BaseAmiQuery, Image, ImageShares, Images, Parameter, FILTER_VALUES,
};
pub use ports::instances::{Imds, Instance, Instances, LaunchSpec, NamedTemplate, SecurityGroup};
pub use ports::launches::{Launches, TemplateRef, GEARS_VERSION_DESCRIPTION};
pub use ports::locks::{GroupTag, GroupTags, LockTable, TableHolder, TAGS_PER_CALL};
pub use ports::refresh::Refreshes;
pub use ports::traffic::{LaunchHook, Traffic};
pub use ports::{AmiCloud, Cloud};
pub use sdk::{timeouts, Aws};
