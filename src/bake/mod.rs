//! `gears bake`: component metadata → plan → Packer template → `packer build` → AMI manifest.
//!
//! `run` is the stage, `plan` decides everything before anything runs, `template` renders
//! (JSON, or HCL2 with `hcl`'s literals),
//! `reuse` finds an earlier bake of the same version (`made_from`: what its AMIs record
//! they were made from), `explain` and `validate` are the
//! no-AWS views of a bake.
pub mod base;
pub mod explain;
pub mod hcl;
pub mod hygiene;
pub mod leftovers;
pub mod made_from;
pub mod packer_use;
pub mod plan;
pub mod quote;
pub mod reuse;
pub mod run;
pub mod settings;
pub mod share;
pub mod template;
mod template_settings;
pub mod validate;
