//! How `sparky` is linked.
//!
//! - As a position-dependent executable. A position-independent one is loaded at a
//!   random address, so the loader first rewrites every pointer in its read-only data
//!   (about 75,000 of them): milliseconds at each start, and memory that each process
//!   then holds privately instead of sharing with the file's page cache.
//! - In optimised builds for x86-64 Linux (linked by LLD, Rust's default there since
//!   1.90, the workspace's `rust-version`), with the functions a running Sparky uses
//!   first and side by side, in the order of `symbol-order.txt` (written by
//!   `scripts/order-symbols`). The kernel maps 64 KiB
//!   around each page of code a process first touches; with that code spread over the
//!   whole binary, most of the binary would end up resident. Names the list has and the
//!   binary hasn't (code changed since the list was written) are skipped.
use std::{env, path::Path};

fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");

    let var = |name: &str| env::var(name).unwrap_or_default();
    let order = Path::new(&var("CARGO_MANIFEST_DIR")).join("symbol-order.txt");
    println!("cargo:rerun-if-changed={}", order.display());
    let optimised = var("PROFILE") == "release";
    let lld_by_default = var("CARGO_CFG_TARGET_ARCH") == "x86_64"
        && var("CARGO_CFG_TARGET_OS") == "linux"
        && var("CARGO_CFG_TARGET_ENV") == "gnu";
    if optimised && lld_by_default && order.is_file() {
        println!("cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}", order.display());
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}
