//! `sparky`: becomes a container's init if it is PID 1, then parses the command line
//! and hands over to [`sparky::cli::main`]. The allocator's arenas are limited first,
//! before any thread starts (see `sparky_core::memory`).

use std::process::ExitCode;

fn main() -> ExitCode {
    sparky_core::memory::limit_arenas();
    sparky::init::become_init_if_pid1();
    sparky::cli::main()
}
