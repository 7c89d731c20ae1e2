//! Links the `gears` executable at a fixed address on Linux with the GNU toolchain (`-no-pie`).
//!
//! A position-independent executable has its pointers patched at every start: for gears (the
//! AWS SDKs' tables) 72,000 relocations over 1.2 MB, about 300 pages written before `main`, a
//! millisecond of every run and most of `gears --version`'s. A fixed-address executable has
//! them resolved at link time (scripts/bench-smoke.sh measures it; issue 21). What it gives
//! up is the randomised address of gears' own code (libraries, stack and heap stay random).
//! Only the binaries are linked so: tests and proc macros are unchanged.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=GEARS_PIE");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" && std::env::var_os("GEARS_PIE").is_none() {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
