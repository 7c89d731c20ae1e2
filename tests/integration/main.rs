//! End-to-end tests against real parts started by `scripts/test.sh`: httpbin (HTTP and TLS) for
//! smoke tests, moto and packer for bake. Run them with `scripts/test.sh`.

mod ansible;
mod bake;
mod cli;
mod common;
mod interrupt;
mod smoke;
