//! The fleet port: everything a deploy does to the Auto Scaling groups of one region, as one
//! bound ([`Fleet`]) over ports small enough to fake one at a time.

use crate::aws::{Cloning, GroupTags, Groups, Launches, Refreshes, Traffic};

/// Auto Scaling groups, their launch templates, traffic and health, in one region: every port a
/// deploy uses, so a stage names one bound. Anything that implements the six is a `Fleet`.
pub trait Fleet: Groups + Launches + Traffic + GroupTags + Refreshes + Cloning {}

impl<T: Groups + Launches + Traffic + GroupTags + Refreshes + Cloning> Fleet for T {}
