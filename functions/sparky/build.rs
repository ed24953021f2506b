//! Links `sparky` as a position-dependent executable. A position-independent one is
//! loaded at a random address, so the loader first rewrites every pointer in its
//! read-only data (about 75,000 of them): milliseconds at each start, and memory that
//! each process then holds privately instead of sharing with the file's page cache.
fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
}
