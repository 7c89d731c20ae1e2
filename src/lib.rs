//! gears: immutable infrastructure on AWS.
//!
//! One component goes through three stages, each a subcommand: **bake** (metadata → Packer
//! template → `packer build` → AMI manifest), **test** (launch from the new AMI, smoke-test it,
//! always terminate) and **deploy** (roll the Auto Scaling groups batch by batch, gated by health).
//! **smoke** runs Smolder-format smoke files on its own. See README.md, docs/ and ARCHITECTURE.md.

pub mod accounts;
pub mod amis;
pub mod ansible;
pub mod app;
pub mod aws;
pub mod bake;
pub mod cancel;
pub mod ci;
pub mod cli;
pub mod component;
pub mod context;
pub mod deploy;
pub mod error;
pub mod exit;
pub mod manifest;
pub mod packer;
pub mod pipeline;
pub mod process;
pub mod random;
pub mod reap;
pub mod reference;
pub mod settings;
pub mod smoke;
pub mod status;
pub mod tags;
pub mod terminate;
pub mod test_stage;
#[cfg(test)]
pub(crate) mod testing;
pub mod text;
pub mod ui;
pub mod units;
pub mod wait;
