//! `gears bake`: component metadata → plan → Packer template → `packer build` → AMI manifest.
pub mod manifest;
pub mod plan;
pub mod quote;
pub mod run;
pub mod template;
