//! End-to-end tests against real parts started by `scripts/test.sh`: httpbin (HTTP and TLS) for
//! smoke tests, moto and packer for bake, moto and httpbin for `gears test`. Run them with
//! `scripts/test.sh`; tests that need no server also pass under a plain `cargo test`.

mod accounts;
mod amis;
mod amis_accounts;
mod ansible;
mod bake;
mod bake_settings;
mod blue_green;
mod cli;
mod common;
mod deploy;
mod interrupt;
mod packer_versions;
mod pipeline;
mod pipelines;
mod smoke;
mod status;
mod test_stage;
